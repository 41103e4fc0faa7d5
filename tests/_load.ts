/**
 * Helpers for the load tests: a meter that records latencies, errors and
 * peak RSS and prints one summary line, deterministic test patterns, and a
 * watchdog that bounds a scenario in time.
 */

/** How often the resident set size is sampled while a scenario runs. */
const RSS_SAMPLE_MS = 50;
/** Errors kept verbatim for the assertion message. */
const KEPT_ERRORS = 5;

/** Figures of one finished scenario. */
export interface LoadFigures {
  /** Seconds from {@linkcode LoadMeter.start} to {@linkcode LoadMeter.stop}. */
  seconds: number;
  /** Latency samples recorded. */
  samples: number;
  /** Median latency in milliseconds. */
  p50: number;
  /** 99th percentile latency in milliseconds. */
  p99: number;
  /** Highest RSS sampled, in bytes (the whole process: servers and clients). */
  peakRss: number;
  /** RSS when the meter was created, in bytes: what earlier tests left behind. */
  startRss: number;
  /** Errors counted, mismatches included. */
  errors: number;
  /** The first few errors, as text. */
  firstErrors: string[];
}

/**
 * Records what one scenario did: latency samples into a preallocated array,
 * errors by count (keeping the first few), and the peak RSS sampled every
 * {@linkcode RSS_SAMPLE_MS} ms between `start` and `stop`.
 */
export class LoadMeter {
  #latencies: Float64Array;
  #samples = 0;
  #errors = 0;
  readonly #firstErrors: string[] = [];
  #peakRss = 0;
  #startRss = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #started = 0;
  #stopped = 0;

  /**
   * Notes the RSS now as the baseline: create the meter before the
   * scenario opens its connections, so that their memory counts.
   *
   * @param capacity latency samples expected; more grow the array
   */
  constructor(capacity: number) {
    this.#latencies = new Float64Array(Math.max(1, capacity));
    this.#startRss = Deno.memoryUsage().rss;
  }

  /** Starts the clock and the RSS sampler. */
  start(): void {
    this.#sampleRss();
    this.#timer = setInterval(() => this.#sampleRss(), RSS_SAMPLE_MS);
    this.#started = performance.now();
  }

  /** Stops the clock and the RSS sampler; safe to call twice. */
  stop(): void {
    if (this.#timer === undefined) return;
    this.#stopped = performance.now();
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sampleRss();
  }

  #sampleRss(): void {
    this.#peakRss = Math.max(this.#peakRss, Deno.memoryUsage().rss);
  }

  /** Records one latency in milliseconds. */
  latency(ms: number): void {
    if (this.#samples === this.#latencies.length) {
      const grown = new Float64Array(this.#latencies.length * 2);
      grown.set(this.#latencies);
      this.#latencies = grown;
    }
    this.#latencies[this.#samples++] = ms;
  }

  /** Counts one error (a failed operation, a mismatch, a lost message). */
  error(what: unknown): void {
    this.#errors++;
    if (this.#firstErrors.length < KEPT_ERRORS) {
      this.#firstErrors.push(
        what instanceof Error ? `${what.name}: ${what.message}` : String(what),
      );
    }
  }

  /** Errors counted so far. */
  get errors(): number {
    return this.#errors;
  }

  /** The figures; stops the meter if it still runs. */
  figures(): LoadFigures {
    this.stop();
    const sorted = this.#latencies.subarray(0, this.#samples).sort();
    return {
      seconds: (this.#stopped - this.#started) / 1000,
      samples: this.#samples,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      peakRss: this.#peakRss,
      startRss: this.#startRss,
      errors: this.#errors,
      firstErrors: [...this.#firstErrors],
    };
  }
}

/** The nearest-rank percentile of sorted samples; NaN when there are none. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/** `1234567` as `"1,234,567"`. */
export function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** A rate as `"81k/s"`, `"950/s"` or `"1.2M/s"`. */
export function rate(count: number, seconds: number): string {
  const perSecond = count / seconds;
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(1)}M/s`;
  if (perSecond >= 1e4) return `${Math.round(perSecond / 1e3)}k/s`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k/s`;
  return `${perSecond.toFixed(1)}/s`;
}

function mib(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}

function ms(value: number): string {
  return value < 10 ? value.toFixed(1) : thousands(value);
}

/**
 * The summary line of a scenario, such as
 * `load: echo 1000 clients x 1000 frames: 1,000,000 frames verified in 12.3 s
 * (81k/s), p50 0.4 ms, p99 9.1 ms, peak RSS 310 MiB (+80 MiB), 0 errors`,
 * where the part in brackets is the growth over the RSS when the meter was
 * created.
 *
 * @param label what ran: `echo 1000 clients x 1000 frames`
 * @param verified what was verified: `1,000,000 frames`
 * @param throughput the rate: `81k/s`
 * @param figures the meter's figures
 */
export function summaryLine(
  label: string,
  verified: string,
  throughput: string,
  figures: LoadFigures,
): string {
  return `load: ${label}: ${verified} verified in ${figures.seconds.toFixed(1)} s ` +
    `(${throughput}), p50 ${ms(figures.p50)} ms, p99 ${ms(figures.p99)} ms, ` +
    `peak RSS ${mib(figures.peakRss)} MiB (+${mib(figures.peakRss - figures.startRss)} MiB), ` +
    `${figures.errors} errors`;
}

/**
 * Fills `target` with a pattern that depends on `seed` alone (xorshift32),
 * so that a receiver can rebuild what a sender sent.
 */
export function fillPattern(target: Uint8Array, seed: number): void {
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < target.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    target[i] = x & 0xff;
  }
}

/** `size` random bytes (getRandomValues fills at most 64 KiB at a time). */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65536)));
  }
  return bytes;
}

/**
 * Runs `open(i)` for `i` in `[0, count)`, `batch` at a time, so that a
 * thousand connects never overflow the listen queue. All or none: on the
 * first failure the ones opened are handed to `close` and the error thrown.
 */
export async function openInBatches<T>(
  count: number,
  batch: number,
  open: (i: number) => Promise<T>,
  close: (item: T) => void,
): Promise<T[]> {
  const opened: T[] = [];
  while (opened.length < count) {
    const base = opened.length;
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(batch, count - base) }, (_, k) => open(base + k)),
    );
    for (const result of results) if (result.status === "fulfilled") opened.push(result.value);
    const failed = results.find((result) => result.status === "rejected");
    if (failed) {
      for (const item of opened) close(item);
      throw failed.reason;
    }
  }
  return opened;
}

/**
 * Calls `onExpire` once if not disposed within `ms` milliseconds: a
 * scenario's upper bound in time. The callback closes the clients, so that
 * every pending read ends and the scenario fails instead of hanging.
 */
export class Watchdog implements Disposable {
  readonly #timer: ReturnType<typeof setTimeout>;
  #expired = false;

  /**
   * @param ms the time allowed
   * @param onExpire what to do when it is up
   */
  constructor(ms: number, onExpire: () => void) {
    this.#timer = setTimeout(() => {
      this.#expired = true;
      onExpire();
    }, ms);
  }

  /** Whether the time ran out. */
  get expired(): boolean {
    return this.#expired;
  }

  [Symbol.dispose](): void {
    clearTimeout(this.#timer);
  }
}
