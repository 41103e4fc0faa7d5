/**
 * The published surface: every entry point of `deno.json`'s `exports` loads
 * on its own, each subpath loads only what its part needs (the codec, alone,
 * no npm package and no file outside `lib/frame/`), no entry point but
 * `./cli` reaches the CLI's modules, and the root keeps protocol internals
 * out.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import denoConfig from "../deno.json" with { type: "json" };

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface ModuleGraph {
  /** The repository's own modules the entry loads, relative to the root. */
  local: string[];
  /** The npm packages it loads, as `name@version`. */
  npm: string[];
}

async function moduleGraph(entry: string): Promise<ModuleGraph> {
  const { stdout, success, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`deno info ${entry} failed: ${new TextDecoder().decode(stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string; kind?: string; npmPackage?: string }[];
    npmPackages?: Record<string, { dependencies?: string[] }>;
  };
  const local = info.modules.map((m) => m.specifier).filter((s) => s.startsWith("file://"))
    .map((s) => fileURLToPath(s).slice(ROOT.length)).sort();
  // `npmPackages` lists every package resolved for the workspace; what this
  // entry loads is the closure of the packages its own modules import.
  const npm = new Set<string>();
  const visit = (pkg: string) => {
    if (npm.has(pkg)) return;
    npm.add(pkg);
    for (const dep of info.npmPackages?.[pkg]?.dependencies ?? []) visit(dep);
  };
  for (const m of info.modules) if (m.npmPackage !== undefined) visit(m.npmPackage);
  return { local, npm: [...npm].sort() };
}

const EXPORTS = Object.entries(denoConfig.exports as Record<string, string>);

Deno.test("deno.json exports the root, the CLI and one subpath per part", () => {
  deepEqual(EXPORTS.map(([name]) => name).sort(), [
    ".",
    "./cli",
    "./client",
    "./exec",
    "./frame",
    "./permissions",
    "./server",
    "./tls",
    "./udp",
    "./upload",
  ]);
});

Deno.test("@sockit/sockit/frame loads its own two files and nothing else", async () => {
  const { local, npm } = await moduleGraph("lib/frame/mod.ts");
  deepEqual(npm, [], "npm packages loaded by the codec");
  deepEqual(local, ["lib/frame/frame.ts", "lib/frame/frame_io.ts", "lib/frame/mod.ts"]);
});

Deno.test("no entry point but ./cli loads lib/cli/ or a file outside lib/", async (t) => {
  for (const [name, path] of EXPORTS) {
    if (name === "./cli") continue;
    await t.step(name, async () => {
      const { local } = await moduleGraph(path);
      deepEqual(local.filter((m) => m.startsWith("lib/cli/")), []);
      deepEqual(local.filter((m) => !m.startsWith("lib/") && m !== "mod.ts"), []);
    });
  }
});

Deno.test("the client subpath loads no X.509 stack (certificates are made by servers)", async () => {
  const { npm } = await moduleGraph("lib/client/mod.ts");
  deepEqual(npm.filter((p) => p.startsWith("@peculiar/")), []);
});

Deno.test("every entry point imports on its own and exports what its module doc names", async (t) => {
  const expected: Record<string, string[]> = {
    ".": ["serve", "connect", "echoService", "exec", "upload", "FrameReader", "encodeFrame"],
    "./frame": ["FrameReader", "FrameWriter", "encodeFrame", "FrameDecoderStream"],
    "./server": ["serve", "Server", "echoService", "ChatRoom", "AccessList"],
    "./client": ["connect", "echoLines", "chatLines", "relay"],
    "./exec": ["exec", "execService"],
    "./upload": ["upload", "uploadService"],
    "./udp": ["serveUdp", "ping"],
    "./tls": ["connectTls", "checkKnownHost", "certificateFingerprint", "ensureTlsIdentity"],
    "./permissions": ["missingPermissions", "requirePermissions", "revokeExcept"],
  };
  for (const [name, path] of EXPORTS) {
    if (name === "./cli") continue;
    await t.step(name, async () => {
      const module = await import(new URL(`../${path.slice(2)}`, import.meta.url).href);
      for (const symbol of expected[name] ?? []) {
        ok(symbol in module, `${name} exports ${symbol}`);
      }
    });
  }
});

Deno.test("the root keeps protocol internals and CLI helpers out", async () => {
  const root = await import("../mod.ts");
  const names = Object.keys(root);
  ok(names.length <= 40, `mod.ts exports ${names.length} values (35 today, plus types)`);
  for (
    const internal of [
      "typeByte",
      "toProtocolError",
      "acceptHandshake",
      "parseHello",
      "resolveMaxFrameLength",
      "PARTIAL_DIR",
      "ProgressBar",
      "suggest",
    ]
  ) {
    equal(internal in root, false, `${internal} is not exported`);
  }
});
