/**
 * UDP at the terminal, the way `sockit client --udp` shows it: stdin lines
 * as datagrams with their replies, and `ping`-style lines and summary.
 *
 * @module
 */

import { escapeControl } from "../text/escape.ts";
import { type ByteReader, type ByteWriter, writeAll } from "../frame/frame_io.ts";
import { type PingReply, type PingSummary, type UdpAddress, udpRequest } from "./udp_client.ts";
import { MAX_UDP_PAYLOAD } from "./_datagram.ts";

/** Where {@linkcode udpLines} reads and writes. */
export interface UdpLinesOptions {
  /** Lines to send, such as `Deno.stdin`. */
  input: ByteReader;
  /** Where replies go, such as `Deno.stdout`. */
  output: ByteWriter;
  /** One JSON object per reply instead of the text. @default {false} */
  json?: boolean;
  /** Escape control characters in replies (for a terminal). @default {false} */
  escape?: boolean;
  /** Milliseconds to wait for each reply before sending again. @default {1000} */
  timeout?: number;
  /** Sends after the first when no reply comes. @default {2} */
  retries?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Sends each line of `input` (without its newline) as one datagram to
 * `address` and writes each reply as a line, one at a time.
 *
 * @param address the UDP server
 * @param options input, output and timing
 * @returns the number of lines answered
 * @throws {UdpTimeoutError} when a line gets no reply after its retries
 * @throws {RangeError} when a line does not fit in one datagram
 *
 * @example Lines through a local echo server
 * ```ts
 * import { serveUdp } from "@sockit/sockit";
 * import { udpLines } from "@sockit/sockit/udp";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = serveUdp({ listen: ["127.0.0.1:0"] });
 * const input = new TextEncoder().encode("one\ntwo\n");
 * let done = false;
 * const out: Uint8Array[] = [];
 * await udpLines(server.addrs[0]!, {
 *   input: { read: (p) => Promise.resolve(done ? null : (done = true, p.set(input), input.length)) },
 *   output: { write: (p) => Promise.resolve(out.push(p.slice()) && p.length) },
 * });
 * deepEqual(new TextDecoder().decode(new Uint8Array(out.flatMap((c) => [...c]))), "one\ntwo\n");
 * ```
 */
export async function udpLines(address: UdpAddress, options: UdpLinesOptions): Promise<number> {
  const buf = new Uint8Array(64 * 1024);
  let carry = new Uint8Array(0);
  let answered = 0;
  const send = async (line: Uint8Array) => {
    if (line.length > MAX_UDP_PAYLOAD) {
      throw new RangeError(
        `Cannot send a line of ${line.length} bytes: one datagram holds at most ${MAX_UDP_PAYLOAD}`,
      );
    }
    const reply = await udpRequest(address, line, options);
    const text = options.json
      ? JSON.stringify({ event: "reply", bytes: reply.length, text: decoder.decode(reply) })
      : options.escape
      ? escapeControl(decoder.decode(reply))
      : undefined;
    if (text === undefined) {
      const out = new Uint8Array(reply.length + 1);
      out.set(reply);
      out[reply.length] = 0x0a;
      await writeAll(options.output, out);
    } else {
      await writeAll(options.output, encoder.encode(text + "\n"));
    }
    answered++;
  };
  for (;;) {
    const n = await options.input.read(buf);
    if (n === null) break;
    let chunk = buf.subarray(0, n);
    if (carry.length > 0) {
      const joined = new Uint8Array(carry.length + n);
      joined.set(carry);
      joined.set(chunk, carry.length);
      chunk = joined;
    }
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      await send(chunk.subarray(start, nl));
      start = nl + 1;
    }
    carry = chunk.slice(start);
    if (carry.length > MAX_UDP_PAYLOAD) await send(carry); // fails with a clear error
  }
  if (carry.length > 0) await send(carry);
  return answered;
}

function ms(value: number): string {
  return value.toFixed(3);
}

/**
 * One line per ping reply, as `ping` prints it, with what was odd about it.
 *
 * @param reply the reply
 * @param address the address pinged
 * @returns the line
 *
 * @example A plain reply
 * ```ts
 * import { formatPingReply } from "@sockit/sockit/udp";
 * import { deepEqual } from "node:assert/strict";
 *
 * const reply = { seq: 1, bytes: 56, rtt: 0.25, late: false, duplicate: false, reordered: false };
 * deepEqual(formatPingReply(reply, "127.0.0.1:7070"), "56 bytes from 127.0.0.1:7070: seq=1 time=0.250 ms");
 * ```
 */
export function formatPingReply(reply: PingReply, address: string): string {
  const notes = [
    reply.duplicate ? " (DUP!)" : "",
    reply.late ? " (late)" : "",
    reply.reordered ? " (out of order)" : "",
  ].join("");
  return `${reply.bytes} bytes from ${address}: seq=${reply.seq} time=${ms(reply.rtt)} ms${notes}`;
}

/**
 * The summary lines of a ping, in the style of `ping`.
 *
 * @param summary the statistics
 * @returns two or three lines, without a final newline
 *
 * @example All answered
 * ```ts
 * import { formatPingSummary } from "@sockit/sockit/udp";
 * import { ok } from "node:assert/strict";
 *
 * const text = formatPingSummary({
 *   address: "127.0.0.1:7070", sent: 2, received: 2, loss: 0, min: 0.1, avg: 0.15,
 *   max: 0.2, mdev: 0.05, late: 0, duplicates: 0, reordered: 0, duration: 1001,
 * });
 * ok(text.includes("2 datagrams sent, 2 received, 0% loss"));
 * ```
 */
export function formatPingSummary(summary: PingSummary): string {
  const extras = [
    summary.late ? `${summary.late} late` : "",
    summary.duplicates ? `${summary.duplicates} duplicates` : "",
    summary.reordered ? `${summary.reordered} out of order` : "",
  ].filter(Boolean);
  const lines = [
    `--- ${summary.address} sockit ping statistics ---`,
    `${summary.sent} datagram${
      summary.sent === 1 ? "" : "s"
    } sent, ${summary.received} received, ${summary.loss}% loss${
      extras.length ? `, ${extras.join(", ")}` : ""
    }, time ${summary.duration} ms`,
  ];
  if (summary.received > 0) {
    lines.push(
      `rtt min/avg/max/mdev = ${ms(summary.min)}/${ms(summary.avg)}/${ms(summary.max)}/${
        ms(summary.mdev)
      } ms`,
    );
  }
  return lines.join("\n");
}
