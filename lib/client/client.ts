/**
 * The sockit client: connect, run the handshake, then exchange messages.
 *
 * @module
 */

import { closeQuietly } from "../net/_close.ts";
import { type Address, formatAddress, parseAddress } from "../net/address.ts";
import { computeProof, createNonce, verifyProof } from "../protocol/auth.ts";
import { ProtocolError, RemoteError } from "../protocol/errors.ts";
import { FrameTooLargeError } from "../frame/frame.ts";
import { FrameReader, FrameWriter } from "../frame/frame_io.ts";
import {
  bytesField,
  decodeControl,
  encodeControl,
  MessageType,
  parseWelcome,
  PROTOCOL_NAME,
  SUPPORTED_VERSIONS,
  type Welcome,
} from "../protocol/protocol.ts";
import { isConnectionError, typeByte } from "../protocol/session.ts";
import { connectTls, type TlsClientOptions, TlsVerifyError } from "../tls/tls_client.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /** The service to ask for. @default {"echo"} */
  service?: string;
  /** The shared token, when the server requires one. @default {undefined} */
  token?: string | undefined;
  /**
   * Whether a server that does not ask for the token is refused. Holding a
   * token, the client normally insists that the server prove it too (a
   * server that skips the challenge is not the one the token belongs to);
   * `false` offers the token only to a server that asks, for a token found
   * by looking rather than given for this server.
   * @default {true}
   */
  requireServerProof?: boolean;
  /** Service parameters for the HELLO, such as `{ name }` for chat. @default {{}} */
  params?: Record<string, unknown>;
  /** Milliseconds allowed for the TCP or Unix connect. @default {10000} */
  connectTimeout?: number;
  /**
   * Connect with TLS and verify the server as this says (`true`: by the
   * system's CA roots). Ignored for Unix sockets.
   * @default {undefined}
   */
  tls?: TlsClientOptions | boolean | undefined;
  /** Milliseconds allowed for the handshake after connecting. @default {10000} */
  handshakeTimeout?: number;
  /** Largest frame payload accepted from the server. @default {8388608} */
  maxFrame?: number;
  /**
   * Send PINGs so that an idle session outlives the server's idle timeout,
   * and close the session when the server answers nothing for its whole idle
   * period.
   *
   * @default {true}
   */
  keepalive?: boolean;
  /** Cancels connecting and the handshake; it never closes an established session. */
  signal?: AbortSignal | undefined;
}

/** A message received from the server. */
export interface Message {
  /** The message type byte. */
  type: number;
  /** The bytes after the type byte; a view valid until the next read. */
  body: Uint8Array;
}

/**
 * Thrown when the connection or the handshake cannot be established.
 *
 * @example Read the address from the error
 * ```ts
 * import { ConnectError } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const error = new ConnectError("127.0.0.1:9", "connection refused");
 * deepEqual(error.message, 'Cannot connect to "127.0.0.1:9": connection refused');
 * ```
 */
export class ConnectError extends Error {
  /** The address as text. */
  readonly address: string;

  /**
   * Creates a `ConnectError`.
   *
   * @param address the address as text
   * @param reason what went wrong
   * @param options the original error as `cause`
   */
  constructor(address: string, reason: string, options?: ErrorOptions) {
    super(`Cannot connect to "${address}": ${reason}`, options);
    this.name = "ConnectError";
    this.address = address;
  }
}

const CLIENT_MAX_FRAME = 8 * 1024 * 1024;

/**
 * A client's established session.
 *
 * @example Echo one frame (needs a running server)
 * ```ts ignore
 * await using session = await connect("127.0.0.1:7070");
 * await session.send(MessageType.Data, new TextEncoder().encode("hi"));
 * const reply = await session.read();
 * ```
 */
export class ClientSession implements AsyncDisposable {
  /** The connection. */
  readonly conn: Deno.Conn;
  /** The server's WELCOME. */
  readonly welcome: Welcome;
  /** Reads frames from the server. */
  readonly reader: FrameReader;
  /** Batches frames to the server. */
  readonly writer: FrameWriter;
  #keepalive = false;
  #lastSent = performance.now();
  #pinging = true;
  #closed = false;
  #failure: ProtocolError | undefined;
  /** `performance.now()` when the pending read began, or -1 when none is pending. */
  #readSince = -1;

  /** Use {@linkcode connect}. */
  constructor(
    conn: Deno.Conn,
    reader: FrameReader,
    writer: FrameWriter,
    welcome: Welcome,
    keepalive: boolean,
  ) {
    this.conn = conn;
    this.reader = reader;
    this.writer = writer;
    this.welcome = welcome;
    // Ping three times per server idle period; a server that has answered
    // nothing for a whole period is gone (the client's own deadline). A
    // server that announces a stall timeout ends a session whose writes are
    // blocked only while the peer is silent too, so ping within that as
    // well: a client that pauses reading (its own output blocked) stays.
    const period = Math.min(welcome.idleTimeout || Infinity, welcome.stallTimeout ?? Infinity);
    if (keepalive && period !== Infinity) {
      const every = Math.max(50, Math.floor(period / 3));
      const deadline = welcome.idleTimeout > 0 ? Math.max(150, welcome.idleTimeout) : Infinity;
      let lastRead = performance.now();
      let seen = reader.bytesRead;
      const tick = () => {
        const now = performance.now();
        if (reader.bytesRead !== seen) {
          seen = reader.bytesRead;
          lastRead = now;
        }
        // Only a read that waits counts: a caller that does not read for a
        // while must not make the server look dead.
        const waiting = this.#readSince >= 0 ? now - Math.max(lastRead, this.#readSince) : 0;
        if (waiting > deadline) {
          this.#fail(
            new ProtocolError(
              "idle_timeout",
              `Cannot continue session: no answer from the server for ${deadline} ms`,
              { idleTimeout: deadline },
            ),
          );
        } else if (this.#pinging && now - this.#lastSent >= every) {
          this.send(MessageType.Ping).catch(() => this.#stopKeepalive());
        }
      };
      // A chain of AbortSignal.timeout ticks rather than setInterval: it
      // never keeps the process alive, needs no clearing, and costs a
      // one-shot CLI run nothing at start-up (see open()).
      this.#keepalive = true;
      const arm = () => {
        AbortSignal.timeout(every).addEventListener("abort", () => {
          if (!this.#keepalive) return;
          tick();
          if (this.#keepalive) arm();
        }, { once: true });
      };
      arm();
    }
  }

  #stopKeepalive(): void {
    this.#keepalive = false;
  }

  #fail(error: ProtocolError): void {
    this.#failure = error;
    this.close();
  }

  /**
   * Reads the next message; PONGs are consumed here.
   *
   * @returns the message, or `null` when the server closed the session
   * @throws {RemoteError} when the server sends an ERROR
   * @throws {FrameTooLargeError} when the server sends an oversize frame
   */
  async read(): Promise<Message | null> {
    for (;;) {
      let payload: Uint8Array | null;
      this.#readSince = performance.now();
      try {
        payload = await this.reader.read();
      } catch (error) {
        throw this.#failure ?? error;
      } finally {
        this.#readSince = -1;
      }
      if (payload === null) return null;
      const type = payload[0];
      if (type === undefined) {
        throw new ProtocolError("bad_message", "Cannot read message: empty frame from server");
      }
      if (type === MessageType.Pong) continue;
      if (type === MessageType.Error) throw remoteError(payload);
      return { type, body: payload.subarray(1) };
    }
  }

  /**
   * Sends one message and writes everything batched.
   *
   * @param type the message type
   * @param body the bytes after the type byte
   */
  async send(type: number, body?: Uint8Array): Promise<void> {
    this.writer.frame(typeByte(type), body);
    this.#lastSent = performance.now();
    await this.writer.flush();
  }

  /**
   * Whether a message other than a PONG is already buffered, so that the
   * next {@linkcode ClientSession.read} returns without waiting for I/O.
   */
  get hasMessage(): boolean {
    const next = this.reader.peek();
    return next !== undefined && next[0] !== MessageType.Pong;
  }

  /**
   * Shuts down the write side: the server sees the end of the stream. The
   * client's deadline on the server's answers stays in force.
   */
  async closeWrite(): Promise<void> {
    this.#pinging = false;
    await this.writer.flush();
    await this.conn.closeWrite();
  }

  /** Closes the session. Later calls do nothing. */
  close(): void {
    this.#stopKeepalive();
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.conn);
  }

  /** Closes the session. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

function remoteError(payload: Uint8Array): RemoteError {
  const body = decodeControl(payload);
  const { code, message, ...details } = body;
  return new RemoteError(
    typeof code === "string" ? code : "unknown",
    typeof message === "string" ? message : "Server sent an error without a message",
    details,
  );
}

/** Options for {@linkcode dial}. */
export interface DialOptions {
  /** Milliseconds allowed for the TCP connect. @default {10000} */
  connectTimeout?: number;
  /**
   * Connect with TLS and verify the server as this says (`true`: by the
   * system's CA roots). Ignored for Unix sockets.
   * @default {undefined}
   */
  tls?: TlsClientOptions | boolean | undefined;
  /** Cancels connecting; it never closes an established connection. */
  signal?: AbortSignal | undefined;
}

/**
 * Opens a plain TCP or Unix connection, with no handshake: the first step of
 * {@linkcode connect}, and all that netcat mode needs.
 *
 * @param address `HOST:PORT`, `[IPV6]:PORT`, `unix:PATH`, or a parsed address
 * @param options timeout and cancellation
 * @returns the connection
 * @throws {ConnectError} when the connection is refused, times out or is aborted
 *
 * @example Dial a listener
 * ```ts
 * import { dial } from "@sockit/sockit/client";
 * import { deepEqual } from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using conn = await dial(`127.0.0.1:${listener.addr.port}`);
 * using accepted = await listener.accept();
 * deepEqual(conn.remoteAddr.transport, "tcp");
 * ```
 */
export function dial(address: string | Address, options: DialOptions = {}): Promise<Deno.Conn> {
  const parsed = typeof address === "string" ? parseAddress(address) : address;
  return open(parsed, formatAddress(parsed), options);
}

async function open(address: Address, text: string, options: DialOptions): Promise<Deno.Conn> {
  const limit = options.connectTimeout ?? 10_000;
  // AbortSignal.timeout rather than setTimeout: it never keeps the process
  // alive, and it is measured to start ~8 ms faster in a fresh process,
  // which a one-shot CLI run pays in full.
  const timeout = AbortSignal.timeout(limit);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  try {
    if (address.transport === "unix") {
      // Unix connects complete at once or fail; there is no wait to bound.
      return await Deno.connect({ transport: "unix", path: address.path });
    }
    if (options.tls) {
      return await connectTls(address, { ...(options.tls === true ? {} : options.tls), signal });
    }
    const conn = await Deno.connect({ hostname: address.hostname, port: address.port, signal });
    conn.setNoDelay(true);
    return conn;
  } catch (error) {
    if (error instanceof TlsVerifyError && !signal.aborted) throw error;
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new ConnectError(text, "connection refused", { cause: error });
    }
    if (error instanceof Deno.errors.NotFound && address.transport === "unix") {
      throw new ConnectError(text, "no such socket file", { cause: error });
    }
    if (error instanceof Error && error.message.startsWith("failed to lookup address")) {
      // Deno reports a failed name lookup as a plain Error with resolver text.
      throw new ConnectError(text, "host name not found", { cause: error });
    }
    if (signal.aborted) {
      const why = options.signal?.aborted ? "aborted" : `timed out after ${limit} ms`;
      throw new ConnectError(text, why, { cause: error });
    }
    throw error;
  }
}

/**
 * Connects to a sockit server and runs the handshake.
 *
 * When the server asks for a token, the client proves it with an HMAC over
 * both nonces and checks the server's proof in return; the token itself never
 * crosses the wire.
 *
 * @param address `HOST:PORT`, `[IPV6]:PORT`, `unix:PATH`, or a parsed address
 * @param options service, token, timeouts
 * @returns the established session
 * @throws {ConnectError} when connecting fails or times out
 * @throws {RemoteError} when the server refuses (`busy`, `auth_failed`, …)
 * @throws {ProtocolError} when the server misbehaves, or a token is needed but not given
 *
 * @example Echo a frame through a server on a free port
 * ```ts
 * import { connect, MessageType, serve } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"] });
 * await using session = await connect(server.addrs[0]!);
 * await session.send(MessageType.Data, new TextEncoder().encode("hi"));
 * const reply = await session.read();
 * deepEqual(new TextDecoder().decode(reply?.body), "hi");
 * ```
 */
export async function connect(
  address: string | Address,
  options: ConnectOptions = {},
): Promise<ClientSession> {
  const parsed = typeof address === "string" ? parseAddress(address) : address;
  const text = formatAddress(parsed);
  const conn = await open(parsed, text, options);
  const timeout = options.handshakeTimeout ?? 10_000;
  let timedOut = false;
  const deadline = AbortSignal.timeout(timeout);
  const onTimeout = () => {
    timedOut = true;
    closeQuietly(conn);
  };
  deadline.addEventListener("abort", onTimeout, { once: true });
  const onAbort = () => closeQuietly(conn);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const reader = new FrameReader(conn, { maxFrameLength: options.maxFrame ?? CLIENT_MAX_FRAME });
  const writer = new FrameWriter(conn);
  try {
    const welcome = await handshake(reader, writer, options);
    writer.maxFrameLength = welcome.maxFrame;
    return new ClientSession(conn, reader, writer, welcome, options.keepalive ?? true);
  } catch (error) {
    if (timedOut) throw new ConnectError(text, `handshake timed out after ${timeout} ms`);
    if (options.signal?.aborted) throw new ConnectError(text, "aborted");
    closeQuietly(conn);
    if (
      !options.tls && error instanceof FrameTooLargeError && error.frameLength >>> 24 >= 0x14 &&
      error.frameLength >>> 24 <= 0x17 && (error.frameLength >>> 16 & 0xff) === 0x03
    ) {
      // A TLS record (alert or handshake) where a frame header was expected.
      throw new ConnectError(
        text,
        "the server speaks TLS on this port: connect with TLS (the tls option)",
        {
          cause: error,
        },
      );
    }
    if (isConnectionError(error)) {
      throw new ConnectError(
        text,
        "server closed the connection during the handshake" +
          (options.tls ? "" : " (if it serves TLS, connect with the tls option)"),
        { cause: error },
      );
    }
    throw error;
  } finally {
    deadline.removeEventListener("abort", onTimeout);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function expect(
  reader: FrameReader,
): Promise<{ type: number; body: Record<string, unknown> }> {
  const payload = await reader.read();
  if (payload === null) {
    throw new ProtocolError("bad_handshake", "Cannot start session: server closed the connection");
  }
  if (payload[0] === MessageType.Error) throw remoteError(payload);
  return { type: payload[0] ?? -1, body: decodeControl(payload) };
}

async function handshake(
  reader: FrameReader,
  writer: FrameWriter,
  options: ConnectOptions,
): Promise<Welcome> {
  const service = options.service ?? "echo";
  const clientNonce = createNonce();
  writer.frame(
    encodeControl(MessageType.Hello, {
      protocol: PROTOCOL_NAME,
      versions: [...SUPPORTED_VERSIONS],
      service,
      nonce: clientNonce.toBase64(),
      params: options.params ?? {},
    }),
  );
  await writer.flush();
  let reply = await expect(reader);
  let serverNonce: Uint8Array | undefined;
  if (reply.type === MessageType.Challenge) {
    if (options.token === undefined) {
      throw new ProtocolError(
        "auth_required",
        "Cannot start session: the server requires a token (the token option)",
      );
    }
    if (
      reply.body.auth !== "hmac-sha256" ||
      !SUPPORTED_VERSIONS.includes(reply.body.version as number)
    ) {
      throw new ProtocolError(
        "bad_handshake",
        `Cannot start session: unsupported challenge (auth "${reply.body.auth}", version ${reply.body.version})`,
      );
    }
    serverNonce = bytesField(reply.body, "nonce", 32);
    const proof = await computeProof(options.token, "client", service, serverNonce, clientNonce);
    writer.frame(encodeControl(MessageType.Auth, { proof: proof.toBase64() }));
    await writer.flush();
    reply = await expect(reader);
  }
  if (reply.type !== MessageType.Welcome) {
    throw new ProtocolError(
      "bad_handshake",
      `Cannot start session: expected WELCOME, got message type ${reply.type}`,
    );
  }
  const welcome = parseWelcome(reply.body);
  if (!SUPPORTED_VERSIONS.includes(welcome.version) || welcome.service !== service) {
    throw new ProtocolError(
      "bad_handshake",
      `Cannot start session: server chose version ${welcome.version} and service "${welcome.service}"`,
    );
  }
  const insist = options.requireServerProof !== false || serverNonce !== undefined;
  if (options.token !== undefined && insist) {
    // Holding a token, the client insists that the server prove it too: a
    // server that skips the challenge is not the one the token belongs to.
    if (
      !serverNonce || !welcome.proof ||
      !await verifyProof(options.token, "server", service, serverNonce, clientNonce, welcome.proof)
    ) {
      throw new ProtocolError(
        "auth_failed",
        "Cannot start session: the server could not prove it knows the token",
      );
    }
  }
  return welcome;
}
