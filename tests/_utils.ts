/**
 * Shared fixtures for the socket tests: servers on free loopback ports and
 * raw connections that speak the wire protocol byte by byte.
 */

import {
  type Address,
  computeProof,
  decodeControl,
  encodeControl,
  encodeFrame,
  formatAddress,
  FrameReader,
  MessageType,
  serve,
  type ServeOptions,
  type Server,
  type ServerEvent,
} from "./_lib.ts";

/** A server on a free loopback port, with the events it emitted. */
export interface TestServer extends AsyncDisposable {
  server: Server;
  address: string;
  events: ServerEvent[];
}

/** Starts a server on 127.0.0.1 port 0 with short, test-friendly timeouts. */
export async function startServer(options: ServeOptions = {}): Promise<TestServer> {
  const events: ServerEvent[] = [];
  const server = await serve({
    listen: ["127.0.0.1:0"],
    lingerTime: 200,
    shutdownGrace: 500,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return {
    server,
    address: formatAddress(server.addrs[0]!),
    events,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Opens a raw TCP connection to `address`. */
export function rawConnect(address: string | Address): Promise<Deno.TcpConn> {
  const text = typeof address === "string" ? address : formatAddress(address);
  const [, host, port] = /^\[?(.*?)\]?:(\d+)$/.exec(text)!;
  return Deno.connect({ hostname: host!, port: Number(port) });
}

/** Writes all bytes to a connection. */
export async function send(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

/** The 4-byte header of a frame declaring `length` bytes of payload. */
export function frameHeader(length: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, length);
  return bytes;
}

/** The bytes of a HELLO frame. */
export function helloFrame(
  service = "echo",
  params: Record<string, unknown> = {},
  versions = [1],
): Uint8Array {
  return encodeFrame(
    encodeControl(MessageType.Hello, {
      protocol: "sockit",
      versions,
      service,
      nonce: new Uint8Array(32).fill(7).toBase64(),
      params,
    }),
  );
}

/** The bytes of a frame holding one message of `type` with a raw body. */
export function messageFrame(type: number, body: Uint8Array = new Uint8Array()): Uint8Array {
  const payload = new Uint8Array(1 + body.length);
  payload[0] = type;
  payload.set(body, 1);
  return encodeFrame(payload);
}

/** A decoded message read from a raw connection. */
export interface RawMessage {
  type: number;
  body: Uint8Array;
  json?: Record<string, unknown>;
}

/** Reads every message until the server closes; decodes JSON bodies. */
export async function readUntilClose(conn: Deno.Conn): Promise<RawMessage[]> {
  const reader = new FrameReader(conn, { maxFrameLength: 16 * 1024 * 1024 });
  const messages: RawMessage[] = [];
  for (;;) {
    let payload: Uint8Array | null;
    try {
      payload = await reader.read();
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) break;
      throw error;
    }
    if (payload === null) break;
    messages.push(decode(payload));
  }
  return messages;
}

function decode(payload: Uint8Array): RawMessage {
  const type = payload[0]!;
  const body = payload.slice(1);
  const raw = type === MessageType.Data || type === MessageType.Ping ||
    type === MessageType.Pong || type === MessageType.Stream || type === MessageType.Credit;
  return raw ? { type, body } : { type, body, json: decodeControl(payload) };
}

/** Reads one message. */
export async function readMessage(reader: FrameReader): Promise<RawMessage | null> {
  const payload = await reader.read();
  return payload === null ? null : decode(payload);
}

/** Asserts-friendly: the ERROR body among messages, if any. */
export function errorOf(messages: RawMessage[]): Record<string, unknown> | undefined {
  return messages.find((m) => m.type === MessageType.Error)?.json;
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` every 10 ms until it is true.
 *
 * A wait whose timeout passed silently would let the assertions after it
 * run on a state the test never reached, so running out of time throws.
 *
 * @param check the condition waited for
 * @param ms how long to wait at most
 * @param what the condition in words, for the error (a function is called
 *   at the timeout, to describe the state then)
 * @returns `true`, once `check` holds
 * @throws {Error} when `check` still fails after `ms`
 */
export async function waitFor(
  check: () => boolean,
  ms = 5000,
  what: string | (() => string) = "the condition",
): Promise<true> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) {
      const described = typeof what === "string" ? what : what();
      throw new Error(`Timed out after ${ms} ms waiting for ${described}`);
    }
    await delay(10);
  }
  return true;
}

/**
 * Whether this machine has an IPv6 loopback ([::1] can be bound), for
 * `ignore: !ipv6Loopback()` on the tests that need it.
 *
 * @throws {Deno.errors.NotCapable} without --allow-net for [::1]: a test
 *   set-up mistake, not a missing IPv6
 */
export function ipv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch (error) {
    // No address ::1 (IPv6 disabled on lo), or no IPv6 in the kernel at all.
    const code = (error as { code?: unknown }).code;
    if (code === "EADDRNOTAVAIL" || code === "EAFNOSUPPORT") return false;
    throw error;
  }
}

/**
 * Opens a session by hand, proving `token`, and returns the connection and
 * a reader positioned after WELCOME.
 */
export async function rawSession(
  address: string,
  service: string,
  token: string,
): Promise<{ conn: Deno.TcpConn; reader: FrameReader }> {
  const conn = await rawConnect(address);
  const reader = new FrameReader(conn, { maxFrameLength: 1 << 24 });
  const clientNonce = new Uint8Array(32).fill(9);
  await send(
    conn,
    encodeFrame(encodeControl(MessageType.Hello, {
      protocol: "sockit",
      versions: [1],
      service,
      nonce: clientNonce.toBase64(),
    })),
  );
  const challenge = await readMessage(reader);
  const serverNonce = Uint8Array.fromBase64(challenge!.json!.nonce as string);
  const proof = await computeProof(token, "client", service, serverNonce, clientNonce);
  await send(conn, encodeFrame(encodeControl(MessageType.Auth, { proof: proof.toBase64() })));
  const welcome = await readMessage(reader);
  if (welcome?.type !== MessageType.Welcome) {
    conn.close();
    throw new Error(`expected WELCOME, got ${JSON.stringify(welcome)}`);
  }
  return { conn, reader };
}
