/**
 * sockit: framed, authenticated sockets for Deno — a server with echo and
 * chat services, a client, and the length-prefixed codec they share.
 *
 * Every frame is a 4-byte big-endian length and that many bytes, so message
 * boundaries survive TCP's habit of splitting and gluing writes (the "sticky
 * packet" problem). The server bounds every frame before buffering it, puts a
 * deadline on every wait, and costs a misbehaving peer only its own
 * connection.
 *
 * ```ts
 * import { connect, MessageType, serve } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"] });
 * await using session = await connect(server.addrs[0]!, { service: "echo" });
 * await session.send(MessageType.Data, new TextEncoder().encode("ping"));
 * deepEqual(new TextDecoder().decode((await session.read())?.body), "ping");
 * ```
 *
 * A tour: {@linkcode serve} and {@linkcode connect} (with `echoService` and
 * `ChatRoom`) are the server and client; `execService` and {@linkcode exec}
 * run commands remotely; {@linkcode upload} moves files, verified and
 * atomically (the receiving side, `uploadService` and `UploadStore`, is in
 * `@sockit/sockit/upload`); `serveUdp`, `udpRequest` and `ping` do UDP echo;
 * the `tls` options of `serve` and `connect` add TLS verified by CA, pin or
 * known hosts (certificates: `@sockit/sockit/tls`); `AccessList` decides who
 * may connect; `FrameReader`/`FrameWriter` are the fast framing path,
 * `FrameEncoderStream`/`FrameDecoderStream` the Web Streams one.
 *
 * The codec alone composes with any byte stream:
 *
 * ```ts
 * import { FrameDecoderStream, FrameEncoderStream } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const payloads = [new Uint8Array([1, 2]), new Uint8Array([3])];
 * const out = await Array.fromAsync(
 *   ReadableStream.from(payloads)
 *     .pipeThrough(new FrameEncoderStream())
 *     .pipeThrough(new FrameDecoderStream()),
 * );
 * deepEqual(out, payloads);
 * ```
 *
 * Each part is also importable alone, loading only what it needs:
 * `@sockit/sockit/frame` (the codec: no npm package, no `Deno.*`), `/server`,
 * `/client`, `/exec`, `/upload`, `/udp`, `/tls`, `/permissions`, and `/cli`
 * (the command line). This module re-exports what most programs use.
 *
 * @module
 */

export {
  encodeFrame,
  FrameDecoderStream,
  FrameEncoderStream,
  type FrameOptions,
  FrameReader,
  FrameTooLargeError,
  FrameTruncatedError,
  FrameWriter,
} from "./lib/frame/mod.ts";
export {
  ChatRoom,
  echoService,
  serve,
  type ServeOptions,
  Server,
  type ServerEvent,
  type Service,
  Session,
} from "./lib/server/mod.ts";
export {
  ClientSession,
  connect,
  ConnectError,
  type ConnectOptions,
  type Message,
} from "./lib/client/mod.ts";
export {
  exec,
  type ExecOptions,
  execService,
  type ExecServiceOptions,
  type ExecStatus,
  exitCodeOf,
  pipeExec,
  type RemoteProcess,
} from "./lib/exec/mod.ts";
export { upload, type UploadOptions, type UploadResult } from "./lib/upload/mod.ts";
export {
  ping,
  type PingOptions,
  type PingSummary,
  serveUdp,
  udpRequest,
  type UdpServeOptions,
  UdpServer,
  UdpTimeoutError,
} from "./lib/udp/mod.ts";
export { type TlsClientOptions, TlsVerifyError } from "./lib/tls/mod.ts";
export { MessageType, type Welcome } from "./lib/protocol/protocol.ts";
export { type ErrorCode, ProtocolError, RemoteError } from "./lib/protocol/errors.ts";
export { type Address, formatAddress, parseAddress } from "./lib/net/address.ts";
export { createToken, loadToken, type LoadTokenOptions, TokenError } from "./lib/config/token.ts";
export { AccessList } from "./lib/server/access_list.ts";
export { type ErrorDetails } from "./lib/protocol/errors.ts";
export { type ExecStdio } from "./lib/exec/exec_stdio.ts";
export { type PingReply } from "./lib/udp/udp_client.ts";
export { type SourceGuardOptions } from "./lib/server/source_guard.ts";
export { type TcpAddress } from "./lib/net/address.ts";
export { type TlsVerifyCode } from "./lib/tls/tls_client.ts";
export { type UdpAddress } from "./lib/udp/udp_client.ts";
export { type UdpEvent } from "./lib/udp/udp_server.ts";
export { type UdpRequestOptions } from "./lib/udp/udp_client.ts";
export { type UdpStats } from "./lib/udp/udp_server.ts";
export { type UnixAddress } from "./lib/net/address.ts";
export { type UploadProgress } from "./lib/upload/upload.ts";
export { type UploadSummary } from "./lib/upload/upload.ts";
export { type AccessDecision } from "./lib/server/access_list.ts";
export { type ByteReader } from "./lib/frame/frame_io.ts";
export { type ByteWriter } from "./lib/frame/frame_io.ts";
