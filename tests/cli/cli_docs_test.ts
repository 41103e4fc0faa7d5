import { deepEqual, ok } from "node:assert/strict";
import { sockit } from "../_cli.ts";

const DOCS = new URL("../../docs/cli.md", import.meta.url);

/**
 * The sections of a Markdown page: each `## ` heading with the first fenced
 * block under it (a fence at the start of a line, so blocks nested in lists
 * are not taken).
 */
function sections(markdown: string): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
  for (const part of markdown.split(/^## /m).slice(1)) {
    const heading = part.slice(0, part.indexOf("\n"));
    found.set(heading, part.match(/^```text\n([\s\S]*?)^```$/m)?.[1]);
  }
  return found;
}

Deno.test("docs/cli.md shows each command's help exactly, under a heading per command", async (t) => {
  const docs = sections(await Deno.readTextFile(DOCS));
  const overview = await sockit([], ["help"]);
  deepEqual(overview.code, 0, overview.stderr);
  // The commands are the ones the overview sends to "sockit help COMMAND".
  const list = overview.stdout.match(/"sockit help COMMAND" \(([^)]+)\)/)?.[1];
  ok(list, overview.stdout);
  const commands = list.split(", ");
  ok(["server", "client", "exec", "upload", "completions"].every((c) => commands.includes(c)));
  for (const command of ["", ...commands]) {
    const heading = `\`sockit${command ? ` ${command}` : ""}\``;
    await t.step(heading, async () => {
      const help = command ? await sockit([], ["help", command]) : overview;
      deepEqual(help.code, 0, help.stderr);
      ok(docs.has(heading), `docs/cli.md has no "## ${heading}" section`);
      deepEqual(
        docs.get(heading),
        help.stdout,
        `the first \`\`\`text block under "## ${heading}" differs from "sockit help ${command}"`,
      );
    });
  }
});
