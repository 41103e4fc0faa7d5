#!/usr/bin/env -S deno run --allow-net=127.0.0.1:7070
/**
 * The seed's echo server, redone with sockit.
 *
 * The seed ran a Python `socketserver.ThreadingTCPServer` whose handler
 * looped `recv(1024)` → `sendall()`: whatever bytes one `recv` happened to
 * return went back, so two messages could come back glued together or one
 * message in pieces. Here every message is a length-prefixed frame, so each
 * comes back whole and on its own; the server also bounds frame sizes and
 * every wait, logs each connection, and shuts down cleanly on Ctrl-C.
 *
 * ```sh
 * ./examples/echo_server.ts             # listens on 127.0.0.1:7070
 * ./examples/echo_client.ts             # in another terminal
 * ```
 *
 * Another address needs a matching permission:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1:9000 examples/echo_server.ts 127.0.0.1:9000
 * ```
 *
 * @module
 */

import {
  DEFAULT_ADDRESS,
  echoService,
  formatEvent,
  serve,
  type Server,
} from "@sockit/sockit/server";

function log(line: string): void {
  console.error(`echo_server: ${line}`);
}

async function main(args: string[]): Promise<number> {
  const address = args[0] ?? DEFAULT_ADDRESS;
  let server: Server;
  try {
    server = await serve({
      listen: [address],
      // Only the echo service; by default the chat room is offered too.
      services: [echoService],
      onEvent: (event) => log(formatEvent(event)),
    });
  } catch (error) {
    // A taken port, a bad address or a missing --allow-net: one line, no trace.
    log(`cannot listen on "${address}": ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  // Ctrl-C (or SIGTERM) shuts down gracefully: stop accepting, tell idle
  // sessions, give busy ones a few seconds, then close whatever is left.
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const stop = () => void server.shutdown();
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  log("press Ctrl-C to stop");
  try {
    await server.finished;
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
