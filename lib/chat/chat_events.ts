/**
 * The chat service's EVENT bodies, shared by the room (which sends them)
 * and the clients (which read them): the one chat module client code may
 * import.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";

/** An event the chat service sends to members, as an EVENT message body. */
export type ChatEvent =
  | { kind: "members"; names: string[] }
  | { kind: "join"; name: string }
  | { kind: "leave"; name: string; reason: string }
  | { kind: "message"; from: string; text: string };

/**
 * Checks an EVENT body received from a chat server.
 *
 * @param body the decoded JSON object
 * @returns the event, or `undefined` for a kind this version does not know
 *   (newer servers may send more kinds; clients skip them)
 * @throws {ProtocolError} `bad_message` when a known kind has missing or mistyped fields
 *
 * @example Accept a message, skip an unknown kind, refuse a malformed one
 * ```ts
 * import { parseChatEvent } from "@sockit/sockit/client";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * deepEqual(parseChatEvent({ kind: "join", name: "ada" }), { kind: "join", name: "ada" });
 * deepEqual(parseChatEvent({ kind: "poll" }), undefined);
 * throws(() => parseChatEvent({ kind: "members" }));
 * ```
 */
export function parseChatEvent(body: Record<string, unknown>): ChatEvent | undefined {
  const str = (key: string): string => {
    const value = body[key];
    if (typeof value === "string") return value;
    throw new ProtocolError(
      "bad_message",
      `Cannot read chat event "${String(body.kind)}": field "${key}" is not a string`,
      { field: key },
    );
  };
  switch (body.kind) {
    case "message":
      return { kind: "message", from: str("from"), text: str("text") };
    case "join":
      return { kind: "join", name: str("name") };
    case "leave":
      return { kind: "leave", name: str("name"), reason: str("reason") };
    case "members": {
      const names = body.names;
      if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) {
        throw new ProtocolError(
          "bad_message",
          'Cannot read chat event "members": field "names" is not a list of strings',
          { field: "names" },
        );
      }
      return { kind: "members", names };
    }
    default:
      return undefined;
  }
}
