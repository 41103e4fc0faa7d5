/**
 * Log lines for server events: one readable line each, or one NDJSON object.
 *
 * @module
 */

import { escapeForLog } from "../text/escape.ts";
import type { ServerEvent } from "./server.ts";
import type { UdpEvent } from "../udp/udp_server.ts";

/**
 * Formats an event as one human-readable line (no newline). Values a peer
 * can influence are escaped and truncated.
 *
 * @param event the event
 * @returns the line
 *
 * @example Format a close
 * ```ts
 * import { formatEvent } from "@sockit/sockit/server";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(
 *   formatEvent({ type: "closed", id: 3, remote: "127.0.0.1:5000", service: "echo", reason: "eof" }),
 *   "closed #3 127.0.0.1:5000 echo: eof",
 * );
 * ```
 */
export function formatEvent(event: ServerEvent | UdpEvent): string {
  switch (event.type) {
    case "udp-listening":
      return `listening on udp ${event.address}`;
    case "udp-dropped":
      return `udp dropped ${event.count} datagram${
        event.count === 1 ? "" : "s"
      } from ${event.remote}: ${
        event.reason === "oversize" ? `oversize (${event.size} bytes)` : "rate limited"
      }`;
    case "udp-closed":
      return `closed udp ${event.address}: ${event.stats.received} received, ${event.stats.echoed} echoed, ${event.stats.oversize} oversize, ${event.stats.rateLimited} rate limited, ${event.stats.sendErrors} send errors`;
    case "listening":
      return `listening on ${event.address}`;
    case "connected":
      return `connected #${event.id} ${event.remote}`;
    case "refused":
      return `refused ${event.remote}: ${event.code}`;
    case "session":
      return `session #${event.id} ${event.remote} ${escapeForLog(event.service)}${
        event.authenticated ? " (authenticated)" : ""
      }`;
    case "closed":
      return `closed #${event.id} ${event.remote} ${
        escapeForLog(event.service) || "-"
      }: ${event.reason}`;
    case "tls-failed":
      return `tls failed #${event.id} ${event.remote}: ${escapeForLog(event.message)}`;
    case "error":
      return `error${event.id === undefined ? "" : ` #${event.id}`}: ${event.code}: ${
        escapeForLog(event.message)
      }`;
    case "shutdown":
      return `shutting down (${event.sessions} sessions open)`;
  }
}

/**
 * Formats an event as one NDJSON line (no newline) with an ISO time stamp.
 *
 * @param event the event
 * @param now the time stamp
 * @returns the JSON text
 *
 * @example Format a listening event
 * ```ts
 * import { formatEventJson } from "@sockit/sockit/server";
 * import { deepEqual } from "node:assert/strict";
 *
 * const line = formatEventJson({ type: "listening", address: "127.0.0.1:7070" }, new Date(0));
 * deepEqual(JSON.parse(line), {
 *   time: "1970-01-01T00:00:00.000Z",
 *   type: "listening",
 *   address: "127.0.0.1:7070",
 * });
 * ```
 */
export function formatEventJson(event: ServerEvent | UdpEvent, now: Date = new Date()): string {
  return JSON.stringify({ time: now.toISOString(), ...event });
}
