/**
 * Escaping of text from the network before it reaches a terminal or a log.
 *
 * @module
 */

/** C0 and C1 controls, DEL, and format characters (bidi overrides, zero-width). */
const UNSAFE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

const NAMED: Readonly<Record<string, string>> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\\": "\\\\",
};

/**
 * Replaces control and format characters with visible escapes (`\n`, `\x1b`,
 * `\u202e`) and doubles backslashes, so that text from a peer cannot move the
 * cursor, recolour the screen, retitle the window or reorder what is shown.
 *
 * @param text untrusted text
 * @returns text safe to print
 *
 * @example Neutralise an escape sequence and a bidi override
 * ```ts
 * import { escapeControl } from "@sockit/sockit/client";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(escapeControl("a\u001b[2Jb\u202e"), "a\\x1b[2Jb\\u202e");
 * deepEqual(escapeControl("tab\there"), "tab\\there");
 * ```
 */
export function escapeControl(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.codePointAt(0)!;
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/**
 * Escapes `text` with {@linkcode escapeControl} and cuts it to `max` code
 * points, marking the cut, for log lines a peer can influence.
 *
 * @param text untrusted text
 * @param max the most code points kept
 * @returns text safe to log
 *
 * @example Cut a long name
 * ```ts
 * import { escapeForLog } from "./escape.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(escapeForLog("abcdef", 3), "abc…");
 * ```
 */
export function escapeForLog(text: string, max = 200): string {
  const chars = [...text];
  const cut = chars.length > max ? chars.slice(0, max).join("") + "…" : text;
  return escapeControl(cut);
}
