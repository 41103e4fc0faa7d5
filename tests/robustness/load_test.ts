/**
 * Load: many clients at once on in-process servers over real loopback
 * sockets, every byte checked end to end. Each test prints one summary line
 * (throughput, p50/p99 latency, peak RSS of the whole process, errors) that
 * docs/reliability.md quotes; the assertions are about behaviour only (no
 * mismatch, every hash equal, every count exact), never about speed.
 *
 * `SOCKIT_SOAK=1` runs longer: 10,000 echo frames per client instead of
 * 1,000 and 200 chat messages per member instead of 20.
 */

import { deepEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  ChatRoom,
  type ClientSession,
  connect,
  echoService,
  exec,
  execService,
  formatAddress,
  MessageType,
  serve,
  type ServeOptions,
  type Server,
  type ServerEvent,
  upload,
  uploadService,
  UploadStore,
} from "../_lib.ts";
import {
  fillPattern,
  LoadMeter,
  openInBatches,
  randomBytes,
  rate,
  summaryLine,
  thousands,
  Watchdog,
} from "../_load.ts";
import { waitFor } from "../_utils.ts";

const SOAK = Deno.env.get("SOCKIT_SOAK") === "1";
const TOKEN = "load-test-token-0123456789";
const MiB = 1024 * 1024;
/** Connects at once while a scenario sets up. */
const CONNECT_BATCH = 100;
const DATA = new Uint8Array([MessageType.Data]);
const text = new TextEncoder();
const utf8 = new TextDecoder();
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** A server for many clients from one loopback address, counting its own failures. */
async function loadServer(
  clients: number,
  options: ServeOptions,
): Promise<{ server: Server; address: string; events: ServerEvent[] }> {
  const events: ServerEvent[] = [];
  const server = await serve({
    listen: ["127.0.0.1:0"],
    // Every client comes from 127.0.0.1: the per-source handshake cap would
    // refuse all but a few dozen of them at once.
    sourceGuard: false,
    maxConnections: clients + 16,
    maxUnauthenticated: clients + 16,
    lingerTime: 200,
    shutdownGrace: 2000,
    onEvent: (event) => {
      if (event.type === "error" || event.type === "refused" || event.type === "closed") {
        events.push(event);
      }
    },
    ...options,
  });
  return { server, address: formatAddress(server.addrs[0]!), events };
}

/** Server-side failures: errors and refusals are never expected under load. */
function serverFailures(events: ServerEvent[]): ServerEvent[] {
  return events.filter((e) => e.type === "error" || e.type === "refused");
}

function report(line: string): void {
  console.log(line);
}

/** Asserts that a scenario saw no error, naming the first few when it did. */
function assertNoErrors(meter: LoadMeter, what: string): void {
  const figures = meter.figures();
  deepEqual(
    { errors: figures.errors, first: figures.firstErrors },
    { errors: 0, first: [] },
    `${what}: ${figures.errors} errors, first: ${figures.firstErrors.join(" | ")}`,
  );
}

// ---------------------------------------------------------------------------
// 1. Echo

const ECHO_CLIENTS = 1000;
const ECHO_FRAMES = SOAK ? 10_000 : 1000;
/** DATA body bytes per frame: the client id, the frame number, then a pattern of both. */
const ECHO_BODY = 64;
/** Frames a client keeps in flight before it waits for their echoes. */
const ECHO_WINDOW = 8;

/** The body of frame `seq` of client `id`: unique per client and frame, so misrouting shows. */
function echoBody(target: Uint8Array, id: number, seq: number): void {
  fillPattern(target, Math.imul(id + 1, 0x01000193) ^ seq);
  const view = new DataView(target.buffer, target.byteOffset, 8);
  view.setUint32(0, id);
  view.setUint32(4, seq);
}

/**
 * Sends `frames` echo frames, at most `ECHO_WINDOW` unanswered, checks
 * every reply byte for byte against what was sent in that position, then
 * half-closes and expects the server's clean end of stream.
 *
 * @returns the frames verified
 */
async function echoClient(
  session: ClientSession,
  id: number,
  frames: number,
  meter: LoadMeter,
): Promise<number> {
  const body = new Uint8Array(ECHO_BODY);
  const expected = new Uint8Array(ECHO_BODY);
  const sentAt = new Float64Array(ECHO_WINDOW);
  let sent = 0;
  let verified = 0;
  while (verified < frames) {
    while (sent < frames && sent - verified < ECHO_WINDOW) {
      echoBody(body, id, sent);
      sentAt[sent % ECHO_WINDOW] = performance.now();
      session.writer.frame(DATA, body);
      sent++;
    }
    await session.writer.flush();
    // Every reply already buffered is checked before the next write.
    do {
      const reply = await session.read();
      if (reply === null) {
        throw new Error(`Cannot verify echo: client ${id} got end of stream after ${verified}`);
      }
      meter.latency(performance.now() - sentAt[verified % ECHO_WINDOW]!);
      echoBody(expected, id, verified);
      if (reply.type !== MessageType.Data || !equalBytes(reply.body, expected)) {
        throw new Error(
          `Cannot verify echo: client ${id} frame ${verified} came back as type ${reply.type}, ` +
            `${reply.body.length} bytes starting ${[...reply.body.subarray(0, 8)]}`,
        );
      }
      verified++;
    } while (verified < sent && session.hasMessage);
  }
  await session.closeWrite();
  const after = await session.read();
  if (after !== null) {
    throw new Error(`Cannot finish echo: client ${id} got an extra message of type ${after.type}`);
  }
  return verified;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test(`echo serves ${ECHO_CLIENTS} concurrent clients x ${ECHO_FRAMES} frames, every byte verified`, async () => {
  const { server, address, events } = await loadServer(ECHO_CLIENTS, {
    services: [echoService],
  });
  await using _server = server;
  const meter = new LoadMeter(ECHO_CLIENTS * ECHO_FRAMES);
  const sessions = await openInBatches(
    ECHO_CLIENTS,
    CONNECT_BATCH,
    // No keepalive: PINGs would only add frames that the count must skip.
    () => connect(address, { service: "echo", keepalive: false }),
    (s) => s.close(),
  );
  let verified = 0;
  try {
    using _watchdog = new Watchdog(SOAK ? 600_000 : 120_000, () => {
      meter.error("watchdog: echo scenario ran out of time");
      for (const s of sessions) s.close();
    });
    meter.start();
    const results = await Promise.allSettled(
      sessions.map((s, id) => echoClient(s, id, ECHO_FRAMES, meter)),
    );
    meter.stop();
    for (const result of results) {
      if (result.status === "fulfilled") verified += result.value;
      else meter.error(result.reason);
    }
  } finally {
    for (const s of sessions) s.close();
  }
  // Every session ends as the client ended it: at end of stream. (A wait
  // that runs out counts as an error, reported after the summary line.)
  await waitFor(() => server.connections === 0, 10_000, "every echo session to end")
    .catch((error) => meter.error(error));
  for (const e of serverFailures(events)) meter.error(`server: ${JSON.stringify(e)}`);
  const closed = events.filter((e) => e.type === "closed");
  const unclean = closed.filter((e) => e.type === "closed" && e.reason !== "eof");
  const figures = meter.figures();
  report(summaryLine(
    `echo ${ECHO_CLIENTS} clients x ${ECHO_FRAMES} frames`,
    `${thousands(verified)} frames`,
    rate(verified, figures.seconds),
    figures,
  ));
  assertNoErrors(meter, "echo");
  deepEqual(verified, ECHO_CLIENTS * ECHO_FRAMES);
  deepEqual({ closed: closed.length, unclean: unclean.slice(0, 3) }, {
    closed: ECHO_CLIENTS,
    unclean: [],
  });
});

// ---------------------------------------------------------------------------
// 2. Upload

const UPLOADS = 100;
const UPLOAD_SIZE = MiB;

Deno.test(`${UPLOADS} concurrent uploads of distinct 1 MiB files arrive with equal SHA-256`, async () => {
  const src = await Deno.makeTempDir({ prefix: "sockit-load-src-" });
  const dst = await Deno.makeTempDir({ prefix: "sockit-load-dst-" });
  try {
    const hashes: string[] = [];
    for (let i = 0; i < UPLOADS; i++) {
      const bytes = randomBytes(UPLOAD_SIZE);
      hashes.push(sha256(bytes));
      await Deno.writeFile(`${src}/file-${i}.bin`, bytes);
    }
    await Deno.chmod(dst, 0o755);
    const store = await UploadStore.open(dst, { reserveBytes: 0, reservePercent: 0 });
    const { server, address, events } = await loadServer(UPLOADS, {
      token: TOKEN,
      services: [uploadService(store)],
    });
    await using _server = server;
    const meter = new LoadMeter(UPLOADS);
    using _watchdog = new Watchdog(120_000, () => {
      meter.error("watchdog: upload scenario ran out of time");
      void server.shutdown();
    });
    meter.start();
    const results = await Promise.allSettled(
      hashes.map(async (hash, i) => {
        const began = performance.now();
        const summary = await upload(address, [`${src}/file-${i}.bin`], { token: TOKEN });
        meter.latency(performance.now() - began);
        const result = summary.results[0];
        if (
          summary.committed !== 1 || summary.failed !== 0 || result?.sha256 !== hash ||
          summary.bytesSent !== UPLOAD_SIZE
        ) {
          throw new Error(`Cannot verify upload ${i}: ${JSON.stringify(summary.results)}`);
        }
      }),
    );
    meter.stop();
    for (const result of results) if (result.status === "rejected") meter.error(result.reason);
    // The store's word is not enough: read every file back from disk.
    let verified = 0;
    for (let i = 0; i < UPLOADS; i++) {
      const onDisk = await Deno.readFile(`${dst}/file-${i}.bin`).catch((e) => e as Error);
      if (onDisk instanceof Error) meter.error(onDisk);
      else if (sha256(onDisk) !== hashes[i]) meter.error(`file-${i}.bin differs on disk`);
      else verified++;
    }
    const names = (await Array.fromAsync(Deno.readDir(dst))).map((e) => e.name)
      .filter((name) => name !== ".sockit-partial");
    if (names.length !== UPLOADS) meter.error(`${names.length} entries in the store`);
    await waitFor(() => server.connections === 0, 10_000, "every upload session to end")
      .catch((error) => meter.error(error));
    for (const e of serverFailures(events)) meter.error(`server: ${JSON.stringify(e)}`);
    const figures = meter.figures();
    report(summaryLine(
      `upload ${UPLOADS} clients x 1 MiB`,
      `${verified} files (${thousands(verified * UPLOAD_SIZE / MiB)} MiB)`,
      `${(verified * UPLOAD_SIZE / MiB / figures.seconds).toFixed(0)} MiB/s`,
      figures,
    ));
    assertNoErrors(meter, "upload");
    deepEqual(verified, UPLOADS);
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// 3. Exec

const EXECS = 50;
const EXEC_INPUT = MiB;
/** Chunks stdin is written in. */
const EXEC_CHUNK = 64 * 1024;

Deno.test(`${EXECS} concurrent execs of cat return their 1 MiB stdin byte for byte`, async () => {
  const { server, address, events } = await loadServer(EXECS, {
    token: TOKEN,
    services: [execService({ allow: ["cat"], killGrace: 500 })],
  });
  await using _server = server;
  const inputs = Array.from({ length: EXECS }, () => randomBytes(EXEC_INPUT));
  const hashes = inputs.map(sha256);
  const meter = new LoadMeter(EXECS);
  using _watchdog = new Watchdog(120_000, () => {
    meter.error("watchdog: exec scenario ran out of time");
    void server.shutdown();
  });
  let verified = 0;
  meter.start();
  const results = await Promise.allSettled(inputs.map(async (input, i) => {
    const began = performance.now();
    await using proc = await exec(address, ["cat"], { token: TOKEN, stdin: "piped" });
    const chunks = Array.from(
      { length: EXEC_INPUT / EXEC_CHUNK },
      (_, k) => input.subarray(k * EXEC_CHUNK, (k + 1) * EXEC_CHUNK),
    );
    const hash = createHash("sha256");
    let length = 0;
    const [, , stderr, status] = await Promise.all([
      ReadableStream.from(chunks).pipeTo(proc.stdin),
      (async () => {
        for await (const chunk of proc.stdout) {
          hash.update(chunk);
          length += chunk.length;
        }
      })(),
      new Response(proc.stderr).text(),
      proc.status,
    ]);
    meter.latency(performance.now() - began);
    const got = { length, sha256: hash.digest("hex"), stderr, code: status.code };
    const want = { length: EXEC_INPUT, sha256: hashes[i], stderr: "", code: 0 };
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`Cannot verify exec ${i}: got ${JSON.stringify(got)}`);
    }
    verified++;
  }));
  meter.stop();
  for (const result of results) if (result.status === "rejected") meter.error(result.reason);
  await waitFor(() => server.connections === 0, 10_000, "every exec session to end")
    .catch((error) => meter.error(error));
  for (const e of serverFailures(events)) meter.error(`server: ${JSON.stringify(e)}`);
  const figures = meter.figures();
  report(summaryLine(
    `exec ${EXECS} clients x cat 1 MiB`,
    `${verified} outputs (${verified} MiB)`,
    `${(verified * EXEC_INPUT / MiB / figures.seconds).toFixed(0)} MiB/s`,
    figures,
  ));
  assertNoErrors(meter, "exec");
  deepEqual(verified, EXECS);
});

// ---------------------------------------------------------------------------
// 4. Chat

const MEMBERS = 200;
const CHAT_MESSAGES = SOAK ? 200 : 20;
/**
 * How far a member's sending may run ahead of what it has received, in
 * messages of its own: a member sends message `i` once it has received
 * `(i - CHAT_AHEAD + 1)` messages from each other member on average. Like
 * people who read while they type, this keeps every backlog far below the
 * room's 1 MiB `maxBacklog`. Unpaced, 200 members bursting 200 messages each
 * (40,000 messages, 8 million deliveries) outrun their own readers and the
 * room drops some as `slow_consumer`, by design. The latency figures are
 * mostly this window: about `CHAT_AHEAD` rounds of 39,800 deliveries.
 */
const CHAT_AHEAD = 2;

function memberName(i: number): string {
  return `m${String(i).padStart(3, "0")}`;
}

/** The text of message `seq` from member `from`: both, and a pattern of both. */
function chatText(from: number, seq: number): string {
  const pattern = new Uint8Array(12);
  fillPattern(pattern, from * 100_003 + seq);
  return `${memberName(from)} #${seq} ${pattern.toHex()}`;
}

/**
 * One member: sends its messages, paced by what it has received, and reads
 * until it has every other member's messages, checking each one's text and
 * order per sender.
 *
 * @returns the messages received and verified
 */
async function chatMember(
  session: ClientSession,
  self: number,
  sentAt: Float64Array,
  meter: LoadMeter,
): Promise<number> {
  const others = MEMBERS - 1;
  const want = others * CHAT_MESSAGES;
  const next = new Int32Array(MEMBERS);
  let received = 0;
  let wake: (() => void) | undefined;
  let failure: unknown;
  const reading = (async () => {
    while (received < want) {
      const message = await session.read();
      if (message === null) {
        throw new Error(`Cannot finish chat: ${memberName(self)} got end of stream`);
      }
      if (message.type !== MessageType.Event) continue;
      const event = JSON.parse(utf8.decode(message.body)) as Record<string, unknown>;
      if (event.kind === "join" || event.kind === "members") continue;
      if (event.kind !== "message") {
        throw new Error(`Cannot finish chat: ${memberName(self)} got ${JSON.stringify(event)}`);
      }
      const from = Number(/^m(\d{3})$/.exec(String(event.from))?.[1] ?? -1);
      const seq = next[from] ?? -1;
      if (from === self || seq < 0 || seq >= CHAT_MESSAGES || event.text !== chatText(from, seq)) {
        throw new Error(
          `Cannot verify chat: ${memberName(self)} expected message #${seq} from ` +
            `${String(event.from)}, got ${JSON.stringify(event.text)}`,
        );
      }
      meter.latency(performance.now() - sentAt[from * CHAT_MESSAGES + seq]!);
      next[from] = seq + 1;
      received++;
      wake?.();
    }
  })().catch((error) => {
    failure = error;
    wake?.();
    throw error;
  });
  // Awaited below unless sending fails first; then the send error is the one reported.
  reading.catch(() => {});
  for (let seq = 0; seq < CHAT_MESSAGES; seq++) {
    while (received < (seq - CHAT_AHEAD + 1) * others && failure === undefined) {
      await new Promise<void>((resolve) => wake = resolve);
      wake = undefined;
    }
    if (failure !== undefined) break;
    sentAt[self * CHAT_MESSAGES + seq] = performance.now();
    await session.send(MessageType.Data, text.encode(chatText(self, seq)));
  }
  await reading;
  for (let from = 0; from < MEMBERS; from++) {
    const count = from === self ? 0 : CHAT_MESSAGES;
    if (next[from] !== count) {
      throw new Error(`Cannot verify chat: ${memberName(self)} got ${next[from]} from ${from}`);
    }
  }
  return received;
}

Deno.test(`chat with ${MEMBERS} members delivers every message to every other member in order`, async () => {
  const room = new ChatRoom();
  const { server, address, events } = await loadServer(MEMBERS, { services: [room] });
  await using _server = server;
  const meter = new LoadMeter(MEMBERS * (MEMBERS - 1) * CHAT_MESSAGES);
  const sessions = await openInBatches(
    MEMBERS,
    CONNECT_BATCH,
    (i) => connect(address, { service: "chat", params: { name: memberName(i) } }),
    (s) => s.close(),
  );
  let delivered = 0;
  try {
    // Everyone is in the room before anyone speaks.
    await waitFor(
      () => room.members.length === MEMBERS,
      10_000,
      () => `every member to join (${room.members.length} of ${MEMBERS} did)`,
    ).catch((error) => meter.error(error));
    using _watchdog = new Watchdog(SOAK ? 600_000 : 120_000, () => {
      meter.error("watchdog: chat scenario ran out of time");
      for (const s of sessions) s.close();
    });
    const sentAt = new Float64Array(MEMBERS * CHAT_MESSAGES);
    meter.start();
    const counts = await Promise.all(
      sessions.map((s, i) =>
        chatMember(s, i, sentAt, meter).catch((error) => {
          meter.error(error);
          // The others wait for this member's messages: end them all now
          // rather than at the watchdog.
          for (const other of sessions) other.close();
          return 0;
        })
      ),
    );
    meter.stop();
    delivered = counts.reduce((a, b) => a + b, 0);
  } finally {
    for (const s of sessions) s.close();
  }
  await waitFor(() => server.connections === 0, 10_000, "every chat session to end")
    .catch((error) => meter.error(error));
  for (const e of serverFailures(events)) meter.error(`server: ${JSON.stringify(e)}`);
  const dropped = events.filter((e) => e.type === "closed" && e.reason === "slow_consumer");
  if (dropped.length > 0) meter.error(`${dropped.length} members dropped as slow consumers`);
  const figures = meter.figures();
  report(summaryLine(
    `chat ${MEMBERS} members x ${CHAT_MESSAGES} messages`,
    `${thousands(delivered)} deliveries`,
    rate(delivered, figures.seconds),
    figures,
  ));
  assertNoErrors(meter, "chat");
  deepEqual(delivered, MEMBERS * (MEMBERS - 1) * CHAT_MESSAGES);
});
