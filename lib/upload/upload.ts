/**
 * The client side of the `upload` service: send files and directory trees,
 * each verified by SHA-256 and committed atomically by the server.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { basename } from "node:path";
import type { Address } from "../net/address.ts";
import { type ClientSession, connect, type ConnectOptions } from "../client/client.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { FRAME_HEADER_LENGTH } from "../frame/frame.ts";
import { messageJson } from "../client/_message.ts";
import { encodeControl, MessageType } from "../protocol/protocol.ts";
import { parseRemoteName } from "./upload_name.ts";

/** Options for {@linkcode upload}. */
export interface UploadOptions extends Omit<ConnectOptions, "service" | "params" | "token"> {
  /** The server's token; upload always needs one. */
  token: string;
  /** Remote directory to put everything under. @default {the upload directory itself} */
  to?: string | undefined;
  /** Replace existing remote files (atomically) instead of failing them. @default {false} */
  overwrite?: boolean;
  /** Continue interrupted uploads from what the server verifiably holds. @default {false} */
  resume?: boolean;
  /** Send mode bits (minus setuid, setgid, sticky) and modification times. @default {true} */
  preserve?: boolean;
  /** Called as bytes go out and as each entry ends. @default {undefined} */
  onProgress?: ((progress: UploadProgress) => void) | undefined;
}

/** How far an upload has got. */
export interface UploadProgress {
  /** The remote name of the entry being sent. */
  name: string;
  /** Bytes of it the server has or has been sent (a resumed prefix counts). */
  done: number;
  /** Its size. */
  size: number;
  /** Bytes of all files done so far, across entries. */
  totalDone: number;
  /** Bytes of all files. */
  totalSize: number;
}

/** What happened to one local path. */
export interface UploadResult {
  /** The local path. */
  path: string;
  /** The remote name (empty when the entry was skipped locally). */
  name: string;
  /** `"file"`, `"dir"` or `"symlink"` (symbolic links are skipped, never followed). */
  type: "file" | "dir" | "symlink";
  /** `committed`, `failed`, or `skipped` (a symbolic link, or a type sockit does not send). */
  status: "committed" | "failed" | "skipped";
  /** The file's size. */
  size: number;
  /** Bytes sent for it. */
  sent: number;
  /** Bytes not sent because the server held a verified prefix. */
  resumed: number;
  /** SHA-256 (hex) the server verified, for committed files. */
  sha256?: string;
  /** The failure code (`exists`, `bad_name`, `hash_mismatch`, …) or skip reason. */
  code?: string;
  /** What went wrong, for failures and skips. */
  message?: string;
}

/** The outcome of {@linkcode upload}. */
export interface UploadSummary {
  /** One result per entry, in the order sent. */
  results: UploadResult[];
  /** Entries committed: files and directories. */
  committed: number;
  /** Entries that failed. */
  failed: number;
  /** Entries skipped locally. */
  skipped: number;
  /** Bytes sent in DATA messages. */
  bytesSent: number;
  /** Bytes not sent thanks to resume. */
  bytesResumed: number;
  /** Milliseconds from connect to the last answer. */
  duration: number;
}

/** An entry to send, found by walking the local paths. */
interface Planned {
  result: UploadResult;
  mode?: number | undefined;
  mtime?: number | undefined;
}

/** Files (or what is left of one) up to this size travel in the batch with their FILE and END. */
const SMALL_FILE = 64 * 1024;
/** Bytes of small files batched before a write. */
const BATCH = 256 * 1024;

/** Most file bytes in one DATA message; the server's `maxFrame` usually sets less (1 MiB − 1). */
const CHUNK = 4 * 1024 * 1024 - 1;

/**
 * Walks the local paths like `scp -r`: a file is sent under its base name,
 * a directory as its base name and everything below it, `.` or `dir/.` as
 * the directory's contents without the directory itself (directories after
 * their contents, so their times stick; empty ones included). Symbolic
 * links are listed as skipped, never followed.
 */
async function plan(paths: readonly string[], to: string | undefined): Promise<Planned[]> {
  const out: Planned[] = [];
  const prefix = to === undefined || to === "" ? "" : `${to.replace(/\/+$/, "")}/`;
  const visit = async (path: string, name: string): Promise<void> => {
    const info = await Deno.lstat(path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new Deno.errors.NotFound(`Cannot upload "${path}": no such file or directory`, {
        cause: error,
      });
    });
    const attrs = { mode: info.mode ?? undefined, mtime: info.mtime?.getTime() };
    const base = { path, name, sent: 0, resumed: 0 };
    if (info.isSymlink) {
      out.push({
        result: {
          ...base,
          type: "symlink",
          status: "skipped",
          size: 0,
          code: "symlink",
          message: "symbolic links are not followed",
        },
      });
    } else if (info.isFile) {
      out.push({ result: { ...base, type: "file", status: "failed", size: info.size }, ...attrs });
    } else if (info.isDirectory) {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
      names.sort();
      for (const child of names) await visit(`${path}/${child}`, `${name}/${child}`);
      out.push({ result: { ...base, type: "dir", status: "failed", size: 0 }, ...attrs });
    } else {
      out.push({
        result: {
          ...base,
          type: "file",
          status: "skipped",
          size: 0,
          code: "not_regular",
          message: "not a regular file or directory",
        },
      });
    }
  };
  for (const path of paths) {
    const trimmed = path.replace(/\/+$/, "") || path;
    const name = basename(trimmed);
    if (name !== "." && name !== "..") {
      await visit(trimmed, prefix + name);
      continue;
    }
    // `.`, `dir/.` and `..` send the directory's contents, as `scp -r .` and `cp -r dir/.` do.
    const names: string[] = [];
    for await (const entry of Deno.readDir(trimmed)) names.push(entry.name);
    for (const child of names.sort()) await visit(`${trimmed}/${child}`, prefix + child);
  }
  return out;
}

/** The EVENT kinds that answer an entry. */
const ANSWER_KINDS = new Set(["ready", "committed", "failed"]);

/** Routes the server's answers to the entries waiting for them, in order. */
class Answers {
  readonly #session: ClientSession;
  readonly #waiting: ((message: Record<string, unknown>) => void)[] = [];
  readonly #early: Record<string, unknown>[] = [];
  #error: unknown;
  readonly done: Promise<void>;

  constructor(session: ClientSession) {
    this.#session = session;
    this.done = this.#run();
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        const message = await this.#session.read();
        if (message === null) {
          throw new ProtocolError(
            "bad_message",
            "Cannot finish upload: the server closed the connection",
          );
        }
        if (message.type !== MessageType.Event) continue;
        const event = messageJson(message);
        // Kinds this version does not know are skipped, as the protocol asks.
        if (!ANSWER_KINDS.has(event.kind as string)) continue;
        const next = this.#waiting.shift();
        if (next) next(event);
        else this.#early.push(event);
      }
    } catch (error) {
      this.#error = error;
      for (const waiter of this.#waiting.splice(0)) waiter({ kind: "error" });
    }
  }

  /** The next answer from the server. */
  next(): Promise<Record<string, unknown>> {
    const early = this.#early.shift();
    if (early) return Promise.resolve(early);
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#waiting.push((event) => event.kind === "error" ? reject(this.#error) : resolve(event));
    });
  }

  /** The answer for the entry being sent, if it has already come (an early failure). */
  peekFailure(name: string): Record<string, unknown> | undefined {
    const first = this.#early[0];
    return first?.kind === "failed" && first.name === name ? first : undefined;
  }
}

/**
 * Uploads files and directories to the sockit server at `address`.
 *
 * Each file is announced, streamed and closed with its SHA-256; the server
 * commits it only when size and hash match, under a name it validated, and
 * never over an existing file unless `overwrite` is set. Entries are
 * pipelined: the next one starts while the server still verifies the last.
 * A failure of one entry (an existing file, a bad name, a full disk) is
 * recorded in the summary and the rest go on.
 *
 * @param address the server
 * @param paths local files and directories
 * @param options the token, remote directory, overwrite, resume, progress
 * @returns what happened to each entry
 * @throws {ConnectError} when connecting fails
 * @throws {RemoteError} when the server refuses the session or breaks off
 *
 * @example Upload a file into a server's directory
 * ```ts ignore
 * import { upload } from "@sockit/sockit";
 *
 * const summary = await upload("127.0.0.1:7070", ["report.pdf"], { token, to: "inbox" });
 * console.log(summary.committed, "committed");
 * ```
 */
export async function upload(
  address: string | Address,
  paths: readonly string[],
  options: UploadOptions,
): Promise<UploadSummary> {
  const started = performance.now();
  const planned = await plan(paths, options.to);
  checkNames(planned);
  await using session = await connect(address, { ...options, service: "upload" });
  const sender = new EntrySender(session, options, totalSizeOf(planned));
  for (const item of planned) {
    if (item.result.status === "skipped" || item.result.code === "bad_name") continue;
    await sender.send(item);
  }
  await sender.finish();
  return summarize(planned.map((p) => p.result), started);
}

/**
 * Checks names locally first: a name the server would refuse fails here,
 * before any byte is read.
 */
function checkNames(planned: readonly Planned[]): void {
  for (const { result } of planned) {
    if (result.status === "skipped") continue;
    try {
      parseRemoteName(result.name);
    } catch (error) {
      // Refused here rather than by the server: still a failure.
      result.status = "failed";
      result.code = "bad_name";
      result.message = error instanceof Error ? error.message : String(error);
    }
  }
}

/** Bytes of all the files that will be sent. */
function totalSizeOf(planned: readonly Planned[]): number {
  return planned.reduce(
    (n, p) =>
      n + (p.result.status !== "skipped" && p.result.code !== "bad_name" &&
          p.result.type === "file"
        ? p.result.size
        : 0),
    0,
  );
}

/** The summary of every entry's result. */
function summarize(results: UploadResult[], started: number): UploadSummary {
  const count = (status: UploadResult["status"]) =>
    results.filter((r) => r.status === status).length;
  return {
    results,
    committed: count("committed"),
    failed: count("failed"),
    skipped: count("skipped"),
    bytesSent: results.reduce((n, r) => n + r.sent, 0),
    bytesResumed: results.reduce((n, r) => n + r.resumed, 0),
    duration: Math.round(performance.now() - started),
  };
}

/** Records the server's refusal of an entry in its result. */
function recordFailure(result: UploadResult, answer: Record<string, unknown>): void {
  result.status = "failed";
  result.code = String(answer.code ?? "unknown");
  result.message = String(answer.message ?? "");
}

/** Where the file bytes start in a DATA frame: after the header and the type byte. */
const DATA_AT = FRAME_HEADER_LENGTH + 1;

/**
 * Sends planned entries over one upload session, pipelined: each entry's
 * answer is awaited only at the end. Owns the DATA frame buffer, the byte
 * counts for progress, and the answers still to come.
 */
class EntrySender {
  readonly #session: ClientSession;
  readonly #answers: Answers;
  readonly #options: UploadOptions;
  readonly #preserve: boolean;
  readonly #totalSize: number;
  /** File bytes in one DATA frame at most: as many as the server accepts, up to CHUNK. */
  readonly #chunkSize: number;
  /**
   * The DATA frame, built in place: 4 bytes of header, the type byte, then
   * the file bytes read straight into the frame, written without a copy.
   */
  readonly #frame: Uint8Array;
  /** The file bytes of the DATA frame. */
  readonly #buf: Uint8Array;
  /** One promise per entry sent, settled by its answer. */
  readonly #settled: Promise<void>[] = [];
  /** Bytes of all files done so far, across entries. */
  #totalDone = 0;
  /** When a read last gave the event loop a turn. */
  #lastTurn = performance.now();

  constructor(session: ClientSession, options: UploadOptions, totalSize: number) {
    this.#session = session;
    this.#answers = new Answers(session);
    this.#options = options;
    this.#preserve = options.preserve ?? true;
    this.#totalSize = totalSize;
    this.#chunkSize = Math.max(1, Math.min(CHUNK, session.welcome.maxFrame - 1));
    this.#frame = new Uint8Array(DATA_AT + this.#chunkSize);
    this.#frame[FRAME_HEADER_LENGTH] = MessageType.Data;
    this.#buf = this.#frame.subarray(DATA_AT);
  }

  /** Announces an entry, and for a file negotiates its start and sends its bytes. */
  async send(item: Planned): Promise<void> {
    const { result } = item;
    this.#session.writer.frame(encodeControl(MessageType.File, this.#announcement(item)));
    if (result.type === "dir") {
      this.#settle(result);
      return;
    }
    using file = await Deno.open(result.path, { read: true });
    const hash = createHash("sha256");
    let offset = 0;
    if (this.#options.resume) {
      const held = await this.#resume(file, result, hash);
      if (held === undefined) return;
      offset = held;
    }
    const fileHash = offset > 0 ? hash : createHash("sha256");
    const done = await this.#sendBytes(file, result, offset, fileHash);
    this.#totalDone += result.size - done;
    this.#session.writer.frame(encodeControl(MessageType.End, { sha256: fileHash.digest("hex") }));
    this.#settle(result);
  }

  /** Writes what is still buffered and waits for every entry's answer. */
  async finish(): Promise<void> {
    await this.#session.writer.flush();
    await Promise.all(this.#settled);
    await this.#session.closeWrite();
  }

  /** The FILE message's body for an entry. */
  #announcement(item: Planned): Record<string, unknown> {
    const { result } = item;
    const entry: Record<string, unknown> = {
      type: result.type,
      name: result.name,
      overwrite: this.#options.overwrite ?? false,
    };
    if (result.type === "file") {
      entry.size = result.size;
      entry.resume = this.#options.resume ?? false;
    }
    if (this.#preserve) {
      if (item.mode !== undefined) entry.mode = item.mode & 0o777;
      if (item.mtime !== undefined) entry.mtime = item.mtime;
    }
    return entry;
  }

  /**
   * Asks where to resume a file: the offset to send from (the prefix the
   * server holds, if it matches the local file, hashed into `hash`), or
   * undefined when the server refused the file.
   */
  async #resume(file: Deno.FsFile, result: UploadResult, hash: Hash): Promise<number | undefined> {
    const writer = this.#session.writer;
    await writer.flush();
    const ready = await this.#answers.next();
    if (ready.kind === "failed") {
      recordFailure(result, ready);
      writer.frame(encodeControl(MessageType.End, {}));
      this.#totalDone += result.size;
      return undefined;
    }
    const held = typeof ready.offset === "number" ? ready.offset : 0;
    let offset = 0;
    if (held > 0 && await prefixMatches(file, held, hash, ready.prefixSha256, this.#buf)) {
      offset = held;
    }
    if (offset === 0) await file.seek(0, Deno.SeekMode.Start);
    writer.frame(encodeControl(MessageType.Start, { offset }));
    result.resumed = offset;
    return offset;
  }

  /** Sends a file's bytes from `offset` in DATA frames; returns how far it got. */
  async #sendBytes(
    file: Deno.FsFile,
    result: UploadResult,
    offset: number,
    fileHash: Hash,
  ): Promise<number> {
    const writer = this.#session.writer;
    const frame = this.#frame, buf = this.#buf, chunkSize = this.#chunkSize;
    let done = offset;
    let chunk = 0;
    while (done < result.size) {
      if (this.#answers.peekFailure(result.name)) break;
      // Synchronous reads: measured to move bulk data about twice as fast.
      // But socket writes that complete at once never give the answer
      // reader a turn, so the first chunks of each file, and one every
      // 5 ms, are read asynchronously: the event loop runs, and a file the
      // server refused at once (exists, busy, too large) stops early.
      // (A setTimeout(0) yield costs ~2 ms here; an async read, nothing.)
      const slice = buf.subarray(0, Math.min(chunkSize, result.size - done));
      // A small file goes out in one batched frame: nothing to stop early,
      // and a write of its own per file would cost more than the copy.
      const small = result.size - done <= SMALL_FILE;
      const turn = !small && (chunk++ < 4 || performance.now() - this.#lastTurn > 5);
      const n = turn ? await file.read(slice) : file.readSync(slice);
      if (turn) this.#lastTurn = performance.now();
      if (n === null || n === 0) break; // shrank while read: the server reports size_mismatch
      fileHash.update(buf.subarray(0, n));
      if (small) {
        writer.frame(frame.subarray(FRAME_HEADER_LENGTH, DATA_AT + n));
        if (writer.pending >= BATCH) await writer.flush();
      } else {
        await writer.writeFrame(frame.subarray(0, DATA_AT + n));
      }
      done += n;
      result.sent += n;
      this.#totalDone += n;
      this.#options.onProgress?.({
        name: result.name,
        done,
        size: result.size,
        totalDone: this.#totalDone,
        totalSize: this.#totalSize,
      });
    }
    return done;
  }

  /** Records the entry's answer in its result when it comes. */
  #settle(result: UploadResult): void {
    this.#settled.push(
      this.#answers.next().then((answer) => {
        if (answer.kind === "committed") {
          result.status = "committed";
          if (typeof answer.sha256 === "string") result.sha256 = answer.sha256;
        } else {
          recordFailure(result, answer);
        }
      }),
    );
  }
}

/** Hashes the first `length` bytes of `file` into `hash` and compares with the server's. */
async function prefixMatches(
  file: Deno.FsFile,
  length: number,
  hash: Hash,
  expected: unknown,
  buf: Uint8Array,
): Promise<boolean> {
  if (typeof expected !== "string") return false;
  await file.seek(0, Deno.SeekMode.Start);
  for (let left = length; left > 0;) {
    const n = file.readSync(buf.subarray(0, Math.min(buf.length, left)));
    if (n === null || n === 0) return false; // the local file is shorter
    hash.update(buf.subarray(0, n));
    left -= n;
  }
  return hash.copy().digest("hex") === expected.toLowerCase();
}
