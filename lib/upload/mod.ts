/**
 * File upload: {@linkcode upload} sends files and directory trees like
 * `scp -r`, each hashed with SHA-256; {@linkcode uploadService} with an
 * {@linkcode UploadStore} receives them, checks every name, never follows a
 * link, and makes a file appear only when it is whole, verified and flushed.
 *
 * Owns: the upload wire format (`upload_protocol.ts`), the name rules
 * (`upload_name.ts`), the client (`upload.ts`), the service and its store.
 * The client imports `client/` and `protocol/`; the service side `protocol/`;
 * neither imports the other.
 *
 * @example Upload a file to a server in this process
 * ```ts
 * import { upload, uploadService, UploadStore } from "@sockit/sockit/upload";
 * import { serve } from "@sockit/sockit/server";
 * import { deepEqual } from "node:assert/strict";
 *
 * const inbox = await Deno.makeTempDir();
 * const source = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${source}/a.txt`, "hello");
 * const token = "a token of sixteen or more characters";
 * const store = await UploadStore.open(inbox, { reserveBytes: 0, reservePercent: 0 });
 * await using server = await serve({
 *   listen: ["127.0.0.1:0"],
 *   token,
 *   services: [uploadService(store)],
 * });
 * const result = await upload(server.addrs[0]!, [`${source}/a.txt`], { token });
 * deepEqual(result.committed, 1);
 * deepEqual(await Deno.readTextFile(`${inbox}/a.txt`), "hello");
 * await Deno.remove(inbox, { recursive: true });
 * await Deno.remove(source, { recursive: true });
 * ```
 *
 * @module
 */

export {
  upload,
  type UploadOptions,
  type UploadProgress,
  type UploadResult,
  type UploadSummary,
} from "./upload.ts";
export { uploadService } from "./upload_service.ts";
export {
  type BeginOptions,
  type FileAttributes,
  type PartialUpload,
  UploadStore,
  type UploadStoreOptions,
} from "./upload_store.ts";
export { NAME_LIMITS, parseRemoteName, type RemoteNameOptions } from "./upload_name.ts";
export { type Address } from "../net/address.ts";
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
