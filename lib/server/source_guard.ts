/**
 * Per-source caps and penalties for connections that have not authenticated
 * yet, after OpenSSH's `MaxStartups` (counted per source) and
 * `PerSourcePenalties`.
 *
 * A source is a peer's address without its port, so that one host cannot
 * take every handshake slot or keep guessing the token at full speed:
 *
 * - at most `maxPerSource` connections from one source may be in their
 *   handshake at once;
 * - each failed authentication shuts the source out for a penalty that
 *   starts at `penaltyBase` and grows by `penaltyGrowth` with each further
 *   failure, up to `penaltyMax`;
 * - a source's record is forgotten once it has nothing in flight, no penalty
 *   in force, and no failure for `forgetAfter`.
 *
 * IPv4-mapped IPv6 peers count as their IPv4 address. IPv6 peers are grouped
 * by their /64 network: a single host or home is normally given a whole /64
 * and can pick any of its 2^64 addresses, so counting addresses would let it
 * dodge every cap and penalty. The price is that hosts sharing a /64 (or an
 * IPv4 NAT) share their caps and penalties. Peers without an IP address
 * (Unix-socket peers) are all one source, `"local"`.
 *
 * The table of sources is bounded by `maxSources`; see
 * {@linkcode SourceGuard} for what is evicted when it is full. Everything is
 * in memory and driven by the clock passed in, so the guard needs no timers.
 *
 * @module
 */

import ipaddr from "ipaddr.js";

/** Options for {@linkcode SourceGuard}. */
export interface SourceGuardOptions {
  /**
   * Connections from one source that may be in their handshake at once.
   *
   * @default {10}
   */
  maxPerSource?: number;
  /**
   * Milliseconds a source is shut out after its first failed authentication;
   * 0 disables penalties.
   *
   * @default {1000}
   */
  penaltyBase?: number;
  /**
   * Failed authentications a source may have before penalties start (they
   * are forgotten after `forgetAfter` without a failure, or on a success):
   * a user who mistypes once is not shut out.
   *
   * @default {0}
   */
  freeFailures?: number;
  /**
   * Longest penalty, in milliseconds.
   *
   * @default {600000}
   */
  penaltyMax?: number;
  /**
   * Factor by which each further failure lengthens the penalty; at least 1.
   *
   * @default {2}
   */
  penaltyGrowth?: number;
  /**
   * Milliseconds without a failure after which a source's failures are
   * forgotten (once its penalty is over and nothing is in flight).
   *
   * @default {600000}
   */
  forgetAfter?: number;
  /**
   * Most sources remembered at once.
   *
   * @default {10000}
   */
  maxSources?: number;
  /**
   * The clock, in milliseconds; tests pass a fake one.
   *
   * @default {performance.now}
   */
  now?: () => number;
}

/**
 * What {@linkcode SourceGuard.admit} decided. When admitted, call `release`
 * once the connection has finished its handshake or closed. When refused,
 * `reason` is `"penalty"` with `retryAfter` (milliseconds until the penalty
 * ends), or `"per_source"` with `limit` (the cap in force).
 */
export type AdmitResult =
  | { ok: true; release: () => void }
  | { ok: false; reason: "per_source" | "penalty"; retryAfter?: number; limit?: number };

/** What the guard remembers about one source. */
interface SourceRecord {
  /** Admitted connections not yet released. */
  inFlight: number;
  /** Failed authentications not yet forgotten. */
  failures: number;
  /** When the last failure happened. */
  lastFailure: number;
  /** The last penalty given, in milliseconds; the next one grows from it. */
  lastPenalty: number;
  /** Until when the source is shut out. */
  penaltyUntil: number;
}

/** The source that every peer without an IP address belongs to. */
const LOCAL_SOURCE = "local";

function check(
  name: string,
  value: number,
  valid: (n: number) => boolean,
  expected: string,
): number {
  if (!valid(value)) throw new RangeError(`Cannot use ${name} "${value}": expected ${expected}`);
  return value;
}

/**
 * Names the source a peer's connections are counted under: the IPv4 address
 * (IPv4-mapped IPv6 folded to IPv4), the IPv6 /64 network, or `"local"` for a
 * peer without an IP address.
 *
 * @param host the peer's address without port or brackets, as in `Deno.NetAddr.hostname`
 * @returns the source's name, for counting and for logs
 *
 * @example Fold mapped addresses and group IPv6 by /64
 * ```ts
 * import { sourceOf } from "./source_guard.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(sourceOf("::ffff:192.0.2.7"), "192.0.2.7");
 * deepEqual(sourceOf("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
 * deepEqual(sourceOf("unix"), "local");
 * ```
 */
export function sourceOf(host: string): string {
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return ipaddr.IPv4.parse(host).toString();
  if (!ipaddr.IPv6.isValid(host)) return LOCAL_SOURCE;
  const address = ipaddr.IPv6.parse(host);
  if (address.isIPv4MappedAddress()) return address.toIPv4Address().toString();
  const network = new ipaddr.IPv6([...address.parts.slice(0, 4), 0, 0, 0, 0]);
  return `${network.toRFC5952String()}/64`;
}

/**
 * Counts connections in their handshake per source and shuts out sources
 * whose authentication failed, for a growing time.
 *
 * Call {@linkcode SourceGuard.admit} when a connection is accepted and the
 * `release` it returns when the handshake ends, {@linkcode SourceGuard.authFailed}
 * when a peer's proof is wrong and {@linkcode SourceGuard.authSucceeded} when
 * it is right. Sources never affect each other: a flood from one address
 * fills only that address's record.
 *
 * A success resets the source's failure count, so a user who mistyped once
 * starts again from `penaltyBase` next time, but it does not lift a penalty
 * already in force: on a shared source (NAT, a /64) a legitimate login must
 * not let someone else's guessing resume early.
 *
 * When the table is full and a new source arrives, the guard first drops
 * the least recently active source that has nothing in flight and no penalty
 * in force (it loses only its failure count), else the least recently active
 * penalised source with nothing in flight (which is then let off early: a
 * bounded table cannot remember everyone). Sources with connections in
 * flight are never dropped; if every source has one (`maxSources` below the
 * server's limit on concurrent handshakes), the new source is refused as
 * `"per_source"` with `limit` set to `maxSources`. A full table costs one
 * walk over it per new source; each call also forgets the least recently
 * active record if it has expired, so stale records do not wait for the
 * table to fill.
 *
 * @example Cap one source and penalise a failed authentication
 * ```ts
 * import { SourceGuard } from "./source_guard.ts";
 * import { deepEqual, ok } from "node:assert/strict";
 *
 * let now = 0;
 * const guard = new SourceGuard({ maxPerSource: 1, penaltyBase: 1000, now: () => now });
 * const first = guard.admit("192.0.2.7");
 * ok(first.ok);
 * deepEqual(guard.admit("192.0.2.7"), { ok: false, reason: "per_source", limit: 1 });
 * first.release();
 * guard.authFailed("192.0.2.7");
 * deepEqual(guard.admit("192.0.2.7"), { ok: false, reason: "penalty", retryAfter: 1000 });
 * ok(guard.admit("198.51.100.1").ok);
 * now += 1000;
 * ok(guard.admit("192.0.2.7").ok);
 * ```
 */
export class SourceGuard {
  readonly #maxPerSource: number;
  readonly #penaltyBase: number;
  readonly #penaltyMax: number;
  readonly #penaltyGrowth: number;
  readonly #freeFailures: number;
  readonly #forgetAfter: number;
  readonly #maxSources: number;
  readonly #now: () => number;
  /** Records in order of last activity, least recent first. */
  readonly #sources = new Map<string, SourceRecord>();

  /**
   * Creates a guard with an empty table.
   *
   * @param options caps, penalties and the clock
   * @throws {RangeError} when an option is out of range
   */
  constructor(options: SourceGuardOptions = {}) {
    const {
      maxPerSource = 10,
      penaltyBase = 1_000,
      penaltyMax = 600_000,
      penaltyGrowth = 2,
      freeFailures = 0,
      forgetAfter = 600_000,
      maxSources = 10_000,
    } = options;
    const count = (n: number) => Number.isSafeInteger(n) && n > 0;
    const ms = (n: number) => Number.isFinite(n) && n >= 0;
    this.#maxPerSource = check("maxPerSource", maxPerSource, count, "a positive integer");
    this.#penaltyBase = check("penaltyBase", penaltyBase, ms, "a non-negative number of ms");
    this.#freeFailures = check(
      "freeFailures",
      freeFailures,
      (n) => Number.isSafeInteger(n) && n >= 0,
      "a whole number of at least 0",
    );
    this.#penaltyMax = check(
      "penaltyMax",
      penaltyMax,
      (n) => ms(n) && n >= penaltyBase,
      `a number of ms no smaller than penaltyBase (${penaltyBase})`,
    );
    this.#penaltyGrowth = check(
      "penaltyGrowth",
      penaltyGrowth,
      (n) => Number.isFinite(n) && n >= 1,
      "a finite factor of at least 1",
    );
    this.#forgetAfter = check(
      "forgetAfter",
      forgetAfter,
      (n) => ms(n) && n > 0,
      "a positive number of ms",
    );
    this.#maxSources = check("maxSources", maxSources, count, "a positive integer");
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * The cap on connections in flight from one source. A `"per_source"`
   * refusal whose `limit` differs from it was made because the table of
   * sources is full (`limit` is then `maxSources`).
   */
  get maxPerSource(): number {
    return this.#maxPerSource;
  }

  /** Sources remembered now: those with connections in flight, penalties or failures. */
  get size(): number {
    return this.#sources.size;
  }

  /**
   * Decides whether a connection just accepted from `host` may start its
   * handshake, and counts it if so.
   *
   * @param host the peer's address, as for {@linkcode sourceOf}
   * @returns `ok` with a `release` to call once (more calls do nothing) when
   *   the handshake ends or the connection closes; or why not
   *
   * @example Release is idempotent
   * ```ts
   * import { SourceGuard } from "./source_guard.ts";
   * import { deepEqual, ok } from "node:assert/strict";
   *
   * const guard = new SourceGuard({ maxPerSource: 2 });
   * const a = guard.admit("2001:db8::1");
   * const b = guard.admit("2001:db8::2"); // the same /64
   * ok(a.ok && b.ok);
   * a.release();
   * a.release();
   * ok(guard.admit("2001:db8::3").ok);
   * deepEqual(guard.admit("2001:db8::4"), { ok: false, reason: "per_source", limit: 2 });
   * ```
   */
  admit(host: string): AdmitResult {
    const now = this.#now();
    this.#forgetOldest(now);
    const key = sourceOf(host);
    let record = this.#sources.get(key);
    if (record !== undefined) {
      this.#expire(record, now);
      if (now < record.penaltyUntil) {
        return { ok: false, reason: "penalty", retryAfter: Math.ceil(record.penaltyUntil - now) };
      }
      if (record.inFlight >= this.#maxPerSource) {
        return { ok: false, reason: "per_source", limit: this.#maxPerSource };
      }
    }
    record = this.#touch(key, now);
    if (record === undefined) {
      // Every remembered source has a connection in flight: fail closed.
      return { ok: false, reason: "per_source", limit: this.#maxSources };
    }
    record.inFlight++;
    const admitted = record;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        admitted.inFlight--;
        if (this.#sources.get(key) === admitted) this.#dropIfIdle(key, admitted, this.#now());
      },
    };
  }

  /**
   * Records a failed authentication from `host` and, past `freeFailures`,
   * shuts its source out: for `penaltyBase` after the first penalised failure, `penaltyGrowth` times longer
   * after each further one, never longer than `penaltyMax`.
   *
   * @param host the peer's address, as for {@linkcode sourceOf}
   * @returns the penalty now given, in milliseconds (0 if the table had no
   *   room for the source)
   *
   * @example Penalties grow and are capped
   * ```ts
   * import { SourceGuard } from "./source_guard.ts";
   * import { deepEqual } from "node:assert/strict";
   *
   * const guard = new SourceGuard({ penaltyBase: 1000, penaltyMax: 3000, now: () => 0 });
   * const penalties = [1, 2, 3, 4].map(() => guard.authFailed("192.0.2.7"));
   * deepEqual(penalties, [1000, 2000, 3000, 3000]);
   * ```
   */
  authFailed(host: string): number {
    const now = this.#now();
    this.#forgetOldest(now);
    const key = sourceOf(host);
    const existing = this.#sources.get(key);
    if (existing !== undefined) this.#expire(existing, now);
    const record = this.#touch(key, now);
    if (record === undefined) return 0;
    record.failures++;
    record.lastFailure = now;
    if (record.failures <= this.#freeFailures) return 0;
    record.lastPenalty = record.failures === this.#freeFailures + 1
      ? this.#penaltyBase
      : Math.min(this.#penaltyMax, record.lastPenalty * this.#penaltyGrowth);
    record.penaltyUntil = Math.max(record.penaltyUntil, now + record.lastPenalty);
    return record.lastPenalty;
  }

  /**
   * Records a successful authentication from `host`: its failure count is
   * reset, so a later failure is penalised from `penaltyBase` again. A
   * penalty already in force is not lifted (see {@linkcode SourceGuard}).
   *
   * @param host the peer's address, as for {@linkcode sourceOf}
   *
   * @example A success restarts the growth
   * ```ts
   * import { SourceGuard } from "./source_guard.ts";
   * import { deepEqual } from "node:assert/strict";
   *
   * const guard = new SourceGuard({ penaltyBase: 1000, now: () => 0 });
   * guard.authFailed("192.0.2.7");
   * guard.authSucceeded("192.0.2.7");
   * deepEqual(guard.authFailed("192.0.2.7"), 1000);
   * ```
   */
  authSucceeded(host: string): void {
    const key = sourceOf(host);
    const record = this.#sources.get(key);
    if (record === undefined) return;
    record.failures = 0;
    record.lastPenalty = 0;
    this.#dropIfIdle(key, record, this.#now());
  }

  /** Forgets the failures of a record whose penalty is over and whose last failure is old. */
  #expire(record: SourceRecord, now: number): void {
    if (
      record.failures > 0 && now >= record.penaltyUntil &&
      now - record.lastFailure >= this.#forgetAfter
    ) {
      record.failures = 0;
      record.lastPenalty = 0;
    }
  }

  /** Whether a record holds nothing worth keeping. */
  #idle(record: SourceRecord, now: number): boolean {
    this.#expire(record, now);
    return record.inFlight === 0 && record.failures === 0 && now >= record.penaltyUntil;
  }

  #dropIfIdle(key: string, record: SourceRecord, now: number): void {
    if (this.#idle(record, now)) this.#sources.delete(key);
  }

  /** Drops the least recently active record if it has expired: keeps stale records few. */
  #forgetOldest(now: number): void {
    for (const [key, record] of this.#sources) {
      this.#dropIfIdle(key, record, now);
      return;
    }
  }

  /**
   * Returns the record for `key`, created if need be, as the most recently
   * active; `undefined` when the table is full and nothing can be evicted.
   */
  #touch(key: string, now: number): SourceRecord | undefined {
    let record = this.#sources.get(key);
    if (record !== undefined) {
      // Re-inserting moves it to the end: the map stays in order of activity.
      this.#sources.delete(key);
    } else {
      if (this.#sources.size >= this.#maxSources && !this.#evict(now)) return undefined;
      record = {
        inFlight: 0,
        failures: 0,
        lastFailure: -Infinity,
        lastPenalty: 0,
        penaltyUntil: -Infinity,
      };
    }
    this.#sources.set(key, record);
    return record;
  }

  /** Makes room for one record; see the class doc for the order. */
  #evict(now: number): boolean {
    let penalised: string | undefined;
    for (const [key, record] of this.#sources) {
      if (record.inFlight > 0) continue;
      if (now >= record.penaltyUntil) {
        this.#sources.delete(key);
        return true;
      }
      penalised ??= key;
    }
    if (penalised === undefined) return false;
    this.#sources.delete(penalised);
    return true;
  }
}
