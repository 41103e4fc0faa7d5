/**
 * The smoke test of a built `sockit` (the bundle of `deno task bundle` or
 * the binary of `deno task compile`): `--version`, then one server on
 * loopback port 0 serving echo, `--exec` and `--upload-dir`, and a round
 * trip through each with the real client. Each child gets exactly the
 * permission flags the README documents (a compiled binary carries its
 * own) and runs in a cleared environment with a temporary HOME, where the
 * server generates the zero-config token the clients then read.
 *
 * `tests/bundle_test.ts` runs it as test steps; `tools/compile.ts` runs it
 * on the binary it built. It needs a POSIX host (`sh`, HOME).
 *
 * @module
 */

import { deepEqual, match } from "node:assert/strict";
import { type CliEntry, NET, sockit, startCli } from "../tests/_cli.ts";

export type { CliEntry };

/** Options for {@linkcode smoke}. */
export interface SmokeOptions {
  /**
   * The directory the temporary HOME and upload directories are made in.
   * @default {undefined} (the system's temporary directory)
   */
  tmp?: string;
}

/**
 * Runs one named check; `t.step` of a test, or a function that runs it and
 * reports it.
 */
export type SmokeStep = (name: string, check: () => Promise<void>) => Promise<unknown>;

/** Where the zero-config token of a process with this HOME lives. */
function tokenDir(home: string): string {
  return `${home}/.config/sockit`;
}

/**
 * Smoke-tests `entry` on loopback: `--version`, then echo, exec and upload
 * round trips against one `server --json --exec --upload-dir` child.
 *
 * @param entry the bundle (a script with its `deno run` flags) or binary to test
 * @param step runs each named check
 * @param options where the temporary directories go
 * @returns when every check ran; the server has stopped and the
 *   temporary directories are removed
 * @throws {Error} when the server does not start, or a check throws and
 *   `step` passes that on
 */
export async function smoke(
  entry: CliEntry,
  step: SmokeStep,
  options: SmokeOptions = {},
): Promise<void> {
  const opts = { entry, clearEnv: true, timeout: 30_000 } as const;

  await step("--version prints the name and version", async () => {
    const result = await sockit([], ["--version"], opts);
    deepEqual([result.code, result.stderr], [0, ""]);
    match(result.stdout, /^sockit \d+\.\d+\.\d+\S*\n$/);
  });

  const temp = (prefix: string) =>
    Deno.makeTempDir({ prefix, ...options.tmp === undefined ? {} : { dir: options.tmp } });
  const home = await temp("sockit-smoke-home-");
  const uploads = await temp("sockit-smoke-uploads-");
  const src = await temp("sockit-smoke-src-");
  try {
    const env = { HOME: home, LANG: "C.UTF-8" };
    const token = `${tokenDir(home)}/token`;
    await using server = await startCli(
      [
        ...NET,
        "--allow-run",
        "--allow-env=HOME,XDG_CONFIG_HOME,PATH,LANG",
        `--allow-read=${uploads},${tokenDir(home)}`,
        `--allow-write=${uploads},${tokenDir(home)}`,
        "--allow-sys=statfs",
      ],
      ["--listen", "127.0.0.1:0", "--exec", "--upload-dir", uploads],
      { entry, clearEnv: true, env }, // no kill timer: it runs until stopped
    );

    await step("client echoes lines through the server, proving the token", async () => {
      const result = await sockit(
        [...NET, `--allow-read=${token}`],
        ["client", server.address, "--token-file", token],
        { ...opts, stdin: "a\n\nb" },
      );
      deepEqual(result, { code: 0, stdout: "a\n\nb\n", stderr: "" });
    });

    await step("exec runs a command with the zero-config token", async () => {
      const result = await sockit(
        [...NET, "--allow-env=HOME,XDG_CONFIG_HOME,SOCKIT_TOKEN", `--allow-read=${token}`],
        ["exec", server.address, "--", "sh", "-c", "cat; echo err >&2; exit 3"],
        { ...opts, env, stdin: "in\n" },
      );
      deepEqual(result, { code: 3, stdout: "in\n", stderr: "err\n" });
    });

    await step("upload delivers a file byte for byte", async () => {
      const bytes = crypto.getRandomValues(new Uint8Array(60_000));
      await Deno.writeFile(`${src}/data.bin`, bytes);
      const result = await sockit(
        [...NET, "--allow-env=HOME", `--allow-read=${src}/data.bin,${token}`],
        ["upload", server.address, `${src}/data.bin`, "--no-progress"],
        { ...opts, env },
      );
      deepEqual(result, { code: 0, stdout: "", stderr: "" });
      deepEqual(await Deno.readFile(`${uploads}/data.bin`), bytes);
    });

    await step("the server stops on SIGTERM with exit code 0", async () => {
      const stopped = await server.stop();
      deepEqual(stopped.code, 0, stopped.stderr);
    });
  } finally {
    for (const dir of [home, uploads, src]) await Deno.remove(dir, { recursive: true });
  }
}
