/**
 * The messages of the `upload` service, shared by its server and client.
 * `docs/protocol/upload.md` is the specification.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";

/** One entry the client announces with FILE. */
export interface UploadEntry {
  /** `"file"`, followed by its bytes, or `"dir"`, which has none. */
  type: "file" | "dir";
  /** The remote name, `/`-separated and relative to the upload directory. */
  name: string;
  /** Bytes in the file; 0 for a directory. */
  size: number;
  /** Permission bits to give it, when the client preserves them. */
  mode?: number;
  /** Modification time in milliseconds since the epoch, when preserved. */
  mtime?: number;
  /** Replace an existing file instead of refusing. */
  overwrite: boolean;
  /**
   * Ask the server what it holds of this file from an interrupted upload;
   * the client then waits for the `ready` event and answers with START.
   */
  resume: boolean;
}

/** The largest file size the protocol can express: 2^53 − 1 bytes. */
const MAX_SIZE = Number.MAX_SAFE_INTEGER;

function bad(message: string, field: string): ProtocolError {
  return new ProtocolError("bad_message", `Cannot read FILE: ${message}`, { field });
}

/**
 * Validates the JSON body of a FILE message. The name is checked here only
 * for type; {@linkcode parseRemoteName} judges it.
 *
 * @param body the decoded body
 * @returns the entry
 * @throws {ProtocolError} `bad_message` naming the field that is wrong
 *
 * @example Parse a file entry
 * ```ts
 * import { parseUploadEntry } from "./upload_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const entry = parseUploadEntry({ type: "file", name: "a.txt", size: 5 });
 * deepEqual([entry.size, entry.overwrite, entry.resume], [5, false, false]);
 * ```
 */
export function parseUploadEntry(body: Record<string, unknown>): UploadEntry {
  const { type, name, size, mode, mtime, overwrite, resume } = body;
  if (type !== "file" && type !== "dir") throw bad('type must be "file" or "dir"', "type");
  if (typeof name !== "string") throw bad("name must be a string", "name");
  const entry: UploadEntry = {
    type,
    name,
    size: 0,
    overwrite: overwrite === true,
    resume: resume === true,
  };
  if (type === "file") {
    if (!Number.isSafeInteger(size) || (size as number) < 0 || (size as number) > MAX_SIZE) {
      throw bad("size must be a non-negative integer", "size");
    }
    entry.size = size as number;
  }
  if (mode !== undefined) {
    if (!Number.isSafeInteger(mode) || (mode as number) < 0 || (mode as number) > 0o7777) {
      throw bad("mode must be an integer from 0 to 0o7777", "mode");
    }
    entry.mode = mode as number;
  }
  if (mtime !== undefined) {
    if (typeof mtime !== "number" || !Number.isFinite(mtime) || Math.abs(mtime) > 8.64e15) {
      throw bad("mtime must be milliseconds since the epoch", "mtime");
    }
    entry.mtime = mtime;
  }
  for (const [field, value] of [["overwrite", overwrite], ["resume", resume]] as const) {
    if (value !== undefined && typeof value !== "boolean") {
      throw bad(`${field} must be true or false`, field);
    }
  }
  if (entry.resume && type === "dir") throw bad("a directory cannot be resumed", "resume");
  return entry;
}

/**
 * Reads a SHA-256 given as 64 hex digits.
 *
 * @param value the field value
 * @param field the field name, for the error
 * @returns the lower-case hex digest
 * @throws {ProtocolError} `bad_message` when it is not 64 hex digits
 *
 * @example Accept upper case
 * ```ts
 * import { parseSha256 } from "./upload_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(parseSha256("AB".repeat(32), "sha256"), "ab".repeat(32));
 * ```
 */
export function parseSha256(value: unknown, field: string): string {
  if (typeof value !== "string" || !/^[0-9a-fA-F]{64}$/.test(value)) {
    throw new ProtocolError(
      "bad_message",
      `Cannot read ${field}: expected a SHA-256 as 64 hex digits`,
      { field },
    );
  }
  return value.toLowerCase();
}
