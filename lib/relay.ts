/**
 * Netcat mode: unframed bytes between local input/output and a socket, with
 * a clean half-close.
 *
 * @module
 */

import { type ByteReader, type ByteWriter, writeAll } from "./frame_io.ts";

/** Options for {@linkcode relay}. */
export interface RelayOptions {
  /** Bytes to send, such as `Deno.stdin`. */
  input: ByteReader;
  /** Where received bytes go, such as `Deno.stdout`. */
  output: ByteWriter;
  /** Size of each copy buffer in bytes. @default {262144} */
  bufferSize?: number;
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
 * Copies `input` to the connection and the connection to `output` at once.
 * At the end of input the write side is shut down (the peer sees EOF) and
 * reading goes on until the peer closes, so a one-shot request still gets its
 * whole reply. Resolves when the peer has closed; input still open then is
 * left unread.
 *
 * @param conn the connection
 * @param options input, output and buffer size
 * @returns the byte counts
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
  let sendError: unknown;
  const sending = copy(options.input, conn, size).then(async (n) => {
    sent = n;
    await conn.closeWrite();
  }).catch((error) => {
    sendError = error;
  });
  const received = await copy(conn, options.output, size);
  // The peer closed: if input ended already, report what was sent.
  await Promise.race([sending, Promise.resolve()]);
  if (sendError !== undefined && !(sendError instanceof Deno.errors.BrokenPipe)) throw sendError;
  return { sent, received };
}
