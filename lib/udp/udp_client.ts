/**
 * UDP clients: a request/response call with timeout and retry, and a ping
 * with round-trip statistics.
 *
 * @module
 */

import { closeQuietly } from "../net/_close.ts";
import { type Address, formatAddress, parseAddress } from "../net/address.ts";
import { MAX_UDP_PAYLOAD, requireDatagrams } from "./_datagram.ts";

/** No reply came in time. */
export class UdpTimeoutError extends Error {
  /** The address asked. */
  readonly address: string;
  /** Attempts made. */
  readonly attempts: number;

  /**
   * Creates the error.
   *
   * @param address the address asked
   * @param attempts how many datagrams were sent
   * @param timeout milliseconds waited after each
   */
  constructor(address: string, attempts: number, timeout: number) {
    super(
      `No reply from "${address}" to ${attempts} datagram${attempts === 1 ? "" : "s"} ` +
        `(${timeout} ms each): nothing answers there, or the port is closed or filtered`,
    );
    this.name = "UdpTimeoutError";
    this.address = address;
    this.attempts = attempts;
  }
}

/** A UDP destination: `HOST:PORT` text, an address, or a socket's own address. */
export type UdpAddress = string | Address | Deno.NetAddr;

function udpTarget(address: UdpAddress): Deno.NetAddr {
  if (typeof address !== "string" && address.transport === "udp") return address;
  const parsed = typeof address === "string" ? parseAddress(address) : address;
  if (parsed.transport !== "tcp") {
    throw new TypeError(`Cannot send UDP to "${formatAddress(parsed)}": expected HOST:PORT`);
  }
  return { transport: "udp", hostname: parsed.hostname, port: parsed.port };
}

/**
 * A local socket to talk to `target` from: on loopback for a loopback
 * target (so `--allow-net` can stay on loopback), else on the wildcard of
 * the target's family.
 */
function localSocket(target: Deno.NetAddr): Deno.DatagramConn {
  requireDatagrams();
  const v6 = target.hostname.includes(":");
  const ip = canonicalIp(target.hostname);
  const loopback = v6 ? ip === "[::1]" : ip?.startsWith("127.") === true;
  const hostname = loopback ? (v6 ? "::1" : ip!) : v6 ? "::" : "0.0.0.0";
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}

/** An IP address in text, with IPv4-mapped IPv6 unwrapped and IPv6 in canonical form. */
function canonicalIp(text: string): string | undefined {
  const host = text.replace(/^::ffff:(?=\d+\.)/i, "");
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return host;
  if (!host.includes(":")) return undefined; // a name, not an address
  try {
    return new URL(`http://[${host}]/`).hostname;
  } catch {
    return undefined;
  }
}

/**
 * Whether a reply came from the address asked. For a host name (not an IP
 * address) only the port can be checked: the name's addresses are not known
 * here.
 */
function sameAddress(a: Deno.Addr, b: Deno.NetAddr): boolean {
  if (a.transport !== "udp" || a.port !== b.port) return false;
  const want = canonicalIp(b.hostname);
  return want === undefined || canonicalIp(a.hostname) === want;
}

/** Options for {@linkcode udpRequest}. */
export interface UdpRequestOptions {
  /** Milliseconds to wait for a reply after each send. @default {1000} */
  timeout?: number;
  /** Sends after the first when no reply comes. @default {2} */
  retries?: number;
}

/**
 * Sends `payload` to `address` and returns the first reply from that
 * address, sending again (up to `retries` times) when none comes within
 * `timeout`. Datagrams from anyone else are ignored.
 *
 * @param address the server, `HOST:PORT` or `[IPV6]:PORT`
 * @param payload up to 65,507 bytes
 * @param options timeout and retries
 * @returns the reply
 * @throws {UdpTimeoutError} when no reply came
 *
 * @example Ask a UDP echo server
 * ```ts
 * import { formatAddress, serveUdp, udpRequest } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = serveUdp({ listen: ["127.0.0.1:0"] });
 * const reply = await udpRequest(server.addrs[0]!, new Uint8Array([1, 2, 3]));
 * deepEqual(reply, new Uint8Array([1, 2, 3]));
 * ```
 */
export async function udpRequest(
  address: UdpAddress,
  payload: Uint8Array,
  options: UdpRequestOptions = {},
): Promise<Uint8Array> {
  if (payload.length > MAX_UDP_PAYLOAD) {
    throw new RangeError(
      `Cannot send ${payload.length} bytes in one datagram: the limit is ${MAX_UDP_PAYLOAD}`,
    );
  }
  const target = udpTarget(address);
  const timeout = options.timeout ?? 1000;
  const attempts = 1 + (options.retries ?? 2);
  const conn = localSocket(target);
  let answer!: (reply: Uint8Array) => void;
  const reply = new Promise<Uint8Array>((resolve) => answer = resolve);
  const listen = (async () => {
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await conn.receive();
      } catch {
        return; // closed at the end
      }
      if (sameAddress(from, target)) return answer(data.slice());
    }
  })();
  try {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      await conn.send(payload, target);
      const got = await Promise.race([reply, sleep(timeout).then(() => undefined)]);
      if (got !== undefined) return got;
    }
    throw new UdpTimeoutError(formatAddress(target), attempts, timeout);
  } finally {
    closeQuietly(conn);
    await listen;
  }
}

/** One answered probe of {@linkcode ping}. */
export interface PingReply {
  /** The probe's sequence number, from 1. */
  seq: number;
  /** Bytes in the reply. */
  bytes: number;
  /** Round-trip time in milliseconds. */
  rtt: number;
  /** It came after its probe's timeout, when the probe already counted as lost. */
  late: boolean;
  /** A reply to this probe had already arrived. */
  duplicate: boolean;
  /** It answers an older probe than one already answered. */
  reordered: boolean;
}

/** The outcome of {@linkcode ping}, in the style of `ping`'s summary. */
export interface PingSummary {
  /** The address pinged. */
  address: string;
  /** Probes sent. */
  sent: number;
  /** Probes answered in time (duplicates and late replies not counted). */
  received: number;
  /** Share of probes not answered in time, in percent. */
  loss: number;
  /** Fastest round trip, ms (`NaN` when none). */
  min: number;
  /** Mean round trip, ms. */
  avg: number;
  /** Slowest round trip, ms. */
  max: number;
  /** Mean deviation of the round trips, ms (as `ping` computes it). */
  mdev: number;
  /** Replies that came after their timeout. */
  late: number;
  /** Duplicate replies. */
  duplicates: number;
  /** Replies out of order. */
  reordered: number;
  /** Milliseconds from the first probe to the end. */
  duration: number;
}

/** Options for {@linkcode ping}. */
export interface PingOptions {
  /** Probes to send. @default {4} */
  count?: number;
  /** Milliseconds between probes. @default {1000} */
  interval?: number;
  /** Bytes per probe, at least 16 (the probe header). @default {56} */
  size?: number;
  /** Milliseconds a probe waits for its reply. @default {1000} */
  timeout?: number;
  /** Called for each reply, as it comes. @default {undefined} */
  onReply?: ((reply: PingReply) => void) | undefined;
  /** Stops sending; the summary covers what was sent. @default {undefined} */
  signal?: AbortSignal | undefined;
}

/** Probe header: magic "SKPG", sequence number, send time (ms, float64). */
const HEADER = 16;
const MAGIC = 0x534b_5047;

/**
 * Sends numbered probes to a UDP echo server and measures each round trip,
 * noting replies that come late, twice or out of order.
 *
 * @param address the server
 * @param options count, interval, size, timeout
 * @returns the statistics
 *
 * @example Ping a local echo server
 * ```ts
 * import { ping, serveUdp } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = serveUdp({ listen: ["127.0.0.1:0"] });
 * const summary = await ping(server.addrs[0]!, { count: 3, interval: 10 });
 * deepEqual([summary.sent, summary.received, summary.loss], [3, 3, 0]);
 * ```
 */
export async function ping(
  address: UdpAddress,
  options: PingOptions = {},
): Promise<PingSummary> {
  const target = udpTarget(address);
  const size = options.size ?? 56;
  const timeout = options.timeout ?? 1000;
  if (!Number.isSafeInteger(size) || size < HEADER || size > MAX_UDP_PAYLOAD) {
    throw new RangeError(
      `Cannot ping with ${size} bytes: expected ${HEADER} to ${MAX_UDP_PAYLOAD}`,
    );
  }
  const conn = localSocket(target);
  const tally = new PingTally(timeout, options.onReply);
  const listen = receiveReplies(conn, target, tally);
  try {
    await sendProbes(conn, target, tally, { ...options, size });
    // Wait for the last probe's reply, or its timeout.
    const end = performance.now() + timeout;
    while (performance.now() < end && tally.waiting && !options.signal?.aborted) {
      await sleep(Math.min(10, end - performance.now()), options.signal);
    }
  } finally {
    closeQuietly(conn);
    await listen;
  }
  return tally.summary(formatAddress(target));
}

/** Sends the numbered probes, `interval` apart, until `count` or the signal. */
async function sendProbes(
  conn: Deno.DatagramConn,
  target: Deno.NetAddr,
  tally: PingTally,
  options: PingOptions & { size: number },
): Promise<void> {
  const count = options.count ?? 4;
  const interval = options.interval ?? 1000;
  const probe = new Uint8Array(options.size);
  const view = new DataView(probe.buffer);
  view.setUint32(0, MAGIC);
  for (let seq = 1; seq <= count && !options.signal?.aborted; seq++) {
    view.setUint32(4, seq);
    const now = performance.now();
    view.setFloat64(8, now);
    tally.sending(seq, now);
    try {
      await conn.send(probe, target);
    } catch {
      // An unreachable network is a lost probe, as for ping.
    }
    tally.sent++;
    if (seq < count) await sleep(interval, options.signal);
  }
}

/** Reads replies from `target` into the tally until the socket closes. */
async function receiveReplies(
  conn: Deno.DatagramConn,
  target: Deno.NetAddr,
  tally: PingTally,
): Promise<void> {
  for (;;) {
    let data: Uint8Array, from: Deno.Addr;
    try {
      [data, from] = await conn.receive();
    } catch {
      return; // closed at the end
    }
    if (sameAddress(from, target)) tally.reply(data);
  }
}

/**
 * The probes of one ping and their replies: the round trips, and the
 * replies that came late, twice or out of order.
 */
class PingTally {
  /** Probes sent. */
  sent = 0;
  readonly #timeout: number;
  readonly #onReply: ((reply: PingReply) => void) | undefined;
  readonly #started = performance.now();
  /** When each probe went out, by sequence number. */
  readonly #sentAt = new Map<number, number>();
  readonly #answered = new Set<number>();
  /** Round trips of the probes answered in time. */
  readonly #rtts: number[] = [];
  #late = 0;
  #duplicates = 0;
  #reordered = 0;
  /** The highest sequence number answered. */
  #highest = 0;

  constructor(timeout: number, onReply: ((reply: PingReply) => void) | undefined) {
    this.#timeout = timeout;
    this.#onReply = onReply;
  }

  /** Whether some probe sent has no reply yet. */
  get waiting(): boolean {
    return this.#answered.size < this.sent;
  }

  /** Notes that probe `seq` goes out at `at`. */
  sending(seq: number, at: number): void {
    this.#sentAt.set(seq, at);
  }

  /** Counts a datagram from the target, if it answers one of our probes. */
  reply(data: Uint8Array): void {
    if (data.length < HEADER) return;
    const view = new DataView(data.buffer, data.byteOffset, data.length);
    if (view.getUint32(0) !== MAGIC) return;
    const seq = view.getUint32(4);
    const at = this.#sentAt.get(seq);
    if (at === undefined) return; // not a probe of ours
    const rtt = performance.now() - at;
    const reply: PingReply = {
      seq,
      bytes: data.length,
      rtt,
      late: rtt > this.#timeout,
      duplicate: this.#answered.has(seq),
      reordered: seq < this.#highest,
    };
    if (reply.duplicate) this.#duplicates++;
    else if (reply.late) this.#late++;
    else this.#rtts.push(rtt);
    if (reply.reordered) this.#reordered++;
    this.#answered.add(seq);
    this.#highest = Math.max(this.#highest, seq);
    this.#onReply?.(reply);
  }

  /** The statistics, as `ping` prints them. */
  summary(address: string): PingSummary {
    const rtts = this.#rtts, sent = this.sent;
    const received = rtts.length;
    const min = received ? Math.min(...rtts) : NaN;
    const max = received ? Math.max(...rtts) : NaN;
    const avg = received ? rtts.reduce((a, b) => a + b, 0) / received : NaN;
    // Clamped: rounding can make the variance of equal samples a hair below 0.
    const mdev = received
      ? Math.sqrt(Math.max(0, rtts.reduce((a, b) => a + b * b, 0) / received - avg * avg))
      : NaN;
    return {
      address,
      sent,
      received,
      loss: sent === 0 ? 0 : Math.round(((sent - received) / sent) * 1000) / 10,
      min,
      avg,
      max,
      mdev,
      late: this.#late,
      duplicates: this.#duplicates,
      reordered: this.#reordered,
      duration: Math.round(performance.now() - this.#started),
    };
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = AbortSignal.timeout(ms);
    const done = () => resolve();
    timer.addEventListener("abort", done, { once: true });
    signal?.addEventListener("abort", done, { once: true });
  });
}
