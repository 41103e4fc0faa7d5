/**
 * Everything the library modules export, public or not, for the tests:
 * protocol internals stay importable here without being part of the
 * published surface (`mod.ts` and the subpath entries).
 *
 * @module
 */

export * from "../lib/chat/chat.ts";
export * from "../lib/chat/chat_events.ts";
export * from "../lib/client/_message.ts";
export * from "../lib/client/client.ts";
export * from "../lib/client/line_clients.ts";
export * from "../lib/config/_private_file.ts";
export * from "../lib/config/config_path.ts";
export * from "../lib/config/token.ts";
export * from "../lib/echo/echo.ts";
export * from "../lib/exec/exec.ts";
export * from "../lib/exec/exec_protocol.ts";
export * from "../lib/exec/exec_service.ts";
export * from "../lib/exec/exec_stdio.ts";
export * from "../lib/exec/process_group.ts";
export * from "../lib/frame/frame.ts";
export * from "../lib/frame/frame_io.ts";
export * from "../lib/net/_close.ts";
export * from "../lib/net/address.ts";
export * from "../lib/net/relay.ts";
export * from "../lib/permissions/permissions.ts";
export * from "../lib/protocol/auth.ts";
export * from "../lib/protocol/errors.ts";
export * from "../lib/protocol/protocol.ts";
export * from "../lib/protocol/service.ts";
export * from "../lib/protocol/session.ts";
export * from "../lib/server/access_list.ts";
export * from "../lib/server/handshake.ts";
export * from "../lib/server/log.ts";
export * from "../lib/server/serve.ts";
export * from "../lib/server/server.ts";
export * from "../lib/server/source_guard.ts";
export * from "../lib/text/escape.ts";
export * from "../lib/text/units.ts";
export * from "../lib/tls/fingerprint.ts";
export * from "../lib/tls/known_hosts.ts";
export * from "../lib/tls/tls_certificate.ts";
export * from "../lib/tls/tls_client.ts";
export * from "../lib/udp/_datagram.ts";
export * from "../lib/udp/udp_client.ts";
export * from "../lib/udp/udp_lines.ts";
export * from "../lib/udp/udp_server.ts";
export * from "../lib/upload/upload.ts";
export * from "../lib/upload/upload_name.ts";
export * from "../lib/upload/upload_protocol.ts";
export * from "../lib/upload/upload_service.ts";
export * from "../lib/upload/upload_store.ts";
export * from "../lib/server/serve.ts";
export * from "../lib/udp/_datagram.ts";
