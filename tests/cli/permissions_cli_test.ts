/**
 * The server's run permission for exec is scoped as `--exec-allow` is:
 * the listed programs, named in one flag Deno really honours.
 */

import { equal, match } from "node:assert/strict";
import { NET, sockit, startCli } from "../_cli.ts";

async function withToken<T>(fn: (tokenFile: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "sockit-run-perm-" });
  try {
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, "a token of sixteen or more characters\n", { mode: 0o600 });
    return await fn(tokenFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ENV = "--allow-env=PATH,LANG,HOME";

Deno.test("server --exec --exec-allow starts with --allow-run for exactly those programs", async () => {
  await withToken(async (tokenFile) => {
    const flags = [...NET, "--allow-run=printf,sh", `--allow-read=${tokenFile}`, ENV];
    const args = ["--listen", "127.0.0.1:0", "--token-file", tokenFile];
    await using server = await startCli(flags, [...args, "--exec", "--exec-allow", "printf,sh"]);
    const ran = await sockit(
      [...NET, `--allow-read=${tokenFile}`],
      ["exec", server.address, "--token-file", tokenFile, "--", "printf", "%s", "scoped"],
    );
    equal(ran.stdout, "scoped", ran.stderr);
    equal(ran.code, 0);
    const { stderr } = await server.stop();
    equal(stderr.includes("warning"), false, stderr);
  });
});

Deno.test("a run grant that leaves a listed program out is named in a warning, and refused", async () => {
  await withToken(async (tokenFile) => {
    const flags = [...NET, "--allow-run=printf", `--allow-read=${tokenFile}`, ENV];
    const args = ["--listen", "127.0.0.1:0", "--token-file", tokenFile];
    await using server = await startCli(flags, [...args, "--exec", "--exec-allow", "printf,sh"]);
    const refused = await sockit(
      [...NET, `--allow-read=${tokenFile}`],
      ["exec", server.address, "--token-file", tokenFile, "--", "sh", "-c", "echo no"],
    );
    equal(refused.code, 255);
    equal(refused.stdout, "");
    match(refused.stderr, /not_allowed/);
    const { stderr } = await server.stop();
    match(stderr, /warning: exec: --allow-run does not grant sh; running it is refused/);
  });
});

Deno.test("without any listed program granted, the error names the scoped flag, not a bare one", async () => {
  await withToken(async (tokenFile) => {
    const { code, stderr } = await sockit(
      [...NET, `--allow-read=${tokenFile}`, ENV],
      [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        tokenFile,
        "--exec",
        "--exec-allow",
        "printf,sh",
      ],
    );
    equal(code, 1);
    match(
      stderr,
      /^error: Cannot start the server: missing permission --allow-run=printf,sh \(to run commands for exec\); run again with it\n$/,
    );
  });
});

Deno.test("without --exec-allow, exec needs the whole run permission", async () => {
  await withToken(async (tokenFile) => {
    const { code, stderr } = await sockit(
      [...NET, "--allow-run=printf", `--allow-read=${tokenFile}`, ENV],
      ["server", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--exec"],
    );
    equal(code, 1);
    match(stderr, /missing permission --allow-run \(to run commands for exec\)/);
  });
});
