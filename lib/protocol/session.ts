/**
 * One server-side connection: framed reads and batched writes, activity
 * clocks for the server's timeouts, and the one way a connection ends.
 *
 * @module
 */

import { closeQuietly } from "../net/_close.ts";
import { FrameReader, FrameWriter } from "../frame/frame_io.ts";
import { FrameTooLargeError, FrameTruncatedError, MAX_FRAME_LENGTH_LIMIT } from "../frame/frame.ts";
import { type ErrorDetails, ProtocolError } from "./errors.ts";
import { encodeControl, MessageType } from "./protocol.ts";

/** Limits a {@linkcode Session} starts with. */
export interface SessionOptions {
  /**
   * Largest frame payload accepted before the handshake completes.
   *
   * @default {16384}
   */
  maxHandshakeFrame?: number;
  /**
   * Milliseconds a connection stays open after it was told why it is being
   * closed, so the peer can read the reason before the socket goes away.
   *
   * @default {1000}
   */
  lingerTime?: number;
}

/** Default limit on frames before authentication: 16 KiB. */
export const DEFAULT_MAX_HANDSHAKE_FRAME = 16 * 1024;

/** Bytes a closing connection reads and discards while it lingers. */
const DRAIN_LIMIT = 64 * 1024;

const ONE_BYTE_TYPES: Uint8Array[] = Array.from({ length: 256 }, (_, i) => new Uint8Array([i]));

/**
 * Returns a one-byte array holding `type`, shared and never to be modified;
 * handy as the `head` of {@linkcode FrameWriter.frame}.
 *
 * @param type a message type
 * @returns the shared array
 *
 * @example Frame a DATA message
 * ```ts
 * import { MessageType } from "@sockit/sockit";
 * import { typeByte } from "./session.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(typeByte(MessageType.Pong), new Uint8Array([8]));
 * ```
 */
export function typeByte(type: number): Uint8Array {
  return ONE_BYTE_TYPES[type & 0xff]!;
}

/**
 * Converts what a connection's code threw into the error the peer is told,
 * or `undefined` when the connection itself failed and nothing can be told.
 *
 * @param error what was thrown
 * @returns the error to send, if any
 *
 * @example Classify an oversize frame
 * ```ts
 * import { FrameTooLargeError } from "@sockit/sockit";
 * import { toProtocolError } from "./session.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(toProtocolError(new FrameTooLargeError(99, 10))?.code, "frame_too_large");
 * deepEqual(toProtocolError(new Deno.errors.ConnectionReset("reset")), undefined);
 * ```
 */
export function toProtocolError(error: unknown): ProtocolError | undefined {
  if (error instanceof ProtocolError) return error;
  if (error instanceof FrameTooLargeError) {
    return new ProtocolError("frame_too_large", error.message, {
      frameLength: error.frameLength,
      maxFrameLength: error.maxFrameLength,
    }, { cause: error });
  }
  if (error instanceof FrameTruncatedError) {
    return new ProtocolError("truncated_frame", error.message, {
      received: error.received,
      expected: error.expected,
    }, { cause: error });
  }
  if (isConnectionError(error)) return undefined;
  return new ProtocolError("internal", "Cannot continue session: internal error", {}, {
    cause: error,
  });
}

/**
 * Whether `error` means the connection itself failed or was closed.
 *
 * @param error what was thrown
 * @returns true for resets, broken pipes and closed resources
 *
 * @example A reset is a connection error
 * ```ts
 * import { isConnectionError } from "./session.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(isConnectionError(new Deno.errors.BrokenPipe("gone")), true);
 * deepEqual(isConnectionError(new TypeError("bug")), false);
 * ```
 */
export function isConnectionError(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.TimedOut;
}

/**
 * A server-side connection as services see it.
 *
 * Services read with {@linkcode Session.read}, append replies with
 * `session.writer.frame(…)` and write them with {@linkcode Session.flush}.
 * The server owns the connection: it applies the timeouts through the
 * activity clocks here and ends the connection with {@linkcode Session.abort}
 * or {@linkcode Session.finish}.
 *
 * @example Echo frames with a hand-made session over a socket pair
 * ```ts ignore
 * const session = new Session(conn, 1, "127.0.0.1:50000");
 * for (let p; (p = await session.read()) !== null;) {
 *   session.writer.frame(p);
 *   await session.flush();
 * }
 * await session.finish();
 * ```
 */
export class Session {
  /** The server-assigned connection id. */
  readonly id: number;
  /** The peer's address as text. */
  readonly remote: string;
  /** The underlying connection. */
  readonly conn: Deno.Conn;
  /** Reads frames from the connection. */
  readonly reader: FrameReader;
  /** Batches frames to the connection. */
  readonly writer: FrameWriter;
  /** When bytes were last seen arriving, as of the last {@linkcode Session.noteActivity}. */
  lastRead: number;
  /** When a write last made progress, as of the last {@linkcode Session.noteActivity}. */
  lastWrite: number;
  #seenRead = 0;
  #seenWritten = 0;
  /** `performance.now()` by which the handshake must complete; `Infinity` after it. */
  deadline: number = Infinity;
  /** The service name once the handshake has chosen one. */
  service = "";
  /** Whether the client proved the server's token in the handshake. */
  authenticated = false;
  /** Service parameters from the HELLO. */
  params: Record<string, unknown> = {};
  /** An unexpected error met while closing, kept for the server's log. */
  closeError: unknown;
  readonly #lingerTime: number;
  #reading = false;
  #stopping = false;
  #onStop: (() => void) | undefined;
  #abortError: ProtocolError | undefined;
  #closing: Promise<void> | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * Creates a `Session`.
   *
   * @param conn the accepted connection
   * @param id the connection id
   * @param remote the peer's address as text
   * @param options limits
   */
  constructor(conn: Deno.Conn, id: number, remote: string, options: SessionOptions = {}) {
    this.conn = conn;
    this.id = id;
    this.remote = remote;
    this.#lingerTime = options.lingerTime ?? 1000;
    this.lastRead = this.lastWrite = performance.now();
    this.reader = new FrameReader(conn, {
      maxFrameLength: options.maxHandshakeFrame ?? DEFAULT_MAX_HANDSHAKE_FRAME,
      // Small at rest: most connections are idle most of the time.
      bufferSize: 1024,
    });
    // The server's own frames are bounded by its services (an echo reply is
    // as large as the request), not by the limit on what peers may send.
    this.writer = new FrameWriter(conn, { maxFrameLength: MAX_FRAME_LENGTH_LIMIT });
  }

  /**
   * Records whether bytes moved since the last call, stamping `lastRead` and
   * `lastWrite` with `now` if so. The server calls this from its periodic
   * sweep, so the hot path carries no clock reads; times are as precise as
   * the sweep interval.
   *
   * @param now the current `performance.now()`
   */
  noteActivity(now: number): void {
    const read = this.reader.bytesRead, written = this.writer.bytesWritten;
    if (read !== this.#seenRead) {
      this.#seenRead = read;
      this.lastRead = now;
    }
    if (written !== this.#seenWritten) {
      this.#seenWritten = written;
      this.lastWrite = now;
    }
  }

  /** The error this session was aborted with, if any. */
  get abortError(): ProtocolError | undefined {
    return this.#abortError;
  }

  /** Whether the server asked this session to stop. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Reads the next frame payload (a view valid until the next read).
   *
   * @returns the payload, or `null` when the peer closed its side cleanly
   * @throws {ProtocolError} the abort reason once the session is aborted or stopping
   * @throws {FrameTooLargeError} when the peer declares an oversize frame
   * @throws {FrameTruncatedError} when the peer ends inside a frame
   */
  async read(): Promise<Uint8Array | null> {
    this.#checkOpen();
    this.#reading = true;
    try {
      const payload = await this.reader.read();
      // Aborted while waiting: the peer has been told; nothing more is served.
      // (A stop request is honoured before the next read instead, so that a
      // frame that completes during shutdown still gets its answer.)
      if (this.#abortError) throw this.#abortError;
      return payload;
    } finally {
      this.#reading = false;
    }
  }

  #checkOpen(): void {
    if (this.#abortError) throw this.#abortError;
    if (this.#stopping && !this.#onStop && !this.reader.hasFrame) {
      throw new ProtocolError("shutting_down", "Cannot continue session: server is shutting down");
    }
  }

  /** Writes every frame appended to {@linkcode Session.writer}. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /**
   * Appends one control message and writes it with everything batched.
   *
   * @param type the message type
   * @param body the JSON body
   */
  sendControl(type: number, body: Record<string, unknown>): Promise<void> {
    this.writer.frame(encodeControl(type as MessageType, body));
    return this.flush();
  }

  /**
   * Lets a service that runs long work (a command, say) handle a stop
   * request itself instead of being told to shut down between frames: while
   * a handler is set, {@linkcode Session.stop} calls it and reads go on.
   * Pass `undefined` to go back to the default.
   *
   * @param handler called once when the server asks the session to stop
   */
  onStop(handler: (() => void) | undefined): void {
    this.#onStop = handler;
    if (handler && this.#stopping) handler();
  }

  /**
   * Asks the session to stop: an idle session is told at once that the
   * server is shutting down; a busy one finishes the frames it holds first;
   * a service that set {@linkcode Session.onStop} is left to end its work.
   */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#onStop) {
      // The service does long-running work and ends it its own way.
      this.#onStop();
      return;
    }
    if (this.#reading && this.reader.buffered === 0) {
      this.abort(
        new ProtocolError("shutting_down", "Cannot continue session: server is shutting down"),
      );
    }
  }

  /**
   * Tells the peer why the session ends and starts closing it. The ERROR
   * message follows anything already batched, the write side is then shut
   * down, and the connection is closed at the latest after the linger time.
   * Later calls do nothing.
   *
   * @param error the reason sent to the peer
   */
  abort(error: ProtocolError): void {
    if (this.#abortError || this.#closed) return;
    this.#abortError = error;
    this.#lingerTimer = setTimeout(() => this.#close(), this.#lingerTime);
    this.writer.frame(
      encodeControl(MessageType.Error, {
        code: error.code,
        message: error.message,
        ...error.details,
      }),
    );
    this.#closing = this.#shutdownWrite();
  }

  /**
   * Ends the session: writes what is batched, shuts down the write side, reads
   * and discards what the peer still sends (bounded in bytes and time) so
   * that the peer sees a clean close rather than a reset, then closes.
   */
  async finish(): Promise<void> {
    if (this.#closed) return;
    if (!this.#closing) {
      this.#lingerTimer = setTimeout(() => this.#close(), this.#lingerTime);
      this.#closing = this.#shutdownWrite();
    }
    try {
      await this.#closing;
      const scratch = new Uint8Array(4096);
      let drained = this.reader.buffered;
      while (!this.#closed && drained < DRAIN_LIMIT) {
        const n = await this.conn.read(scratch);
        if (n === null) break;
        drained += n;
      }
    } catch (error) {
      if (!isConnectionError(error)) throw error;
    } finally {
      this.#close();
    }
  }

  /** Writes what is batched, then half-closes; never rejects. */
  async #shutdownWrite(): Promise<void> {
    try {
      await this.flush();
      await this.conn.closeWrite();
    } catch (error) {
      // The peer may be gone or stalled; closing goes on either way, and the
      // linger timer bounds it. Anything else is a bug worth surfacing.
      if (!isConnectionError(error)) this.closeError = error;
    }
  }

  /** Closes the connection now. */
  #close(): void {
    clearTimeout(this.#lingerTimer);
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.conn);
  }

  /** Closes the connection at once, without telling the peer. */
  destroy(): void {
    this.#close();
  }

  /** Values for log lines about this session. */
  describe(): ErrorDetails {
    return { id: this.id, remote: this.remote, service: this.service };
  }
}
