/**
 * The server: {@linkcode serve} listens on TCP (plain or TLS) and Unix
 * sockets, runs the handshake, enforces every limit and deadline, and hands
 * each session to a {@linkcode Service} — echo and chat by default; exec and
 * upload come from `@sockit/sockit/exec` and `@sockit/sockit/upload`.
 *
 * Owns: listeners, admission (access lists, per-source guard, connection
 * caps), the handshake, shutdown, event logs. Imports: `protocol/`,
 * `frame/`, `net/`, `text/`; the core (`server.ts`) knows no concrete service —
 * only `serve.ts` adds the defaults from `echo/` and `chat/`.
 *
 * @example Serve echo and chat on a free loopback port
 * ```ts
 * import { serve } from "@sockit/sockit/server";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"] });
 * deepEqual(server.connections, 0);
 * ```
 *
 * @module
 */

export { serve } from "./serve.ts";
export { type ServeOptions, Server, type ServerEvent } from "./server.ts";
export {
  type AccessDecision,
  AccessList,
  AccessRuleError,
  type AccessRules,
  parseAccessFile,
} from "./access_list.ts";
export type { AdmitResult, SourceGuardOptions } from "./source_guard.ts";
export { formatEvent, formatEventJson } from "./log.ts";
export type { Service } from "../protocol/service.ts";
export { Session, type SessionOptions } from "../protocol/session.ts";
export { echoService } from "../echo/echo.ts";
export { ChatRoom, type ChatRoomOptions } from "../chat/chat.ts";
export {
  type Address,
  DEFAULT_ADDRESS,
  formatAddress,
  parseAddress,
  type TcpAddress,
  type UnixAddress,
} from "../net/address.ts";
export { type ErrorCode, type ErrorDetails, ProtocolError } from "../protocol/errors.ts";
export { FrameReader } from "../frame/frame_io.ts";
export { FrameWriter } from "../frame/frame_io.ts";
export { type UdpEvent } from "../udp/udp_server.ts";
export { type UdpStats } from "../udp/udp_server.ts";
