/**
 * The README is executable documentation: every `sh` block is a transcript
 * run against real servers and clients (see `tests/_transcript.ts`), with
 * `sockit` standing for `deno run` with exactly the compiled binary's flags,
 * and `jsr:@sockit/sockit/cli` for this checkout's `cli.ts` (what JSR
 * publishes), each with the permission flags the README shows.
 */

import { deepEqual, equal, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { BINARY_FLAGS } from "../tools/binary_flags.ts";
import { type Block, matches, parseBlocks, runBlock, type StepResult } from "./_transcript.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = `${ROOT}cli.ts`;
/** A whole block's limit: its servers start, its clients run, its servers stop. */
const BLOCK_MS = 120_000;

Deno.test("a transcript block parses into commands, expected output and exit codes", () => {
  const [block] = parseBlocks([
    "```sh",
    "$ sockit server &",
    "$ echo hi | sockit client 127.0.0.1:7070 \\",
    "    --json",
    "...",
    "ok …",
    "$ false",
    "[1]",
    "```",
  ].join("\n"));
  deepEqual(block, {
    line: 1,
    ignored: false,
    steps: [
      { command: "sockit server &", background: true, expected: [], code: 0 },
      {
        command: "echo hi | sockit client 127.0.0.1:7070 \\\n    --json",
        background: false,
        expected: ["...", "ok …"],
        code: 0,
      },
      { command: "false", background: false, expected: [], code: 1 },
    ],
  });
});

Deno.test("a shell block must say whether it runs", async (t) => {
  await t.step("sh ignore is shown only", () => {
    deepEqual(parseBlocks("```sh ignore\nsockit server\n```"), [
      { line: 1, ignored: true, steps: [] },
    ]);
  });
  for (const fence of ["bash", "console", "sh skip"]) {
    await t.step(`"${fence}" is refused`, () => {
      throws(() => parseBlocks("```" + fence + "\n$ true\n```"), SyntaxError);
    });
  }
  await t.step("a run block without a $ line is refused", () => {
    throws(() => parseBlocks("```sh\nsockit server\n```"), /output before the first/);
    throws(() => parseBlocks("```sh\n\n```"), /needs "\$ " commands/);
  });
});

Deno.test("expected output: lines exactly, ... for any lines, … for any text", () => {
  equal(matches(["a", "b"], ["a", "b"]), true);
  equal(matches(["a", "b"], ["a", "b", "c"]), false);
  equal(matches(["a"], ["a "]), false);
  equal(matches(["...", "end"], ["x", "y", "end"]), true);
  equal(matches(["...", "end"], ["end"]), true);
  equal(matches(["...", "end"], ["end", "more"]), false);
  equal(matches(["took … ms (…)"], ["took 1.2 ms (x)"]), true);
  equal(matches(["took … ms"], ["took 1.2 s"]), false);
  equal(matches(["a.c"], ["abc"]), false);
});

const readme = await Deno.readTextFile(`${ROOT}README.md`);
const blocks = parseBlocks(readme);

Deno.test("the README has runnable blocks, and few shown only", () => {
  const run = blocks.filter((b) => !b.ignored).length;
  const ignored = blocks.filter((b) => b.ignored).length;
  equal(run >= 8, true, `only ${run} blocks are run`);
  equal(ignored <= 3, true, `${ignored} blocks are not run`);
});

let env: Record<string, string> | undefined;
/** What every command of a block gets: Deno's cache, no colours, no prompts. */
async function blockEnv(): Promise<Record<string, string>> {
  if (env) return env;
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const { denoDir } = JSON.parse(new TextDecoder().decode(stdout));
  env = {
    DENO_DIR: denoDir,
    NO_COLOR: "1",
    DENO_NO_PROMPT: "1",
    DENO_NO_UPDATE_CHECK: "1",
    RUST_BACKTRACE: "0",
    LANG: "C.UTF-8",
  };
  return env;
}

function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

function describeFailure(block: Block, result: StepResult): string {
  return [
    `README.md block at line ${block.line}: $ ${result.step.command}`,
    `expected exit ${result.step.code}, got ${result.code}`,
    "expected stdout:",
    ...result.step.expected.map((l) => `  | ${l}`),
    "actual stdout:",
    ...result.stdout.replace(/\n$/, "").split("\n").map((l) => `  | ${l}`),
    "stderr:",
    ...result.stderr.replace(/\n$/, "").split("\n").map((l) => `  | ${l}`),
  ].join("\n");
}

for (const block of blocks.filter((b) => !b.ignored)) {
  const first = block.steps[0]!.command.split("\n")[0]!;
  Deno.test(`README.md line ${block.line} runs as shown: $ ${first}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "sockit-readme-" });
    try {
      const results = await runBlock(block, {
        dir,
        port: freePort(),
        sockit: [Deno.execPath(), "run", ...BINARY_FLAGS, CLI],
        cli: CLI,
        checkout: ROOT.replace(/\/$/, ""),
        env: await blockEnv(),
        signal: AbortSignal.timeout(BLOCK_MS),
      });
      for (const result of results) {
        const stdout = result.stdout.replace(/\n$/, "");
        const actual = stdout === "" ? [] : stdout.split("\n");
        if (result.code !== result.step.code || !matches(result.step.expected, actual)) {
          throw new Error(describeFailure(block, result));
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("no permission flag in README.md or docs/ puts ~ after = (it would grant nothing)", async () => {
  const found: string[] = [];
  const files = ["README.md", "SECURITY.md"];
  for await (const entry of Deno.readDir(`${ROOT}docs`)) {
    if (entry.isFile && entry.name.endsWith(".md")) files.push(`docs/${entry.name}`);
  }
  for (const file of files) {
    const lines = (await Deno.readTextFile(`${ROOT}${file}`)).split("\n");
    lines.forEach((line, i) => {
      if (/--allow-[a-z]+=~/.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  deepEqual(found, []);
});

Deno.test("every row of a Markdown table in docs/guide.md starts and ends with |", async () => {
  const lines = (await Deno.readTextFile(`${ROOT}docs/guide.md`)).split("\n");
  const broken: string[] = [];
  lines.forEach((line, i) => {
    const inTable = lines[i - 1]?.startsWith("|") && lines[i + 1]?.startsWith("|");
    if (line.startsWith("|") && !line.trimEnd().endsWith("|")) broken.push(`${i + 1}: ${line}`);
    if (inTable && line !== "" && !line.startsWith("|")) broken.push(`${i + 1}: ${line}`);
  });
  deepEqual(broken, []);
});
