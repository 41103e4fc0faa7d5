/**
 * The Deno flags the compiled binary carries, shared by `tools/compile.ts`
 * and the README test (which runs the README's `sockit` with exactly these).
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
export const BINARY_FLAGS: readonly string[] = [
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env=SOCKIT_TOKEN,HOME,XDG_CONFIG_HOME,APPDATA,PATH,LANG",
  "--allow-sys=statfs",
];
