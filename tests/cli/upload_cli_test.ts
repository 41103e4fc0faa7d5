/**
 * End-to-end tests of `sockit upload` and `sockit server --upload-dir`: real
 * CLI processes (each with exactly the permission flags it needs) over real
 * loopback sockets, and the faults that matter for a file transfer: a client
 * or a server killed mid-file, a wrong token, a full disk, two clients
 * racing for one name. The library-level behaviour is tested in
 * upload_test.ts and upload_store_test.ts; this file does not repeat it.
 *
 * Every child runs in a cleared environment with a temporary HOME, so the
 * zero-config token lands in HOME/.config/sockit/token and nothing of the
 * test runner's environment (SOCKIT_TOKEN, XDG_CONFIG_HOME) leaks in.
 *
 * The permission flags below are the minimal sets: the server needs
 * `--allow-env=HOME` (only to find the token file; XDG_CONFIG_HOME and
 * SOCKIT_TOKEN are used when granted, never required), read access to the
 * upload directory and the token file, write access to the upload directory
 * and the token's directory, and `--allow-sys=statfs` for the free-space
 * check (without it the server warns and skips the check). The client needs
 * `--allow-env=HOME` and read access to the paths it uploads and the token.
 */

import { deepEqual, match, notDeepEqual, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type EventServer,
  kill,
  NET,
  type Result,
  sockit,
  spawnCli,
  startEventServer,
} from "../_cli.ts";
import { startServer } from "../_utils.ts";
import { upload, uploadService, UploadStore } from "../_lib.ts";

/** A token no generated one equals (generated ones are 43 characters). */
const OTHER_TOKEN = "upload-cli-test-wrong-token-0123";

type Event = Record<string, unknown>;

/** Where the zero-config token of a server or client with this HOME lives. */
function tokenDir(home: string): string {
  return `${home}/.config/sockit`;
}

/** The minimal flags of `server --upload-dir DIR` with this HOME (token generated on first use). */
function serverFlags(home: string, dir: string, options: { statfs?: boolean } = {}): string[] {
  return [
    ...NET,
    "--allow-env=HOME",
    `--allow-read=${dir},${tokenDir(home)}/token`,
    `--allow-write=${dir},${tokenDir(home)}`,
    ...(options.statfs ?? true ? ["--allow-sys=statfs"] : []),
  ];
}

/** The minimal flags of `sockit upload PATHS` that finds the token of a server with this HOME. */
function clientFlags(home: string, paths: readonly string[]): string[] {
  return [
    ...NET,
    "--allow-env=HOME",
    `--allow-read=${[...paths, `${tokenDir(home)}/token`].join(",")}`,
  ];
}

function sha256(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** SHA-256 of a file, read in pieces (some are hundreds of megabytes). */
async function sha256File(path: string): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const hash = createHash("sha256");
  const buf = new Uint8Array(1 << 20);
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * Writes `mib` MiB of data in which every MiB differs (random bytes plus
 * the MiB's number), and returns its SHA-256.
 */
async function writeBigFile(path: string, mib: number, seed = 0): Promise<string> {
  const chunk = new Uint8Array(1 << 20);
  for (let at = 0; at < chunk.length; at += 65536) {
    crypto.getRandomValues(chunk.subarray(at, at + 65536));
  }
  const view = new DataView(chunk.buffer);
  const hash = createHash("sha256");
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let i = 0; i < mib; i++) {
    view.setUint32(0, i);
    view.setUint32(4, seed);
    hash.update(chunk);
    for (let at = 0; at < chunk.length;) at += await file.write(chunk.subarray(at));
  }
  return hash.digest("hex");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Every entry under `dir` (the partial area excluded), by relative name; directories end in `/`. */
async function listing(dir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (prefix === "" && entry.name === ".sockit-partial") continue;
    const name = prefix + entry.name;
    names.push(entry.isDirectory ? `${name}/` : entry.isSymlink ? `${name}@` : name);
    if (entry.isDirectory) names.push(...await listing(`${dir}/${entry.name}`, `${name}/`));
  }
  return names.sort();
}

/** The partial files of an upload directory, with their sizes. */
async function partials(dir: string): Promise<{ name: string; size: number }[]> {
  const found = [];
  for await (const entry of Deno.readDir(`${dir}/.sockit-partial`)) {
    const info = await Deno.lstat(`${dir}/.sockit-partial/${entry.name}`).catch(() => undefined);
    if (info) found.push({ name: entry.name, size: info.size });
  }
  return found;
}

/**
 * Polls `probe` every `interval` ms until it returns a value other than
 * `undefined`, for `ms` at most.
 *
 * @throws {Error} naming `what` when time runs out
 */
async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms: number,
  interval = 20,
): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Parses NDJSON output, every line of it; it must end in a newline. */
function ndjson(text: string): Event[] {
  ok(text.endsWith("\n"), `output does not end in a newline: ${JSON.stringify(text)}`);
  return text.slice(0, -1).split("\n").map((line) => JSON.parse(line));
}

/** The `file` events of `upload --json` output, by remote name, and its summary. */
function report(result: Result): { files: Record<string, Event>; summary: Event } {
  const events = ndjson(result.stdout);
  const summaries = events.filter((e) => e.event === "summary");
  deepEqual(summaries.length, 1, result.stdout);
  deepEqual(events.at(-1), summaries[0], "the summary is the last line");
  const files = Object.fromEntries(
    events.filter((e) => e.event === "file").map((e) => [String(e.name), e]),
  );
  return { files, summary: summaries[0]! };
}

/** The lines of a child's stderr. */
function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/**
 * Starts `sockit server --json --listen 127.0.0.1:0 ARGS` in a cleared
 * environment and waits (10 s at most) for its `listening` event.
 */
function startServerCli(
  permissions: readonly string[],
  args: readonly string[],
  env: Record<string, string>,
): Promise<EventServer> {
  return startEventServer(permissions, ["--listen", "127.0.0.1:0", ...args], {
    clearEnv: true,
    env,
  });
}

/** A temporary directory, removed (recursively) on disposal. */
async function tempDir(prefix: string): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A fresh HOME and an upload directory (mode 0755) for one server. */
async function serverDirs(): Promise<AsyncDisposable & { home: string; dir: string }> {
  const home = await tempDir("sockit-home-");
  const dir = await tempDir("sockit-uploads-");
  await Deno.chmod(dir.path, 0o755);
  return {
    home: home.path,
    dir: dir.path,
    [Symbol.asyncDispose]: async () => {
      await home[Symbol.asyncDispose]();
      await dir[Symbol.asyncDispose]();
    },
  };
}

/** A modification time in milliseconds since the epoch. */
function mtimeOf(info: Deno.FileInfo): number {
  return info.mtime!.getTime();
}

Deno.test("sockit upload with zero configuration: scp -r tree, --json, exists and --overwrite", async (t) => {
  await using dirs = await serverDirs();
  await using src = await tempDir("sockit-src-");
  await using outside = await tempDir("sockit-outside-");
  const { home, dir } = dirs;
  const env = { HOME: home };
  await using server = await startServerCli(serverFlags(home, dir), ["--upload-dir", dir], env);

  // The local tree: a file beside a directory with a nested directory, an
  // empty one, and a symbolic link to a directory outside the tree.
  const s = src.path;
  await Deno.mkdir(`${s}/dir/nested`, { recursive: true });
  await Deno.mkdir(`${s}/dir/empty`);
  await Deno.writeTextFile(`${outside.path}/secret.txt`, "never uploaded");
  await Deno.symlink(outside.path, `${s}/dir/link`);
  const contents: Record<string, Uint8Array> = {
    "f.txt": new TextEncoder().encode("hello, upload\n"),
    "dir/script.sh": new TextEncoder().encode("#!/bin/sh\necho hi\n"),
    "dir/nested/deep.bin": crypto.getRandomValues(new Uint8Array(60_000 + 17)),
  };
  for (const [name, bytes] of Object.entries(contents)) await Deno.writeFile(`${s}/${name}`, bytes);
  const modes: Record<string, number> = {
    "f.txt": 0o640,
    "dir/script.sh": 0o751,
    "dir/nested/deep.bin": 0o604,
    "dir/nested": 0o710,
    "dir/empty": 0o705,
    "dir": 0o750,
  };
  // Distinct times with milliseconds, set children first (an entry created
  // in a directory changes its time).
  const mtimes: Record<string, number> = {};
  Object.keys(modes).forEach((name, i) => mtimes[name] = 1_600_000_000_000 + i * 86_400_000 + 123);
  for (const name of Object.keys(modes)) {
    await Deno.chmod(`${s}/${name}`, modes[name]!);
    await Deno.utime(`${s}/${name}`, new Date(mtimes[name]!), new Date(mtimes[name]!));
  }
  const paths = [`${s}/f.txt`, `${s}/dir`];
  const run = (args: string[], readable: readonly string[] = paths) =>
    sockit(clientFlags(home, readable), ["upload", server.address, ...args], {
      clearEnv: true,
      env,
    });
  const skippedLink = /^sockit: skipped .*\/dir\/link: .*\(symlink\)$/m;

  await t.step("the server generated HOME/.config/sockit/token (mode 0600)", async () => {
    const info = await Deno.stat(`${tokenDir(home)}/token`);
    deepEqual(info.mode! & 0o777, 0o600);
    deepEqual((await Deno.stat(tokenDir(home))).mode! & 0o777, 0o700);
  });

  await t.step("a file and a tree arrive like scp -rp, quietly; the link is skipped", async () => {
    const result = await run([...paths, "--to", "sub"]);
    deepEqual(result.code, 0, result.stderr);
    deepEqual(result.stdout, "");
    deepEqual(lines(result.stderr).length, 1, result.stderr);
    match(result.stderr, skippedLink);
    deepEqual(await listing(dir), [
      "sub/",
      "sub/dir/",
      "sub/dir/empty/",
      "sub/dir/nested/",
      "sub/dir/nested/deep.bin",
      "sub/dir/script.sh",
      "sub/f.txt",
    ]);
    for (const [name, bytes] of Object.entries(contents)) {
      deepEqual(await sha256File(`${dir}/sub/${name}`), sha256(bytes), name);
    }
    for (const name of Object.keys(modes)) {
      const info = await Deno.stat(`${dir}/sub/${name}`);
      deepEqual((info.mode! & 0o7777).toString(8), modes[name]!.toString(8), `mode of ${name}`);
      deepEqual(mtimeOf(info), mtimes[name], `mtime of ${name}`);
    }
    deepEqual(await partials(dir), [], "nothing left in the partial area");
  });

  await t.step("--no-preserve leaves modes and times to the server", async () => {
    const before = Date.now() - 2000;
    const result = await run([...paths, "--to", "plain", "--no-preserve"]);
    deepEqual(result.code, 0, result.stderr);
    deepEqual(result.stdout, "");
    for (const name of Object.keys(modes)) {
      const info = await Deno.stat(`${dir}/plain/${name}`);
      notDeepEqual(info.mode! & 0o7777, modes[name], `mode of ${name}`);
      ok(mtimeOf(info) >= before, `mtime of ${name}: ${info.mtime?.toISOString()}`);
    }
    for (const [name, bytes] of Object.entries(contents)) {
      deepEqual(await sha256File(`${dir}/plain/${name}`), sha256(bytes), name);
    }
  });

  await t.step("--json: NDJSON progress, one line per entry, a summary last", async () => {
    const result = await run([...paths, "--to", "json", "--json"]);
    deepEqual(result.code, 0, result.stderr);
    match(result.stderr, skippedLink);
    const events = ndjson(result.stdout);
    for (const event of events) {
      ok(["progress", "file", "summary"].includes(String(event.event)), JSON.stringify(event));
    }
    const progress = events.filter((e) => e.event === "progress");
    ok(progress.length >= Object.keys(contents).length, result.stdout);
    for (const p of progress) {
      for (const field of ["done", "size", "totalDone", "totalSize"]) {
        ok(Number.isSafeInteger(p[field]), `${field} in ${JSON.stringify(p)}`);
      }
      ok((p.done as number) <= (p.size as number), JSON.stringify(p));
      ok((p.totalDone as number) <= (p.totalSize as number), JSON.stringify(p));
    }
    const { files, summary } = report(result);
    deepEqual(Object.keys(files).sort(), [
      "json/dir",
      "json/dir/empty",
      "json/dir/link",
      "json/dir/nested",
      "json/dir/nested/deep.bin",
      "json/dir/script.sh",
      "json/f.txt",
    ]);
    for (const [name, bytes] of Object.entries(contents)) {
      const file = files[`json/${name}`]!;
      deepEqual([file.type, file.status, file.sha256], ["file", "committed", sha256(bytes)], name);
      deepEqual(await sha256File(`${dir}/json/${name}`), sha256(bytes), name);
    }
    deepEqual([files["json/dir/empty"]!.type, files["json/dir/empty"]!.status], [
      "dir",
      "committed",
    ]);
    deepEqual([files["json/dir/link"]!.status, files["json/dir/link"]!.code], [
      "skipped",
      "symlink",
    ]);
    const bytes = Object.values(contents).reduce((n, b) => n + b.length, 0);
    deepEqual(
      [summary.committed, summary.failed, summary.skipped, summary.bytesSent, summary.bytesResumed],
      [6, 0, 1, bytes, 0],
    );
    ok(Number.isSafeInteger(summary.duration), JSON.stringify(summary));
  });

  await t.step(
    "an existing file fails with exists and stays; --overwrite replaces it",
    async () => {
      const old = await sha256File(`${dir}/sub/f.txt`);
      await Deno.writeTextFile(`${s}/f.txt`, "changed locally\n");
      const refused = await run([`${s}/f.txt`, "--to", "sub"]);
      deepEqual(refused.code, 1, refused.stderr);
      deepEqual(refused.stdout, "");
      deepEqual(lines(refused.stderr).length, 1, refused.stderr);
      match(refused.stderr, /^sockit: failed .*\/f\.txt: .*"sub\/f\.txt".*\(exists\)$/m);
      deepEqual(await sha256File(`${dir}/sub/f.txt`), old, "the remote file is unchanged");

      const replaced = await run([`${s}/f.txt`, "--to", "sub", "--overwrite"]);
      deepEqual(replaced.code, 0, replaced.stderr);
      deepEqual([replaced.stdout, replaced.stderr], ["", ""]);
      deepEqual(await Deno.readTextFile(`${dir}/sub/f.txt`), "changed locally\n");
      deepEqual(await partials(dir), [], "nothing left in the partial area");
    },
  );

  await t.step({
    name: "a file refused up front is not streamed to the end",
    fn: async () => {
      // The server answers "exists" at FILE, at once; the client must see
      // that while it sends, even when its socket writes never wait. Five
      // attempts make a pass by luck unlikely.
      const size = 64;
      await writeBigFile(`${s}/big.bin`, size);
      const first = await run([`${s}/big.bin`, "--to", "big"], [`${s}/big.bin`]);
      deepEqual(first.code, 0, first.stderr);
      const sent = [];
      for (let i = 0; i < 5; i++) {
        const again = await run([`${s}/big.bin`, "--to", "big", "--json"], [`${s}/big.bin`]);
        const file = report(again).files["big/big.bin"]!;
        deepEqual(file.code, "exists");
        sent.push(file.sent as number);
      }
      ok(sent.every((n) => n < size * 1024 * 1024 / 2), `bytes sent of a refused file: ${sent}`);
    },
  });

  const stopped = await server.stop();
  deepEqual(stopped.code, 0, stopped.stderr);
  match(stopped.stderr, /generated one in .*\/\.config\/sockit\/token/);
});

Deno.test("sockit server --upload-dir refuses a missing, world-writable or non-directory DIR", async () => {
  await using dirs = await serverDirs();
  const { home, dir } = dirs;
  await Deno.mkdir(`${dir}/open`);
  await Deno.chmod(`${dir}/open`, 0o777);
  await Deno.writeTextFile(`${dir}/file`, "not a directory");
  const cases: [string, RegExp][] = [
    [`${dir}/missing`, /upload directory .*missing.*does not exist/],
    [`${dir}/open`, /upload directory .*open.*other users can write to it \(mode 777\)/],
    [`${dir}/file`, /upload directory .*file.*not a directory/],
  ];
  const results = await Promise.all(cases.map(([path]) =>
    sockit(serverFlags(home, path), [
      "server",
      "--json",
      "--listen",
      "127.0.0.1:0",
      "--upload-dir",
      path,
    ], { clearEnv: true, env: { HOME: home }, timeout: 15_000 })
  ));
  results.forEach((result, i) => {
    const [path, message] = cases[i]!;
    deepEqual(result.code, 1, `${path}: ${result.stderr}`);
    deepEqual(result.stdout, "", `${path}: it never listened`);
    match(result.stderr, /^error: /m);
    match(result.stderr, message);
  });
  deepEqual([...Deno.readDirSync(`${dir}/open`)], [], "nothing was created in the refused DIR");
});

Deno.test("a client killed mid-file, then a server killed mid-file: --resume completes both", async (t) => {
  await using dirs = await serverDirs();
  await using src = await tempDir("sockit-src-");
  const { home, dir } = dirs;
  const env = { HOME: home };
  const mib = 200;
  const size = mib * 1024 * 1024;
  const big = `${src.path}/big.bin`;
  const bigSha = await writeBigFile(big, mib);
  const client = clientFlags(home, [big]);

  /** Starts an upload of big.bin and returns once the server's partial file has bytes. */
  const startUpload = async (address: string, to: string) => {
    const proc = await spawnCli(client, ["upload", address, big, "--to", to, "--json"], {
      clearEnv: true,
      env,
      timeout: 30_000,
    });
    const output = proc.child.output();
    let exited = false;
    output.finally(() => exited = true).catch(() => {});
    const waiting = waitUntil(
      "a partial file with bytes in it",
      async () => {
        if (exited) {
          const { code, stderr } = await output;
          throw new Error(
            `the upload ended before it could be interrupted (exit ${code}): ${
              new TextDecoder().decode(stderr)
            }`,
          );
        }
        const found = await partials(dir);
        return found.length === 1 && found[0]!.size > 0 ? found[0]!.size : undefined;
      },
      20_000,
      2,
    );
    const held = await waiting.catch(async (error) => {
      kill(proc.child, "SIGKILL");
      await output;
      throw error;
    });
    return { child: proc.child, output, held };
  };

  /** Resumes big.bin into `to` and checks the summary and the result. */
  const resume = async (address: string, to: string, held: number) => {
    const result = await sockit(
      client,
      ["upload", address, big, "--to", to, "--json", "--resume"],
      {
        clearEnv: true,
        env,
      },
    );
    deepEqual(result.code, 0, result.stderr);
    deepEqual(result.stderr, "");
    const { files, summary } = report(result);
    deepEqual([summary.committed, summary.failed], [1, 0]);
    ok((summary.bytesResumed as number) > 0, JSON.stringify(summary));
    ok((summary.bytesSent as number) < size, JSON.stringify(summary));
    deepEqual(
      [summary.bytesResumed, summary.bytesSent],
      [held, size - held],
      "exactly what the server held was resumed",
    );
    deepEqual(files[`${to}/big.bin`]?.sha256, bigSha);
    deepEqual(await sha256File(`${dir}/${to}/big.bin`), bigSha);
    deepEqual(await partials(dir), [], "the partial file became the final one");
  };

  await t.step("client killed with SIGKILL: no final file; --resume completes it", async () => {
    await using server = await startServerCli(serverFlags(home, dir), ["--upload-dir", dir], env);
    const upload = await startUpload(server.address, "one");
    kill(upload.child, "SIGKILL");
    deepEqual((await upload.output).code, 137, "killed by SIGKILL");
    ok(upload.held < size, `the partial file had ${upload.held} bytes at the kill`);
    // The server reads what was in flight, then sees the end of the stream.
    await server.next("the end of the killed client's session", (e) => e.type === "closed");
    deepEqual(await exists(`${dir}/one/big.bin`), false, "nothing under the final name");
    deepEqual(await exists(`${dir}/one`), false, "no parent directory either");
    const [partial] = await partials(dir);
    ok(partial && partial.size >= upload.held && partial.size < size, JSON.stringify(partial));
    await resume(server.address, "one", partial.size);
  });

  await t.step(
    "server killed with SIGKILL: the client fails; --resume on a restart completes it",
    async () => {
      const server = await startServerCli(serverFlags(home, dir), ["--upload-dir", dir], env);
      const upload = await startUpload(server.address, "two").catch(async (error) => {
        await server.crash();
        throw error;
      });
      const crashed = await server.crash();
      deepEqual(crashed.code, 137, "killed by SIGKILL");
      const client = await upload.output;
      const stderr = new TextDecoder().decode(client.stderr);
      deepEqual(client.code, 1, stderr);
      deepEqual(lines(stderr).length, 1, stderr);
      match(stderr, /^error: /);
      deepEqual(await exists(`${dir}/two/big.bin`), false, "nothing under the final name");
      const [partial] = await partials(dir);
      ok(partial && partial.size >= upload.held && partial.size < size, JSON.stringify(partial));

      await using restarted = await startServerCli(
        serverFlags(home, dir),
        ["--upload-dir", dir],
        env,
      );
      await resume(restarted.address, "two", partial.size);
      deepEqual(await listing(dir), ["one/", "one/big.bin", "two/", "two/big.bin"]);
    },
  );
});

Deno.test("sockit upload fails cleanly without the right token or without the upload service", async (t) => {
  await using dirs = await serverDirs();
  await using src = await tempDir("sockit-src-");
  const { home, dir } = dirs;
  await Deno.writeTextFile(`${src.path}/a.txt`, "a");
  const wrong = `${src.path}/wrong-token`;
  await Deno.writeTextFile(wrong, OTHER_TOKEN + "\n", { mode: 0o600 });
  await Deno.chmod(wrong, 0o600);
  const flags = [...NET, `--allow-read=${src.path}/a.txt,${wrong}`];
  const run = (address: string, args: string[] = ["--token-file", wrong]) =>
    sockit(flags, ["upload", address, `${src.path}/a.txt`, ...args], { clearEnv: true });

  await t.step("a wrong token: exit 1 with auth_failed, nothing written", async () => {
    await using server = await startServerCli(serverFlags(home, dir), ["--upload-dir", dir], {
      HOME: home,
    });
    for (const args of [["--token-file", wrong], ["--token-file", wrong, "--json"]]) {
      const result = await run(server.address, args);
      deepEqual(result.code, 1, result.stderr);
      deepEqual(lines(result.stderr).length, 1, result.stderr);
      match(result.stderr, /^error: .*\(auth_failed\)$/m);
    }
    // No token at all (no --token-file, no SOCKIT_TOKEN, no HOME): refused before connecting.
    const none = await run(server.address, []);
    deepEqual(none.code, 1, none.stderr);
    match(none.stderr, /^error: upload needs the server's token/);
    deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".sockit-partial"]);
    deepEqual(await partials(dir), []);
  });

  await t.step("a server without --upload-dir: exit 1 with unknown_service", async () => {
    await using server = await startServerCli([...NET, `--allow-read=${wrong}`], [
      "--token-file",
      wrong,
    ], {});
    const result = await run(server.address);
    deepEqual(result.code, 1, result.stderr);
    deepEqual(result.stdout, "");
    deepEqual(lines(result.stderr).length, 1, result.stderr);
    match(result.stderr, /^error: .*\(unknown_service\)$/m);
  });
});

/** Mounts a tmpfs of `size` (mode 0755) on a new temporary directory, or says why it cannot. */
async function mountTmpfs(size: string): Promise<(AsyncDisposable & { path: string }) | string> {
  if (Deno.build.os !== "linux") return `tmpfs needs Linux, not ${Deno.build.os}`;
  const path = await Deno.makeTempDir({ prefix: "sockit-tmpfs-" });
  const run = async (program: string, args: string[]) => {
    try {
      const { code, stderr } = await new Deno.Command(program, { args, stdout: "null" }).output();
      return code === 0
        ? undefined
        : `${program} exited ${code}: ${new TextDecoder().decode(stderr)}`;
    } catch (error) {
      return `cannot run ${program}: ${error}`;
    }
  };
  const failed = await run("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", path]);
  if (failed) {
    await Deno.remove(path);
    return failed.trim();
  }
  return {
    path,
    [Symbol.asyncDispose]: async () => {
      const stuck = await run("umount", [path]);
      if (stuck) await run("umount", ["-l", path]);
      await Deno.remove(path, { recursive: true });
    },
  };
}

Deno.test("a full disk fails the file with disk_full and the server keeps serving", async (t) => {
  const mounted = await mountTmpfs("2m");
  const skip = typeof mounted === "string";
  if (skip) console.log(`skipping the disk-full tests: cannot mount a tmpfs (${mounted})`);
  await using _mount = skip ? undefined : mounted;
  const dir = skip ? "" : mounted.path;
  await using home = await tempDir("sockit-home-");
  await using src = await tempDir("sockit-src-");
  const env = { HOME: home.path };
  const big = `${src.path}/big.bin`;
  const small = `${src.path}/small.txt`;
  const empty = `${src.path}/empty.txt`;
  await writeBigFile(big, 3);
  await Deno.writeTextFile(small, "small but not empty\n");
  await Deno.writeTextFile(empty, "");
  const paths = [big, small, empty];
  const run = (address: string, args: string[]) =>
    sockit(clientFlags(home.path, paths), ["upload", address, ...args, "--json"], {
      clearEnv: true,
      env,
    });

  await t.step({
    name: "with --allow-sys=statfs: refused up front by the free-space reserve",
    ignore: skip,
    fn: async () => {
      await using server = await startServerCli(serverFlags(home.path, dir), [
        "--upload-dir",
        dir,
      ], env);
      for (const path of [small, big]) {
        const result = await run(server.address, [path]);
        deepEqual(result.code, 1, result.stderr);
        const file = Object.values(report(result).files)[0]!;
        deepEqual([file.status, file.code], ["failed", "disk_full"], JSON.stringify(file));
        match(String(file.message), /would leave less than \d+ bytes free/);
        match(result.stderr, /\(disk_full\)$/m);
      }
      deepEqual(await listing(dir), []);
      deepEqual(await partials(dir), [], "refused before a partial file was made");
      const stopped = await server.stop();
      deepEqual(stopped.code, 0, stopped.stderr);
      ok(!/free-space check/.test(stopped.stderr), stopped.stderr);
    },
  });

  await t.step({
    name: "without it: a real ENOSPC mid-write is disk_full; the session and server go on",
    ignore: skip,
    fn: async () => {
      await using server = await startServerCli(
        serverFlags(home.path, dir, { statfs: false }),
        ["--upload-dir", dir],
        env,
      );
      // The 3 MiB file cannot fit in 2 MiB; the empty file after it can.
      const full = await run(server.address, [big, empty]);
      deepEqual(full.code, 1, full.stderr);
      const { files, summary } = report(full);
      deepEqual([files["big.bin"]?.status, files["big.bin"]?.code], ["failed", "disk_full"]);
      match(String(files["big.bin"]?.message), /disk is full/);
      deepEqual(files["empty.txt"]?.status, "committed", "the session went on");
      deepEqual([summary.committed, summary.failed], [1, 1]);
      match(full.stderr, /^sockit: failed .*big\.bin: .*\(disk_full\)$/m);
      deepEqual(await listing(dir), ["empty.txt"], "nothing under the final name");

      // The failed file left no partial behind: the space is back at once,
      // and a new connection can store a small file.
      deepEqual(await partials(dir), [], "a failed file keeps no partial");
      const next = await run(server.address, [small]);
      deepEqual(next.code, 0, next.stderr);
      deepEqual(await Deno.readTextFile(`${dir}/small.txt`), await Deno.readTextFile(small));
      const stopped = await server.stop();
      deepEqual(stopped.code, 0, stopped.stderr);
      match(stopped.stderr, /warning: upload: no free-space check without --allow-sys=statfs/);
      await Deno.remove(`${dir}/small.txt`);
      await Deno.remove(`${dir}/empty.txt`);
    },
  });

  await t.step({
    name: "library, no reserve: ENOSPC mid-write is disk_full and the session goes on",
    ignore: skip,
    fn: async () => {
      const token = "upload-cli-test-library-token-0123";
      const store = await UploadStore.open(dir, { reserveBytes: 0, reservePercent: 0 });
      await using server = await startServer({ token, services: [uploadService(store)] });
      const summary = await upload(server.address, [big, empty], { token, to: "lib" });
      deepEqual(summary.results.map((r) => [r.name, r.status, r.code]), [
        ["lib/big.bin", "failed", "disk_full"],
        ["lib/empty.txt", "committed", undefined],
      ]);
      deepEqual(await listing(dir), ["lib/", "lib/empty.txt"]);
      deepEqual(await partials(dir), [], "a failed file keeps no partial");
      const again = await upload(server.address, [small], { token, to: "lib" });
      deepEqual(again.committed, 1, JSON.stringify(again.results));
      deepEqual(await sha256File(`${dir}/lib/small.txt`), await sha256File(small));
      await Deno.remove(`${dir}/lib`, { recursive: true });
    },
  });

  await t.step({
    name: "after disk_full, a small file to another name still fits",
    ignore: skip,
    fn: async () => {
      // A failed file's partial is removed, so it does not fill the disk for
      // every later upload.
      await using server = await startServerCli(
        serverFlags(home.path, dir, { statfs: false }),
        ["--upload-dir", dir],
        env,
      );
      const full = await run(server.address, [big]);
      deepEqual(report(full).files["big.bin"]?.code, "disk_full");
      const next = await run(server.address, [small]);
      deepEqual(next.code, 0, next.stdout);
    },
  });
});

Deno.test("two sockit upload processes racing for one name: one wins whole, the other fails", async (t) => {
  await using dirs = await serverDirs();
  await using src = await tempDir("sockit-src-");
  const { home, dir } = dirs;
  const env = { HOME: home };
  await using server = await startServerCli(serverFlags(home, dir), ["--upload-dir", dir], env);
  // Same size, different bytes: both would use the same partial file name.
  await Deno.mkdir(`${src.path}/a`);
  await Deno.mkdir(`${src.path}/b`);
  const sources = [`${src.path}/a/same.bin`, `${src.path}/b/same.bin`];
  const shas = [await writeBigFile(sources[0]!, 48, 1), await writeBigFile(sources[1]!, 48, 2)];
  const args = (
    i: number,
    to: string,
  ) => ["upload", server.address, sources[i]!, "--to", to, "--json"];
  const options = { clearEnv: true, env };

  /** Checks that exactly one of `results` committed, whole, and the other failed with `codes`. */
  const oneWins = async (to: string, results: Result[], codes: string[]) => {
    const exits = results.map((r) => r.code);
    deepEqual([...exits].sort(), [0, 1], results.map((r) => r.stderr).join(""));
    const winner = exits.indexOf(0);
    const loser = results[1 - winner]!;
    const lost = report(loser).files[`${to}/same.bin`]!;
    ok(codes.includes(String(lost.code)), JSON.stringify(lost));
    match(loser.stderr, new RegExp(`\\((${codes.join("|")})\\)$`, "m"));
    deepEqual(report(results[winner]!).files[`${to}/same.bin`]?.sha256, shas[winner]);
    deepEqual(await listing(`${dir}/${to}`), ["same.bin"]);
    deepEqual(await sha256File(`${dir}/${to}/same.bin`), shas[winner], "the winner's bytes, whole");
  };

  await t.step("started at once", async () => {
    const flags = clientFlags(home, sources);
    const results = await Promise.all([0, 1].map((i) => sockit(flags, args(i, "race"), options)));
    await oneWins("race", results, ["busy", "exists"]);
  });

  await t.step("the second while the first is mid-file: busy", async () => {
    const flags = clientFlags(home, sources);
    const before = new Set((await partials(dir)).map((p) => p.name));
    const first = await spawnCli(flags, args(0, "busy"), { ...options, timeout: 30_000 });
    const output = first.child.output();
    try {
      // Freeze the first client while it holds the name, mid-file. (A loser
      // of the race above may have left a partial file of its own.)
      await waitUntil(
        "the first upload's partial file",
        async () => {
          const found = await partials(dir);
          return found.some((p) => p.size > 0 && !before.has(p.name)) ? true : undefined;
        },
        20_000,
        2,
      );
      kill(first.child, "SIGSTOP");
      const second = await sockit(flags, args(1, "busy"), options);
      kill(first.child, "SIGCONT");
      const done = await output;
      await oneWins("busy", [
        {
          code: done.code,
          stdout: new TextDecoder().decode(done.stdout),
          stderr: new TextDecoder().decode(done.stderr),
        },
        second,
      ], ["busy"]);
    } finally {
      kill(first.child, "SIGCONT");
      kill(first.child, "SIGKILL");
      await output.catch(() => {});
    }
  });
});
