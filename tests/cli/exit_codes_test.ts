/**
 * One exit-code table for every command (`lib/cli/exit_codes.ts`, printed
 * by `sockit help`), checked against what each command really returns over
 * real processes: success, a usage error, a run-time failure and a changed
 * TLS certificate.
 */

import { deepEqual, match } from "node:assert/strict";
import { EXEC_OWN_FAILURE, EXIT } from "../../lib/cli/exit_codes.ts";
import { NET, sockit, startCli } from "../_cli.ts";

/** A known-hosts line for `address` that no certificate matches. */
const wrongPin = (address: string) => `${address} sha256:${Array(32).fill("00").join(":")}\n`;

Deno.test("sockit help lists the exit codes once, with the values the commands return", async () => {
  const help = await sockit([], ["help"]);
  deepEqual(help.code, EXIT.ok);
  for (
    const [code, text] of [[EXIT.ok, "success"], [EXIT.failure, "failure"], [
      EXIT.usage,
      "usage error",
    ], [EXIT.hostKeyChanged, "the server.s TLS certificate changed"]] as const
  ) {
    match(help.stdout, new RegExp(`^  ${code} +${text}`, "m"));
  }
  match(help.stdout, new RegExp(`${EXEC_OWN_FAILURE} for every failure of its own`));
  for (const command of ["client", "exec", "upload"]) {
    const { stdout } = await sockit([], ["help", command]);
    deepEqual(stdout.match(/^Exit codes:.*$/gm)?.length, 1, command);
    match(stdout, /"sockit help" lists/);
  }
});

Deno.test("every command returns the table's code in each situation", async (t) => {
  const home = await Deno.makeTempDir({ prefix: "sockit-exit-" });
  const up = await Deno.makeTempDir({ prefix: "sockit-exit-up-" });
  try {
    await Deno.chmod(up, 0o755);
    const file = `${home}/f.txt`;
    await Deno.writeTextFile(file, "f\n");
    const config = `${home}/.config/sockit`;
    const env = { HOME: home };
    const all = [
      ...NET,
      "--allow-env=HOME",
      `--allow-read=${home},${up}`,
      `--allow-write=${home},${up}`,
      "--allow-run=true",
      "--allow-sys=statfs",
    ];
    await using server = await startCli(all, [
      "-l",
      "127.0.0.1:0",
      "--tls",
      "--exec",
      "--exec-allow",
      "true",
      "--upload-dir",
      up,
    ], { clearEnv: true, env });
    const a = server.address;
    // A closed port: bind one, note it, close it.
    const closed = (() => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = l.addr.port;
      l.close();
      return `127.0.0.1:${port}`;
    })();
    const run = (args: string[]) => sockit(all, args, { clearEnv: true, env, stdin: "x\n" });

    const rows: [string, string[], number][] = [
      ["client: success", ["client", a, "--tls", "--insecure"], EXIT.ok],
      ["upload: success", ["upload", a, file, "--tls", "--insecure"], EXIT.ok],
      ["exec: the remote command's code", ["exec", a, "--tls", "--insecure", "--", "true"], 0],
      ["completions: success", ["completions", "bash"], EXIT.ok],
      ["server: usage", ["server", "--max-conns", "0"], EXIT.usage],
      ["client: usage", ["client"], EXIT.usage],
      ["upload: usage", ["upload", a], EXIT.usage],
      ["completions: usage", ["completions", "tcsh"], EXIT.usage],
      ["exec: usage", ["exec", a, "true"], EXEC_OWN_FAILURE],
      ["client: refused", ["client", closed], EXIT.failure],
      ["upload: refused", ["upload", closed, file], EXIT.failure],
      [
        "upload: an entry not committed (exists)",
        ["upload", a, file, "--tls", "--insecure"],
        EXIT.failure,
      ],
      ["exec: refused", ["exec", closed, "--", "true"], EXEC_OWN_FAILURE],
      ["server: a port in use", ["server", "-l", a], EXIT.failure],
    ];
    for (const [name, args, code] of rows) {
      await t.step(name, async () => {
        const result = await run(args);
        deepEqual(result.code, code, result.stderr);
      });
    }
    await t.step("a changed certificate: client and upload 3, exec 255", async () => {
      await Deno.mkdir(config, { recursive: true, mode: 0o700 });
      await Deno.writeTextFile(`${config}/known_hosts`, wrongPin(a));
      for (
        const [args, code] of [
          [["client", a, "--tls"], EXIT.hostKeyChanged],
          [["upload", a, file, "--tls", "--to", "pinned"], EXIT.hostKeyChanged],
          [["exec", a, "--tls", "--", "true"], EXEC_OWN_FAILURE],
        ] as const
      ) {
        const result = await run([...args]);
        deepEqual(result.code, code, `${args[0]}: ${result.stderr}`);
        match(result.stderr, /changed|does not match|expected sha256/);
      }
    });
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(up, { recursive: true });
  }
});
