/**
 * One token rule for every client command: `--token-file`, then
 * `SOCKIT_TOKEN`, then the default token file that `sockit server --exec`
 * or `--upload-dir` generates. Real CLI processes with a temporary HOME.
 */

import { deepEqual, match } from "node:assert/strict";
import { NET, sockit, startEventServer } from "../_cli.ts";

Deno.test("client, exec and upload all find the token the server generated", async (t) => {
  const home = await Deno.makeTempDir({ prefix: "sockit-home-" });
  const up = await Deno.makeTempDir({ prefix: "sockit-up-" });
  try {
    await Deno.chmod(up, 0o755);
    const config = `${home}/.config/sockit`;
    const env = { HOME: home };
    await using server = await startEventServer(
      [
        ...NET,
        "--allow-env=HOME",
        "--allow-run=true",
        `--allow-read=${config}/token,${up}`,
        `--allow-write=${config},${up}`,
        "--allow-sys=statfs",
      ],
      ["--listen", "127.0.0.1:0", "--exec", "--exec-allow", "true", "--upload-dir", up],
      { clearEnv: true, env },
    );
    const flags = [...NET, "--allow-env=HOME", `--allow-read=${config}/token`];

    await t.step("sockit client", async () => {
      const result = await sockit(flags, ["client", server.address], {
        clearEnv: true,
        env,
        stdin: "hi\n",
      });
      deepEqual([result.code, result.stdout], [0, "hi\n"], result.stderr);
    });
    await t.step("sockit exec", async () => {
      const result = await sockit(flags, ["exec", server.address, "--", "true"], {
        clearEnv: true,
        env,
      });
      deepEqual(result.code, 0, result.stderr);
    });
    await t.step("sockit upload", async () => {
      const src = `${home}/note.txt`;
      await Deno.writeTextFile(src, "note\n");
      const result = await sockit(
        [...NET, "--allow-env=HOME", `--allow-read=${config}/token,${src}`],
        ["upload", server.address, src],
        { clearEnv: true, env },
      );
      deepEqual(result.code, 0, result.stderr);
      deepEqual(await Deno.readTextFile(`${up}/note.txt`), "note\n");
    });
    await t.step(
      "sockit client without read access to the token is refused, naming the way",
      async () => {
        const result = await sockit([...NET, "--allow-env=HOME"], ["client", server.address], {
          clearEnv: true,
          env,
          stdin: "hi\n",
        });
        deepEqual(result.code, 1, result.stderr);
        match(result.stderr, /requires a token \(use --token-file/);
      },
    );
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(up, { recursive: true });
  }
});

Deno.test("a client with a default token file still talks to a server that needs none", async () => {
  const home = await Deno.makeTempDir({ prefix: "sockit-home-" });
  try {
    const config = `${home}/.config/sockit`;
    await Deno.mkdir(config, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(`${config}/token`, "a-token-nobody-asked-for-0123456789", {
      mode: 0o600,
    });
    await using server = await startEventServer([...NET], ["--listen", "127.0.0.1:0"]);
    const result = await sockit(
      [...NET, "--allow-env=HOME", `--allow-read=${config}/token`],
      ["client", server.address],
      { clearEnv: true, env: { HOME: home }, stdin: "hi\n" },
    );
    deepEqual([result.code, result.stdout], [0, "hi\n"], result.stderr);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
