#!/usr/bin/env -S deno run --allow-net=127.0.0.1:9999
/**
 * A netcat-style raw client: stdin goes to a TCP (or Unix) socket unchanged
 * and whatever comes back goes to stdout, with no framing. Built on
 * {@linkcode dial} and {@linkcode relay}: at the end of stdin the write side
 * is shut down, so the server sees EOF, and the client keeps printing until
 * the server closes, so a one-shot request still gets its whole reply.
 *
 * The seed's classic upper-casing TCP server is a Python socket loop that
 * answers every `recv(1024)` with the same bytes upper-cased until the client
 * closes. `--serve-upper` runs a Deno twin of it, so this example runs on its
 * own:
 *
 * ```sh
 * ./examples/raw_client.ts --serve-upper &          # upper-casing server on 127.0.0.1:9999
 * echo 'hello, sockets' | ./examples/raw_client.ts  # prints HELLO, SOCKETS
 * ```
 *
 * Against the seed's Python server (or any other raw TCP server), give its
 * address and a matching permission, here for one on port 8000:
 *
 * ```sh
 * echo hi | deno run --allow-net=127.0.0.1:8000 examples/raw_client.ts 127.0.0.1:8000
 * ```
 *
 * Pointed at a sockit server, the raw client shows the framed protocol
 * refusing garbage (the reply is one length-prefixed ERROR frame, printed
 * raw):
 *
 * ```sh
 * printf 'GET / HTTP/1.0\r\n\r\n' | deno run --allow-net=127.0.0.1:7070 examples/raw_client.ts 127.0.0.1:7070
 * ```
 *
 * @module
 */

import {
  ConnectError,
  dial,
  formatAddress,
  parseAddress,
  relay,
  writeAll,
} from "@sockit/sockit/client";

const DEFAULT_UPPER_ADDRESS = "127.0.0.1:9999";

/** Closes a connection that has been silent this long, as every wait needs a deadline. */
const IDLE_TIMEOUT_MS = 30_000;

function log(line: string): void {
  console.error(`raw_client: ${line}`);
}

/** Upper-cases ASCII letters in place, byte by byte, as Python's `bytes.upper()` does. */
function upper(bytes: Uint8Array): Uint8Array {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x61 && b <= 0x7a) bytes[i] = b - 0x20;
  }
  return bytes;
}

/** Closes `conn` unless it is closed already. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

/** Serves one raw connection: upper-cased bytes back until the peer's EOF. */
async function serveUpper(conn: Deno.Conn, open: Set<Deno.Conn>): Promise<void> {
  const remote = formatAddress(conn.remoteAddr);
  open.add(conn);
  let timer = setTimeout(() => closeQuietly(conn), IDLE_TIMEOUT_MS);
  // One reused buffer: memory per connection is bounded whatever the peer sends.
  const buf = new Uint8Array(64 * 1024);
  let total = 0;
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      clearTimeout(timer);
      timer = setTimeout(() => closeQuietly(conn), IDLE_TIMEOUT_MS);
      await writeAll(conn, upper(buf.subarray(0, n)));
      total += n;
    }
    log(`${remote}: ${total} bytes upper-cased, peer finished`);
  } catch (error) {
    // Reset by the peer, or closed by the idle timer or shutdown.
    log(`${remote}: ended after ${total} bytes: ${error instanceof Error ? error.name : error}`);
  } finally {
    clearTimeout(timer);
    open.delete(conn);
    closeQuietly(conn);
  }
}

/** Runs the upper-casing server until Ctrl-C. */
async function serverMode(address: string): Promise<number> {
  const parsed = parseAddress(address);
  if (parsed.transport !== "tcp") {
    log("--serve-upper listens on TCP only");
    return 2;
  }
  const listener = Deno.listen({ hostname: parsed.hostname, port: parsed.port });
  const open = new Set<Deno.Conn>();
  const stop = () => listener.close();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  log(`upper-casing raw server listening on ${formatAddress(listener.addr)}; Ctrl-C stops it`);
  const serving = new Set<Promise<void>>();
  try {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource) break; // closed by a signal
        throw error;
      }
      const done: Promise<void> = serveUpper(conn, open).finally(() => serving.delete(done));
      serving.add(done);
    }
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
    for (const conn of open) closeQuietly(conn);
    await Promise.all(serving);
  }
  log("stopped");
  return 0;
}

/** Relays stdin and stdout to the socket at `address`. */
async function clientMode(address: string): Promise<number> {
  const conn = await dial(address, { connectTimeout: 5_000 });
  try {
    const { sent, received } = await relay(conn, { input: Deno.stdin, output: Deno.stdout });
    log(`sent ${sent} bytes, received ${received} bytes`);
  } finally {
    conn.close();
  }
  return 0;
}

async function main(args: string[]): Promise<number> {
  const serve = args[0] === "--serve-upper";
  const rest = serve ? args.slice(1) : args;
  if (rest.length > 1 || rest[0]?.startsWith("-")) {
    log("usage: raw_client.ts [ADDR] | raw_client.ts --serve-upper [ADDR]");
    return 2;
  }
  const address = rest[0] ?? DEFAULT_UPPER_ADDRESS;
  try {
    return await (serve ? serverMode(address) : clientMode(address));
  } catch (error) {
    if (error instanceof ConnectError) {
      log(`${error.message} (start the server with: examples/raw_client.ts --serve-upper)`);
    } else {
      log(error instanceof Error ? error.message : String(error));
    }
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
