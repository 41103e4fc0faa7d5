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
 * run commands remotely; `uploadService`, `UploadStore` and {@linkcode upload}
 * move files, verified and atomically; `serveUdp`, `udpRequest` and `ping`
 * do UDP echo; `createSelfSigned`, `ensureTlsIdentity`, `connectTls` and the
 * `tls` options of `serve` and `connect` add TLS verified by CA, pin or known
 * hosts; `AccessList` and `SourceGuard` decide who may connect;
 * `requirePermissions` and `revokeExcept` keep a process to the Deno
 * permissions it needs. `FrameReader`/`FrameWriter` are the fast framing
 * path, `FrameEncoderStream`/`FrameDecoderStream` the Web Streams one.
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
 * @module
 */

export * from "./lib/access_list.ts";
export * from "./lib/address.ts";
export * from "./lib/auth.ts";
export * from "./lib/chat.ts";
export * from "./lib/client.ts";
export * from "./lib/config_path.ts";
export * from "./lib/echo.ts";
export * from "./lib/errors.ts";
export * from "./lib/exec.ts";
export * from "./lib/exec_protocol.ts";
export * from "./lib/exec_service.ts";
export * from "./lib/exec_stdio.ts";
export * from "./lib/escape.ts";
export * from "./lib/fingerprint.ts";
export * from "./lib/frame.ts";
export * from "./lib/frame_io.ts";
export * from "./lib/handshake.ts";
export * from "./lib/known_hosts.ts";
export * from "./lib/line_clients.ts";
export * from "./lib/log.ts";
export * from "./lib/process_group.ts";
export * from "./lib/progress.ts";
export * from "./lib/protocol.ts";
export * from "./lib/relay.ts";
export * from "./lib/server.ts";
export * from "./lib/service.ts";
export * from "./lib/session.ts";
export * from "./lib/source_guard.ts";
export * from "./lib/tls_certificate.ts";
export * from "./lib/tls_client.ts";
export * from "./lib/token.ts";
export * from "./lib/udp_client.ts";
export * from "./lib/udp_lines.ts";
export * from "./lib/udp_server.ts";
export * from "./lib/units.ts";
export * from "./lib/upload.ts";
export * from "./lib/upload_name.ts";
export * from "./lib/upload_protocol.ts";
export * from "./lib/upload_service.ts";
export * from "./lib/upload_store.ts";
