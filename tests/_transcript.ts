/**
 * Executable documentation: the shell blocks of a Markdown file are
 * transcripts, run against real processes and compared with what they show.
 *
 * A block fenced as `sh` is a transcript:
 *
 * - `$ COMMAND` is run by `bash` (a line ending in `\` continues on the next);
 *   the lines up to the next `$` are its expected standard output, exactly;
 *   a line `...` stands for any lines (none too), `…` inside a line for any
 *   text; a last line `[N]` says the command exits with N (else 0 is
 *   required). Standard error is not compared, but shown when a step fails.
 * - `$ COMMAND &` starts a server, or another long-running client, in the
 *   background: the run goes on once it prints a line with `listening` on
 *   either stream or any line on standard output (at most
 *   {@linkcode READY_MS}). When the block ends, each such job is given time
 *   to print as many lines as the transcript shows for it, then stopped as
 *   Ctrl-C stops it (SIGINT to its process group); its output and exit code
 *   are compared like any other step's.
 * - All the commands of a block run in one shell, so variables and `cd`
 *   carry over, in a fresh copy of the checkout (without `.git` and build
 *   output: what a block writes stays there), with a fresh `HOME`, and with
 *   `sockit`, `deno` and `npx -y deno@VERSION` on `PATH` (see
 *   {@linkcode runBlock}).
 *
 * A block fenced as `sh ignore` is an illustration, not run (a command for
 * another machine, say); any other shell fence (`bash`, `shell`, `console`)
 * is an error, so no block escapes by its spelling.
 *
 * @module
 */

/** One command of a transcript and what it must print. */
export interface Step {
  /** The command as `sh` runs it. */
  readonly command: string;
  /** Whether it ends with `&`: a server started in the background. */
  readonly background: boolean;
  /** The expected standard output, line by line (`...` and `…` wildcards). */
  readonly expected: readonly string[];
  /** The expected exit code. */
  readonly code: number;
}

/** A fenced shell block of a Markdown file. */
export interface Block {
  /** The line of its opening fence, counted from 1. */
  readonly line: number;
  /** Whether it is fenced `sh ignore`: shown, not run. */
  readonly ignored: boolean;
  /** Its steps, for a block that is run. */
  readonly steps: readonly Step[];
}

const SHELL_FENCES = new Set(["sh", "bash", "shell", "console", "zsh"]);

/**
 * The shell blocks of `markdown`, in order.
 *
 * @throws {SyntaxError} for a shell fence other than `sh`/`sh ignore`, a
 *   block that is run but has no `$` line, or output before the first `$`
 */
export function parseBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(\S*)\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang, rest] = open;
    const end = lines.findIndex((l, j) => j > i && l.trim() === fence);
    if (end < 0) throw new SyntaxError(`line ${i + 1}: the ${fence} fence is never closed`);
    const body = lines.slice(i + 1, end).map((l) =>
      l.startsWith(indent!) ? l.slice(indent!.length) : l
    );
    if (SHELL_FENCES.has(lang!)) {
      if (lang !== "sh" || (rest !== "" && rest !== "ignore")) {
        throw new SyntaxError(
          `line ${i + 1}: shell blocks are fenced "sh" (run) or "sh ignore" (shown only), ` +
            `not "${`${lang} ${rest}`.trim()}"`,
        );
      }
      const ignored = rest === "ignore";
      blocks.push({ line: i + 1, ignored, steps: ignored ? [] : parseSteps(body, i + 2) });
    }
    i = end;
  }
  return blocks;
}

function parseSteps(body: string[], first: number): Step[] {
  const steps: { command: string; expected: string[]; line: number }[] = [];
  for (let i = 0; i < body.length; i++) {
    const line = body[i]!;
    if (line.startsWith("$ ")) {
      let command = line.slice(2);
      while (command.endsWith("\\") && i + 1 < body.length) command += "\n" + body[++i];
      steps.push({ command, expected: [], line: first + i });
    } else if (steps.length === 0) {
      if (line.trim() === "") continue;
      throw new SyntaxError(`line ${first + i}: output before the first "$ " command`);
    } else {
      steps.at(-1)!.expected.push(line);
    }
  }
  if (steps.length === 0) {
    throw new SyntaxError(`line ${first - 1}: a block fenced "sh" needs "$ " commands`);
  }
  return steps.map(({ command, expected }) => {
    while (expected.at(-1)?.trim() === "") expected.pop();
    const last = /^\[(\d+)\]$/.exec(expected.at(-1) ?? "");
    if (last) expected.pop();
    const background = /\s&\s*(#.*)?$/.test(command);
    return { command, background, expected, code: last ? Number(last[1]) : 0 };
  });
}

/**
 * Whether `actual` (standard output, split into lines) is what `expected`
 * shows: equal line by line, where a line `...` matches any run of lines
 * and `…` within a line any text.
 */
export function matches(expected: readonly string[], actual: readonly string[]): boolean {
  const line = (pattern: string, text: string) =>
    pattern.includes("…")
      ? new RegExp(
        `^${pattern.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`,
      ).test(text)
      : pattern === text;
  const from = (e: number, a: number): boolean => {
    if (e === expected.length) return a === actual.length;
    if (expected[e] === "...") {
      for (let k = a; k <= actual.length; k++) if (from(e + 1, k)) return true;
      return false;
    }
    return a < actual.length && line(expected[e]!, actual[a]!) && from(e + 1, a + 1);
  };
  return from(0, 0);
}

/** How long a background server may take to print its `listening` line. */
export const READY_MS = 20_000;

/** Where and how {@linkcode runBlock} runs a block. */
export interface RunOptions {
  /** An empty directory: the block's working directory and `HOME` go here. */
  readonly dir: string;
  /** Replaces every `:7070` so that blocks can run side by side. */
  readonly port: number;
  /** The command line `sockit` stands for, such as `[deno, "run", …, "cli.ts"]`. */
  readonly sockit: readonly string[];
  /** What `jsr:@sockit/sockit/cli` stands for: the local `cli.ts`. */
  readonly cli: string;
  /** The checkout the working directory is a copy of. */
  readonly checkout: string;
  /** Environment variables every command gets (`DENO_DIR`, say). */
  readonly env: Record<string, string>;
  /** Ends the run: every process is killed. */
  readonly signal: AbortSignal;
}

/** What one step of a block did. */
export interface StepResult {
  readonly step: Step;
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

/**
 * Runs one block's steps in one `sh`, then stops its background servers.
 * Returns each step's output and exit code (a background server's once
 * it has stopped), or throws when the shell failed or a server never said
 * it was listening.
 */
export async function runBlock(block: Block, options: RunOptions): Promise<StepResult[]> {
  const { dir, port } = options;
  const bin = `${dir}/bin`, home = `${dir}/home`, work = `${dir}/work`, out = `${dir}/out`;
  for (const d of [bin, home, work, out]) await Deno.mkdir(d, { recursive: true });
  await copyCheckout(options.checkout, work);
  const deno = Deno.execPath();
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  await script(`${bin}/sockit`, `exec ${options.sockit.map(quote).join(" ")} "$@"`);
  await Deno.symlink(deno, `${bin}/deno`);
  await script(
    `${bin}/npx`,
    `[ "$1" = -y ] && [ "$2" = deno@${Deno.version.deno} ] || ` +
      `{ echo "npx: this test has only deno@${Deno.version.deno}, not $*" >&2; exit 127; }\n` +
      `shift 2; exec ${quote(deno)} "$@"`,
  );
  const local = (text: string) =>
    text.replaceAll(":7070", `:${port}`).replaceAll("jsr:@sockit/sockit/cli", quote(options.cli));
  const lines = [
    // Job control: each background job is a process group, stopped as Ctrl-C stops it.
    "set -um",
    `cd ${quote(work)}`,
    "pids=''",
    `trap 'for p in $pids; do kill -INT -- "-$p" 2>/dev/null; done' EXIT`,
    ...block.steps.flatMap((step, n) => {
      const f = `${quote(out)}/${n}`;
      if (!step.background) {
        return [`{ ${local(step.command)}\n} >${f}.out 2>${f}.err </dev/null; echo $? >${f}.code`];
      }
      const command = local(step.command).replace(/\s&\s*(#.*)?$/, "");
      return [
        `{ ${command}\n} >${f}.out 2>${f}.err </dev/null &`,
        `pid=$!; pids="$pids $pid"; echo "$pid" >${f}.pid`,
        // Ready once it says it is listening, or prints its first line of output.
        `i=0; until grep -qs listening ${f}.out ${f}.err || [ -s ${f}.out ]; do`,
        `  i=$((i + 1)); if [ "$i" -gt ${READY_MS / 50} ] || ! kill -0 "$pid" 2>/dev/null; then`,
        `    echo "step ${n}: not ready: no 'listening' line and no output; its stderr:" >&2`,
        `    cat ${f}.err >&2; exit 99; fi`,
        "  sleep 0.05; done",
      ];
    }),
    // Stop the background jobs, newest first, once each has printed as many
    // lines as the transcript shows for it; keep their exit codes.
    ...block.steps.map((step, n) => ({ step, n })).filter(({ step }) => step.background)
      .reverse().flatMap(({ step, n }) => {
        const f = `${quote(out)}/${n}`;
        const want = step.expected.filter((l) => l !== "...").length;
        return [
          `i=0; while [ "$(wc -l <${f}.out)" -lt ${want} ] && [ "$i" -lt ${READY_MS / 50} ]; do`,
          "  i=$((i + 1)); sleep 0.05; done",
          `pid=$(cat ${f}.pid); kill -INT -- "-$pid"; wait "$pid"; echo $? >${f}.code`,
        ];
      }),
    "pids=''",
  ];
  const child = new Deno.Command("bash", {
    args: ["-c", lines.join("\n")],
    clearEnv: true,
    env: { ...options.env, HOME: home, PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const abort = () => {
    try {
      child.kill("SIGKILL");
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // already exited
    }
  };
  options.signal.addEventListener("abort", abort, { once: true });
  let status;
  try {
    status = await child.output();
  } finally {
    options.signal.removeEventListener("abort", abort);
    await killLeftovers(block, out);
  }
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  if (options.signal.aborted) {
    throw new Error(`the block at line ${block.line} did not finish in time`);
  }
  if (!status.success) {
    throw new Error(
      `the shell running the block at line ${block.line} failed (${status.code}): ` +
        text(status.stderr).trim(),
    );
  }
  return await Promise.all(block.steps.map(async (step, n) => {
    const read = (ext: string) => Deno.readTextFile(`${out}/${n}.${ext}`);
    const [stdout, stderr, code] = await Promise.all([read("out"), read("err"), read("code")]);
    return {
      step,
      stdout: stdout.replaceAll(`:${port}`, ":7070"),
      stderr: stderr.replaceAll(`:${port}`, ":7070"),
      code: Number(code.trim()),
    };
  }));
}

/** Kills background servers a failed or aborted run left behind. */
async function killLeftovers(block: Block, out: string): Promise<void> {
  for (const [n, step] of block.steps.entries()) {
    if (!step.background) continue;
    let pid;
    try {
      pid = Number((await Deno.readTextFile(`${out}/${n}.pid`)).trim());
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // never started
      throw error;
    }
    try {
      Deno.kill(-pid, "SIGKILL"); // its process group
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error; // already gone
    }
  }
}

/** Copies the checkout's files into `to`, leaving out `.git` and build output. */
async function copyCheckout(from: string, to: string): Promise<void> {
  for await (const entry of Deno.readDir(from)) {
    if ([".git", "dist", "node_modules", ".bench-tmp"].includes(entry.name)) continue;
    const source = `${from}/${entry.name}`, target = `${to}/${entry.name}`;
    if (entry.isDirectory) {
      await Deno.mkdir(target);
      await copyCheckout(source, target);
    } else if (entry.isFile) {
      await Deno.copyFile(source, target);
    }
  }
}

async function script(path: string, body: string): Promise<void> {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}
