#!/usr/bin/env -S deno run --allow-run --allow-read --allow-write --allow-env
/**
 * Where `sockit`'s start-up time goes: the wall time of `deno run` of a stub
 * that only imports one module (a `node:` built-in, one file of `lib/`,
 * `mod.ts` or `cli.ts`), minus that of a stub importing nothing. Each figure
 * includes the module's own imports, so the costs overlap and do not add up;
 * a module whose figure is near 0 is cheap however much it imports.
 *
 * Also measured: `cli.ts --version` as it runs (warm caches), with
 * `--no-code-cache`, with `--check` (type-checked, with its cache warm), and
 * with an empty `DENO_DIR` (nothing transpiled or cached yet).
 *
 * The cases are interleaved, N rounds (15 by default); medians and 90th
 * percentiles in ms. The stubs live in a temporary directory; every run has
 * the repository root as its working directory, so the project's
 * `deno.json` applies to all alike.
 *
 * ```sh
 * deno run --allow-run --allow-read --allow-write --allow-env bench/startup_profile.ts [--runs N]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fromRoot } from "./_proc.ts";

const DENO = Deno.execPath();
const RUN_TIMEOUT_MS = 60_000;

interface Case {
  label: string;
  args: string[];
  /** Runs with an empty DENO_DIR of its own each time. */
  coldCache?: boolean;
}

async function timeRun(c: Case, tmp: string): Promise<number> {
  let denoDir: string | undefined;
  if (c.coldCache) denoDir = await Deno.makeTempDir({ dir: tmp, prefix: "deno-dir-" });
  try {
    const started = performance.now();
    const { code, stderr } = await new Deno.Command(DENO, {
      args: c.args,
      cwd: fromRoot(""),
      ...(denoDir ? { env: { DENO_DIR: denoDir } } : {}),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
    }).output();
    const ms = performance.now() - started;
    if (code !== 0) {
      throw new Error(`${c.label}: exit ${code}: ${new TextDecoder().decode(stderr).trim()}`);
    }
    return ms;
  } finally {
    if (denoDir) await Deno.remove(denoDir, { recursive: true });
  }
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function p90(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.ceil(0.9 * s.length) - 1]!;
}

/** The `node:` built-ins the library and the command line import. */
async function nodeImports(files: string[]): Promise<string[]> {
  const found = new Set<string>();
  for (const file of files) {
    const text = await Deno.readTextFile(fromRoot(file));
    // Import statements only, not the `node:assert` of doc examples in comments.
    for (const match of text.matchAll(/^import [^;]*? from "(node:[a-z_/]+)";/gms)) {
      found.add(match[1]!);
    }
  }
  return [...found].sort();
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { runs: { type: "string", default: "15" } } });
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new RangeError("--runs: a positive integer");

  const tmp = await Deno.makeTempDir({ prefix: "sockit-startup-" });
  try {
    const libFiles: string[] = [];
    for await (const entry of Deno.readDir(fromRoot("lib"))) {
      if (entry.isFile && entry.name.endsWith(".ts")) libFiles.push(`lib/${entry.name}`);
    }
    libFiles.sort();
    const modules = [
      ...await nodeImports(["cli.ts", ...libFiles]),
      ...libFiles,
      "mod.ts",
      "cli.ts",
    ];
    const stub = async (name: string, body: string) => {
      const path = `${tmp}/${name}.ts`;
      await Deno.writeTextFile(path, body);
      return path;
    };
    const empty = await stub("empty", "export {};\n");
    const cases: Case[] = [{ label: "(nothing imported)", args: ["run", empty] }];
    for (const [i, module] of modules.entries()) {
      const specifier = module.startsWith("node:")
        ? module
        : new URL(fromRoot(module), "file:").href;
      cases.push({
        label: `import ${module}`,
        args: ["run", await stub(`stub${i}`, `import ${JSON.stringify(specifier)};\n`)],
      });
    }
    const cli = fromRoot("cli.ts");
    cases.push(
      { label: "cli.ts --version", args: ["run", cli, "--version"] },
      {
        label: "cli.ts --version, --no-code-cache",
        args: ["run", "--no-code-cache", cli, "--version"],
      },
      {
        label: "cli.ts --version, --check (cache warm)",
        args: ["run", "--check", cli, "--version"],
      },
      {
        label: "cli.ts --version, empty DENO_DIR",
        args: ["run", cli, "--version"],
        coldCache: true,
      },
    );

    // Warm every cache once, then interleave the rounds.
    for (const c of cases) await timeRun(c, tmp);
    const samples = new Map<Case, number[]>(cases.map((c) => [c, []]));
    for (let round = 0; round < runs; round++) {
      console.error(`startup: round ${round + 1} of ${runs}`);
      for (let i = 0; i < cases.length; i++) {
        const c = cases[(i + round) % cases.length]!;
        samples.get(c)!.push(await timeRun(c, tmp));
      }
    }

    const base = median(samples.get(cases[0]!)!);
    const rows = cases.map((c) => {
      const values = samples.get(c)!;
      const m = median(values);
      return `| ${c.label} | ${m.toFixed(1)} | ${p90(values).toFixed(1)} | ${
        c === cases[0] ? "" : `${m - base >= 0 ? "+" : ""}${(m - base).toFixed(1)}`
      } |`;
    });
    console.log(
      [
        `## sockit start-up profile, ${new Date().toISOString().slice(0, 10)}`,
        "",
        `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs; ${runs} rounds. ` +
        "Wall time of `deno run` per case, ms; the last column is the median over the stub that " +
        "imports nothing.",
        "",
        "| case | median | p90 | over nothing |",
        "| --- | ---: | ---: | ---: |",
        ...rows,
      ].join("\n"),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
