/**
 * The messages of the `exec` service, shared by its server and client:
 * the command request, the stream ids, stdin credit, signals and the exit
 * status. `docs/protocol/exec.md` is the specification.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";

/** Stream ids, the first byte of a STREAM message body. */
export const StreamId = {
  /** The command's standard input, client → server. */
  Stdin: 0,
  /** The command's standard output, server → client. */
  Stdout: 1,
  /** The command's standard error, server → client. */
  Stderr: 2,
} as const;

/** One of the values of {@linkcode StreamId}. */
export type StreamId = typeof StreamId[keyof typeof StreamId];

/**
 * Stdin bytes a client may send before the server grants more with CREDIT:
 * 1 MiB. The server holds at most this much of a command's unread input.
 */
export const STDIN_WINDOW = 1024 * 1024;

/** Largest data part of one STREAM message the reference implementation sends: 64 KiB. */
export const STREAM_CHUNK = 64 * 1024;

/** Signals a client may ask the server to deliver to the remote command. */
export const EXEC_SIGNALS: readonly Deno.Signal[] = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
  "SIGKILL",
  "SIGUSR1",
  "SIGUSR2",
];

/** A command to run, as the client sends it in EXEC. */
export interface ExecRequest {
  /** The program and its arguments, passed to the program exactly as given. */
  argv: string[];
  /** Working directory on the server; the server's own when absent. */
  cwd?: string;
  /** Extra environment variables, each allowed by the server's operator. */
  env: Record<string, string>;
  /** Wall-clock limit in milliseconds; 0 means the server's limit. */
  timeout: number;
  /** Whether the client sends standard input; without it the command reads EOF. */
  stdin: boolean;
}

/** How a remote command ended. */
export interface ExecStatus {
  /** True when the command exited with code 0. */
  success: boolean;
  /** The exit code; 128 + N after death by signal N, as a shell reports it. */
  code: number;
  /** The signal that ended the command, or `null`. */
  signal: Deno.Signal | null;
  /** True when the server ended the command because its time limit passed. */
  timedOut: boolean;
  /** Milliseconds from start to exit, measured by the server. */
  duration: number;
}

/** Bounds on an EXEC request. */
export const EXEC_LIMITS = {
  /** Most argv entries: 4,096. */
  maxArgs: 4096,
  /** Most environment variables: 256. */
  maxEnv: 256,
} as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function bad(message: string, details: Record<string, string | number> = {}): ProtocolError {
  return new ProtocolError("bad_message", `Cannot read EXEC: ${message}`, details);
}

function hasNul(text: string): boolean {
  return text.includes("\0");
}

/**
 * Validates the JSON body of an EXEC message.
 *
 * Checks shape only; whether the program and variables are allowed is the
 * server's policy.
 *
 * @param body the decoded body
 * @returns the request
 * @throws {ProtocolError} `bad_message` naming the field that is wrong
 *
 * @example Parse a request and refuse one with no program
 * ```ts
 * import { parseExecRequest } from "./exec_protocol.ts";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * const request = parseExecRequest({ argv: ["printf", "<%s>", "a b"] });
 * deepEqual(request.argv, ["printf", "<%s>", "a b"]);
 * deepEqual(request.stdin, false);
 * throws(() => parseExecRequest({ argv: [] }));
 * ```
 */
export function parseExecRequest(body: Record<string, unknown>): ExecRequest {
  const { argv, cwd, env, timeout, stdin } = body;
  if (
    !Array.isArray(argv) || argv.length === 0 || argv.length > EXEC_LIMITS.maxArgs ||
    !argv.every((a) => typeof a === "string" && !hasNul(a))
  ) {
    throw bad(
      `argv must be 1 to ${EXEC_LIMITS.maxArgs} strings without NUL characters`,
      { field: "argv" },
    );
  }
  if (argv[0] === "") throw bad("the program name is empty", { field: "argv" });
  const request: ExecRequest = { argv, env: {}, timeout: 0, stdin: false };
  if (cwd !== undefined) {
    if (typeof cwd !== "string" || cwd === "" || hasNul(cwd)) {
      throw bad("cwd must be a non-empty string without NUL characters", { field: "cwd" });
    }
    request.cwd = cwd;
  }
  if (env !== undefined) {
    if (typeof env !== "object" || env === null || Array.isArray(env)) {
      throw bad("env must be an object of strings", { field: "env" });
    }
    const entries = Object.entries(env);
    if (entries.length > EXEC_LIMITS.maxEnv) {
      throw bad(`env has more than ${EXEC_LIMITS.maxEnv} variables`, { field: "env" });
    }
    for (const [name, value] of entries) {
      if (!ENV_NAME.test(name) || typeof value !== "string" || hasNul(value)) {
        throw bad("env names must be identifiers and values strings without NUL", {
          field: "env",
        });
      }
      request.env[name] = value;
    }
  }
  if (timeout !== undefined) {
    if (!Number.isSafeInteger(timeout) || (timeout as number) < 0) {
      throw bad("timeout must be a non-negative integer of milliseconds", { field: "timeout" });
    }
    request.timeout = timeout as number;
  }
  if (stdin !== undefined) {
    if (typeof stdin !== "boolean") throw bad("stdin must be true or false", { field: "stdin" });
    request.stdin = stdin;
  }
  return request;
}

/**
 * Validates the JSON body of an exec EVENT of kind `exit`.
 *
 * @param body the decoded body
 * @returns the status
 * @throws {ProtocolError} `bad_message` when a field is missing or mistyped
 *
 * @example Read a death by SIGTERM
 * ```ts
 * import { parseExecExit } from "./exec_protocol.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const status = parseExecExit({
 *   kind: "exit", code: 143, signal: "SIGTERM", timedOut: false, duration: 12,
 * });
 * deepEqual(status.signal, "SIGTERM");
 * deepEqual(status.success, false);
 * ```
 */
export function parseExecExit(body: Record<string, unknown>): ExecStatus {
  const { code, signal, timedOut, duration } = body;
  if (
    !Number.isSafeInteger(code) || (code as number) < 0 || (code as number) > 255 ||
    (signal !== null && typeof signal !== "string") || typeof timedOut !== "boolean" ||
    typeof duration !== "number" || !(duration >= 0)
  ) {
    throw new ProtocolError("bad_message", "Cannot read exec exit event: a field is malformed");
  }
  return {
    success: code === 0,
    code: code as number,
    signal: signal as Deno.Signal | null,
    timedOut,
    duration,
  };
}
