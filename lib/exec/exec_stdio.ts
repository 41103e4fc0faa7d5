/**
 * Connecting a {@linkcode RemoteProcess} to local byte streams, the way
 * `sockit exec` connects it to the terminal, and the exit code a shell
 * should see.
 *
 * @module
 */

import type { RemoteProcess } from "./exec.ts";
import type { ExecStatus } from "./exec_protocol.ts";
import { type ByteReader, type ByteWriter, writeAll } from "../frame/frame_io.ts";

/** Where {@linkcode pipeExec} takes input and puts output. */
export interface ExecStdio {
  /** Receives the remote stdout, such as `Deno.stdout`. */
  stdout: ByteWriter;
  /** Receives the remote stderr, such as `Deno.stderr`. */
  stderr: ByteWriter;
  /**
   * Feeds the remote stdin, such as `Deno.stdin`; needs a process started
   * with `stdin: "piped"`. @default {undefined}
   */
  stdin?: ByteReader | undefined;
}

/** Exit code `sockit exec` uses when the remote command's time limit passed. */
export const EXIT_TIMEOUT = 124;

/**
 * Copies the remote stdout and stderr to `io` as they arrive, and `io.stdin`
 * to the remote stdin (its end delivered as EOF), until the command exits.
 *
 * Output is written chunk by chunk as the command produces it, never held
 * back; a local output that blocks slows the remote command down. A local
 * output that fails (a closed pipe) ends the session, and with it the
 * remote command, and rejects with that error.
 *
 * @param proc the running command
 * @param io local streams
 * @returns how the command ended
 *
 * @example Run a command with its output on the console
 * ```ts ignore
 * import { exec, pipeExec } from "@sockit/sockit";
 *
 * await using proc = await exec("127.0.0.1:7070", ["ls", "-l"], { token });
 * const status = await pipeExec(proc, { stdout: Deno.stdout, stderr: Deno.stderr });
 * ```
 */
export async function pipeExec(proc: RemoteProcess, io: ExecStdio): Promise<ExecStatus> {
  const copy = async (stream: ReadableStream<Uint8Array>, to: ByteWriter) => {
    try {
      for await (const chunk of stream) await writeAll(to, chunk);
    } catch (error) {
      proc.close();
      throw error;
    }
  };
  const input = io.stdin;
  const exited = proc.status.then(() => null, () => null);
  if (input !== undefined) {
    (async () => {
      const writer = proc.stdin.getWriter();
      const buf = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          // Stop at once when the command exits: a read of local stdin that
          // is still pending then is abandoned, not waited for.
          const n = await Promise.race([input.read(buf), exited]);
          if (n === null) break;
          // A copy: the buffer is reused while the frame may still be queued.
          await writer.write(buf.slice(0, n));
        }
        await writer.close();
      } catch {
        // The command exited or the session ended: its status tells the rest.
      } finally {
        writer.releaseLock();
      }
    })();
  }
  const [status] = await Promise.all([
    proc.status,
    copy(proc.stdout, io.stdout),
    copy(proc.stderr, io.stderr),
  ]);
  return status;
}

/**
 * The exit code a shell should see for `status`: the remote code, 128 + N
 * after death by signal N, or {@linkcode EXIT_TIMEOUT} when the time limit
 * passed.
 *
 * @param status how the remote command ended
 * @returns the exit code
 *
 * @example A timed-out command
 * ```ts
 * import { exitCodeOf } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(
 *   exitCodeOf({ success: false, code: 143, signal: "SIGTERM", timedOut: true, duration: 5 }),
 *   124,
 * );
 * ```
 */
export function exitCodeOf(status: ExecStatus): number {
  return status.timedOut ? EXIT_TIMEOUT : status.code;
}
