/**
 * Trust on first use: the certificate fingerprints a client has seen, by
 * server address, in a file like ssh's `known_hosts`.
 *
 * Each line is `ADDRESS sha256:FINGERPRINT`, where ADDRESS is `HOST:PORT`
 * or `[IPV6]:PORT`; `#` starts a comment. The file is made mode 0600 in a
 * 0700 directory.
 *
 * @module
 */

import { makePrivateParents } from "../config/_private_file.ts";
import { formatFingerprint, parseFingerprint } from "./fingerprint.ts";

/** What {@linkcode checkKnownHost} found. */
export type KnownHostResult =
  | { status: "known"; fingerprint: string }
  | { status: "new"; fingerprint: string }
  | { status: "changed"; fingerprint: string; expected: string };

/**
 * Reads the fingerprints recorded in `path`.
 *
 * @param path the known-hosts file
 * @returns fingerprints (64 lower-case hex digits) by address; empty when the file does not exist
 * @throws {TypeError} when a line is malformed (its number is in the message)
 *
 * @example A missing file knows nobody
 * ```ts
 * import { readKnownHosts } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * deepEqual((await readKnownHosts(`${dir}/known_hosts`)).size, 0);
 * await Deno.remove(dir);
 * ```
 */
export async function readKnownHosts(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return new Map();
    throw error;
  }
  const hosts = new Map<string, string>();
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") continue;
    const [address, fingerprint, extra] = line.split(/\s+/);
    try {
      if (fingerprint === undefined || extra !== undefined) throw new Error("two fields expected");
      hosts.set(address!, parseFingerprint(fingerprint));
    } catch (error) {
      throw new TypeError(
        `Cannot read known hosts "${path}" line ${i + 1}: expected ADDRESS sha256:FINGERPRINT`,
        { cause: error },
      );
    }
  }
  return hosts;
}

/**
 * Checks `fingerprint` against what `path` recorded for `address`, and
 * records it when the address is new.
 *
 * @param path the known-hosts file
 * @param address the server, as `HOST:PORT` or `[IPV6]:PORT`
 * @param fingerprint the certificate's SHA-256 (64 hex digits)
 * @returns `known` (it matches), `new` (now recorded) or `changed` (it
 *   differs from the recorded one, which stays)
 *
 * @example First use records, second use matches
 * ```ts
 * import { checkKnownHost } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const file = `${dir}/known_hosts`;
 * const fp = "ab".repeat(32);
 * deepEqual((await checkKnownHost(file, "127.0.0.1:7070", fp)).status, "new");
 * deepEqual((await checkKnownHost(file, "127.0.0.1:7070", fp)).status, "known");
 * deepEqual((await checkKnownHost(file, "127.0.0.1:7070", "cd".repeat(32))).status, "changed");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkKnownHost(
  path: string,
  address: string,
  fingerprint: string,
): Promise<KnownHostResult> {
  const wanted = parseFingerprint(fingerprint);
  const expected = (await readKnownHosts(path)).get(address);
  if (expected === wanted) return { status: "known", fingerprint: wanted };
  if (expected !== undefined) return { status: "changed", fingerprint: wanted, expected };
  await makePrivateParents(path);
  // One short append per line: concurrent clients do not interleave lines.
  await Deno.writeTextFile(path, `${address} ${formatFingerprint(wanted)}\n`, {
    append: true,
    mode: 0o600,
  });
  return { status: "new", fingerprint: wanted };
}
