/**
 * The bundle of `deno task bundle` (`tools/bundle.ts`), built into a
 * temporary directory and smoke-tested (`tools/smoke.ts`) the way a user
 * outside this repository runs it: `deno run --no-config --unstable-net
 * PERMISSIONS sockit.js`, with each command's minimal permission flags.
 * Where esbuild cannot be downloaded, the test says why and ignores its
 * steps.
 */

import { ok } from "node:assert/strict";
import { bundle, BUNDLE_RUN_FLAGS } from "../tools/bundle.ts";
import { smoke } from "../tools/smoke.ts";

Deno.test("the bundle of cli.ts runs outside the repository: version, echo, exec and upload", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sockit-bundle-" });
  try {
    const result = await bundle(`${dir}/sockit.js`);
    if (!result.built) {
      // The step's name says why it does not run.
      const name = `smoke test of the bundle (ignored: ${result.reason})`;
      await t.step({ name, ignore: true, fn: () => {} });
      return;
    }
    ok(result.bytes > 0, "the bundle is empty");
    await smoke({ script: result.output, flags: BUNDLE_RUN_FLAGS }, async (name, check) => {
      ok(await t.step(name, check), `step failed: ${name}`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
