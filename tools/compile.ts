#!/usr/bin/env -S deno run --allow-run --allow-read --allow-write=dist --allow-env=PATH
/**
 * `deno task compile`: builds `dist/sockit`, the single executable, with the
 * permissions the binary carries. `deno task compile:all` (`--all`) builds
 * one binary per release target instead, `dist/sockit-<target>` (`.exe`
 * for Windows). `deno compile` downloads Deno's `denort` base binary for
 * each target; where that download cannot happen, this prints
 * `compile: skipped (<reason>)` for the target and exits 0 — it never
 * produces a fake binary. Any other failure fails the task.
 *
 * A binary built for this machine is smoke-tested (`tools/smoke.ts`):
 * `--version`, then echo, exec and upload round trips on loopback, its
 * temporary directories under `dist/`. On Windows only `--version` runs.
 *
 * @module
 */

import { BINARY_FLAGS as FLAGS } from "./binary_flags.ts";
import { smoke } from "./smoke.ts";

const DIST = "dist";

/** The release targets of `--all`, as `deno compile --target` names them. */
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/**
 * Compiles `cli.ts` into `output`, for `target` (this machine when
 * undefined).
 *
 * @returns whether a binary was built; `false` after printing why not
 */
async function compile(output: string, target?: string): Promise<boolean> {
  const { success, code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      ...FLAGS,
      ...target === undefined ? [] : ["--target", target],
      "--output",
      output,
      "cli.ts",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const message = new TextDecoder().decode(stderr);
  if (success) return true;
  if (/Setting up base binary|error sending request/.test(message)) {
    const of = target === undefined ? "" : `${target}: `;
    console.log(
      `compile: skipped (${of}the denort base binary cannot be downloaded on this machine)`,
    );
    return false;
  }
  console.error(message);
  Deno.exit(code || 1);
}

/** Smoke-tests the binary at `output`, which runs on this machine; exits 1 when a check fails. */
async function check(output: string): Promise<void> {
  const executable = await Deno.realPath(output);
  try {
    if (Deno.build.os === "windows") {
      const { success, stdout } = await new Deno.Command(executable, { args: ["--version"] })
        .output();
      const version = new TextDecoder().decode(stdout);
      if (!success || !version.startsWith("sockit ")) {
        throw new Error(`"--version" printed ${version}`);
      }
    } else {
      await smoke({ executable }, async (name, run) => {
        await run();
        console.log(`compile: ${output}: ${name}: ok`);
      }, { tmp: await Deno.realPath(DIST) });
    }
  } catch (error) {
    console.error(`compile: ${output} built but its smoke test failed: ${error}`);
    Deno.exit(1);
  }
}

const all = Deno.args.length === 1 && Deno.args[0] === "--all";
if (Deno.args.length > 0 && !all) {
  console.error(
    "Usage: deno task compile (this machine) | deno task compile:all (every release target)",
  );
  Deno.exit(2);
}
await Deno.mkdir(DIST, { recursive: true });
if (all) {
  for (const target of TARGETS) {
    const output = `${DIST}/sockit-${target}${target.includes("windows") ? ".exe" : ""}`;
    if (!await compile(output, target)) continue;
    if (target === Deno.build.target) await check(output);
    console.log(`compile: built ${output}`);
  }
} else {
  const output = `${DIST}/sockit${Deno.build.os === "windows" ? ".exe" : ""}`;
  if (await compile(output)) {
    await check(output);
    console.log(`compile: built ${output}`);
  }
}
