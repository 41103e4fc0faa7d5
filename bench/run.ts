#!/usr/bin/env -S deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env --allow-write
/**
 * The benchmark suite behind `deno task bench`. In one run, side by side:
 *
 * 1. codec throughput (`bench/codec_bench.ts` under `deno bench`), in GB/s;
 * 2. echo round trips per second with 64-byte frames: one sequential client,
 *    100 and 1,000 concurrent clients, against sockit's server, a raw Deno
 *    echo (the ceiling) and the seed's Python `ThreadingTCPServer` (when
 *    `python3` exists), each a separate process, driven by a separate load
 *    generator process (`bench/echo_load.ts`);
 * 3. each server's memory per idle connection: the growth of its RSS with
 *    1,000 idle connections open, divided by 1,000;
 * 4. remote exec (`bench/exec_bench.ts`): round trips of `true` and `cat` of
 *    10 MB through sockit's CLI and library, ssh (when sshd is installed) and
 *    the seed's Python exec server, medians and 90th percentiles of 30 and 10
 *    runs;
 * 5. upload (`bench/upload_bench.ts`): a 1 GiB file and a tree of 10,000
 *    files of 4 KiB through sockit's CLI, socat (the ceiling, for the file),
 *    scp (when sshd is installed) and the seed's Python upload, medians of 3
 *    runs;
 * 6. UDP echo (`bench/udp_bench.ts`): 64-byte datagrams one at a time and 32
 *    in flight, sockit against a plain `Deno.listenDatagram` echo and the
 *    seed's Python loop.
 *
 * Every measurement is repeated (3 times by default) and the median is
 * reported, with the ratios sockit / raw Deno and sockit / Python and a
 * check of the project's targets.
 *
 * ```sh
 * deno task bench [--reps N] [--duration MS] [--warmup MS] [--no-codec] [--no-exec] [--no-upload]
 *   [--no-udp] [--out FILE]
 * ```
 *
 * `--out FILE` also writes every sample as JSON.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BYTES_PER_ITERATION, PAYLOAD_SIZES } from "./_codec_cases.ts";
import { fromRoot, Proc, withCleanup } from "./_proc.ts";
import {
  hasPython,
  PYTHON,
  RAW_DENO,
  type RunningServer,
  type ServerSpec,
  SOCKIT,
  startServer,
} from "./_servers.ts";
import { sleep } from "./_time.ts";
import { EXEC_DEFAULTS, runExecBench } from "./exec_bench.ts";
import { runUdpBench, UDP_DEFAULTS } from "./udp_bench.ts";
import { runUploadBench, UPLOAD_DEFAULTS } from "./upload_bench.ts";

/** Concurrent clients per echo measurement. */
const CLIENT_COUNTS = [1, 100, 1000] as const;
/** Idle connections opened for the memory measurement. */
const IDLE_CONNECTIONS = 1000;
/** How long the idle connections are held while the server's RSS is read. */
const IDLE_HOLD_MS = 3000;
/** Time between RSS readings. */
const RSS_INTERVAL_MS = 250;

/** The project's targets. */
const TARGETS = {
  decodeGBps: 2,
  vsPython: 2,
  vsRaw: 0.9,
  idleKiB: 32,
} as const;

/** Samples by measurement name, then by server key (or codec bench name). */
type Samples = Map<string, Map<string, number[]>>;

function record(samples: Samples, measurement: string, key: string, value: number): void {
  let byKey = samples.get(measurement);
  if (!byKey) samples.set(measurement, byKey = new Map());
  let values = byKey.get(key);
  if (!values) byKey.set(key, values = []);
  values.push(value);
}

function median(values: readonly number[] | undefined): number {
  const sorted = (values ?? []).filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function progress(text: string): void {
  console.error(`bench: ${text}`);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------
// Codec

interface BenchJson {
  benches: { group: string | null; name: string; results: { ok?: { avg: number } }[] }[];
}

async function runCodecBench(samples: Samples): Promise<void> {
  await using proc = Proc.spawn({
    name: "deno bench",
    command: Deno.execPath(),
    args: ["bench", "--json", fromRoot("bench/codec_bench.ts")],
  });
  const output = await proc.readToEnd(180_000);
  const status = await proc.wait(10_000);
  if (!status.success) throw new Error(`Cannot run codec bench: deno bench exited ${status.code}`);
  const report = JSON.parse(output) as BenchJson;
  for (const bench of report.benches) {
    const avgNs = bench.results[0]?.ok?.avg;
    if (avgNs === undefined) throw new Error(`Cannot read codec bench result "${bench.name}"`);
    // Bytes per nanosecond are GB/s.
    record(samples, "codec", bench.name, BYTES_PER_ITERATION / avgNs);
  }
}

// ---------------------------------------------------------------------------
// Echo and memory

interface LoadOptions {
  warmup: number;
  duration: number;
}

function spawnLoad(server: RunningServer, args: string[]): Proc {
  return Proc.spawn({
    name: "load generator",
    command: Deno.execPath(),
    args: [
      "run",
      "--allow-net=127.0.0.1",
      fromRoot("bench/echo_load.ts"),
      server.address,
      "--mode",
      server.spec.mode,
      ...args,
    ],
  });
}

/**
 * Runs `clients` concurrent clients; returns round trips per second and the
 * server's CPU time per round trip in microseconds, both over the measured
 * window.
 */
async function measureEcho(
  server: RunningServer,
  clients: number,
  options: LoadOptions,
): Promise<number[]> {
  await using load = spawnLoad(server, [
    "--clients",
    String(clients),
    "--warmup",
    String(options.warmup),
    "--duration",
    String(options.duration),
  ]);
  await load.nextEvent("measuring", options.warmup + 60_000);
  const cpuBefore = await server.cpuSeconds();
  const result = await load.nextEvent("result", options.duration + 30_000);
  const cpu = await server.cpuSeconds() - cpuBefore;
  return [Number(result.rate), (cpu / Number(result.trips)) * 1e6];
}

/**
 * The server's RSS, the highest of several readings over `ms`: memory the
 * runtime takes a moment to claim (a heap grown by a late GC) counts too.
 */
async function peakRss(server: RunningServer, ms: number): Promise<number> {
  let peak = await server.rssKiB();
  for (let waited = 0; waited < ms; waited += RSS_INTERVAL_MS) {
    await sleep(RSS_INTERVAL_MS);
    peak = Math.max(peak, await server.rssKiB());
  }
  return peak;
}

/** Returns KiB of server RSS per idle connection. */
async function measureIdle(server: RunningServer): Promise<number[]> {
  const before = await peakRss(server, 1000);
  let after: number;
  {
    await using load = spawnLoad(server, ["--idle", String(IDLE_CONNECTIONS)]);
    await load.nextEvent("ready", 120_000);
    after = await peakRss(server, IDLE_HOLD_MS);
    await load.closeStdin();
    await load.wait(30_000);
  }
  // Let the server finish closing the idle connections before what follows.
  await sleep(500);
  return [(after - before) / IDLE_CONNECTIONS];
}

/** One row of the echo table. */
interface Row {
  /** The key samples are recorded under. */
  name: string;
  /** The row heading. */
  label: string;
  format: (value: number) => string;
}

/** One run of a load generator, giving the values of its rows. */
interface Step {
  rows: readonly Row[];
  run: (server: RunningServer, options: LoadOptions) => Promise<number[]>;
}

function formatNumber(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function formatRate(value: number): string {
  return Number.isFinite(value) ? `${(value / 1000).toFixed(1)} k/s` : "n/a";
}

function clientsText(clients: number): string {
  return clients === 1 ? "1 client (sequential)" : `${clients.toLocaleString("en")} clients`;
}

const ECHO_STEPS: readonly Step[] = CLIENT_COUNTS.map((clients) => ({
  rows: [
    { name: `echo ${clients}`, label: `64-byte echo, ${clientsText(clients)}`, format: formatRate },
    {
      name: `cpu ${clients}`,
      label: `server CPU µs per round trip, ${clientsText(clients)}`,
      format: (value) => formatNumber(value, 1),
    },
  ],
  run: (server, options) => measureEcho(server, clients, options),
}));

const IDLE_STEP: Step = {
  rows: [{
    name: "idle",
    label: `server memory per idle connection, KiB (${IDLE_CONNECTIONS.toLocaleString("en")} open)`,
    format: (value) => formatNumber(value, 1),
  }],
  run: (server) => measureIdle(server),
};

/** Table rows: throughput, then CPU cost, then memory. */
const ROWS: readonly Row[] = [
  ...ECHO_STEPS.map((step) => step.rows[0]!),
  ...ECHO_STEPS.map((step) => step.rows[1]!),
  ...IDLE_STEP.rows,
];

async function runServer(
  spec: ServerSpec,
  samples: Samples,
  options: LoadOptions,
): Promise<void> {
  await using server = await startServer(spec);
  const notes: string[] = [];
  // Memory first, on a fresh process, before load has grown its heap.
  for (const step of [IDLE_STEP, ...ECHO_STEPS]) {
    let values: number[] = [];
    try {
      values = await step.run(server, options);
    } catch (error) {
      progress(`${spec.label}: ${step.rows[0]!.label} failed: ${errorText(error)}`);
    }
    step.rows.forEach((row, i) => {
      const value = values[i] ?? NaN;
      record(samples, row.name, spec.key, value);
      notes.push(`${row.name} ${row.format(value)}`);
    });
  }
  progress(`${spec.label}: ${notes.join(", ")}`);
  if (server.problems.length > 0) {
    progress(
      `${spec.label} reported ${server.problems.length} problems, first: ${server.problems[0]}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Report

/**
 * The median of the ratios a[i] / b[i], each pair taken in the same
 * repetition, side by side.
 */
function medianRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((x, i) => x / (b[i] ?? NaN)));
}

function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rule = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [line(header), line(rule), ...rows.map(line)].join("\n");
}

function codecReport(samples: Samples, reps: number): string {
  const byName = samples.get("codec");
  if (!byName) return "";
  const codecs = [
    ...new Set(
      [...byName.keys()].map((name) => name.slice(0, name.indexOf(" "))),
    ),
  ];
  const rows = codecs.map((codec) => [
    codec,
    ...PAYLOAD_SIZES.map(({ label }) => formatNumber(median(byName.get(`${codec} ${label}`)), 2)),
  ]);
  return `### Codec throughput, GB/s of payload (median of ${reps} \`deno bench\` runs)\n\n` +
    table(["codec", ...PAYLOAD_SIZES.map(({ label }) => `${label} frames`)], rows);
}

function samplesOf(samples: Samples, name: string, key: string): number[] {
  return samples.get(name)?.get(key) ?? [];
}

function echoReport(samples: Samples, servers: readonly ServerSpec[], reps: number): string {
  const header = [
    "measurement",
    ...servers.map((s) => s.label),
    `sockit / ${RAW_DENO.label}`,
    `sockit / ${PYTHON.label}`,
  ];
  const rows = ROWS.map(({ name, label, format }) => {
    const sockit = samplesOf(samples, name, SOCKIT.key);
    return [
      label,
      ...servers.map((s) => format(median(samplesOf(samples, name, s.key)))),
      ...[RAW_DENO, PYTHON].map((peer) =>
        formatRatio(medianRatio(sockit, samplesOf(samples, name, peer.key)))
      ),
    ];
  });
  return `### Echo and memory (medians of ${reps} runs; ratios are medians of per-run ratios)\n\n` +
    table(header, rows);
}

function targetReport(samples: Samples): string {
  const lines: string[] = [];
  const check = (what: string, value: number, goal: number, higherIsBetter: boolean) => {
    const met = higherIsBetter ? value >= goal : value <= goal;
    const verdict = Number.isFinite(value) ? (met ? "met" : "MISSED") : "not measured";
    const sign = higherIsBetter ? "≥" : "≤";
    // Three decimals, so that a shown 0.90 never fails a 0.9 target.
    lines.push(`- ${what}: ${formatNumber(value, 3)} (target ${sign} ${goal}): ${verdict}`);
  };
  for (const decoder of ["FrameDecoderStream", "FrameReader"]) {
    check(
      `${decoder} decode, 64 KiB frames, GB/s`,
      median(samplesOf(samples, "codec", `${decoder} 64 KiB`)),
      TARGETS.decodeGBps,
      true,
    );
  }
  const versus = (name: string, a: ServerSpec, b: ServerSpec) =>
    medianRatio(samplesOf(samples, name, a.key), samplesOf(samples, name, b.key));
  const context: string[] = [];
  for (const clients of [100, 1000]) {
    const echo = `echo ${clients}`;
    const text = clientsText(clients);
    check(`echo, ${text}, sockit / Python`, versus(echo, SOCKIT, PYTHON), TARGETS.vsPython, true);
    check(`echo, ${text}, sockit / raw Deno`, versus(echo, SOCKIT, RAW_DENO), TARGETS.vsRaw, true);
    context.push(
      `- ${text}: raw Deno / Python ${formatRatio(versus(echo, RAW_DENO, PYTHON))}, ` +
        `server CPU per round trip sockit / raw Deno ` +
        formatRatio(versus(`cpu ${clients}`, SOCKIT, RAW_DENO)),
    );
  }
  check(
    "sockit memory per idle connection, KiB",
    median(samplesOf(samples, "idle", SOCKIT.key)),
    TARGETS.idleKiB,
    false,
  );
  return `### Targets\n\n${
    lines.join("\n")
  }\n\nContext (the ceiling and the server's own cost):\n\n` +
    context.join("\n");
}

// ---------------------------------------------------------------------------

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      reps: { type: "string", default: "3" },
      duration: { type: "string", default: "3000" },
      warmup: { type: "string", default: "500" },
      "no-codec": { type: "boolean", default: false },
      "no-exec": { type: "boolean", default: false },
      "no-upload": { type: "boolean", default: false },
      "no-udp": { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const reps = Number(values.reps);
  const options = { duration: Number(values.duration), warmup: Number(values.warmup) };
  const started = performance.now();
  const samples: Samples = new Map();

  if (!values["no-codec"]) {
    for (let rep = 1; rep <= reps; rep++) {
      progress(`codec bench, run ${rep} of ${reps}`);
      await runCodecBench(samples);
    }
  }

  const servers = [SOCKIT, RAW_DENO];
  if (await hasPython()) servers.push(PYTHON);
  else progress("python3 not found: the Python column is left out");
  // Interleave servers within each repetition so that drift hits all alike.
  for (let rep = 1; rep <= reps; rep++) {
    for (const spec of servers) {
      progress(`echo and memory, run ${rep} of ${reps}: ${spec.label}`);
      await runServer(spec, samples, options);
    }
  }

  let execReport = "";
  if (!values["no-exec"]) {
    progress("exec: round trips and 10 MB transfers");
    const exec = await runExecBench(EXEC_DEFAULTS, progress);
    execReport = exec.report;
    for (const [key, values] of Object.entries(exec.samples)) {
      for (const value of values) record(samples, "exec", key, value);
    }
  }

  let uploadReport = "";
  if (!values["no-upload"]) {
    progress("upload: a 1 GiB file and 10,000 small files");
    const upload = await runUploadBench(UPLOAD_DEFAULTS, progress);
    uploadReport = upload.report;
    for (const [key, values] of Object.entries(upload.samples)) {
      for (const value of values) record(samples, "upload", key, value);
    }
  }

  let udpReport = "";
  if (!values["no-udp"]) {
    progress("udp: 64-byte datagrams, one at a time and 32 in flight");
    const udp = await runUdpBench(UDP_DEFAULTS, progress);
    udpReport = udp.report;
    for (const [key, values] of Object.entries(udp.samples)) {
      for (const value of values) record(samples, "udp", key, value);
    }
  }

  const seconds = (performance.now() - started) / 1000;
  console.log(
    [
      `## sockit benchmarks, ${new Date().toISOString().slice(0, 10)}`,
      `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, loopback; ` +
      `${seconds.toFixed(0)} s in all.`,
      codecReport(samples, reps),
      echoReport(samples, servers, reps),
      targetReport(samples),
      execReport,
      uploadReport,
      udpReport,
    ].filter((part) => part !== "").join("\n\n"),
  );

  if (values.out !== undefined) {
    const json = Object.fromEntries(
      [...samples].map(([name, byKey]) => [name, Object.fromEntries(byKey)]),
    );
    await Deno.writeTextFile(values.out, JSON.stringify(json, null, 2) + "\n");
  }
}

if (import.meta.main) {
  await withCleanup(() => main(Deno.args));
}
