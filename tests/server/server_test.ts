import { deepEqual, ok, rejects } from "node:assert/strict";
import {
  computeProof,
  connect,
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  MessageType,
  RemoteError,
} from "../_lib.ts";
import {
  concat,
  delay,
  errorOf,
  helloFrame,
  messageFrame,
  rawConnect,
  readMessage,
  readUntilClose,
  send,
  startServer,
  waitFor,
} from "../_utils.ts";

const text = new TextEncoder();
const TOKEN = "s3cret-token-for-tests";

/** A round trip through the echo service proves the server still serves. */
async function assertServes(address: string): Promise<void> {
  await using session = await connect(address);
  await session.send(MessageType.Data, text.encode("canary"));
  const reply = await session.read();
  deepEqual(new TextDecoder().decode(reply?.body), "canary");
}

Deno.test("echo returns every frame unchanged, pipelined and in order", async () => {
  await using t = await startServer();
  await using session = await connect(t.address);
  const sent = Array.from({ length: 500 }, (_, i) => text.encode(`message ${i} `.repeat(i % 7)));
  for (const body of sent) session.writer.frame(new Uint8Array([MessageType.Data]), body);
  await session.writer.flush();
  for (const body of sent) {
    const reply = await session.read();
    deepEqual(reply?.type, MessageType.Data);
    deepEqual(reply?.body.slice(), body);
  }
});

Deno.test("echo answers PING with PONG carrying the same bytes", async () => {
  await using t = await startServer();
  using conn = await rawConnect(t.address);
  await send(conn, helloFrame());
  await send(conn, messageFrame(MessageType.Ping, new Uint8Array([1, 2, 3])));
  await conn.closeWrite();
  const messages = await readUntilClose(conn);
  deepEqual(messages.map((m) => m.type), [MessageType.Welcome, MessageType.Pong]);
  deepEqual(messages[1]?.body, new Uint8Array([1, 2, 3]));
});

Deno.test("a one-shot client that half-closes at once still gets every reply", async () => {
  await using t = await startServer();
  using conn = await rawConnect(t.address);
  const frames = Array.from(
    { length: 100 },
    (_, i) => messageFrame(MessageType.Data, text.encode(`${i}`)),
  );
  // Handshake and all data in one write, then EOF: the server must answer all.
  const all = new Uint8Array([...helloFrame(), ...frames.flatMap((f) => [...f])]);
  await send(conn, all);
  await conn.closeWrite();
  const messages = await readUntilClose(conn);
  deepEqual(messages.length, 101);
  deepEqual(
    messages.slice(1).map((m) => new TextDecoder().decode(m.body)),
    Array.from({ length: 100 }, (_, i) => `${i}`),
  );
});

Deno.test("a length prefix above the limit gets an error frame naming the limit", async (t) => {
  for (const declared of [16 * 1024 + 1, 0x7fff_ffff, 0xffff_ffff]) {
    await t.step(`before the handshake: ${declared}`, async () => {
      await using s = await startServer();
      using conn = await rawConnect(s.address);
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, declared);
      await send(conn, header);
      const error = errorOf(await readUntilClose(conn));
      deepEqual(error?.code, "frame_too_large");
      deepEqual(error?.maxFrameLength, 16 * 1024);
      deepEqual(error?.frameLength, declared);
      await assertServes(s.address);
    });
  }
  await t.step("after the handshake, against --max-frame", async () => {
    await using s = await startServer({ maxFrame: 1000 });
    using conn = await rawConnect(s.address);
    await send(conn, helloFrame());
    await send(conn, encodeFrame(new Uint8Array(1001)));
    const messages = await readUntilClose(conn);
    deepEqual(messages[0]?.type, MessageType.Welcome);
    deepEqual(messages[0]?.json?.maxFrame, 1000);
    deepEqual(errorOf(messages)?.code, "frame_too_large");
    deepEqual(errorOf(messages)?.maxFrameLength, 1000);
  });
});

Deno.test("an oversize claim costs the server no memory and others keep being served", async () => {
  // All 50 peers come from 127.0.0.1: the per-source guard (half of the 64
  // handshake slots) would refuse 18 of them, so it is off here.
  await using s = await startServer({ maxFrame: 64 * 1024 * 1024, sourceGuard: false });
  const conns = await Promise.all(Array.from({ length: 50 }, () => rawConnect(s.address)));
  try {
    const before = Deno.memoryUsage();
    // Each peer declares a 64 MiB DATA frame after the handshake and sends
    // 1 byte of it. The PING before the claim comes back as a PONG once the
    // server has read it: the claim, sent in the same write, is then read too.
    const claim = new Uint8Array([0x04, 0, 0, 0, MessageType.Data]);
    for (const conn of conns) {
      await send(conn, concat(helloFrame(), messageFrame(MessageType.Ping), claim));
    }
    for (const conn of conns) {
      const reader = new FrameReader(conn);
      const welcome = await readMessage(reader);
      deepEqual(welcome?.type, MessageType.Welcome, JSON.stringify(welcome?.json));
      deepEqual((await readMessage(reader))?.type, MessageType.Pong);
    }
    await waitFor(
      () => s.events.filter((e) => e.type === "session").length === 50,
      5000,
      () => `50 sessions (events: ${JSON.stringify(s.events.map((e) => e.type))})`,
    );
    deepEqual(s.events.filter((e) => e.type === "refused" || e.type === "closed"), []);
    await assertServes(s.address);
    const after = Deno.memoryUsage();
    // A buffer allocated for a claim is counted in `external` (ArrayBuffer
    // memory) at once, but not in the RSS until its pages are written: both
    // are checked.
    const grown = {
      rss: after.rss - before.rss,
      external: after.external - before.external,
    };
    ok(
      grown.rss < 32 * 1024 * 1024 && grown.external < 32 * 1024 * 1024,
      `memory grew by ${JSON.stringify(grown)} bytes for 50 × 64 MiB claims`,
    );
  } finally {
    for (const conn of conns) conn.close();
  }
});

Deno.test("a stream that ends inside a frame gets truncated_frame", async (t) => {
  for (
    const [name, tail] of [
      ["inside the header", new Uint8Array([0, 0])],
      ["inside the payload", new Uint8Array([0, 0, 0, 9, MessageType.Data, 1])],
    ] as const
  ) {
    await t.step(name, async () => {
      await using s = await startServer();
      using conn = await rawConnect(s.address);
      await send(conn, helloFrame());
      await send(conn, tail);
      await conn.closeWrite();
      const error = errorOf(await readUntilClose(conn));
      deepEqual(error?.code, "truncated_frame");
      await assertServes(s.address);
    });
  }
});

Deno.test("the handshake is refused with a stable code for each kind of bad input", async (t) => {
  const bad: [string, Uint8Array, string][] = [
    [
      "garbage bytes (an HTTP request)",
      text.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      "frame_too_large",
    ],
    ["a small frame of garbage", encodeFrame(text.encode("hello")), "bad_handshake"],
    ["an empty frame", encodeFrame(new Uint8Array()), "bad_handshake"],
    [
      "HELLO that is not JSON",
      messageFrame(MessageType.Hello, text.encode("{nope")),
      "bad_message",
    ],
    [
      "HELLO for another protocol",
      encodeFrame(encodeControl(MessageType.Hello, { protocol: "x" })),
      "bad_handshake",
    ],
    ["an unknown protocol version", helloFrame("echo", {}, [7, 9]), "unsupported_version"],
    ["an unknown service", helloFrame("telnet"), "unknown_service"],
    ["DATA before HELLO", messageFrame(MessageType.Data, text.encode("hi")), "bad_handshake"],
  ];
  await using s = await startServer();
  for (const [name, bytes, code] of bad) {
    await t.step(name, async () => {
      using conn = await rawConnect(s.address);
      await send(conn, bytes);
      const error = errorOf(await readUntilClose(conn));
      deepEqual(error?.code, code);
      ok(typeof error?.message === "string" && error.message.length > 0);
    });
  }
  await assertServes(s.address);
  const version = s.events.find((e) => e.type === "closed" && e.reason === "unsupported_version");
  ok(version, "the close reason is logged");
});

Deno.test("an unknown version gets the supported versions", async () => {
  await using s = await startServer();
  using conn = await rawConnect(s.address);
  await send(conn, helloFrame("echo", {}, [2]));
  deepEqual(errorOf(await readUntilClose(conn))?.supported, [1]);
});

Deno.test("token authentication accepts the right token and proves the server", async () => {
  await using s = await startServer({ token: TOKEN });
  await using session = await connect(s.address, { token: TOKEN });
  ok(session.welcome.proof, "the server sent its proof");
  await session.send(MessageType.Data, text.encode("x"));
  deepEqual((await session.read())?.type, MessageType.Data);
  ok(s.events.some((e) => e.type === "session" && e.authenticated));
});

Deno.test("a wrong token, a missing token and a replayed proof are refused", async (t) => {
  // Two failed proofs are free before penalties start: these steps fail no more.
  await using s = await startServer({ token: TOKEN });
  // Any refusal is a RemoteError: the code tells a failed proof from, say, busy.
  const authFailed = (e: unknown) => e instanceof RemoteError && e.code === "auth_failed";
  await t.step("wrong token reports auth_failed", async () => {
    await rejects(connect(s.address, { token: "not-the-token-at-all" }), authFailed);
  });
  await t.step("no token", async () => {
    await rejects(connect(s.address), /requires a token/);
  });
  await t.step("a proof recorded on one connection fails on the next", async () => {
    // Record: a real exchange with the right token, over a raw socket.
    using first = await rawConnect(s.address);
    const reader1 = new FrameReader(first);
    await send(first, helloFrame());
    const challenge1 = await readMessage(reader1);
    const nonce1 = Uint8Array.fromBase64(String(challenge1?.json?.nonce));
    const clientNonce = new Uint8Array(32).fill(7); // helloFrame's nonce
    const proof = (await computeProof(TOKEN, "client", "echo", nonce1, clientNonce)).toBase64();
    await send(first, encodeFrame(encodeControl(MessageType.Auth, { proof })));
    deepEqual((await readMessage(reader1))?.type, MessageType.Welcome);
    // Replay: same HELLO and same proof on a new connection.
    using second = await rawConnect(s.address);
    const reader2 = new FrameReader(second);
    await send(second, helloFrame());
    const challenge2 = await readMessage(reader2);
    ok(challenge2?.json?.nonce !== challenge1?.json?.nonce, "server nonces are fresh");
    await send(second, encodeFrame(encodeControl(MessageType.Auth, { proof })));
    const reply = await readMessage(reader2);
    deepEqual(reply?.type, MessageType.Error);
    deepEqual(reply?.json?.code, "auth_failed");
  });
});

Deno.test("a handshake that never completes is closed at the deadline", async () => {
  await using s = await startServer({ handshakeTimeout: 300 });
  using silent = await rawConnect(s.address);
  using trickle = await rawConnect(s.address);
  const started = performance.now();
  // The trickling peer makes progress, which must not extend the deadline.
  const hello = helloFrame();
  let closed = false;
  const dripping = (async () => {
    for (let i = 0; i < hello.length - 1 && !closed; i++) {
      await send(trickle, hello.subarray(i, i + 1));
      await delay(20);
    }
  })().catch(() => {/* the server closed the connection: expected */});
  const [a, b] = await Promise.all([readUntilClose(silent), readUntilClose(trickle)]);
  const elapsed = performance.now() - started;
  closed = true;
  await dripping;
  deepEqual(errorOf(a)?.code, "handshake_timeout");
  deepEqual(errorOf(b)?.code, "handshake_timeout");
  ok(elapsed < 2000, `closed after ${elapsed} ms`);
});

Deno.test("an idle session is closed after the idle timeout; PING keeps it alive", async () => {
  await using s = await startServer({ idleTimeout: 300 });
  await using alive = await connect(s.address); // sends PINGs every 100 ms
  using idle = await rawConnect(s.address);
  await send(idle, helloFrame());
  const messages = await readUntilClose(idle);
  deepEqual(errorOf(messages)?.code, "idle_timeout");
  await alive.send(MessageType.Data, text.encode("still here"));
  deepEqual(new TextDecoder().decode((await alive.read())?.body), "still here");
});

Deno.test("200 idle sessions do not slow a well-behaved client", async () => {
  // All from one address: no per-source cap.
  await using s = await startServer({ sourceGuard: false });
  const idle = [];
  // In batches: more than a quarter of the slots handshaking at once is a flood.
  for (let i = 0; i < 4; i++) {
    idle.push(
      ...await Promise.all(
        Array.from({ length: 50 }, () => connect(s.address, { keepalive: false })),
      ),
    );
  }
  try {
    await using session = await connect(s.address);
    for (let i = 0; i < 200; i++) {
      await session.send(MessageType.Data, text.encode(`${i}`));
      deepEqual(new TextDecoder().decode((await session.read())?.body), `${i}`);
    }
    deepEqual(s.server.connections, 201);
  } finally {
    for (const session of idle) session.close();
  }
});

Deno.test("silent handshakes get only their share of the slots", async () => {
  // All from one address: the global cap, not the per-source one, is tested.
  await using s = await startServer({
    maxConnections: 64,
    handshakeTimeout: 500,
    sourceGuard: false,
  });
  await using established = await connect(s.address);
  // 16 = a quarter of 64 may sit in their handshake; the rest are refused at once.
  const silent = await Promise.all(Array.from({ length: 64 }, () => rawConnect(s.address)));
  try {
    const refused = await Promise.all(silent.slice(16).map((c) => readUntilClose(c)));
    deepEqual(refused.map((m) => errorOf(m)?.code), Array(48).fill("busy"));
    deepEqual(errorOf(refused[0]!)?.maxUnauthenticated, 16);
    // The established session is not affected.
    await established.send(MessageType.Data, text.encode("fine"));
    deepEqual(new TextDecoder().decode((await established.read())?.body), "fine");
    // At their deadline the silent ones go, and newcomers get in again.
    const timedOut = await Promise.all(silent.slice(0, 16).map((c) => readUntilClose(c)));
    deepEqual(timedOut.map((m) => errorOf(m)?.code), Array(16).fill("handshake_timeout"));
    for (const conn of silent.splice(0)) conn.close();
    await assertServes(s.address);
  } finally {
    for (const conn of silent) conn.close();
  }
});

Deno.test("a client that never reads is cut off at the write stall and costs bounded memory", async () => {
  await using s = await startServer({ stallTimeout: 500 });
  using hog = await rawConnect(s.address);
  await send(hog, helloFrame());
  // Pipeline 64 MiB of echo requests and never read a reply.
  const chunk = new Uint8Array(
    Array(64).fill([...messageFrame(MessageType.Data, new Uint8Array(1019))]).flat(),
  );
  let sent = 0;
  const pushing = (async () => {
    try {
      while (sent < 64 * 1024 * 1024) {
        await send(hog, chunk);
        sent += chunk.length;
      }
    } catch {
      // The server closed the connection: expected.
    }
  })();
  await waitFor(
    () => s.events.some((e) => e.type === "closed" && e.reason === "write_stall"),
    10_000,
    "the connection to be closed for write_stall",
  );
  ok(sent < 64 * 1024 * 1024, `the server stopped reading (accepted ${sent} bytes)`);
  await assertServes(s.address);
  hog.close();
  await pushing;
});

Deno.test("connections over --max-conns are refused at once with busy", async () => {
  await using s = await startServer({
    maxConnections: 256,
    maxUnauthenticated: 256,
    sourceGuard: false,
  });
  const results = await Promise.all(
    Array.from({ length: 1000 }, () =>
      connect(s.address, { keepalive: false }).then(
        (session) => ({ session, code: "ok" }),
        (error) => ({
          session: undefined,
          code: error instanceof RemoteError ? error.code : String(error),
        }),
      )),
  );
  try {
    const codes = new Map<string, number>();
    for (const r of results) codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
    deepEqual(codes.get("ok"), 256);
    deepEqual(codes.get("busy"), 744, JSON.stringify([...codes]));
  } finally {
    for (const r of results) r.session?.close();
  }
  await waitFor(() => s.server.connections === 0, 5000, "every session to close");
  await assertServes(s.address);
});

Deno.test("shutdown tells idle sessions and closes everything", async () => {
  const s = await startServer();
  using idle = await rawConnect(s.address);
  await send(idle, helloFrame());
  const reader = new FrameReader(idle);
  deepEqual((await readMessage(reader))?.type, MessageType.Welcome);
  const shutdown = s.server.shutdown();
  const next = await reader.read();
  deepEqual(decodeControl(next!).code, "shutting_down");
  await shutdown;
  await s.server.finished;
  deepEqual(s.server.connections, 0);
  await rejects(rawConnect(s.address), Deno.errors.ConnectionRefused);
});
