/**
 * Shared fixtures for the command-line tests: the real `sockit` CLI run as
 * a child process through `deno run`, with exactly the permission flags a
 * test gives it, and every wait on it bounded.
 */

import { fileURLToPath } from "node:url";

/** The path of `cli.ts`, as `deno run` takes it. */
export const CLI: string = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** The permission flags of a loopback client or server. */
export const NET: readonly string[] = ["--allow-net=127.0.0.1"];

/** How a CLI child process ended and everything it printed. */
export interface Result {
  /** The exit code (128 + N after death by signal N). */
  code: number;
  /** Its stdout, decoded as UTF-8. */
  stdout: string;
  /** Its stderr, decoded as UTF-8. */
  stderr: string;
}

/**
 * What the tests start as `sockit`: a script run with `deno run` (`cli.ts`
 * by default, or a bundle), or a compiled executable.
 */
export type CliEntry =
  | {
    /** The script; `deno run FLAGS PERMISSIONS script ARGS` starts it. */
    script: string;
    /**
     * Flags before the permission flags, such as `["--no-config",
     * "--unstable-net"]` for a bundle run outside this repository.
     * @default {[]}
     */
    flags?: readonly string[];
  }
  | {
    /**
     * A compiled binary, started as `executable ARGS`. Its permissions are
     * baked in, so the permission flags a test gives are not passed.
     */
    executable: string;
  };

/** Options for {@linkcode spawnCli}, {@linkcode sockit} and {@linkcode startCli}. */
export interface CliOptions {
  /** What to start. @default {{ script: CLI }} */
  entry?: CliEntry;
  /** Variables to set for the child, on top of its base environment. @default {{}} */
  env?: Record<string, string>;
  /**
   * Start the child from an empty environment plus `PATH`, `DENO_DIR` (so
   * it shares this process's module cache whatever its `HOME`) and
   * `NO_COLOR`, instead of inheriting this process's environment. Use it
   * when a variable of the test runner's (`SOCKIT_TOKEN`, `XDG_CONFIG_HOME`)
   * would change what is tested. @default {false}
   */
  clearEnv?: boolean;
  /**
   * Milliseconds after which the child is killed with SIGKILL, so a hung
   * child fails the test instead of hanging it. @default {undefined} (none)
   */
  timeout?: number;
  /** The child's working directory. @default {this process's} */
  cwd?: string;
}

/** Options for {@linkcode spawnCli}. */
export interface SpawnCliOptions extends CliOptions {
  /** The child's stdin. @default {"null"} */
  stdin?: "piped" | "null";
  /**
   * A lower open-file limit, soft and hard, set by `sh`'s `ulimit -n`
   * before `exec`, so that Deno cannot raise it back. @default {undefined}
   */
  nofile?: number;
}

/** A CLI child process started by {@linkcode spawnCli}. */
export interface CliProcess {
  /** The process; its stdout and stderr are piped. */
  child: Deno.ChildProcess;
  /** Whether the `timeout` of {@linkcode CliOptions} passed and the child was killed. */
  readonly timedOut: boolean;
}

let denoDir: Promise<string> | undefined;

/** The module cache directory of this Deno, as `deno info` reports it. */
function cacheDir(): Promise<string> {
  return denoDir ??= (async () => {
    const fromEnv = Deno.env.get("DENO_DIR");
    if (fromEnv) return fromEnv;
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      env: { NO_COLOR: "1" },
      stderr: "null",
    }).output();
    return JSON.parse(new TextDecoder().decode(stdout)).denoDir;
  })();
}

/**
 * Sends `signal` to `child` unless it has already exited.
 *
 * @param child the process
 * @param signal the signal
 */
export function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error; // already exited
  }
}

/**
 * Starts `deno run PERMISSIONS cli.ts ARGS` (or the `entry` of the options)
 * with stdout and stderr piped.
 *
 * @param permissions the exact permission flags, such as `["--allow-net=127.0.0.1"]`
 * @param args the CLI arguments
 * @param options environment, stdin and time limit
 * @returns the running process
 */
export async function spawnCli(
  permissions: readonly string[],
  args: readonly string[],
  options: SpawnCliOptions = {},
): Promise<CliProcess> {
  const entry = options.entry ?? { script: CLI };
  const base: Record<string, string> = {};
  if (options.clearEnv) {
    base.PATH = Deno.env.get("PATH") ?? "/usr/bin:/bin";
    // A compiled binary has no module cache to share.
    if ("script" in entry) base.DENO_DIR = await cacheDir();
  }
  let [command, commandArgs] = "script" in entry
    ? [Deno.execPath(), ["run", ...entry.flags ?? [], ...permissions, entry.script, ...args]]
    : [entry.executable, [...args]];
  if (options.nofile !== undefined) {
    commandArgs = ["-c", `ulimit -n ${options.nofile} && exec "$0" "$@"`, command, ...commandArgs];
    command = "sh";
  }
  const child = new Deno.Command(command, {
    args: commandArgs,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: options.clearEnv ?? false,
    env: { ...base, NO_COLOR: "1", ...options.env },
  }).spawn();
  let timedOut = false;
  if (options.timeout !== undefined) {
    const timer = setTimeout(() => {
      timedOut = true;
      kill(child, "SIGKILL");
    }, options.timeout);
    child.status.finally(() => clearTimeout(timer));
  }
  return {
    child,
    get timedOut() {
      return timedOut;
    },
  };
}

/** Options for {@linkcode sockit}. */
export interface SockitOptions extends CliOptions {
  /** Bytes to write to the child's stdin before closing it. @default {""} */
  stdin?: string | Uint8Array;
}

/**
 * Runs the real CLI with exactly the given permission flags, feeds it
 * `stdin` and waits for it to exit (30 s at most by default).
 *
 * @param permissions the exact permission flags
 * @param args the CLI arguments
 * @param options stdin, environment and time limit
 * @returns the exit code, stdout and stderr; a child killed for taking too
 *   long has a note at the end of its stderr
 */
export async function sockit(
  permissions: readonly string[],
  args: readonly string[],
  options: SockitOptions = {},
): Promise<Result> {
  const { stdin, ...rest } = options;
  const proc = await spawnCli(permissions, args, { timeout: 30_000, ...rest, stdin: "piped" });
  const writer = proc.child.stdin.getWriter();
  try {
    if (stdin) {
      await writer.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin);
    }
    await writer.close();
  } catch (error) {
    // The child may stop reading stdin before the end (that can be the test).
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
  const { code, stdout, stderr } = await proc.child.output();
  const note = proc.timedOut ? `\n(test: killed after ${rest.timeout ?? 30_000} ms)\n` : "";
  return {
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr) + note,
  };
}

/** A `sockit server --json` child process with its listening address. */
export interface ServerProcess extends AsyncDisposable {
  /** The address from the server's `listening` event, such as `127.0.0.1:40123`. */
  address: string;
  /** The server process. */
  child: Deno.ChildProcess;
  /** What the server has printed on stderr so far. */
  readonly stderrSoFar: string;
  /**
   * Sends SIGTERM (SIGKILL 10 s later if it is still running) and returns
   * the exit code and everything printed. Later calls return the same.
   */
  stop(): Promise<Result>;
}

/** Options for {@linkcode startCli}. */
export interface StartCliOptions extends Omit<CliOptions, "timeout"> {
  /** Milliseconds to wait for the `listening` event. @default {10000} */
  startTimeout?: number;
}

/**
 * Starts `sockit server --json ARGS` and waits (bounded) until it prints
 * its `listening` event.
 *
 * @param permissions the exact permission flags
 * @param args the server arguments after `server --json`
 * @param options environment and start-up limit
 * @returns the running server; dispose of it to stop it
 * @throws {Error} when the server exits or stays silent instead of listening
 */
export async function startCli(
  permissions: readonly string[],
  args: readonly string[],
  options: StartCliOptions = {},
): Promise<ServerProcess> {
  const { startTimeout = 10_000, ...rest } = options;
  const { child } = await spawnCli(permissions, ["server", "--json", ...args], rest);
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stderrSoFar = "";
  const stderr = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrSoFar += text;
    }
    return stderrSoFar;
  })();
  const slow = setTimeout(() => kill(child, "SIGKILL"), startTimeout);
  let seen = "";
  let address: string | undefined;
  try {
    while (address === undefined) {
      const { value, done } = await lines.read();
      if (done) break;
      seen += value;
      // Only complete lines: a chunk may end inside one.
      const event = seen.split("\n").slice(0, -1).filter(Boolean).map((l) => JSON.parse(l))
        .find((e) => e.type === "listening");
      address = event?.address;
    }
  } finally {
    clearTimeout(slow);
  }
  const output = (async () => {
    for (let r = await lines.read(); !r.done; r = await lines.read()) seen += r.value;
    return seen;
  })();
  const stop = async (): Promise<Result> => {
    kill(child, "SIGTERM");
    const stuck = setTimeout(() => kill(child, "SIGKILL"), 10_000);
    const { code } = await child.status.finally(() => clearTimeout(stuck));
    return { code, stdout: await output, stderr: await stderr };
  };
  if (address === undefined) {
    const result = await stop();
    throw new Error(`server did not start (exit ${result.code}): ${result.stderr}`);
  }
  let stopped: Promise<Result> | undefined;
  return {
    address,
    child,
    get stderrSoFar() {
      return stderrSoFar;
    },
    stop: () => stopped ??= stop(),
    [Symbol.asyncDispose]: async () => {
      await (stopped ??= stop());
    },
  };
}

/** One NDJSON event a server printed (`{ type: "unparsable", line }` for a line that is not JSON). */
export type CliEvent = Record<string, unknown>;

/** A `sockit server --json` child whose events can be awaited as they are printed. */
export interface EventServer extends AsyncDisposable {
  /** The address from its `listening` event. */
  address: string;
  child: Deno.ChildProcess;
  /** Every event printed so far. */
  events: CliEvent[];
  /** Whether the process has exited (and its output was read to the end). */
  readonly exited: boolean;
  /**
   * The first event `test` accepts, printed already or later; rejects after
   * `ms`, when the server exits first, or when `signal` aborts.
   */
  next(
    what: string,
    test: (event: CliEvent) => boolean,
    ms?: number,
    signal?: AbortSignal,
  ): Promise<CliEvent>;
  /** SIGTERM (SIGKILL 10 s later); the exit code and everything printed. Idempotent. */
  stop(): Promise<Result>;
  /** SIGKILL; the exit code and everything printed. */
  crash(): Promise<Result>;
}

/**
 * Starts `sockit server --json ARGS` and waits (10 s at most) for its
 * `listening` event; unlike {@linkcode startCli} it keeps every event it
 * prints, to be awaited with `next`.
 *
 * @param permissions the exact permission flags
 * @param args the server arguments after `server --json`
 * @param options environment and open-file limit
 * @returns the running server; dispose of it to stop it
 * @throws {Error} when the server exits or stays silent instead of listening
 */
export async function startEventServer(
  permissions: readonly string[],
  args: readonly string[],
  options: Omit<SpawnCliOptions, "stdin" | "timeout"> = {},
): Promise<EventServer> {
  const { child } = await spawnCli(permissions, ["server", "--json", ...args], options);
  const events: CliEvent[] = [];
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((check) => check());
  let stdout = "";
  const stdoutDone = (async () => {
    let pending = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      stdout += text;
      pending += text;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          events.push(JSON.parse(line));
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
          events.push({ type: "unparsable", line });
        }
      }
      wake();
    }
  })();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const ended = Promise.all([child.status, stdoutDone]).finally(() => {
    exited = true;
    wake();
  });
  const next = (
    what: string,
    test: (event: CliEvent) => boolean,
    ms = 10_000,
    signal?: AbortSignal,
  ) =>
    new Promise<CliEvent>((resolve, reject) => {
      const settle = (done: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        signal?.removeEventListener("abort", check);
        done();
      };
      const check = () => {
        const found = events.find(test);
        if (found) settle(() => resolve(found));
        else if (exited) settle(() => reject(new Error(`the server exited before ${what}`)));
        else if (signal?.aborted) settle(() => reject(signal.reason));
      };
      const timer = setTimeout(
        () => settle(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`))),
        ms,
      );
      waiters.add(check);
      signal?.addEventListener("abort", check);
      check();
    });
  let stopped: Promise<Result> | undefined;
  const end = (signal: Deno.Signal): Promise<Result> =>
    stopped ??= (async () => {
      kill(child, signal);
      const stuck = setTimeout(() => kill(child, "SIGKILL"), 10_000);
      await ended.finally(() => clearTimeout(stuck));
      return { code: (await child.status).code, stdout, stderr: await stderr };
    })();
  const server: EventServer = {
    address: "",
    child,
    events,
    get exited() {
      return exited;
    },
    next,
    stop: () => end("SIGTERM"),
    crash: () => end("SIGKILL"),
    [Symbol.asyncDispose]: async () => {
      await end("SIGTERM");
    },
  };
  try {
    const listening = await next("the listening event", (e) => e.type === "listening");
    server.address = String(listening.address);
  } catch (error) {
    const result = await end("SIGKILL");
    throw new Error(`server did not start (exit ${result.code}): ${result.stderr}`, {
      cause: error,
    });
  }
  return server;
}
