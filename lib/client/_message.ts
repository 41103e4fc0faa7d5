/**
 * Internal: the JSON object of a message a client session read.
 *
 * @module
 */

import type { Message } from "./client.ts";
import { decodeControl } from "../protocol/protocol.ts";

/** Decodes the JSON body of `message` (an EVENT, say), as {@linkcode decodeControl} does. */
export function messageJson(message: Message): Record<string, unknown> {
  const payload = new Uint8Array(1 + message.body.length);
  payload[0] = message.type;
  payload.set(message.body, 1);
  return decodeControl(payload);
}
