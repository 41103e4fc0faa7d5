/**
 * The sockit wire protocol, version 1: message types and the encoding and
 * validation of control messages. `docs/protocol.md` is the specification.
 *
 * Every frame payload starts with one message-type byte. DATA, PING and PONG
 * carry raw bytes after it; every other type carries one UTF-8 JSON object.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/** The protocol versions this implementation speaks, newest last. */
export const SUPPORTED_VERSIONS: readonly number[] = [1];

/** The protocol name every HELLO carries. */
export const PROTOCOL_NAME = "sockit";

/** Length in bytes of the client and server nonces. */
export const NONCE_LENGTH = 32;

/** Message type bytes, the first byte of every frame payload. */
export const MessageType = {
  /** Service data, raw bytes. */
  Data: 0x00,
  /** Client's opening message (JSON). */
  Hello: 0x01,
  /** Server's authentication challenge (JSON). */
  Challenge: 0x02,
  /** Client's authentication proof (JSON). */
  Auth: 0x03,
  /** Server's acceptance of the session (JSON). */
  Welcome: 0x04,
  /** A refusal or failure; the sender closes the connection after it (JSON). */
  Error: 0x05,
  /** A service event, such as a chat message (JSON). */
  Event: 0x06,
  /** Keepalive request, raw bytes echoed in the PONG. */
  Ping: 0x07,
  /** Keepalive answer. */
  Pong: 0x08,
  /** Client's command request in an exec session (JSON). */
  Exec: 0x09,
  /** Bytes of one exec stream: a stream id byte, then data; no data means end of stream. */
  Stream: 0x0a,
  /** Server's grant of more stdin bytes: a 4-byte big-endian count. */
  Credit: 0x0b,
  /** Client's request to signal the remote command (JSON). */
  Signal: 0x0c,
  /** Client's announcement of an upload entry, a file or a directory (JSON). */
  File: 0x0d,
  /** Client's end of a file's bytes, with its SHA-256 (JSON). */
  End: 0x0e,
  /** Client's choice of where a resumed file's bytes start (JSON). */
  Start: 0x0f,
} as const;

/** One of the values of {@linkcode MessageType}. */
export type MessageType = typeof MessageType[keyof typeof MessageType];

/** The client's opening message. */
export interface Hello {
  /** Protocol versions the client speaks. */
  versions: number[];
  /** The service requested, such as `"echo"` or `"chat"`. */
  service: string;
  /** A fresh random client nonce of {@linkcode NONCE_LENGTH} bytes. */
  nonce: Uint8Array;
  /** Service parameters, such as the chat nickname. */
  params: Record<string, unknown>;
}

/** The server's acceptance of a session. */
export interface Welcome {
  /** The protocol version chosen. */
  version: number;
  /** The service now running. */
  service: string;
  /** The largest frame payload the server accepts from now on. */
  maxFrame: number;
  /** Milliseconds of silence after which the server closes the session. */
  idleTimeout: number;
  /** The server's proof of the token, present when the session was authenticated. */
  proof?: Uint8Array;
  /**
   * Milliseconds a blocked write may wait while the client is silent; absent
   * from older servers. Clients ping often enough to stay inside it.
   */
  stallTimeout?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes a control message: the type byte followed by `body` as UTF-8 JSON.
 *
 * @param type the message type
 * @param body the JSON object
 * @returns the frame payload
 *
 * @example Encode and decode a PING-free control message
 * ```ts
 * import { decodeControl, encodeControl } from "./protocol.ts";
 * import { MessageType } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const payload = encodeControl(MessageType.Error, { code: "busy", message: "full" });
 * deepEqual(payload[0], MessageType.Error);
 * deepEqual(decodeControl(payload), { code: "busy", message: "full" });
 * ```
 */
export function encodeControl(type: MessageType, body: Record<string, unknown>): Uint8Array {
  const json = encoder.encode(JSON.stringify(body));
  const payload = new Uint8Array(1 + json.length);
  payload[0] = type;
  payload.set(json, 1);
  return payload;
}

/**
 * Decodes the JSON object of a control message payload.
 *
 * @param payload the frame payload, type byte included
 * @returns the object
 * @throws {ProtocolError} `bad_message` when the body is not a UTF-8 JSON object
 *
 * @example Reject a body that is not an object
 * ```ts
 * import { decodeControl } from "./protocol.ts";
 * import { ProtocolError } from "@sockit/sockit";
 * import { throws } from "node:assert/strict";
 *
 * throws(() => decodeControl(new Uint8Array([5, 0x31])), ProtocolError);
 * ```
 */
export function decodeControl(payload: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload.subarray(1)));
  } catch (cause) {
    throw new ProtocolError(
      "bad_message",
      `Cannot decode message of type ${payload[0]}: body is not UTF-8 JSON`,
      { type: payload[0] ?? -1 },
      { cause },
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(
      "bad_message",
      `Cannot decode message of type ${payload[0]}: body is not a JSON object`,
      { type: payload[0] ?? -1 },
    );
  }
  return value as Record<string, unknown>;
}

/**
 * Reads a base64 field that must decode to exactly `length` bytes.
 *
 * @param body the message object
 * @param field the field name
 * @param length the required decoded length
 * @returns the bytes
 * @throws {ProtocolError} `bad_message` when missing or malformed
 *
 * @example Read a nonce
 * ```ts
 * import { bytesField } from "./protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(bytesField({ n: "AQI=" }, "n", 2), new Uint8Array([1, 2]));
 * ```
 */
export function bytesField(
  body: Record<string, unknown>,
  field: string,
  length: number,
): Uint8Array {
  const value = body[field];
  if (typeof value === "string") {
    try {
      const bytes = Uint8Array.fromBase64(value);
      if (bytes.length === length) return bytes;
    } catch {
      // Not base64: reported below with the field name.
    }
  }
  throw new ProtocolError(
    "bad_message",
    `Cannot read field "${field}": expected ${length} bytes in base64`,
    { field },
  );
}

/**
 * Validates the JSON body of a HELLO message.
 *
 * @param body the decoded body
 * @returns the message
 * @throws {ProtocolError} `bad_handshake` when a field is missing or of the wrong type
 *
 * @example Parse a HELLO
 * ```ts
 * import { parseHello } from "./protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const nonce = new Uint8Array(32).toBase64();
 * const hello = parseHello({ protocol: "sockit", versions: [1], service: "echo", nonce });
 * deepEqual(hello.service, "echo");
 * ```
 */
export function parseHello(body: Record<string, unknown>): Hello {
  const { protocol, versions, service, params } = body;
  if (protocol !== PROTOCOL_NAME) {
    throw new ProtocolError("bad_handshake", `Cannot start session: protocol is not "sockit"`);
  }
  if (
    !Array.isArray(versions) || versions.length === 0 || versions.length > 16 ||
    !versions.every((v) => Number.isSafeInteger(v) && v > 0)
  ) {
    throw new ProtocolError(
      "bad_handshake",
      "Cannot start session: versions must be 1 to 16 positive integers",
    );
  }
  if (typeof service !== "string" || !/^[a-z][a-z0-9-]{0,31}$/.test(service)) {
    throw new ProtocolError(
      "bad_handshake",
      "Cannot start session: service must be a lower-case name of 1 to 32 characters",
    );
  }
  if (
    params !== undefined && (typeof params !== "object" || params === null || Array.isArray(params))
  ) {
    throw new ProtocolError("bad_handshake", "Cannot start session: params must be an object");
  }
  let nonce: Uint8Array;
  try {
    nonce = bytesField(body, "nonce", NONCE_LENGTH);
  } catch (cause) {
    throw new ProtocolError(
      "bad_handshake",
      `Cannot start session: nonce must be ${NONCE_LENGTH} bytes in base64`,
      {},
      { cause },
    );
  }
  return {
    versions: versions as number[],
    service,
    nonce,
    params: (params ?? {}) as Record<string, unknown>,
  };
}

/**
 * Picks the newest version both sides speak.
 *
 * @param offered the versions the client offered
 * @returns the version, or `undefined` when there is none in common
 *
 * @example Choose version 1
 * ```ts
 * import { chooseVersion } from "./protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(chooseVersion([1, 7]), 1);
 * deepEqual(chooseVersion([7]), undefined);
 * ```
 */
export function chooseVersion(offered: readonly number[]): number | undefined {
  let best: number | undefined;
  for (const v of offered) {
    if (SUPPORTED_VERSIONS.includes(v) && (best === undefined || v > best)) best = v;
  }
  return best;
}

/**
 * Validates the JSON body of a WELCOME message.
 *
 * @param body the decoded body
 * @returns the message
 * @throws {ProtocolError} `bad_message` when a field is missing or of the wrong type
 *
 * @example Parse a WELCOME
 * ```ts
 * import { parseWelcome } from "./protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const welcome = parseWelcome({ version: 1, service: "echo", maxFrame: 1024, idleTimeout: 0 });
 * deepEqual(welcome.maxFrame, 1024);
 * ```
 */
export function parseWelcome(body: Record<string, unknown>): Welcome {
  const { version, service, maxFrame, idleTimeout } = body;
  if (
    !Number.isSafeInteger(version) || typeof service !== "string" ||
    !Number.isSafeInteger(maxFrame) || (maxFrame as number) < 1 ||
    (maxFrame as number) > 0xffff_ffff ||
    !Number.isSafeInteger(idleTimeout) || (idleTimeout as number) < 0
  ) {
    throw new ProtocolError("bad_message", "Cannot read WELCOME: a field is missing or malformed");
  }
  const welcome: Welcome = {
    version: version as number,
    service,
    maxFrame: maxFrame as number,
    idleTimeout: idleTimeout as number,
  };
  if (body.proof !== undefined) welcome.proof = bytesField(body, "proof", 32);
  const { stallTimeout } = body;
  if (Number.isSafeInteger(stallTimeout) && (stallTimeout as number) > 0) {
    welcome.stallTimeout = stallTimeout as number;
  }
  return welcome;
}
