/**
 * `sockit upload` with the habits of scp users: `.` and `dir/.` send a
 * directory's contents, any name a POSIX file system holds is accepted
 * unless the server asks for portable names, and the free-space reserve is
 * the server's `--min-free`. Real CLI processes over loopback, each with the
 * permission flags it needs.
 */

import { deepEqual, match } from "node:assert/strict";
import { NET, sockit, startEventServer } from "../_cli.ts";

type Event = Record<string, unknown>;

/** A fresh HOME (for the generated token), an upload directory and a source directory. */
async function dirs(): Promise<AsyncDisposable & { home: string; up: string; src: string }> {
  const home = await Deno.makeTempDir({ prefix: "sockit-home-" });
  const up = await Deno.makeTempDir({ prefix: "sockit-up-" });
  const src = await Deno.makeTempDir({ prefix: "sockit-src-" });
  await Deno.chmod(up, 0o755);
  return {
    home,
    up,
    src,
    [Symbol.asyncDispose]: async () => {
      for (const dir of [home, up, src]) await Deno.remove(dir, { recursive: true });
    },
  };
}

function startUploadServer(
  d: { home: string; up: string },
  args: readonly string[] = [],
  options: { statfs?: boolean } = {},
) {
  const config = `${d.home}/.config/sockit`;
  return startEventServer(
    [
      ...NET,
      "--allow-env=HOME",
      `--allow-read=${d.up},${config}/token`,
      `--allow-write=${d.up},${config}`,
      ...(options.statfs ?? true ? ["--allow-sys=statfs"] : []),
    ],
    ["--listen", "127.0.0.1:0", "--upload-dir", d.up, ...args],
    { clearEnv: true, env: { HOME: d.home } },
  );
}

/** `sockit upload --json ADDRESS ARGS` run in `cwd`, with its NDJSON events. */
async function upload(
  d: { home: string; src: string },
  address: string,
  args: readonly string[],
  cwd = d.src,
) {
  const result = await sockit(
    [...NET, "--allow-env=HOME", `--allow-read=${d.src},${d.home}/.config/sockit/token`],
    ["upload", "--json", address, ...args],
    { clearEnv: true, env: { HOME: d.home }, cwd },
  );
  const events = result.stdout.split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l) as Event
  );
  const files = Object.fromEntries(
    events.filter((e) => e.event === "file").map((e) => [e.name as string, e]),
  );
  return { ...result, files };
}

/** Every path under `dir`, relative, directories with a trailing `/`, sorted. */
async function listing(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    if (entry.name === ".sockit-partial") continue;
    const name = `${prefix}${entry.name}`;
    if (entry.isDirectory) out.push(`${name}/`, ...await listing(dir, `${name}/`));
    else out.push(name);
  }
  return out.sort();
}

Deno.test("sockit upload . and dir/. send the directory's contents, as scp -r . does", async (t) => {
  await using d = await dirs();
  await using server = await startUploadServer(d);
  await Deno.mkdir(`${d.src}/tree/sub`, { recursive: true });
  await Deno.writeTextFile(`${d.src}/tree/a.txt`, "a\n");
  await Deno.writeTextFile(`${d.src}/tree/sub/b.txt`, "b\n");

  await t.step(". in the directory itself", async () => {
    const result = await upload(d, server.address, [".", "--to", "dot"], `${d.src}/tree`);
    deepEqual(result.code, 0, result.stderr);
    deepEqual(await listing(d.up), ["dot/", "dot/a.txt", "dot/sub/", "dot/sub/b.txt"]);
  });
  await t.step("dir/. and dir/ from its parent", async () => {
    const result = await upload(d, server.address, ["tree/.", "--to", "contents"]);
    deepEqual(result.code, 0, result.stderr);
    deepEqual(
      (await listing(d.up)).filter((p) => p.startsWith("contents")),
      ["contents/", "contents/a.txt", "contents/sub/", "contents/sub/b.txt"],
    );
  });
  await t.step("./x is x", async () => {
    const result = await upload(d, server.address, ["./tree/a.txt", "./tree/sub", "--to", "x"]);
    deepEqual(result.code, 0, result.stderr);
    deepEqual(
      (await listing(d.up)).filter((p) => p.startsWith("x")),
      ["x/", "x/a.txt", "x/sub/", "x/sub/b.txt"],
    );
  });
});

const LINUX_NAMES = [
  "aux.c",
  "Screenshot 2026-12-06 at 12.30.00.png",
  "what?.txt",
  "trailing dot.",
];

Deno.test("names Linux allows are accepted; --portable-names refuses what Windows cannot hold", async (t) => {
  await using d = await dirs();
  for (const name of LINUX_NAMES) await Deno.writeTextFile(`${d.src}/${name}`, name);

  await t.step("by default every name arrives", async () => {
    await using server = await startUploadServer(d);
    const result = await upload(d, server.address, [...LINUX_NAMES, "--to", "linux"]);
    deepEqual(result.code, 0, result.stderr);
    for (const name of LINUX_NAMES) {
      deepEqual(result.files[`linux/${name}`]?.status, "committed", name);
      deepEqual(await Deno.readTextFile(`${d.up}/linux/${name}`), name);
    }
  });
  await t.step("with --portable-names the server refuses three, with the rule", async () => {
    await using server = await startUploadServer(d, ["--portable-names"]);
    const result = await upload(d, server.address, [...LINUX_NAMES, "--to", "win"]);
    deepEqual(result.code, 1, result.stderr);
    deepEqual(result.files["win/Screenshot 2026-12-06 at 12.30.00.png"]?.status, "committed");
    const refused: Record<string, RegExp> = {
      "aux.c": /Windows device name \(not portable to Windows\)/,
      "what?.txt": /contains one of : \* \? " < > \| \(not portable to Windows\)/,
      "trailing dot.": /ends in a dot or space \(not portable to Windows\)/,
    };
    for (const [name, reason] of Object.entries(refused)) {
      const event = result.files[`win/${name}`];
      deepEqual([event?.status, event?.code], ["failed", "bad_name"], name);
      match(String(event?.message), reason);
    }
    deepEqual(await listing(d.up).then((l) => l.filter((p) => p.startsWith("win"))), [
      "win/",
      "win/Screenshot 2026-12-06 at 12.30.00.png",
    ]);
  });
});

Deno.test("sockit server --min-free sets the free-space reserve uploads must leave", async (t) => {
  await using d = await dirs();
  await Deno.writeTextFile(`${d.src}/small.txt`, "small\n");

  await t.step("a reserve larger than any disk refuses even one byte, saying so", async () => {
    await using server = await startUploadServer(d, ["--min-free", "1000000GiB"]);
    const result = await upload(d, server.address, ["small.txt"]);
    deepEqual(result.code, 1, result.stderr);
    deepEqual(result.files["small.txt"]?.code, "disk_full");
    match(String(result.files["small.txt"]?.message), /would leave less than \d+ bytes free/);
  });
  await t.step("99.9% of the disk is refused the same way", async () => {
    await using server = await startUploadServer(d, ["--min-free", "99.9%"]);
    const result = await upload(d, server.address, ["small.txt", "--to", "pct"]);
    deepEqual(result.files["pct/small.txt"]?.code, "disk_full", result.stdout);
  });
  await t.step("0 turns the check off: no --allow-sys=statfs needed, no warning", async () => {
    await using server = await startUploadServer(d, ["--min-free", "0"], { statfs: false });
    const result = await upload(d, server.address, ["small.txt", "--to", "zero"]);
    deepEqual(result.code, 0, result.stderr);
    deepEqual(await Deno.readTextFile(`${d.up}/zero/small.txt`), "small\n");
    const stopped = await server.stop();
    deepEqual(stopped.stderr.includes("no free-space check"), false, stopped.stderr);
  });
  await t.step("bad values are usage errors", async () => {
    for (const args of [["--min-free", "100%"], ["--min-free", "lots"]]) {
      const result = await sockit([], ["server", "--upload-dir", d.up, ...args]);
      deepEqual(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      match(result.stderr, /--min-free/);
    }
    const orphan = await sockit([], ["server", "--min-free", "1GiB"]);
    deepEqual(orphan.code, 2, orphan.stderr);
    match(orphan.stderr, /--min-free needs --upload-dir/);
  });
});
