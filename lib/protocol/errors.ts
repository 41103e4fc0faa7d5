/**
 * Typed errors of the sockit protocol and their stable codes.
 *
 * @module
 */

/**
 * Stable, machine-readable error codes carried by ERROR messages. Programs
 * may match on these; the human message may change between releases.
 */
export type ErrorCode =
  | "frame_too_large"
  | "truncated_frame"
  | "bad_handshake"
  | "unsupported_version"
  | "unknown_service"
  | "auth_required"
  | "auth_failed"
  | "busy"
  | "denied"
  | "handshake_timeout"
  | "idle_timeout"
  | "write_stall"
  | "frame_stall"
  | "bad_message"
  | "bad_name"
  | "name_taken"
  | "slow_consumer"
  | "shutting_down"
  | "not_allowed"
  | "not_found"
  | "not_executable"
  | "exec_failed"
  | "too_large"
  | "exists"
  | "disk_full"
  | "size_mismatch"
  | "hash_mismatch"
  | "io_error"
  | "internal";

/** Every {@linkcode ErrorCode}, in the order `docs/protocol.md` lists them. */
export const ERROR_CODES: readonly ErrorCode[] = [
  "frame_too_large",
  "truncated_frame",
  "bad_handshake",
  "unsupported_version",
  "unknown_service",
  "auth_required",
  "auth_failed",
  "busy",
  "denied",
  "handshake_timeout",
  "idle_timeout",
  "write_stall",
  "frame_stall",
  "bad_message",
  "bad_name",
  "name_taken",
  "slow_consumer",
  "shutting_down",
  "not_allowed",
  "not_found",
  "not_executable",
  "exec_failed",
  "too_large",
  "exists",
  "disk_full",
  "size_mismatch",
  "hash_mismatch",
  "io_error",
  "internal",
];

/** Extra values an error carries, such as the limit that was exceeded. */
export type ErrorDetails = Record<string, string | number | boolean | number[]>;

/**
 * A protocol violation or refusal detected on this side of a connection.
 *
 * A server turns it into an ERROR message for the peer before closing the
 * connection.
 *
 * @example Create an error that names its limit
 * ```ts
 * import { ProtocolError } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const error = new ProtocolError("busy", "Cannot accept connection: 256 of 256 in use", {
 *   maxConnections: 256,
 * });
 * deepEqual(error.code, "busy");
 * deepEqual(error.details.maxConnections, 256);
 * ```
 */
export class ProtocolError extends Error {
  /** The stable error code. */
  readonly code: ErrorCode;
  /** Values involved, such as the limit in force. */
  readonly details: ErrorDetails;

  /**
   * Creates a `ProtocolError`.
   *
   * @param code the stable error code
   * @param message what failed, for people
   * @param details values involved
   * @param options the original error as `cause`
   */
  constructor(
    code: ErrorCode,
    message: string,
    details: ErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
    this.details = details;
  }
}

/**
 * An ERROR message received from the peer. The code is the peer's; it may be
 * one this version does not know.
 *
 * @example Match on the code
 * ```ts
 * import { RemoteError } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const error = new RemoteError("auth_failed", "Cannot authenticate: wrong proof", {});
 * deepEqual(error.code, "auth_failed");
 * deepEqual(error.message, "Cannot authenticate: wrong proof");
 * ```
 */
export class RemoteError extends Error {
  /** The code the peer sent. */
  readonly code: string;
  /** Values the peer sent along. */
  readonly details: Readonly<Record<string, unknown>>;

  /**
   * Creates a `RemoteError`.
   *
   * @param code the code the peer sent
   * @param message the peer's message
   * @param details values the peer sent along
   */
  constructor(code: string, message: string, details: Readonly<Record<string, unknown>>) {
    super(message);
    this.name = "RemoteError";
    this.code = code;
    this.details = details;
  }
}
