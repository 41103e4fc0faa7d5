/**
 * The `upload` service: receives files and directories into an
 * {@linkcode UploadStore}, one entry at a time, each verified before it
 * becomes visible.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";
import { decodeControl, encodeControl, MessageType } from "../protocol/protocol.ts";
import type { Service } from "../protocol/service.ts";
import type { Session } from "../protocol/session.ts";
import { typeByte } from "../protocol/session.ts";
import { parseRemoteName } from "./upload_name.ts";
import { parseSha256, parseUploadEntry, type UploadEntry } from "./upload_protocol.ts";
import type { PartialUpload, UploadStore } from "./upload_store.ts";

/**
 * Codes that fail one entry and let the session go on; any other error
 * ends the session.
 */
const ENTRY_FAILURES = new Set([
  "bad_name",
  "exists",
  "busy",
  "too_large",
  "disk_full",
  "size_mismatch",
  "hash_mismatch",
  "io_error",
]);

/** The entry being received. */
interface Current {
  entry: UploadEntry;
  partial?: PartialUpload | undefined;
  /** False while a resumed file waits for START. */
  started: boolean;
  /** Set once the entry has failed: its remaining bytes are discarded. */
  failed: boolean;
}

/**
 * Commits that may run at once. Each waits on its fsyncs; overlapping them
 * lets a tree of small files go at the disk's pace instead of one flush
 * round trip per file. Answers still leave in order.
 */
const COMMITS_IN_FLIGHT = 16;

/**
 * The session's answers, in the order the entries arrived: some are known
 * at once, others only when their commit finishes.
 */
class Answers {
  readonly #session: Session;
  /** Answers still to be sent, oldest first, each after the one before. */
  readonly #pending: Promise<void>[] = [];
  #tail: Promise<void> = Promise.resolve();

  constructor(session: Session) {
    this.#session = session;
  }

  /** Sends `body` after every pending answer. */
  async now(body: Record<string, unknown>): Promise<void> {
    await this.settle();
    reply(this.#session, body);
  }

  /**
   * Sends what `answer` produces once it is its turn; waits only while
   * {@linkcode COMMITS_IN_FLIGHT} answers are pending.
   */
  async later(answer: Promise<Record<string, unknown>>): Promise<void> {
    const session = this.#session;
    // Rejections are seen by whoever awaits the queue; the tail only orders.
    const sent = this.#tail.then(async () => {
      reply(session, await answer);
      await session.flush();
    });
    this.#tail = sent.catch(() => {});
    this.#pending.push(sent);
    // Every answer is awaited by settle(); this only keeps an early
    // rejection from counting as unhandled before then.
    sent.catch(() => {});
    if (this.#pending.length >= COMMITS_IN_FLIGHT) await this.#pending.shift();
  }

  /** Waits until every pending answer was sent; rethrows the first failure. */
  async settle(): Promise<void> {
    while (this.#pending.length > 0) await this.#pending.shift();
  }

  /** Waits for every pending answer, ignoring failures (the session is ending). */
  async drop(): Promise<void> {
    await Promise.allSettled(this.#pending.splice(0));
  }
}

function bad(message: string, details: Record<string, number> = {}): ProtocolError {
  return new ProtocolError("bad_message", `Cannot serve upload: ${message}`, details);
}

/** Turns a file-system error into an entry failure the client can act on. */
function ioFailure(name: string, error: unknown): ProtocolError {
  const text = error instanceof Error ? error.message : String(error);
  const full = /no space left|disk quota/i.test(text);
  // The system's words only ("Is a directory (os error 21)"): what follows
  // the first colon names server paths, which are not the client's business.
  const reason = full ? "the disk is full" : text.split(":")[0]!.trim();
  return new ProtocolError(
    full ? "disk_full" : "io_error",
    `Cannot store "${name}": ${reason}`,
    {},
    {
      cause: error,
    },
  );
}

/**
 * Creates the `upload` service, which stores what clients send in `store`.
 *
 * Per entry the client sends FILE, then (for a file) its bytes as DATA and
 * END with the SHA-256; the server answers each entry with exactly one
 * `committed` or `failed` event, in order. A failed entry (a bad name, an
 * existing file, a wrong hash, a full disk…) does not end the session:
 * its remaining bytes are read and dropped, and the next entry is served.
 * Only protocol violations end the session.
 *
 * @param store the upload directory
 * @returns the service; it runs only for sessions that proved the token
 *
 * @example Offer uploads into a directory
 * ```ts ignore
 * import { serve } from "@sockit/sockit";
 * import { UploadStore, uploadService } from "@sockit/sockit/upload";
 *
 * const store = await UploadStore.open("/srv/uploads");
 * await using server = await serve({ token, services: [uploadService(store)] });
 * ```
 */
export function uploadService(store: UploadStore): Service {
  return {
    name: "upload",
    requiresToken: true,
    async handle(session, welcome) {
      if (!session.authenticated) {
        throw new ProtocolError("auth_required", "Cannot accept uploads: upload requires a token");
      }
      await welcome();
      let current: Current | undefined;
      const answers = new Answers(session);
      try {
        for (;;) {
          const payload = await session.read();
          if (payload === null) {
            // Closing between entries is the normal end; inside one, the
            // partial file stays for a resume.
            await answers.settle();
            await session.flush();
            return;
          }
          const type = payload[0];
          if (type === MessageType.Data) {
            if (!current || current.entry.type !== "file" || !current.started) {
              throw bad("DATA outside a file's bytes");
            }
            if (!current.failed) {
              try {
                current.partial!.write(payload.subarray(1));
              } catch (error) {
                await answers.now(await fail(current, error));
              }
            }
          } else if (type === MessageType.File) {
            if (current) throw bad("FILE before the previous file's END");
            current = await begin(answers, store, parseUploadEntry(decodeControl(payload)));
          } else if (type === MessageType.Start) {
            if (!current || !current.entry.resume || current.started) {
              throw bad("START without a resumed FILE waiting for it");
            }
            const { offset } = decodeControl(payload);
            const held = current.partial?.held ?? 0;
            if (offset !== 0 && offset !== held) {
              throw bad(`START offset must be 0 or ${held}`, { held });
            }
            current.started = true;
            if (offset === 0 && held > 0 && !current.failed) await current.partial!.restart();
          } else if (type === MessageType.End) {
            if (!current || current.entry.type !== "file" || !current.started) {
              throw bad("END without a file");
            }
            const body = decodeControl(payload);
            const entry = current;
            const sha256 = entry.failed ? "" : parseSha256(body.sha256, "sha256");
            current = undefined;
            if (!entry.failed) await answers.later(finish(entry, sha256));
          } else if (type === MessageType.Ping) {
            session.writer.frame(typeByte(MessageType.Pong), payload.subarray(1));
          } else {
            throw bad(`unexpected message type ${type ?? "(empty frame)"}`, { type: type ?? -1 });
          }
          // Answer what arrived together in one write, before reading on.
          if (!session.reader.hasFrame) await session.flush();
        }
      } finally {
        current?.partial?.close();
        await answers.drop();
      }
    },
  };
}

async function begin(
  answers: Answers,
  store: UploadStore,
  entry: UploadEntry,
): Promise<Current | undefined> {
  const current: Current = { entry, started: !entry.resume, failed: false };
  try {
    const parts = parseRemoteName(entry.name, { portable: store.portableNames });
    if (entry.type === "dir") {
      // A directory comes after its contents: its mtime is set once their
      // commits are done.
      await answers.settle();
      await store.makeDir(parts, entry);
      await answers.now({ kind: "committed", name: entry.name, type: "dir" });
      return undefined;
    }
    current.partial = await store.begin(parts, entry.size, entry);
    if (entry.resume) {
      const { held, prefixHash } = current.partial;
      await answers.now({
        kind: "ready",
        name: entry.name,
        offset: held,
        ...(prefixHash ? { prefixSha256: prefixHash } : {}),
      });
    }
  } catch (error) {
    await answers.now(await fail(current, error));
    // A directory has no bytes to skip: it is over.
    if (entry.type === "dir") return undefined;
  }
  return current;
}

/** Commits the entry; answers `committed`, or `failed` when the commit failed. */
async function finish(current: Current, sha256: string): Promise<Record<string, unknown>> {
  const { entry } = current;
  try {
    const digest = await current.partial!.commit(sha256, entry);
    return { kind: "committed", name: entry.name, type: "file", size: entry.size, sha256: digest };
  } catch (error) {
    return await fail(current, error);
  }
}

/**
 * Fails the entry and returns the answer that tells the client, or
 * rethrows what must end the session.
 */
async function fail(current: Current, error: unknown): Promise<Record<string, unknown>> {
  // File-system errors (a full disk, a read-only file system, a permission
  // problem) fail the entry; programming errors end the session.
  const programming = error instanceof TypeError || error instanceof RangeError ||
    error instanceof ReferenceError || error instanceof SyntaxError;
  const told = error instanceof ProtocolError
    ? error
    : error instanceof Error && !programming
    ? ioFailure(current.entry.name, error)
    : undefined;
  if (!told || !ENTRY_FAILURES.has(told.code)) throw error;
  current.failed = true;
  // A failed entry keeps no partial file: only a connection that drops
  // mid-file leaves one, for a resume.
  const partial = current.partial;
  current.partial = undefined;
  await partial?.discard();
  // A file entry always ends with END; after a failure the client sends it
  // without START or (more) DATA.
  current.started = true;
  return {
    kind: "failed",
    name: current.entry.name,
    code: told.code,
    message: told.message,
    ...told.details,
  };
}

function reply(session: Session, body: Record<string, unknown>): void {
  session.writer.frame(encodeControl(MessageType.Event, body));
}
