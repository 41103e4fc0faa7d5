/**
 * Remote exec: {@linkcode exec} runs one program on a server with its argv
 * exactly as given, streams stdin, stdout and stderr apart with flow control
 * and reports the real exit status; {@linkcode execService} is the server
 * side, with an allowlist, limits and process-group cleanup.
 *
 * Owns: the exec wire format (`exec_protocol.ts`, shared by both sides), the
 * client (`exec.ts`, `exec_stdio.ts`) and the service (`exec_service.ts`,
 * `process_group.ts`). The client side imports `client/` and `protocol/`,
 * the service side `protocol/` only; neither imports the other.
 *
 * @example Run a command on a server in this process
 * ```ts
 * import { exec, execService } from "@sockit/sockit/exec";
 * import { serve } from "@sockit/sockit/server";
 * import { deepEqual } from "node:assert/strict";
 *
 * const token = "a token of sixteen or more characters";
 * const services = [execService({ allow: ["echo"] })];
 * await using server = await serve({ listen: ["127.0.0.1:0"], token, services });
 * await using proc = await exec(server.addrs[0]!, ["echo", "hi"], { token });
 * const [out, status] = await Promise.all([
 *   new Response(proc.stdout).text(),
 *   proc.status,
 *   proc.stderr.cancel(),
 * ]);
 * deepEqual([out, status.code], ["hi\n", 0]);
 * ```
 *
 * @module
 */

export { exec, type ExecOptions, type RemoteProcess } from "./exec.ts";
export { type ExecStdio, EXIT_TIMEOUT, exitCodeOf, pipeExec } from "./exec_stdio.ts";
export { defaultExecEnv, execService, type ExecServiceOptions } from "./exec_service.ts";
export type { ExecStatus } from "./exec_protocol.ts";
export { type Address } from "../net/address.ts";
export { type ByteReader } from "../frame/frame_io.ts";
export { type ByteWriter } from "../frame/frame_io.ts";
export { type ConnectOptions } from "../client/client.ts";
export { type Service } from "../protocol/service.ts";
export { Session } from "../protocol/session.ts";
export { type TcpAddress } from "../net/address.ts";
export { type TlsClientOptions } from "../tls/tls_client.ts";
export { type UnixAddress } from "../net/address.ts";
export { type ErrorDetails } from "../protocol/errors.ts";
export { FrameReader } from "../frame/frame_io.ts";
export { FrameWriter } from "../frame/frame_io.ts";
export { ProtocolError } from "../protocol/errors.ts";
export { type ErrorCode } from "../protocol/errors.ts";
