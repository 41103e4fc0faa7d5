#!/usr/bin/env -S deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env --allow-write
/**
 * The upload benchmark: one large file and a tree of many small files sent
 * to a server on 127.0.0.1, through sockit's `upload` command side by side
 * with `socat` (raw bytes file → TCP → file: the ceiling), `scp` to a
 * throwaway sshd and the seed's Python upload, in one run.
 *
 * Measured, each the median of N runs (3 by default), the tools interleaved
 * within each round so that drift hits all alike:
 *
 * - a 1 GiB file of random bytes (generated once): a fresh `deno run cli.ts
 *   upload` process per run (with only the permissions the client needs),
 *   `socat -u -b 262144` from the file to a listening `socat` that writes it
 *   out, `scp`, and the seed-style Python client and server (`recv(1024)`);
 * - a tree of 10,000 files of 4 KiB (100 directories of 100): one `sockit
 *   upload` process for the whole directory, `scp -r`, and the Python seed,
 *   whose client sends one file per process: it runs over the first 50
 *   files only and its rate is reported as files per second.
 *
 * Every run goes to a fresh name. A large file is removed right after its
 * run; trees stay until every tree run is done (see {@linkcode measure}).
 * Each tool's output is checked once (the first round), after the clock
 * stopped: the large file by SHA-256, the tree file by file. The clock runs
 * from spawning the client to the moment the data is in place: the client's
 * exit for sockit (the server answers only after it committed each file) and
 * scp, the receiver's exit for socat, the server's "stored" line for Python.
 * The sockit server's CPU time is read from `/proc`, the client's through
 * GNU `time` where it is installed. scp speaks OpenSSH's default SFTP
 * protocol when the sshd offers it, else the legacy protocol (`scp -O`); the
 * report says which.
 *
 * Tools that are missing are skipped with a message: `socat` (Debian/Ubuntu:
 * `apt-get install socat`), sshd and scp (`apt-get install openssh-server`),
 * `python3`.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env --allow-write \
 *   bench/upload_bench.ts [--runs N] [--size BYTES] [--tree-runs N] [--files N] \
 *   [--file-size BYTES] [--py-tree-files N] [--no-socat] [--no-ssh] [--no-python] [--out FILE]
 * ```
 *
 * `deno task bench` runs it too, after the exec benchmark.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { cpuSeconds, findPython, fromRoot, printBenchReport, Proc, withCleanup } from "./_proc.ts";
import { findProgram, type Sshd, startSshd } from "./_sshd.ts";

/** Options of {@linkcode runUploadBench}. */
export interface UploadBenchOptions {
  /** Bytes in the large file. */
  size: number;
  /** Runs per tool for the large file. */
  runs: number;
  /** Files in the tree. */
  files: number;
  /** Bytes per file of the tree. */
  fileSize: number;
  /** Runs per tool for the tree. */
  treeRuns: number;
  /** Files of the tree the Python seed sends per run (one process per file). */
  pyTreeFiles: number;
  /** Measure socat (when installed). */
  socat: boolean;
  /** Measure scp (when sshd is installed). */
  ssh: boolean;
  /** Measure the Python seed (when python3 is installed). */
  python: boolean;
}

/** The defaults: 3 runs of 1 GiB, 3 runs of 10,000 files of 4 KiB. */
export const UPLOAD_DEFAULTS: UploadBenchOptions = {
  size: 1024 ** 3,
  runs: 3,
  files: 10_000,
  fileSize: 4096,
  treeRuns: 3,
  pyTreeFiles: 50,
  socat: true,
  ssh: true,
  python: true,
};

/** What {@linkcode runUploadBench} found. */
export interface UploadBenchResult {
  /** Markdown: the tables and the targets. */
  report: string;
  /** Seconds of every measured run (and CPU seconds, see the keys), by case key. */
  samples: Record<string, number[]>;
}

/** The project's targets. */
const TARGETS = {
  /** sockit's 1 GiB throughput ≥ this times socat's. */
  vsSocat: 0.8,
  /** Stretch: ≥ this times socat's. */
  vsSocatStretch: 1.0,
  /** sockit's 1 GiB throughput ≥ this times scp's. */
  vsScp: 3,
  /** sockit's files per second ≥ this times `scp -r`'s. */
  treeVsScp: 2,
} as const;

/** Limit on one measured run; every loop is bounded by its run count. */
const RUN_TIMEOUT_MS = 240_000;
/** socat's buffer: the size the ceiling figures were taken with. */
const SOCAT_BUFFER = "262144";
/** Files per directory of the tree. */
const FILES_PER_DIR = 100;

const DENO = Deno.execPath();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Fixtures

/** Writes `size` random bytes to `path`; returns their SHA-256 (hex). */
async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const block = new Uint8Array(Math.min(size, 16 * 1024 * 1024));
  using file = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o600 });
  for (let done = 0; done < size;) {
    const n = Math.min(block.length, size - done);
    const part = block.subarray(0, n);
    // getRandomValues fills at most 65,536 bytes per call.
    for (let at = 0; at < n; at += 65_536) {
      crypto.getRandomValues(part.subarray(at, Math.min(n, at + 65_536)));
    }
    hash.update(part);
    for (let at = 0; at < n;) at += file.writeSync(part.subarray(at));
    done += n;
  }
  return hash.digest("hex");
}

/** SHA-256 (hex) of a file, read in 1 MiB steps. */
function sha256File(path: string): string {
  const hash = createHash("sha256");
  const buf = new Uint8Array(1024 * 1024);
  using file = Deno.openSync(path, { read: true });
  for (let n = file.readSync(buf); n !== null && n > 0; n = file.readSync(buf)) {
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

/** The relative names of the tree's files, in the order they were made. */
function treeNames(files: number): string[] {
  const width = String(files - 1).length;
  const dirWidth = String(Math.ceil(files / FILES_PER_DIR) - 1).length;
  return Array.from({ length: files }, (_, i) => {
    const dir = String(Math.floor(i / FILES_PER_DIR)).padStart(dirWidth, "0");
    return `d${dir}/f${String(i).padStart(width, "0")}.bin`;
  });
}

/** Makes the tree: `files` files of `size` random bytes, 100 per directory. */
async function writeTree(root: string, names: readonly string[], size: number): Promise<void> {
  await Deno.mkdir(root);
  for (const name of names) {
    const dir = `${root}/${name.slice(0, name.indexOf("/"))}`;
    await Deno.mkdir(dir, { recursive: true });
    const bytes = new Uint8Array(size);
    for (let at = 0; at < size; at += 65_536) {
      crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65_536)));
    }
    await Deno.writeFile(`${root}/${name}`, bytes, { mode: 0o644 });
  }
}

/**
 * Seconds to create the tree's files under `root` in one process: open,
 * write, close, no network and no fsync. Every tool pays at least this.
 */
async function createTreeLocally(
  root: string,
  names: readonly string[],
  size: number,
): Promise<number> {
  const bytes = new Uint8Array(size);
  return await timed(() => {
    for (const name of names) {
      Deno.mkdirSync(`${root}/${name.slice(0, name.indexOf("/"))}`, { recursive: true });
      using file = Deno.openSync(`${root}/${name}`, { write: true, createNew: true });
      for (let at = 0; at < size;) at += file.writeSync(bytes.subarray(at));
    }
    return Promise.resolve();
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Counts the regular files under `dir`, recursively. */
async function countFiles(dir: string): Promise<number> {
  let count = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile) count++;
    else if (entry.isDirectory) count += await countFiles(`${dir}/${entry.name}`);
  }
  return count;
}

/**
 * Checks a received tree file by file against the source: `received` maps a
 * source name to where the receiver put it; with `dir`, the count of files
 * under it must match too.
 */
async function verifyTree(
  source: string,
  names: readonly string[],
  received: (name: string) => string,
  dir?: string,
): Promise<void> {
  if (dir !== undefined) {
    const count = await countFiles(dir);
    if (count !== names.length) {
      throw new Error(`received ${count} files, expected ${names.length}`);
    }
  }
  for (const name of names) {
    const [a, b] = await Promise.all([
      Deno.readFile(`${source}/${name}`),
      Deno.readFile(received(name)),
    ]);
    if (!sameBytes(a, b)) throw new Error(`received ${received(name)} differs from the source`);
  }
}

function randomToken(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(24)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

async function removeIfThere(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

// ---------------------------------------------------------------------------
// Running things

interface CommandSpec {
  command: string;
  args: string[];
  env?: Record<string, string>;
}

/** Runs a command to its end (stdin empty); throws unless it exits 0. */
async function runCommand(spec: CommandSpec): Promise<void> {
  const { code, stderr } = await new Deno.Command(spec.command, {
    args: spec.args,
    cwd: fromRoot(""),
    ...(spec.env ? { env: spec.env } : {}),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
  }).output();
  if (code !== 0) {
    throw new Error(
      `${spec.command.slice(spec.command.lastIndexOf("/") + 1)} exited ${code}: ${
        decoder.decode(stderr).trim().slice(0, 300)
      }`,
    );
  }
}

/** A server process that says where it listens on its first line of stdout. */
interface Running extends AsyncDisposable {
  proc: Proc;
  address: string;
}

/** Starts `cli.ts server --upload-dir DIR` with the permissions it needs and no more. */
async function startSockit(dir: string, token: string): Promise<Running & { problems: string[] }> {
  const proc = Proc.spawn({
    name: "sockit upload server",
    command: DENO,
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-env=SOCKIT_TOKEN",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      "--allow-sys=statfs",
      fromRoot("cli.ts"),
      "server",
      "--upload-dir",
      dir,
      "--listen",
      "127.0.0.1:0",
      "--json",
    ],
    env: { SOCKIT_TOKEN: token },
  });
  try {
    const event = await proc.nextEvent("listening", 30_000);
    const problems: string[] = [];
    proc.drain((line) => {
      if (/"type":"(refused|error)"/.test(line)) problems.push(line);
    });
    return {
      proc,
      address: String(event.address),
      problems,
      [Symbol.asyncDispose]: () => proc.stop(),
    };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

/** Starts the seed-style Python upload server, storing into `dir`. */
async function startPython(python: string, dir: string): Promise<Running> {
  const proc = Proc.spawn({
    name: "Python upload server",
    command: python,
    args: [fromRoot("bench/py_upload_server.py"), dir],
  });
  try {
    const event = await proc.nextEvent("listening", 30_000);
    return { proc, address: String(event.address), [Symbol.asyncDispose]: () => proc.stop() };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

/**
 * One socat transfer: a receiver listening on a port of its choosing (it
 * logs the port, with `-d -d`, to its stdout), then the sender. Returns
 * seconds from spawning the sender to both exiting.
 */
async function socatTransfer(socat: string, source: string, target: string): Promise<number> {
  await using receiver = Proc.spawn({
    name: "socat receiver",
    command: socat,
    args: [
      "-d",
      "-d",
      "-lf",
      "/dev/stdout",
      "-u",
      "-b",
      SOCAT_BUFFER,
      "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr",
      `OPEN:${target},creat,trunc`,
    ],
  });
  let port: string | undefined;
  // socat logs a handful of lines before it listens; bounded.
  for (let i = 0; i < 20 && port === undefined; i++) {
    port = / listening on AF=2 127\.0\.0\.1:(\d+)/.exec(await receiver.nextLine(10_000))?.[1];
  }
  if (port === undefined) throw new Error("Cannot find the socat receiver's port in its log");
  receiver.drain();
  const started = performance.now();
  await using sender = Proc.spawn({
    name: "socat sender",
    command: socat,
    args: ["-u", "-b", SOCAT_BUFFER, `OPEN:${source}`, `TCP:127.0.0.1:${port}`],
  });
  const [sent, received] = await Promise.all([
    sender.wait(RUN_TIMEOUT_MS),
    receiver.wait(RUN_TIMEOUT_MS),
  ]);
  const seconds = (performance.now() - started) / 1000;
  if (!sent.success || !received.success) {
    throw new Error(`socat exited ${sent.code} (sender) and ${received.code} (receiver)`);
  }
  return seconds;
}

/** How scp reaches the throwaway sshd. */
interface Scp {
  program: string;
  /** Arguments before the paths. */
  args: string[];
  /** A note on how it was run, for the report. */
  note: string;
}

/**
 * scp arguments for the throwaway sshd. OpenSSH 9 scp speaks SFTP by
 * default, which needs an sftp subsystem in the server's config; when that
 * fails, the legacy SCP protocol (`-O`) is used and the report says so.
 */
async function scpFor(sshd: Sshd, probe: string, dir: string): Promise<Scp | { reason: string }> {
  const program = await findProgram("scp");
  if (!program) return { reason: "scp not found (Debian/Ubuntu: apt-get install openssh-client)" };
  const config = sshd.sshArgs[sshd.sshArgs.indexOf("-F") + 1]!;
  // SHLVL=1: bash then skips ~/.bashrc for the remote command (see the exec bench).
  const base = [
    "-q",
    "-F",
    config,
    "-P",
    String(sshd.port),
    "-o",
    "ControlPath=none",
    "-o",
    "SetEnv=SHLVL=1",
  ];
  const failures: string[] = [];
  for (
    const [extra, note] of [
      [[], "scp (SFTP protocol, OpenSSH's default)"],
      [["-O"], "scp -O (legacy SCP protocol: the throwaway sshd has no sftp subsystem)"],
    ] as const
  ) {
    const args = [...extra, ...base];
    try {
      await runCommand({ command: program, args: [...args, probe, `127.0.0.1:${dir}/probe`] });
      await Deno.remove(`${dir}/probe`);
      return { program, args, note };
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
    }
  }
  return { reason: `scp does not work against the throwaway sshd: ${failures.join("; ")}` };
}

// ---------------------------------------------------------------------------
// Cases

type Group = "big" | "tree";

/** One tool on one workload. */
interface Case {
  key: string;
  label: string;
  group: Group;
  /** Sends the workload under the fresh name `tag`; returns seconds. */
  run: (tag: string) => Promise<number>;
  /** Checks what the run `tag` left, after the clock stopped. */
  verify: (tag: string) => Promise<void>;
  /** Removes what the run `tag` left. */
  clean: (tag: string) => Promise<void>;
  /** Units one run moves: bytes (big) or files (tree). */
  units: number;
  /** Bytes one run moves. */
  bytes: number;
}

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

// ---------------------------------------------------------------------------
// Statistics and report

function median(values: readonly number[] | undefined): number {
  const s = (values ?? []).filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The median of a[i] / b[i]: each pair was measured in the same round. */
function medianRatio(a: readonly number[] | undefined, b: readonly number[] | undefined): number {
  if (!a || !b) return NaN;
  return median(a.map((x, i) => x / (b[i] ?? NaN)));
}

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

function grouped(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en") : "n/a";
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rule = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [line(header), line(rule), ...rows.map(line)].join("\n");
}

function sizeText(bytes: number): string {
  if (bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3} GiB`;
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function report(
  cases: readonly Case[],
  samples: Record<string, number[]>,
  failures: Map<string, string>,
  notes: string[],
  options: UploadBenchOptions,
): string {
  const rows = (group: Group) =>
    cases.filter((c) => c.group === group).map((c) => {
      const values = samples[c.key] ?? [];
      const seconds = median(values);
      const failure = failures.get(c.key);
      const runs = failure ? `failed: ${failure.slice(0, 80)}` : String(values.length);
      const mbps = c.bytes / 1e6 / seconds;
      return group === "big"
        ? [c.label, fixed(seconds, 2), grouped(mbps), runs]
        : [c.label, fixed(seconds, 2), grouped(c.units / seconds), fixed(mbps, 1), runs];
    });
  const v = (key: string) => samples[key];
  // Throughput ratios: the other tool's time over sockit's, round by round.
  const faster = (other: string, sockit: string) => medianRatio(v(other), v(sockit));
  // Python's tree run sends fewer files: compare files per second.
  const perFile = (key: string, files: number) => (v(key) ?? []).map((s) => s / files);
  const lines: string[] = [];
  const check = (what: string, value: number, goal: number) => {
    const verdict = Number.isFinite(value) ? (value >= goal ? "met" : "MISSED") : "not measured";
    lines.push(`- ${what}: ${ratio(value)} (target ≥ ${goal}): ${verdict}`);
  };
  const big = sizeText(options.size);
  check(
    `${big}: sockit CLI / socat throughput`,
    faster("big socat", "big sockit"),
    TARGETS.vsSocat,
  );
  check(
    `stretch: ${big}: sockit CLI / socat throughput`,
    faster("big socat", "big sockit"),
    TARGETS.vsSocatStretch,
  );
  check(`${big}: sockit CLI / scp throughput`, faster("big scp", "big sockit"), TARGETS.vsScp);
  check(
    `${grouped(options.files)} files: sockit CLI / \`scp -r\` files per second`,
    faster("tree scp", "tree sockit"),
    TARGETS.treeVsScp,
  );
  const context: string[] = [];
  /** Adds a line when every figure in it was measured. */
  const note = (text: string, ...values: number[]) => {
    if (values.every(Number.isFinite)) context.push(`- ${text}`);
  };
  const pyVsSockit = faster("big python", "big sockit");
  note(`${big}: sockit CLI / seed-style Python throughput: ${ratio(pyVsSockit)}`, pyVsSockit);
  const scpVsSocat = faster("big socat", "big scp");
  note(`${big}: scp / socat throughput: ${ratio(scpVsSocat)}`, scpVsSocat);
  for (const group of ["big", "tree"] as const) {
    const wall = median(v(`${group} sockit`));
    const server = median(v(`${group} sockit server cpu`));
    const client = median(v(`${group} sockit client cpu`));
    const what = group === "big" ? big : `${grouped(options.files)} files`;
    note(
      `${what}: sockit server CPU ${fixed(server, 2)} s per run` +
        (Number.isFinite(client) ? `, client CPU ${fixed(client, 2)} s` : "") +
        ` (user + system, medians), over a median wall time of ${fixed(wall, 2)} s`,
      server,
      wall,
    );
  }
  const fsync = median(v("big socat fsync"));
  note(
    `${big}: an fsync of the file socat had just written took ${fixed(fsync, 2)} s (median; ` +
      "not in socat's time, while sockit's time includes its own fsync and directory fsync)",
    fsync,
  );
  const floor = median(v("tree floor"));
  const overFloor = (key: string) => median(v(key)) / floor;
  note(
    `${grouped(options.files)} files: creating them locally in one process (open, write, close; ` +
      `no network, no fsync) took ${fixed(floor, 2)} s (median), the file system's floor for ` +
      `any tool; sockit took ${ratio(overFloor("tree sockit"))} that, scp -r ${
        ratio(overFloor("tree scp"))
      }`,
    floor,
  );
  const pyFiles = Math.min(options.pyTreeFiles, options.files);
  const treePy = medianRatio(
    perFile("tree python", pyFiles),
    perFile("tree sockit", options.files),
  );
  note(
    `tree: sockit CLI / seed-style Python (a process per file) files per second: ${ratio(treePy)}`,
    treePy,
  );
  const parts = [
    `### Upload: one ${big} file (${plural(options.runs, "run")} each, interleaved; ` +
    `each tool's output checked by SHA-256)`,
    table(["tool", "median s", "MB/s (median)", "runs"], rows("big")),
    `### Upload: ${grouped(options.files)} files of ${sizeText(options.fileSize)} in ${
      grouped(Math.ceil(options.files / FILES_PER_DIR))
    } directories (${
      plural(options.treeRuns, "run")
    } each, interleaved; each tool's output checked file by file)`,
    table(["tool", "median s", "files/s", "MB/s", "runs"], rows("tree")),
  ];
  if (notes.length > 0) parts.push(notes.map((note) => `- ${note}`).join("\n"));
  parts.push("### Upload targets (ratios are medians of per-round ratios)", lines.join("\n"));
  if (context.length > 0) parts.push("Context:", context.join("\n"));
  return parts.join("\n\n");
}

// ---------------------------------------------------------------------------

/**
 * Runs every case `runs` times, interleaved. With `deferClean`, outputs stay
 * until all runs are done: ext4 skips inodes freed in the last few minutes
 * when it allocates new ones, scanning past each, so deleting 10,000 files
 * between runs would slow down whichever tool runs next (by 5–10x per file
 * created, measured here).
 */
async function measure(
  cases: readonly Case[],
  runs: number,
  samples: Record<string, number[]>,
  failures: Map<string, string>,
  progress: (text: string) => void,
  deferClean = false,
): Promise<void> {
  const left: (() => Promise<void>)[] = [];
  try {
    for (let round = 0; round < runs; round++) {
      for (let i = 0; i < cases.length; i++) {
        // Rotate the order so that no tool always follows the same one.
        const c = cases[(i + round) % cases.length]!;
        const values = samples[c.key] ??= [];
        if (failures.has(c.key)) {
          values.push(NaN);
          continue;
        }
        const tag = `${c.group}-${round + 1}`;
        let value = NaN;
        try {
          value = await c.run(tag);
          // Checked once per tool, after the clock stopped.
          if (round === 0) await c.verify(tag);
          progress(`upload: ${c.label}, run ${round + 1} of ${runs}: ${value.toFixed(2)} s`);
        } catch (error) {
          const text = error instanceof Error ? error.message : String(error);
          failures.set(c.key, text);
          progress(`upload: ${c.label} failed: ${text}`);
          value = NaN;
        }
        values.push(value);
        const clean = () => c.clean(tag).catch(() => {});
        if (deferClean) left.push(clean);
        else await clean();
      }
    }
  } finally {
    for (const clean of left) await clean();
  }
}

/**
 * GNU `time` when it is installed and works: it reports the sockit client's
 * CPU time, which `/proc` no longer shows once the client has exited.
 */
async function findGnuTime(tmp: string): Promise<string | undefined> {
  const program = await findProgram("time");
  if (!program) return undefined;
  try {
    await runCommand({ command: program, args: ["-f", "%U %S", "-o", `${tmp}/probe.txt`, "true"] });
    return program;
  } catch {
    return undefined;
  }
}

function baseName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}

/**
 * Runs the upload benchmark.
 *
 * @param options sizes, run counts, which peers
 * @param progress called with a line of progress
 * @returns the report and every sample
 */
export async function runUploadBench(
  options: UploadBenchOptions = UPLOAD_DEFAULTS,
  progress: (text: string) => void = (text) => console.error(`bench: ${text}`),
): Promise<UploadBenchResult> {
  const samples: Record<string, number[]> = {};
  const failures = new Map<string, string>();
  const notes: string[] = [];
  const record = (key: string, value: number) => (samples[key] ??= []).push(value);
  const skip = (tool: string, reason: string) => {
    notes.push(`skipped ${tool}: ${reason}`);
    progress(`upload: ${tool} skipped: ${reason}`);
  };
  const tmp = await Deno.makeTempDir({ prefix: "sockit-upload-bench-" });
  await using _cleanup = {
    [Symbol.asyncDispose]: () => Deno.remove(tmp, { recursive: true }),
  };

  progress(`upload: writing a ${sizeText(options.size)} file of random bytes`);
  const bigFile = `${tmp}/big.bin`;
  const bigSha = await writeRandomFile(bigFile, options.size);
  const warmFile = `${tmp}/warm.bin`;
  await writeRandomFile(warmFile, 1024 * 1024);
  const verifyBig = (path: string): Promise<void> => {
    const got = sha256File(path);
    if (got !== bigSha) throw new Error(`received file's SHA-256 ${got} differs from ${bigSha}`);
    return Promise.resolve();
  };
  progress(`upload: writing ${grouped(options.files)} files of ${sizeText(options.fileSize)}`);
  const tree = `${tmp}/tree`;
  const names = treeNames(options.files);
  await writeTree(tree, names, options.fileSize);
  const treeBytes = options.files * options.fileSize;

  const recv = (tool: string) => `${tmp}/recv-${tool}`;
  for (const tool of ["sockit", "socat", "scp", "python"]) {
    await Deno.mkdir(recv(tool), { mode: 0o700 });
  }
  const gnuTime = await findGnuTime(tmp);
  const token = randomToken();
  progress("upload: starting the sockit server");
  await using sockit = await startSockit(recv("sockit"), token);
  const address = sockit.address;
  /** Runs the CLI client; records the server's CPU time and, where it can, the client's. */
  const sockitRun = async (group: Group, source: string, tag: string): Promise<number> => {
    const client = [
      DENO,
      "run",
      `--allow-net=${address}`,
      "--allow-env=SOCKIT_TOKEN",
      `--allow-read=${source}`,
      fromRoot("cli.ts"),
      "upload",
      address,
      source,
      "--to",
      tag,
    ];
    const usage = `${tmp}/client-cpu.txt`;
    const argv = gnuTime ? [gnuTime, "-f", "%U %S", "-o", usage, ...client] : client;
    const cpuBefore = await cpuSeconds(sockit.proc.pid);
    const seconds = await timed(() =>
      runCommand({ command: argv[0]!, args: argv.slice(1), env: { SOCKIT_TOKEN: token } })
    );
    record(`${group} sockit server cpu`, await cpuSeconds(sockit.proc.pid) - cpuBefore);
    if (gnuTime) {
      const [user, system] = (await Deno.readTextFile(usage)).trim().split(/\s+/).map(Number);
      record(`${group} sockit client cpu`, user! + system!);
    }
    return seconds;
  };
  const bigCases: Case[] = [{
    key: "big sockit",
    label: "sockit CLI `upload` (fresh process)",
    group: "big",
    units: options.size,
    bytes: options.size,
    run: (tag) => sockitRun("big", bigFile, tag),
    verify: (tag) => verifyBig(`${recv("sockit")}/${tag}/big.bin`),
    clean: (tag) => removeIfThere(`${recv("sockit")}/${tag}`),
  }];
  const treeCases: Case[] = [{
    key: "tree sockit",
    label: "sockit CLI `upload DIR` (one process)",
    group: "tree",
    units: options.files,
    bytes: treeBytes,
    run: (tag) => sockitRun("tree", tree, tag),
    verify: (tag) => {
      const dir = `${recv("sockit")}/${tag}/tree`;
      return verifyTree(tree, names, (name) => `${dir}/${name}`, dir);
    },
    clean: (tag) => removeIfThere(`${recv("sockit")}/${tag}`),
  }, {
    // Rotated with the tools, so it runs under the same conditions.
    key: "tree floor",
    label: "the floor: the same files created locally in one process (no network, no fsync)",
    group: "tree",
    units: options.files,
    bytes: treeBytes,
    run: (tag) => createTreeLocally(`${tmp}/floor-${tag}`, names, options.fileSize),
    verify: async (tag) => {
      const count = await countFiles(`${tmp}/floor-${tag}`);
      if (count !== names.length) throw new Error(`made ${count} files, not ${names.length}`);
    },
    clean: (tag) => removeIfThere(`${tmp}/floor-${tag}`),
  }];

  let sshd: Sshd | undefined;
  let python: Running | undefined;
  try {
    const socat = options.socat ? await findProgram("socat") : undefined;
    if (socat) {
      bigCases.push({
        key: "big socat",
        label: `\`socat -u -b ${SOCAT_BUFFER}\` file → TCP → file (the ceiling)`,
        group: "big",
        units: options.size,
        bytes: options.size,
        run: async (tag) => {
          const target = `${recv("socat")}/${tag}`;
          const seconds = await socatTransfer(socat, bigFile, target);
          // Context, not timed: what an fsync of the same bytes costs right after.
          record(
            "big socat fsync",
            await timed(async () => {
              using file = await Deno.open(target, { read: true, write: true });
              await file.sync();
            }),
          );
          return seconds;
        },
        verify: (tag) => verifyBig(`${recv("socat")}/${tag}`),
        clean: (tag) => removeIfThere(`${recv("socat")}/${tag}`),
      });
    } else {
      skip("socat", options.socat ? "socat not found (apt-get install socat)" : "--no-socat");
    }

    if (options.ssh) {
      progress("upload: starting a throwaway sshd");
      const dir = `${tmp}/sshd`;
      await Deno.mkdir(dir);
      let scp: Scp | { reason: string };
      try {
        const started = await startSshd(dir);
        if ("reason" in started) scp = started;
        else {
          sshd = started;
          scp = await scpFor(sshd, warmFile, recv("scp"));
        }
      } catch (error) {
        scp = { reason: `cannot start sshd: ${error instanceof Error ? error.message : error}` };
      }
      if ("reason" in scp) skip("scp", scp.reason);
      else {
        const { program, args, note } = scp;
        notes.push(`scp: ${note}, default cipher, no compression`);
        const copy = (more: string[]) =>
          timed(() => runCommand({ command: program, args: [...args, ...more] }));
        bigCases.push({
          key: "big scp",
          label: "`scp` to a throwaway sshd",
          group: "big",
          units: options.size,
          bytes: options.size,
          run: (tag) => copy([bigFile, `127.0.0.1:${recv("scp")}/${tag}`]),
          verify: (tag) => verifyBig(`${recv("scp")}/${tag}`),
          clean: (tag) => removeIfThere(`${recv("scp")}/${tag}`),
        });
        treeCases.push({
          key: "tree scp",
          label: "`scp -r` to a throwaway sshd",
          group: "tree",
          units: options.files,
          bytes: treeBytes,
          run: (tag) => copy(["-r", tree, `127.0.0.1:${recv("scp")}/${tag}`]),
          verify: (tag) => {
            const dir = `${recv("scp")}/${tag}`;
            return verifyTree(tree, names, (name) => `${dir}/${name}`, dir);
          },
          clean: (tag) => removeIfThere(`${recv("scp")}/${tag}`),
        });
      }
    } else {
      skip("scp", "--no-ssh");
    }

    const py = options.python ? await findPython() : undefined;
    if (py) {
      progress("upload: starting the Python upload server");
      python = await startPython(py, recv("python"));
      const server = python;
      const [host, port] = server.address.split(":") as [string, string];
      /** One file through the seed's client; done when the server has stored it. */
      const send = async (path: string, name: string, size: number): Promise<void> => {
        const [stored] = await Promise.all([
          server.proc.nextEvent("stored", RUN_TIMEOUT_MS),
          runCommand({
            command: py,
            args: [fromRoot("bench/py_upload_client.py"), host, port, path, name],
          }),
        ]);
        if (stored.name !== name || stored.bytes !== size) {
          throw new Error(`the server stored ${stored.bytes} bytes of ${stored.name}`);
        }
      };
      // The seed's client sends one file per process and its server keeps
      // base names only (the tree's names are unique).
      const sample = names.slice(0, Math.min(options.pyTreeFiles, names.length));
      const flat = (tag: string, name: string) => `${recv("python")}/${tag}-${baseName(name)}`;
      bigCases.push({
        key: "big python",
        label: "seed-style Python (`recv(1024)`)",
        group: "big",
        units: options.size,
        bytes: options.size,
        run: (tag) => timed(() => send(bigFile, tag, options.size)),
        verify: (tag) => verifyBig(`${recv("python")}/${tag}`),
        clean: (tag) => removeIfThere(`${recv("python")}/${tag}`),
      });
      treeCases.push({
        key: "tree python",
        label: `seed-style Python, a client process per file (first ${
          grouped(sample.length)
        } files)`,
        group: "tree",
        units: sample.length,
        bytes: sample.length * options.fileSize,
        run: (tag) =>
          timed(async () => {
            for (const name of sample) {
              await send(`${tree}/${name}`, baseName(flat(tag, name)), options.fileSize);
            }
          }),
        verify: (tag) => verifyTree(tree, sample, (name) => flat(tag, name)),
        clean: async (tag) => {
          for (const name of sample) await removeIfThere(flat(tag, name));
        },
      });
    } else {
      skip("Python", options.python ? "python3 not found" : "--no-python");
    }

    // One unrecorded sockit upload of 1 MiB: module and code caches. (The
    // scp probe above did the same for ssh.)
    progress("upload: warm-up");
    await sockitRun("big", warmFile, "warm").catch((error) =>
      progress(`upload: warm-up failed: ${error instanceof Error ? error.message : error}`)
    );
    await removeIfThere(`${recv("sockit")}/warm`);
    for (const key of ["big sockit server cpu", "big sockit client cpu"]) delete samples[key];

    progress(`upload: ${bigCases.length} tools, ${options.runs} runs of ${sizeText(options.size)}`);
    await measure(bigCases, options.runs, samples, failures, progress);
    progress(
      `upload: ${treeCases.length} tools, ${options.treeRuns} runs of ${
        grouped(options.files)
      } files`,
    );
    await measure(treeCases, options.treeRuns, samples, failures, progress, true);
  } finally {
    await python?.[Symbol.asyncDispose]();
    await sshd?.[Symbol.asyncDispose]();
  }
  if (sockit.problems.length > 0) {
    progress(
      `upload: the sockit server reported ${sockit.problems.length} problems, first: ${
        sockit.problems[0]
      }`,
    );
  }
  return {
    report: report([...bigCases, ...treeCases], samples, failures, notes, options),
    samples,
  };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: String(UPLOAD_DEFAULTS.runs) },
      size: { type: "string", default: String(UPLOAD_DEFAULTS.size) },
      "tree-runs": { type: "string", default: String(UPLOAD_DEFAULTS.treeRuns) },
      files: { type: "string", default: String(UPLOAD_DEFAULTS.files) },
      "file-size": { type: "string", default: String(UPLOAD_DEFAULTS.fileSize) },
      "py-tree-files": { type: "string", default: String(UPLOAD_DEFAULTS.pyTreeFiles) },
      "no-socat": { type: "boolean", default: false },
      "no-ssh": { type: "boolean", default: false },
      "no-python": { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const options: UploadBenchOptions = {
    runs: Number(values.runs),
    size: Number(values.size),
    treeRuns: Number(values["tree-runs"]),
    files: Number(values.files),
    fileSize: Number(values["file-size"]),
    pyTreeFiles: Number(values["py-tree-files"]),
    socat: !values["no-socat"],
    ssh: !values["no-ssh"],
    python: !values["no-python"],
  };
  for (const [name, value] of Object.entries(options)) {
    if (typeof value === "number" && (!Number.isSafeInteger(value) || value < 1)) {
      throw new RangeError(`Cannot use --${name} "${value}": expected a positive integer`);
    }
  }
  await printBenchReport("upload", () => runUploadBench(options), values.out);
}

if (import.meta.main) {
  await withCleanup(() => main(Deno.args));
}
