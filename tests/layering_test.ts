/**
 * The library's layers, checked on the import graph Deno itself resolves
 * (`deno info --json`), static and dynamic imports alike:
 *
 * - `lib/frame/` (the codec) imports nothing outside itself — no other part,
 *   no npm package, no `node:` module — and uses no `Deno.*`;
 * - client code never imports server-side modules;
 * - a service (`echo/`, `chat/`, `exec/`, `upload/`) never imports another;
 * - the server core (`lib/server/` but `serve.ts`, which adds the default
 *   services, and `mod.ts`) imports no concrete service;
 * - nothing in the library imports `lib/cli/`;
 * - no library error message names a command-line flag (the CLI adds flags
 *   when it prints an error).
 */

import { deepEqual, equal } from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LIB = `${ROOT}lib/`;

interface Graph {
  /** Each local module under lib/ (relative to the repository) and what it imports. */
  edges: Map<string, string[]>;
}

async function graph(entries: string[]): Promise<Graph> {
  const edges = new Map<string, string[]>();
  for (const entry of entries) {
    const { stdout, success, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!success) throw new Error(`deno info ${entry} failed: ${new TextDecoder().decode(stderr)}`);
    const info = JSON.parse(new TextDecoder().decode(stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
      }[];
    };
    for (const module of info.modules) {
      const from = local(module.specifier);
      if (from === undefined || edges.has(from)) continue;
      const to = (module.dependencies ?? []).flatMap((d) =>
        [d.code?.specifier, d.type?.specifier].filter((s): s is string => s !== undefined)
      ).map((s) => local(s) ?? s);
      edges.set(from, [...new Set(to)]);
    }
  }
  return { edges };
}

/** `lib/x/y.ts` for a module of this repository, undefined for anything else. */
function local(specifier: string): string | undefined {
  if (!specifier.startsWith("file://")) return undefined;
  const path = fileURLToPath(specifier);
  return path.startsWith(ROOT) ? path.slice(ROOT.length) : undefined;
}

const folder = (module: string) => /^lib\/([^/]+)\//.exec(module)?.[1];
const SERVICES = new Set(["echo", "chat", "exec", "upload"]);
/** Server-side modules: the server, and each service's serving half. */
function serverSide(module: string): boolean {
  return module.startsWith("lib/server/") || module === "lib/echo/echo.ts" ||
    module === "lib/chat/chat.ts" ||
    /^lib\/(exec|upload)\/(\w+_service|upload_store|process_group)\.ts$/.test(module) ||
    module === "lib/udp/udp_server.ts" || module === "lib/tls/tls_certificate.ts";
}
/** Client-side modules: the client, and each part's connecting half. */
function clientSide(module: string): boolean {
  return module.startsWith("lib/client/") ||
    /^lib\/(exec\/exec|exec\/exec_stdio|upload\/upload|udp\/udp_client|udp\/udp_lines|tls\/tls_client)\.ts$/
      .test(module);
}

async function libModules(): Promise<string[]> {
  const out: string[] = [];
  for await (const part of Deno.readDir(LIB)) {
    if (!part.isDirectory) continue;
    for await (const file of Deno.readDir(`${LIB}${part.name}`)) {
      if (file.name.endsWith(".ts")) out.push(`lib/${part.name}/${file.name}`);
    }
  }
  return out.sort();
}

const entries = ["mod.ts", "cli.ts", ...await libModules()];
const { edges } = await graph(entries);

function violations(check: (from: string, to: string) => boolean): string[] {
  const found: string[] = [];
  for (const [from, tos] of edges) {
    if (!from.startsWith("lib/")) continue;
    for (const to of tos) if (check(from, to)) found.push(`${from} -> ${to}`);
  }
  return found.sort();
}

Deno.test("the graph covers every library module", async () => {
  const missing = (await libModules()).filter((m) => !edges.has(m));
  deepEqual(missing, []);
});

Deno.test("the codec imports nothing outside lib/frame/ and uses no Deno API", async () => {
  deepEqual(violations((from, to) => folder(from) === "frame" && folder(to) !== "frame"), []);
  for (const module of edges.keys()) {
    if (folder(module) !== "frame") continue;
    const code = (await Deno.readTextFile(`${ROOT}${module}`))
      .replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    equal(/\bDeno\./.test(code), false, `${module} uses Deno.*`);
  }
});

Deno.test("client code imports no server-side module", () => {
  deepEqual(violations((from, to) => clientSide(from) && serverSide(to)), []);
});

Deno.test("a service imports no other service", () => {
  deepEqual(
    violations((from, to) => {
      const a = folder(from), b = folder(to);
      return a !== b && SERVICES.has(a ?? "") && SERVICES.has(b ?? "");
    }),
    [],
  );
});

Deno.test("the server core imports no concrete service", () => {
  deepEqual(
    violations((from, to) =>
      folder(from) === "server" && from !== "lib/server/serve.ts" &&
      from !== "lib/server/mod.ts" && SERVICES.has(folder(to) ?? "")
    ),
    [],
  );
});

Deno.test("nothing in the library imports lib/cli/", () => {
  deepEqual(violations((from, to) => folder(from) !== "cli" && folder(to) === "cli"), []);
});

Deno.test("library error messages name no command-line flag", async () => {
  // A string or template literal holding --flag-name: an error message or hint
  // written for the command line. Doc comments and examples are left out.
  const found: string[] = [];
  for (const module of edges.keys()) {
    if (!module.startsWith("lib/") || folder(module) === "cli") continue;
    // permissions/ names Deno's own flags (--allow-net=…): that is its subject.
    if (folder(module) === "permissions") continue;
    const code = (await Deno.readTextFile(`${ROOT}${module}`))
      .replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const [, , literal] of code.matchAll(/(["'`])((?:\\.|(?!\1)[^\\])*)\1/g)) {
      const flag = /(?:^|[\s(,])--[a-z][a-z-]+/.exec(literal ?? "");
      if (flag && !/--(allow|unstable|deny)-/.test(flag[0])) {
        found.push(`${module}: "${literal}"`);
      }
    }
  }
  deepEqual(found, [], `library messages that name a flag:\n${found.join("\n")}`);
});
