/**
 * Codec throughput: {@linkcode FrameDecoderStream} and {@linkcode FrameReader}
 * decoding, {@linkcode FrameEncoderStream} and {@linkcode FrameWriter}
 * encoding, for 64 B, 4 KiB and 64 KiB payloads.
 *
 * Every iteration moves exactly 1 MiB of payload, so the `iter/s` column of
 * `deno bench` reads directly as MiB/s; `bench/run.ts` turns the times into
 * GB/s. Encoded input arrives in 64 KiB chunks, the size of one socket read
 * on `conn.readable`, so large frames straddle chunks as they do on the wire.
 *
 * ```sh
 * deno bench bench/codec_bench.ts
 * ```
 *
 * @module
 */

import {
  type ByteReader,
  encodeFrame,
  FRAME_HEADER_LENGTH,
  FrameDecoderStream,
  FrameEncoderStream,
  FrameReader,
  FrameWriter,
} from "../lib/frame/mod.ts";
import { BYTES_PER_ITERATION, PAYLOAD_SIZES } from "./_codec_cases.ts";

/** Size of the chunks the encoded bytes are delivered in, like socket reads. */
const CHUNK_SIZE = 64 * 1024;

/** Bytes `FrameWriter` batches before each flush, as a busy server would. */
const WRITE_BATCH = 64 * 1024;

interface Fixture {
  /** The payloads, `BYTES_PER_ITERATION` bytes in all. */
  payloads: Uint8Array[];
  /** The same payloads encoded, in `CHUNK_SIZE` chunks. */
  chunks: Uint8Array[];
  /** Encoded length of all payloads. */
  wireLength: number;
}

function fixture(size: number): Fixture {
  const count = BYTES_PER_ITERATION / size;
  const payload = Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff);
  const payloads = Array.from({ length: count }, () => payload);
  const wire = new Uint8Array(count * (FRAME_HEADER_LENGTH + size));
  const frame = encodeFrame(payload);
  for (let at = 0; at < wire.length; at += frame.length) wire.set(frame, at);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < wire.length; i += CHUNK_SIZE) chunks.push(wire.subarray(i, i + CHUNK_SIZE));
  return { payloads, chunks, wireLength: wire.length };
}

/** Serves `chunks` to `read` calls, copying as a socket read does. */
class ChunkReader implements ByteReader {
  readonly #chunks: readonly Uint8Array[];
  #index = 0;
  #offset = 0;

  constructor(chunks: readonly Uint8Array[]) {
    this.#chunks = chunks;
  }

  read(p: Uint8Array): Promise<number | null> {
    const chunk = this.#chunks[this.#index];
    if (chunk === undefined) return Promise.resolve(null);
    const n = Math.min(p.length, chunk.length - this.#offset);
    p.set(chunk.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    if (this.#offset === chunk.length) {
      this.#index++;
      this.#offset = 0;
    }
    return Promise.resolve(n);
  }
}

/**
 * A stream that holds `items` from the start. Cheaper per item than
 * `ReadableStream.from`, whose per-item promises would dominate 64 B frames.
 */
function streamOf(items: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const item of items) controller.enqueue(item);
      controller.close();
    },
  });
}

async function drainStream(stream: ReadableStream<Uint8Array>): Promise<number> {
  const reader = stream.getReader();
  let bytes = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) bytes += r.value.length;
  return bytes;
}

function expectBytes(what: string, got: number, expected: number): void {
  if (got !== expected) {
    throw new Error(`Cannot trust ${what} result: moved ${got} bytes, expected ${expected}`);
  }
}

/** One codec path: runs one iteration over a fixture. */
interface Codec {
  name: string;
  run(f: Fixture): Promise<void>;
}

const CODECS: readonly Codec[] = [
  {
    name: "FrameDecoderStream",
    async run(f) {
      const bytes = await drainStream(
        streamOf(f.chunks).pipeThrough(new FrameDecoderStream()),
      );
      expectBytes("FrameDecoderStream", bytes, BYTES_PER_ITERATION);
    },
  },
  {
    name: "FrameReader",
    async run(f) {
      const reader = new FrameReader(new ChunkReader(f.chunks));
      let bytes = 0;
      for (let p = await reader.read(); p !== null; p = await reader.read()) bytes += p.length;
      expectBytes("FrameReader", bytes, BYTES_PER_ITERATION);
    },
  },
  {
    name: "FrameEncoderStream",
    async run(f) {
      const bytes = await drainStream(
        streamOf(f.payloads).pipeThrough(new FrameEncoderStream()),
      );
      expectBytes("FrameEncoderStream", bytes, f.wireLength);
    },
  },
  {
    name: "FrameWriter",
    async run(f) {
      let bytes = 0;
      const writer = new FrameWriter({
        write(p) {
          bytes += p.length;
          return Promise.resolve(p.length);
        },
      });
      for (const p of f.payloads) {
        writer.frame(p);
        if (writer.pending >= WRITE_BATCH) await writer.flush();
      }
      await writer.flush();
      expectBytes("FrameWriter", bytes, f.wireLength);
    },
  },
];

for (const { label, size } of PAYLOAD_SIZES) {
  const f = fixture(size);
  for (const codec of CODECS) {
    Deno.bench({
      name: `${codec.name} ${label}`,
      group: label,
      baseline: codec === CODECS[0],
      // Must be an async function: `deno bench` awaits only those.
      async fn() {
        await codec.run(f);
      },
    });
  }
}
