#!/usr/bin/env -S deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env --allow-write
/**
 * The exec benchmark: remote command round trips and 10 MB of output, for
 * sockit's `exec` (through its command line and through the library) side by
 * side with ssh and the seed's Python exec server, all on 127.0.0.1, in one
 * run.
 *
 * Measured, each a median and 90th percentile of N runs (30 for round trips,
 * 10 for 10 MB by default), the cases interleaved so that drift hits all
 * alike:
 *
 * - `true` through `sockit exec` (a fresh `deno run cli.ts exec …` process
 *   each time, with only the permissions the client needs), through the
 *   library's `exec()` in this process, through a fresh `ssh` (with and
 *   without the login shell's rc files), through ssh's ControlMaster, and
 *   through the seed-style Python server and client;
 * - for reference: `deno run` of a trivial script, `deno run cli.ts
 *   --version` (start-up plus loading every module) and `python3 -c pass`;
 * - `cat` of a 10 MB file of random bytes through the same paths; every
 *   output is checked by length and SHA-256.
 *
 * The sockit server is `cli.ts server --exec` in its own process, with the
 * token in `SOCKIT_TOKEN`. sshd is a throwaway one (`bench/_sshd.ts`); the
 * ssh rows are skipped with a message when sshd is not installed, the Python
 * rows when `python3` is missing.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env --allow-write \
 *   bench/exec_bench.ts [--runs N] [--big-runs N] [--size BYTES] [--no-ssh] [--no-python] \
 *   [--out FILE]
 * ```
 *
 * `deno task bench` runs it too, after the echo benchmark.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { exec } from "../mod.ts";
import { findPython, fromRoot, printBenchReport, Proc, withCleanup } from "./_proc.ts";
import { type Sshd, startSshd } from "./_sshd.ts";
import { withTimeout } from "./_time.ts";

/** Options of {@linkcode runExecBench}. */
export interface ExecBenchOptions {
  /** Round trips measured per case. */
  runs: number;
  /** 10 MB transfers measured per case. */
  bigRuns: number;
  /** Bytes in the file `cat` sends. */
  size: number;
  /** Measure ssh (when sshd is installed). */
  ssh: boolean;
  /** Measure the Python exec server (when python3 is installed). */
  python: boolean;
}

/** The defaults: 30 round trips, 10 transfers of 10 MB. */
export const EXEC_DEFAULTS: ExecBenchOptions = {
  runs: 30,
  bigRuns: 10,
  size: 10_000_000,
  ssh: true,
  python: true,
};

/** What {@linkcode runExecBench} found. */
export interface ExecBenchResult {
  /** Markdown: the tables and the targets. */
  report: string;
  /** Milliseconds of every measured run, by case key. */
  samples: Record<string, number[]>;
}

/** The project's targets, and the anchor figures they come from. */
const TARGETS = {
  /** CLI `exec true` ≤ this times a fresh `ssh … true`. */
  cliVsSsh: 0.2,
  /** Stretch: CLI `exec true` ≤ this times ssh through a warm ControlMaster. */
  cliVsMaster: 2.5,
  /** Library round trip, median, ms. */
  libraryMs: 5,
  /** Fresh ssh `cat` of 10 MB ≥ this times sockit's. */
  bigVsSsh: 3,
} as const;

/** Limit on one measured command; every loop is bounded by its run count. */
const RUN_TIMEOUT_MS = 30_000;

const DENO = Deno.execPath();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Cases

type Group = "trip" | "big";

/** One thing measured: `run` returns milliseconds and throws when the output is wrong. */
interface Case {
  key: string;
  label: string;
  group: Group;
  run: () => Promise<number>;
}

/** What a run must produce: nothing (for `true`), or the file's exact bytes. */
interface Expected {
  size: number;
  sha256: string;
}

const EMPTY: Expected = { size: 0, sha256: "" };
/** Any output: checked by the exit code only. */
const ANY = "any";

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Checks output against `expected`, after the clock stopped. */
async function verify(
  output: Uint8Array<ArrayBuffer>,
  expected: Expected | typeof ANY,
): Promise<void> {
  if (expected === ANY) return;
  if (output.length !== expected.size) {
    const text = expected.size === 0 ? `: ${JSON.stringify(decoder.decode(output))}` : "";
    throw new Error(`got ${output.length} bytes of output, expected ${expected.size}${text}`);
  }
  if (expected.size > 0 && await sha256(output) !== expected.sha256) {
    throw new Error(`output of ${output.length} bytes differs from the file (SHA-256)`);
  }
}

interface CommandSpec {
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

/** Times a child process from spawn to exit with all output read; stdin is empty. */
async function timeCommand(spec: CommandSpec, expected: Expected | typeof ANY): Promise<number> {
  const started = performance.now();
  const { code, stdout, stderr } = await new Deno.Command(spec.command, {
    args: spec.args,
    cwd: spec.cwd ?? fromRoot(""),
    ...(spec.env ? { env: spec.env } : {}),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
  }).output();
  const ms = performance.now() - started;
  if (code !== 0) {
    throw new Error(`exit ${code}: ${decoder.decode(stderr).trim().slice(0, 300)}`);
  }
  await verify(stdout, expected);
  return ms;
}

function commandCase(
  key: string,
  label: string,
  group: Group,
  spec: CommandSpec,
  expected: Expected | typeof ANY,
): Case {
  return { key, label, group, run: () => timeCommand(spec, expected) };
}

/** Times the library's `exec()` in this process, from the call to the exit status. */
function libraryCase(
  key: string,
  label: string,
  group: Group,
  address: string,
  token: string,
  argv: string[],
  expected: Expected,
): Case {
  return {
    key,
    label,
    group,
    run: async () => {
      const started = performance.now();
      const [stdout, stderr, status] = await withTimeout(
        (async () => {
          await using proc = await exec(address, argv, { token });
          return await Promise.all([
            new Response(proc.stdout).bytes(),
            new Response(proc.stderr).bytes(),
            proc.status,
          ]);
        })(),
        RUN_TIMEOUT_MS,
        `run ${argv.join(" ")} through exec()`,
      );
      const ms = performance.now() - started;
      if (status.code !== 0) {
        throw new Error(`exit ${status.code}: ${decoder.decode(stderr).trim().slice(0, 300)}`);
      }
      await verify(stdout, expected);
      return ms;
    },
  };
}

// ---------------------------------------------------------------------------
// Servers and fixtures

/** Writes `size` random bytes to `path`; returns their SHA-256. */
async function writeRandomFile(path: string, size: number): Promise<Expected> {
  const bytes = new Uint8Array(size);
  // getRandomValues fills at most 65,536 bytes per call.
  for (let at = 0; at < size; at += 65_536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65_536)));
  }
  await Deno.writeFile(path, bytes, { mode: 0o600 });
  return { size, sha256: await sha256(bytes) };
}

function randomToken(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(24)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Programs the sockit server may run: exactly what the bench asks for. */
const EXEC_PROGRAMS = ["true", "cat"];

interface Running extends AsyncDisposable {
  address: string;
  problems: string[];
}

/** Starts `cli.ts server --exec` with the narrowest permissions that serve the bench. */
async function startSockit(token: string): Promise<Running> {
  const proc = Proc.spawn({
    name: "sockit exec server",
    command: DENO,
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-env=SOCKIT_TOKEN",
      `--allow-run=${EXEC_PROGRAMS.join(",")}`,
      fromRoot("cli.ts"),
      "server",
      "--exec",
      "--exec-allow",
      EXEC_PROGRAMS.join(","),
      "--listen",
      "127.0.0.1:0",
      "--json",
    ],
    env: { SOCKIT_TOKEN: token },
  });
  return await listening(proc, (line) => /"type":"(refused|error)"/.test(line));
}

async function listening(proc: Proc, isProblem: (line: string) => boolean): Promise<Running> {
  try {
    const event = await proc.nextEvent("listening", 30_000);
    const problems: string[] = [];
    proc.drain((line) => {
      if (isProblem(line)) problems.push(line);
    });
    return {
      address: String(event.address),
      problems,
      [Symbol.asyncDispose]: () => proc.stop(),
    };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

/** Quotes a path for the remote shell (ssh and the Python server run a shell). */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

// ---------------------------------------------------------------------------
// Statistics and report

function sorted(values: readonly number[]): number[] {
  return values.filter(Number.isFinite).sort((a, b) => a - b);
}

function median(values: readonly number[]): number {
  const s = sorted(values);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The 90th percentile, nearest rank. */
function p90(values: readonly number[]): number {
  const s = sorted(values);
  return s.length === 0 ? NaN : s[Math.ceil(0.9 * s.length) - 1]!;
}

/** The median of a[i] / b[i]: each pair was measured in the same round, back to back. */
function medianRatio(a: readonly number[] | undefined, b: readonly number[] | undefined): number {
  if (!a || !b) return NaN;
  return median(a.map((x, i) => x / (b[i] ?? NaN)));
}

function ms(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rule = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [line(header), line(rule), ...rows.map(line)].join("\n");
}

function report(
  cases: readonly Case[],
  samples: Record<string, number[]>,
  failures: Map<string, string>,
  skipped: string[],
  options: ExecBenchOptions,
): string {
  const mb = options.size / 1e6;
  // Peers first, then the references.
  const rank = (c: Case) => /^(reference|context)/.test(c.label) ? 1 : 0;
  const rows = (group: Group) =>
    cases.filter((c) => c.group === group).sort((a, b) => rank(a) - rank(b)).map((c) => {
      const values = samples[c.key] ?? [];
      const failure = failures.get(c.key);
      const cells = [
        c.label,
        ms(median(values)),
        ms(p90(values)),
        failure ? `failed: ${failure.slice(0, 80)}` : String(values.length),
      ];
      if (group === "big") cells.splice(3, 0, (mb / (median(values) / 1000)).toFixed(0));
      return cells;
    });
  const v = (key: string) => samples[key];
  const lines: string[] = [];
  const check = (what: string, value: number, goal: number, higherIsBetter: boolean) => {
    const met = higherIsBetter ? value >= goal : value <= goal;
    const verdict = Number.isFinite(value) ? (met ? "met" : "MISSED") : "not measured";
    const shown = what.endsWith("ms") ? ms(value) : ratio(value);
    lines.push(`- ${what}: ${shown} (target ${higherIsBetter ? "≥" : "≤"} ${goal}): ${verdict}`);
  };
  check(
    "CLI `exec true` / fresh `ssh true`",
    medianRatio(v("cli true"), v("ssh true")),
    TARGETS.cliVsSsh,
    false,
  );
  check(
    "stretch: CLI `exec true` / `ssh true` through a warm ControlMaster",
    medianRatio(v("cli true"), v("ssh master true")),
    TARGETS.cliVsMaster,
    false,
  );
  check(
    "library `exec()` round trip, median ms",
    median(v("lib true") ?? []),
    TARGETS.libraryMs,
    false,
  );
  check(
    `fresh \`ssh cat\` / CLI \`exec cat\`, ${mb} MB`,
    medianRatio(v("ssh cat"), v("cli cat")),
    TARGETS.bigVsSsh,
    true,
  );
  check(
    `fresh \`ssh cat\` / library \`exec()\` cat, ${mb} MB`,
    medianRatio(v("ssh cat"), v("lib cat")),
    TARGETS.bigVsSsh,
    true,
  );
  const med = (key: string) => median(v(key) ?? []);
  const context = [
    "- CLI `exec true` / seed-style Python exec `true`: " +
    ratio(medianRatio(v("cli true"), v("py true"))),
    "- CLI `exec true` / fresh `ssh true` with the login shell's rc files: " +
    ratio(medianRatio(v("cli true"), v("ssh rc true"))),
    "- CLI `exec cat` / library `exec()` cat: " + ratio(medianRatio(v("cli cat"), v("lib cat"))),
    `- where the CLI's \`exec true\` goes (differences of medians): Deno start-up ${
      ms(med("deno trivial"))
    } ms, loading cli.ts and its modules ${ms(med("cli version") - med("deno trivial"))} ms, ` +
    `connecting, the handshake and the command ${ms(med("cli true") - med("cli version"))} ms ` +
    `(the library, warm, in process: ${ms(med("lib true"))} ms)`,
  ];
  const parts = [
    `### Exec: round trips of \`true\`, ms (${plural(options.runs, "run")} each, interleaved)`,
    table(["measurement", "median", "p90", "runs"], rows("trip")),
    `### Exec: \`cat\` of a ${mb} MB file, ms (${
      plural(options.bigRuns, "run")
    } each; every output checked by SHA-256)`,
    table(["measurement", "median", "p90", "MB/s (median)", "runs"], rows("big")),
  ];
  if (skipped.length > 0) parts.push(skipped.map((s) => `- skipped: ${s}`).join("\n"));
  parts.push(
    "### Exec targets (ratios are medians of per-round ratios)",
    lines.join("\n"),
    "Context:",
    context.join("\n"),
  );
  return parts.join("\n\n");
}

// ---------------------------------------------------------------------------

/**
 * Starts the throwaway sshd and its ControlMaster, and returns the ssh cases;
 * or why ssh cannot be measured here.
 */
async function sshCases(
  tmp: string,
  file: string,
  expected: Expected,
): Promise<{ sshd: Sshd; trips: Case[]; bigs: Case[] } | { reason: string }> {
  const dir = `${tmp}/sshd`;
  await Deno.mkdir(dir);
  let sshd: Sshd;
  try {
    const started = await startSshd(dir);
    if ("reason" in started) return started;
    sshd = started;
  } catch (error) {
    return { reason: `cannot start sshd: ${error instanceof Error ? error.message : error}` };
  }
  // bash runs ~/.bashrc for an ssh command unless SHLVL says it is nested;
  // SHLVL=1 skips it, so ssh is timed without the rc files' cost (one row
  // keeps them, as a plain `ssh` runs here). Sessions through the
  // ControlMaster take SetEnv from the master.
  const noRc = ["-o", "SetEnv=SHLVL=1"];
  try {
    await sshd.startMaster(noRc);
  } catch (error) {
    await sshd[Symbol.asyncDispose]();
    return { reason: error instanceof Error ? error.message : String(error) };
  }
  const ssh = (args: string[], remote: string): CommandSpec => ({
    command: sshd.ssh,
    args: [...args, "127.0.0.1", remote],
  });
  const fresh = [...sshd.sshArgs, ...noRc];
  const cat = `cat ${shellQuote(file)}`;
  return {
    sshd,
    trips: [
      commandCase("ssh true", "fresh `ssh 127.0.0.1 true`", "trip", ssh(fresh, "true"), EMPTY),
      commandCase(
        "ssh master true",
        "`ssh … true` through a warm ControlMaster",
        "trip",
        ssh(sshd.masterArgs, "true"),
        EMPTY,
      ),
      commandCase(
        "ssh rc true",
        "context: fresh `ssh … true` running the login shell's rc files",
        "trip",
        ssh(sshd.sshArgs, "true"),
        EMPTY,
      ),
    ],
    bigs: [
      commandCase("ssh cat", "fresh `ssh … cat FILE`", "big", ssh(fresh, cat), expected),
      commandCase(
        "ssh master cat",
        "`ssh … cat FILE` through a warm ControlMaster",
        "big",
        ssh(sshd.masterArgs, cat),
        expected,
      ),
    ],
  };
}

async function measure(
  cases: readonly Case[],
  runs: number,
  samples: Record<string, number[]>,
  failures: Map<string, string>,
  progress: (text: string) => void,
): Promise<void> {
  const attempt = async (c: Case): Promise<number | undefined> => {
    if (failures.has(c.key)) return undefined;
    try {
      return await c.run();
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      failures.set(c.key, text);
      progress(`exec: ${c.label} failed: ${text}`);
      return undefined;
    }
  };
  // One warm-up run each (caches, JIT, the ssh host key), not recorded.
  for (const c of cases) await attempt(c);
  for (let round = 0; round < runs; round++) {
    for (let i = 0; i < cases.length; i++) {
      // Rotate the order so that no case always follows the same one.
      const c = cases[(i + round) % cases.length]!;
      const value = await attempt(c);
      (samples[c.key] ??= []).push(value ?? NaN);
    }
  }
}

/**
 * Runs the exec benchmark.
 *
 * @param options run counts, file size, which peers
 * @param progress called with a line of progress
 * @returns the report and every sample
 */
export async function runExecBench(
  options: ExecBenchOptions = EXEC_DEFAULTS,
  progress: (text: string) => void = (text) => console.error(`bench: ${text}`),
): Promise<ExecBenchResult> {
  const samples: Record<string, number[]> = {};
  const failures = new Map<string, string>();
  const skipped: string[] = [];
  const tmp = await Deno.makeTempDir({ prefix: "sockit-exec-bench-" });
  await using _cleanup = {
    [Symbol.asyncDispose]: () => Deno.remove(tmp, { recursive: true }),
  };
  const file = `${tmp}/payload.bin`;
  const expected = await writeRandomFile(file, options.size);
  const trivial = `${tmp}/trivial.ts`;
  await Deno.writeTextFile(trivial, "export {};\n");
  const token = randomToken();

  progress("exec: starting the sockit server");
  await using sockit = await startSockit(token);
  const address = sockit.address;
  const cli = (argv: string[]): CommandSpec => ({
    command: DENO,
    args: [
      "run",
      `--allow-net=${address}`,
      "--allow-env=SOCKIT_TOKEN",
      fromRoot("cli.ts"),
      "exec",
      address,
      "--no-stdin",
      "--",
      ...argv,
    ],
    env: { SOCKIT_TOKEN: token },
  });
  const trips: Case[] = [
    commandCase(
      "deno trivial",
      "reference: `deno run` of a trivial script",
      "trip",
      { command: DENO, args: ["run", "--no-config", trivial], cwd: tmp },
      EMPTY,
    ),
    commandCase(
      "cli version",
      "reference: `deno run cli.ts --version` (start-up + modules)",
      "trip",
      { command: DENO, args: ["run", fromRoot("cli.ts"), "--version"] },
      ANY,
    ),
    commandCase(
      "cli true",
      "sockit CLI `exec -- true` (fresh process)",
      "trip",
      cli(["true"]),
      EMPTY,
    ),
    libraryCase("lib true", "sockit library `exec()` `true` (in process)", "trip", address, token, [
      "true",
    ], EMPTY),
  ];
  const bigs: Case[] = [
    commandCase("cli cat", "sockit CLI `exec -- cat FILE`", "big", cli(["cat", file]), expected),
    libraryCase("lib cat", "sockit library `exec()` `cat FILE`", "big", address, token, [
      "cat",
      file,
    ], expected),
  ];
  let sshd: Sshd | undefined;
  let python: Running | undefined;
  try {
    if (options.ssh) {
      progress("exec: starting a throwaway sshd");
      const ssh = await sshCases(tmp, file, expected);
      if ("reason" in ssh) {
        skipped.push(`ssh: ${ssh.reason}`);
        progress(`exec: ssh skipped: ${ssh.reason}`);
      } else {
        sshd = ssh.sshd;
        trips.push(...ssh.trips);
        bigs.push(...ssh.bigs);
      }
    } else {
      skipped.push("ssh: --no-ssh");
    }

    const py = options.python ? await findPython() : undefined;
    if (py) {
      progress("exec: starting the Python exec server");
      python = await listening(
        Proc.spawn({
          name: "Python exec server",
          command: py,
          args: [fromRoot("bench/py_exec_server.py")],
        }),
        () => false,
      );
      const [host, port] = python.address.split(":") as [string, string];
      const client = (command: string): CommandSpec => ({
        command: py,
        args: [fromRoot("bench/py_exec_client.py"), host, port, command],
      });
      trips.push(
        commandCase("py true", "seed-style Python exec `true`", "trip", client("true"), EMPTY),
        commandCase(
          "py start",
          "reference: `python3 -c pass`",
          "trip",
          { command: py, args: ["-c", "pass"] },
          EMPTY,
        ),
      );
      bigs.push(
        commandCase(
          "py cat",
          "seed-style Python exec `cat FILE`",
          "big",
          client(`cat ${shellQuote(file)}`),
          expected,
        ),
      );
    } else {
      skipped.push(options.python ? "Python: python3 not found" : "Python: --no-python");
    }

    progress(`exec: ${trips.length} round-trip cases, ${options.runs} runs each`);
    await measure(trips, options.runs, samples, failures, progress);
    progress(`exec: ${bigs.length} ${options.size / 1e6} MB cases, ${options.bigRuns} runs each`);
    await measure(bigs, options.bigRuns, samples, failures, progress);
  } finally {
    await python?.[Symbol.asyncDispose]();
    await sshd?.[Symbol.asyncDispose]();
  }
  if (sockit.problems.length > 0) {
    progress(
      `exec: the sockit server reported ${sockit.problems.length} problems, first: ${
        sockit.problems[0]
      }`,
    );
  }
  return { report: report([...trips, ...bigs], samples, failures, skipped, options), samples };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: String(EXEC_DEFAULTS.runs) },
      "big-runs": { type: "string", default: String(EXEC_DEFAULTS.bigRuns) },
      size: { type: "string", default: String(EXEC_DEFAULTS.size) },
      "no-ssh": { type: "boolean", default: false },
      "no-python": { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const options: ExecBenchOptions = {
    runs: Number(values.runs),
    bigRuns: Number(values["big-runs"]),
    size: Number(values.size),
    ssh: !values["no-ssh"],
    python: !values["no-python"],
  };
  for (const [name, value] of Object.entries(options)) {
    if (typeof value === "number" && (!Number.isSafeInteger(value) || value < 1)) {
      throw new RangeError(`Cannot use --${name} "${value}": expected a positive integer`);
    }
  }
  await printBenchReport("exec", () => runExecBench(options), values.out);
}

if (import.meta.main) {
  await withCleanup(() => main(Deno.args));
}
