#!/usr/bin/env -S deno run --allow-run --allow-read --allow-write=dist
/**
 * `deno task compile`: builds `dist/sockit`, the single executable, with the
 * permissions the binary carries. `deno compile` downloads Deno's `denort`
 * base binary; where that download cannot happen, this prints
 * `compile: skipped (<reason>)` and exits 0 — it never produces a fake
 * binary. Any other failure fails the task.
 *
 * When a binary is built, it is smoke-tested with `--version`.
 *
 * @module
 */

/**
 * The flags baked into the binary; see the README's permission table. A
 * binary cannot take more flags at run time, so it carries what every
 * subcommand may need: `run` for `server --exec` (off unless asked for;
 * its allowlist governs), the variables that locate the default token
 * file and that commands inherit, and `statfs` for the upload free-space
 * check.
 */
const FLAGS = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env=SOCKIT_TOKEN,HOME,XDG_CONFIG_HOME,APPDATA,PATH,LANG",
  "--allow-sys=statfs",
];
const OUTPUT = "dist/sockit";

const compile = await new Deno.Command(Deno.execPath(), {
  args: ["compile", ...FLAGS, "--output", OUTPUT, "cli.ts"],
  stdout: "piped",
  stderr: "piped",
  env: { NO_COLOR: "1" },
}).output();
const stderr = new TextDecoder().decode(compile.stderr);
if (!compile.success) {
  if (/Setting up base binary|error sending request/.test(stderr)) {
    console.log("compile: skipped (the denort base binary cannot be downloaded on this machine)");
    Deno.exit(0);
  }
  console.error(stderr);
  Deno.exit(compile.code || 1);
}
const smoke = await new Deno.Command(OUTPUT, { args: ["--version"], stdout: "piped" }).output();
const version = new TextDecoder().decode(smoke.stdout).trim();
if (!smoke.success || !version.startsWith("sockit ")) {
  console.error(`compile: ${OUTPUT} built but "--version" failed (exit ${smoke.code})`);
  Deno.exit(1);
}
console.log(`compile: built ${OUTPUT} (${version})`);
