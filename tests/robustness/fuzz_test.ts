/**
 * Protocol fuzzing: random and mutated frames in every protocol state,
 * against one live server with echo, chat, exec and upload (tests/_fuzz.ts
 * makes and plays them). After every run the server must (1) answer a canary
 * promptly, (2) hold no connection, chat name, exec slot or upload lock,
 * (3) have written nothing outside its upload directory and inside it only
 * files whose hash the fuzzer vouched for, (4) have started no forbidden
 * process, and (5) have reported no internal error; and each session must
 * have kept the promises its script checks (no WELCOME without a proof...).
 *
 * `SOCKIT_SOAK=1` runs twenty times as many runs; `SOCKIT_FUZZ_SEED=N` picks
 * another seed (a failure prints its seed and path); `SOCKIT_FUZZ_RUNS=N`
 * another number of runs; `SOCKIT_FUZZ_VERBOSE=1` lists the states reached,
 * the server's answers and the input kinds after the summary line.
 */

import { deepEqual, ok } from "node:assert/strict";
import fc from "fast-check";
import {
  ChatRoom,
  connect,
  echoService,
  encodeControl,
  encodeFrame,
  exec,
  execService,
  MessageType,
  type ServerEvent,
  uploadService,
  UploadStore,
} from "../_lib.ts";
import {
  chatNames,
  type FuzzLimits,
  type FuzzPaths,
  FuzzStats,
  runArbitrary,
  RunModel,
  SessionDriver,
  type SessionScript,
  sha256,
  uploadNames,
} from "../_fuzz.ts";
import { rawSession, readUntilClose, send, startServer, waitFor } from "../_utils.ts";

const TOKEN = "fuzz-test-token-0123456789";
/** About 45 s on two shared cores, mostly waiting out the server's short timeouts. */
const DEFAULT_RUNS = 300;
const DEFAULT_SEED = 20_260_817;

/** An environment variable, or `undefined` where --allow-env does not grant it. */
function env(name: string): string | undefined {
  const { state } = Deno.permissions.querySync({ name: "env", variable: name });
  return state === "granted" ? Deno.env.get(name) : undefined;
}

const LIMITS: FuzzLimits = {
  // Small, so that "just over the limit" costs little to send.
  maxFrame: 256 * 1024,
  maxHandshakeFrame: 16 * 1024,
  maxMessage: 4096,
  maxFileSize: 1024 * 1024,
};

/** Everything under `dir`, as relative paths, with what each is. */
async function walk(dir: string, prefix = ""): Promise<[string, Deno.FileInfo][]> {
  const found: [string, Deno.FileInfo][] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    const info = await Deno.lstat(path);
    found.push([prefix + entry.name, info]);
    if (info.isDirectory) found.push(...await walk(path, `${prefix}${entry.name}/`));
  }
  return found;
}

async function emptyDir(dir: string, keep: (name: string) => boolean = () => false) {
  for await (const entry of Deno.readDir(dir)) {
    if (!keep(entry.name)) await Deno.remove(`${dir}/${entry.name}`, { recursive: true });
  }
}

/** Back to the start: an empty upload directory with its planted link, empty sinks. */
async function resetDirs(paths: FuzzPaths): Promise<void> {
  await emptyDir(paths.up, (name) => name === ".sockit-partial");
  await emptyDir(`${paths.up}/.sockit-partial`);
  await emptyDir(paths.outside);
  await emptyDir(paths.markers);
  await emptyDir(paths.base, (name) => ["up", "outside", "markers"].includes(name));
  // A link out of the upload directory, as a local user might plant one.
  await Deno.symlink("../outside", `${paths.up}/link`);
}

/** Invariant 1: a fresh client gets its echo back within a second. */
async function checkCanary(address: string): Promise<void> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const session = await connect(address, {
    token: TOKEN,
    keepalive: false,
    connectTimeout: 1000,
    handshakeTimeout: 1000,
  });
  try {
    const probe = crypto.getRandomValues(new Uint8Array(16));
    await session.send(MessageType.Data, probe);
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), 1000);
    });
    const reply = await Promise.race([session.read(), timeout]);
    ok(reply !== "timeout", "the canary got no echo within 1 s");
    deepEqual(reply?.type, MessageType.Data);
    deepEqual(reply.body.slice(), probe);
  } finally {
    clearTimeout(timer);
    session.close();
  }
  const elapsed = performance.now() - started;
  ok(elapsed < 1000, `the canary took ${elapsed.toFixed(0)} ms`);
}

/**
 * Invariant 2, inside the services: no chat name, exec slot or upload lock
 * outlives its connection. Each would lock later clients out for good.
 */
async function checkServiceState(address: string, room: ChatRoom, paths: FuzzPaths) {
  deepEqual(room.members, [], "chat members outlived their connections");
  const joins = await Promise.allSettled(
    chatNames().map((name) =>
      connect(address, {
        service: "chat",
        token: TOKEN,
        params: { name },
        keepalive: false,
        handshakeTimeout: 1000,
      })
    ),
  );
  for (const join of joins) if (join.status === "fulfilled") join.value.close();
  const refused = joins.flatMap((j) => j.status === "rejected" ? [String(j.reason)] : []);
  ok(refused.length === 0, `chat names are still taken: ${refused.join("; ")}`);

  // maxConcurrent is 2: a single leaked slot makes one of these "busy".
  const runs = await Promise.allSettled([0, 1].map(async () => {
    await using proc = await exec(address, ["true"], { token: TOKEN, handshakeTimeout: 1000 });
    await Promise.all([proc.stdout.cancel(), proc.stderr.cancel()]);
    return (await proc.status).code;
  }));
  deepEqual(runs.map((r) => r.status === "fulfilled" ? r.value : String(r.reason)), [0, 0]);

  // One writer per name: a lock left behind makes every later upload "busy".
  // A wrong hash fails each entry after the lock, before any flush to disk.
  const { conn } = await rawSession(address, "upload", TOKEN);
  const names = uploadNames(paths).good;
  const wrong = sha256(new Uint8Array([1]));
  for (const name of names) {
    const file = { type: "file", name, size: 0, overwrite: true };
    await send(conn, encodeFrame(encodeControl(MessageType.File, file)));
    await send(conn, encodeFrame(encodeControl(MessageType.End, { sha256: wrong })));
  }
  await conn.closeWrite();
  const answers = (await readUntilClose(conn)).map((m) => m.json);
  conn.close();
  const busy = answers.filter((a) => a?.code === "busy").map((a) => a?.name);
  ok(busy.length === 0, `upload names are still locked: ${busy.join(", ")}`);
  deepEqual(answers.length, names.length, `upload canary answers: ${JSON.stringify(answers)}`);
}

/** Invariant 3: nothing outside the upload directory; inside, only vouched files. */
async function checkFiles(paths: FuzzPaths, model: RunModel): Promise<void> {
  const around = (await walk(paths.base)).map(([name]) => name).filter((n) => !n.startsWith("up/"));
  ok(
    around.sort().join() === "markers,outside,up",
    `something was written outside the upload directory: ${around.join(", ")}`,
  );
  for (const [name, info] of await walk(paths.up)) {
    if (name === ".sockit-partial" || name.startsWith(".sockit-partial/")) continue;
    const path = `${paths.up}/${name}`;
    if (name === "link" && info.isSymlink && await Deno.readLink(path) === "../outside") continue;
    if (info.isDirectory) {
      ok(model.damagedUpload || model.goodDirs.has(name), `unexpected directory "${name}"`);
      continue;
    }
    ok(info.isFile, `"${name}" in the upload directory is not a regular file`);
    const digest = sha256(await Deno.readFile(path));
    ok(model.goodHashes.has(digest), `"${name}" holds bytes the fuzzer never vouched for`);
    ok(
      model.damagedUpload || model.goodFiles.has(`${name}\0${digest}`),
      `"${name}" holds bytes sent under another name`,
    );
  }
}

Deno.test("the server survives random and mutated frames in every protocol state", async () => {
  const soak = env("SOCKIT_SOAK") === "1";
  const verbose = soak || env("SOCKIT_FUZZ_VERBOSE") === "1";
  const seed = Number(env("SOCKIT_FUZZ_SEED") ?? DEFAULT_SEED);
  const numRuns = Number(env("SOCKIT_FUZZ_RUNS") ?? (soak ? DEFAULT_RUNS * 20 : DEFAULT_RUNS));

  const base = await Deno.makeTempDir({ prefix: "sockit-fuzz-" });
  const paths: FuzzPaths = {
    base,
    up: `${base}/up`,
    outside: `${base}/outside`,
    markers: `${base}/markers`,
  };
  for (const dir of [paths.up, paths.outside, paths.markers]) await Deno.mkdir(dir);
  await Deno.chmod(paths.up, 0o755);
  const store = await UploadStore.open(paths.up, {
    reserveBytes: 0,
    reservePercent: 0,
    maxFileSize: LIMITS.maxFileSize,
  });
  await resetDirs(paths);

  const events: ServerEvent[] = [];
  const room = new ChatRoom({ maxMessage: LIMITS.maxMessage });
  const t = await startServer({
    token: TOKEN,
    services: [
      echoService,
      room,
      // Only two harmless programs; the fuzzer tries to run others with markers.
      execService({ allow: ["true", "cat"], killGrace: 200, maxConcurrent: 2, timeout: 5000 }),
      uploadService(store),
    ],
    maxFrame: LIMITS.maxFrame,
    maxHandshakeFrame: LIMITS.maxHandshakeFrame,
    handshakeTimeout: 300,
    stallTimeout: 300,
    idleTimeout: 600,
    lingerTime: 100,
    shutdownGrace: 500,
    // Failed proofs are part of the input: without this, the source guard
    // would shut 127.0.0.1 out after the third and the canary with it.
    sourceGuard: false,
    onEvent: (event) => events.push(event),
  });

  const stats = new FuzzStats();
  let failures = 0;
  const started = performance.now();
  try {
    const property = fc.asyncProperty(runArbitrary(paths, LIMITS), async (run) => {
      const model = new RunModel();
      const ctx = {
        address: t.address,
        token: TOKEN,
        stats,
        model,
        closeWithin: 5000,
        limits: LIMITS,
      };
      events.length = 0;
      try {
        const play = (group: SessionScript[]) =>
          Promise.all(group.map((s) => SessionDriver.play(s, ctx)));
        if (run.parallel) await play(run.groups.flat());
        else for (const group of run.groups) await play(group);
        ok(
          model.violations.length === 0,
          `the server broke a promise of the protocol:\n${model.violations.join("\n")}`,
        );
        await checkCanary(t.address);
        // Invariant 2: every connection the fuzzer and the canary opened is gone.
        await waitFor(
          () => t.server.connections === 0,
          3000,
          () => `every connection of the run to close (${t.server.connections} still open)`,
        );
        await checkFiles(paths, model);
        // Invariant 4: no forbidden program ran.
        const markers = [...Deno.readDirSync(paths.markers)].map((e) => e.name);
        ok(markers.length === 0, `a forbidden command left markers: ${markers.join(", ")}`);
        await checkServiceState(t.address, room, paths);
        await waitFor(
          () => t.server.connections === 0,
          3000,
          () => `every canary connection to close (${t.server.connections} still open)`,
        );
        // Invariant 5: the server never failed on its own.
        const internal = events.filter((e) => e.type === "error" && e.code === "internal");
        ok(internal.length === 0, `the server failed: ${JSON.stringify(internal)}`);
      } finally {
        await resetDirs(paths);
      }
    });
    const details = await fc.check(property, { numRuns, seed, includeErrorInReport: true });
    if (details.failed) {
      failures++;
      throw new Error(fc.defaultReportMessage(details), { cause: details.errorInstance });
    }
  } finally {
    await t.server.shutdown();
    await Deno.remove(base, { recursive: true });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const n = (x: number) => x.toLocaleString("en-US");
    console.log(
      `fuzz: ${n(stats.sessions)} sessions, ${n(stats.frames)} frames ` +
        `(${(stats.bytes / 2 ** 20).toFixed(1)} MiB, ${n(stats.mutated)} mutated), ` +
        `${stats.kinds.size} input kinds, ${stats.targets.size} states, ` +
        `${stats.codes.size} server codes, ${failures} failures ` +
        `(${numRuns} runs, seed ${seed}, ${seconds} s)`,
    );
    if (verbose) {
      const reached = [...stats.reached].sort().map(([k, v]) => `${k} ${v}`);
      console.log(`fuzz: reached ${reached.join(", ")}`);
      console.log(`fuzz: server codes ${[...stats.codes].sort().join(", ")}`);
      console.log(`fuzz: input kinds ${[...stats.kinds].sort().join(", ")}`);
    }
  }
});
