/**
 * The codec: length-prefixed frames, as Web Streams
 * ({@linkcode FrameEncoderStream}, {@linkcode FrameDecoderStream}) and as the
 * fast path that reads into one reusable buffer ({@linkcode FrameReader},
 * {@linkcode FrameWriter}).
 *
 * ```text
 * +--------+--------+--------+--------+----------------
 * | payload length (uint32, big-endian) | payload ...
 * +--------+--------+--------+--------+----------------
 * ```
 *
 * Owns: the 4-byte header and its limits. Imports: nothing — no other part
 * of sockit, no npm package, no `Deno.*` (the layering test checks it), so
 * `@sockit/sockit/frame` loads only these files.
 *
 * Security: keep `maxFrameLength` finite when the peer is untrusted.
 *
 * @example Frames survive any chunking
 * ```ts
 * import { FrameDecoderStream, FrameEncoderStream } from "@sockit/sockit/frame";
 * import { deepEqual } from "node:assert/strict";
 *
 * const payloads = [new Uint8Array([1, 2]), new Uint8Array([3])];
 * const out = await Array.fromAsync(
 *   ReadableStream.from(payloads)
 *     .pipeThrough(new FrameEncoderStream())
 *     .pipeThrough(new FrameDecoderStream()),
 * );
 * deepEqual(out, payloads);
 * ```
 *
 * @module
 */

export {
  DEFAULT_MAX_FRAME_LENGTH,
  encodeFrame,
  FRAME_HEADER_LENGTH,
  FrameDecoderStream,
  FrameEncoderStream,
  type FrameOptions,
  FrameTooLargeError,
  FrameTruncatedError,
  MAX_FRAME_LENGTH_LIMIT,
} from "./frame.ts";
export {
  type ByteReader,
  type ByteWriter,
  FrameReader,
  type FrameReaderOptions,
  FrameWriter,
  writeAll,
} from "./frame_io.ts";
