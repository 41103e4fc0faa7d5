#!/usr/bin/env -S deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env
/**
 * The UDP echo benchmark: 64-byte request/response datagrams per second for
 * sockit's UDP echo (`sockit server --udp`), side by side with a plain
 * `Deno.listenDatagram` echo (`bench/raw_udp_echo_server.ts`, the ceiling
 * for Deno) and the seed-style Python `recvfrom`/`sendto` loop
 * (`bench/py_udp_echo_server.py`), each its own process on 127.0.0.1 port 0,
 * in one run.
 *
 * Measured, per server, each a median of `--reps` repetitions (3 by
 * default), the cases interleaved (every repetition runs each case on each
 * server, the server order rotated) so that drift hits all alike:
 *
 * - **one at a time**: one client socket sends a datagram, waits for the
 *   reply, repeats;
 * - **32 in flight**: 32 client sockets (32 distinct sources, like 32
 *   clients) each keep one datagram in flight. sockit limits each source to
 *   20,000 datagrams a second (burst 2,000); 32 sources keep every one of
 *   them far below that, so the limit stays on and costs only its
 *   bookkeeping;
 * - context, with `--one-source`: one socket with 32 in flight, where
 *   sockit's per-source limit is expected to bite (drops, then timeouts);
 * - the server's CPU time per datagram (`/proc/PID/stat`, all threads) and
 *   the load generator's CPU share over the measured window.
 *
 * The load generator is a separate process with a fixed warm-up (0.5 s) and
 * measured window (3 s). Every reply is checked byte for byte against its
 * request; a request unanswered for 200 ms counts as lost and is replaced.
 * By default it is `bench/py_udp_load.py` (when `python3` exists): a Deno
 * client costs about as much CPU per datagram as a Deno server, so on 2
 * cores it would cap every server near the plain Deno echo's rate and hide
 * the Python server's speed. `--load deno` uses `bench/udp_load.ts` instead,
 * `--load both` runs every case with each.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env bench/udp_bench.ts \
 *   [--reps N] [--warmup MS] [--duration MS] [--load python|deno|both] [--one-source] \
 *   [--no-python] [--out FILE]
 * ```
 *
 * Permissions: `--allow-net=127.0.0.1` (nothing is sent elsewhere),
 * `--allow-run` (the servers, the load generators, `cat` of `/proc/PID/stat`)
 * and `--allow-read` (module paths); `--allow-write` only for `--out FILE`.
 * `--allow-env` is not needed, only accepted, so the command above matches
 * `deno task bench`'s. The servers and `bench/udp_load.ts` need
 * `--unstable-net`, which the repository's `deno.json` turns on.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { cpuSeconds, findPython, fromRoot, printBenchReport, Proc, withCleanup } from "./_proc.ts";

/** Options of {@linkcode runUdpBench}. */
export interface UdpBenchOptions {
  /** Repetitions of every case; the report gives medians. */
  reps: number;
  /** Milliseconds of load before the measured window. */
  warmup: number;
  /** Milliseconds in the measured window. */
  duration: number;
  /** Which load generator drives the load (python falls back to deno without python3). */
  load: "python" | "deno" | "both";
  /** Also run one socket with 32 in flight (sockit's per-source limit applies). */
  oneSource: boolean;
  /** Measure the Python server (when python3 is installed). */
  python: boolean;
}

/** The defaults: 3 repetitions of a 3 s window after 0.5 s of warm-up. */
export const UDP_DEFAULTS: UdpBenchOptions = {
  reps: 3,
  warmup: 500,
  duration: 3000,
  load: "python",
  oneSource: false,
  python: true,
};

/** What {@linkcode runUdpBench} found. */
export interface UdpBenchResult {
  /** Markdown: the table, the targets and notes. */
  report: string;
  /**
   * Every sample by key `LOAD CASE SERVER WHAT`: WHAT is `rate` (datagrams a
   * second), `cpu` (server CPU µs per datagram), `load-cpu` (the load
   * generator's CPU share, 1 = one core), `lost` (requests unanswered in
   * 200 ms), `late` (replies to requests already counted as lost) or
   * `drop-reports` (sockit's `udp-dropped` events: sources it rate-limited).
   */
  samples: Record<string, number[]>;
}

/** The project's target: sockit ≥ this times the plain Deno echo, in both modes. */
const TARGET_VS_RAW = 0.95;
/** The anchor figures of this machine kind, k datagrams a second, for the notes. */
const ANCHORS = { sequential: "5–7", inflightPython: 87, inflightRaw: 32 } as const;

/** Limit on a server's start and on a load generator's set-up. */
const START_TIMEOUT_MS = 30_000;
/** How long a load generator gets to report after its window. */
const FINISH_MS = 30_000;
/** Milliseconds without a reply before a request counts as lost. */
const LOSS_TIMEOUT_MS = 200;

const DENO = Deno.execPath();

// ---------------------------------------------------------------------------
// Servers

interface ServerSpec {
  key: string;
  label: string;
  command: string;
  args: string[];
  /** The event that carries the UDP address. */
  ready: string;
}

function sockitSpec(): ServerSpec {
  return {
    key: "sockit",
    label: "sockit",
    command: DENO,
    args: [
      "run",
      "--allow-net=127.0.0.1",
      fromRoot("cli.ts"),
      "server",
      "--listen",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--json",
    ],
    ready: "udp-listening",
  };
}

function rawSpec(): ServerSpec {
  return {
    key: "raw",
    label: "plain Deno",
    command: DENO,
    args: ["run", "--allow-net=127.0.0.1", fromRoot("bench/raw_udp_echo_server.ts")],
    ready: "listening",
  };
}

function pythonSpec(python: string): ServerSpec {
  return {
    key: "python",
    label: "Python",
    command: python,
    args: [fromRoot("bench/py_udp_echo_server.py")],
    ready: "listening",
  };
}

interface RunningServer extends AsyncDisposable {
  spec: ServerSpec;
  /** `127.0.0.1:PORT` of the UDP socket. */
  address: string;
  pid: number;
  /** sockit's `udp-dropped` and `error` events, and its final `udp-closed` counters. */
  events: Record<string, unknown>[];
}

async function startServer(spec: ServerSpec): Promise<RunningServer> {
  const proc = Proc.spawn({
    name: `${spec.label} UDP server`,
    command: spec.command,
    args: spec.args,
  });
  try {
    // sockit prints its TCP `listening` first, then `udp-listening`.
    let event: Record<string, unknown> | undefined;
    for (let i = 0; i < 10 && event === undefined; i++) {
      const line = await proc.nextLine(START_TIMEOUT_MS);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed.type === spec.ready) event = parsed;
    }
    if (event === undefined) throw new Error(`Cannot start ${proc.name}: no ${spec.ready} event`);
    const events: Record<string, unknown>[] = [];
    proc.drain((line) => {
      if (/"type":"(udp-dropped|udp-closed|error|refused)"/.test(line)) {
        events.push(JSON.parse(line));
      }
    });
    return {
      spec,
      address: String(event.address),
      pid: proc.pid,
      events,
      [Symbol.asyncDispose]: () => proc.stop(),
    };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Cases

/** How the load is shaped. */
interface Shape {
  key: string;
  label: string;
  sockets: number;
  inflight: number;
}

const SEQUENTIAL: Shape = {
  key: "1x1",
  label: "one at a time (1 socket)",
  sockets: 1,
  inflight: 1,
};
const SPREAD: Shape = {
  key: "32x1",
  label: "32 in flight (32 sockets, 1 each)",
  sockets: 32,
  inflight: 1,
};
const ONE_SOURCE: Shape = {
  key: "1x32",
  label: "32 in flight from 1 socket",
  sockets: 1,
  inflight: 32,
};

type LoadKind = "python" | "deno";

interface LoadResult {
  rate: number;
  trips: number;
  lost: number;
  late: number;
  sendErrors: number;
  /** Server CPU µs per datagram over the window. */
  cpu: number;
  /** The load generator's CPU seconds per second over the window. */
  loadCpu: number;
}

function spawnLoad(
  kind: LoadKind,
  python: string | undefined,
  address: string,
  shape: Shape,
  options: UdpBenchOptions,
): Proc {
  const args = [
    address,
    "--sockets",
    String(shape.sockets),
    "--inflight",
    String(shape.inflight),
    "--warmup",
    String(options.warmup),
    "--duration",
    String(options.duration),
    "--timeout",
    String(LOSS_TIMEOUT_MS),
  ];
  return kind === "python"
    ? Proc.spawn({
      name: "Python UDP load generator",
      command: python!,
      args: [fromRoot("bench/py_udp_load.py"), ...args],
    })
    : Proc.spawn({
      name: "Deno UDP load generator",
      command: DENO,
      args: ["run", "--allow-net=127.0.0.1", fromRoot("bench/udp_load.ts"), ...args],
    });
}

async function measure(
  server: RunningServer,
  kind: LoadKind,
  python: string | undefined,
  shape: Shape,
  options: UdpBenchOptions,
): Promise<LoadResult> {
  await using load = spawnLoad(kind, python, server.address, shape, options);
  const measuring = await load.nextEvent("measuring", options.warmup + START_TIMEOUT_MS);
  const serverBefore = await cpuSeconds(server.pid);
  const result = await load.nextEvent("result", options.duration + FINISH_MS);
  const serverAfter = await cpuSeconds(server.pid);
  const status = await load.wait(FINISH_MS);
  if (!status.success) throw new Error(`Cannot finish: ${load.name} exited ${status.code}`);
  const trips = Number(result.trips);
  return {
    rate: Number(result.rate),
    trips,
    lost: Number(result.lost),
    late: Number(result.late),
    sendErrors: Number(result.sendErrors),
    cpu: trips > 0 ? ((serverAfter - serverBefore) / trips) * 1e6 : NaN,
    loadCpu: (Number(result.cpu) - Number(measuring.cpu)) / Number(result.seconds),
  };
}

// ---------------------------------------------------------------------------
// Statistics and report

function median(values: readonly number[] | undefined): number {
  const s = (values ?? []).filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The median of a[i] / b[i]: each pair was measured in the same repetition. */
function medianRatio(a: readonly number[] | undefined, b: readonly number[] | undefined): number {
  if (!a || !b) return NaN;
  return median(a.map((x, i) => x / (b[i] ?? NaN)));
}

function sum(values: readonly number[] | undefined): number {
  return (values ?? []).filter(Number.isFinite).reduce((a, b) => a + b, 0);
}

function formatRate(value: number): string {
  return Number.isFinite(value) ? `${(value / 1000).toFixed(1)} k/s` : "n/a";
}

function formatNumber(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rule = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [line(header), line(rule), ...rows.map(line)].join("\n");
}

function key(load: LoadKind, shape: Shape, server: string, what: string): string {
  return `${load} ${shape.key} ${server} ${what}`;
}

function report(
  loads: readonly LoadKind[],
  shapes: readonly Shape[],
  servers: readonly ServerSpec[],
  samples: Record<string, number[]>,
  sockitCounters: string | undefined,
  failures: Map<string, string>,
  options: UdpBenchOptions,
): string {
  const parts: string[] = [];
  const has = (server: string) => servers.some((s) => s.key === server);
  const header = [
    "measurement",
    ...servers.map((s) => s.label),
    "sockit / plain Deno",
    ...(has("python") ? ["sockit / Python"] : []),
  ];
  const lines: string[] = [];
  for (const load of loads) {
    const rows: string[][] = [];
    const v = (shape: Shape, server: string, what: string) =>
      samples[key(load, shape, server, what)];
    const row = (
      label: string,
      shape: Shape,
      what: string,
      format: (value: number) => string,
      ratios: boolean,
      combine: (values: number[] | undefined) => number = median,
    ) => {
      const cells = [label, ...servers.map((s) => format(combine(v(shape, s.key, what))))];
      const r = (other: string) =>
        ratios ? ratio(medianRatio(v(shape, "sockit", what), v(shape, other, what))) : "";
      cells.push(r("raw"));
      if (has("python")) cells.push(r("python"));
      rows.push(cells);
    };
    for (const shape of shapes) {
      row(`64-byte datagrams/s, ${shape.label}`, shape, "rate", formatRate, true);
    }
    for (const shape of shapes) {
      row(
        `server CPU µs per datagram, ${shape.label}`,
        shape,
        "cpu",
        (x) => formatNumber(x, 1),
        true,
      );
    }
    for (const shape of shapes) {
      row(
        `load generator CPU, % of a core, ${shape.label}`,
        shape,
        "load-cpu",
        (x) => formatNumber(x * 100, 0),
        false,
      );
    }
    for (const shape of shapes) {
      row(
        `requests lost (no reply in ${LOSS_TIMEOUT_MS} ms), all reps, ${shape.label}`,
        shape,
        "lost",
        (x) => String(x),
        false,
        sum,
      );
    }
    const title = load === "python"
      ? "`bench/py_udp_load.py` (Python, epoll)"
      : "`bench/udp_load.ts` (Deno)";
    parts.push(
      `### UDP echo, load generator ${title}, median of ${options.reps} × ${
        options.duration / 1000
      } s`,
      table(header, rows),
    );
    for (const shape of [SEQUENTIAL, SPREAD]) {
      if (!shapes.includes(shape)) continue;
      const value = medianRatio(v(shape, "sockit", "rate"), v(shape, "raw", "rate"));
      const verdict = Number.isFinite(value)
        ? (value >= TARGET_VS_RAW ? "met" : "MISSED")
        : "not measured";
      lines.push(
        `- ${shape.label}, load generator ${load}: sockit / plain Deno ${
          ratio(value)
        } (target ≥ ${TARGET_VS_RAW}): ${verdict}`,
      );
    }
  }
  parts.push("### UDP targets (ratios are medians of per-repetition ratios)", lines.join("\n"));
  const notes = [
    `- anchors for this machine kind: one at a time ${ANCHORS.sequential} k/s for everyone; ` +
    `32 in flight: Python ≈ ${ANCHORS.inflightPython} k/s, plain Deno ≈ ${ANCHORS.inflightRaw} k/s`,
  ];
  for (const load of loads) {
    for (const shape of shapes) {
      const reports = sum(samples[key(load, shape, "sockit", "drop-reports")]);
      if (reports > 0) {
        notes.push(
          `- ${shape.label}, load generator ${load}: sockit reported drops (\`udp-dropped\`) ` +
            `for ${reports} source${reports === 1 ? "" : "s"} over all repetitions: its ` +
            `per-source limit, so those requests count as lost`,
        );
      }
    }
  }
  if (sockitCounters) notes.push(`- sockit's own counters at the end: ${sockitCounters}`);
  for (const [what, message] of failures) notes.push(`- failed: ${what}: ${message}`);
  parts.push("Notes:", notes.join("\n"));
  return parts.join("\n\n");
}

// ---------------------------------------------------------------------------

/**
 * Runs the UDP echo benchmark.
 *
 * @param options repetitions, window, load generator, which peers
 * @param progress called with a line of progress
 * @returns the report and every sample
 */
export async function runUdpBench(
  options: UdpBenchOptions = UDP_DEFAULTS,
  progress: (text: string) => void = (text) => console.error(`bench: ${text}`),
): Promise<UdpBenchResult> {
  const samples: Record<string, number[]> = {};
  const failures = new Map<string, string>();
  const python = options.python || options.load !== "deno" ? await findPython() : undefined;
  let loads: LoadKind[] = options.load === "both" ? ["python", "deno"] : [options.load];
  if (!python && loads.includes("python")) {
    progress("udp: python3 not found; the Deno load generator drives every case");
    loads = ["deno"];
  }
  const shapes = options.oneSource ? [SEQUENTIAL, SPREAD, ONE_SOURCE] : [SEQUENTIAL, SPREAD];
  const specs = [sockitSpec(), rawSpec()];
  if (options.python && python) specs.push(pythonSpec(python));

  progress(`udp: starting ${specs.map((s) => s.label).join(", ")}`);
  const servers: RunningServer[] = [];
  let sockitCounters: string | undefined;
  try {
    for (const spec of specs) servers.push(await startServer(spec));
    for (let rep = 0; rep < options.reps; rep++) {
      for (const load of loads) {
        for (const shape of shapes) {
          const notes: string[] = [];
          for (let i = 0; i < servers.length; i++) {
            // Rotate the order so that no server always follows the same one.
            const server = servers[(i + rep) % servers.length]!;
            const name = `${load} load, ${shape.label}, ${server.spec.label}`;
            let result: LoadResult | undefined;
            const seen = server.events.length;
            try {
              result = await measure(server, load, python, shape, options);
            } catch (error) {
              const text = error instanceof Error ? error.message : String(error);
              failures.set(name, text);
              progress(`udp: ${name} failed: ${text}`);
            }
            const put = (what: string, value: number) =>
              (samples[key(load, shape, server.spec.key, what)] ??= []).push(value);
            put("rate", result?.rate ?? NaN);
            put("cpu", result?.cpu ?? NaN);
            put("load-cpu", result?.loadCpu ?? NaN);
            put("lost", result?.lost ?? NaN);
            put("late", result?.late ?? NaN);
            // sockit reports the first drop of each source at once (then one
            // report per source per 10 s): reports are the sources limited.
            put(
              "drop-reports",
              server.events.slice(seen).filter((e) => e.type === "udp-dropped").length,
            );
            if (result) {
              notes.push(
                `${server.spec.label} ${formatRate(result.rate)} (${
                  formatNumber(result.cpu, 1)
                } µs, lost ${result.lost})`,
              );
            }
          }
          progress(`udp: rep ${rep + 1}, ${load} load, ${shape.label}: ${notes.join(", ")}`);
        }
      }
    }
  } finally {
    for (const server of servers.reverse()) await server[Symbol.asyncDispose]();
  }
  const sockit = servers.find((s) => s.spec.key === "sockit");
  const closed = sockit?.events.find((e) => e.type === "udp-closed");
  if (closed) sockitCounters = JSON.stringify(closed.stats);
  const problems = sockit?.events.filter((e) => e.type === "error" || e.type === "refused") ?? [];
  if (problems.length > 0) {
    failures.set(
      "sockit server events",
      `${problems.length}, first: ${JSON.stringify(problems[0])}`,
    );
  }
  return {
    report: report(loads, shapes, specs, samples, sockitCounters, failures, options),
    samples,
  };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      reps: { type: "string", default: String(UDP_DEFAULTS.reps) },
      warmup: { type: "string", default: String(UDP_DEFAULTS.warmup) },
      duration: { type: "string", default: String(UDP_DEFAULTS.duration) },
      load: { type: "string", default: UDP_DEFAULTS.load },
      "one-source": { type: "boolean", default: false },
      "no-python": { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const load = values.load;
  if (load !== "python" && load !== "deno" && load !== "both") {
    throw new RangeError(`Cannot use --load "${load}": expected python, deno or both`);
  }
  const options: UdpBenchOptions = {
    reps: Number(values.reps),
    warmup: Number(values.warmup),
    duration: Number(values.duration),
    load,
    oneSource: values["one-source"],
    python: !values["no-python"],
  };
  for (const name of ["reps", "warmup", "duration"] as const) {
    const value = options[name];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Cannot use --${name} "${value}": expected a positive integer`);
    }
  }
  await printBenchReport("UDP echo", () => runUdpBench(options), values.out);
}

if (import.meta.main) {
  await withCleanup(() => main(Deno.args));
}
