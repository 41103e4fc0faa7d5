/**
 * End-to-end tests of TLS, access rules and least privilege through the
 * real CLI: `sockit server --tls`, clients verifying by pin or by known
 * hosts, the refusals that need no network exposure to test, and the
 * one-line messages for missing permissions. The library side is in
 * tls_test.ts and access_server_test.ts.
 *
 * Every child runs in a cleared environment with its own temporary HOME, so
 * the server's certificate lands in HOME/.config/sockit/tls.pem and the
 * client's known hosts in HOME/.config/sockit/known_hosts.
 */

import { deepEqual, match, notDeepEqual, ok } from "node:assert/strict";
import { certificateFingerprint, connect, formatFingerprint, MessageType } from "../_lib.ts";
import { NET, type Result, type ServerProcess, sockit, startCli } from "../_cli.ts";
import { waitFor } from "../_utils.ts";

/** A temporary HOME, removed on dispose. */
async function home(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

const config = (home: string) => `${home}/.config/sockit`;

/**
 * The flags of `server --tls` or a `--tls` client with this HOME: the
 * server's certificate, or the client's known hosts, are kept under it.
 */
function homeFlags(home: string): string[] {
  return [...NET, "--allow-env=HOME", `--allow-read=${home}`, `--allow-write=${home}`];
}

/** `sockit server --tls` on a free loopback port, keeping its certificate under `home`. */
function startTlsServer(home: string): Promise<ServerProcess> {
  return startCli(homeFlags(home), ["--tls", "-l", "127.0.0.1:0"], {
    clearEnv: true,
    env: { HOME: home },
  });
}

/** `sockit client ADDRESS --tls` (trust on first use, known hosts under `home`) fed `stdin`. */
function tlsClient(home: string, address: string, stdin: string): Promise<Result> {
  return sockit(homeFlags(home), ["client", address, "--tls"], {
    clearEnv: true,
    env: { HOME: home },
    stdin,
  });
}

Deno.test("sockit server --tls: a kept certificate, verified by pin or on first use", async (t) => {
  await using serverHome = await home();
  await using clientHome = await home();
  let fingerprint = "";
  let address = "";
  await t.step("the server makes its certificate once, mode 600, and prints it", async () => {
    await using server = await startTlsServer(serverHome.path);
    address = server.address;
    const pem = await Deno.readTextFile(`${config(serverHome.path)}/tls.pem`);
    fingerprint = await certificateFingerprint(pem);
    deepEqual((await Deno.stat(`${config(serverHome.path)}/tls.pem`)).mode! & 0o777, 0o600);
    const reply = await tlsClient(clientHome.path, address, "hello\n");
    deepEqual([reply.code, reply.stdout], [0, "hello\n"], reply.stderr);
    match(reply.stderr, /new TLS server .* recorded in .*known_hosts/);
    match(reply.stderr, new RegExp(formatFingerprint(fingerprint)));
    // Recorded: the second connection says nothing.
    const again = await tlsClient(clientHome.path, address, "again\n");
    deepEqual([again.code, again.stdout, again.stderr], [0, "again\n", ""]);
    const result = await server.stop();
    match(result.stderr, new RegExp(`TLS certificate ${formatFingerprint(fingerprint)}`));
  });
  await t.step("a restarted server keeps its fingerprint; --pin as printed works", async () => {
    await using server = await startTlsServer(serverHome.path);
    const pem = await Deno.readTextFile(`${config(serverHome.path)}/tls.pem`);
    deepEqual(await certificateFingerprint(pem), fingerprint);
    const pinned = await sockit(NET, [
      "client",
      server.address,
      "--pin",
      formatFingerprint(fingerprint),
    ], { clearEnv: true, stdin: "pinned\n" });
    deepEqual([pinned.code, pinned.stdout], [0, "pinned\n"], pinned.stderr);
    const wrong = await sockit(NET, ["client", server.address, "--pin", "ab".repeat(32)], {
      clearEnv: true,
      stdin: "x\n",
    });
    deepEqual(wrong.code, 1);
    match(wrong.stderr, /not the pinned one/);
  });
  await t.step("a changed certificate at a known address: exit 3, both fingerprints", async () => {
    await using other = await home();
    await using server = await startTlsServer(other.path);
    // The client has seen this address with the first server's certificate.
    await Deno.writeTextFile(
      `${config(clientHome.path)}/known_hosts`,
      `${server.address} ${formatFingerprint(fingerprint)}\n`,
      { append: true },
    );
    const result = await tlsClient(clientHome.path, server.address, "x\n");
    deepEqual([result.code, result.stdout], [3, ""]);
    match(result.stderr, new RegExp(`expected ${formatFingerprint(fingerprint)}`));
    match(result.stderr, /presented sha256:/);
  });
  await t.step("--insecure warns and connects; a plain client is told to use --tls", async () => {
    await using server = await startTlsServer(serverHome.path);
    const insecure = await sockit(NET, ["client", server.address, "--insecure"], {
      clearEnv: true,
      stdin: "unverified\n",
    });
    deepEqual([insecure.code, insecure.stdout], [0, "unverified\n"]);
    match(insecure.stderr, /warning: --insecure/);
    const plain = await sockit(NET, ["client", server.address], { clearEnv: true, stdin: "x\n" });
    deepEqual(plain.code, 1);
    match(plain.stderr, /--tls/);
  });
});

Deno.test("exec and upload on a non-loopback address need TLS or --insecure-plaintext", async () => {
  await using h = await home();
  const dir = `${h.path}/in`;
  await Deno.mkdir(dir, { mode: 0o755 });
  const flags = [
    "--allow-net=0.0.0.0",
    "--allow-env=HOME",
    `--allow-read=${h.path}`,
    `--allow-write=${h.path}`,
  ];
  const refused = await sockit(flags, ["server", "-l", "0.0.0.0:0", "--upload-dir", dir], {
    clearEnv: true,
    env: { HOME: h.path },
  });
  deepEqual(refused.code, 2);
  match(refused.stderr, /need TLS: add --tls .* or --insecure-plaintext/);
});

Deno.test("a missing permission is one line naming the flag to add", async (t) => {
  await t.step("the listening address", async () => {
    const result = await sockit([], ["server", "-l", "127.0.0.1:7391"], { clearEnv: true });
    deepEqual(result.code, 1);
    const lines = result.stderr.trim().split("\n");
    deepEqual(lines.length, 1, result.stderr);
    match(lines[0]!, /--allow-net=127\.0\.0\.1:7391/);
    ok(!/\bat \w+ \(/.test(result.stderr), "no stack trace");
  });
  await t.step("client, exec and upload: the address they connect to", async () => {
    for (
      const [args, code] of [
        [["client", "127.0.0.1:7391"], 1],
        [["exec", "127.0.0.1:7391", "--", "true"], 255],
        [["upload", "[::1]:7391", "x"], 1],
      ] as const
    ) {
      const result = await sockit([], args, { clearEnv: true });
      deepEqual(result.code, code, result.stderr);
      const lines = result.stderr.trim().split("\n");
      deepEqual(lines.length, 1, result.stderr);
      match(lines[0]!, /missing permission --allow-net=('\[::1\]:7391'|127\.0\.0\.1:7391)/);
    }
  });
  await t.step("the upload directory, with the token in SOCKIT_TOKEN", async () => {
    await using h = await home();
    const result = await sockit(
      [...NET, "--allow-env=SOCKIT_TOKEN"],
      ["server", "-l", "127.0.0.1:0", "--upload-dir", h.path],
      { clearEnv: true, env: { SOCKIT_TOKEN: "a-token-of-enough-length-0123" } },
    );
    deepEqual(result.code, 1);
    const lines = result.stderr.trim().split("\n");
    match(lines.at(-1)!, new RegExp(`--allow-read=${h.path}.*--allow-write=${h.path}`));
    ok(!/\bat \w+ \(/.test(result.stderr), "no stack trace");
  });
});

Deno.test("after start-up the server gives up what it does not need, and still serves", async () => {
  await using server = await startCli(
    [...NET, "--allow-run", "--allow-env", "--allow-write=/tmp"],
    ["-l", "127.0.0.1:0"],
  );
  const reply = await sockit(NET, ["client", server.address], { stdin: "still here\n" });
  deepEqual([reply.code, reply.stdout], [0, "still here\n"]);
  const result = await server.stop();
  const events = result.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const permissions = events.find((e) => e.type === "permissions");
  ok(permissions, result.stdout);
  for (const name of ["run", "env", "write", "net"]) {
    ok(permissions.revoked.includes(name), `${name} revoked: ${JSON.stringify(permissions)}`);
  }
  notDeepEqual(permissions.revoked.length, 0);
});

Deno.test("--allow-file is re-read on SIGHUP; established sessions stay", async () => {
  await using h = await home();
  const rules = `${h.path}/rules`;
  await Deno.writeTextFile(rules, "# who may connect\nallow 127.0.0.1\n");
  await using server = await startCli([...NET, `--allow-read=${rules}`], [
    "-l",
    "127.0.0.1:0",
    "--allow-file",
    rules,
  ]);
  const echoOnce = (text: string) =>
    sockit(NET, ["client", server.address], { stdin: `${text}\n` });
  deepEqual((await echoOnce("allowed")).stdout, "allowed\n");
  // A session that is open when the rules change.
  await using live = await connect(server.address);
  await Deno.writeTextFile(rules, "deny 127.0.0.0/8\n");
  server.child.kill("SIGHUP");
  // The reload is asynchronous: wait (bounded) until new clients are denied.
  let denied: Result | undefined;
  for (let i = 0; i < 50 && denied === undefined; i++) {
    const result = await echoOnce("probe");
    if (result.code !== 0) denied = result;
  }
  ok(denied, "new connections are denied after SIGHUP");
  deepEqual(denied.code, 1);
  match(denied.stderr, /denied/);
  await live.send(MessageType.Data, new TextEncoder().encode("still here"));
  deepEqual(new TextDecoder().decode((await live.read())?.body), "still here");
  // A broken file keeps the rules in force. The old rules refuse a client
  // before the reload as well: it is probed only once the server has
  // reported that reload.
  await Deno.writeTextFile(rules, "allow 10.0.0.0/33\n");
  server.child.kill("SIGHUP");
  await waitFor(
    () => server.stderrSoFar.includes("access rules not reloaded, the old ones stay"),
    10_000,
    () => `the failed reload to be reported (stderr: ${JSON.stringify(server.stderrSoFar)})`,
  );
  const after = await echoOnce("x");
  deepEqual(after.code, 1, after.stderr);
  match(after.stderr, /denied/);
  deepEqual((await server.stop()).code, 0);
});
