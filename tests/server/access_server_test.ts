/**
 * The server's access list and source guard, over real sockets: clients on
 * 127.0.0.1 are refused or penalised while clients on ::1 (another source)
 * keep being served.
 */

import { deepEqual, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  AccessList,
  type ClientSession,
  connect,
  type ConnectOptions,
  formatAddress,
  MessageType,
  RemoteError,
  type ServerEvent,
} from "../_lib.ts";
import {
  errorOf,
  ipv6Loopback,
  rawConnect,
  readUntilClose,
  startServer,
  type TestServer,
  waitFor,
} from "../_utils.ts";

const TOKEN = "access-server-test-token-0123456789";
/** Whether [::1] can be bound: the tests with a second source on it are ignored without. */
const ipv6 = ipv6Loopback();
const BOTH = ["127.0.0.1:0", "[::1]:0"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The server's IPv4 and IPv6 addresses, in `listen` order. */
function addresses(s: TestServer): [string, string] {
  const [v4, v6] = s.server.addrs.map(formatAddress);
  return [v4!, v6!];
}

/** Connects, expecting the server to refuse; returns the server's error. */
async function refusal(address: string, options: ConnectOptions = {}): Promise<RemoteError> {
  let session: ClientSession;
  try {
    session = await connect(address, { keepalive: false, ...options });
  } catch (error) {
    if (error instanceof RemoteError) return error;
    throw error;
  }
  session.close();
  throw new Error(`expected "${address}" to be refused, but it was welcomed`);
}

/** Sends one DATA message and asserts that the echo comes back. */
async function assertEchoes(session: ClientSession, text: string): Promise<void> {
  await session.send(MessageType.Data, encoder.encode(text));
  deepEqual(decoder.decode((await session.read())?.body), text);
}

/** Connects to `address` and completes one echo. */
async function assertServes(address: string, options: ConnectOptions = {}): Promise<void> {
  await using session = await connect(address, { keepalive: false, ...options });
  await assertEchoes(session, `hello from ${address}`);
}

function refusedEvents(events: ServerEvent[]): { remote: string; code: string }[] {
  return events.flatMap((e) => e.type === "refused" ? [{ remote: e.remote, code: e.code }] : []);
}

Deno.test({
  name: "an access list refuses denied addresses with denied and keeps serving others",
  ignore: !ipv6, // [::1] is the source that is served: no IPv6 loopback here
}, async (t) => {
  await t.step("deny 127.0.0.1/32: IPv4 refused, [::1] served", async () => {
    await using s = await startServer({
      listen: BOTH,
      access: AccessList.from({ deny: ["127.0.0.1/32"] }),
    });
    const [v4, v6] = addresses(s);
    const error = await refusal(v4);
    deepEqual(error.code, "denied");
    deepEqual(error.message, 'Cannot accept connection: "127.0.0.1" is denied by "127.0.0.1/32"');
    deepEqual(error.details.rule, "127.0.0.1/32");
    await assertServes(v6);
    const refused = refusedEvents(s.events);
    deepEqual(refused.map((e) => e.code), ["denied"]);
    match(refused[0]!.remote, /^127\.0\.0\.1:\d+$/);
    // The refused peer never became a session.
    deepEqual(s.events.filter((e) => e.type === "session").length, 1);
  });

  await t.step("allow ::1 only: IPv4 refused as not in any allow rule", async () => {
    await using s = await startServer({
      listen: BOTH,
      access: AccessList.from({ allow: ["::1"] }),
    });
    const [v4, v6] = addresses(s);
    const error = await refusal(v4);
    deepEqual(error.code, "denied");
    deepEqual(
      error.message,
      'Cannot accept connection: "127.0.0.1" is denied: not in any allow rule',
    );
    await assertServes(v6);
    deepEqual(refusedEvents(s.events).map((e) => e.code), ["denied"]);
  });
});

Deno.test("setAccess denies new connections but never drops an established session", async () => {
  await using s = await startServer();
  const v4 = s.address;
  await using live = await connect(v4, { keepalive: false });
  await assertEchoes(live, "before");
  s.server.setAccess(AccessList.from({ deny: ["127.0.0.0/8"] }));
  await assertEchoes(live, "after the list denies 127.0.0.0/8");
  deepEqual((await refusal(v4)).code, "denied");
  await assertEchoes(live, "still here");
  s.server.setAccess(undefined);
  await assertServes(v4);
  await assertEchoes(live, "and still");
  deepEqual(refusedEvents(s.events).map((e) => e.code), ["denied"]);
});

Deno.test({
  name: "a failed authentication shuts its source out for the penalty, and no one else",
  ignore: !ipv6, // [::1] is the source that is not affected: no IPv6 loopback here
}, async () => {
  // The guard runs on a fake clock, moved on by hand: no wall time is spent
  // waiting the penalty out.
  let clock = 1_000_000;
  await using s = await startServer({
    listen: BOTH,
    token: TOKEN,
    sourceGuard: { penaltyBase: 300, freeFailures: 0, now: () => clock },
  });
  const [v4, v6] = addresses(s);
  deepEqual((await refusal(v4, { token: "not-the-token-but-long-enough" })).code, "auth_failed");

  // Even the right token is refused while the penalty runs: nothing is read.
  const denied = await refusal(v4, { token: TOKEN });
  deepEqual(denied.code, "denied");
  const retryAfter = denied.details.retryAfter;
  ok(typeof retryAfter === "number" && retryAfter > 0 && retryAfter <= 300, `${retryAfter}`);
  deepEqual(
    denied.message,
    'Cannot accept connection: authentication failed from "127.0.0.1"; retry in 1 s',
  );

  // Another source is not affected.
  await assertServes(v6, { token: TOKEN });

  clock += retryAfter;
  await assertServes(v4, { token: TOKEN });
  deepEqual(refusedEvents(s.events).map((e) => e.code), ["denied"]);
  ok(
    s.events.some((e) => e.type === "closed" && e.reason === "auth_failed"),
    "the failed session closed with auth_failed",
  );
});

Deno.test({
  name: "silent connections from one source take only maxPerSource handshake slots",
  ignore: !ipv6, // [::1] is the source that still gets in: no IPv6 loopback here
}, async () => {
  await using s = await startServer({
    listen: BOTH,
    handshakeTimeout: 10_000,
    sourceGuard: { maxPerSource: 3 },
  });
  const [v4, v6] = addresses(s);
  const silent = await Promise.all([1, 2, 3].map(() => rawConnect(v4)));
  try {
    await waitFor(
      () => s.events.filter((e) => e.type === "connected").length === 3,
      5000,
      "the three silent connections to be accepted",
    );
    {
      using fourth = await rawConnect(v4);
      const error = errorOf(await readUntilClose(fourth));
      deepEqual(error?.code, "busy");
      deepEqual(error?.maxPerSource, 3);
      deepEqual(
        error?.message,
        'Cannot accept connection: 3 connections from "127.0.0.1" are already in their handshake',
      );
    }
    // The canary: another source still completes a session.
    await assertServes(v6);
    // A closed silent connection gives its slot back.
    silent.shift()!.close();
    await waitFor(
      () => s.events.some((e) => e.type === "closed" && e.id <= 3),
      5000,
      "the closed silent connection to end its session",
    );
    await assertServes(v4);
    deepEqual(refusedEvents(s.events).map((e) => e.code), ["busy"]);
  } finally {
    for (const conn of silent) conn.close();
  }
});

Deno.test("Unix-socket peers: refused by an allow list, never counted per source", async () => {
  // Deno checks a Unix socket path against --allow-net=unix:PATH, an exact
  // path, which the library tests are not granted (they get loopback only,
  // and a fresh temporary path cannot be named before they start): the
  // scenario runs in a child process granted exactly this path.
  const dir = await Deno.makeTempDir({ prefix: "sockit-access-" });
  const path = `${dir}/s`;
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--config",
        fileURLToPath(new URL("../../deno.json", import.meta.url)),
        `--allow-net=unix:${path}`,
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        fileURLToPath(new URL("../fixtures/unix_access_child.ts", import.meta.url)),
        path,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const { code, stdout, stderr } = await child.output().finally(() => clearTimeout(timer));
    const errors = decoder.decode(stderr);
    deepEqual(code, 0, errors);
    deepEqual(decoder.decode(stdout), '{"done":true}\n', errors);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
