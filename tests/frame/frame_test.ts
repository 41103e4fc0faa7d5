import { deepEqual, ok, rejects, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  encodeFrame,
  FrameDecoderStream,
  FrameEncoderStream,
  FrameReader,
  FrameTooLargeError,
  FrameTruncatedError,
  FrameWriter,
} from "../_lib.ts";
import { concat } from "../_utils.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

/** Cuts `wire` at the given offsets. */
function cut(wire: Uint8Array, at: number[]): Uint8Array[] {
  const points = [...new Set(at.filter((p) => p > 0 && p < wire.length))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, wire.length]) {
    chunks.push(wire.slice(start, point));
    start = point;
  }
  return chunks.filter((c) => c.length > 0);
}

/** Decodes with the stream decoder; payloads are copied as they come. */
async function viaStream(chunks: Uint8Array[], maxFrameLength?: number): Promise<Uint8Array[]> {
  const options = maxFrameLength === undefined ? {} : { maxFrameLength };
  const out: Uint8Array[] = [];
  const stream = ReadableStream.from(chunks).pipeThrough(new FrameDecoderStream(options));
  for await (const payload of stream) out.push(payload.slice());
  return out;
}

/** Decodes with the buffered reader, one chunk per read. */
async function viaReader(chunks: Uint8Array[], maxFrameLength?: number): Promise<Uint8Array[]> {
  let i = 0;
  let rest: Uint8Array | undefined;
  const source = {
    read(p: Uint8Array): Promise<number | null> {
      const chunk = rest ?? chunks[i++];
      if (chunk === undefined) return Promise.resolve(null);
      const n = Math.min(p.length, chunk.length);
      p.set(chunk.subarray(0, n));
      rest = n < chunk.length ? chunk.subarray(n) : undefined;
      return Promise.resolve(n);
    },
  };
  const options = maxFrameLength === undefined
    ? { bufferSize: 8 }
    : { bufferSize: 8, maxFrameLength };
  const reader = new FrameReader(source, options);
  const out: Uint8Array[] = [];
  for (let p; (p = await reader.read()) !== null;) out.push(p.slice());
  return out;
}

const decoders = { FrameDecoderStream: viaStream, FrameReader: viaReader };

const one = encodeFrame(bytes(1, 2, 3));
const two = concat(...[encodeFrame(bytes(9)), encodeFrame(bytes()), encodeFrame(bytes(4, 5))]);

interface Case {
  name: string;
  chunks: Uint8Array[];
  max?: number;
  payloads?: Uint8Array[];
  error?: { type: typeof FrameTooLargeError | typeof FrameTruncatedError; message: RegExp };
}

const cases: Case[] = [
  { name: "header split 1+3", chunks: cut(one, [1]), payloads: [bytes(1, 2, 3)] },
  { name: "header split 2+2", chunks: cut(one, [2]), payloads: [bytes(1, 2, 3)] },
  { name: "header split 3+1", chunks: cut(one, [3]), payloads: [bytes(1, 2, 3)] },
  { name: "payload split from header", chunks: cut(one, [4, 5]), payloads: [bytes(1, 2, 3)] },
  {
    name: "split at every byte",
    chunks: cut(two, [...two.keys()]),
    payloads: [bytes(9), bytes(), bytes(4, 5)],
  },
  {
    name: "several frames in one chunk",
    chunks: [two],
    payloads: [bytes(9), bytes(), bytes(4, 5)],
  },
  { name: "an empty frame alone", chunks: [encodeFrame(bytes())], payloads: [bytes()] },
  { name: "no bytes at all", chunks: [], payloads: [] },
  {
    name: "exactly the maximum",
    chunks: cut(encodeFrame(new Uint8Array(100).fill(6)), [50]),
    max: 100,
    payloads: [new Uint8Array(100).fill(6)],
  },
  {
    name: "the maximum plus one",
    chunks: [encodeFrame(new Uint8Array(101))],
    max: 100,
    error: { type: FrameTooLargeError, message: /payload length 101 exceeds the limit of 100/ },
  },
  {
    name: "a 0xFFFFFFFF header with no payload",
    chunks: [bytes(0xff, 0xff, 0xff, 0xff)],
    error: { type: FrameTooLargeError, message: /payload length 4294967295 exceeds/ },
  },
  {
    name: "EOF inside the header",
    chunks: [bytes(0, 0)],
    error: { type: FrameTruncatedError, message: /stream ended after 2 of 4 header bytes/ },
  },
  {
    name: "EOF inside the payload",
    chunks: [one.subarray(0, 5)],
    error: { type: FrameTruncatedError, message: /stream ended after 1 of 3 payload bytes/ },
  },
  {
    name: "EOF after a whole frame and half a header",
    chunks: [concat(...[one, bytes(0)])],
    error: { type: FrameTruncatedError, message: /after 1 of 4 header bytes/ },
  },
];

for (const [decoderName, decode] of Object.entries(decoders)) {
  Deno.test(`${decoderName} decodes every chunk-boundary case`, async (t) => {
    for (const c of cases) {
      await t.step(c.name, async () => {
        if (c.error) {
          await rejects(() => decode(c.chunks, c.max), c.error.type);
          await rejects(() => decode(c.chunks, c.max), c.error.message);
        } else {
          deepEqual(await decode(c.chunks, c.max), c.payloads);
        }
      });
    }
  });

  Deno.test(`${decoderName} decodes any split of any frame sequence to the same frames`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        async (payloads, points) => {
          const wire = concat(...payloads.map((p) => encodeFrame(p)));
          const chunks = cut(wire, points.map((p) => p % (wire.length + 1)));
          deepEqual(await decode(chunks), payloads);
        },
      ),
      { numRuns: 300 },
    );
  });
}

Deno.test("FrameEncoderStream and FrameDecoderStream round-trip large payloads", async () => {
  const payloads = [new Uint8Array(200_000).fill(1), bytes(2), new Uint8Array(70_000).fill(3)];
  const out: Uint8Array[] = [];
  const stream = ReadableStream.from(payloads)
    .pipeThrough(new FrameEncoderStream())
    .pipeThrough(new FrameDecoderStream());
  for await (const p of stream) out.push(p.slice());
  deepEqual(out, payloads);
});

Deno.test("FrameEncoderStream gives every frame a buffer of its own", async () => {
  const chunks = await Array.fromAsync(
    ReadableStream.from([bytes(1), bytes(2, 3)]).pipeThrough(new FrameEncoderStream()),
  );
  for (const chunk of chunks) deepEqual(chunk.buffer.byteLength, chunk.length);
  // Transferring one chunk's buffer leaves the others intact.
  const first = chunks[0]!.buffer as ArrayBuffer;
  first.transfer();
  deepEqual(first.detached, true);
  deepEqual(chunks[1], bytes(0, 0, 0, 2, 2, 3));
});

Deno.test("FrameEncoderStream rejects a payload longer than maxFrameLength", async () => {
  const stream = ReadableStream.from([new Uint8Array(11)]).pipeThrough(
    new FrameEncoderStream({ maxFrameLength: 10 }),
  );
  await rejects(() => Array.fromAsync(stream), FrameTooLargeError);
});

Deno.test("frame options are validated in the constructor", () => {
  for (const bad of [-1, 1.5, 2 ** 32, NaN]) {
    throws(() => new FrameDecoderStream({ maxFrameLength: bad }), RangeError);
    throws(() => new FrameEncoderStream({ maxFrameLength: bad }), RangeError);
  }
  throws(
    () => new FrameReader({ read: () => Promise.resolve(null) }, { bufferSize: 2 }),
    RangeError,
  );
});

Deno.test("FrameReader grows its buffer only with bytes that arrived", async () => {
  // A header that announces 1 MiB, followed by a trickle of 10 bytes.
  const header = bytes(0, 0x10, 0, 0);
  const chunks = [header, new Uint8Array(10)];
  let i = 0;
  let largest = 0;
  const source = {
    read(p: Uint8Array): Promise<number | null> {
      largest = Math.max(largest, p.length);
      const chunk = chunks[i++];
      if (!chunk) return Promise.resolve(null);
      p.set(chunk);
      return Promise.resolve(chunk.length);
    },
  };
  const reader = new FrameReader(source, { bufferSize: 64, maxFrameLength: 2 ** 20 });
  await rejects(() => reader.read(), FrameTruncatedError);
  deepEqual(largest <= 64, true, `read buffer grew to ${largest} bytes for 14 received`);
});

Deno.test("FrameReader raises its limit after construction", async () => {
  const wire = encodeFrame(new Uint8Array(20));
  let done = false;
  const source = {
    read(p: Uint8Array): Promise<number | null> {
      if (done) return Promise.resolve(null);
      done = true;
      p.set(wire);
      return Promise.resolve(wire.length);
    },
  };
  const reader = new FrameReader(source, { maxFrameLength: 10 });
  reader.maxFrameLength = 20;
  deepEqual((await reader.read())?.length, 20);
});

Deno.test("FrameWriter keeps frames whole and in order when flushes overlap", async () => {
  const written: Uint8Array[] = [];
  const sink = {
    async write(p: Uint8Array): Promise<number> {
      // Completes later, not at once: flushes called meanwhile overlap.
      await Promise.resolve();
      const n = Math.min(3, p.length); // partial writes
      written.push(p.slice(0, n));
      return n;
    },
  };
  const writer = new FrameWriter(sink);
  const flushes: Promise<void>[] = [];
  for (let i = 0; i < 20; i++) {
    writer.frame(bytes(i), new Uint8Array(i).fill(i));
    if (i % 3 === 0) flushes.push(writer.flush());
  }
  flushes.push(writer.flush());
  await Promise.all(flushes);
  const decoded = await viaStream([concat(...written)]);
  deepEqual(
    decoded,
    Array.from({ length: 20 }, (_, i) => concat(...[bytes(i), new Uint8Array(i).fill(i)])),
  );
});

Deno.test("FrameWriter fails every later flush once a write has failed", async () => {
  const broken = new Error("connection reset");
  let release!: () => void;
  const sink = {
    async write(_p: Uint8Array): Promise<number> {
      await new Promise<void>((resolve) => release = resolve);
      throw broken;
    },
  };
  const writer = new FrameWriter(sink);
  writer.frame(bytes(1));
  const first = writer.flush();
  // A second task appends its frame and flushes while the first write runs;
  // its frame leaves with a later batch, which must not be reported sent.
  writer.frame(bytes(2));
  const second = writer.flush();
  release();
  await rejects(() => first, (e) => e === broken);
  await rejects(() => second, (e) => e === broken);
  await rejects(() => writer.flush(), (e) => e === broken);
});

Deno.test("FrameWriter refuses a frame above its limit", () => {
  const writer = new FrameWriter({ write: (p) => Promise.resolve(p.length) }, {
    maxFrameLength: 4,
  });
  throws(() => writer.frame(bytes(1), new Uint8Array(4)), FrameTooLargeError);
  deepEqual(writer.pending, 0);
});

Deno.test("FrameWriter.writeFrame sends a frame built in place, after what was batched", async () => {
  const writes: Uint8Array[] = [];
  const writer = new FrameWriter({
    write: (p) => {
      writes.push(p.slice());
      return Promise.resolve(p.length);
    },
  });
  writer.frame(bytes(1));
  const frame = new Uint8Array(4 + 3);
  frame.set([7, 8, 9], 4);
  await writer.writeFrame(frame);
  const decoded = await viaStream([concat(...writes)]);
  deepEqual(decoded, [bytes(1), bytes(7, 8, 9)]);
  // The caller's buffer went out as it was: no copy.
  deepEqual(writes.length, 2);
  deepEqual(writes[1], bytes(0, 0, 0, 3, 7, 8, 9));
});

Deno.test("FrameReader keeps its grown buffer through a run of large frames", async () => {
  const big = new Uint8Array(600 * 1024).fill(5);
  const wire = concat(...[encodeFrame(big), encodeFrame(big), encodeFrame(bytes(1))]);
  const sizes: number[] = [];
  let at = 0;
  const source = {
    read(p: Uint8Array): Promise<number | null> {
      sizes.push(p.length);
      if (at >= wire.length) return Promise.resolve(null);
      // One frame's worth at most per read, like a socket under load.
      const n = Math.min(p.length, wire.length - at, big.length + 4);
      p.set(wire.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
  const reader = new FrameReader(source, { bufferSize: 1024 });
  deepEqual((await reader.read())?.length, big.length);
  const reads = sizes.length;
  deepEqual((await reader.read())?.length, big.length);
  // The second large frame needed no regrowth from 1 KiB (a dozen reads).
  ok(sizes.length - reads <= 3, `reads for the second frame: ${sizes.slice(reads)}`);
  deepEqual(await reader.read(), bytes(1));
});
