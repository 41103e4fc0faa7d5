/**
 * Line-oriented clients for the echo and chat services, as `sockit client`
 * runs them: each input line becomes one DATA frame, and what the server
 * sends back is printed as lines.
 *
 * @module
 */

import { type ChatEvent, parseChatEvent } from "../chat/chat_events.ts";
import type { ClientSession } from "./client.ts";
import { escapeControl } from "../text/escape.ts";
import { type ByteReader, type ByteWriter, writeAll } from "../frame/frame_io.ts";
import { RemoteError } from "../protocol/errors.ts";
import { decodeControl, MessageType } from "../protocol/protocol.ts";
import { typeByte } from "../protocol/session.ts";

/** Where a line client reads and writes. */
export interface LineClientOptions {
  /** Lines to send, such as `Deno.stdin`. */
  input: ByteReader;
  /** Where replies go, such as `Deno.stdout`. */
  output: ByteWriter;
  /** Print one JSON object per line instead of text. @default {false} */
  json?: boolean;
  /**
   * Escape control characters in echo replies (chat text is always
   * escaped). Turn on when the output is a terminal.
   *
   * @default {false}
   */
  escape?: boolean;
}

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const lenient = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });

/**
 * Sends each line of `input` (without its newline) as one DATA frame; a last
 * line without a newline is sent too. At the end of input, shuts down the
 * write side so the server knows no more is coming.
 *
 * @param session the established session
 * @param input where lines come from
 *
 * @example Send two lines (needs a running server)
 * ```ts ignore
 * await sendLines(session, readerOf("one\ntwo\n"));
 * ```
 */
export async function sendLines(session: ClientSession, input: ByteReader): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  const data = typeByte(MessageType.Data);
  let carry: Uint8Array[] = [];
  let carryLength = 0;
  const checkLength = async (length: number) => {
    const max = session.writer.maxFrameLength - 1;
    if (length <= max) return;
    // Send the lines before this one, then stop: the replies to those still
    // arrive, and the caller reports this error.
    await session.writer.flush();
    throw new RangeError(
      `Cannot send line: ${length} bytes exceed the server's limit of ${max} bytes per message`,
    );
  };
  for (;;) {
    const n = await input.read(buf);
    if (n === null) break;
    const chunk = buf.subarray(0, n);
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const piece = chunk.subarray(start, nl);
      await checkLength(carryLength + piece.length);
      if (carryLength > 0) {
        session.writer.frame(data, join([...carry, piece], carryLength + piece.length));
        carry = [];
        carryLength = 0;
      } else {
        session.writer.frame(data, piece);
      }
      start = nl + 1;
    }
    if (start < n) {
      await checkLength(carryLength + n - start);
      // Deliberate copy: the buffer is reused by the next read.
      carry.push(chunk.slice(start));
      carryLength += n - start;
    }
    await session.writer.flush();
  }
  if (carryLength > 0) session.writer.frame(data, join(carry, carryLength));
  await session.closeWrite();
}

function join(pieces: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/**
 * Runs an echo session: sends the input's lines and prints each reply on its
 * own line until the server closes the session.
 *
 * @param session a session on the `echo` service
 * @param options input, output and format
 * @returns when every reply has been printed
 * @throws {RemoteError} when the server reports an error
 *
 * @example Echo lines through a local server
 * ```ts
 * import { connect, serve } from "@sockit/sockit";
 * import { echoLines } from "@sockit/sockit/client";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"] });
 * await using session = await connect(server.addrs[0]!);
 * const input = ReadableStream.from([new TextEncoder().encode("a\nb")]).getReader();
 * let out = "";
 * await echoLines(session, {
 *   input: {
 *     async read(p) {
 *       const { value } = await input.read();
 *       if (!value) return null;
 *       p.set(value);
 *       return value.length;
 *     },
 *   },
 *   output: {
 *     write(p) {
 *       out += new TextDecoder().decode(p);
 *       return Promise.resolve(p.length);
 *     },
 *   },
 * });
 * deepEqual(out, "a\nb\n");
 * ```
 */
export async function echoLines(session: ClientSession, options: LineClientOptions): Promise<void> {
  const sending = sendLines(session, options.input);
  await receive(session, options, (type, body) => {
    if (type !== MessageType.Data) return "";
    if (options.json) return JSON.stringify(jsonBytes("reply", body)) + "\n";
    if (options.escape) return escapeControl(lenient.decode(body)) + "\n";
    return body;
  }, sending);
}

function jsonBytes(event: string, body: Uint8Array): Record<string, string> {
  try {
    return { event, text: strict.decode(body) };
  } catch {
    // Not UTF-8: carry the bytes exactly, in base64.
    return { event, base64: body.toBase64() };
  }
}

/**
 * Formats one chat event as the line the chat client prints, with every
 * control character escaped.
 *
 * @param event the event
 * @returns the line, without a newline
 *
 * @example Format a message and a leave
 * ```ts
 * import { formatChatEvent } from "@sockit/sockit/client";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(formatChatEvent({ kind: "message", from: "ada", text: "hi\u001b[2J" }), "<ada> hi\\x1b[2J");
 * deepEqual(formatChatEvent({ kind: "leave", name: "bob", reason: "quit" }), "* bob left (quit)");
 * ```
 */
export function formatChatEvent(event: ChatEvent): string {
  switch (event.kind) {
    case "message":
      return `<${escapeControl(event.from)}> ${escapeControl(event.text)}`;
    case "join":
      return `* ${escapeControl(event.name)} joined`;
    case "leave":
      return `* ${escapeControl(event.name)} left (${escapeControl(event.reason)})`;
    case "members":
      return `* members: ${event.names.map(escapeControl).join(", ")}`;
  }
}

/**
 * Runs a chat session: sends the input's lines as messages and prints the
 * room's events until the server closes the session.
 *
 * @param session a session on the `chat` service
 * @param options input, output and format
 * @returns when the session has ended
 * @throws {RemoteError} when the server reports an error
 *
 * @example Join a room (needs a running server)
 * ```ts ignore
 * await using session = await connect("127.0.0.1:7070", { service: "chat", params: { name: "ada" } });
 * await chatLines(session, { input: Deno.stdin, output: Deno.stdout });
 * ```
 */
export async function chatLines(session: ClientSession, options: LineClientOptions): Promise<void> {
  const sending = sendLines(session, options.input);
  await receive(session, options, (type, body) => {
    if (type !== MessageType.Event) return "";
    const event = parseChatEvent(decodeControl(withType(type, body)));
    if (event === undefined) return "";
    return (options.json ? JSON.stringify(event) : formatChatEvent(event)) + "\n";
  }, sending);
}

/** Puts the type byte back in front of a body, as decodeControl expects. */
function withType(type: number, body: Uint8Array): Uint8Array {
  const payload = new Uint8Array(1 + body.length);
  payload[0] = type;
  payload.set(body, 1);
  return payload;
}

async function receive(
  session: ClientSession,
  options: LineClientOptions,
  render: (type: number, body: Uint8Array) => string | Uint8Array,
  sending: Promise<void>,
): Promise<void> {
  let sendError: unknown;
  let sendDone = false;
  sending.then(() => sendDone = true, (error) => {
    sendError = error;
    sendDone = true;
    // Stop sending but keep reading: the server answers what it already
    // has, then closes, and the error is reported after those answers.
    session.closeWrite().catch(() => session.close());
  });
  const out: (string | Uint8Array)[] = [];
  for (;;) {
    let message;
    try {
      message = await session.read();
    } catch (error) {
      await flushOut(options.output, out);
      // A failed send usually means the server ended the session; the
      // reason it gave (read side) is the one worth reporting.
      throw error instanceof RemoteError || sendError === undefined ? error : sendError;
    }
    if (message === null) break;
    const piece = render(message.type, message.body);
    if (typeof piece === "string") {
      out.push(piece);
    } else {
      // Deliberate copy: the body is a view into the read buffer.
      out.push(piece.slice(), "\n");
    }
    if (!session.hasMessage) await flushOut(options.output, out);
  }
  await flushOut(options.output, out);
  if (sendError !== undefined) throw sendError;
  if (!sendDone) {
    throw new Deno.errors.UnexpectedEof(
      "Cannot finish session: the server closed the connection before the input ended",
    );
  }
}

async function flushOut(output: ByteWriter, out: (string | Uint8Array)[]): Promise<void> {
  if (out.length === 0) return;
  const parts = out.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  out.length = 0;
  await writeAll(output, join(parts, parts.reduce((n, p) => n + p.length, 0)));
}
