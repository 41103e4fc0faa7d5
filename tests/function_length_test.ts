/**
 * Functions stay short (see the style guide): every function, method and
 * arrow function in the library (`lib/`) and `cli.ts` is at most
 * {@linkcode MAX_FUNCTION_LINES} lines long, or says why it stays whole in a
 * `// long: <reason>` comment right above it. Deno's own parser reads the
 * files, through the `sockit/function-length` lint rule
 * (`tools/function_length_plugin.ts`), which `deno lint` runs as well.
 */

import { deepEqual } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import plugin, {
  FUNCTION_LENGTH_RULE,
  MAX_FUNCTION_LINES,
} from "../tools/function_length_plugin.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Every `.ts` file below `dir`, as absolute paths. */
async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await tsFiles(path));
    else if (entry.isFile && entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** The rule's findings in one source, as `file:line name (N lines)`. */
function longFunctions(path: string, source: string, shown = path): string[] {
  return Deno.lint.runPlugin(plugin, path, source)
    .filter((d) => d.id === FUNCTION_LENGTH_RULE)
    .map((d) => `${shown}:${source.slice(0, d.range[0]).split("\n").length} ${d.message}`);
}

/** A function declaration of exactly `lines` lines, named `name`. */
function functionOf(name: string, lines: number): string {
  return `function ${name}(): void {\n${"  work();\n".repeat(lines - 2)}}\n`;
}

Deno.test(`no function in lib/ or cli.ts is longer than ${MAX_FUNCTION_LINES} lines unexplained`, async () => {
  const files = [`${ROOT}cli.ts`, ...await tsFiles(`${ROOT}lib`)].sort();
  const found: string[] = [];
  for (const path of files) {
    found.push(...longFunctions(path, await Deno.readTextFile(path), path.slice(ROOT.length)));
  }
  deepEqual(
    found,
    [],
    `functions longer than ${MAX_FUNCTION_LINES} lines: split them along the state they own, ` +
      `or put a "// long: <reason>" comment right above them:\n${found.join("\n")}`,
  );
});

Deno.test("the function-length rule reports what is too long and nothing else", async (t) => {
  const path = `${ROOT}lib/example.ts`;
  const at = (source: string) => longFunctions(path, source, "lib/example.ts");
  const limit = MAX_FUNCTION_LINES;

  await t.step("a function of exactly the limit passes", () => {
    deepEqual(at(functionOf("fits", limit)), []);
  });
  await t.step("one line more is reported with its name, line and length", () => {
    deepEqual(at(`// one\n${functionOf("tooLong", limit + 1)}`), [
      `lib/example.ts:2 tooLong (${limit + 1} lines)`,
    ]);
  });
  await t.step("a // long: comment with a reason right above excuses it", () => {
    deepEqual(at(`/** Docs. */\n// long: a table\n${functionOf("table", limit + 1)}`), []);
  });
  await t.step("a // long: comment without a reason, or further up, does not", () => {
    deepEqual(at(`// long:\n${functionOf("bare", limit + 1)}`).length, 1);
    deepEqual(at(`// long: a table\n\n${functionOf("apart", limit + 1)}`).length, 1);
  });
  await t.step("methods, accessors, constructors and arrow functions count too", () => {
    const body = "    work();\n".repeat(limit - 2);
    const source = `class C {\n  run(): void {\n${body}  }\n` +
      `  get size(): number {\n${body}    return 0;\n  }\n` +
      `  constructor() {\n${body}    work();\n  }\n}\n` +
      `export const go = async () => {\n${body}  work();\n};\n` +
      `run(function () {\n${body}  work();\n});\n`;
    deepEqual(at(source), [
      `lib/example.ts:${limit + 2} get size (${limit + 1} lines)`,
      `lib/example.ts:${2 * limit + 3} constructor (${limit + 1} lines)`,
      `lib/example.ts:${3 * limit + 5} go (${limit + 1} lines)`,
      `lib/example.ts:${4 * limit + 6} <anonymous> (${limit + 1} lines)`,
    ]);
  });
  await t.step("files outside lib/ and cli.ts are not checked", () => {
    deepEqual(longFunctions(`${ROOT}tests/example_test.ts`, functionOf("test", limit + 1)), []);
  });
});
