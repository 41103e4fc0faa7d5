/**
 * Netcat mode: unframed bytes between local input/output and a socket, with
 * a clean half-close.
 *
 * @module
 */

import { type ByteReader, type ByteWriter, writeAll } from "../frame/frame_io.ts";

/** Options for {@linkcode relay}. */
export interface RelayOptions {
  /** Bytes to send, such as `Deno.stdin`. */
  input: ByteReader;
  /** Where received bytes go, such as `Deno.stdout`. */
  output: ByteWriter;
  /** Size of each copy buffer in bytes. @default {262144} */
  bufferSize?: number;
  /**
   * After the peer closes, keep sending until the input ends. Turn off for
   * interactive input, where the user expects to be done when the peer is.
   *
   * @default {true}
   */
  waitForInput?: boolean;
}

/** Byte counts moved by {@linkcode relay}. */
export interface RelayResult {
  /** Bytes read from input and written to the socket. */
  sent: number;
  /** Bytes read from the socket and written to output. */
  received: number;
}

async function copy(from: ByteReader, to: ByteWriter, size: number): Promise<number> {
  const buf = new Uint8Array(size);
  let total = 0;
  for (;;) {
    const n = await from.read(buf);
    if (n === null) return total;
    await writeAll(to, buf.subarray(0, n));
    total += n;
  }
}

/**
 * Thrown by {@linkcode relay} when the peer closed before all input could be
 * delivered.
 *
 * @example Read the counts
 * ```ts
 * import { RelayIncompleteError } from "@sockit/sockit/client";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(new RelayIncompleteError(10).sent, 10);
 * ```
 */
export class RelayIncompleteError extends Error {
  /** Bytes that were delivered before the peer closed. */
  readonly sent: number;

  /**
   * Creates a `RelayIncompleteError`.
   *
   * @param sent bytes delivered before the peer closed
   * @param options the original error as `cause`
   */
  constructor(sent: number, options?: ErrorOptions) {
    super(`Cannot send all input: the peer closed the connection after ${sent} bytes`, options);
    this.name = "RelayIncompleteError";
    this.sent = sent;
  }
}

/**
 * Copies `input` to the connection and the connection to `output` at once.
 * At the end of input the write side is shut down (the peer sees EOF) and
 * reading goes on until the peer closes, so a one-shot request still gets its
 * whole reply. A peer that only half-closes keeps receiving input until it
 * ends; a peer that closes for good before the input ends is an error.
 *
 * With `waitForInput: false` (interactive input, such as a terminal), the
 * relay ends as soon as the peer closes, leaving unread input unread.
 *
 * @param conn the connection
 * @param options input, output and buffer size
 * @returns the byte counts
 * @throws {RelayIncompleteError} when the peer closed before all input was delivered
 *
 * @example Talk to an upper-casing server
 * ```ts ignore
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 9999 });
 * const { received } = await relay(conn, { input: Deno.stdin, output: Deno.stdout });
 * ```
 */
export async function relay(conn: Deno.Conn, options: RelayOptions): Promise<RelayResult> {
  const size = options.bufferSize ?? 256 * 1024;
  let sent = 0;
  const counting: ByteWriter = {
    async write(p) {
      const n = await conn.write(p);
      sent += n;
      return n;
    },
  };
  const sending = copy(options.input, counting, size).then(() => conn.closeWrite());
  let sendError: unknown;
  const sendSettled = sending.catch((error) => {
    sendError = error;
  });
  const received = await copy(conn, options.output, size);
  if (options.waitForInput ?? true) await sendSettled;
  if (sendError !== undefined) {
    if (
      sendError instanceof Deno.errors.BrokenPipe ||
      sendError instanceof Deno.errors.ConnectionReset
    ) {
      throw new RelayIncompleteError(sent, { cause: sendError });
    }
    throw sendError;
  }
  return { sent, received };
}
