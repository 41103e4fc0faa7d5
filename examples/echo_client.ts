#!/usr/bin/env -S deno run --allow-net=127.0.0.1:7070
/**
 * Talks to the echo service with {@linkcode connect} and shows that message
 * boundaries survive however TCP cuts or glues the bytes.
 *
 * Code that calls `recv()` once per message (as the seed's clients did)
 * breaks in two ways: two messages written together arrive in one `recv`,
 * and one message written in pieces arrives over several. This client
 * provokes both on purpose, writing raw bytes to the connection, and still
 * gets every message back whole and on its own.
 *
 * ```sh
 * ./examples/echo_server.ts &
 * ./examples/echo_client.ts             # talks to 127.0.0.1:7070
 * deno run --allow-net=127.0.0.1:9000 examples/echo_client.ts 127.0.0.1:9000
 * ```
 *
 * @module
 */

import {
  type ClientSession,
  connect,
  ConnectError,
  DEFAULT_ADDRESS,
  escapeControl,
  MessageType,
  RemoteError,
  writeAll,
} from "@sockit/sockit/client";
import { encodeFrame } from "@sockit/sockit/frame";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads the next reply, failing if the server closed the session instead. */
async function reply(session: ClientSession): Promise<Uint8Array> {
  const message = await session.read();
  if (message === null) throw new Error("Cannot read reply: the server closed the session");
  if (message.type !== MessageType.Data) {
    throw new Error(`Cannot read reply: unexpected message type ${message.type}`);
  }
  // Deliberate copy: the body is a view into the read buffer.
  return message.body.slice();
}

function show(bytes: Uint8Array): string {
  return `"${escapeControl(decoder.decode(bytes))}"`;
}

async function talk(session: ClientSession): Promise<void> {
  // 1. One message, one write: what naive code expects.
  await session.send(MessageType.Data, encoder.encode("hello"));
  console.log(`sent "hello" in one write`);
  console.log(`  reply ${show(await reply(session))}`);

  // 2. Two messages in ONE write: a naive recv() returns "glued-1glued-2".
  const glued = [encoder.encode("glued-1"), encoder.encode("glued-2")].map((body) =>
    encodeFrame(new Uint8Array([MessageType.Data, ...body]))
  );
  await writeAll(session.conn, new Uint8Array([...glued[0]!, ...glued[1]!]));
  console.log(`sent "glued-1" and "glued-2" in one write`);
  console.log(`  reply ${show(await reply(session))}`);
  console.log(`  reply ${show(await reply(session))}`);

  // 3. One message in four writes, 20 ms apart so that they travel as
  // separate segments: the 4-byte header split 1 + 3, then the payload in two
  // halves. A naive recv() returns a fragment.
  const text = "split across four writes";
  const frame = encodeFrame(new Uint8Array([MessageType.Data, ...encoder.encode(text)]));
  const half = 4 + Math.floor((frame.length - 4) / 2);
  for (const [from, to] of [[0, 1], [1, 4], [4, half], [half, frame.length]] as const) {
    await writeAll(session.conn, frame.subarray(from, to));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  console.log(`sent "${text}" in 4 writes (header 1 + 3 bytes, payload in two halves)`);
  console.log(`  reply ${show(await reply(session))}`);

  // 4. A message far larger than one recv(1024): it arrives in many reads.
  const big = new Uint8Array(200_000).map((_, i) => i % 251);
  await session.send(MessageType.Data, big);
  console.log(`sent one ${big.length}-byte message`);
  const back = await reply(session);
  const same = back.length === big.length && back.every((b, i) => b === big[i]);
  console.log(`  reply ${back.length} bytes, ${same ? "identical" : "DIFFERENT"}`);
  if (!same) throw new Error("Cannot verify reply: the large message came back changed");

  // Say we are done; the server answers by closing the session.
  await session.closeWrite();
  const last = await session.read();
  console.log(last === null ? "the server closed the session: done" : "unexpected extra reply");
}

async function main(args: string[]): Promise<number> {
  const address = args[0] ?? DEFAULT_ADDRESS;
  try {
    // No keepalive PINGs: step 3 writes raw bytes to session.conn, and a PING
    // written by the session in the middle of them would corrupt the stream.
    await using session = await connect(address, {
      service: "echo",
      connectTimeout: 5_000,
      keepalive: false,
    });
    const { version, maxFrame } = session.welcome;
    console.log(`connected to ${address}: protocol v${version}, frames up to ${maxFrame} bytes`);
    await talk(session);
    return 0;
  } catch (error) {
    if (error instanceof RemoteError) {
      console.error(`echo_client: server said: ${error.message} (${error.code})`);
    } else if (error instanceof ConnectError) {
      console.error(`echo_client: ${error.message} (is examples/echo_server.ts running?)`);
    } else {
      console.error(`echo_client: ${error instanceof Error ? error.message : error}`);
    }
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
