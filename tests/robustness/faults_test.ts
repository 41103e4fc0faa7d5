/**
 * Faults injected into the real CLI (issue 8): a client killed mid-exec, a
 * connection reset in the middle of a frame, a server out of file
 * descriptors, and a server killed mid-exec. The faults upload_cli_test.ts
 * already covers (a server or client killed mid-upload, a full disk, two
 * clients racing for a name) are not repeated here.
 *
 * Waits follow events, not the clock: server events come from its NDJSON
 * log as they are printed, and the commands of an exec are found with `ps`
 * by a marker argument unique to the run (the test runner cannot read /proc
 * without --allow-all). Every wait has a deadline, so a fault that is not
 * handled fails the test instead of hanging it.
 */

import { deepEqual, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { connect as nodeConnect } from "node:net";
import {
  type CliEvent,
  type EventServer,
  kill,
  NET,
  sockit,
  spawnCli,
  startEventServer,
} from "../_cli.ts";
import {
  concat,
  frameHeader,
  helloFrame,
  messageFrame,
  rawConnect,
  rawSession,
  readMessage,
  send,
} from "../_utils.ts";
import {
  computeProof,
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  MessageType,
} from "../_lib.ts";

/** A token no generated one equals (generated ones are 43 characters). */
const TOKEN = "faults-test-token-0123456789";

/** Milliseconds between SIGTERM and SIGKILL for an exec command (the server's default). */
const KILL_GRACE = 5_000;

type Event = CliEvent;
type CliServer = EventServer;

/** A temporary directory holding a token file (mode 0600), removed on disposal. */
async function tokenDir(): Promise<AsyncDisposable & { dir: string; tokenFile: string }> {
  const dir = await Deno.makeTempDir({ prefix: "sockit-faults-" });
  const tokenFile = `${dir}/token`;
  await Deno.writeTextFile(tokenFile, TOKEN + "\n", { mode: 0o600 });
  await Deno.chmod(tokenFile, 0o600);
  return { dir, tokenFile, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/**
 * Starts `sockit server --json --listen 127.0.0.1:0 ARGS` with exactly
 * `permissions`, optionally under a lower open-file limit, and waits (10 s
 * at most) for its `listening` event.
 */
function startServer(
  permissions: readonly string[],
  args: readonly string[],
  options: { nofile?: number } = {},
): Promise<CliServer> {
  return startEventServer(permissions, ["--listen", "127.0.0.1:0", ...args], options);
}

/** The events of a server that report trouble inside it: anything but a peer's fault. */
function internalErrors(server: CliServer): Event[] {
  return server.events.filter((e) =>
    e.type === "unparsable" || (e.type === "error" && e.code !== "accept_failed")
  );
}

/** A process as `ps` lists it. */
interface Proc {
  pid: number;
  pgid: number;
  stat: string;
  args: string;
}

/** Why `ps -eo pid,pgid,stat,args` cannot be used here, or undefined when it can. */
async function psMissing(): Promise<string | undefined> {
  try {
    const { code } = await new Deno.Command("ps", {
      args: ["-eo", "pid=,pgid=,stat=,args="],
      stdout: "null",
      stderr: "null",
    }).output();
    return code === 0 ? undefined : `ps -eo pid,pgid,stat,args exited ${code}`;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "no ps on PATH";
    throw error;
  }
}

/** Every live process (zombies left out: they run nothing and hold no resources but a pid). */
async function processes(): Promise<Proc[]> {
  const { code, stdout } = await new Deno.Command("ps", {
    args: ["-eo", "pid=,pgid=,stat=,args="],
    stderr: "null",
  }).output();
  deepEqual(code, 0, "ps failed");
  const found: Proc[] = [];
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m && !m[3]!.startsWith("Z")) {
      found.push({ pid: Number(m[1]), pgid: Number(m[2]), stat: m[3]!, args: m[4]! });
    }
  }
  return found;
}

/** A `sleep` duration unique to this run: it marks the processes of one test in `ps`. */
function uniqueMarker(): string {
  const n = crypto.getRandomValues(new Uint32Array(1))[0]! % 1_000_000;
  return `30.${String(n).padStart(6, "0")}`;
}

/**
 * The process group of the command `sh -c SCRIPT` whose script holds
 * `marker`: its leader (the shell) and every live member. The exec client's
 * own argv holds the marker too; it is told apart by not being `sh -c`.
 */
function groupOf(procs: Proc[], marker: string): { leader?: Proc; members: Proc[] } {
  // The server runs PROGRAM by its path: ps shows "/usr/bin/sh -c …".
  const leader = procs.find((p) => /^(\S*\/)?sh -c /.test(p.args) && p.args.includes(marker));
  const members = leader ? procs.filter((p) => p.pgid === leader.pgid) : [];
  return leader ? { leader, members } : { members };
}

/** Polls `ps` every 50 ms until `done` holds, for `ms` at most; returns the last listing. */
async function pollPs(done: (procs: Proc[]) => boolean, ms: number): Promise<Proc[]> {
  const deadline = performance.now() + ms;
  for (;;) {
    const procs = await processes();
    if (done(procs) || performance.now() > deadline) return procs;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Processes of group `pgid`, or `sleep MARKER` wherever it went. */
function leftovers(procs: Proc[], pgid: number, marker: string): Proc[] {
  return procs.filter((p) => p.pgid === pgid || p.args === `sleep ${marker}`);
}

/** Sends SIGKILL to process group `pgid`, if any of it is left (test clean-up). */
function killGroup(pgid: number): void {
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error; // ESRCH: gone already
  }
}

/**
 * Starts `sockit exec ADDR -- sh -c SCRIPT` and waits (10 s at most) until
 * `ps` shows the shell and `count` other members of its process group.
 */
async function startExec(
  address: string,
  tokenFile: string,
  script: string,
  marker: string,
  count: number,
) {
  const { child } = await spawnCli(
    [...NET, `--allow-read=${tokenFile}`],
    ["exec", address, "--token-file", tokenFile, "--", "sh", "-c", script],
    { timeout: 30_000 },
  );
  const output = child.output();
  const procs = await pollPs((p) => groupOf(p, marker).members.length >= count + 1, 10_000);
  const { leader, members } = groupOf(procs, marker);
  if (!leader || members.length < count + 1) {
    kill(child, "SIGKILL");
    const { stderr } = await output;
    if (leader) killGroup(leader.pgid);
    throw new Error(
      `the command did not start: ${JSON.stringify(members)} ${new TextDecoder().decode(stderr)}`,
    );
  }
  return { child, output, leader, members };
}

Deno.test("a sockit exec client killed with SIGKILL leaves no process of its command behind", async (t) => {
  const missing = await psMissing();
  if (missing) console.log(`skipping the exec fault tests: ${missing}`);
  await using tokens = await tokenDir();
  const { tokenFile } = tokens;
  await using server = missing ? undefined : await startServer(
    [...NET, "--allow-run", `--allow-read=${tokenFile}`, "--allow-env=PATH,LANG,HOME"],
    ["--exec", "--exec-allow", "sh", "--token-file", tokenFile],
  );

  for (
    const [name, prefix] of [
      ["the group (a shell, a background and a foreground sleep) ends at once", ""],
      [
        `a group that ignores SIGTERM is killed within the ${KILL_GRACE} ms grace`,
        `trap "" TERM; `,
      ],
    ] as const
  ) {
    await t.step({
      name,
      ignore: server === undefined,
      fn: async () => {
        const marker = uniqueMarker();
        const script = `${prefix}sleep ${marker} & sleep ${marker}; wait`;
        const exec = await startExec(server!.address, tokenFile, script, marker, 2);
        const { leader, members } = exec;
        try {
          deepEqual(leader.pgid, leader.pid, "the shell leads a process group of its own");
          deepEqual(
            members.map((p) => p.args.replace(/^\S*\/sh /, "sh ")).sort(),
            [`sh -c ${script}`, `sleep ${marker}`, `sleep ${marker}`],
          );
          const sessions = server!.events.filter((e) => e.type === "closed").length;
          kill(exec.child, "SIGKILL");
          const killedAt = performance.now();
          deepEqual((await exec.output).signal, "SIGKILL");
          const left = await pollPs(
            (p) => leftovers(p, leader.pgid, marker).length === 0,
            KILL_GRACE + 2_000,
          );
          const elapsed = Math.round(performance.now() - killedAt);
          deepEqual(
            leftovers(left, leader.pgid, marker),
            [],
            `still running ${elapsed} ms after the client died`,
          );
          if (prefix) {
            // Proof that the grace was used: SIGTERM first, SIGKILL only later.
            ok(elapsed >= 2_000, `a group ignoring SIGTERM went in ${elapsed} ms`);
          }
          console.log(`  the group was gone ${elapsed} ms after the client's SIGKILL`);
          // The server saw the session end and goes on.
          await server!.next(
            "the killed client's session to close",
            () => server!.events.filter((e) => e.type === "closed").length > sessions,
          );
          ok(!server!.exited, "the server exited");
        } finally {
          kill(exec.child, "SIGKILL");
          await exec.output;
          killGroup(leader.pgid);
        }
      },
    });
  }

  await t.step({
    name: "the server goes on serving exec, and stops cleanly",
    ignore: server === undefined,
    fn: async () => {
      const result = await sockit(
        [...NET, `--allow-read=${tokenFile}`],
        ["exec", server!.address, "--token-file", tokenFile, "--", "sh", "-c", "echo canary"],
      );
      deepEqual(result, { code: 0, stdout: "canary\n", stderr: "" });
      deepEqual(internalErrors(server!), []);
      const stopped = await server!.stop();
      deepEqual(stopped.code, 0, stopped.stderr);
    },
  });
});

Deno.test("a sockit server killed with SIGKILL mid-exec: the client fails in one line (the command is orphaned)", async (t) => {
  const missing = await psMissing();
  if (missing) console.log(`skipping: ${missing}`);
  await t.step({
    name: "observe",
    ignore: missing !== undefined,
    fn: async () => {
      await using tokens = await tokenDir();
      const { tokenFile } = tokens;
      await using server = await startServer(
        [...NET, "--allow-run", `--allow-read=${tokenFile}`, "--allow-env=PATH,LANG,HOME"],
        ["--exec", "--exec-allow", "sh", "--token-file", tokenFile],
      );
      const marker = uniqueMarker();
      const script = `sleep ${marker} & sleep ${marker}; wait`;
      const exec = await startExec(server.address, tokenFile, script, marker, 2);
      const { leader } = exec;
      try {
        const crashed = await server.crash();
        deepEqual(crashed.code, 137, "killed by SIGKILL");
        const client = await exec.output;
        const stderr = new TextDecoder().decode(client.stderr);
        deepEqual(client.code, 255, stderr);
        deepEqual(stderr.split("\n").length, 2, `not one line: ${stderr}`);
        match(stderr, /^sockit: /);
        // Nothing kills the group once the server is gone: a SIGKILLed
        // process cannot clean up, and the command's process group is
        // detached from it on purpose. Reported, not asserted (see the
        // report of issue 8): the group runs until its commands end.
        const left = leftovers(await processes(), leader.pgid, marker);
        console.log(
          `  client: ${stderr.trim()}\n  finding: ${left.length} process(es) of the ` +
            `command's group outlived the server: ` +
            left.map((p) => `${p.pid} "${p.args}"`).join(", "),
        );
      } finally {
        kill(exec.child, "SIGKILL");
        await exec.output;
        killGroup(leader.pgid);
        const left = await pollPs((p) => leftovers(p, leader.pgid, marker).length === 0, 5_000);
        deepEqual(leftovers(left, leader.pgid, marker), [], "the test's clean-up failed");
      }
    },
  });
});

/**
 * A raw client connection that can end with a TCP reset (RST) instead of a
 * clean close (FIN). `Deno.TcpConn` cannot: it has no SO_LINGER, and its
 * `close()` sends FIN even with unread bytes in the receive buffer (seen
 * here: the peer read EOF with 3,999 bytes left unread, where a Python
 * socket closed the same way gives the peer ECONNRESET). `node:net`'s
 * `resetAndDestroy()` sets SO_LINGER to 0 and closes, which sends RST at
 * once; Linux still delivers the bytes sent before it, then fails the
 * peer's next read with ECONNRESET.
 */
interface ResettableConn {
  /** The local port, which the server logs as the peer's. */
  readonly localPort: number;
  /** Writes `bytes`; resolves once they are handed to the kernel. */
  send(bytes: Uint8Array): Promise<void>;
  /** The payload of the next frame from the server (10 s at most). */
  read(): Promise<Uint8Array>;
  /** Closes with RST; resolves once the socket is closed. */
  reset(): Promise<void>;
}

/** Opens a {@linkcode ResettableConn} to `address` (`HOST:PORT`). */
async function resettableConnect(address: string): Promise<ResettableConn> {
  const [, host, port] = /^(.*):(\d+)$/.exec(address)!;
  const socket = nodeConnect(Number(port), host!);
  let pending: Uint8Array = new Uint8Array(0);
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => wake?.();
  socket.on("data", (chunk: Uint8Array) => {
    pending = concat(pending, chunk);
    notify();
  });
  socket.on("error", (error: Error) => {
    failure = error;
    notify();
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  closed.then(notify);
  let isClosed = false;
  closed.then(() => isClosed = true);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return {
    localPort: socket.localPort!,
    send: (bytes) =>
      new Promise((resolve, reject) =>
        socket.write(bytes, (error) => error ? reject(error) : resolve())
      ),
    async read() {
      const deadline = performance.now() + 10_000;
      for (;;) {
        if (pending.length >= 4) {
          const length = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
          if (pending.length >= 4 + length) {
            const payload = pending.slice(4, 4 + length);
            pending = pending.slice(4 + length);
            return payload;
          }
        }
        if (failure || isClosed) throw failure ?? new Error("the server closed the connection");
        const left = deadline - performance.now();
        if (left <= 0) throw new Error("no frame from the server within 10 s");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    },
    async reset() {
      socket.resetAndDestroy();
      await closed;
    },
  };
}

/** Opens a session of `service` on a {@linkcode ResettableConn}, proving {@linkcode TOKEN}. */
async function resettableSession(address: string, service: string): Promise<ResettableConn> {
  const conn = await resettableConnect(address);
  await conn.send(helloFrame(service)); // its client nonce is 32 bytes of 7
  const challenge = await conn.read();
  deepEqual(challenge[0], MessageType.Challenge, JSON.stringify(decodeControl(challenge)));
  const serverNonce = Uint8Array.fromBase64(decodeControl(challenge).nonce as string);
  const proof = await computeProof(
    TOKEN,
    "client",
    service,
    serverNonce,
    new Uint8Array(32).fill(7),
  );
  await conn.send(encodeFrame(encodeControl(MessageType.Auth, { proof: proof.toBase64() })));
  const welcome = await conn.read();
  deepEqual(welcome[0], MessageType.Welcome, JSON.stringify(decodeControl(welcome)));
  return conn;
}

/** `n` random bytes (getRandomValues fills at most 65,536 at a time). */
function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let at = 0; at < n; at += 65_536) crypto.getRandomValues(bytes.subarray(at, at + 65_536));
  return bytes;
}

/** Sends DATA frames and checks each comes back unchanged. */
async function echoes(conn: Deno.Conn, reader: FrameReader, sizes = [1, 1000, 60_000]) {
  for (const size of sizes) {
    const body = randomBytes(size);
    await send(conn, messageFrame(MessageType.Data, body));
    const reply = await readMessage(reader);
    deepEqual(reply?.type, MessageType.Data);
    ok(reply.body.length === size && reply.body.every((b, i) => b === body[i]), "echo differs");
  }
}

/** The `closed` event of the connection from local port `port`. */
function closedOf(server: CliServer, port: number) {
  const remote = `127.0.0.1:${port}`;
  return server.next(
    `the close of ${remote}`,
    (e) => e.type === "closed" && e.remote === remote,
  );
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

Deno.test("a connection reset in the middle of a frame costs only that connection", async (t) => {
  await using tokens = await tokenDir();
  const { dir, tokenFile } = tokens;
  const uploads = `${dir}/uploads`;
  await Deno.mkdir(uploads, { mode: 0o755 });
  await Deno.chmod(uploads, 0o755);
  // No --allow-sys=statfs: the server warns and skips the free-space check,
  // so a full /tmp cannot make this test fail for another reason.
  await using server = await startServer(
    [...NET, `--allow-read=${uploads},${tokenFile}`, `--allow-write=${uploads}`],
    ["--token-file", tokenFile, "--upload-dir", uploads],
  );

  const ping = messageFrame(MessageType.Ping, new Uint8Array(8));
  const rows: [string, (address: string) => Promise<ResettableConn>][] = [
    ["inside the handshake, in the AUTH frame's payload", async (address) => {
      const conn = await resettableConnect(address);
      await conn.send(helloFrame("echo"));
      deepEqual((await conn.read())[0], MessageType.Challenge);
      await conn.send(concat(frameHeader(100), new Uint8Array(10)));
      return conn;
    }],
    ["inside a frame's 4-byte header", async (address) => {
      const conn = await resettableSession(address, "echo");
      // The PONG shows that the server read the PING and is waiting for
      // the rest of the frame that came with it.
      await conn.send(concat(ping, frameHeader(9).subarray(0, 2)));
      deepEqual((await conn.read())[0], MessageType.Pong);
      return conn;
    }],
    ["inside a frame's payload", async (address) => {
      const conn = await resettableSession(address, "echo");
      await conn.send(
        concat(ping, frameHeader(65_537), new Uint8Array([MessageType.Data]), randomBytes(500)),
      );
      deepEqual((await conn.read())[0], MessageType.Pong);
      return conn;
    }],
  ];
  for (const [name, start] of rows) {
    await t.step(`echo, reset ${name}: closed as ConnectionReset; a canary is served`, async () => {
      const conn = await start(server.address);
      const closed = closedOf(server, conn.localPort);
      await conn.reset();
      // ConnectionReset, not truncated_frame: the server saw a reset, not an
      // end of stream inside the frame.
      deepEqual((await closed).reason, "ConnectionReset", JSON.stringify(await closed));
      const canary = await rawSession(server.address, "echo", TOKEN);
      try {
        await echoes(canary.conn, canary.reader);
      } finally {
        canary.conn.close();
      }
      ok(!server.exited, "the server exited");
    });
  }

  await t.step(
    "upload, reset mid-DATA: nothing under the final name; the partial holds the whole frames; --resume completes it",
    async () => {
      const size = 300_000;
      const content = randomBytes(size);
      const frame = 65_536;
      const conn = await resettableSession(server.address, "upload");
      const closed = closedOf(server, conn.localPort);
      const file = { type: "file", name: "reset/data.bin", size };
      await conn.send(concat(
        messageFrame(MessageType.File, new TextEncoder().encode(JSON.stringify(file))),
        messageFrame(MessageType.Data, content.subarray(0, frame)),
        messageFrame(MessageType.Data, content.subarray(frame, 2 * frame)),
        ping,
      ));
      // The PONG shows that both DATA frames were written to the partial file.
      deepEqual((await conn.read())[0], MessageType.Pong);
      await conn.send(concat(
        ping,
        frameHeader(1 + frame),
        new Uint8Array([MessageType.Data]),
        content.subarray(2 * frame, 2 * frame + 500),
      ));
      deepEqual((await conn.read())[0], MessageType.Pong);
      await conn.reset();
      deepEqual((await closed).reason, "ConnectionReset", JSON.stringify(await closed));

      const names = [...Deno.readDirSync(uploads)].map((e) => e.name);
      deepEqual(names, [".sockit-partial"], "nothing under the final name, not even its directory");
      const parts = [...Deno.readDirSync(`${uploads}/.sockit-partial`)];
      deepEqual(parts.length, 1, JSON.stringify(parts));
      const partial = await Deno.readFile(`${uploads}/.sockit-partial/${parts[0]!.name}`);
      deepEqual(partial.length, 2 * frame, "the two whole DATA frames, nothing of the third");
      deepEqual(sha256(partial), sha256(content.subarray(0, 2 * frame)));

      // The real client resumes from exactly what the server holds.
      const src = `${dir}/data.bin`;
      await Deno.writeFile(src, content);
      const result = await sockit(
        [...NET, `--allow-read=${src},${tokenFile}`],
        [
          "upload",
          server.address,
          src,
          "--to",
          "reset",
          "--resume",
          "--json",
          "--token-file",
          tokenFile,
        ],
      );
      deepEqual(result.code, 0, result.stderr);
      const summary = result.stdout.trimEnd().split("\n").map((l) => JSON.parse(l)).at(-1);
      deepEqual(
        [summary.event, summary.committed, summary.bytesResumed, summary.bytesSent],
        ["summary", 1, 2 * frame, size - 2 * frame],
        result.stdout,
      );
      deepEqual(sha256(await Deno.readFile(`${uploads}/reset/data.bin`)), sha256(content));
      deepEqual([...Deno.readDirSync(`${uploads}/.sockit-partial`)], [], "no partial left");
    },
  );

  await t.step("no internal error was logged and the server stops cleanly", async () => {
    deepEqual(internalErrors(server), []);
    const stopped = await server.stop();
    deepEqual(stopped.code, 0, stopped.stderr);
  });
});

/** A connection whose handshake may wait, with the session it becomes. */
interface Opening {
  conn: Deno.TcpConn;
  /** Resolves once the session is welcomed; rejects when the connection fails or is closed. */
  ready: Promise<FrameReader>;
}

/**
 * Connects to `address` and runs the echo handshake with {@linkcode TOKEN}
 * in the background, so that a connection the server cannot accept yet
 * (it waits in the listen backlog) can still be closed by the test.
 */
async function openSession(address: string): Promise<Opening> {
  const conn = await rawConnect(address);
  const ready = (async () => {
    const reader = new FrameReader(conn, { maxFrameLength: 1 << 20 });
    const clientNonce = new Uint8Array(32).fill(7); // helloFrame's
    await send(conn, helloFrame("echo"));
    const challenge = await readMessage(reader);
    deepEqual(challenge?.type, MessageType.Challenge, JSON.stringify(challenge?.json));
    const serverNonce = Uint8Array.fromBase64(challenge.json!.nonce as string);
    const proof = await computeProof(TOKEN, "client", "echo", serverNonce, clientNonce);
    await send(conn, encodeFrame(encodeControl(MessageType.Auth, { proof: proof.toBase64() })));
    const welcome = await readMessage(reader);
    deepEqual(welcome?.type, MessageType.Welcome, JSON.stringify(welcome?.json));
    return reader;
  })();
  ready.catch(() => {}); // awaited by the test; this only keeps it from counting as unhandled
  return { conn, ready };
}

/** The server's `connected` event for `opening`, if it accepted it. */
function connectedEvent(server: CliServer, opening: Opening): Event | undefined {
  const remote = `127.0.0.1:${(opening.conn.localAddr as Deno.NetAddr).port}`;
  return server.events.find((e) => e.type === "connected" && e.remote === remote);
}

/** `promise`, or a rejection naming `what` after `ms`. */
async function within<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a sockit server out of file descriptors keeps its sessions, logs accept_failed and recovers", async (t) => {
  await using tokens = await tokenDir();
  const { tokenFile } = tokens;
  // 64 descriptors: Deno holds about 20 of its own (stdio, epoll, its
  // caches), which leaves room for about 40 connections.
  await using server = await startServer(
    [...NET, `--allow-read=${tokenFile}`],
    ["--token-file", tokenFile],
    { nofile: 64 },
  );
  const accepted: Opening[] = [];
  let waiting: Opening | undefined;
  const isAcceptFailed = (e: Event) => e.type === "error" && e.code === "accept_failed";
  try {
    await t.step("sessions are opened until accept fails (at most 100)", async () => {
      const failures = () => server.events.filter(isAcceptFailed).length;
      for (let i = 0; i < 100 && !waiting; i++) {
        const opening = await openSession(server.address);
        // The server reports accept failures at most once per 10 s, so the
        // failure that stops this connection may have been reported already.
        const stop = new AbortController();
        const failed = server.next("accept_failed", () => failures() > 0, 10_000, stop.signal);
        failed.catch(() => {});
        // Served, or the server logged that an accept failed meanwhile.
        const served = await Promise.race([
          opening.ready.then(() => true),
          failed.then(() => false),
        ]).finally(() => stop.abort());
        // The accept that fails may be the one after this connection's,
        // which took the last descriptor: it was logged as connected before.
        // Not served yet while a failure is on record: give it a bounded
        // moment to be accepted after all (a failure reported earlier).
        const late = served || await Promise.race([
          opening.ready.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
        ]);
        if (late || connectedEvent(server, opening)) {
          await within("the handshake of an accepted connection", opening.ready, 10_000);
          accepted.push(opening);
        } else {
          waiting = opening;
        }
      }
      ok(waiting, `${accepted.length} sessions and accept never failed`);
      ok(accepted.length >= 10, `accept failed after ${accepted.length} sessions`);
      const failure = server.events.find(isAcceptFailed)!;
      match(String(failure.message), /too many open files|os error 24/i);
      console.log(`  accept failed after ${accepted.length} sessions: ${failure.message}`);
    });

    await t.step("the server still runs and established sessions still round-trip", async () => {
      ok(!server.exited, "the server exited");
      let served = false;
      waiting?.ready.then(() => served = true, () => {});
      for (const opening of [accepted[0]!, accepted.at(-1)!]) {
        await echoes(opening.conn, await opening.ready);
      }
      ok(
        !served && !connectedEvent(server, waiting!),
        "a connection was served without a descriptor",
      );
    });

    await t.step(
      "once sessions close, the waiting connection and a new CLI client are served",
      async () => {
        const failedSoFar = server.events.filter(isAcceptFailed).length;
        const exhaustedFor = Date.now() -
          Date.parse(String(server.events.find(isAcceptFailed)!.time));
        for (const opening of accepted.splice(accepted.length / 2)) opening.conn.close();
        const reader = await within("the waiting connection's handshake", waiting!.ready, 10_000);
        await echoes(waiting!.conn, reader);
        const result = await sockit(
          [...NET, `--allow-read=${tokenFile}`],
          ["client", server.address, "--token-file", tokenFile],
          { stdin: "canary\n" },
        );
        deepEqual(result, { code: 0, stdout: "canary\n", stderr: "" });
        for (const opening of accepted) await echoes(opening.conn, await opening.ready, [100]);
        const failures = server.events.filter(isAcceptFailed).length;
        console.log(
          `  accept_failed was logged ${failures} times, ${failedSoFar} of them in the ` +
            `${exhaustedFor} ms without a free descriptor`,
        );
        // Once per 10 s while it lasts, plus one line when accepting works again.
        ok(failures <= 3, `accept_failed logged ${failures} times: a log flood`);
      },
    );
  } finally {
    for (const opening of [...accepted, ...waiting ? [waiting] : []]) opening.conn.close();
  }

  await t.step("no other error was logged and the server stops cleanly", async () => {
    deepEqual(internalErrors(server), []);
    const stopped = await server.stop();
    deepEqual(stopped.code, 0, stopped.stderr);
  });
});
