/**
 * Parsing of the durations and sizes that command-line flags take.
 *
 * Both parsers are strict: a unit is required (except for plain byte counts)
 * and anything else is an error that quotes the input. General-purpose
 * libraries accept far more ("1.5 years", "10 kb" meaning 1000 or 1024), which
 * is the wrong trade for limits that guard a server.
 *
 * @module
 */

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

/**
 * Parses a duration such as `500ms`, `10s`, `5m` or `1h` into milliseconds.
 *
 * @param text the duration
 * @returns milliseconds
 * @throws {RangeError} when the text is not a number followed by ms, s, m or h
 *
 * @example Parse durations
 * ```ts
 * import { parseDuration } from "./units.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(parseDuration("500ms"), 500);
 * deepEqual(parseDuration("1.5s"), 1500);
 * deepEqual(parseDuration("5m"), 300_000);
 * ```
 */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  const value = match ? Number(match[1]) * DURATION_UNITS[match[2]!]! : NaN;
  if (!Number.isFinite(value) || value > 2 ** 31 - 1) {
    throw new RangeError(
      `Cannot parse duration "${text}": expected a number and a unit (ms, s, m, h), such as "10s"`,
    );
  }
  return Math.round(value);
}

/**
 * Parses a size such as `65536`, `64KiB`, `1MiB` or `2GB` into bytes.
 *
 * Binary units (KiB, MiB, GiB) are powers of 1024, decimal units (kB, MB, GB)
 * powers of 1000; a bare number is bytes.
 *
 * @param text the size
 * @returns bytes
 * @throws {RangeError} when the text is not a whole number of bytes
 *
 * @example Parse sizes
 * ```ts
 * import { parseSize } from "./units.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(parseSize("64KiB"), 65_536);
 * deepEqual(parseSize("1MiB"), 1_048_576);
 * deepEqual(parseSize("100"), 100);
 * ```
 */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  const value = match && unit !== undefined ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(
      `Cannot parse size "${text}": expected a whole number of bytes, such as "65536" or "64KiB"`,
    );
  }
  return value;
}

/**
 * Formats a byte count for people: bytes below 1 KiB, else one decimal in
 * KiB, MiB, GiB or TiB.
 *
 * @param bytes a non-negative count
 * @returns the text
 *
 * @example Sizes
 * ```ts
 * import { formatSize } from "./units.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual([formatSize(512), formatSize(1536), formatSize(3 * 1024 ** 3)], [
 *   "512 B",
 *   "1.5 KiB",
 *   "3.0 GiB",
 * ]);
 * ```
 */
export function formatSize(bytes: number): string {
  if (!(bytes >= 1024)) return `${Math.max(0, Math.round(bytes || 0))} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
