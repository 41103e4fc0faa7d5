/**
 * A `deno lint` plugin with one rule, `sockit/function-length`: a function,
 * method or arrow function longer than {@linkcode MAX_FUNCTION_LINES} lines
 * (from its first line, the method name or `function` keyword, to its
 * closing brace) is reported unless a `// long: <reason>` comment sits in
 * the comment lines right above it. The style guide's rule is "split a long
 * function along the state it owns"; the comment is for a function that
 * reads better whole, and says why.
 *
 * `deno.json` switches the rule on for `deno lint`, limited to the library
 * (`lib/`) and `cli.ts`; `tests/function_length_test.ts` runs it on the same
 * files with `Deno.lint.runPlugin` and lists every offender as
 * `file:line name (N lines)`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The longest a function may be, in lines, without a `// long:` comment. */
export const MAX_FUNCTION_LINES = 80;

/** The rule's id as `deno lint` reports it. */
export const FUNCTION_LENGTH_RULE = "sockit/function-length";

/** The repository's root: this file lives in `tools/`. */
const ROOT = fileURLToPath(new URL("..", import.meta.url)).replaceAll("\\", "/");

/** Where the rule applies: the library and the CLI entry point. */
function inScope(filename: string): boolean {
  const path = filename.replaceAll("\\", "/");
  if (!path.startsWith(ROOT)) return false;
  const relative = path.slice(ROOT.length);
  return relative === "cli.ts" || /^lib\/.*\.ts$/.test(relative);
}

/** The nodes the rule measures. */
type FunctionNode =
  | Deno.lint.FunctionDeclaration
  | Deno.lint.FunctionExpression
  | Deno.lint.ArrowFunctionExpression;

/** The node that stands for a function and carries its name and comments. */
function owner(node: FunctionNode): Deno.lint.Node {
  const parent = node.parent;
  switch (parent?.type) {
    case "MethodDefinition":
    case "Property":
    case "PropertyDefinition":
      return parent;
    case "VariableDeclarator":
      return parent.parent;
    default:
      return node;
  }
}

/** A readable name: the declared name, the key it is bound to, or `<anonymous>`. */
function nameOf(node: FunctionNode, text: string): string {
  const parent = node.parent;
  if (node.type === "FunctionDeclaration" && node.id) return node.id.name;
  if (
    parent?.type === "MethodDefinition" || parent?.type === "Property" ||
    parent?.type === "PropertyDefinition"
  ) {
    const key = parent.key;
    const name = text.slice(key.range[0], key.range[1]);
    if (parent.type === "MethodDefinition" && parent.kind === "constructor") return name;
    if (parent.type === "MethodDefinition" && parent.kind !== "method") {
      return `${parent.kind} ${name}`;
    }
    return name;
  }
  if (parent?.type === "VariableDeclarator" && parent.id.type === "Identifier") {
    return parent.id.name;
  }
  return "<anonymous>";
}

/** 1-based line numbers for offsets in a text. */
class Lines {
  readonly #starts: number[] = [0];
  readonly #lines: string[];
  constructor(text: string) {
    this.#lines = text.split("\n");
    for (let i = 0, at = 0; i < this.#lines.length - 1; i++) {
      at += this.#lines[i]!.length + 1;
      this.#starts.push(at);
    }
  }
  /** The line an offset falls on. */
  lineOf(offset: number): number {
    let low = 0;
    let high = this.#starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.#starts[mid]! <= offset) low = mid;
      else high = mid - 1;
    }
    return low + 1;
  }
  /** Whether the comment lines right above `line` hold a `// long: <reason>`. */
  excused(line: number): boolean {
    for (let i = line - 2; i >= 0; i--) {
      const text = this.#lines[i]!.trim();
      if (!/^(\/\/|\/\*|\*)/.test(text)) return false;
      if (/^\/\/\s*long:\s*\S/.test(text)) return true;
    }
    return false;
  }
}

/** The plugin: one rule, `function-length`. */
const plugin: Deno.lint.Plugin = {
  name: "sockit",
  rules: {
    "function-length": {
      create(context) {
        if (!inScope(context.filename)) return {};
        const text = context.sourceCode.text;
        const lines = new Lines(text);
        function check(node: FunctionNode): void {
          const anchor = owner(node);
          const first = lines.lineOf(anchor.range[0]);
          const length = lines.lineOf(node.range[1]) - first + 1;
          if (length <= MAX_FUNCTION_LINES || lines.excused(first)) return;
          context.report({
            node: anchor,
            message: `${nameOf(node, text)} (${length} lines)`,
            hint: `Longer than ${MAX_FUNCTION_LINES} lines: split it along the state it owns, ` +
              "or say why it stays whole in a `// long: <reason>` comment right above it",
          });
        }
        return {
          FunctionDeclaration: check,
          FunctionExpression: check,
          ArrowFunctionExpression: check,
        };
      },
    },
  },
};

export default plugin;
