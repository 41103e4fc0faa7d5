/**
 * Length-prefixed framing as Web Streams.
 *
 * Every frame on the wire is a 4-byte unsigned big-endian payload length
 * followed by exactly that many payload bytes:
 *
 * ```text
 * +---------------+---------------+---------------+---------------+------------------
 * |              payload length (uint32, big-endian)              |  payload ...
 * +---------------+---------------+---------------+---------------+------------------
 *   byte 0          byte 1          byte 2          byte 3          length bytes
 * ```
 *
 * A TCP stream has no message boundaries: one `read` may return half a
 * header, or several frames glued together (the "sticky packet" problem of
 * naive socket code). The decoder here is correct under any chunking.
 *
 * Security: keep `maxFrameLength` finite when the peer is untrusted. The
 * declared length is checked against it before any byte of the payload is
 * buffered, and the declared length is never allocated up front: memory grows
 * only with bytes that actually arrived.
 *
 * @module
 */

/** Number of bytes in a frame header. */
export const FRAME_HEADER_LENGTH = 4;

/** Largest payload length the 4-byte header can express (4 GiB - 1). */
export const MAX_FRAME_LENGTH_LIMIT = 0xffff_ffff;

/** Default `maxFrameLength`: 1 MiB. */
export const DEFAULT_MAX_FRAME_LENGTH = 1024 * 1024;

/** Payloads up to this size are copied behind their header into one chunk. */
const COALESCE_LIMIT = 64 * 1024;

/** Options shared by the frame encoder and decoder. */
export interface FrameOptions {
  /**
   * Largest payload, in bytes, that is accepted (decoder) or produced
   * (encoder). Must be an integer from 0 to 4,294,967,295.
   *
   * @default {1048576}
   */
  maxFrameLength?: number;
}

/**
 * Thrown when a frame's payload length is above `maxFrameLength`.
 *
 * @example Inspect the values carried by the error
 * ```ts
 * import { FrameTooLargeError } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const error = new FrameTooLargeError(70_000, 65_536);
 * deepEqual(error.frameLength, 70_000);
 * deepEqual(error.maxFrameLength, 65_536);
 * deepEqual(error instanceof RangeError, true);
 * ```
 */
export class FrameTooLargeError extends RangeError {
  /** The payload length that was declared or offered. */
  readonly frameLength: number;
  /** The limit in force. */
  readonly maxFrameLength: number;

  /**
   * Creates a `FrameTooLargeError`.
   *
   * @param frameLength the payload length that was declared or offered
   * @param maxFrameLength the limit in force
   */
  constructor(frameLength: number, maxFrameLength: number) {
    super(
      `Cannot accept frame: payload length ${frameLength} exceeds the limit of ${maxFrameLength} bytes`,
    );
    this.name = "FrameTooLargeError";
    this.frameLength = frameLength;
    this.maxFrameLength = maxFrameLength;
  }
}

/**
 * Thrown when a byte stream ends inside a frame (in its header or payload).
 *
 * @example Inspect the values carried by the error
 * ```ts
 * import { FrameTruncatedError } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const error = new FrameTruncatedError("header", 2, 4);
 * deepEqual(error.message, "Cannot decode frame: stream ended after 2 of 4 header bytes");
 * ```
 */
export class FrameTruncatedError extends Error {
  /** Which part of the frame the stream ended in. */
  readonly part: "header" | "payload";
  /** Bytes of that part that did arrive. */
  readonly received: number;
  /** Bytes of that part that were expected. */
  readonly expected: number;

  /**
   * Creates a `FrameTruncatedError`.
   *
   * @param part which part of the frame the stream ended in
   * @param received bytes of that part that arrived
   * @param expected bytes of that part that were expected
   */
  constructor(part: "header" | "payload", received: number, expected: number) {
    super(`Cannot decode frame: stream ended after ${received} of ${expected} ${part} bytes`);
    this.name = "FrameTruncatedError";
    this.part = part;
    this.received = received;
    this.expected = expected;
  }
}

/**
 * Checks a `maxFrameLength` option and returns it, or the default.
 *
 * @param value the option as given
 * @returns the validated limit
 * @throws {RangeError} when the value is not an integer from 0 to 4,294,967,295
 *
 * @example Resolve the default
 * ```ts
 * import { resolveMaxFrameLength } from "./frame.ts";
 * import { DEFAULT_MAX_FRAME_LENGTH } from "@sockit/sockit/frame";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(resolveMaxFrameLength(undefined), DEFAULT_MAX_FRAME_LENGTH);
 * deepEqual(resolveMaxFrameLength(16), 16);
 * ```
 */
export function resolveMaxFrameLength(value: number | undefined): number {
  const max = value ?? DEFAULT_MAX_FRAME_LENGTH;
  if (!Number.isSafeInteger(max) || max < 0 || max > MAX_FRAME_LENGTH_LIMIT) {
    throw new RangeError(
      `Cannot use maxFrameLength "${value}": expected an integer from 0 to ${MAX_FRAME_LENGTH_LIMIT}`,
    );
  }
  return max;
}

/**
 * Returns the header and payload of one frame as a single new array.
 *
 * @param payload the frame payload
 * @param options limits
 * @returns the encoded frame
 * @throws {FrameTooLargeError} when the payload is longer than `maxFrameLength`
 *
 * @example Encode a three-byte frame
 * ```ts
 * import { encodeFrame } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(encodeFrame(new Uint8Array([7, 8, 9])), new Uint8Array([0, 0, 0, 3, 7, 8, 9]));
 * ```
 */
export function encodeFrame(payload: Uint8Array, options: FrameOptions = {}): Uint8Array {
  const max = resolveMaxFrameLength(options.maxFrameLength);
  if (payload.length > max) throw new FrameTooLargeError(payload.length, max);
  const frame = new Uint8Array(FRAME_HEADER_LENGTH + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, FRAME_HEADER_LENGTH);
  return frame;
}

/**
 * Turns a stream of payloads into a stream of length-prefixed frames.
 *
 * Payloads up to 64 KiB are copied behind their header so that each frame
 * leaves as one chunk (one write on a socket); larger payloads are passed
 * through uncopied after a separate header chunk.
 *
 * @example Encode payloads and collect the bytes
 * ```ts
 * import { FrameEncoderStream } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const chunks = await Array.fromAsync(
 *   ReadableStream.from([new Uint8Array([1]), new Uint8Array([])])
 *     .pipeThrough(new FrameEncoderStream()),
 * );
 * deepEqual(chunks, [new Uint8Array([0, 0, 0, 1, 1]), new Uint8Array([0, 0, 0, 0])]);
 * ```
 */
export class FrameEncoderStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Creates a `FrameEncoderStream`.
   *
   * @param options limits; a payload above `maxFrameLength` errors the stream
   * @throws {RangeError} when `maxFrameLength` is out of range
   */
  constructor(options: FrameOptions = {}) {
    const max = resolveMaxFrameLength(options.maxFrameLength);
    super({
      transform(payload, controller) {
        const length = payload.length;
        if (length > max) throw new FrameTooLargeError(length, max);
        if (length <= COALESCE_LIMIT) {
          // One exact-size buffer per frame: a consumer may transfer or keep
          // any chunk without touching or pinning its neighbours.
          const frame = new Uint8Array(FRAME_HEADER_LENGTH + length);
          frame[0] = length >>> 24;
          frame[1] = (length >>> 16) & 0xff;
          frame[2] = (length >>> 8) & 0xff;
          frame[3] = length & 0xff;
          frame.set(payload, FRAME_HEADER_LENGTH);
          controller.enqueue(frame);
          return;
        }
        const header = new Uint8Array(FRAME_HEADER_LENGTH);
        new DataView(header.buffer).setUint32(0, payload.length);
        controller.enqueue(header);
        controller.enqueue(payload);
      },
    });
  }
}

/**
 * Turns a stream of bytes, chunked in any way, into a stream of payloads.
 *
 * A payload that lies wholly inside one input chunk is emitted as a view of
 * that chunk (no copy); a payload split across chunks is assembled once all of
 * its bytes have arrived. The stream errors with {@linkcode FrameTooLargeError}
 * as soon as a header declares a length above `maxFrameLength`, and with
 * {@linkcode FrameTruncatedError} when the input ends inside a frame.
 *
 * @example Decode two frames that arrive glued together and split oddly
 * ```ts
 * import { FrameDecoderStream } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const wire = [new Uint8Array([0, 0]), new Uint8Array([0, 1, 65, 0, 0, 0, 2, 66, 67])];
 * const payloads = await Array.fromAsync(
 *   ReadableStream.from(wire).pipeThrough(new FrameDecoderStream()),
 * );
 * deepEqual(payloads, [new Uint8Array([65]), new Uint8Array([66, 67])]);
 * ```
 */
export class FrameDecoderStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Creates a `FrameDecoderStream`.
   *
   * @param options limits
   * @throws {RangeError} when `maxFrameLength` is out of range
   */
  constructor(options: FrameOptions = {}) {
    const max = resolveMaxFrameLength(options.maxFrameLength);
    const header = new Uint8Array(FRAME_HEADER_LENGTH);
    let headerFilled = 0;
    /** Payload length of the frame in progress, or -1 while reading a header. */
    let expected = -1;
    let pieces: Uint8Array[] = [];
    let piecesLength = 0;

    super({
      transform(chunk, controller) {
        let offset = 0;
        while (offset < chunk.length) {
          if (expected < 0) {
            if (headerFilled === 0 && chunk.length - offset >= FRAME_HEADER_LENGTH) {
              expected = ((chunk[offset]! << 24) >>> 0) + (chunk[offset + 1]! << 16) +
                (chunk[offset + 2]! << 8) + chunk[offset + 3]!;
              offset += FRAME_HEADER_LENGTH;
            } else {
              const take = Math.min(FRAME_HEADER_LENGTH - headerFilled, chunk.length - offset);
              header.set(chunk.subarray(offset, offset + take), headerFilled);
              headerFilled += take;
              offset += take;
              if (headerFilled < FRAME_HEADER_LENGTH) return;
              expected = new DataView(header.buffer).getUint32(0);
              headerFilled = 0;
            }
            if (expected > max) throw new FrameTooLargeError(expected, max);
          }
          const available = chunk.length - offset;
          if (piecesLength === 0 && available >= expected) {
            // Whole payload inside this chunk: emit a view, no copy.
            controller.enqueue(chunk.subarray(offset, offset + expected));
            offset += expected;
            expected = -1;
            continue;
          }
          const take = Math.min(expected - piecesLength, available);
          pieces.push(chunk.subarray(offset, offset + take));
          piecesLength += take;
          offset += take;
          if (piecesLength === expected) {
            // Deliberate copy: the payload was split across chunks.
            const payload = new Uint8Array(expected);
            let at = 0;
            for (const piece of pieces) {
              payload.set(piece, at);
              at += piece.length;
            }
            controller.enqueue(payload);
            pieces = [];
            piecesLength = 0;
            expected = -1;
          }
        }
      },
      flush() {
        if (headerFilled > 0) {
          throw new FrameTruncatedError("header", headerFilled, FRAME_HEADER_LENGTH);
        }
        if (expected >= 0) throw new FrameTruncatedError("payload", piecesLength, expected);
      },
    });
  }
}
