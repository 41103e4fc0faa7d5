/**
 * UDP echo: {@linkcode serveUdp} answers each datagram with itself, never
 * larger, rate-limited per source; {@linkcode udpRequest} sends one and
 * waits for its echo; {@linkcode ping} measures round trips and loss;
 * {@linkcode udpLines} is the line client. Needs `--unstable-net`.
 *
 * Owns: UDP sockets and the ping probe. Imports: `net/` and `text/` only;
 * the client files share `_datagram.ts` with the server, not the server.
 *
 * @example Echo one datagram
 * ```ts
 * import { serveUdp, udpRequest } from "@sockit/sockit/udp";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = serveUdp({ listen: ["127.0.0.1:0"] });
 * const reply = await udpRequest(server.addrs[0]!, new TextEncoder().encode("hi"));
 * deepEqual(new TextDecoder().decode(reply), "hi");
 * ```
 *
 * @module
 */

export {
  serveUdp,
  type UdpEvent,
  type UdpServeOptions,
  UdpServer,
  type UdpStats,
} from "./udp_server.ts";
export { MAX_UDP_PAYLOAD, requireDatagrams } from "./_datagram.ts";
export {
  ping,
  type PingOptions,
  type PingReply,
  type PingSummary,
  type UdpAddress,
  udpRequest,
  type UdpRequestOptions,
  UdpTimeoutError,
} from "./udp_client.ts";
export { formatPingReply, formatPingSummary, udpLines, type UdpLinesOptions } from "./udp_lines.ts";
export { type Address } from "../net/address.ts";
export { type ByteReader } from "../frame/frame_io.ts";
export { type ByteWriter } from "../frame/frame_io.ts";
export { type TcpAddress } from "../net/address.ts";
export { type UnixAddress } from "../net/address.ts";
