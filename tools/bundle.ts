#!/usr/bin/env -S deno run --allow-run --allow-read
/**
 * `deno task bundle`: builds `dist/sockit.js`, the whole CLI (npm code
 * included) in one JavaScript file, with
 * `deno bundle --platform deno --output dist/sockit.js cli.ts`. It runs
 * with `deno run` and the flags of `cli.ts`; outside this repository,
 * where `deno.json` does not switch it on, add `--unstable-net`:
 *
 * ```sh
 * deno run --no-config --unstable-net --allow-net=127.0.0.1 dist/sockit.js server
 * ```
 *
 * `deno bundle` runs esbuild, which Deno downloads from the npm registry
 * on first use; where that download cannot happen, this prints
 * `bundle: skipped (<reason>)` and exits 0. Any other failure fails the
 * task. `tests/bundle_test.ts` builds the bundle the same way and
 * smoke-tests it.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The flags a bundle needs to run outside this repository, before its permission flags. */
export const BUNDLE_RUN_FLAGS: readonly string[] = ["--no-config", "--unstable-net"];

/** The bundle `deno task bundle` writes. */
export const OUTPUT = "dist/sockit.js";

/** How {@linkcode bundle} ended. */
export type BundleResult =
  /** The bundle was written to `output`, `bytes` long. */
  | { built: true; output: string; bytes: number }
  /** Nothing was written: what this machine lacks. */
  | { built: false; reason: string };

/**
 * Bundles `cli.ts` into one JavaScript file with `deno bundle`.
 *
 * @param output the file to write
 * @returns the size of what was built, or why nothing could be
 * @throws {Error} when `deno bundle` fails for any reason but a missing
 *   esbuild download, with its stderr
 */
export async function bundle(output: string = OUTPUT): Promise<BundleResult> {
  const entry = fileURLToPath(new URL("../cli.ts", import.meta.url));
  const { success, code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "deno", "--output", output, entry],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const message = new TextDecoder().decode(stderr);
  if (!success) {
    // esbuild comes from the npm registry (`@esbuild/<platform>`) the first time.
    if (/@esbuild\//.test(message) && /error sending request|Failed loading/.test(message)) {
      return { built: false, reason: "esbuild cannot be downloaded from the npm registry" };
    }
    throw new Error(`Cannot bundle "cli.ts": deno bundle exited ${code}: ${message.trim()}`);
  }
  return { built: true, output, bytes: (await Deno.stat(output)).size };
}

if (import.meta.main) {
  const result = await bundle();
  if (result.built) {
    console.log(`bundle: built ${result.output} (${Math.round(result.bytes / 1024)} KiB)`);
  } else {
    console.log(`bundle: skipped (${result.reason})`);
  }
}
