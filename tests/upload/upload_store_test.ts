import { deepEqual, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { parseRemoteName, PARTIAL_DIR, ProtocolError, UploadStore } from "../_lib.ts";

const encoder = new TextEncoder();
const sha = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");
const code = (c: string) => (e: unknown) => e instanceof ProtocolError && e.code === c;
/** No reserve: the tests' files are tiny, whatever the disk holds. */
const ROOMY = { reserveBytes: 0, reservePercent: 0 };

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o755);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function store(dir: string, name: string, text: string, overwrite = false) {
  const s = await UploadStore.open(dir, ROOMY);
  const data = encoder.encode(text);
  const file = await s.begin(parseRemoteName(name), data.length, { overwrite, resume: false });
  file.write(data);
  return await file.commit(sha(data), { mode: 0o4755, mtime: 1_000_000_000_000 });
}

Deno.test("a committed file appears whole, with its mode (minus setuid) and mtime", async () => {
  await withDir(async (dir) => {
    deepEqual(await store(dir, "sub/dir/a.txt", "hello"), sha("hello"));
    deepEqual(await Deno.readTextFile(`${dir}/sub/dir/a.txt`), "hello");
    const info = await Deno.stat(`${dir}/sub/dir/a.txt`);
    deepEqual(info.mode! & 0o7777, 0o755);
    deepEqual(info.mtime?.getTime(), 1_000_000_000_000);
    deepEqual([...Deno.readDirSync(`${dir}/${PARTIAL_DIR}`)], []);
  });
});

Deno.test("an existing file is refused unless overwrite, which replaces it", async () => {
  await withDir(async (dir) => {
    await store(dir, "a.txt", "one");
    await rejects(store(dir, "a.txt", "two"), code("exists"));
    deepEqual(await Deno.readTextFile(`${dir}/a.txt`), "one");
    await store(dir, "a.txt", "three", true);
    deepEqual(await Deno.readTextFile(`${dir}/a.txt`), "three");
  });
});

Deno.test("wrong hash, short or long data: nothing under the final name", async () => {
  await withDir(async (dir) => {
    const s = await UploadStore.open(dir, ROOMY);
    const name = parseRemoteName("a.txt");
    const wrong = await s.begin(name, 5, { overwrite: false, resume: false });
    wrong.write(encoder.encode("hello"));
    await rejects(wrong.commit(sha("jello")), code("hash_mismatch"));
    const short = await s.begin(name, 5, { overwrite: false, resume: false });
    short.write(encoder.encode("hel"));
    await rejects(short.commit(sha("hel")), code("size_mismatch"));
    const long = await s.begin(name, 5, { overwrite: false, resume: false });
    let threw = false;
    try {
      long.write(encoder.encode("hello!"));
    } catch (error) {
      threw = code("size_mismatch")(error);
    }
    long.close();
    ok(threw, "writing past the declared size must fail");
    await rejects(Deno.lstat(`${dir}/a.txt`), Deno.errors.NotFound);
  });
});

Deno.test("a symlink planted inside the directory is never followed", async () => {
  await withDir(async (dir) => {
    const outside = await Deno.makeTempDir();
    try {
      await Deno.symlink(outside, `${dir}/escape`);
      await rejects(store(dir, "escape/x.txt", "pwned"), code("bad_name"));
      deepEqual([...Deno.readDirSync(outside)], []);
      // A link as the final name is refused as existing, and overwrite
      // replaces the link itself, never its target.
      await Deno.writeTextFile(`${outside}/target`, "keep");
      await Deno.symlink(`${outside}/target`, `${dir}/link.txt`);
      await rejects(store(dir, "link.txt", "pwned"), code("exists"));
      await store(dir, "link.txt", "replaced", true);
      deepEqual(await Deno.readTextFile(`${outside}/target`), "keep");
      ok(!(await Deno.lstat(`${dir}/link.txt`)).isSymlink);
    } finally {
      await Deno.remove(outside, { recursive: true });
    }
  });
});

Deno.test("a directory others can write to is refused", async () => {
  await withDir(async (dir) => {
    await Deno.chmod(dir, 0o777);
    await rejects(UploadStore.open(dir), /other users can write/);
    await rejects(UploadStore.open(`${dir}/missing`), /does not exist/);
  });
});

Deno.test("resume keeps a verified prefix; a restart drops it", async () => {
  await withDir(async (dir) => {
    const s = await UploadStore.open(dir, ROOMY);
    const name = parseRemoteName("big.bin");
    const data = encoder.encode("0123456789".repeat(100));
    const first = await s.begin(name, data.length, { overwrite: false, resume: true });
    deepEqual(first.held, 0);
    first.write(data.subarray(0, 400));
    first.close(); // interrupted
    const second = await s.begin(name, data.length, { overwrite: false, resume: true });
    deepEqual([second.held, second.prefixHash], [400, sha(data.subarray(0, 400))]);
    second.write(data.subarray(400));
    await second.commit(sha(data));
    deepEqual(await Deno.readFile(`${dir}/big.bin`), data);

    const other = parseRemoteName("other.bin");
    const a = await s.begin(other, data.length, { overwrite: false, resume: true });
    a.write(encoder.encode("x".repeat(300)));
    a.close();
    const b = await s.begin(other, data.length, { overwrite: false, resume: true });
    deepEqual(b.held, 300);
    await b.restart();
    b.write(data);
    await b.commit(sha(data));
    deepEqual(await Deno.readFile(`${dir}/other.bin`), data);
  });
});

Deno.test("one writer per name at a time", async () => {
  await withDir(async (dir) => {
    const s = await UploadStore.open(dir, ROOMY);
    const first = await s.begin(parseRemoteName("a"), 1, { overwrite: false, resume: false });
    await rejects(
      s.begin(parseRemoteName("a"), 1, { overwrite: false, resume: false }),
      code("busy"),
    );
    first.close();
    (await s.begin(parseRemoteName("a"), 1, { overwrite: false, resume: false })).close();
  });
});

Deno.test("limits: size and free-space reserve", async () => {
  await withDir(async (dir) => {
    const small = await UploadStore.open(dir, { ...ROOMY, maxFileSize: 10 });
    await rejects(small.begin(["a"], 11, { overwrite: false, resume: false }), code("too_large"));
    const full = await UploadStore.open(dir, { reservePercent: 100 });
    await rejects(full.begin(["a"], 1, { overwrite: false, resume: false }), code("disk_full"));
  });
});

Deno.test("losing the race for a name at commit leaves no partial file", async () => {
  await withDir(async (dir) => {
    const s = await UploadStore.open(dir, ROOMY);
    const file = await s.begin(parseRemoteName("a.txt"), 3, { overwrite: false, resume: false });
    file.write(encoder.encode("new"));
    await Deno.writeTextFile(`${dir}/a.txt`, "old"); // another writer got there first
    await rejects(file.commit(sha("new")), code("exists"));
    deepEqual(await Deno.readTextFile(`${dir}/a.txt`), "old");
    deepEqual([...Deno.readDirSync(`${dir}/${PARTIAL_DIR}`)], []);
  });
});

Deno.test("a file without a mode from the client gets 0644, not the partial's 0600", async () => {
  await withDir(async (dir) => {
    const s = await UploadStore.open(dir, ROOMY);
    const file = await s.begin(parseRemoteName("a.txt"), 1, { overwrite: false, resume: false });
    file.write(encoder.encode("x"));
    await file.commit(sha("x"));
    deepEqual((await Deno.stat(`${dir}/a.txt`)).mode! & 0o777, 0o644);
  });
});
