/**
 * Remote file names for uploads: data to validate, never a path to follow.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";

/** Bounds on a remote name. */
export const NAME_LIMITS = {
  /** Longest component, in UTF-8 bytes (the common file system limit): 255. */
  maxComponentBytes: 255,
  /** Longest whole name, in UTF-8 bytes: 1,024. */
  maxNameBytes: 1024,
  /** Most components: 64. */
  maxDepth: 64,
} as const;

/**
 * The directory inside an upload directory that holds partial files; no
 * remote name may start with it.
 */
export const PARTIAL_DIR = ".sockit-partial";

const encoder = new TextEncoder();
/** A Windows server's file system cannot hold what the portable rule refuses. */
const WINDOWS = Deno.build.os === "windows";

/** Windows device names, reserved with any extension and in any case. */
const DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;
/**
 * C0 and C1 controls, DEL, and the bidirectional and zero-width format
 * characters that make a name display as something it is not.
 */
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/u;
/**
 * Characters Windows forbids in names but `\` (always refused, as a
 * separator): drives, streams and wildcards.
 */
const WINDOWS_FORBIDDEN = /[:*?"<>|]/;

/** Options for {@linkcode parseRemoteName}. */
export interface RemoteNameOptions {
  /**
   * Also refuse what Windows cannot hold: the characters `: * ? " < > |`,
   * device names (`CON`, `aux.c`, `LPT1.txt`, …) and components that end in
   * a dot or space. On a Windows server the rule applies whatever this says.
   * @default {false}
   */
  portable?: boolean;
}

function refuse(name: string, reason: string): ProtocolError {
  // The name is data from a peer: quote it escaped and bounded.
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
  return new ProtocolError("bad_name", `Cannot accept file name ${shown}: ${reason}`, {
    reason,
  });
}

/**
 * Validates a remote file name and returns its components.
 *
 * A valid name is relative, uses `/` between components, and is in Unicode
 * NFC (the name is normalised first, so NFC and NFD spellings name the same
 * file). No component is empty, `.` or `..`; no character is `\` (a
 * separator on Windows), a control, bidi or zero-width format character
 * (they make a name display as something it is not). Lengths are bounded by
 * {@linkcode NAME_LIMITS}. Everything else a POSIX file system holds is
 * accepted: `aux.c`, `what?.txt`, `trailing dot.`. With
 * {@linkcode RemoteNameOptions.portable} the Windows rules apply as well.
 * The check is purely lexical: it never touches the file system.
 *
 * @param name the name a peer sent
 * @param options whether the Windows-safe set applies
 * @returns the NFC components, at least one
 * @throws {ProtocolError} `bad_name`, saying which rule failed
 *
 * @example Accept a nested name, refuse traversal
 * ```ts
 * import { parseRemoteName } from "@sockit/sockit/upload";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * deepEqual(parseRemoteName("photos/2026/a.jpg"), ["photos", "2026", "a.jpg"]);
 * deepEqual(parseRemoteName("what?.txt"), ["what?.txt"]);
 * throws(() => parseRemoteName("../etc/passwd"));
 * throws(() => parseRemoteName("C:\\x"));
 * throws(() => parseRemoteName("what?.txt", { portable: true }));
 * ```
 */
export function parseRemoteName(name: string, options: RemoteNameOptions = {}): string[] {
  const portable = options.portable === true || WINDOWS;
  if (typeof name !== "string" || name === "") throw refuse(String(name), "empty");
  if (!name.isWellFormed()) throw refuse(name, "not valid Unicode");
  const nfc = name.normalize("NFC");
  if (encoder.encode(nfc).length > NAME_LIMITS.maxNameBytes) {
    throw refuse(name, `longer than ${NAME_LIMITS.maxNameBytes} bytes`);
  }
  if (CONTROL.test(nfc)) throw refuse(name, "control or invisible formatting character");
  if (nfc.startsWith("/")) throw refuse(name, "absolute path");
  if (nfc.includes("\\")) throw refuse(name, "contains \\ (a separator on Windows)");
  if (portable && WINDOWS_FORBIDDEN.test(nfc)) {
    throw refuse(name, 'contains one of : * ? " < > | (not portable to Windows)');
  }
  const parts = nfc.split("/");
  if (parts.length > NAME_LIMITS.maxDepth) {
    throw refuse(name, `more than ${NAME_LIMITS.maxDepth} components`);
  }
  for (const part of parts) {
    if (part === "") throw refuse(name, "empty component");
    if (part === "." || part === "..") throw refuse(name, `"${part}" component`);
    if (encoder.encode(part).length > NAME_LIMITS.maxComponentBytes) {
      throw refuse(name, `a component is longer than ${NAME_LIMITS.maxComponentBytes} bytes`);
    }
    if (!portable) continue;
    if (DEVICE.test(part)) throw refuse(name, "Windows device name (not portable to Windows)");
    if (part.endsWith(".") || part.endsWith(" ")) {
      throw refuse(name, "a component ends in a dot or space (not portable to Windows)");
    }
  }
  // Case-blind: on a case-insensitive file system any spelling is the same directory.
  if (parts[0]!.toLowerCase() === PARTIAL_DIR) throw refuse(name, `"${PARTIAL_DIR}" is reserved`);
  return parts;
}
