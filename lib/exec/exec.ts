/**
 * The client side of the `exec` service: run a command on a sockit server
 * and get its stdout and stderr as streams, its stdin as a stream, and its
 * exit status.
 *
 * @module
 */

import { type Address, formatAddress, parseAddress } from "../net/address.ts";
import { type ClientSession, connect, type ConnectOptions } from "../client/client.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { type ExecStatus, parseExecExit, STREAM_CHUNK, StreamId } from "./exec_protocol.ts";
import { messageJson } from "../client/_message.ts";
import { encodeControl, MessageType } from "../protocol/protocol.ts";

/** Options for {@linkcode exec}. */
export interface ExecOptions extends Omit<ConnectOptions, "service" | "params" | "token"> {
  /** The server's token; exec always needs one. */
  token: string;
  /** Working directory on the server. @default {the server's} */
  cwd?: string | undefined;
  /** Environment variables to set; the server allows each name or refuses. @default {{}} */
  env?: Record<string, string>;
  /** Milliseconds the command may run; the server ends it after that. @default {the server's limit} */
  timeout?: number | undefined;
  /**
   * `"piped"` to write the command's stdin through
   * {@linkcode RemoteProcess.stdin}; `"null"` to give it an empty stdin.
   * @default {"null"}
   */
  stdin?: "piped" | "null";
}

/** Bytes of output queued for a reader before the server is made to wait. */
const OUTPUT_HIGH_WATER = 256 * 1024;

/** One output stream and the flow control between it and the connection. */
class Outlet {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #done = false;
  #wake: (() => void) | undefined;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#resume(),
      cancel: () => {
        this.#done = true;
        this.#resume();
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: OUTPUT_HIGH_WATER }));
  }

  #resume(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Queues a copy of `bytes`; resolves once the reader wants more. */
  async push(bytes: Uint8Array): Promise<void> {
    if (this.#done) return;
    this.#controller.enqueue(bytes.slice());
    while (!this.#done && (this.#controller.desiredSize ?? 0) <= 0) {
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.close();
  }

  fail(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.error(error);
    this.#resume();
  }
}

/**
 * A command running on a sockit server, started by {@linkcode exec}.
 *
 * Read both `stdout` and `stderr` (or cancel the one you do not need): the
 * server sends output only as fast as it is read, so a full, unread stream
 * holds the other one back.
 *
 * @example Run a command and collect its output
 * ```ts ignore
 * import { exec } from "@sockit/sockit";
 *
 * await using proc = await exec("127.0.0.1:7070", ["uname", "-a"], { token });
 * const [out, status] = await Promise.all([new Response(proc.stdout).text(), proc.status]);
 * proc.stderr.cancel();
 * ```
 */
export class RemoteProcess implements AsyncDisposable {
  /** The command's standard output. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** The command's standard error. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Resolves with how the command ended; rejects when the session fails first. */
  readonly status: Promise<ExecStatus>;
  readonly #session: ClientSession;
  readonly #stdin: WritableStream<Uint8Array> | undefined;
  #credit: number;
  #creditWaiter: (() => void) | undefined;
  #ended: unknown;

  /** Use {@linkcode exec}. */
  constructor(session: ClientSession, stdinWindow: number, pipedStdin: boolean) {
    this.#session = session;
    this.#credit = stdinWindow;
    const out = new Outlet(), err = new Outlet();
    this.stdout = out.stream;
    this.stderr = err.stream;
    this.#stdin = pipedStdin ? this.#stdinStream() : undefined;
    this.status = this.#pump(out, err);
    // The status is also reported through the streams; an unobserved
    // rejection here is not an unhandled error.
    this.status.catch(() => {});
  }

  /**
   * The command's standard input; closing it delivers EOF.
   *
   * @throws {TypeError} when the command was started without `stdin: "piped"`
   */
  get stdin(): WritableStream<Uint8Array> {
    if (!this.#stdin) {
      throw new TypeError('Cannot use stdin: exec was called without stdin: "piped"');
    }
    return this.#stdin;
  }

  #stdinStream(): WritableStream<Uint8Array> {
    const head = new Uint8Array([MessageType.Stream, StreamId.Stdin]);
    const end = async () => {
      if (this.#ended !== undefined) return;
      this.#session.writer.frame(head);
      await this.#session.writer.flush();
    };
    return new WritableStream<Uint8Array>({
      write: async (chunk) => {
        for (let at = 0; at < chunk.length;) {
          while (this.#credit === 0) {
            if (this.#ended !== undefined) throw this.#ended;
            await new Promise<void>((resolve) => this.#creditWaiter = resolve);
          }
          if (this.#ended !== undefined) throw this.#ended;
          const n = Math.min(this.#credit, STREAM_CHUNK, chunk.length - at);
          this.#session.writer.frame(head, chunk.subarray(at, at + n));
          this.#credit -= n;
          at += n;
          await this.#session.writer.flush();
        }
      },
      close: end,
      abort: end,
    });
  }

  #wakeWriter(): void {
    const wake = this.#creditWaiter;
    this.#creditWaiter = undefined;
    wake?.();
  }

  async #pump(out: Outlet, err: Outlet): Promise<ExecStatus> {
    try {
      for (;;) {
        const message = await this.#session.read();
        if (message === null) {
          throw new ProtocolError(
            "bad_message",
            "Cannot finish exec: the server closed the connection before the exit status",
          );
        }
        const { type, body } = message;
        if (type === MessageType.Stream) {
          const outlet = body[0] === StreamId.Stdout
            ? out
            : body[0] === StreamId.Stderr
            ? err
            : undefined;
          if (!outlet) {
            throw new ProtocolError("bad_message", `Cannot read exec output: stream id ${body[0]}`);
          }
          if (body.length === 1) outlet.end();
          else await outlet.push(body.subarray(1));
        } else if (type === MessageType.Credit && body.length === 4) {
          this.#credit += new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
          this.#wakeWriter();
        } else if (type === MessageType.Event) {
          const event = messageJson(message);
          if (event.kind !== "exit") continue;
          const status = parseExecExit(event);
          out.end();
          err.end();
          this.#finish(new TypeError("Cannot write stdin: the command has exited"));
          return status;
        }
      }
    } catch (error) {
      out.fail(error);
      err.fail(error);
      this.#finish(error);
      throw error;
    }
  }

  #finish(reason: unknown): void {
    this.#ended = reason;
    this.#wakeWriter();
    this.#session.close();
  }

  /**
   * Sends `signal` to the command's whole process group on the server.
   *
   * @param signal one of `SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT`, `SIGKILL`, `SIGUSR1`, `SIGUSR2`
   * @returns a promise that resolves once the request is sent
   */
  async kill(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    if (this.#ended !== undefined) return;
    this.#session.writer.frame(encodeControl(MessageType.Signal, { signal }));
    await this.#session.writer.flush();
  }

  /** Closes the connection; the server then ends the command if it still runs. */
  close(): void {
    if (this.#ended === undefined) this.#finish(new TypeError("Cannot write stdin: closed"));
  }

  /** Closes the connection; see {@linkcode RemoteProcess.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.status.catch(() => {});
  }
}

/**
 * Runs `argv` on the sockit server at `address` and returns once the
 * command has started.
 *
 * `argv` reaches the program exactly as given: no shell parses it, so
 * quotes, spaces and `$` are just bytes. To use a shell, run one:
 * `["sh", "-c", "…"]` (the server's allowlist governs it).
 *
 * @param address the server, such as `"127.0.0.1:7070"`
 * @param argv the program and its arguments
 * @param options the token, and the command's directory, environment, time limit and stdin
 * @returns the running command
 * @throws {ConnectError} when connecting fails
 * @throws {RemoteError} when the server refuses: `not_allowed`, `not_found`, `not_executable`, `busy`, `auth_failed`, …
 *
 * @example Run printf on a local server
 * ```ts
 * import { exec, execService, serve } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const token = "a token of sixteen or more characters";
 * await using server = await serve({
 *   listen: ["127.0.0.1:0"],
 *   token,
 *   services: [execService({ allow: ["printf"] })],
 * });
 * await using proc = await exec(server.addrs[0]!, ["printf", "<%s>", "a b"], { token });
 * const [text, status] = await Promise.all([new Response(proc.stdout).text(), proc.status]);
 * await proc.stderr.cancel();
 * deepEqual(text, "<a b>");
 * deepEqual(status.code, 0);
 * ```
 */
export async function exec(
  address: string | Address,
  argv: readonly string[],
  options: ExecOptions,
): Promise<RemoteProcess> {
  const parsed = typeof address === "string" ? parseAddress(address) : address;
  const session = await connect(parsed, { ...options, service: "exec" });
  try {
    const request: Record<string, unknown> = {
      argv: [...argv],
      stdin: options.stdin === "piped",
    };
    if (options.cwd !== undefined) request.cwd = options.cwd;
    if (options.env !== undefined) request.env = options.env;
    if (options.timeout !== undefined) request.timeout = options.timeout;
    session.writer.frame(encodeControl(MessageType.Exec, request));
    await session.writer.flush();
    for (;;) {
      const message = await session.read();
      if (message === null) {
        throw new ProtocolError(
          "bad_message",
          `Cannot run command on "${formatAddress(parsed)}": the server closed the connection`,
        );
      }
      if (message.type !== MessageType.Event) continue;
      const event = messageJson(message);
      if (event.kind !== "started") continue;
      const window = event.stdinWindow;
      if (!Number.isSafeInteger(window) || (window as number) < 0) {
        throw new ProtocolError("bad_message", "Cannot read exec started event: bad stdinWindow");
      }
      return new RemoteProcess(session, window as number, options.stdin === "piped");
    }
  } catch (error) {
    session.close();
    throw error;
  }
}
