#!/usr/bin/env -S deno run --allow-net=127.0.0.1
/**
 * The load generator of the echo benchmark, run as its own process so that it
 * never shares an event loop with the server it measures.
 *
 * Every round trip sends one 64-byte frame (a 4-byte length and a 60-byte
 * payload starting with the DATA type byte) and waits until the same 64 bytes
 * came back, checking every byte. In `sockit` mode each connection first runs
 * the real handshake with {@linkcode connect} (service `echo`); in `raw` mode
 * the same bytes go to a plain TCP echo server with no handshake.
 *
 * ```sh
 * # Round trips per second: runs for WARMUP + DURATION ms or MAX_TRIPS counted trips.
 * deno run --allow-net=127.0.0.1 bench/echo_load.ts ADDR --mode sockit|raw --clients N \
 *   [--warmup MS] [--duration MS] [--max-trips N]
 * # Idle connections: opens N (one round trip each), prints "ready", holds them until stdin closes.
 * deno run --allow-net=127.0.0.1 bench/echo_load.ts ADDR --mode sockit|raw --idle N
 * ```
 *
 * Prints JSON lines on stdout and exits 0: `{"type":"measuring"}` when the
 * measured window opens, then `{"type":"result",…}`; or `{"type":"ready",…}`
 * in idle mode. On failure it prints an error on stderr and exits 1. It also stops when its
 * stdin closes, so it cannot outlive the bench that started it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connect, dial, MessageType } from "../lib/client/mod.ts";
import { FRAME_HEADER_LENGTH, writeAll } from "../lib/frame/mod.ts";
import { sleep, withTimeout } from "./_time.ts";

/** Bytes on the wire per message, header included. */
const MESSAGE_SIZE = 64;
/** Connections opened at once, so connecting never overflows a listen queue. */
const CONNECT_BATCH = 50;
/** How long clients get to finish a round trip once time is up. */
const FINISH_MS = 10_000;
/** How long idle connections are held at most. */
const HOLD_LIMIT_MS = 120_000;

type Mode = "sockit" | "raw";

/**
 * One connection and its message: the frame header, the DATA type byte, the
 * client id (bytes 5-8), a sequence number refreshed every trip (bytes 9-12),
 * and a pattern that differs per client.
 */
class EchoClient {
  readonly #conn: Deno.Conn;
  readonly #message = new Uint8Array(MESSAGE_SIZE);
  readonly #view = new DataView(this.#message.buffer);
  readonly #reply = new Uint8Array(MESSAGE_SIZE);

  constructor(conn: Deno.Conn, id: number) {
    this.#conn = conn;
    this.#view.setUint32(0, MESSAGE_SIZE - FRAME_HEADER_LENGTH);
    this.#message[FRAME_HEADER_LENGTH] = MessageType.Data;
    this.#view.setUint32(FRAME_HEADER_LENGTH + 1, id);
    for (let i = FRAME_HEADER_LENGTH + 9; i < MESSAGE_SIZE; i++) {
      this.#message[i] = (i * 7 + id) & 0xff;
    }
  }

  /** Sends one message and checks the echo, byte for byte. */
  async trip(seq: number): Promise<void> {
    this.#view.setUint32(FRAME_HEADER_LENGTH + 5, seq);
    await writeAll(this.#conn, this.#message);
    let got = 0;
    while (got < MESSAGE_SIZE) {
      const n = await this.#conn.read(this.#reply.subarray(got));
      if (n === null) {
        throw new Error(`Cannot finish round trip: server closed after ${got} bytes`);
      }
      got += n;
    }
    for (let i = 0; i < MESSAGE_SIZE; i++) {
      if (this.#reply[i] !== this.#message[i]) {
        throw new Error(
          `Cannot verify echo: byte ${i} is ${this.#reply[i]}, expected ${this.#message[i]}`,
        );
      }
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}

async function open(address: string, mode: Mode): Promise<Deno.Conn> {
  if (mode === "raw") return await dial(address);
  const session = await connect(address, { service: "echo", keepalive: false });
  if (session.reader.buffered !== 0) {
    session.close();
    throw new Error("Cannot use session: the server sent bytes after WELCOME");
  }
  return session.conn;
}

/** Opens `count` connections, `CONNECT_BATCH` at a time; all or none. */
async function openClients(address: string, mode: Mode, count: number): Promise<EchoClient[]> {
  const clients: EchoClient[] = [];
  try {
    while (clients.length < count) {
      const batch = await Promise.allSettled(
        Array.from(
          { length: Math.min(CONNECT_BATCH, count - clients.length) },
          () => open(address, mode),
        ),
      );
      for (const result of batch) {
        if (result.status === "fulfilled") {
          clients.push(new EchoClient(result.value, clients.length));
        }
      }
      const failed = batch.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    }
    return clients;
  } catch (error) {
    for (const client of clients) client.close();
    throw error;
  }
}

/**
 * Watches stdin. `closed` resolves when it closes (the bench that started us
 * is done or gone); `abandoned` rejects then, to abort work in progress.
 */
interface StdinWatch {
  closed: Promise<void>;
  abandoned: Promise<never>;
}

function watchStdin(): StdinWatch {
  const closed = (async () => {
    for await (const _ of Deno.stdin.readable) {
      // Nothing is expected on stdin; its end is the signal to stop.
    }
  })();
  const abandoned = closed.then((): never => {
    throw new Error("Cannot finish: stdin closed before the run ended");
  });
  // Awaited only while work is in progress; a late rejection is expected.
  abandoned.catch(() => {});
  return { closed, abandoned };
}

function print(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

interface RunOptions {
  warmup: number;
  duration: number;
  maxTrips: number;
}

/**
 * Drives every client in a closed loop: warm-up, then a measured window that
 * ends after `duration` ms or `maxTrips` round trips, whichever comes first.
 */
async function measure(clients: readonly EchoClient[], options: RunOptions, stop: Promise<never>) {
  let trips = 0;
  let limit = Infinity;
  let running = true;
  let reachedLimit = () => {};
  const limitReached = new Promise<void>((resolve) => reachedLimit = resolve);
  const drive = async (client: EchoClient) => {
    for (let seq = 0; running; seq++) {
      await client.trip(seq);
      if (++trips >= limit) reachedLimit();
    }
  };
  const driving = Promise.all(clients.map(drive));
  const failed = driving.then(() => new Promise<never>(() => {}));

  await Promise.race([sleep(options.warmup), failed, stop]);
  print({ type: "measuring" });
  const start = performance.now();
  const startTrips = trips;
  limit = startTrips + options.maxTrips;
  await Promise.race([sleep(options.duration), limitReached, failed, stop]);
  const seconds = (performance.now() - start) / 1000;
  const counted = trips - startTrips;
  running = false;
  await withTimeout(Promise.race([driving, stop]), FINISH_MS, "finish the last round trips");
  return { trips: counted, seconds, rate: counted / seconds };
}

/** Opens `count` connections, does one round trip on each, and holds them. */
async function holdIdle(address: string, mode: Mode, count: number, stdin: StdinWatch) {
  const clients = await Promise.race([openClients(address, mode, count), stdin.abandoned]);
  try {
    // One round trip each, so that the server has set every connection up.
    const trips = Promise.all(clients.map((client) => client.trip(0)));
    await withTimeout(Promise.race([trips, stdin.abandoned]), FINISH_MS, "echo once on each");
    print({ type: "ready", connections: clients.length });
    await withTimeout(stdin.closed, HOLD_LIMIT_MS, "wait for stdin to close");
  } finally {
    for (const client of clients) client.close();
  }
}

/** Runs the closed loop with `count` clients and prints the result. */
async function runLoad(
  address: string,
  mode: Mode,
  count: number,
  options: RunOptions,
  stdin: StdinWatch,
) {
  const clients = await Promise.race([openClients(address, mode, count), stdin.abandoned]);
  try {
    const result = await measure(clients, options, stdin.abandoned);
    print({ type: "result", clients: clients.length, ...result });
  } finally {
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
      mode: { type: "string", default: "sockit" },
      clients: { type: "string", default: "1" },
      warmup: { type: "string", default: "500" },
      duration: { type: "string", default: "3000" },
      "max-trips": { type: "string", default: "2000000" },
      idle: { type: "string" },
    },
  });
  const [address] = positionals;
  const mode = values.mode;
  if (address === undefined || (mode !== "sockit" && mode !== "raw")) {
    throw new Error("Usage: echo_load.ts ADDR --mode sockit|raw (--clients N | --idle N)");
  }
  const stdin = watchStdin();
  if (values.idle !== undefined) {
    await holdIdle(address, mode, positiveInteger("idle", values.idle), stdin);
  } else {
    await runLoad(address, mode, positiveInteger("clients", values.clients), {
      warmup: positiveInteger("warmup", values.warmup),
      duration: positiveInteger("duration", values.duration),
      maxTrips: positiveInteger("max-trips", values["max-trips"]),
    }, stdin);
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
    Deno.exit(0);
  } catch (error) {
    console.error(`echo_load: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
