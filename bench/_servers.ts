/**
 * The three echo servers the benchmark compares, each started as its own
 * process on 127.0.0.1 port 0.
 *
 * @module
 */

import { cpuSeconds, fromRoot, Proc, rssKiB } from "./_proc.ts";

/** What the load generator speaks to a server: the sockit handshake or nothing. */
export type LoadMode = "sockit" | "raw";

/** One of the servers compared. */
export interface ServerSpec {
  /** A short key: `sockit`, `raw` or `python`. */
  key: string;
  /** The column heading. */
  label: string;
  /** How the load generator talks to it. */
  mode: LoadMode;
  /** The program and its arguments. */
  command: string;
  args: string[];
}

const DENO = Deno.execPath();

/** sockit's own server, through its command line. */
export const SOCKIT: ServerSpec = {
  key: "sockit",
  label: "sockit",
  mode: "sockit",
  command: DENO,
  args: [
    "run",
    "--allow-net=127.0.0.1",
    fromRoot("cli.ts"),
    "server",
    "--listen",
    "127.0.0.1:0",
    "--json",
    "--max-conns",
    "2000",
    // Every load client comes from 127.0.0.1: one source by design, so the
    // per-source handshake cap is raised to the whole handshake cap.
    "--max-per-source",
    "64",
  ],
};

/** A raw `conn.read`/`conn.write` echo: the ceiling. */
export const RAW_DENO: ServerSpec = {
  key: "raw",
  label: "raw Deno",
  mode: "raw",
  command: DENO,
  args: ["run", "--allow-net=127.0.0.1", fromRoot("bench/raw_echo_server.ts")],
};

/** The seed's Python `ThreadingTCPServer` echo, with a listen backlog of 1024. */
export const PYTHON: ServerSpec = {
  key: "python",
  label: "Python",
  mode: "raw",
  command: "python3",
  args: [fromRoot("bench/py_echo_server.py")],
};

/**
 * Whether `python3` can be run here.
 *
 * @returns true when `python3 --version` succeeds
 */
export async function hasPython(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("python3", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A running server. Dispose of it to stop it. */
export interface RunningServer extends AsyncDisposable {
  /** What was started. */
  spec: ServerSpec;
  /** `127.0.0.1:PORT`. */
  address: string;
  /** The process whose memory is measured. */
  pid: number;
  /** Events the server reported as problems (sockit's `refused` and `error`). */
  problems: string[];
  /** The server's resident set size in KiB. */
  rssKiB(): Promise<number>;
  /** CPU time the server has used so far, in seconds. */
  cpuSeconds(): Promise<number>;
}

const START_TIMEOUT_MS = 30_000;

/**
 * Starts a server and waits until it listens.
 *
 * @param spec which server
 * @returns the running server
 */
export async function startServer(spec: ServerSpec): Promise<RunningServer> {
  const proc = Proc.spawn({ name: `${spec.label} server`, command: spec.command, args: spec.args });
  try {
    const listening = await proc.nextEvent("listening", START_TIMEOUT_MS);
    const address = String(listening.address);
    const pid = typeof listening.pid === "number" ? listening.pid : proc.pid;
    const problems: string[] = [];
    // sockit prints an event per connection: keep reading so it never blocks.
    proc.drain((line) => {
      if (/"type":"(refused|error)"/.test(line)) problems.push(line);
    });
    return {
      spec,
      address,
      pid,
      problems,
      rssKiB: () => rssKiB(pid),
      cpuSeconds: () => cpuSeconds(pid),
      [Symbol.asyncDispose]: () => proc.stop(),
    };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}
