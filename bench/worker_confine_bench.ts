#!/usr/bin/env -S deno run --unstable-worker-options --allow-read --allow-write --allow-sys=statfs
/**
 * What it costs to confine the upload writer in a worker whose Deno
 * permissions cover only the upload directory, compared with writing on
 * the main thread as `UploadStore` does today.
 *
 * Run it with broad rights on purpose (the process may write anywhere; the
 * worker must not), and without `net` or `run` (the escalation check needs a
 * permission the parent lacks):
 *
 * ```sh
 * NO_COLOR=1 DENO_NO_PROMPT=1 deno run --unstable-worker-options \
 *   --allow-read --allow-write --allow-sys=statfs \
 *   bench/worker_confine_bench.ts [--mib 1024] [--runs 3] [--warmup 1] [--window 8] \
 *   [--files 1000] [--early-flush-mib 64] [--in-place] [--dir /tmp] [--json]
 * ```
 *
 * Without `--unstable-worker-options` Deno 2.9.6 ends the process (exit 70)
 * at the first `new Worker(…, { deno: { permissions } })`.
 *
 * `--allow-sys=statfs` is there because the worker is given `sys: ["statfs"]`
 * (the store's free-space check): a worker may not be given anything its
 * parent lacks, and the constructor throws `NotCapable` if asked to.
 *
 * The results are written up in `docs/design/worker_confinement.md`.
 *
 * Bulk: `--mib` MiB (1 MiB chunks, cycled from a 32 MiB pool of random
 * bytes, each chunk its own ArrayBuffer) into one file in a fresh temp
 * directory, SHA-256 through `node:crypto`, an early `syncData` every
 * 64 MiB (`--early-flush-mib`, 0 for none) and a final `sync`, like
 * `PartialUpload.write` and `commit`. Each chunk is first copied once on the
 * main thread, standing in for the socket read that fills `FrameReader`'s
 * buffer; then:
 *
 * - `main`: the copy goes into one reused buffer (like `FrameReader`'s), and
 *   the main thread does `writeSync` + `hash.update` on it;
 * - `transfer`: the copy goes into a fresh ArrayBuffer (as if the reader read
 *   each large payload into a buffer of its own), which is transferred,
 *   `postMessage(buf, [buf])`, to the confined worker;
 * - `recycle`: like `transfer`, but the worker transfers each buffer back
 *   with its acknowledgement and the main thread reuses it: no allocation
 *   per chunk (the reader would have to read large payloads into buffers
 *   it is handed);
 * - `copy`: the copy goes into the reused buffer, which is posted without a
 *   transfer list: structured clone copies it again (and the worker's side
 *   deserialises it into yet another buffer).
 *
 * The worker acknowledges every chunk after writing and hashing it; the main
 * thread keeps at most `--window` chunks unacknowledged. Modes are
 * interleaved within each round (the first mode rotates); each figure is the
 * median of `--runs`, after `--warmup` rounds that are not counted (the first
 * gigabyte written after a while costs the kernel, on this VM, up to 3x
 * more than the next: fresh page-cache pages).
 *
 * On this VM (2 shared cores) the kernel's cost of writing a new 1 GiB file
 * is bimodal: plain `dd bs=1M` of 1 GiB into a new file took 0.4 s of
 * system time in four runs out of six and 2.9–4.1 s in the other two. That
 * noise is larger than the differences measured here. `--in-place`
 * overwrites one file (created by the first run, never truncated) instead,
 * so its pages stay in the page cache and the kernel's share is small and
 * steady: it shows what the modes cost in user space, which is what
 * confinement changes; the default (a new file per run) is what uploads do.
 * "write" MB/s stops the clock when the last chunk is written (page cache),
 * "+fsync" after the final flush. CPU is `process.threadCpuUsage()` (this
 * thread only, so no `/proc` access is needed) and `process.cpuUsage()` (the
 * whole process, all threads), over the run.
 *
 * Small files: `--files` files of 4 KiB, each opened in a partial area,
 * written, `sync`ed and renamed into place, one after another: on the main
 * thread, and in the worker through one request/response message per file.
 * Also the bare round trip of a message to the worker and back.
 *
 * Self-checks, before the measurements: the worker's own view of its
 * permissions (`Deno.permissions.querySync`), a write to a sibling of its
 * directory (expected: `Deno.errors.NotCapable`), what an error looks like
 * after crossing `postMessage`, and a worker asking for `net`, which the
 * process lacks (expected: the constructor throws `NotCapable`).
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { statfsSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";

const MIB = 1024 * 1024;
const POOL_CHUNKS = 32;
let earlyFlushBytes = 64 * MIB;
/** Overwrite one file in place instead of writing a new one per run. */
let inPlace = false;
const SMALL_SIZE = 4096;

/** Requests the main thread sends to the worker. */
type Request =
  | { op: "open"; path: string; earlyFlushBytes: number; inPlace: boolean }
  | { op: "chunk"; data: ArrayBuffer | Uint8Array; giveBack?: boolean }
  | { op: "finish" }
  | { op: "small"; partial: string; final: string; data: Uint8Array }
  | { op: "ping" }
  | { op: "cpu" }
  | { op: "selfcheck"; dir: string; sibling: string };

/** What an error becomes on the way back: `postMessage` keeps neither its class nor its name. */
interface WireError {
  name: string;
  message: string;
  code: string | undefined;
}

/** What the worker answers. */
type Reply =
  | { op: "ok" }
  | { op: "ack"; data?: ArrayBuffer }
  | { op: "cpu"; us: number }
  | { op: "done"; digest: string; workerCpuUs: number }
  | { op: "checked"; result: Record<string, unknown> }
  | { op: "error"; error: WireError };

function toWire(error: unknown): WireError {
  const e = error instanceof Error ? error : new Error(String(error));
  return { name: e.name, message: e.message, code: (e as { code?: string }).code };
}

function threadCpuUs(): number {
  const u = process.threadCpuUsage();
  return u.user + u.system;
}

function processCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

// ---------------------------------------------------------------- worker side

/** The confined writer: the part of `PartialUpload` that touches the disk. */
function workerMain(): void {
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent<Request>) => void) | null;
    postMessage(message: Reply, transfer?: Transferable[]): void;
  };
  let file: Deno.FsFile | undefined;
  let hash: Hash | undefined;
  let unflushed = 0;
  let flushing: Promise<unknown> | undefined;
  let cpuAtOpen = 0;
  // Messages are handled one at a time, in order: a chunk never overtakes
  // the open before it, nor the finish after it.
  let queue: Promise<void> = Promise.resolve();

  async function handle(req: Request): Promise<Reply> {
    switch (req.op) {
      case "open":
        cpuAtOpen = threadCpuUs();
        earlyFlushBytes = req.earlyFlushBytes;
        inPlace = req.inPlace;
        file = Deno.openSync(req.path, {
          write: true,
          create: true,
          truncate: !inPlace,
          mode: 0o600,
        });
        hash = createHash("sha256");
        unflushed = 0;
        return { op: "ok" };
      case "chunk": {
        const bytes = req.data instanceof Uint8Array ? req.data : new Uint8Array(req.data);
        for (let at = 0; at < bytes.length;) at += file!.writeSync(bytes.subarray(at));
        hash!.update(bytes);
        unflushed += bytes.length;
        if (earlyFlushBytes > 0 && unflushed >= earlyFlushBytes && flushing === undefined) {
          unflushed = 0;
          flushing = file!.syncData().catch(() => {}).finally(() => flushing = undefined);
        }
        if (req.giveBack && req.data instanceof ArrayBuffer) return { op: "ack", data: req.data };
        return { op: "ack" };
      }
      case "finish": {
        await flushing;
        await file!.sync();
        file!.close();
        file = undefined;
        return { op: "done", digest: hash!.digest("hex"), workerCpuUs: threadCpuUs() - cpuAtOpen };
      }
      case "small": {
        const f = Deno.openSync(req.partial, {
          write: true,
          create: true,
          truncate: true,
          mode: 0o600,
        });
        try {
          for (let at = 0; at < req.data.length;) at += f.writeSync(req.data.subarray(at));
          await f.sync();
        } finally {
          f.close();
        }
        Deno.renameSync(req.partial, req.final);
        return { op: "ok" };
      }
      case "ping":
        return { op: "ok" };
      case "cpu":
        return { op: "cpu", us: threadCpuUs() };
      case "selfcheck":
        return { op: "checked", result: selfCheck(req.dir, req.sibling) };
    }
  }

  scope.onmessage = (event) => {
    const req = event.data;
    queue = queue.then(async () => {
      let reply: Reply;
      try {
        reply = await handle(req);
      } catch (error) {
        reply = { op: "error", error: toWire(error) };
      }
      scope.postMessage(reply, reply.op === "ack" && reply.data ? [reply.data] : []);
    });
  };
}

function selfCheck(dir: string, sibling: string): Record<string, unknown> {
  const q = (d: Deno.PermissionDescriptor) => Deno.permissions.querySync(d).state;
  const attempt = (f: () => void) => {
    try {
      f();
      return "succeeded";
    } catch (error) {
      return `${(error as Error).constructor.name}: ${(error as Error).message}`;
    }
  };
  let crossed: unknown;
  try {
    Deno.writeTextFileSync(sibling, "escaped");
  } catch (error) {
    crossed = error;
  }
  return {
    query: {
      "write <dir>": q({ name: "write", path: dir }),
      "write <sibling>": q({ name: "write", path: sibling }),
      "write (all)": q({ name: "write" }),
      "read <dir>": q({ name: "read", path: dir }),
      "read /etc": q({ name: "read", path: "/etc" }),
      "sys statfs": q({ name: "sys", kind: "statfs" }),
      "net": q({ name: "net" }),
      "run": q({ name: "run" }),
      "env": q({ name: "env" }),
      "ffi": q({ name: "ffi" }),
      "import": q({ name: "import" }),
    },
    "write inside <dir>": attempt(() => Deno.writeTextFileSync(`${dir}/selfcheck.txt`, "ok")),
    "write to <sibling>": attempt(() => Deno.writeTextFileSync(sibling, "escaped")),
    "read /etc/hostname": attempt(() => Deno.readTextFileSync("/etc/hostname")),
    "statfs <dir>": attempt(() => statfsSync(dir)),
    "request write (all)": Deno.permissions.requestSync({ name: "write" }).state,
    // The raw error, cloned by postMessage: arrives as a plain Error.
    crossed,
  };
}

// ------------------------------------------------------------------ main side

/** The main thread's end of the worker: one request at a time, or a window of chunks. */
class WorkerClient {
  readonly worker: Worker;
  readonly #waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];

  constructor(worker: Worker) {
    this.worker = worker;
    worker.onmessage = (event: MessageEvent<Reply>) => {
      const next = this.#waiting.shift();
      if (!next) throw new Error("Cannot match a reply from the worker: nothing was asked");
      const reply = event.data;
      if (reply.op === "error") {
        const e = new Error(reply.error.message);
        e.name = reply.error.name;
        next.reject(e);
      } else {
        next.resolve(reply);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      for (const w of this.#waiting.splice(0)) w.reject(new Error(`worker: ${event.message}`));
    };
  }

  get inFlight(): number {
    return this.#waiting.length;
  }

  /** Posts `req` and returns the promise of its reply (replies come in order). */
  send(req: Request, transfer: Transferable[] = []): Promise<Reply> {
    const answer = new Promise<Reply>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
    });
    this.worker.postMessage(req, transfer);
    return answer;
  }
}

type Mode = "main" | "transfer" | "recycle" | "copy";

interface BulkResult {
  mode: Mode;
  writeMs: number;
  totalMs: number;
  mainCpuMs: number;
  processCpuMs: number;
  workerCpuMs: number | undefined;
  digest: string;
}

function makePool(): ArrayBuffer[] {
  const pool: ArrayBuffer[] = [];
  for (let i = 0; i < POOL_CHUNKS; i++) {
    const b = new Uint8Array(MIB);
    for (let at = 0; at < MIB; at += 65536) crypto.getRandomValues(b.subarray(at, at + 65536));
    pool.push(b.buffer);
  }
  return pool;
}

async function bulkMain(path: string, pool: Uint8Array[], chunks: number): Promise<BulkResult> {
  const cpu0 = threadCpuUs(), proc0 = processCpuUs(), t0 = performance.now();
  const reused = new Uint8Array(MIB);
  const file = Deno.openSync(path, { write: true, create: true, truncate: !inPlace, mode: 0o600 });
  const hash = createHash("sha256");
  let unflushed = 0;
  let flushing: Promise<unknown> | undefined;
  for (let i = 0; i < chunks; i++) {
    reused.set(pool[i % POOL_CHUNKS]!); // the socket read
    for (let at = 0; at < reused.length;) at += file.writeSync(reused.subarray(at));
    hash.update(reused);
    unflushed += reused.length;
    if (earlyFlushBytes > 0 && unflushed >= earlyFlushBytes && flushing === undefined) {
      unflushed = 0;
      flushing = file.syncData().catch(() => {}).finally(() => flushing = undefined);
    }
    // The real service awaits the next frame here: let the loop turn.
    if ((i & 7) === 7) await Promise.resolve();
  }
  const t1 = performance.now();
  await flushing;
  await file.sync();
  file.close();
  const digest = hash.digest("hex");
  const t2 = performance.now();
  return {
    mode: "main",
    writeMs: t1 - t0,
    totalMs: t2 - t0,
    mainCpuMs: (threadCpuUs() - cpu0) / 1000,
    processCpuMs: (processCpuUs() - proc0) / 1000,
    workerCpuMs: undefined,
    digest,
  };
}

async function bulkWorker(
  client: WorkerClient,
  mode: "transfer" | "recycle" | "copy",
  path: string,
  pool: Uint8Array[],
  chunks: number,
  window: number,
): Promise<BulkResult> {
  const cpu0 = threadCpuUs(), proc0 = processCpuUs(), t0 = performance.now();
  const reused = new Uint8Array(MIB);
  await client.send({ op: "open", path, earlyFlushBytes, inPlace });
  const acks: Promise<Reply>[] = [];
  const free: ArrayBuffer[] = [];
  for (let i = 0; i < chunks; i++) {
    if (acks.length >= window) {
      const ack = await acks.shift()!;
      if (ack.op === "ack" && ack.data) free.push(ack.data);
    }
    const src = pool[i % POOL_CHUNKS]!;
    if (mode === "recycle") {
      const buf = free.pop() ?? new ArrayBuffer(MIB);
      new Uint8Array(buf).set(src); // the socket read, into a buffer the worker gave back
      acks.push(client.send({ op: "chunk", data: buf, giveBack: true }, [buf]));
    } else if (mode === "transfer") {
      const fresh = new Uint8Array(MIB);
      fresh.set(src); // the socket read, into a buffer of its own
      acks.push(client.send({ op: "chunk", data: fresh.buffer }, [fresh.buffer]));
    } else {
      reused.set(src); // the socket read, into the reused buffer
      acks.push(client.send({ op: "chunk", data: reused }));
    }
  }
  await Promise.all(acks);
  const t1 = performance.now();
  const done = await client.send({ op: "finish" });
  const t2 = performance.now();
  if (done.op !== "done") throw new Error(`Cannot finish: the worker answered ${done.op}`);
  return {
    mode,
    writeMs: t1 - t0,
    totalMs: t2 - t0,
    mainCpuMs: (threadCpuUs() - cpu0) / 1000,
    processCpuMs: (processCpuUs() - proc0) / 1000,
    workerCpuMs: done.workerCpuUs / 1000,
    digest: done.digest,
  };
}

interface SmallResult {
  where: "main" | "worker";
  totalMs: number;
  perFileUs: number[];
  mainCpuMs: number;
  workerCpuMs: number | undefined;
}

async function workerCpuMs(client: WorkerClient): Promise<number> {
  const r = await client.send({ op: "cpu" });
  if (r.op !== "cpu") throw new Error(`Cannot read the worker's CPU time: it answered ${r.op}`);
  return r.us / 1000;
}

async function smallMain(dir: string, files: number, data: Uint8Array): Promise<SmallResult> {
  const perFileUs: number[] = [];
  const cpu0 = threadCpuUs(), t0 = performance.now();
  for (let i = 0; i < files; i++) {
    const s = performance.now();
    const partial = `${dir}/.partial/m${i}.part`;
    const f = Deno.openSync(partial, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      for (let at = 0; at < data.length;) at += f.writeSync(data.subarray(at));
      await f.sync();
    } finally {
      f.close();
    }
    Deno.renameSync(partial, `${dir}/small/m${i}`);
    perFileUs.push((performance.now() - s) * 1000);
  }
  return {
    where: "main",
    totalMs: performance.now() - t0,
    perFileUs,
    mainCpuMs: (threadCpuUs() - cpu0) / 1000,
    workerCpuMs: undefined,
  };
}

async function smallWorker(
  client: WorkerClient,
  dir: string,
  files: number,
  data: Uint8Array,
): Promise<SmallResult> {
  const perFileUs: number[] = [];
  const wcpu0 = await workerCpuMs(client);
  const cpu0 = threadCpuUs(), t0 = performance.now();
  for (let i = 0; i < files; i++) {
    const s = performance.now();
    await client.send({
      op: "small",
      partial: `${dir}/.partial/w${i}.part`,
      final: `${dir}/small/w${i}`,
      data,
    });
    perFileUs.push((performance.now() - s) * 1000);
  }
  const totalMs = performance.now() - t0;
  const mainCpuMs = (threadCpuUs() - cpu0) / 1000;
  return {
    where: "worker",
    totalMs,
    perFileUs,
    mainCpuMs,
    workerCpuMs: await workerCpuMs(client) - wcpu0,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}

function confinedWorker(dir: string): Worker {
  return new Worker(new URL(import.meta.url).href, {
    type: "module",
    name: "upload-writer",
    deno: {
      permissions: {
        read: [dir],
        write: [dir],
        net: false,
        run: false,
        env: false,
        sys: ["statfs"],
        ffi: false,
        import: false,
      },
    },
  });
}

async function main(): Promise<void> {
  const args = parseArgs({
    args: Deno.args,
    options: {
      mib: { type: "string", default: "1024" },
      runs: { type: "string", default: "3" },
      warmup: { type: "string", default: "1" },
      "early-flush-mib": { type: "string", default: "64" },
      "in-place": { type: "boolean", default: false },
      window: { type: "string", default: "8" },
      files: { type: "string", default: "1000" },
      dir: { type: "string", default: "/tmp" },
      json: { type: "boolean", default: false },
    },
  });
  const chunks = Number(args.values.mib);
  const runs = Number(args.values.runs);
  const warmup = Number(args.values.warmup);
  earlyFlushBytes = Number(args.values["early-flush-mib"]) * MIB;
  inPlace = args.values["in-place"];
  const window = Number(args.values.window);
  const files = Number(args.values.files);
  const root = Deno.makeTempDirSync({ dir: args.values.dir, prefix: "sockit-confine-" });
  const sibling = `${root}-sibling`;
  Deno.mkdirSync(`${root}/.partial`, { mode: 0o700 });
  Deno.mkdirSync(`${root}/small`);
  const out: Record<string, unknown> = {
    deno: Deno.version.deno,
    mib: chunks,
    runs,
    window,
    files,
    inPlace,
    dir: root,
  };
  let worker: Worker | undefined;
  try {
    // ---- self-checks
    const startT = performance.now();
    worker = confinedWorker(root);
    const client = new WorkerClient(worker);
    await client.send({ op: "ping" });
    out.workerStartMs = performance.now() - startT;
    const check = await client.send({ op: "selfcheck", dir: root, sibling });
    if (check.op !== "checked") throw new Error("Cannot self-check the worker");
    const result = check.result;
    const crossed = result.crossed;
    result.crossed = crossed instanceof Error
      ? `arrives as ${crossed.constructor.name} (name "${crossed.name}"): ${crossed.message}`
      : String(crossed);
    result["sibling exists afterwards"] = (() => {
      try {
        Deno.lstatSync(sibling);
        return true;
      } catch {
        return false;
      }
    })();
    out.selfCheck = result;
    try {
      const w = new Worker(new URL(import.meta.url).href, {
        type: "module",
        deno: { permissions: { net: true } },
      });
      w.terminate();
      out.escalation = "net: true was granted (unexpected)";
    } catch (error) {
      out.escalation = `${(error as Error).constructor.name}: ${(error as Error).message}`;
    }

    // ---- bulk
    const poolBuffers = makePool();
    const pool = poolBuffers.map((b) => new Uint8Array(b));
    const bulk: BulkResult[] = [];
    const order: Mode[] = ["main", "transfer", "recycle", "copy"];
    for (let r = -warmup; r < runs; r++) {
      for (let k = 0; k < order.length; k++) {
        const mode = order[(k + r + warmup) % order.length]!;
        const path = inPlace
          ? `${root}/.partial/bulk.part`
          : `${root}/.partial/bulk-${mode}-${r}.part`;
        const res = mode === "main"
          ? await bulkMain(path, pool, chunks)
          : await bulkWorker(client, mode, path, pool, chunks, window);
        if (!inPlace) Deno.removeSync(path);
        if (r >= 0) bulk.push(res);
        if (!args.values.json) {
          console.error(
            `${r < 0 ? "warm-up" : `run ${r + 1}`} ${mode.padEnd(8)} write ${
              (chunks * MIB / 1e3 / res.writeMs).toFixed(0)
            } MB/s, ` +
              `+fsync ${(chunks * MIB / 1e3 / res.totalMs).toFixed(0)} MB/s, main CPU ${
                res.mainCpuMs.toFixed(0)
              } ms, process CPU ${res.processCpuMs.toFixed(0)} ms`,
          );
        }
      }
    }
    const digests = new Set(bulk.map((b) => b.digest));
    if (digests.size !== 1) throw new Error(`Cannot agree on SHA-256: ${[...digests].join(", ")}`);
    const summary: Record<string, Record<string, number>> = {};
    for (const mode of order) {
      const rs = bulk.filter((b) => b.mode === mode);
      const bytes = chunks * MIB;
      summary[mode] = {
        writeMBps: median(rs.map((b) => bytes / 1e3 / b.writeMs)),
        writeMBpsMin: Math.min(...rs.map((b) => bytes / 1e3 / b.writeMs)),
        writeMBpsMax: Math.max(...rs.map((b) => bytes / 1e3 / b.writeMs)),
        totalMBps: median(rs.map((b) => bytes / 1e3 / b.totalMs)),
        mainCpuMsPerGiB: median(rs.map((b) => b.mainCpuMs)) / (chunks / 1024),
        processCpuMsPerGiB: median(rs.map((b) => b.processCpuMs)) / (chunks / 1024),
        ...(mode === "main"
          ? {}
          : { workerCpuMsPerGiB: median(rs.map((b) => b.workerCpuMs!)) / (chunks / 1024) }),
      };
    }
    out.bulk = summary;

    // ---- small files
    const data = new Uint8Array(SMALL_SIZE);
    crypto.getRandomValues(data);
    const pings: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const s = performance.now();
      await client.send({ op: "ping" });
      pings.push((performance.now() - s) * 1000);
    }
    const small: SmallResult[] = [];
    for (let r = 0; r < runs; r++) {
      const sub = `${root}/round${r}`;
      Deno.mkdirSync(`${sub}/.partial`, { recursive: true });
      Deno.mkdirSync(`${sub}/small`);
      const pair = r % 2 === 0
        ? [() => smallMain(sub, files, data), () => smallWorker(client, sub, files, data)]
        : [() => smallWorker(client, sub, files, data), () => smallMain(sub, files, data)];
      for (const run of pair) small.push(await run());
      Deno.removeSync(sub, { recursive: true });
    }
    const smallSummary: Record<string, Record<string, number>> = {};
    for (const where of ["main", "worker"] as const) {
      const rs = small.filter((s) => s.where === where);
      smallSummary[where] = {
        perFileMeanUs: median(rs.map((s) => s.totalMs * 1000 / files)),
        perFileMedianUs: median(rs.map((s) => median(s.perFileUs))),
        perFileP99Us: median(rs.map((s) => percentile(s.perFileUs, 0.99))),
        mainCpuUsPerFile: median(rs.map((s) => s.mainCpuMs * 1000 / files)),
        ...(where === "main"
          ? {}
          : { workerCpuUsPerFile: median(rs.map((s) => s.workerCpuMs! * 1000 / files)) }),
      };
    }
    smallSummary.roundTrip = {
      medianUs: median(pings),
      p99Us: percentile(pings, 0.99),
    };
    out.small = smallSummary;
  } finally {
    worker?.terminate();
    Deno.removeSync(root, { recursive: true });
    try {
      Deno.removeSync(sibling);
    } catch {
      // Expected: the worker could not create it.
    }
  }
  if (args.values.json) {
    console.log(JSON.stringify(out, null, 2));
  } else {
    printReport(out);
  }
}

function printReport(out: Record<string, unknown>): void {
  const f = (n: number | undefined, d = 0) => n === undefined ? "-" : n.toFixed(d);
  console.log(
    `Deno ${out.deno}; ${out.mib} MiB per bulk run${
      out.inPlace ? " (in place)" : ""
    }, window ${out.window}, ` +
      `${out.files} small files; medians of ${out.runs} runs`,
  );
  console.log(`worker start (new Worker → first reply): ${f(out.workerStartMs as number, 1)} ms`);
  console.log("self-check (inside the confined worker):");
  console.log(JSON.stringify(out.selfCheck, null, 2).replace(/^/gm, "  "));
  console.log(`worker asking for net (parent has none): ${out.escalation}`);
  const bulk = out.bulk as Record<string, Record<string, number>>;
  console.log(
    "\n| mode     | write MB/s (min–max) | +fsync MB/s | main CPU ms/GiB | worker CPU ms/GiB | process CPU ms/GiB |",
  );
  console.log(
    "| -------- | -------------------: | ----------: | --------------: | ----------------: | -----------------: |",
  );
  for (const [mode, s] of Object.entries(bulk)) {
    console.log(
      `| ${mode.padEnd(8)} | ${
        `${f(s.writeMBps)} (${f(s.writeMBpsMin)}–${f(s.writeMBpsMax)})`.padStart(20)
      } | ${f(s.totalMBps).padStart(11)} | ${f(s.mainCpuMsPerGiB).padStart(15)} | ${
        f(s.workerCpuMsPerGiB).padStart(17)
      } | ${f(s.processCpuMsPerGiB).padStart(18)} |`,
    );
  }
  const small = out.small as Record<string, Record<string, number>>;
  console.log(
    "\n| 4 KiB file (open, write, fsync, rename) | mean µs | median µs | p99 µs | main CPU µs | worker CPU µs |",
  );
  console.log(
    "| --------------------------------------- | ------: | --------: | -----: | ----------: | ------------: |",
  );
  for (const where of ["main", "worker"]) {
    const s = small[where]!;
    console.log(
      `| ${where.padEnd(39)} | ${f(s.perFileMeanUs).padStart(7)} | ${
        f(s.perFileMedianUs).padStart(9)
      } | ${f(s.perFileP99Us).padStart(6)} | ${f(s.mainCpuUsPerFile).padStart(11)} | ${
        f(s.workerCpuUsPerFile).padStart(13)
      } |`,
    );
  }
  console.log(
    `message round trip to the worker: median ${f(small.roundTrip!.medianUs, 1)} µs, p99 ${
      f(small.roundTrip!.p99Us, 1)
    } µs`,
  );
}

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  workerMain();
} else {
  await main();
}
