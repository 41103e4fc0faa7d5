#!/usr/bin/env -S deno run --allow-net=127.0.0.1
/**
 * The load generator of the UDP echo benchmark, run as its own process so
 * that it never shares an event loop with the server it measures.
 *
 * It opens `--sockets` UDP sockets on 127.0.0.1 (each a distinct source
 * address and port, like that many clients) and keeps `--inflight`
 * datagrams of 64 bytes in flight on each: every reply that comes back is
 * checked and answered with the next request at once. A request carries the
 * socket's id (bytes 0-3), a sequence number (bytes 4-7) and 56 bytes of a
 * pattern derived from both, so a reply is checked byte for byte against the
 * request it answers; a reply whose sequence number is not outstanding
 * (a late or duplicated one) is counted and ignored.
 *
 * UDP loses datagrams, so a closed loop could stall: a request unanswered
 * for `--timeout` ms counts as a loss and is replaced by a new one. A
 * watchdog checks every `--timeout`/4 ms; no timer is set per datagram.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/udp_load.ts ADDR [--sockets N] [--inflight K] \
 *   [--warmup MS] [--duration MS] [--max-trips N] [--timeout MS]
 * ```
 *
 * Prints JSON lines on stdout and exits 0: `{"type":"measuring"}` when the
 * measured window opens, then `{"type":"result",…}` with the round trips,
 * the rate, and the losses, late replies and send errors inside the window;
 * both carry `cpu`, the CPU seconds this process has used so far.
 * A reply with wrong content is an error: it prints a message on stderr and
 * exits 1. It also stops when its stdin closes, so it cannot outlive the
 * bench that started it.
 *
 * Needs `--unstable-net`, which the repository's `deno.json` turns on.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { parseAddress } from "../mod.ts";
import { sleep } from "./_time.ts";

/** Bytes per request and reply. */
const MESSAGE_SIZE = 64;
/** Bytes of header: the socket id and the sequence number. */
const HEADER_SIZE = 8;
/** Largest datagram read; a longer reply is still seen as too long. */
const RECEIVE_BUFFER = 2048;

/** Counters shared by every socket; the measured window reads their differences. */
interface Counters {
  trips: number;
  lost: number;
  late: number;
  sendErrors: number;
}

/** Fills `message` with the request `seq` of socket `id`. */
function fill(message: Uint8Array, view: DataView, id: number, seq: number): void {
  view.setUint32(0, id);
  view.setUint32(4, seq);
  for (let i = HEADER_SIZE; i < MESSAGE_SIZE; i++) message[i] = (i * 7 + id * 13 + seq) & 0xff;
}

/** One client socket and its outstanding requests (sequence number → send time). */
class UdpClient {
  readonly #conn: Deno.DatagramConn;
  readonly #id: number;
  readonly #server: Deno.NetAddr;
  readonly #counters: Counters;
  readonly #outstanding = new Map<number, number>();
  #seq = 0;
  #running = true;
  /** Resolves when the receive loop ends (closed socket) or rejects on a bad reply. */
  readonly done: Promise<void>;

  constructor(id: number, server: Deno.NetAddr, inflight: number, counters: Counters) {
    this.#id = id;
    this.#server = server;
    this.#counters = counters;
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    for (let i = 0; i < inflight; i++) this.#send(performance.now());
    this.done = this.#receive();
  }

  /** Sends the next request. Each has its own buffer: `send` may read it after returning. */
  #send(now: number): void {
    const message = new Uint8Array(MESSAGE_SIZE);
    const seq = this.#seq++ >>> 0;
    fill(message, new DataView(message.buffer), this.#id, seq);
    this.#outstanding.set(seq, now);
    this.#conn.send(message, this.#server).catch(() => {
      if (this.#running) this.#counters.sendErrors++;
    });
  }

  async #receive(): Promise<void> {
    const buf = new Uint8Array(RECEIVE_BUFFER);
    const view = new DataView(buf.buffer);
    const expected = new Uint8Array(MESSAGE_SIZE);
    const expectedView = new DataView(expected.buffer);
    while (this.#running) {
      let data: Uint8Array;
      try {
        [data] = await this.#conn.receive(buf);
      } catch (error) {
        if (!this.#running) return;
        // An ICMP error (the server is gone) surfaces on the next receive.
        if (error instanceof Deno.errors.ConnectionRefused) continue;
        throw error;
      }
      if (data.length !== MESSAGE_SIZE) {
        throw new Error(`Cannot verify echo: got ${data.length} bytes, expected ${MESSAGE_SIZE}`);
      }
      const id = view.getUint32(0);
      const seq = view.getUint32(4);
      if (id !== this.#id) {
        throw new Error(`Cannot verify echo: socket ${this.#id} got a reply for socket ${id}`);
      }
      fill(expected, expectedView, id, seq);
      for (let i = HEADER_SIZE; i < MESSAGE_SIZE; i++) {
        if (data[i] !== expected[i]) {
          throw new Error(
            `Cannot verify echo of request ${seq}: byte ${i} is ${data[i]}, expected ${
              expected[i]
            }`,
          );
        }
      }
      if (!this.#outstanding.delete(seq)) {
        // Declared lost already, or a duplicate: the request was replaced.
        this.#counters.late++;
        continue;
      }
      this.#counters.trips++;
      if (this.#running) this.#send(performance.now());
    }
  }

  /** Replaces every request older than `timeout` ms with a new one. */
  expire(now: number, timeout: number): void {
    for (const [seq, sent] of this.#outstanding) {
      if (now - sent < timeout) continue;
      this.#outstanding.delete(seq);
      this.#counters.lost++;
      if (this.#running) this.#send(now);
    }
  }

  close(): void {
    this.#running = false;
    try {
      this.#conn.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}

/** CPU time this process has used so far, user and system, in seconds. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

function print(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

interface RunOptions {
  sockets: number;
  inflight: number;
  warmup: number;
  duration: number;
  maxTrips: number;
  timeout: number;
}

/** Resolves when stdin closes: the bench that started us is done or gone. */
async function stdinClosed(): Promise<void> {
  for await (const _ of Deno.stdin.readable) {
    // Nothing is expected on stdin; its end is the signal to stop.
  }
}

async function run(server: Deno.NetAddr, options: RunOptions): Promise<void> {
  const counters: Counters = { trips: 0, lost: 0, late: 0, sendErrors: 0 };
  const clients: UdpClient[] = [];
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const client of clients) client.expire(now, options.timeout);
  }, Math.max(1, Math.floor(options.timeout / 4)));
  try {
    for (let id = 0; id < options.sockets; id++) {
      clients.push(new UdpClient(id, server, options.inflight, counters));
    }
    const failed = Promise.all(clients.map((c) => c.done)).then(() => {
      throw new Error("Cannot measure: the sockets closed");
    });
    failed.catch(() => {});
    const stop = stdinClosed().then(() => {
      throw new Error("Cannot finish: stdin closed before the run ended");
    });
    stop.catch(() => {});

    await Promise.race([sleep(options.warmup), failed, stop]);
    const before = { ...counters };
    print({ type: "measuring", cpu: cpuSeconds() });
    const start = performance.now();
    // Ends after `duration` ms, or earlier once `maxTrips` round trips were counted.
    const deadline = start + options.duration;
    while (performance.now() < deadline && counters.trips - before.trips < options.maxTrips) {
      await Promise.race([sleep(Math.min(50, options.duration)), failed, stop]);
    }
    const seconds = (performance.now() - start) / 1000;
    const trips = counters.trips - before.trips;
    print({
      type: "result",
      sockets: options.sockets,
      inflight: options.inflight,
      trips,
      seconds,
      rate: trips / seconds,
      lost: counters.lost - before.lost,
      late: counters.late - before.late,
      sendErrors: counters.sendErrors - before.sendErrors,
      cpu: cpuSeconds(),
    });
  } finally {
    clearInterval(watchdog);
    for (const client of clients) client.close();
  }
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Cannot use --${name} "${text}": expected a positive integer`);
  }
  return value;
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      sockets: { type: "string", default: "1" },
      inflight: { type: "string", default: "1" },
      warmup: { type: "string", default: "500" },
      duration: { type: "string", default: "3000" },
      "max-trips": { type: "string", default: "2000000" },
      timeout: { type: "string", default: "200" },
    },
  });
  const address = positionals[0] === undefined ? undefined : parseAddress(positionals[0]);
  if (address?.transport !== "tcp") {
    throw new Error("Usage: udp_load.ts HOST:PORT [--sockets N] [--inflight K]");
  }
  await run({ transport: "udp", hostname: address.hostname, port: address.port }, {
    sockets: positiveInteger("sockets", values.sockets),
    inflight: positiveInteger("inflight", values.inflight),
    warmup: positiveInteger("warmup", values.warmup),
    duration: positiveInteger("duration", values.duration),
    maxTrips: positiveInteger("max-trips", values["max-trips"]),
    timeout: positiveInteger("timeout", values.timeout),
  });
}

if (import.meta.main) {
  try {
    await main(Deno.args);
    Deno.exit(0);
  } catch (error) {
    console.error(`udp_load: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
