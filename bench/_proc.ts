/**
 * Child processes for the benchmarks: spawned with piped stdio, read line by
 * line, and stopped on every exit path (including SIGINT and SIGTERM of the
 * bench itself).
 *
 * The helper processes (echo servers, load generator) also exit by
 * themselves when their stdin closes, so they do not outlive a bench that was
 * killed outright.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { withTimeout } from "./_time.ts";

/** The repository root, where `deno.json` lives. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/**
 * Resolves a path relative to the repository root.
 *
 * @param path a path such as `bench/echo_load.ts`
 * @returns the absolute path
 */
export function fromRoot(path: string): string {
  return fileURLToPath(new URL(`../${path}`, import.meta.url));
}

async function* splitLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    rest += text;
    for (let i = rest.indexOf("\n"); i >= 0; i = rest.indexOf("\n")) {
      yield rest.slice(0, i);
      rest = rest.slice(i + 1);
    }
  }
  if (rest !== "") yield rest;
}

const live = new Set<Proc>();

/** Options for {@linkcode Proc.spawn}. */
export interface SpawnOptions {
  /** A short name for messages, such as `"sockit server"`. */
  name: string;
  /** The program. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Variables to add to the inherited environment. @default {{}} */
  env?: Record<string, string>;
}

/**
 * A child process with piped stdin and stdout (stderr is inherited), read
 * one line at a time. Dispose of it to stop it.
 */
export class Proc implements AsyncDisposable {
  /** A short name for messages. */
  readonly name: string;
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #exited = false;
  #draining: Promise<void> | undefined;

  /**
   * Wraps a spawned child; use {@linkcode Proc.spawn}.
   *
   * @param name a short name for messages
   * @param child the child, spawned with piped stdin and stdout
   */
  constructor(name: string, child: Deno.ChildProcess) {
    this.name = name;
    this.#child = child;
    this.#lines = splitLines(child.stdout)[Symbol.asyncIterator]();
    this.#stdin = child.stdin.getWriter();
    child.status.then(() => this.#exited = true);
  }

  /**
   * Starts a process in the repository root.
   *
   * @param options what to run
   * @returns the running process
   * @throws {Deno.errors.NotFound} when the program does not exist
   */
  static spawn(options: SpawnOptions): Proc {
    const child = new Deno.Command(options.command, {
      args: options.args,
      cwd: ROOT,
      ...(options.env ? { env: options.env } : {}),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const proc = new Proc(options.name, child);
    live.add(proc);
    return proc;
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Reads the next line of stdout.
   *
   * @param ms how long to wait
   * @returns the line
   * @throws {Error} when stdout ends or nothing arrives in time
   */
  async nextLine(ms: number): Promise<string> {
    const next = await withTimeout(this.#lines.next(), ms, `read from ${this.name}`);
    if (next.done) throw new Error(`Cannot read from ${this.name}: it exited`);
    return next.value;
  }

  /**
   * Reads the next line of stdout as a JSON object of the given `type`.
   *
   * @param type the expected `type` field
   * @param ms how long to wait
   * @returns the object
   */
  async nextEvent(type: string, ms: number): Promise<Record<string, unknown>> {
    const line = await this.nextLine(ms);
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch (cause) {
      throw new Error(`Cannot parse output of ${this.name}: ${JSON.stringify(line)}`, { cause });
    }
    if (
      typeof event !== "object" || event === null || (event as { type?: unknown }).type !== type
    ) {
      throw new Error(`Cannot read ${type} event from ${this.name}: got ${line}`);
    }
    return event as Record<string, unknown>;
  }

  /**
   * Reads stdout to its end.
   *
   * @param ms how long to wait for the end
   * @returns the remaining text
   */
  async readToEnd(ms: number): Promise<string> {
    const lines: string[] = [];
    await withTimeout(this.drain((line) => lines.push(line)), ms, `read ${this.name} output`);
    return lines.join("\n");
  }

  /**
   * Reads and discards the rest of stdout in the background, calling
   * `onLine` for each line, so the child never blocks on a full pipe.
   *
   * @param onLine called with every line
   * @returns a promise that resolves at the end of stdout
   */
  drain(onLine: (line: string) => void = () => {}): Promise<void> {
    this.#draining ??= (async () => {
      for (let next = await this.#lines.next(); !next.done; next = await this.#lines.next()) {
        onLine(next.value);
      }
    })();
    return this.#draining;
  }

  /** Closes the child's stdin: the helper processes take it as "stop". */
  async closeStdin(): Promise<void> {
    try {
      await this.#stdin.close();
    } catch (error) {
      // The child may have exited and closed the pipe first.
      if (!(error instanceof Deno.errors.BrokenPipe || error instanceof TypeError)) throw error;
    }
  }

  /**
   * Waits for the process to exit by itself.
   *
   * @param ms how long to wait
   * @returns its exit status
   */
  wait(ms: number): Promise<Deno.CommandStatus> {
    return withTimeout(this.#child.status, ms, `wait for ${this.name} to exit`);
  }

  /**
   * Stops the process: SIGTERM, then SIGKILL after `graceMs`.
   *
   * @param graceMs how long SIGTERM has to work
   */
  async stop(graceMs = 3000): Promise<void> {
    live.delete(this);
    await this.closeStdin();
    if (!this.#exited) {
      this.#kill("SIGTERM");
      try {
        await this.wait(graceMs);
      } catch {
        this.#kill("SIGKILL");
      }
    }
    await this.#child.status;
    await this.drain();
  }

  #kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch (error) {
      // Exited between the check and the kill.
      if (!(error instanceof TypeError)) throw error;
    }
  }

  /** Stops the process; see {@linkcode Proc.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** Kills every process still running, at once; for signal handlers. */
  static killAll(): void {
    for (const proc of live) {
      if (!proc.#exited) proc.#kill("SIGKILL");
    }
    live.clear();
  }
}

function exitOnSignal(code: number): void {
  Proc.killAll();
  Deno.exit(code);
}

/**
 * Runs `main` with SIGINT and SIGTERM handlers that kill every child
 * process before the bench exits.
 *
 * @param main the work
 * @returns what `main` returns
 */
export async function withCleanup<T>(main: () => Promise<T>): Promise<T> {
  // Exit codes as a shell reports a death by the signal: 128 + its number.
  const handlers = new Map<Deno.Signal, () => void>([
    ["SIGINT", () => exitOnSignal(130)],
    ["SIGTERM", () => exitOnSignal(143)],
  ]);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  try {
    return await main();
  } finally {
    Proc.killAll();
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}

/**
 * Reads `/proc/PID/NAME`. Deno lets only `--allow-all` read `/proc/PID`
 * paths directly, so `cat` reads it (within `--allow-run`).
 */
async function readProc(pid: number, name: string): Promise<string> {
  const { success, stdout } = await new Deno.Command("cat", {
    args: [`/proc/${pid}/${name}`],
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`Cannot read /proc/${pid}/${name}`);
  return new TextDecoder().decode(stdout);
}

/**
 * Reads a process's resident set size (VmRSS in `/proc/PID/status`).
 *
 * @param pid the process id
 * @returns the RSS in KiB
 */
export async function rssKiB(pid: number): Promise<number> {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(await readProc(pid, "status"));
  if (!match?.[1]) throw new Error(`Cannot read VmRSS of process ${pid}`);
  return Number(match[1]);
}

/** Linux reports CPU times in `/proc` in units of USER_HZ, 100 per second. */
const USER_HZ = 100;

/**
 * Reads the CPU time a process has used so far, all threads, user and system
 * (`utime` + `stime` in `/proc/PID/stat`).
 *
 * @param pid the process id
 * @returns the CPU time in seconds, in steps of 10 ms
 */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readProc(pid, "stat");
  // Fields after the parenthesised command name start with field 3, "state".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime + stime)) throw new Error(`Cannot read CPU time of process ${pid}`);
  return (utime + stime) / USER_HZ;
}

/**
 * The real Python interpreter (`sys.executable`), not a version manager's
 * shim (a shell script that costs tens of milliseconds per start), or
 * `undefined` when there is no `python3`.
 *
 * @returns the interpreter's path
 */
export async function findPython(): Promise<string | undefined> {
  try {
    const { success, stdout } = await new Deno.Command("python3", {
      args: ["-c", "import sys; print(sys.executable)"],
      stdin: "null",
      stderr: "null",
      signal: AbortSignal.timeout(20_000),
    }).output();
    const path = new TextDecoder().decode(stdout).trim();
    return success && path !== "" ? path : undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Runs one benchmark and prints its report under a heading with the date,
 * the Deno version, the CPUs and the time it took; with `out`, also writes
 * every sample there as JSON.
 *
 * @param title what was measured, as in "sockit TITLE benchmark"
 * @param run the benchmark
 * @param out a file for the samples, or undefined
 */
export async function printBenchReport(
  title: string,
  run: () => Promise<{ report: string; samples: Record<string, number[]> }>,
  out: string | undefined,
): Promise<void> {
  const started = performance.now();
  const { report, samples } = await run();
  const seconds = (performance.now() - started) / 1000;
  console.log(
    [
      `## sockit ${title} benchmark, ${new Date().toISOString().slice(0, 10)}`,
      `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, loopback; ` +
      `${seconds.toFixed(0)} s in all.`,
      report,
    ].join("\n\n"),
  );
  if (out !== undefined) await Deno.writeTextFile(out, JSON.stringify(samples, null, 2) + "\n");
}
