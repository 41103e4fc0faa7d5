#!/usr/bin/env -S deno run --allow-net=127.0.0.1
/**
 * The ceiling for the echo benchmark: a raw, unframed Deno echo server.
 * Each connection reads into one reusable buffer with `conn.read` and writes
 * what it read back with `conn.write`; nothing else.
 *
 * Prints `{"type":"listening","address":"127.0.0.1:PORT","pid":PID}` on
 * stdout once listening, and exits when its stdin closes.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/raw_echo_server.ts [PORT] [BUFFER_BYTES]
 * ```
 *
 * @module
 */

import { writeAll } from "../lib/frame/mod.ts";
import { isConnectionError } from "../lib/protocol/session.ts";

const port = Number(Deno.args[0] ?? 0);
const bufferSize = Number(Deno.args[1] ?? 16 * 1024);

async function echo(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(bufferSize);
  try {
    conn.setNoDelay(true);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      await writeAll(conn, buf.subarray(0, n));
    }
  } catch (error) {
    if (!isConnectionError(error)) throw error;
  } finally {
    conn.close();
  }
}

async function exitWhenStdinCloses(): Promise<void> {
  for await (const _ of Deno.stdin.readable) {
    // Nothing is expected on stdin; its end is the signal to stop.
  }
  Deno.exit(0);
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(JSON.stringify({
  type: "listening",
  address: `127.0.0.1:${listener.addr.port}`,
  pid: Deno.pid,
}));
exitWhenStdinCloses();
for await (const conn of listener) echo(conn);
