/**
 * An OS error reaches the user with the address, path or host it is about,
 * in words, in one line: a busy port, a Unix socket in a missing directory,
 * an address this machine does not have, a host name that does not
 * resolve, and a file a flag or an operand names that is not there.
 */

import { deepEqual, match } from "node:assert/strict";
import { NET, sockit, startCli } from "../_cli.ts";

Deno.test("OS errors name the thing they are about", async (t) => {
  const scratch = await Deno.makeTempDir({ prefix: "sockit-os-errors-" });
  try {
    await using busy = await startCli(NET, ["-l", "127.0.0.1:0"], { clearEnv: true });
    const token = `${scratch}/token`;
    await Deno.writeTextFile(token, "os-errors-test-token-0123456789\n", { mode: 0o600 });
    await Deno.chmod(token, 0o600);
    const rows: [string, readonly string[], string[], RegExp][] = [
      [
        "a busy port",
        NET,
        ["server", "-l", busy.address],
        new RegExp(`^error: Cannot listen on "${busy.address}": address already in use\\n$`),
      ],
      [
        "a Unix socket in a missing directory",
        [
          `--allow-net=unix:${scratch}/missing/s.sock`,
          `--allow-read=${scratch}`,
          `--allow-write=${scratch}`,
        ],
        ["server", "-l", `unix:${scratch}/missing/s.sock`],
        /^error: Cannot listen on "unix:.*\/missing\/s\.sock": its directory does not exist\n$/,
      ],
      [
        "an address this machine does not have",
        ["--allow-net=192.0.2.1"],
        ["server", "-l", "192.0.2.1:7070"],
        /^error: Cannot listen on "192\.0\.2\.1:7070": no interface of this machine has that address\n$/,
      ],
      [
        "a host name that does not resolve",
        ["--allow-net=nosuchhost.invalid"],
        ["client", "nosuchhost.invalid:7070"],
        /^error: Cannot connect to "nosuchhost\.invalid:7070": host name not found\n$/,
      ],
      [
        "a missing --ca file",
        [...NET, `--allow-read=${scratch}`],
        ["client", "127.0.0.1:9", "--tls", "--ca", `${scratch}/ca.pem`],
        /^error: Cannot read --ca ".*\/ca\.pem": no such file\n$/,
      ],
      [
        "a missing --allow-file",
        [...NET, `--allow-read=${scratch}`],
        ["server", "-l", "127.0.0.1:0", "--allow-file", `${scratch}/rules`],
        /^error: Cannot read --allow-file ".*\/rules": no such file/,
      ],
      [
        "a --allow-file that is a directory",
        [...NET, `--allow-read=${scratch}`],
        ["server", "-l", "127.0.0.1:0", "--allow-file", scratch],
        /^error: Cannot read --allow-file ".*": it is a directory/,
      ],
      [
        "a missing upload source",
        [...NET, `--allow-read=${scratch}`],
        ["upload", busy.address, `${scratch}/nothing.txt`, "--token-file", token],
        /^error: Cannot upload ".*\/nothing\.txt": no such file or directory\n$/,
      ],
    ];
    for (const [name, permissions, args, message] of rows) {
      await t.step(name, async () => {
        const result = await sockit(permissions, args, { clearEnv: true });
        deepEqual(result.stdout, "");
        match(result.stderr.replace(/^sockit: warning: .*\n/gm, ""), message);
      });
    }
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
