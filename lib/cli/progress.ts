/**
 * A one-line progress display for transfers on a terminal: the current
 * file's share, the total, the rate and the time left.
 *
 * @module
 */

import { escapeControl } from "../text/escape.ts";
import { formatSize } from "../text/units.ts";

/** What a progress line shows. */
export interface ProgressState {
  /** The entry being transferred (escaped before it is shown). */
  name: string;
  /** Bytes of it done. */
  done: number;
  /** Its size. */
  size: number;
  /** Bytes of all entries done. */
  totalDone: number;
  /** Bytes of all entries. */
  totalSize: number;
}

function percent(done: number, size: number): string {
  return `${size === 0 ? 100 : Math.floor((done / size) * 100)}%`.padStart(4);
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * Formats one progress line.
 *
 * @param state the transfer's position
 * @param rate bytes per second over the recent past
 * @param width the terminal's width; the name is shortened to fit
 * @returns the line, without a line ending
 *
 * @example A file half way through
 * ```ts
 * import { formatProgress } from "./progress.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const line = formatProgress(
 *   { name: "a.bin", done: 512, size: 1024, totalDone: 512, totalSize: 2048 },
 *   256,
 *   80,
 * );
 * deepEqual(line, "a.bin   50%  total  25%  512 B of 2.0 KiB  256 B/s  ETA 00:06");
 * ```
 */
export function formatProgress(state: ProgressState, rate: number, width = 80): string {
  const eta = rate > 0 ? (state.totalSize - state.totalDone) / rate : Infinity;
  const tail = `${percent(state.done, state.size)}  total ${
    percent(state.totalDone, state.totalSize)
  }  ${formatSize(state.totalDone)} of ${formatSize(state.totalSize)}  ${formatSize(rate)}/s  ETA ${
    duration(eta)
  }`;
  let name = escapeControl(state.name);
  const room = Math.max(8, width - tail.length - 2);
  if (name.length > room) name = `…${name.slice(name.length - room + 1)}`;
  return `${name}  ${tail}`;
}

/**
 * Draws progress on one terminal line, at most ten times a second, and
 * clears it when done.
 *
 * @example Show progress on stderr
 * ```ts ignore
 * const bar = new ProgressBar(Deno.stderr);
 * await upload(addr, paths, { token, onProgress: (p) => bar.update(p) });
 * bar.clear();
 * ```
 */
export class ProgressBar {
  readonly #out: { writeSync(p: Uint8Array): number };
  readonly #width: () => number;
  #last = 0;
  #shown = false;
  /** Samples of (time, totalDone) over the last few seconds, for the rate. */
  readonly #samples: [number, number][] = [];

  /**
   * Creates a progress bar.
   *
   * @param out the terminal stream, such as `Deno.stderr`
   * @param width the terminal's width, asked again for every line
   */
  constructor(out: { writeSync(p: Uint8Array): number }, width: () => number = () => 80) {
    this.#out = out;
    this.#width = width;
  }

  /**
   * Shows `state`, unless a line was drawn less than 100 ms ago.
   *
   * @param state the transfer's position
   */
  update(state: ProgressState): void {
    const now = performance.now();
    this.#samples.push([now, state.totalDone]);
    while (this.#samples.length > 2 && now - this.#samples[0]![0] > 3000) this.#samples.shift();
    if (now - this.#last < 100 && state.totalDone < state.totalSize) return;
    this.#last = now;
    const [t0, d0] = this.#samples[0]!;
    const rate = now > t0 ? ((state.totalDone - d0) * 1000) / (now - t0) : 0;
    const line = formatProgress(state, rate, this.#width());
    this.#write(`\r\x1b[2K${line}`);
    this.#shown = true;
  }

  /** Removes the line, so what follows starts on a clean line. */
  clear(): void {
    if (this.#shown) this.#write("\r\x1b[2K");
    this.#shown = false;
  }

  #write(text: string): void {
    const bytes = new TextEncoder().encode(text);
    for (let at = 0; at < bytes.length;) at += this.#out.writeSync(bytes.subarray(at));
  }
}
