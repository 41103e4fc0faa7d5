#!/usr/bin/env -S deno run --allow-net=127.0.0.1:7070
/**
 * Joins the chat room as NAME: every line typed is a message to the others,
 * and what happens in the room is printed as it happens. Ctrl-D leaves.
 *
 * The room is served by `sockit server` (the echo-only
 * `examples/echo_server.ts` has no chat):
 *
 * ```sh
 * deno run --allow-net=127.0.0.1:7070 cli.ts server &
 * ./examples/chat.ts ada                 # in one terminal
 * ./examples/chat.ts bob                 # in another
 * deno run --allow-net=127.0.0.1:9000 examples/chat.ts ada 127.0.0.1:9000
 * ```
 *
 * Sending reuses {@linkcode sendLines}; receiving is spelled out to show the
 * events the room sends. {@linkcode chatLines} does both in one call.
 *
 * @module
 */

import {
  type ChatEvent,
  connect,
  ConnectError,
  DEFAULT_ADDRESS,
  formatChatEvent,
  MessageType,
  RemoteError,
  sendLines,
} from "@sockit/sockit/client";

const decoder = new TextDecoder();

/**
 * The line to print for one EVENT body, or `undefined` when the body is not
 * a chat event. The server is a peer like any other: its JSON is checked
 * before use. formatChatEvent escapes control characters, since names and
 * texts come from other members and must not drive the terminal.
 */
function render(body: Uint8Array): string | undefined {
  try {
    const line: unknown = formatChatEvent(JSON.parse(decoder.decode(body)) as ChatEvent);
    return typeof line === "string" ? line : undefined;
  } catch (error) {
    // Not JSON (SyntaxError), or fields of the wrong type (TypeError).
    if (error instanceof SyntaxError || error instanceof TypeError) return undefined;
    throw error;
  }
}

async function main(args: string[]): Promise<number> {
  const [name, address = DEFAULT_ADDRESS] = args;
  if (name === undefined || args.length > 2) {
    console.error("usage: examples/chat.ts NAME [ADDR]");
    return 2;
  }
  try {
    // The room checks the name: taken, empty or with spaces, it refuses the
    // join with a RemoteError ("name_taken", "bad_name").
    await using session = await connect(address, { service: "chat", params: { name } });
    console.error(`chat: joined ${address} as ${name}; type a line to send it, Ctrl-D to leave`);
    // At the end of input sendLines half-closes the connection; the room then
    // announces the leave and ends the session, which ends the loop below.
    let inputEnded = false;
    let sendError: unknown;
    sendLines(session, Deno.stdin).then(
      () => inputEnded = true,
      (error) => sendError = error,
    );
    for (let message; (message = await session.read()) !== null;) {
      if (message.type !== MessageType.Event) continue;
      const line = render(message.body);
      if (line === undefined) console.error("chat: skipped a malformed event from the server");
      else console.log(line);
    }
    // If the room ended the session first, stdin may still be open: its
    // pending read is abandoned by Deno.exit below.
    if (sendError !== undefined) throw sendError;
    if (!inputEnded) {
      console.error("chat: the server closed the session");
      return 1;
    }
    return 0;
  } catch (error) {
    if (error instanceof RemoteError) {
      console.error(`chat: the server said: ${error.message} (${error.code})`);
    } else if (error instanceof ConnectError) {
      console.error(`chat: ${error.message} (is "sockit server" running?)`);
    } else {
      console.error(`chat: ${error instanceof Error ? error.message : error}`);
    }
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
