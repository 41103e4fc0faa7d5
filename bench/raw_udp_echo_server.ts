#!/usr/bin/env -S deno run --allow-net=127.0.0.1
/**
 * The ceiling for the UDP echo benchmark: a plain `Deno.listenDatagram` echo.
 * It receives into one reusable buffer and sends what it received back to
 * where it came from; nothing else (no size check, no rate limit, no
 * counters).
 *
 * Prints `{"type":"listening","address":"127.0.0.1:PORT","pid":PID}` on
 * stdout once listening, and exits when its stdin closes.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/raw_udp_echo_server.ts [PORT] [BUFFER_BYTES]
 * ```
 *
 * Needs `--unstable-net`, which the repository's `deno.json` turns on.
 *
 * @module
 */

const port = Number(Deno.args[0] ?? 0);
const bufferSize = Number(Deno.args[1] ?? 65_508);

async function exitWhenStdinCloses(): Promise<void> {
  for await (const _ of Deno.stdin.readable) {
    // Nothing is expected on stdin; its end is the signal to stop.
  }
  Deno.exit(0);
}

const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
console.log(JSON.stringify({
  type: "listening",
  address: `127.0.0.1:${(conn.addr as Deno.NetAddr).port}`,
  pid: Deno.pid,
}));
exitWhenStdinCloses();
const buf = new Uint8Array(bufferSize);
for (;;) {
  let data: Uint8Array, remote: Deno.Addr;
  try {
    [data, remote] = await conn.receive(buf);
  } catch (error) {
    // An ICMP error reported on the socket concerns one earlier peer.
    if (error instanceof Deno.errors.ConnectionRefused) continue;
    throw error;
  }
  try {
    await conn.send(data, remote);
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
  }
}
