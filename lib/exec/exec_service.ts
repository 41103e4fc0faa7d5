/**
 * The `exec` service: runs a client's command with argv exactly as sent,
 * streams its stdin, stdout and stderr, and reports how it ended.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";
import {
  EXEC_SIGNALS,
  type ExecRequest,
  parseExecRequest,
  STDIN_WINDOW,
  STREAM_CHUNK,
  StreamId,
} from "./exec_protocol.ts";
import { ProcessGroup } from "./process_group.ts";
import { decodeControl, MessageType } from "../protocol/protocol.ts";
import type { Service } from "../protocol/service.ts";
import { isConnectionError, type Session, typeByte } from "../protocol/session.ts";

/** Options for {@linkcode execService}. */
export interface ExecServiceOptions {
  /**
   * Programs clients may run: each entry is compared with `argv[0]` exactly,
   * so `uname` allows `uname` but not `/bin/uname` or `./uname`. Absent means
   * any program. @default {undefined}
   */
  allow?: readonly string[] | undefined;
  /** Environment variable names clients may set with `env`. @default {[]} */
  envAllow?: readonly string[];
  /** Commands running at once; more sessions are refused with `busy`. @default {64} */
  maxConcurrent?: number;
  /** Longest run in milliseconds; a client may ask for less. @default {3600000} */
  timeout?: number;
  /** Milliseconds between SIGTERM and SIGKILL when a command is ended. @default {5000} */
  killGrace?: number;
  /**
   * The environment every command starts from. @default {PATH, LANG and HOME
   * of the server where `--allow-env` grants them, else a standard PATH}
   */
  env?: Readonly<Record<string, string>>;
}

const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

/**
 * The minimal environment commands start from: `PATH`, `LANG` and `HOME` of
 * the server, where readable. Nothing else of the server's environment (such
 * as `SOCKIT_TOKEN`) reaches a command.
 *
 * @returns the variables
 *
 * @example Always includes PATH
 * ```ts
 * import { defaultExecEnv } from "@sockit/sockit/exec";
 * import { ok } from "node:assert/strict";
 *
 * ok(defaultExecEnv().PATH);
 * ```
 */
export function defaultExecEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["PATH", "LANG", "HOME"]) {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") continue;
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= DEFAULT_PATH;
  return env;
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`Cannot use ${name} "${value}": expected a positive integer`);
  }
  return value;
}

/**
 * Creates the `exec` service.
 *
 * The service runs only for sessions that proved the server's token, and
 * {@linkcode serve} refuses to offer it without one. Each command runs with
 * argv exactly as sent (no shell), the minimal environment plus allowed
 * variables, no inherited descriptors beyond its three pipes, and in a
 * process group of its own that is terminated as a whole (SIGTERM, then
 * SIGKILL after `killGrace`) when the command exits, times out, the client
 * disconnects or the server shuts down.
 *
 * Output is read from the command's pipes only as fast as the client takes
 * it, so a command that writes faster than the client reads is slowed by
 * its pipe; stdin follows a credit window of {@linkcode STDIN_WINDOW} bytes.
 *
 * @param options policy and limits
 * @returns the service
 * @throws {RangeError} when a limit is out of range
 *
 * @example Offer exec of `echo` only
 * ```ts
 * import { execService, serve } from "@sockit/sockit";
 *
 * await using server = await serve({
 *   listen: ["127.0.0.1:0"],
 *   token: "a token of sixteen or more characters",
 *   services: [execService({ allow: ["echo"] })],
 * });
 * ```
 */
export function execService(options: ExecServiceOptions = {}): Service {
  const allow = options.allow ? new Set(options.allow) : undefined;
  const envAllow = new Set(options.envAllow ?? []);
  const maxConcurrent = positive("maxConcurrent", options.maxConcurrent ?? 64);
  const limit = positive("timeout", options.timeout ?? 3_600_000);
  const killGrace = positive("killGrace", options.killGrace ?? 5_000);
  const baseEnv = options.env ?? defaultExecEnv();
  let running = 0;

  function checkSlot(): void {
    if (running >= maxConcurrent) {
      throw new ProtocolError(
        "busy",
        `Cannot run command: ${running} of ${maxConcurrent} exec slots in use`,
        { maxConcurrent },
      );
    }
  }

  function checkPolicy(request: ExecRequest): void {
    const program = request.argv[0]!;
    if (allow && !allow.has(program)) {
      throw new ProtocolError(
        "not_allowed",
        `Cannot run "${program}": not on the server's exec allowlist`,
        { program },
      );
    }
    for (const name of Object.keys(request.env)) {
      if (!envAllow.has(name)) {
        throw new ProtocolError(
          "not_allowed",
          `Cannot set environment variable "${name}": not allowed by the server`,
          { variable: name },
        );
      }
    }
  }

  return {
    name: "exec",
    requiresToken: true,
    async handle(session, welcome) {
      if (!session.authenticated) {
        throw new ProtocolError("auth_required", "Cannot run commands: exec requires a token");
      }
      checkSlot();
      await welcome();
      const payload = await session.read();
      if (payload === null) return;
      if (payload[0] !== MessageType.Exec) {
        throw new ProtocolError(
          "bad_message",
          `Cannot run command: expected EXEC, got message type ${payload[0] ?? "(empty frame)"}`,
          { type: payload[0] ?? -1 },
        );
      }
      const request = parseExecRequest(decodeControl(payload));
      checkPolicy(request);
      checkSlot();
      running++;
      let done = false;
      try {
        await run(session, request, {
          env: { ...baseEnv, ...request.env },
          timeout: request.timeout > 0 ? Math.min(request.timeout, limit) : limit,
          killGrace,
          onExit: () => {
            if (!done) running--;
            done = true;
          },
        });
      } finally {
        if (!done) running--;
        done = true;
      }
    },
  };
}

interface RunOptions {
  env: Record<string, string>;
  timeout: number;
  killGrace: number;
  /** Called once the command and its group are gone. */
  onExit: () => void;
}

async function checkCwd(cwd: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(cwd);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ProtocolError("not_found", `Cannot run command: no directory "${cwd}"`, { cwd });
    }
    // Without read permission the spawn itself reports the problem.
    return;
  }
  if (!info.isDirectory) {
    throw new ProtocolError("not_found", `Cannot run command: "${cwd}" is not a directory`, {
      cwd,
    });
  }
}

function spawn(request: ExecRequest, env: Record<string, string>): Deno.ChildProcess {
  const [program, ...args] = request.argv as [string, ...string[]];
  try {
    return new Deno.Command(program, {
      args,
      ...(request.cwd === undefined ? {} : { cwd: request.cwd }),
      clearEnv: true,
      env,
      stdin: request.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      // A process group of its own, signalled as a whole.
      detached: true,
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      // Without read permission on the server, a missing working directory
      // was not caught by checkCwd and shows up here too.
      if (request.cwd !== undefined) {
        throw new ProtocolError(
          "not_found",
          `Cannot run "${program}" in "${request.cwd}": no such program or directory`,
          { program, cwd: request.cwd },
        );
      }
      throw new ProtocolError("not_found", `Cannot run "${program}": no such program`, {
        program,
      });
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new ProtocolError(
        "not_allowed",
        `Cannot run "${program}": the server's --allow-run does not include it`,
        { program },
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new ProtocolError("not_executable", `Cannot run "${program}": permission denied`, {
        program,
      });
    }
    throw new ProtocolError(
      "exec_failed",
      `Cannot run "${program}": ${error instanceof Error ? error.message : error}`,
      { program },
    );
  }
}

/** Checks the working directory, starts the command and serves it to the end. */
async function run(session: Session, request: ExecRequest, options: RunOptions): Promise<void> {
  if (request.cwd !== undefined) await checkCwd(request.cwd);
  const child = spawn(request, options.env);
  await new ExecRun(session, request, child, options).serve();
}

/**
 * One running command and the session it answers to: owns the process and
 * its group, the time limit, the output pumps, the stdin window and queue,
 * and how the run ended.
 */
class ExecRun {
  readonly #session: Session;
  readonly #child: Deno.ChildProcess;
  readonly #group: ProcessGroup;
  readonly #onExit: () => void;
  readonly #started = performance.now();
  readonly #timer: ReturnType<typeof setTimeout>;
  /** The command's own exit; the rest of its group is ended with it. */
  readonly #exited: Promise<Deno.CommandStatus>;
  #timedOut = false;
  /** Set when the connection can no longer carry output. */
  #broken = false;
  /** Stdin bytes the client may still send: the window, refilled by CREDIT. */
  #window = STDIN_WINDOW;
  /** Whether the client may still send stdin (it has not sent its end). */
  #stdinOpen: boolean;
  #stdinWriter: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** Stdin writes and credit grants, in the order the bytes came. */
  #stdinChain = Promise.resolve();
  /** The CREDIT message, reused for every grant. */
  readonly #credit = new Uint8Array(5);
  readonly #creditView = new DataView(this.#credit.buffer);

  constructor(
    session: Session,
    request: ExecRequest,
    child: Deno.ChildProcess,
    options: RunOptions,
  ) {
    this.#session = session;
    this.#child = child;
    this.#onExit = options.onExit;
    const group = this.#group = new ProcessGroup(child.pid, options.killGrace);
    // On server shutdown the command gets SIGTERM at once and SIGKILL after
    // the kill grace, like `docker stop`; its exit is still reported.
    session.onStop(() => group.terminate());
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      group.terminate();
    }, options.timeout);
    this.#stdinOpen = request.stdin;
    this.#stdinWriter = request.stdin ? child.stdin.getWriter() : undefined;
    this.#credit[0] = MessageType.Credit;
    this.#exited = child.status.then((status) => {
      clearTimeout(this.#timer);
      group.terminate();
      return status;
    });
  }

  /** Announces the start, relays output and client messages, and reports the exit. */
  async serve(): Promise<void> {
    await this.#announce();
    const output = Promise.all([
      this.#pump(this.#child.stdout, StreamId.Stdout),
      this.#pump(this.#child.stderr, StreamId.Stderr),
    ]);
    // Read the client's messages until it closes, in parallel with the command.
    const control = this.#control();
    let failure: unknown;
    control.catch((error) => {
      failure = error;
    });
    try {
      const status = await this.#exited;
      await output;
      this.#endStdin();
      await this.#stdinChain;
      if (failure === undefined && !this.#broken) await this.#reportExit(status);
    } finally {
      clearTimeout(this.#timer);
      // Members that ignore SIGTERM and closed their output may still run:
      // they get SIGKILL when the grace ends. The client has its answer
      // already; the exec slot is held until then.
      await this.#group.gone();
      this.#onExit();
      this.#session.onStop(undefined);
    }
    // The client closes once it has the exit event; a client that went away
    // or broke the protocol ends the session here.
    await control;
  }

  /** Sends the `started` event; if that fails, ends the command and rethrows. */
  async #announce(): Promise<void> {
    try {
      await this.#session.sendControl(MessageType.Event, {
        kind: "started",
        stdinWindow: STDIN_WINDOW,
      });
    } catch (error) {
      this.#group.terminate();
      await this.#exited;
      await this.#group.gone();
      this.#onExit();
      await Promise.all([
        this.#child.stdout.cancel(),
        this.#child.stderr.cancel(),
        this.#stdinWriter?.abort(),
      ]);
      throw error;
    }
  }

  #reportExit(status: Deno.CommandStatus): Promise<void> {
    return this.#session.sendControl(MessageType.Event, {
      kind: "exit",
      code: status.code,
      signal: status.signal,
      timedOut: this.#timedOut,
      duration: Math.round(performance.now() - this.#started),
    });
  }

  /** Relays one output stream as STREAM frames, then its end. */
  async #pump(stream: ReadableStream<Uint8Array>, id: StreamId): Promise<void> {
    const session = this.#session;
    const head = new Uint8Array([MessageType.Stream, id]);
    try {
      for await (const chunk of stream) {
        if (this.#broken) continue; // keep draining so the command never blocks on a dead client
        for (let at = 0; at < chunk.length; at += STREAM_CHUNK) {
          session.writer.frame(head, chunk.subarray(at, at + STREAM_CHUNK));
        }
        // Read the next chunk only once this one is on its way: the pipe,
        // not server memory, absorbs a command that outpaces its client.
        await session.flush();
      }
      if (!this.#broken) {
        session.writer.frame(head);
        await session.flush();
      }
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      this.#broken = true;
      this.#group.terminate();
    }
  }

  /** Reads the client's messages until it closes; the command ends with it. */
  async #control(): Promise<void> {
    try {
      for (;;) {
        const payload = await this.#session.read();
        if (payload === null) return;
        this.#onMessage(payload);
      }
    } catch (error) {
      // Tell the client at once, not after the command is gone.
      const told = error instanceof ProtocolError ? error : undefined;
      if (told) this.#session.abort(told);
      throw error;
    } finally {
      // However the client went, the command goes too.
      this.#window = 0;
      this.#group.terminate();
    }
  }

  /** Acts on one client message: stdin, a signal or a ping. */
  #onMessage(payload: Uint8Array): void {
    const type = payload[0];
    if (type === MessageType.Stream && payload[1] === StreamId.Stdin && this.#stdinOpen) {
      this.#onStdin(payload.subarray(2));
    } else if (type === MessageType.Signal) {
      this.#onSignal(decodeControl(payload).signal);
    } else if (type === MessageType.Ping) {
      // Not awaited: while output to a slow client is blocked, the control
      // loop must go on reading, or the client would look silent.
      this.#session.writer.frame(typeByte(MessageType.Pong), payload.subarray(1));
      this.#session.flush().catch(() => {});
    } else {
      throw new ProtocolError(
        "bad_message",
        `Cannot serve exec: unexpected message type ${type ?? "(empty frame)"}`,
        { type: type ?? -1 },
      );
    }
  }

  #onStdin(data: Uint8Array): void {
    if (data.length === 0) {
      this.#stdinOpen = false;
      this.#endStdin();
      return;
    }
    this.#window -= data.length;
    if (this.#window < 0) {
      throw new ProtocolError(
        "bad_message",
        `Cannot accept stdin: ${data.length} bytes sent beyond the granted window`,
        { window: this.#window + data.length },
      );
    }
    this.#feed(data);
  }

  #onSignal(name: unknown): void {
    if (typeof name !== "string" || !EXEC_SIGNALS.includes(name as Deno.Signal)) {
      throw new ProtocolError(
        "bad_message",
        `Cannot deliver signal: expected one of ${EXEC_SIGNALS.join(", ")}`,
        { field: "signal" },
      );
    }
    if (name === "SIGKILL") this.#group.kill();
    else this.#group.signal(name as Deno.Signal);
  }

  /** Queues stdin bytes for the command, then grants their credit back. */
  #feed(bytes: Uint8Array): void {
    const copy = bytes.slice();
    this.#stdinChain = this.#stdinChain.then(async () => {
      if (this.#stdinWriter) {
        try {
          await this.#stdinWriter.write(copy);
        } catch {
          // The command closed its stdin (EPIPE): discard the rest, as a
          // pipe would, but keep granting credit so the client never stalls.
          this.#stdinWriter = undefined;
        }
      }
      await this.#grant(copy.length).catch(() => {});
    });
  }

  #grant(n: number): Promise<void> {
    this.#window += n;
    this.#creditView.setUint32(1, n);
    this.#session.writer.frame(this.#credit);
    return this.#session.flush();
  }

  /** Closes the command's stdin once the bytes queued before are written. */
  #endStdin(): void {
    this.#stdinChain = this.#stdinChain.then(async () => {
      const writer = this.#stdinWriter;
      this.#stdinWriter = undefined;
      await writer?.close().catch(() => {});
    });
  }
}
