/**
 * The client: {@linkcode connect} opens an authenticated session with a
 * sockit server (TCP, TLS or a Unix socket); {@linkcode dial} and
 * {@linkcode relay} are the raw, netcat-style path; the line clients turn
 * stdin lines into echo frames or chat messages.
 *
 * Owns: connecting, the client side of the handshake, keepalive. Imports:
 * `protocol/`, `frame/`, `net/`, `tls/` (verification), `text/` and the
 * chat service's wire helpers — never `server/` or a service's server side.
 *
 * @example Talk to the echo service
 * ```ts
 * import { connect, MessageType } from "@sockit/sockit/client";
 * import { serve } from "@sockit/sockit/server";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"] });
 * await using session = await connect(server.addrs[0]!, { service: "echo" });
 * await session.send(MessageType.Data, new TextEncoder().encode("ping"));
 * deepEqual(new TextDecoder().decode((await session.read())?.body), "ping");
 * ```
 *
 * @module
 */

export {
  ClientSession,
  connect,
  ConnectError,
  type ConnectOptions,
  dial,
  type DialOptions,
  type Message,
} from "./client.ts";
export {
  chatLines,
  echoLines,
  formatChatEvent,
  type LineClientOptions,
  sendLines,
} from "./line_clients.ts";
export { type ChatEvent, parseChatEvent } from "../chat/chat_events.ts";
export { relay, RelayIncompleteError, type RelayOptions, type RelayResult } from "../net/relay.ts";
export { escapeControl } from "../text/escape.ts";
export { encodeFrame, writeAll } from "../frame/mod.ts";
export {
  type Address,
  DEFAULT_ADDRESS,
  formatAddress,
  parseAddress,
  type TcpAddress,
  type UnixAddress,
} from "../net/address.ts";
export { MessageType, type Welcome } from "../protocol/protocol.ts";
export { type ErrorCode, type ErrorDetails, RemoteError } from "../protocol/errors.ts";
export type { TlsClientOptions, TlsVerifyCode } from "../tls/tls_client.ts";
export { TlsVerifyError } from "../tls/tls_client.ts";
export { type ByteReader } from "../frame/frame_io.ts";
export { type ByteWriter } from "../frame/frame_io.ts";
export { type FrameOptions } from "../frame/frame.ts";
export { FrameReader } from "../frame/frame_io.ts";
export { FrameWriter } from "../frame/frame_io.ts";
