import { deepEqual, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  encodeControl,
  encodeFrame,
  MessageType,
  serve,
  upload,
  uploadService,
  UploadStore,
  type UploadStoreOptions,
} from "../_lib.ts";
import {
  errorOf,
  rawSession,
  readMessage,
  readUntilClose,
  send,
  startServer,
  type TestServer,
} from "../_utils.ts";

const TOKEN = "upload-test-token-0123456789";
const encoder = new TextEncoder();
const sha = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

interface UploadServer extends TestServer {
  dir: string;
}

/** A server with an upload directory of its own; disposing removes both. */
async function uploadServer(options: UploadStoreOptions = {}): Promise<UploadServer> {
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o755);
  const store = await UploadStore.open(dir, { reserveBytes: 0, reservePercent: 0, ...options });
  const s = await startServer({ token: TOKEN, services: [uploadService(store)] });
  return {
    ...s,
    dir,
    [Symbol.asyncDispose]: async () => {
      await s[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Every file under `dir` (partial area excluded), by relative name. */
async function listing(dir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name === ".sockit-partial") continue;
    const name = prefix + entry.name;
    names.push(entry.isDirectory ? `${name}/` : name);
    if (entry.isDirectory) names.push(...await listing(`${dir}/${entry.name}`, `${name}/`));
  }
  return names.sort();
}

Deno.test("a tree arrives like scp -r -p: under --to, empty directories kept, links skipped", async () => {
  await using s = await uploadServer();
  await using src = await tempDir();
  await Deno.mkdir(`${src.path}/tree/sub/empty`, { recursive: true });
  await Deno.writeTextFile(`${src.path}/tree/a.txt`, "hello");
  await Deno.writeTextFile(`${src.path}/tree/sub/b.sh`, "echo hi\n");
  await Deno.chmod(`${src.path}/tree/sub/b.sh`, 0o750);
  await Deno.utime(`${src.path}/tree/a.txt`, 1_500_000_000, 1_500_000_000);
  await Deno.symlink("/etc/passwd", `${src.path}/tree/link`);

  const summary = await upload(s.address, [`${src.path}/tree`], { token: TOKEN, to: "inbox" });
  deepEqual(await listing(s.dir), [
    "inbox/",
    "inbox/tree/",
    "inbox/tree/a.txt",
    "inbox/tree/sub/",
    "inbox/tree/sub/b.sh",
    "inbox/tree/sub/empty/",
  ]);
  deepEqual(await Deno.readTextFile(`${s.dir}/inbox/tree/a.txt`), "hello");
  deepEqual((await Deno.stat(`${s.dir}/inbox/tree/sub/b.sh`)).mode! & 0o777, 0o750);
  deepEqual((await Deno.stat(`${s.dir}/inbox/tree/a.txt`)).mtime?.getTime(), 1_500_000_000_000);
  const byName = Object.fromEntries(summary.results.map((r) => [r.name, r]));
  deepEqual(byName["inbox/tree/a.txt"]?.sha256, sha("hello"));
  deepEqual(byName["inbox/tree/link"]?.status, "skipped");
  deepEqual([summary.committed, summary.failed, summary.skipped], [5, 0, 1]);
  deepEqual(summary.bytesSent, 5 + 8);
});

Deno.test("--no-preserve leaves mode and time to the server", async () => {
  await using s = await uploadServer();
  await using src = await tempDir();
  await Deno.writeTextFile(`${src.path}/a`, "x");
  await Deno.utime(`${src.path}/a`, 1_000_000, 1_000_000);
  await upload(s.address, [`${src.path}/a`], { token: TOKEN, preserve: false });
  ok((await Deno.stat(`${s.dir}/a`)).mtime!.getTime() > 1_000_000_000);
});

Deno.test("no client mode makes an upload writable by other users, setuid or sticky", async () => {
  await using s = await uploadServer();
  await using src = await tempDir();
  await Deno.mkdir(`${src.path}/open`);
  await Deno.writeTextFile(`${src.path}/open/f.sh`, "#!/bin/sh\n");
  await Deno.chmod(`${src.path}/open/f.sh`, 0o6777);
  await Deno.chmod(`${src.path}/open`, 0o1777);
  const summary = await upload(s.address, [`${src.path}/open`], { token: TOKEN });
  deepEqual(summary.committed, 2);
  deepEqual((await Deno.stat(`${s.dir}/open/f.sh`)).mode! & 0o7777, 0o755);
  deepEqual((await Deno.stat(`${s.dir}/open`)).mode! & 0o7777, 0o755);
});

Deno.test("an existing file is kept unless overwrite, and the rest go on", async () => {
  await using s = await uploadServer();
  await using src = await tempDir();
  await Deno.writeTextFile(`${s.dir}/a.txt`, "old");
  await Deno.writeTextFile(`${src.path}/a.txt`, "new");
  await Deno.writeTextFile(`${src.path}/b.txt`, "bee");
  const first = await upload(s.address, [`${src.path}/a.txt`, `${src.path}/b.txt`], {
    token: TOKEN,
  });
  deepEqual(first.results.map((r) => [r.name, r.status, r.code]), [
    ["a.txt", "failed", "exists"],
    ["b.txt", "committed", undefined],
  ]);
  deepEqual(await Deno.readTextFile(`${s.dir}/a.txt`), "old");
  const second = await upload(s.address, [`${src.path}/a.txt`], { token: TOKEN, overwrite: true });
  deepEqual(second.committed, 1);
  deepEqual(await Deno.readTextFile(`${s.dir}/a.txt`), "new");
});

Deno.test("a symlink planted in the upload directory is never followed", async () => {
  await using s = await uploadServer();
  await using outside = await tempDir();
  await using src = await tempDir();
  await Deno.symlink(outside.path, `${s.dir}/escape`);
  await Deno.writeTextFile(`${src.path}/x`, "pwned");
  const summary = await upload(s.address, [`${src.path}/x`], { token: TOKEN, to: "escape" });
  deepEqual(summary.results[0]?.code, "bad_name");
  deepEqual([...Deno.readDirSync(outside.path)], []);
});

Deno.test("resume sends only what the server does not verifiably hold", async () => {
  await using s = await uploadServer();
  await using src = await tempDir();
  const size = 8 * 1024 * 1024;
  const data = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
  await Deno.writeFile(`${src.path}/big.bin`, data);

  // An interrupted upload: half the bytes, then the connection drops.
  const interrupt = async () => {
    const { conn, reader } = await rawSession(s.address, "upload", TOKEN);
    await send(
      conn,
      encodeFrame(encodeControl(MessageType.File, {
        type: "file",
        name: "big.bin",
        size,
        resume: true,
      })),
    );
    deepEqual((await readMessage(reader))?.json?.kind, "ready");
    await send(conn, encodeFrame(encodeControl(MessageType.Start, { offset: 0 })));
    const chunk = 512 * 1024;
    for (let at = 0; at < size / 2; at += chunk) {
      const payload = new Uint8Array(1 + chunk);
      payload[0] = MessageType.Data;
      payload.set(data.subarray(at, at + chunk), 1);
      await send(conn, encodeFrame(payload));
    }
    // Let the server write what it got before the connection drops.
    await conn.closeWrite();
    await readUntilClose(conn);
    conn.close();
  };
  await interrupt();
  await rejects(Deno.lstat(`${s.dir}/big.bin`), Deno.errors.NotFound);
  const resumed = await upload(s.address, [`${src.path}/big.bin`], { token: TOKEN, resume: true });
  deepEqual(resumed.committed, 1);
  deepEqual([resumed.bytesResumed, resumed.bytesSent], [size / 2, size / 2]);
  deepEqual(sha(await Deno.readFile(`${s.dir}/big.bin`)), sha(data));

  // The local file changed inside the part the server holds: start over.
  await Deno.remove(`${s.dir}/big.bin`);
  await interrupt();
  data[10] = data[10]! ^ 0xff;
  await Deno.writeFile(`${src.path}/big.bin`, data);
  const fresh = await upload(s.address, [`${src.path}/big.bin`], { token: TOKEN, resume: true });
  deepEqual([fresh.committed, fresh.bytesResumed, fresh.bytesSent], [1, 0, size]);
  deepEqual(sha(await Deno.readFile(`${s.dir}/big.bin`)), sha(data));
});

Deno.test("two clients uploading one name at once: one wins whole, nothing corrupt", async () => {
  await using s = await uploadServer();
  await using src = await tempDir();
  const a = new Uint8Array(4 * 1024 * 1024).fill(0xaa);
  const b = new Uint8Array(4 * 1024 * 1024).fill(0xbb);
  await Deno.mkdir(`${src.path}/a`);
  await Deno.mkdir(`${src.path}/b`);
  await Deno.writeFile(`${src.path}/a/same.bin`, a);
  await Deno.writeFile(`${src.path}/b/same.bin`, b);
  const results = await Promise.all([
    upload(s.address, [`${src.path}/a/same.bin`], { token: TOKEN }),
    upload(s.address, [`${src.path}/b/same.bin`], { token: TOKEN }),
  ]);
  // Neither asks to overwrite: exactly one commits, the other is told why not.
  const outcomes = results.map((r) => r.results.map((e) => [e.status, e.code ?? "ok"]));
  const winner = results.findIndex((r) => r.committed === 1);
  ok(winner >= 0, JSON.stringify(outcomes));
  deepEqual(outcomes[winner], [["committed", "ok"]]);
  const lost = outcomes[1 - winner]![0]!;
  ok(lost[0] === "failed" && ["busy", "exists"].includes(lost[1]!), JSON.stringify(outcomes));
  const stored = sha(await Deno.readFile(`${s.dir}/same.bin`));
  deepEqual(stored, sha([a, b][winner]!), "the stored file is the winner's, whole");
});

/** Sends `frames` on a fresh upload session and returns every answer until it closes. */
async function rawUpload(address: string, frames: Uint8Array[]) {
  const { conn } = await rawSession(address, "upload", TOKEN);
  for (const frame of frames) await send(conn, frame);
  await conn.closeWrite();
  const messages = await readUntilClose(conn);
  conn.close();
  return messages;
}

const fileFrame = (body: Record<string, unknown>) =>
  encodeFrame(encodeControl(MessageType.File, { type: "file", ...body }));
const dataFrame = (text: string) => {
  const bytes = encoder.encode(text);
  const payload = new Uint8Array(1 + bytes.length);
  payload[0] = MessageType.Data;
  payload.set(bytes, 1);
  return encodeFrame(payload);
};
const endFrame = (sha256: string) => encodeFrame(encodeControl(MessageType.End, { sha256 }));

Deno.test("bad entries fail alone: names, sizes and hashes", async (t) => {
  await using s = await uploadServer({ maxFileSize: 100 });
  const cases: [string, Uint8Array[], string][] = [
    [
      "../x",
      [fileFrame({ name: "../x", size: 1 }), dataFrame("x"), endFrame(sha("x"))],
      "bad_name",
    ],
    [
      "/etc/x",
      [fileFrame({ name: "/etc/x", size: 1 }), dataFrame("x"), endFrame(sha("x"))],
      "bad_name",
    ],
    ["a/../../x", [fileFrame({ name: "a/../../x", size: 0 }), endFrame(sha(""))], "bad_name"],
    ["C:\\x", [fileFrame({ name: "C:\\x", size: 0 }), endFrame(sha(""))], "bad_name"],
    ["NUL", [fileFrame({ name: "x\0y", size: 0 }), endFrame(sha(""))], "bad_name"],
    ["CR/LF", [fileFrame({ name: "x\r\ny", size: 0 }), endFrame(sha(""))], "bad_name"],
    ["ANSI escape", [fileFrame({ name: "\u001b[2Jx", size: 0 }), endFrame(sha(""))], "bad_name"],
    [
      "10,000-byte name",
      [fileFrame({ name: "a".repeat(10_000), size: 0 }), endFrame(sha(""))],
      "bad_name",
    ],
    ["more data than declared", [
      fileFrame({ name: "long", size: 2 }),
      dataFrame("xyz"),
      endFrame(sha("xyz")),
    ], "size_mismatch"],
    ["less data than declared", [
      fileFrame({ name: "short", size: 5 }),
      dataFrame("xy"),
      endFrame(sha("xy")),
    ], "size_mismatch"],
    [
      "wrong hash",
      [fileFrame({ name: "hash", size: 2 }), dataFrame("xy"), endFrame(sha("xz"))],
      "hash_mismatch",
    ],
    [
      "over the size limit",
      [fileFrame({ name: "huge", size: 101 }), endFrame(sha(""))],
      "too_large",
    ],
  ];
  for (const [name, frames, code] of cases) {
    await t.step(name, async () => {
      // The bad entry, then a good one: the session survives the failure.
      const messages = await rawUpload(s.address, [
        ...frames,
        fileFrame({ name: "ok.txt", size: 2 }),
        dataFrame("ok"),
        endFrame(sha("ok")),
      ]);
      const events = messages.filter((m) => m.type === MessageType.Event).map((m) => m.json!);
      deepEqual(events.map((e) => [e.kind, e.code]), [["failed", code], ["committed", undefined]]);
      deepEqual(await listing(s.dir), ["ok.txt"]);
      await Deno.remove(`${s.dir}/ok.txt`);
    });
  }
});

Deno.test("answers keep entry order while commits overlap", async () => {
  await using s = await uploadServer();
  // 60 entries sent without waiting: good files, files whose commit fails
  // (a wrong hash), names refused at once, then their directory last.
  const frames: Uint8Array[] = [];
  const expected: [string, string, string | undefined][] = [];
  for (let i = 0; i < 60; i++) {
    const name = `d/f${i}`;
    const body = `file ${i}`;
    if (i % 7 === 3) {
      frames.push(fileFrame({ name, size: body.length }), dataFrame(body), endFrame(sha("other")));
      expected.push([name, "failed", "hash_mismatch"]);
    } else if (i % 11 === 5) {
      frames.push(fileFrame({ name: `../${name}`, size: 0 }), endFrame(sha("")));
      expected.push([`../${name}`, "failed", "bad_name"]);
    } else {
      frames.push(fileFrame({ name, size: body.length }), dataFrame(body), endFrame(sha(body)));
      expected.push([name, "committed", undefined]);
    }
  }
  const mtime = Date.UTC(2020, 0, 2);
  frames.push(encodeFrame(encodeControl(MessageType.File, { type: "dir", name: "d", mtime })));
  expected.push(["d", "committed", undefined]);
  const messages = await rawUpload(s.address, frames);
  const events = messages.filter((m) => m.type === MessageType.Event).map((m) => m.json!);
  deepEqual(events.map((e) => [e.name, e.kind, e.code]), expected);
  const committed = expected.filter(([n, k]) => k === "committed" && n !== "d");
  for (const [name] of committed) {
    deepEqual(await Deno.readTextFile(`${s.dir}/${name}`), `file ${name.slice(3)}`);
  }
  deepEqual((await listing(s.dir)).length, committed.length + 1);
  // The directory's time was set after every file in it was committed.
  deepEqual((await Deno.stat(`${s.dir}/d`)).mtime?.getTime(), mtime);
});

Deno.test("protocol violations end the session with an error", async (t) => {
  await using s = await uploadServer();
  const cases: [string, Uint8Array[]][] = [
    ["DATA outside a file", [dataFrame("x")]],
    ["END without a file", [endFrame(sha(""))]],
    ["FILE inside a file", [fileFrame({ name: "a", size: 1 }), fileFrame({ name: "b", size: 1 })]],
    ["a malformed FILE", [encodeFrame(encodeControl(MessageType.File, { type: "pipe" }))]],
    ["a malformed hash", [fileFrame({ name: "a", size: 0 }), endFrame("nope")]],
    ["START without resume", [
      fileFrame({ name: "a", size: 0 }),
      encodeFrame(encodeControl(MessageType.Start, { offset: 0 })),
    ]],
  ];
  for (const [name, frames] of cases) {
    await t.step(name, async () => {
      deepEqual(errorOf(await rawUpload(s.address, frames))?.code, "bad_message");
      deepEqual(await listing(s.dir), []);
    });
  }
});

Deno.test("upload cannot be served without a token", async () => {
  await using dir = await tempDir();
  await Deno.chmod(dir.path, 0o755);
  const store = await UploadStore.open(dir.path);
  await rejects(serve({ listen: ["127.0.0.1:0"], services: [uploadService(store)] }), TypeError);
});

Deno.test("DATA frames fit the server's frame limit", async () => {
  await using dir = await tempDir();
  await Deno.chmod(dir.path, 0o755);
  await using src = await tempDir();
  const store = await UploadStore.open(dir.path, { reserveBytes: 0, reservePercent: 0 });
  await using s = await startServer({
    token: TOKEN,
    maxFrame: 64 * 1024,
    services: [uploadService(store)],
  });
  const data = new Uint8Array(1024 * 1024).map((_, i) => i & 0xff);
  await Deno.writeFile(`${src.path}/a.bin`, data);
  const summary = await upload(s.address, [`${src.path}/a.bin`], { token: TOKEN });
  deepEqual(summary.committed, 1, JSON.stringify(summary.results));
  deepEqual(sha(await Deno.readFile(`${dir.path}/a.bin`)), sha(data));
});

Deno.test("a name refused locally is a failure, and nothing of it is sent", async () => {
  await using s = await uploadServer();
  await using src = await tempDir();
  await Deno.writeTextFile(`${src.path}/a.txt`, "x");
  const summary = await upload(s.address, [`${src.path}/a.txt`], { token: TOKEN, to: "../up" });
  deepEqual(summary.results.map((r) => [r.status, r.code, r.sent]), [["failed", "bad_name", 0]]);
  deepEqual(summary.failed, 1);
  deepEqual(await listing(s.dir), []);
});
