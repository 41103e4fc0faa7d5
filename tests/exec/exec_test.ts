import { deepEqual, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  encodeControl,
  encodeFrame,
  exec,
  execService,
  type ExecServiceOptions,
  MessageType,
  RemoteError,
  type RemoteProcess,
  serve,
  type ServeOptions,
  StreamId,
} from "../_lib.ts";
import {
  delay,
  errorOf,
  rawSession,
  readMessage,
  readUntilClose,
  send,
  startServer,
  type TestServer,
  waitFor,
} from "../_utils.ts";

const TOKEN = "exec-test-token-0123456789";
const decoder = new TextDecoder();

function execServer(
  options: ExecServiceOptions = {},
  serveOptions: ServeOptions = {},
): Promise<TestServer> {
  return startServer({
    token: TOKEN,
    services: [execService({ killGrace: 500, ...options })],
    ...serveOptions,
  });
}

/** Collects stdout and stderr as text, and the status. */
async function collect(proc: RemoteProcess) {
  const [stdout, stderr, status] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.status,
  ]);
  return { stdout, stderr, status };
}

/** Whether a process is gone: `ps` finds no such pid, or only a zombie nobody here reaps. */
async function gone(pid: number): Promise<boolean> {
  // ps rather than /proc, which Deno opens only with --allow-all.
  const { success, stdout } = await new Deno.Command("ps", {
    args: ["-o", "stat=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  return !success || decoder.decode(stdout).trim().startsWith("Z");
}

async function waitGone(pid: number, ms = 5000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!(await gone(pid))) {
    if (performance.now() > end) return false;
    await delay(20);
  }
  return true;
}

const unix = Deno.build.os !== "windows";

Deno.test("exec passes argv to the program exactly as given", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, [
    "printf",
    "<%s>\\n",
    "a b",
    "c'd",
    "$HOME",
    "*",
    "",
    "é\u{1f600}",
    "--",
  ], { token: TOKEN });
  const { stdout, stderr, status } = await collect(proc);
  deepEqual(stdout, "<a b>\n<c'd>\n<$HOME>\n<*>\n<>\n<é\u{1f600}>\n<-->\n");
  deepEqual(stderr, "");
  deepEqual(status.code, 0);
  deepEqual(status.success, true);
});

Deno.test("exec keeps stdout and stderr apart and reports the exit code", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, ["sh", "-c", "echo out; echo err >&2; exit 3"], {
    token: TOKEN,
  });
  const { stdout, stderr, status } = await collect(proc);
  deepEqual([stdout, stderr], ["out\n", "err\n"]);
  deepEqual(status, {
    success: false,
    code: 3,
    signal: null,
    timedOut: false,
    duration: status.duration,
  });
});

Deno.test("a command with no output simply exits", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, ["true"], { token: TOKEN });
  const { stdout, stderr, status } = await collect(proc);
  deepEqual([stdout, stderr, status.code], ["", "", 0]);
});

Deno.test("stdin is streamed and its end delivered", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, ["wc", "-l"], { token: TOKEN, stdin: "piped" });
  const lines = Array.from({ length: 100_000 }, (_, i) => `${i + 1}\n`).join("");
  const fed = ReadableStream.from([new TextEncoder().encode(lines)]).pipeTo(proc.stdin);
  const [{ stdout, status }] = await Promise.all([collect(proc), fed]);
  deepEqual(stdout.trim(), "100000");
  deepEqual(status.code, 0);
});

Deno.test("stdin beyond the credit window still arrives byte-exact", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, ["cat"], { token: TOKEN, stdin: "piped" });
  // 5 MiB through cat: more than the 1 MiB window, so credit must flow.
  const input = crypto.getRandomValues(new Uint8Array(64 * 1024));
  const chunks = Array.from({ length: 80 }, (_, i) => input.map((b) => b ^ i));
  const expected = createHash("sha256");
  for (const c of chunks) expected.update(c);
  const fed = ReadableStream.from(chunks).pipeTo(proc.stdin);
  const hash = createHash("sha256");
  let length = 0;
  const read = (async () => {
    for await (const chunk of proc.stdout) {
      hash.update(chunk);
      length += chunk.length;
    }
  })();
  await Promise.all([fed, read, proc.stderr.cancel()]);
  deepEqual((await proc.status).code, 0);
  deepEqual(length, 80 * 64 * 1024);
  deepEqual(hash.digest("hex"), expected.digest("hex"));
});

Deno.test("100 MB of binary output arrives with the same SHA-256", async () => {
  await using s = await execServer();
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/data`;
    const block = new Uint8Array(1024 * 1024);
    for (let at = 0; at < block.length; at += 65536) {
      crypto.getRandomValues(block.subarray(at, at + 65536));
    }
    const expected = createHash("sha256");
    {
      using f = await Deno.open(file, { write: true, create: true });
      for (let i = 0; i < 100; i++) {
        block[0] = i; // every block differs
        expected.update(block);
        for (let at = 0; at < block.length;) at += f.writeSync(block.subarray(at));
      }
    }
    await using proc = await exec(s.address, ["cat", file], { token: TOKEN });
    const hash = createHash("sha256");
    let length = 0;
    for await (const chunk of proc.stdout) {
      hash.update(chunk);
      length += chunk.length;
    }
    await proc.stderr.cancel();
    deepEqual((await proc.status).code, 0);
    deepEqual(length, 100 * 1024 * 1024);
    deepEqual(hash.digest("hex"), expected.digest("hex"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("output arrives as the command writes it, not when it ends", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, ["sh", "-c", "echo first; read x; echo second"], {
    token: TOKEN,
    stdin: "piped",
  });
  const reader = proc.stdout.getReader();
  // The command waits for input after "first": it must arrive before any.
  deepEqual(decoder.decode((await reader.read()).value), "first\n");
  const writer = proc.stdin.getWriter();
  await writer.write(new TextEncoder().encode("go\n"));
  await writer.close();
  deepEqual(decoder.decode((await reader.read()).value), "second\n");
  deepEqual((await reader.read()).done, true);
  await proc.stderr.cancel();
  deepEqual((await proc.status).code, 0);
});

Deno.test("a death by signal is reported as 128+N with the signal's name", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, ["sh", "-c", "kill -9 $$"], { token: TOKEN });
  const { status } = await collect(proc);
  deepEqual([status.code, status.signal, status.timedOut], [137, "SIGKILL", false]);
});

Deno.test("the time limit ends the command and says so", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, ["sleep", "30"], { token: TOKEN, timeout: 200 });
  const { status } = await collect(proc);
  deepEqual([status.code, status.signal, status.timedOut], [143, "SIGTERM", true]);
  ok(status.duration < 5000, `took ${status.duration} ms`);
});

Deno.test("the server's time limit caps the client's", async () => {
  await using s = await execServer({ timeout: 200 });
  await using proc = await exec(s.address, ["sleep", "30"], { token: TOKEN, timeout: 60_000 });
  deepEqual((await collect(proc)).status.timedOut, true);
});

Deno.test("kill sends a signal to the remote process group", async () => {
  await using s = await execServer();
  await using proc = await exec(s.address, [
    "sh",
    "-c",
    'trap "echo got-int; exit 5" INT; echo ready; while :; do sleep 0.05; done',
  ], { token: TOKEN });
  const reader = proc.stdout.getReader();
  deepEqual(decoder.decode((await reader.read()).value), "ready\n");
  await proc.kill("SIGINT");
  let rest = "";
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    rest += decoder.decode(r.value);
  }
  await proc.stderr.cancel();
  deepEqual(rest, "got-int\n");
  deepEqual((await proc.status).code, 5);
});

Deno.test({
  name: "a client that disconnects takes the whole process group with it",
  ignore: !unix,
  async fn() {
    await using s = await execServer();
    const proc = await exec(s.address, ["sh", "-c", "sleep 60 & echo $$ $!; wait"], {
      token: TOKEN,
    });
    const reader = proc.stdout.getReader();
    const [shell, grandchild] = decoder.decode((await reader.read()).value).trim().split(" ")
      .map(Number) as [number, number];
    ok(!(await gone(grandchild)), "the grandchild runs before the disconnect");
    reader.releaseLock();
    await proc[Symbol.asyncDispose]();
    ok(await waitGone(shell), `shell ${shell} still runs`);
    ok(await waitGone(grandchild), `grandchild ${grandchild} still runs`);
    await waitFor(() => s.events.some((e) => e.type === "closed"), 5000, "the session to close");
  },
});

Deno.test({
  name: "background processes left behind by the command are ended with it",
  ignore: !unix,
  async fn() {
    await using s = await execServer();
    // The shell exits at once; its background sleep keeps stdout open.
    await using proc = await exec(s.address, [
      "sh",
      "-c",
      "sleep 60 & echo $!",
    ], { token: TOKEN });
    const { stdout, status } = await collect(proc);
    deepEqual(status.code, 0);
    ok(await waitGone(Number(stdout.trim())), "the background sleep survived");
  },
});

Deno.test({
  name: "server shutdown sends SIGTERM to running commands and still reports their exit",
  ignore: !unix,
  async fn(t) {
    await t.step("a command that ends on SIGTERM", async () => {
      const s = await execServer();
      await using proc = await exec(s.address, ["sh", "-c", "sleep 60 & echo $!; wait"], {
        token: TOKEN,
      });
      const reader = proc.stdout.getReader();
      const grandchild = Number(decoder.decode((await reader.read()).value).trim());
      reader.releaseLock();
      const stopped = s.server.shutdown();
      const status = await proc.status;
      deepEqual([status.code, status.signal, status.timedOut], [143, "SIGTERM", false]);
      await stopped;
      ok(await waitGone(grandchild), `grandchild ${grandchild} still runs`);
      await proc.stdout.cancel();
      await proc.stderr.cancel();
    });
    await t.step("a command that cleans up on SIGTERM", async () => {
      const s = await execServer();
      await using proc = await exec(s.address, [
        "sh",
        "-c",
        'trap "echo cleaned up; exit 0" TERM; echo ready; while :; do sleep 0.05; done',
      ], { token: TOKEN });
      const reader = proc.stdout.getReader();
      deepEqual(decoder.decode((await reader.read()).value), "ready\n");
      const stopped = s.server.shutdown();
      let rest = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        rest += decoder.decode(r.value);
      }
      await proc.stderr.cancel();
      deepEqual(rest, "cleaned up\n");
      deepEqual((await proc.status).code, 0);
      await stopped;
    });
  },
});

Deno.test("the command gets a minimal environment without the server's secrets", async () => {
  Deno.env.set("SOCKIT_TOKEN", TOKEN);
  try {
    await using s = await execServer({ envAllow: ["FOO"] });
    await using proc = await exec(s.address, ["env"], { token: TOKEN, env: { FOO: "bar baz" } });
    const { stdout } = await collect(proc);
    const names = stdout.trim().split("\n").map((l) => l.slice(0, l.indexOf("="))).sort();
    ok(!names.includes("SOCKIT_TOKEN"), stdout);
    ok(names.every((n) => ["FOO", "HOME", "LANG", "PATH"].includes(n)), stdout);
    ok(stdout.includes("FOO=bar baz\n"), stdout);
  } finally {
    Deno.env.delete("SOCKIT_TOKEN");
  }
});

Deno.test("refusals: nothing runs", async (t) => {
  const dir = await Deno.makeTempDir();
  const marker = `${dir}/marker`;
  const refused = async (address: string, argv: string[], code: string, options = {}) => {
    await rejects(
      exec(address, argv, { token: TOKEN, ...options }),
      (e) => e instanceof RemoteError && e.code === code,
    );
    await rejects(Deno.stat(marker), Deno.errors.NotFound);
  };
  try {
    await t.step("a program not on the allowlist", async () => {
      await using s = await execServer({ allow: ["printf"] });
      await refused(s.address, ["touch", marker], "not_allowed");
      // A path to an allowed name is a different program.
      await refused(s.address, ["/usr/bin/printf", "x"], "not_allowed");
    });
    await t.step("an environment variable the operator did not allow", async () => {
      await using s = await execServer();
      await refused(s.address, ["touch", marker], "not_allowed", { env: { LD_PRELOAD: "x" } });
    });
    await t.step("a program that does not exist", async () => {
      await using s = await execServer();
      await refused(s.address, ["sockit-no-such-program"], "not_found");
    });
    await t.step("a file that is not executable", async () => {
      await using s = await execServer();
      await Deno.writeTextFile(`${dir}/plain`, "touch marker\n");
      await refused(s.address, [`${dir}/plain`], "not_executable");
    });
    await t.step("a working directory that does not exist", async () => {
      await using s = await execServer();
      await refused(s.address, ["touch", marker], "not_found", { cwd: `${dir}/nowhere` });
    });
    await t.step("a wrong token", async () => {
      await using s = await execServer();
      await rejects(
        exec(s.address, ["touch", marker], { token: "some-other-token-0123456789" }),
        (e) => e instanceof RemoteError && e.code === "auth_failed",
      );
      await rejects(Deno.stat(marker), Deno.errors.NotFound);
    });
    await t.step("a server without exec", async () => {
      await using s = await startServer({ token: TOKEN });
      await refused(s.address, ["touch", marker], "unknown_service");
    });
    await t.step("every exec slot taken", async () => {
      await using s = await execServer({ maxConcurrent: 1 });
      await using first = await exec(s.address, ["sleep", "30"], { token: TOKEN });
      await refused(s.address, ["touch", marker], "busy");
      first.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec cannot be served without a token", async () => {
  await rejects(
    serve({ listen: ["127.0.0.1:0"], services: [execService()] }),
    TypeError,
  );
});

Deno.test("50 commands at once each get their own output", async () => {
  // All from one address: no per-source cap.
  await using s = await execServer({}, { sourceGuard: false });
  const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    await using proc = await exec(s.address, ["sh", "-c", `sleep 0.2; echo ${i}; echo e${i} >&2`], {
      token: TOKEN,
    });
    return await collect(proc);
  }));
  results.forEach((r, i) => {
    deepEqual([r.stdout, r.stderr, r.status.code], [`${i}\n`, `e${i}\n`, 0]);
  });
});

Deno.test("malformed exec requests get an error, and the server serves on", async (t) => {
  await using s = await execServer();
  const cases: [string, Uint8Array, string][] = [
    ["argv not an array", encodeControl(MessageType.Exec, { argv: "uname -a" }), "bad_message"],
    ["empty argv", encodeControl(MessageType.Exec, { argv: [] }), "bad_message"],
    [
      "NUL in an argument",
      encodeControl(MessageType.Exec, { argv: ["echo", "a\0b"] }),
      "bad_message",
    ],
    ["body not JSON", new Uint8Array([MessageType.Exec, 0x7b]), "bad_message"],
    ["DATA instead of EXEC", new Uint8Array([MessageType.Data, 1]), "bad_message"],
    [
      "negative timeout",
      encodeControl(MessageType.Exec, { argv: ["true"], timeout: -1 }),
      "bad_message",
    ],
  ];
  for (const [name, payload, code] of cases) {
    await t.step(name, async () => {
      const { conn, reader } = await rawSession(s.address, "exec", TOKEN);
      await send(conn, encodeFrame(payload));
      const messages = await readUntilClose(conn);
      void reader;
      deepEqual(errorOf(messages)?.code, code);
      conn.close();
    });
  }
  await t.step("an oversize frame", async () => {
    const { conn } = await rawSession(s.address, "exec", TOKEN);
    const header = new Uint8Array([0x7f, 0, 0, 0]);
    await send(conn, header);
    deepEqual(errorOf(await readUntilClose(conn))?.code, "frame_too_large");
    conn.close();
  });
  await t.step("stdin beyond the granted window", async () => {
    const { conn, reader } = await rawSession(s.address, "exec", TOKEN);
    await send(
      conn,
      encodeFrame(encodeControl(MessageType.Exec, { argv: ["sleep", "30"], stdin: true })),
    );
    const started = await readMessage(reader);
    deepEqual(started?.json?.kind, "started");
    const window = started!.json!.stdinWindow as number;
    const chunk = new Uint8Array(2 + 64 * 1024);
    chunk[0] = MessageType.Stream;
    chunk[1] = StreamId.Stdin;
    // The command reads nothing: beyond what its pipe buffer takes, no
    // credit comes back, so a few frames past the window overrun it.
    const frames = Math.ceil(window / (64 * 1024)) + 8;
    const sending = (async () => {
      try {
        for (let i = 0; i < frames; i++) await send(conn, encodeFrame(chunk));
      } catch {
        // The server may close before every frame is written.
      }
    })();
    const messages: number[] = [];
    let error: Record<string, unknown> | undefined;
    for (let m = await readMessage(reader); m; m = await readMessage(reader).catch(() => null)) {
      messages.push(m.type);
      if (m.type === MessageType.Error) error = m.json;
    }
    await sending;
    deepEqual(error?.code, "bad_message");
    conn.close();
  });
  await t.step("the server still runs commands", async () => {
    await using proc = await exec(s.address, ["printf", "ok"], { token: TOKEN });
    deepEqual((await collect(proc)).stdout, "ok");
  });
});

Deno.test("a client that reads slowly holds the command back, not server memory", async () => {
  await using s = await execServer();
  const dir = await Deno.makeTempDir();
  try {
    const marker = `${dir}/done`;
    const before = Deno.memoryUsage().rss;
    await using proc = await exec(s.address, [
      "sh",
      "-c",
      `head -c 100000000 /dev/zero; touch ${marker}`,
    ], { token: TOKEN });
    // Read nothing: the command must block on its pipe and stay blocked.
    // Wait for that itself, bounded: its writer asleep on a pipe and its
    // count of bytes written unchanged over a few samples (ps, not /proc,
    // which Deno opens only with --allow-all). A server that buffered the
    // output would keep the count growing until the command ended.
    const ps = async (...args: string[]) => {
      const { stdout } = await new Deno.Command("ps", { args, stdout: "piped", stderr: "null" })
        .output();
      return decoder.decode(stdout).trim();
    };
    let stalled = false, seen = false, last = "";
    for (let same = 0, end = performance.now() + 10_000; performance.now() < end;) {
      const shell = (await ps("-o", "pid=,args=", "--ppid", String(Deno.pid)))
        .split("\n").find((line) => line.includes(marker))?.trim().split(/\s+/)[0];
      const writer = shell ? await ps("-o", "stat=,wchan:40=,wchars=,args=", "--ppid", shell) : "";
      if (writer.includes("head -c")) seen = true;
      else if (seen) break; // it finished: its output went somewhere
      const [stat = "", wchan = "", written = ""] = writer.split(/\s+/);
      const asleep = stat.startsWith("S") && /pipe/.test(wchan) && /^\d+$/.test(written);
      same = asleep && written === last ? same + 1 : 0;
      last = written;
      if ((stalled = same >= 3)) break;
      await delay(20);
    }
    ok(stalled, `the command did not stay blocked on its pipe (last wrote ${last} bytes)`);
    await rejects(Deno.stat(marker), Deno.errors.NotFound);
    const grown = Deno.memoryUsage().rss - before;
    ok(grown < 48 * 1024 * 1024, `memory grew by ${grown} bytes while the client read nothing`);
    let length = 0;
    for await (const chunk of proc.stdout) length += chunk.length;
    await proc.stderr.cancel();
    deepEqual(length, 100_000_000);
    deepEqual((await proc.status).code, 0);
    await Deno.stat(marker);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a process that ignores SIGTERM and closes its output is still ended",
  ignore: !unix,
  async fn() {
    await using s = await execServer({ killGrace: 300 });
    await using proc = await exec(s.address, [
      "sh",
      "-c",
      '(trap "" TERM; exec sleep 60) </dev/null >/dev/null 2>&1 & echo $!',
    ], { token: TOKEN });
    const { stdout, status } = await collect(proc);
    deepEqual(status.code, 0);
    ok(await waitGone(Number(stdout.trim())), "the sleep that ignores SIGTERM survived");
  },
});
