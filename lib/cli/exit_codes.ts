/**
 * The command line's exit codes: one table for every command, printed by
 * `sockit help`, and the one function that maps a failure to its code.
 *
 * @module
 */

import { TlsVerifyError } from "../tls/tls_client.ts";

/** Exit codes of server, client, upload and completions. */
export const EXIT = {
  /** Everything asked was done. */
  ok: 0,
  /** Refused, denied, not authenticated, a protocol error, an entry not committed. */
  failure: 1,
  /** The command line itself is wrong. */
  usage: 2,
  /** The server's TLS certificate changed since it was recorded (known hosts). */
  hostKeyChanged: 3,
} as const;

/**
 * What `exec` returns for its own failures, as ssh does: the remote
 * command's codes take every other value.
 */
export const EXEC_OWN_FAILURE = 255;

/** The exit-code section of `sockit help`: the table above, once. */
export const EXIT_CODES_HELP = `\
Exit codes (every command):
  ${EXIT.ok}    success
  ${EXIT.failure}    failure: refused, denied, authentication, protocol error, an upload entry
       not committed
  ${EXIT.usage}    usage error
  ${EXIT.hostKeyChanged}    the server's TLS certificate changed since it was recorded (known hosts)
exec returns the remote command's code instead (128+N for a signal N, 124 after --timeout,
126 cannot execute, 127 not found) and ${EXEC_OWN_FAILURE} for every failure of its own, usage
and a changed certificate included (as ssh does).
`;

/**
 * The exit code for a run-time failure of server, client or upload: a
 * changed certificate anywhere in the cause chain is 3, anything else 1.
 */
export function failureExitCode(error: unknown): number {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e instanceof TlsVerifyError && e.code === "host_key_changed") return EXIT.hostKeyChanged;
  }
  return EXIT.failure;
}
