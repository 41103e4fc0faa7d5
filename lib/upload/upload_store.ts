/**
 * The upload directory on the server: a jail that files enter only whole,
 * verified and through names that cannot leave it.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { statfs } from "node:fs/promises";
import { ProtocolError } from "../protocol/errors.ts";
import { PARTIAL_DIR } from "./upload_name.ts";

/** Options for {@linkcode UploadStore.open}. */
export interface UploadStoreOptions {
  /** Largest file accepted, in bytes. @default {4294967296} (4 GiB) */
  maxFileSize?: number;
  /**
   * Free space an upload must leave on the file system: the larger of this
   * many bytes and {@linkcode UploadStoreOptions.reservePercent} of its size.
   * With both 0 there is no check (and no need for `--allow-sys=statfs`).
   * @default {1073741824} (1 GiB)
   */
  reserveBytes?: number;
  /** Share of the file system an upload must leave free, in percent. @default {5} */
  reservePercent?: number;
  /** Milliseconds after which an unused partial file is removed. @default {86400000} (24 h) */
  partialTtl?: number;
  /**
   * Accept only names Windows can hold too (see
   * the `portable` option of `parseRemoteName`). @default {false}
   */
  portableNames?: boolean;
}

/** What the client wants done with one file. */
export interface BeginOptions {
  /** Replace an existing file (atomically) instead of refusing. */
  overwrite: boolean;
  /** Continue from a partial file left by an interrupted upload, if one matches. */
  resume: boolean;
}

/** Mode and time to give a committed file. */
export interface FileAttributes {
  /** Permission bits; setuid, setgid and sticky are always cleared. */
  mode?: number | undefined;
  /** Modification time, milliseconds since the epoch. */
  mtime?: number | undefined;
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function exists(error: unknown): boolean {
  return error instanceof Deno.errors.AlreadyExists;
}

/**
 * A directory that receives uploads.
 *
 * Data is written to a private partial area (`.sockit-partial`, mode 0700)
 * and becomes visible under its final name only after its size and SHA-256
 * were checked and it was flushed to disk: hard-linked into place (never
 * replacing anything) or, with `overwrite`, renamed over the old file; then
 * the directory is flushed too. A crash at any point leaves nothing, or the
 * complete file, under the final name.
 *
 * Metadata calls (`lstat`, `open`, `link`, `chmod`…) are synchronous: on a
 * local disk they take microseconds, less than a hop to the thread pool
 * (measured: a tree of 10,000 small files took half the time); the data's
 * fsync stays asynchronous. On a network file system they would block the
 * event loop.
 *
 * No write follows a symbolic link: every directory on the way to a final
 * name is checked with `lstat` and created one level at a time, and the
 * final step (link or rename) acts on the name itself, never on a link's
 * target. The store refuses a directory that other users may write to,
 * since they could swap a checked directory for a link.
 *
 * @example Store a file
 * ```ts ignore
 * const store = await UploadStore.open(dir);
 * const file = await store.begin(["a.txt"], 5, { overwrite: false, resume: false });
 * file.write(new TextEncoder().encode("hello"));
 * await file.commit(sha256OfHello);
 * ```
 */
export class UploadStore {
  /** The upload directory, as given. */
  readonly root: string;
  /** Largest file accepted, in bytes. */
  readonly maxFileSize: number;
  /** Whether only names Windows can hold too are accepted. */
  readonly portableNames: boolean;
  readonly #partials: string;
  readonly #reserveBytes: number;
  readonly #reservePercent: number;
  readonly #partialTtl: number;
  /** Partial files being written now, by key: one writer per name. */
  readonly #active = new Set<string>();
  readonly #runningSyncs = new Map<string, Promise<void>>();
  readonly #queuedSyncs = new Map<string, Promise<void>>();
  #lastSweep = Date.now();
  /** The last free-space answer, and what was promised since. */
  #space: { at: number; free: number; total: number } | undefined;

  private constructor(root: string, options: UploadStoreOptions) {
    this.root = root;
    this.#partials = `${root}/${PARTIAL_DIR}`;
    this.maxFileSize = options.maxFileSize ?? 4 * 1024 ** 3;
    this.#reserveBytes = options.reserveBytes ?? 1024 ** 3;
    this.#reservePercent = options.reservePercent ?? 5;
    this.#partialTtl = options.partialTtl ?? 86_400_000;
    this.portableNames = options.portableNames ?? false;
  }

  /**
   * Opens `dir` as an upload directory, creating its partial area.
   *
   * @param dir an existing directory that only its owner may write to
   * @param options limits
   * @returns the store
   * @throws {Error} when `dir` is missing, not a directory, or writable by group or
   *   others, or when the free-space check is on and `--allow-sys=statfs` is not granted
   */
  static async open(dir: string, options: UploadStoreOptions = {}): Promise<UploadStore> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(dir);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot use upload directory "${dir}": it does not exist`, {
          cause: error,
        });
      }
      throw error;
    }
    if (!info.isDirectory) {
      throw new Error(`Cannot use upload directory "${dir}": not a directory`);
    }
    if (Deno.build.os !== "windows" && info.mode !== null && (info.mode & 0o022) !== 0) {
      throw new Error(
        `Cannot use upload directory "${dir}": other users can write to it (mode ${
          (info.mode & 0o777).toString(8)
        }); run chmod go-w`,
      );
    }
    const store = new UploadStore(dir.replace(/\/+$/, "") || "/", options);
    if (
      (store.#reserveBytes > 0 || store.#reservePercent > 0) &&
      Deno.permissions.querySync({ name: "sys", kind: "statfs" }).state !== "granted"
    ) {
      throw new Error(
        `Cannot check free space in "${dir}": grant --allow-sys=statfs, or set reserveBytes ` +
          "and reservePercent to 0 to upload without the check",
      );
    }
    try {
      await Deno.mkdir(store.#partials, { mode: 0o700 });
    } catch (error) {
      if (!exists(error)) throw error;
      const partial = await Deno.lstat(store.#partials);
      if (!partial.isDirectory || partial.isSymlink) {
        throw new Error(
          `Cannot use upload directory "${dir}": ${PARTIAL_DIR} exists and is not a directory`,
        );
      }
    }
    await store.removeStalePartials();
    return store;
  }

  /**
   * Removes partial files older than the partial TTL that no upload is using.
   *
   * @returns how many were removed
   */
  async removeStalePartials(): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for await (const entry of Deno.readDir(this.#partials)) {
      if (!entry.isFile || !entry.name.endsWith(".part")) continue;
      const key = entry.name.slice(0, entry.name.indexOf("-"));
      if (this.#active.has(key)) continue;
      const path = `${this.#partials}/${entry.name}`;
      const info = await Deno.lstat(path).catch(() => undefined);
      if (info?.mtime && now - info.mtime.getTime() > this.#partialTtl) {
        await Deno.remove(path).catch(() => {});
        removed++;
      }
    }
    return removed;
  }

  /**
   * Starts receiving the file `parts` (from {@linkcode parseRemoteName}) of
   * `size` bytes.
   *
   * @param parts the validated name
   * @param size the declared size
   * @param options overwrite and resume
   * @returns the partial file, positioned after any prefix kept from an earlier attempt
   * @throws {ProtocolError} `too_large`, `exists`, `busy`, `bad_name` (a symlink or
   *   file in the way), or `disk_full` (the upload would eat into the reserve)
   */
  async begin(parts: string[], size: number, options: BeginOptions): Promise<PartialUpload> {
    const name = parts.join("/");
    // A long-running server sweeps stale partials now and then, not only at start.
    const now = Date.now();
    if (now - this.#lastSweep > Math.min(this.#partialTtl / 24, 3_600_000)) {
      this.#lastSweep = now;
      await this.removeStalePartials();
    }
    if (size > this.maxFileSize) {
      throw new ProtocolError(
        "too_large",
        `Cannot accept "${name}": ${size} bytes exceed the limit of ${this.maxFileSize}`,
        { size, maxFileSize: this.maxFileSize },
      );
    }
    await this.#checkParents(parts, false);
    const final = `${this.root}/${name}`;
    if (!options.overwrite) {
      const taken = lstatOrUndefined(final) !== undefined;
      if (taken) {
        throw new ProtocolError(
          "exists",
          `Cannot accept "${name}": a file of that name exists (overwrite to replace it)`,
        );
      }
    }
    const key = sha256Hex(name);
    if (this.#active.has(key)) {
      throw new ProtocolError("busy", `Cannot accept "${name}": another upload of it is running`);
    }
    this.#active.add(key);
    try {
      const path = `${this.#partials}/${key}-${size}.part`;
      let held = 0;
      if (options.resume) {
        held = await Deno.lstat(path).then(
          (i) => (i.isFile && i.size <= size ? i.size : 0),
          () => 0,
        );
      }
      await this.#checkSpace(name, size - held);
      const file = Deno.openSync(path, {
        read: true,
        write: true,
        create: true,
        truncate: held === 0,
        mode: 0o600,
      });
      const hash = createHash("sha256");
      if (held > 0) await hashPrefix(file, held, hash);
      return new PartialUpload(this, {
        name,
        parts,
        final,
        path,
        key,
        size,
        held,
        file,
        hash,
        prefixHash: held > 0 ? hash.copy().digest("hex") : undefined,
        overwrite: options.overwrite,
      });
    } catch (error) {
      this.#active.delete(key);
      throw error;
    }
  }

  /** Releases the name `key` for other uploads. */
  release(key: string): void {
    this.#active.delete(key);
  }

  /**
   * Flushes the directory `path`. Commits into one directory share
   * flushes: a caller waits for a flush that started after it asked, and
   * every caller that asks while one runs shares the next.
   */
  syncDir(path: string): Promise<void> {
    const queued = this.#queuedSyncs.get(path);
    if (queued) return queued;
    const running = this.#runningSyncs.get(path);
    if (!running) return this.#startSync(path);
    const next = running.catch(() => {}).then(() => {
      this.#queuedSyncs.delete(path);
      return this.#startSync(path);
    });
    this.#queuedSyncs.set(path, next);
    return next;
  }

  #startSync(path: string): Promise<void> {
    const sync: Promise<void> = syncDir(path).finally(() => {
      if (this.#runningSyncs.get(path) === sync) this.#runningSyncs.delete(path);
    });
    this.#runningSyncs.set(path, sync);
    return sync;
  }

  async #checkSpace(name: string, need: number): Promise<void> {
    if (this.#reserveBytes === 0 && this.#reservePercent === 0) return;
    // Asked at most once a second: many small files would otherwise pay a
    // statfs each; bytes accepted since the last answer are counted against it.
    const now = performance.now();
    if (!this.#space || now - this.#space.at > 1000) {
      const fs = await statfs(this.root);
      this.#space = { at: now, free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize };
    }
    const free = this.#space.free;
    const reserve = Math.max(this.#reserveBytes, this.#space.total * this.#reservePercent / 100);
    if (free - need < reserve) {
      throw new ProtocolError(
        "disk_full",
        `Cannot accept "${name}": ${need} bytes would leave less than ${reserve} bytes free`,
        { need, free, reserve },
      );
    }
    this.#space.free -= need;
  }

  /**
   * Checks that every directory on the way to `parts` is a real directory
   * inside the root, not a link; with `create`, makes missing ones.
   */
  async #checkParents(parts: string[], create: boolean): Promise<string> {
    let dir = this.root;
    for (const part of parts.slice(0, -1)) {
      dir = `${dir}/${part}`;
      let info: Deno.FileInfo | undefined;
      try {
        info = Deno.lstatSync(dir);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (info === undefined) {
        if (!create) continue;
        try {
          Deno.mkdirSync(dir, { mode: 0o755 });
          // A new directory is durable only once its parent is flushed.
          await this.syncDir(dir.slice(0, dir.lastIndexOf("/")));
          continue;
        } catch (error) {
          if (!exists(error)) throw error;
          info = Deno.lstatSync(dir);
        }
      }
      if (info.isSymlink || !info.isDirectory) {
        throw new ProtocolError(
          "bad_name",
          `Cannot accept "${parts.filter((p) => p !== "").join("/")}": "${
            dir.slice(this.root.length + 1)
          }" is ${info.isSymlink ? "a symbolic link" : "not a directory"}`,
          { reason: info.isSymlink ? "symlink in path" : "not a directory" },
        );
      }
    }
    return dir;
  }

  /**
   * Makes the parents of `parts` (checked, one level at a time) and returns
   * the innermost.
   *
   * @param parts a validated name
   * @returns the path of its parent directory
   * @throws {ProtocolError} `bad_name` when a link or a file is in the way
   */
  makeParents(parts: string[]): Promise<string> {
    return this.#checkParents(parts, true);
  }

  /**
   * Makes the directory `parts` (and its parents), or accepts it when it
   * exists, and applies `attributes`.
   *
   * @param parts a validated name
   * @param attributes mode and mtime to apply
   * @throws {ProtocolError} `bad_name` when a link or a file is in the way
   */
  async makeDir(parts: string[], attributes: FileAttributes = {}): Promise<void> {
    // With an empty last part, every part of the name is checked as a directory.
    const path = await this.#checkParents([...parts, ""], true);
    if (attributes.mode !== undefined && Deno.build.os !== "windows") {
      Deno.chmodSync(path, attributes.mode & CLIENT_MODE_MASK);
    }
    if (attributes.mtime !== undefined) {
      const time = new Date(attributes.mtime);
      Deno.utimeSync(path, time, time);
    }
  }
}

async function hashPrefix(file: Deno.FsFile, length: number, hash: Hash): Promise<void> {
  const buf = new Uint8Array(1024 * 1024);
  await file.seek(0, Deno.SeekMode.Start);
  for (let left = length; left > 0;) {
    const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
    if (n === null) throw new Error("Cannot resume: the partial file shrank while it was read");
    hash.update(buf.subarray(0, n));
    left -= n;
  }
  await file.seek(length, Deno.SeekMode.Start);
}

/**
 * The mode bits a client may set: never setuid, setgid or sticky, and never
 * write for group or others — a directory other users could write to would
 * let them swap a checked path for a link (the store refuses such a root
 * for the same reason).
 */
const CLIENT_MODE_MASK = 0o755;

/**
 * A large file's bytes are flushed to disk in the background every this
 * many bytes: the final fsync of a 1 GiB file otherwise takes about as long
 * as its transfer.
 */
const EARLY_FLUSH_BYTES = 64 * 1024 * 1024;

interface PartialState {
  name: string;
  parts: string[];
  final: string;
  path: string;
  key: string;
  size: number;
  held: number;
  file: Deno.FsFile;
  hash: Hash;
  prefixHash: string | undefined;
  overwrite: boolean;
}

/**
 * One file being received into an {@linkcode UploadStore}. Write its bytes
 * in order, then {@linkcode PartialUpload.commit} or
 * {@linkcode PartialUpload.close}.
 */
export class PartialUpload {
  /** The remote name. */
  readonly name: string;
  /** The declared size. */
  readonly size: number;
  /** Bytes kept from an earlier attempt; the client sends from here. */
  readonly held: number;
  /** SHA-256 (hex) of the kept bytes, when some were kept. */
  readonly prefixHash: string | undefined;
  readonly #store: UploadStore;
  readonly #state: PartialState;
  #received: number;
  #closed = false;
  #released = false;
  /** Bytes written since the last early flush started. */
  #unflushed = 0;
  /** The early flush in progress: it overlaps the disk's work with the transfer. */
  #flushing: Promise<unknown> | undefined;

  /** Use {@linkcode UploadStore.begin}. */
  constructor(store: UploadStore, state: PartialState) {
    this.#store = store;
    this.#state = state;
    this.name = state.name;
    this.size = state.size;
    this.held = state.held;
    this.prefixHash = state.prefixHash;
    this.#received = state.held;
  }

  /** Bytes of the file received so far, kept prefix included. */
  get received(): number {
    return this.#received;
  }

  /**
   * Starts over from byte 0, dropping the kept prefix (the client's copy
   * differs from it).
   */
  async restart(): Promise<void> {
    const s = this.#state;
    await s.file.truncate(0);
    await s.file.seek(0, Deno.SeekMode.Start);
    s.hash = createHash("sha256");
    this.#received = 0;
  }

  /**
   * Appends `bytes` to the file.
   *
   * @param bytes the next bytes
   * @throws {ProtocolError} `size_mismatch` when they run past the declared size
   */
  write(bytes: Uint8Array): void {
    const s = this.#state;
    if (this.#received + bytes.length > s.size) {
      throw new ProtocolError(
        "size_mismatch",
        `Cannot accept "${s.name}": more than the declared ${s.size} bytes`,
        { size: s.size },
      );
    }
    // Synchronous: measured to move bulk data about twice as fast as the
    // async call, and a write to the page cache does not wait on the disk.
    for (let at = 0; at < bytes.length;) at += s.file.writeSync(bytes.subarray(at));
    s.hash.update(bytes);
    this.#received += bytes.length;
    this.#unflushed += bytes.length;
    if (this.#unflushed >= EARLY_FLUSH_BYTES && this.#flushing === undefined) {
      // Start the disk on what is written so far while more arrives, so that
      // the flush at commit has little left to do. Its outcome does not
      // matter: the flush at commit is the one that counts.
      this.#unflushed = 0;
      this.#flushing = s.file.syncData().catch(() => {}).finally(() => {
        this.#flushing = undefined;
      });
    }
  }

  /**
   * Verifies size and SHA-256, flushes the data, and makes the file visible
   * under its final name; then flushes the directory.
   *
   * @param sha256 the hash (hex) the client computed
   * @param attributes mode and mtime to apply
   * @returns the hash (hex) of the stored file
   * @throws {ProtocolError} `size_mismatch`, `hash_mismatch`, `exists`, `bad_name`
   */
  async commit(sha256: string, attributes: FileAttributes = {}): Promise<string> {
    const s = this.#state;
    try {
      if (this.#received !== s.size) {
        throw new ProtocolError(
          "size_mismatch",
          `Cannot accept "${s.name}": ${this.#received} bytes received, ${s.size} declared`,
          { size: s.size, received: this.#received },
        );
      }
      const digest = s.hash.digest("hex");
      if (digest !== sha256.toLowerCase()) {
        throw new ProtocolError(
          "hash_mismatch",
          `Cannot accept "${s.name}": SHA-256 ${digest} differs from the client's ${sha256}`,
          { expected: sha256, actual: digest },
        );
      }
      if (Deno.build.os !== "windows") {
        // The partial was private (0600); without a mode from the client the
        // file gets the usual 0644.
        Deno.chmodSync(s.path, (attributes.mode ?? 0o644) & CLIENT_MODE_MASK);
      }
      if (attributes.mtime !== undefined) {
        const time = new Date(attributes.mtime);
        s.file.utimeSync(time, time);
      }
      await this.#flushing;
      await s.file.sync();
      this.#closeFile();
      const dir = await this.#store.makeParents(s.parts);
      if (s.overwrite) {
        Deno.renameSync(s.path, s.final);
      } else {
        try {
          Deno.linkSync(s.path, s.final);
        } catch (error) {
          if (!exists(error)) throw error;
          // Lost the race to another writer of the name.
          throw new ProtocolError(
            "exists",
            `Cannot accept "${s.name}": a file of that name appeared meanwhile`,
          );
        }
        // The file is in place: a leftover partial is swept later.
        await Deno.remove(s.path).catch(() => {});
      }
      await this.#store.syncDir(dir);
      this.close();
      return digest;
    } catch (error) {
      // Nothing of a failed commit is worth resuming from; the name is
      // given back only once the partial file is gone.
      await this.discard();
      throw error;
    }
  }

  #closeFile(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#state.file.close();
  }

  /** Stops receiving; the partial file stays for a later resume. */
  close(): void {
    this.#closeFile();
    this.#release();
  }

  /** Gives the name back, once: a later upload of it may hold it by now. */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#store.release(this.#state.key);
  }

  /**
   * Stops receiving and removes the partial file: for an entry that failed
   * (a full disk, data of the wrong size), where resuming makes no sense
   * and the space is better given back.
   */
  async discard(): Promise<void> {
    // Once released, the partial path may be a later upload's.
    if (this.#released) return;
    this.#closeFile();
    await Deno.remove(this.#state.path).catch(() => {});
    this.#release();
  }
}

/** `lstat` that answers `undefined` for a missing path. */
function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function syncDir(path: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  using dir = await Deno.open(path, { read: true });
  await dir.sync();
}
