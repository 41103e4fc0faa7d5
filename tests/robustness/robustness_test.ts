import { deepEqual, ok, rejects } from "node:assert/strict";
import {
  ChatRoom,
  connect,
  echoLines,
  encodeControl,
  encodeFrame,
  FrameReader,
  MessageType,
  ProtocolError,
  type ServerEvent,
} from "../_lib.ts";
import { helloFrame, messageFrame, rawConnect, send, startServer, waitFor } from "../_utils.ts";

const text = new TextEncoder();

/** A fake server: accepts one connection, reads HELLO, sends WELCOME, then runs `then`. */
function fakeServer(
  welcome: Record<string, unknown>,
  then: (conn: Deno.Conn) => Promise<void>,
): { address: string; done: Promise<void>; listener: Deno.Listener } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    using conn = await listener.accept();
    const reader = new FrameReader(conn);
    await reader.read(); // HELLO
    await send(conn, encodeFrame(encodeControl(MessageType.Welcome, welcome)));
    await then(conn);
  })();
  return { address: `127.0.0.1:${listener.addr.port}`, done, listener };
}

const WELCOME = { version: 1, service: "echo", maxFrame: 1024, idleTimeout: 300 };

Deno.test("a chat member that pings without reading is dropped, not buffered", async () => {
  await using t = await startServer({
    services: [new ChatRoom({ maxBacklog: 64 * 1024 })],
    stallTimeout: 60_000,
  });
  using pinger = await rawConnect(t.address);
  await send(pinger, helloFrame("chat", { name: "pinger" }));
  const ping = messageFrame(MessageType.Ping, new Uint8Array(16 * 1024));
  const burst = new Uint8Array(Array(64).fill([...ping]).flat()); // 1 MiB of PINGs
  let sent = 0;
  try {
    // Bounded: 64 MiB at most; the server must drop the member long before.
    while (sent < 64 * 1024 * 1024 && !t.events.some((e) => e.type === "closed")) {
      await send(pinger, burst);
      sent += burst.length;
    }
  } catch {
    // The server closed the connection: expected.
  }
  await waitFor(
    () => t.events.some((e) => e.type === "closed" && e.reason === "slow_consumer"),
    5000,
    () => `a close for slow_consumer (events: ${JSON.stringify(t.events)})`,
  );
});

Deno.test("an event handler that throws does not take the server down", async () => {
  let calls = 0;
  await using t = await startServer({
    onEvent: (_event: ServerEvent) => {
      calls++;
      throw new Deno.errors.BrokenPipe("log pipe closed");
    },
  });
  for (let i = 0; i < 3; i++) {
    await using session = await connect(t.address);
    await session.send(MessageType.Data, text.encode("still serving"));
    deepEqual((await session.read())?.type, MessageType.Data);
  }
  ok(calls > 3);
  await t.server.shutdown();
  deepEqual(t.server.connections, 0);
});

Deno.test("a reply followed by a PONG is printed without waiting for more", async () => {
  // The fake holds the connection open (nothing more arrives, not even EOF)
  // until the test has seen the reply printed or given up waiting for it.
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const fake = fakeServer(WELCOME, async (conn) => {
    await new FrameReader(conn).read(); // the line
    const reply = messageFrame(MessageType.Data, text.encode("hello"));
    const pong = messageFrame(MessageType.Pong);
    await send(conn, new Uint8Array([...reply, ...pong]));
    await released;
  });
  await using session = await connect(fake.address, { keepalive: false });
  let printed = "";
  const lineSent = { done: false };
  const input = {
    read(p: Uint8Array) {
      if (lineSent.done) return new Promise<null>(() => {}); // stdin stays open
      lineSent.done = true;
      p.set(text.encode("hello\n"));
      return Promise.resolve(6);
    },
  };
  const running = echoLines(session, {
    input,
    output: {
      write(p) {
        printed += new TextDecoder().decode(p);
        return Promise.resolve(p.length);
      },
    },
  }).catch((error) => error);
  try {
    await waitFor(
      () => printed === "hello\n",
      250,
      () => `"hello\\n" to be printed (printed ${JSON.stringify(printed)})`,
    );
  } finally {
    release();
    await fake.done;
    await running;
    fake.listener.close();
  }
});

Deno.test("a client waiting on a silent server gives up after the idle period", async () => {
  const fake = fakeServer(WELCOME, async (conn) => {
    // Answer nothing, not even PINGs, until the client hangs up.
    const buf = new Uint8Array(1024);
    while (await conn.read(buf).catch(() => null) !== null);
  });
  await using session = await connect(fake.address);
  const started = performance.now();
  await rejects(
    session.read(),
    (error) => error instanceof ProtocolError && error.code === "idle_timeout",
  );
  ok(performance.now() - started < 2000);
  session.close();
  await fake.done;
  fake.listener.close();
});
