/**
 * A model-based protocol fuzzer for the socket tests: fast-check arbitraries
 * that reach every protocol state of a sockit server (before HELLO, inside
 * the handshake, inside each of echo, chat, exec and upload) and then send
 * random or mutated frames there, and a driver that plays them over raw TCP.
 *
 * A session is a script of steps. The few steps that need the server's
 * answer (an AUTH needs the CHALLENGE's nonce, a resumed upload the `ready`
 * offset) are resolved by the driver as it plays; everything else is fixed
 * when fast-check generates the script, so a failing run replays from its
 * seed and path. Scripts also say what the server may do with them (a
 * WELCOME only after a valid HELLO and proof, a `started` event only for an
 * allowed program, a `committed` answer only for a good entry); the driver
 * checks that against what it received whenever no frame was mutated.
 */

import fc from "fast-check";
import { createHash } from "node:crypto";
import {
  computeProof,
  FrameReader,
  FrameTruncatedError,
  isConnectionError,
  MessageType,
} from "./_lib.ts";
import { concat, frameHeader, rawConnect } from "./_utils.ts";

const utf8 = new TextEncoder();

/** Where the fuzzer may and may not see files appear. */
export interface FuzzPaths {
  /** Parent of the three directories below; nothing else may appear in it. */
  base: string;
  /** The upload directory. */
  up: string;
  /** A sibling of the upload directory that hostile names aim at. */
  outside: string;
  /** Where exec attempts that must never run would leave marker files. */
  markers: string;
}

/** Limits of the server under test that the generators aim at. */
export interface FuzzLimits {
  /** The server's `maxFrame`. */
  maxFrame: number;
  /** The server's `maxHandshakeFrame`. */
  maxHandshakeFrame: number;
  /** The chat room's `maxMessage`. */
  maxMessage: number;
  /** The upload store's `maxFileSize`. */
  maxFileSize: number;
}

/** The SHA-256 of `bytes`, as lower-case hex. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The bytes of an upload's file: a pattern fixed by `seed` and `length`, so
 * that two entries with the same seed share prefixes (what resume needs).
 */
export function fileContent(seed: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * (2 * seed + 1) + seed * 37) & 0xff;
  return bytes;
}

// ---------------------------------------------------------------------------
// Scripts

/** Ways a frame is damaged on its way out. `split` only changes timing. */
export const MUTATIONS = [
  "flip",
  "truncate",
  "length-lie",
  "type",
  "duplicate",
  "drop",
  "junk",
  "split",
] as const;

/** One of {@linkcode MUTATIONS}, with where and how much. */
export interface Mutation {
  how: typeof MUTATIONS[number];
  at: number;
  value: number;
}

/** A frame body: a JSON value, text (JSON or not), raw bytes, or `length` bytes of `fill`. */
export type Body =
  | { json: unknown }
  | { text: string }
  | { bytes: Uint8Array }
  | { fill: number; length: number };

/** How the client answers CHALLENGE. */
export type AuthHow =
  | "correct"
  | "twice"
  | "wrong-token"
  | "other-service"
  | "server-role"
  | "swapped-nonces"
  | "flipped"
  | "replay"
  | "missing"
  | "short"
  | "not-base64"
  | "url-safe"
  | "number"
  | "not-json"
  | "early"
  | "hello-again"
  | "wrong-type"
  | "none";

/** How resume is answered after a `ready` event. */
export type StartHow = "auto" | "zero" | "held-anyway" | "wrong" | "none" | "twice";

/** How a file's END is sent. */
export type EndHow = "correct" | "wrong" | "malformed" | "missing" | "empty" | "not-json" | "none";

/** Declared size of a file relative to the bytes sent. */
export type SizeHow =
  | "exact"
  | "more"
  | "less"
  | "too-large"
  | "negative"
  | "fraction"
  | "unsafe"
  | "text"
  | "missing";

/** One upload entry: FILE, then (for a resumed file) START, DATA and END. */
export interface EntrySpec {
  type: unknown;
  name: string;
  /** Whether the name must be refused (it aims outside, or breaks a name rule). */
  hostile: boolean;
  seed: number;
  length: number;
  size: SizeHow;
  /** DATA frames to spread the bytes over (at least one when there are bytes). */
  chunks: number;
  overwrite: unknown;
  resume: unknown;
  mode: unknown;
  mtime: unknown;
  start: StartHow;
  end: EndHow;
  fileMut: Mutation | undefined;
  dataMut: Mutation | undefined;
}

/** One step of a session script. */
export type Step =
  /** Bytes that are not (or not only) one frame: garbage, bare headers, TLS. */
  | { t: "raw"; kind: string; bytes: Uint8Array }
  /** One frame of `type` with `body`, maybe mutated. */
  | { t: "frame"; kind: string; type: number; body: Body; mut: Mutation | undefined }
  /** The answer to CHALLENGE. */
  | { t: "auth"; kind: string; how: AuthHow; mut: Mutation | undefined }
  /** Waits (bounded) for a message. */
  | { t: "await"; what: "welcome" | "started" | "exit"; ms: number }
  /** One upload entry. */
  | { t: "entry"; kind: string; entry: EntrySpec }
  /** Sends nothing for a while. */
  | { t: "pause"; ms: number };

/** How a session ends: half-close and drain, close at once, or wait for the server. */
export type Ending = "half-close" | "close" | "wait";

/** A whole session. */
export interface SessionScript {
  /** The protocol state the script aims at. */
  target: "pre-hello" | "handshake" | "echo" | "chat" | "exec" | "upload";
  /** The service named in HELLO (for proofs). */
  service: string;
  /** The client nonce of HELLO (32 bytes), for proofs. */
  nonce: Uint8Array;
  steps: Step[];
  ending: Ending;
  /** False when a WELCOME would be a server bug. */
  mayWelcome: boolean;
  /** False when a `started` exec event would be a server bug. */
  mayStart: boolean;
}

/**
 * One fuzz run: groups of sessions, each group played all at once and the
 * groups one after another, or (`parallel`) every session at once.
 */
export interface RunScript {
  parallel: boolean;
  groups: SessionScript[][];
}

// ---------------------------------------------------------------------------
// Arbitraries

function weighted<T>(...pairs: [number, fc.Arbitrary<T>][]): fc.Arbitrary<T> {
  return fc.oneof(...pairs.map(([weight, arbitrary]) => ({ weight, arbitrary })));
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  how: fc.constantFrom(...MUTATIONS),
  at: fc.nat({ max: 1 << 20 }),
  value: fc.integer({ min: 1, max: 255 }),
});

/** Usually no mutation; one frame in about `1 + odds` is mutated. */
function maybeMutation(odds = 7): fc.Arbitrary<Mutation | undefined> {
  return weighted<Mutation | undefined>([odds, fc.constant(undefined)], [1, mutationArb]);
}

function frame(
  kind: string,
  type: number,
  body: Body,
  mut: Mutation | undefined = undefined,
): Step {
  return { t: "frame", kind, type, body, mut };
}

function raw(kind: string, bytes: Uint8Array): Step {
  return { t: "raw", kind, bytes };
}

const pauseArb: fc.Arbitrary<Step> = fc
  .constantFrom(0, 20, 100, 350)
  .map((ms) => ({ t: "pause", ms }));

/** Steps that make sense in any state, with the types the state handles left out. */
function anywhereSteps(handled: readonly number[]): fc.Arbitrary<Step> {
  return weighted<Step>(
    [
      3,
      fc.tuple(fc.uint8Array({ maxLength: 32 }), maybeMutation())
        .map(([bytes, mut]) => frame("ping", MessageType.Ping, { bytes }, mut)),
    ],
    [
      3,
      fc.tuple(
        fc.integer({ min: 0, max: 255 }).filter((t) => !handled.includes(t)),
        weighted<Body>(
          [1, fc.uint8Array({ maxLength: 48 }).map((bytes) => ({ bytes }))],
          [1, fc.jsonValue({ maxDepth: 2 }).map((json) => ({ json }))],
        ),
      ).map(([type, body]) => frame("wrong-type", type, body)),
    ],
    [1, fc.constant(raw("empty-frame", frameHeader(0)))],
    [
      1,
      fc.tuple(fc.integer({ min: 0x0110_0000, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 16 }))
        .map(([length, tail]) => raw("oversize-length", concat(frameHeader(length), tail))),
    ],
    [
      1,
      fc.tuple(fc.integer({ min: 2, max: 64 }), fc.uint8Array({ minLength: 1, maxLength: 8 }))
        .map(([length, part]) =>
          raw("truncated-frame", concat(frameHeader(length), part.subarray(0, length - 1)))
        ),
    ],
    [1, fc.uint8Array({ minLength: 1, maxLength: 48 }).map((b) => raw("garbage", b))],
    [1, pauseArb],
  );
}

const nonceArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** A HELLO variant: its kind, its body, and whether a session could start with it. */
interface HelloVariant {
  kind: string;
  body: Body;
  welcomable: boolean;
}

function helloJson(service: unknown, nonce: Uint8Array, params: unknown): Body {
  return {
    json: {
      protocol: "sockit",
      versions: [1],
      service,
      nonce: nonce.toBase64(),
      ...(params === undefined ? {} : { params }),
    },
  };
}

function helloVariants(
  service: string,
  nonce: Uint8Array,
  params: unknown,
  limits: FuzzLimits,
): fc.Arbitrary<HelloVariant> {
  const ok = (kind: string, body: Body): HelloVariant => ({ kind, body, welcomable: true });
  const bad = (kind: string, body: Body): HelloVariant => ({ kind, body, welcomable: false });
  const base = {
    protocol: "sockit",
    versions: [1],
    service,
    nonce: nonce.toBase64(),
    params: params ?? {},
  };
  return fc.oneof(
    fc.constant(ok("hello", helloJson(service, nonce, params))),
    fc.constant(ok("hello-versions-mixed", { json: { ...base, versions: [7, 1, 1, 3] } })),
    fc.constant(ok("hello-extra-members", {
      json: { ...base, ["__proto__"]: { admin: true }, constructor: "x", future: [1, { a: null }] },
    })),
    fc.constant(ok("hello-duplicate-keys", {
      text: JSON.stringify({ ...base, service: "nope" }).replace(
        /}$/,
        `,"service":${JSON.stringify(service)}}`,
      ),
    })),
    fc.constant(bad("hello-not-utf8", { bytes: new Uint8Array([0x7b, 0xff, 0xfe, 0x22, 0x7d]) })),
    fc.constantFrom("{", '{"protocol":', "sockit", "{}}", "\u0000")
      .map((text) => bad("hello-not-json", { text })),
    fc.constantFrom("[1]", "null", '"hello"', "42", "true")
      .map((text) => bad("hello-not-object", { text })),
    fc.constantFrom<unknown>("SOCKIT", "sockit\u0000", "sockit ", 1, null, undefined)
      .map((protocol) => bad("hello-wrong-protocol", { json: { ...base, protocol } })),
    fc.constantFrom<unknown>(
      [],
      [0],
      [-1],
      [1.5],
      ["1"],
      Array(17).fill(1),
      null,
      1,
      [2 ** 53],
      undefined,
    ).map((versions) => bad("hello-versions-malformed", { json: { ...base, versions } })),
    fc.constantFrom([2], [2, 3], [65535])
      .map((versions) => bad("hello-versions-unsupported", { json: { ...base, versions } })),
    fc.constantFrom("ftp", "shell", "admin", "echo-2")
      .map((s) => bad("hello-service-unknown", helloJson(s, nonce, params))),
    fc.constantFrom<unknown>("Echo", "echo\n", "", "e".repeat(40), "../exec", 5, null, undefined)
      .map((s) => bad("hello-service-malformed", helloJson(s, nonce, params))),
    fc.constantFrom<unknown>(null, [], "x", 5)
      .map((p) => bad("hello-params-malformed", { json: { ...base, params: p } })),
    fc.constantFrom<unknown>(
      undefined,
      nonce.subarray(0, 16).toBase64(),
      nonce.toBase64({ alphabet: "base64url" }).replace(/[A-Za-z0-9]/, "-"),
      "!!!!",
      concat(nonce, nonce).toBase64(),
      5,
    ).map((n) => bad("hello-nonce-malformed", { json: { ...base, nonce: n } })),
    fc.constant(bad("hello-oversize", {
      json: { ...base, params: { pad: "x".repeat(limits.maxHandshakeFrame) } },
    })),
  );
}

/** AUTH variants and their weights; only `correct` and `twice` may be welcomed. */
const AUTH_KINDS: readonly [AuthHow, number][] = [
  ["correct", 12],
  ["twice", 1],
  ["wrong-token", 2],
  ["other-service", 1],
  ["server-role", 1],
  ["swapped-nonces", 1],
  ["flipped", 1],
  ["replay", 2],
  ["missing", 1],
  ["short", 1],
  ["not-base64", 1],
  ["url-safe", 1],
  ["number", 1],
  ["not-json", 1],
  ["early", 1],
  ["hello-again", 1],
  ["wrong-type", 1],
  ["none", 1],
];

function authArb(onlyCorrect: boolean): fc.Arbitrary<Step> {
  const how = onlyCorrect
    ? weighted<AuthHow>([20, fc.constant("correct")], [1, fc.constant("twice")])
    : weighted<AuthHow>(
      ...AUTH_KINDS.map(([h, w]) => [w, fc.constant(h)] as [number, fc.Arbitrary<AuthHow>]),
    );
  return fc.tuple(how, maybeMutation(onlyCorrect ? 30 : 7))
    .map(([how, mut]) => ({ t: "auth", kind: `auth-${how}`, how, mut }));
}

function welcomeWith(how: AuthHow): boolean {
  return how === "correct" || how === "twice";
}

const endingArb: fc.Arbitrary<Ending> = weighted<Ending>(
  [6, fc.constant("half-close")],
  [3, fc.constant("close")],
  [1, fc.constant("wait")],
);

// --- before HELLO

function preHelloArb(limits: FuzzLimits): fc.Arbitrary<SessionScript> {
  const tls = fc.uint8Array({ minLength: 40, maxLength: 120 }).map((rest) =>
    raw(
      "tls-client-hello",
      concat(new Uint8Array([0x16, 0x03, 0x01, 0x00, rest.length + 4, 0x01, 0x00, 0x00]), rest),
    )
  );
  const text = (kind: string, s: string) => fc.constant(raw(kind, utf8.encode(s)));
  const step = weighted<Step>(
    [3, fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => raw("garbage", b))],
    [
      2,
      fc.integer({ min: limits.maxHandshakeFrame + 1, max: 0xffff_ffff })
        .map((n) => raw("oversize-length", frameHeader(n))),
    ],
    [
      2,
      fc.integer({ min: 1, max: 3 }).map((n) =>
        raw("truncated-header", frameHeader(5).subarray(4 - n))
      ),
    ],
    [
      2,
      fc.tuple(fc.integer({ min: 2, max: 200 }), fc.uint8Array({ minLength: 1, maxLength: 8 }))
        .map(([n, b]) => raw("truncated-payload", concat(frameHeader(n), b.subarray(0, n - 1)))),
    ],
    [2, tls],
    [1, text("http-request", "GET / HTTP/1.1\r\nHost: sockit\r\n\r\n")],
    [1, text("ssh-banner", "SSH-2.0-OpenSSH_9.6\r\n")],
    [1, fc.constant(raw("empty-frame", frameHeader(0)))],
    [
      2,
      fc.tuple(
        fc.integer({ min: 0, max: 255 }).filter((t) => t !== MessageType.Hello),
        fc.uint8Array({ maxLength: 40 }),
      ).map(([type, bytes]) => frame("wrong-first-type", type, { bytes })),
    ],
    [
      1,
      fc.constant(frame("hello-max-handshake-frame", MessageType.Hello, {
        fill: 0x20,
        length: limits.maxHandshakeFrame - 1,
      })),
    ],
    [1, pauseArb],
  );
  return fc.record({
    steps: fc.array(step, { minLength: 0, maxLength: 3 }),
    hello: fc.boolean(),
    nonce: nonceArb,
    ending: endingArb,
  }).map(({ steps, hello, nonce, ending }) => ({
    target: "pre-hello" as const,
    service: "echo",
    nonce,
    steps: hello
      ? [...steps, frame("hello-after-garbage", MessageType.Hello, helloJson("echo", nonce, {}))]
      : steps,
    ending,
    mayWelcome: false, // there is no AUTH, and the server has a token
    mayStart: false,
  }));
}

// --- the handshake

function handshakeArb(limits: FuzzLimits): fc.Arbitrary<SessionScript> {
  return fc.record({
    service: fc.constantFrom("echo", "chat", "exec", "upload"),
    nonce: nonceArb,
    name: fc.constantFrom(ROOM_NAMES[3], ROOM_NAMES[4]),
    helloMut: maybeMutation(),
    auth: authArb(false),
    after: fc.array(anywhereSteps([MessageType.Data, MessageType.Ping]), { maxLength: 2 }),
    ending: endingArb,
  }).chain(({ service, nonce, name, helloMut, auth, after, ending }) =>
    helloVariants(service, nonce, service === "chat" ? { name } : {}, limits).map((hello) => {
      const how = auth.t === "auth" ? auth.how : "none";
      return {
        target: "handshake" as const,
        service,
        nonce,
        steps: [frame(hello.kind, MessageType.Hello, hello.body, helloMut), auth, ...after],
        ending,
        mayWelcome: hello.welcomable && welcomeWith(how),
        mayStart: false,
      };
    })
  );
}

/** HELLO and AUTH that (unless mutated) open a session of `service`. */
function openSteps(service: string, nonce: Uint8Array, params: unknown): fc.Arbitrary<Step[]> {
  return fc.tuple(maybeMutation(40), authArb(true)).map(([mut, auth]): Step[] => [
    frame("hello", MessageType.Hello, helloJson(service, nonce, params), mut),
    auth,
    { t: "await", what: "welcome", ms: 1000 },
  ]);
}

// --- echo

function echoArb(limits: FuzzLimits): fc.Arbitrary<SessionScript> {
  const data = weighted<Step>(
    [
      6,
      fc.tuple(fc.uint8Array({ maxLength: 64 }), maybeMutation())
        .map(([bytes, mut]) => frame("echo-data", MessageType.Data, { bytes }, mut)),
    ],
    [
      1,
      fc.tuple(fc.integer({ min: 1, max: 64 * 1024 }), fc.nat(255), maybeMutation())
        .map(([length, fill, mut]) =>
          frame("echo-data-large", MessageType.Data, { fill, length }, mut)
        ),
    ],
    [
      1,
      fc.nat(255).map((fill) =>
        frame("data-max-frame", MessageType.Data, { fill, length: limits.maxFrame - 1 })
      ),
    ],
    [
      1,
      fc.nat(255).map((fill) =>
        frame("data-over-max-frame", MessageType.Data, { fill, length: limits.maxFrame })
      ),
    ],
    [4, anywhereSteps([MessageType.Data, MessageType.Ping])],
  );
  return fc.record({
    nonce: nonceArb,
    steps: fc.array(data, { minLength: 1, maxLength: 6 }),
    ending: endingArb,
  }).chain(({ nonce, steps, ending }) =>
    openSteps("echo", nonce, {}).map((open) => ({
      target: "echo" as const,
      service: "echo",
      nonce,
      steps: [...open, ...steps],
      ending,
      mayWelcome: true,
      mayStart: false,
    }))
  );
}

// --- chat

/** Valid chat names the fuzzer joins with (besides those of {@linkcode CHAT_NAMES}). */
const ROOM_NAMES = ["ada", "bob", "cy", "hs-a", "hs-b"] as const;

/**
 * Every valid chat name the fuzzer may join with: each must be free again
 * once its sessions are gone.
 *
 * @returns the names
 */
export function chatNames(): string[] {
  const valid = CHAT_NAMES.filter(([, name, ok]) => ok && typeof name === "string");
  return [...new Set([...ROOM_NAMES, ...valid.map(([, name]) => String(name))])];
}

const CHAT_NAMES: readonly [string, unknown, boolean][] = [
  ["chat-name", "ada", true],
  ["chat-name", "bob", true],
  ["chat-name-nfd", "e\u0301", true],
  ["chat-name-cjk", "名前", true],
  ["chat-name-control", "a\u0001b", false],
  ["chat-name-ansi", "\u001b[2Jx", false],
  ["chat-name-newline", "ada\nbob", false],
  ["chat-name-bidi", "a\u202eb", false],
  ["chat-name-zero-width", "a\u200bb", false],
  ["chat-name-space", "a b", false],
  ["chat-name-empty", "", false],
  ["chat-name-long", "n".repeat(33), false],
  ["chat-name-huge", "h".repeat(10_000), false],
  ["chat-name-lone-surrogate", "a\ud800", false],
  ["chat-name-not-string", 5, false],
  ["chat-name-object", { toString: "ada" }, false],
  ["chat-name-missing", undefined, false],
];

function chatStepArb(limits: FuzzLimits): fc.Arbitrary<Step> {
  return weighted<Step>(
    [
      5,
      fc.tuple(fc.string({ unit: "grapheme", maxLength: 40 }), maybeMutation())
        .map(([s, mut]) => frame("chat-text", MessageType.Data, { text: s }, mut)),
    ],
    [
      1,
      fc.constantFrom("\u001b]0;pwned\u0007", "\u001b[2J\r\n", "a\u202eb", "\u0000\u007f")
        .map((text) => frame("chat-text-control", MessageType.Data, { text })),
    ],
    [
      1,
      fc.constantFrom([0xc3, 0x28], [0xed, 0xa0, 0x80], [0xff], [0xe2, 0x82])
        .map((b) => frame("chat-text-not-utf8", MessageType.Data, { bytes: new Uint8Array(b) })),
    ],
    [
      1,
      fc.constant(
        frame("chat-text-too-long", MessageType.Data, {
          fill: 0x61,
          length: limits.maxMessage + 1,
        }),
      ),
    ],
    [3, anywhereSteps([MessageType.Data, MessageType.Ping])],
  );
}

function chatArb(limits: FuzzLimits): fc.Arbitrary<SessionScript> {
  const step = chatStepArb(limits);
  return fc.record({
    nonce: nonceArb,
    name: weighted(
      [3, fc.constantFrom(...CHAT_NAMES.filter(([, , valid]) => valid))],
      [2, fc.constantFrom(...CHAT_NAMES.filter(([, , valid]) => !valid))],
    ),
    steps: fc.array(step, { minLength: 0, maxLength: 5 }),
    ending: endingArb,
  }).chain(({ nonce, name: [kind, name, valid], steps, ending }) =>
    openSteps("chat", nonce, name === undefined ? {} : { name }).map((open) => {
      const hello = open[0] as Extract<Step, { t: "frame" }>;
      return {
        target: "chat" as const,
        service: "chat",
        nonce,
        steps: [{ ...hello, kind }, ...open.slice(1), ...steps],
        ending,
        mayWelcome: valid,
        mayStart: false,
      };
    })
  );
}

/**
 * Members of one room, played at once: each waits a little after joining
 * and before leaving so that they meet, and a repeated name is refused.
 */
function chatRoomArb(limits: FuzzLimits): fc.Arbitrary<SessionScript[]> {
  const text = weighted<Step>(
    [
      6,
      fc.string({ unit: "grapheme", maxLength: 40 }).map((t) =>
        frame("chat-text", MessageType.Data, { text: t })
      ),
    ],
    [1, chatStepArb(limits)],
  );
  const member = fc.record({
    nonce: nonceArb,
    name: fc.constantFrom(ROOM_NAMES[0], ROOM_NAMES[1], ROOM_NAMES[2], ROOM_NAMES[0]),
    steps: fc.array(text, { maxLength: 4 }),
    ending: endingArb,
  }).chain(({ nonce, name, steps, ending }) =>
    openSteps("chat", nonce, { name }).map((open): SessionScript => ({
      target: "chat",
      service: "chat",
      nonce,
      steps: [...open, { t: "pause", ms: 30 }, ...steps, { t: "pause", ms: 30 }],
      ending,
      mayWelcome: true,
      mayStart: false,
    }))
  );
  return fc.array(member, { minLength: 2, maxLength: 3 });
}

// --- exec

/** EXEC bodies: the kind, the body, and whether the server may start it. */
function execVariants(paths: FuzzPaths): fc.Arbitrary<[string, Body, boolean]> {
  const marker = (tag: string) => `${paths.markers}/${tag}`;
  const allowed: [string, Body, boolean][] = [
    ["exec-true", { json: { argv: ["true"] } }, true],
    [
      "exec-true-args",
      { json: { argv: ["true", `$(touch ${marker("subst")})`, `;touch ${marker("semi")}`, "*"] } },
      true,
    ],
    ["exec-cat-stdin", { json: { argv: ["cat"], stdin: true } }, true],
    ["exec-cat-file", { json: { argv: ["cat", "/dev/null"] } }, true],
    ["exec-cat-missing", { json: { argv: ["cat", marker("never")] } }, true],
    ["exec-cwd-outside", { json: { argv: ["true"], cwd: paths.outside } }, true],
    ["exec-timeout", { json: { argv: ["cat"], stdin: true, timeout: 50 } }, true],
    ["exec-extra-members", { json: { argv: ["true"], stdin: false, env: {}, shell: true } }, true],
  ];
  const refused: [string, Body, boolean][] = [
    ["exec-touch", { json: { argv: ["touch", marker("touch")] } }, false],
    ["exec-touch-path", { json: { argv: ["/usr/bin/touch", marker("touch-path")] } }, false],
    ["exec-sh", { json: { argv: ["sh", "-c", `touch ${marker("sh")}`] } }, false],
    ["exec-sh-path", { json: { argv: ["/bin/sh", "-c", `touch ${marker("bin-sh")}`] } }, false],
    ["exec-bash", { json: { argv: ["bash", "-c", `touch ${marker("bash")}`] } }, false],
    ["exec-env-wrapper", { json: { argv: ["env", "touch", marker("env")] } }, false],
    ["exec-shell-string", { json: { argv: [`true; touch ${marker("semicolon")}`] } }, false],
    ["exec-path-true", { json: { argv: ["/bin/true"] } }, false],
    ["exec-dot-true", { json: { argv: ["./true"] } }, false],
    ["exec-case", { json: { argv: ["TRUE"] } }, false],
    ["exec-space", { json: { argv: ["true ", marker("space")] } }, false],
    ["exec-fullwidth", { json: { argv: ["\uff54rue"] } }, false],
    ["exec-tee", { json: { argv: ["tee", marker("tee")], stdin: true } }, false],
    ["exec-cp", { json: { argv: ["cp", "/dev/null", marker("cp")] } }, false],
    ["exec-env-preload", { json: { argv: ["true"], env: { LD_PRELOAD: marker("so") } } }, false],
    ["exec-env-path", { json: { argv: ["cat"], env: { PATH: paths.markers } } }, false],
    ["exec-env-bash", { json: { argv: ["true"], env: { BASH_ENV: marker("bash-env") } } }, false],
  ];
  const malformed: [string, Body, boolean][] = [
    ["exec-argv-missing", { json: { stdin: false } }, false],
    ["exec-argv-empty", { json: { argv: [] } }, false],
    ["exec-argv-not-strings", { json: { argv: [1, 2] } }, false],
    ["exec-argv-nul", { json: { argv: ["true\u0000", marker("nul")] } }, false],
    ["exec-argv-string", { json: { argv: "true" } }, false],
    ["exec-argv-huge", { json: { argv: Array(4097).fill("true") } }, false],
    ["exec-cwd-number", { json: { argv: ["true"], cwd: 5 } }, false],
    ["exec-cwd-missing", { json: { argv: ["true"], cwd: `${paths.outside}/none` } }, false],
    ["exec-env-string", { json: { argv: ["true"], env: "A=1" } }, false],
    ["exec-env-bad-name", { json: { argv: ["true"], env: { "1A=": "x" } } }, false],
    ["exec-env-number", { json: { argv: ["true"], env: { A: 1 } } }, false],
    ["exec-timeout-negative", { json: { argv: ["true"], timeout: -1 } }, false],
    ["exec-timeout-text", { json: { argv: ["true"], timeout: "5" } }, false],
    ["exec-timeout-huge", { json: { argv: ["true"], timeout: 2 ** 60 } }, false],
    ["exec-stdin-text", { json: { argv: ["cat"], stdin: "yes" } }, false],
    ["exec-not-json", { text: '{"argv":["true"' }, false],
    ["exec-not-object", { text: '["true"]' }, false],
  ];
  return weighted(
    [4, fc.constantFrom(...allowed)],
    [3, fc.constantFrom(...refused)],
    [2, fc.constantFrom(...malformed)],
  );
}

function execSteps(limits: FuzzLimits): fc.Arbitrary<Step> {
  const stream = (kind: string, bytes: Uint8Array, mut: Mutation | undefined = undefined) =>
    frame(kind, MessageType.Stream, { bytes }, mut);
  return weighted<Step>(
    [
      4,
      fc.tuple(fc.uint8Array({ maxLength: 64 }), maybeMutation())
        .map(([b, mut]) => stream("stdin-data", concat(new Uint8Array([0]), b), mut)),
    ],
    [2, fc.constant(stream("stdin-end", new Uint8Array([0])))],
    [
      1,
      fc.integer({ min: 1, max: 255 }).map((id) =>
        stream("stream-wrong-id", new Uint8Array([id, 1, 2]))
      ),
    ],
    [1, fc.constant(frame("stream-no-id", MessageType.Stream, { bytes: new Uint8Array() }))],
    [
      1,
      fc.constant<Step>({
        t: "frame",
        kind: "stdin-over-window",
        type: MessageType.Stream,
        // Sent five times by the driver: more than the 1 MiB window.
        body: { fill: 0, length: limits.maxFrame - 1 },
        mut: undefined,
      }),
    ],
    [
      2,
      // SIGQUIT is left out: its default action dumps core into the command's cwd.
      fc.constantFrom("SIGINT", "SIGTERM", "SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2")
        .map((signal) => frame("signal", MessageType.Signal, { json: { signal } })),
    ],
    [
      2,
      fc.constantFrom<Body>(
        { json: { signal: "SIGSTOP" } },
        { json: { signal: "SIGSEGV" } },
        { json: { signal: 9 } },
        { json: { signal: "sigint" } },
        { json: {} },
        { text: "SIGINT" },
      ).map((body) => frame("signal-malformed", MessageType.Signal, body)),
    ],
    [
      1,
      fc.constant(
        frame("credit-from-client", MessageType.Credit, { bytes: new Uint8Array([0, 0, 16, 0]) }),
      ),
    ],
    [1, fc.constant(frame("data-in-exec", MessageType.Data, { text: "hi" }))],
    [1, fc.constant(frame("exec-again", MessageType.Exec, { json: { argv: ["true"] } }))],
    [
      3,
      anywhereSteps([MessageType.Ping, MessageType.Stream, MessageType.Signal, MessageType.Exec]),
    ],
  );
}

function execArb(paths: FuzzPaths, limits: FuzzLimits): fc.Arbitrary<SessionScript> {
  const early = weighted<Step[]>(
    [8, fc.constant([])],
    [
      1,
      fc.constantFrom(
        frame("stream-before-exec", MessageType.Stream, { bytes: new Uint8Array([0, 1]) }),
        frame("signal-before-exec", MessageType.Signal, { json: { signal: "SIGKILL" } }),
        frame("ping-before-exec", MessageType.Ping, { bytes: new Uint8Array() }),
        frame("credit-before-exec", MessageType.Credit, { bytes: new Uint8Array([0, 0, 0, 1]) }),
      ).map((s) => [s]),
    ],
  );
  return fc.record({
    nonce: nonceArb,
    early,
    exec: execVariants(paths),
    execMut: maybeMutation(),
    waitStart: fc.boolean(),
    steps: fc.array(execSteps(limits), { maxLength: 5 }),
    waitExit: fc.boolean(),
    ending: endingArb,
  }).chain((
    { nonce, early, exec: [kind, body, allowed], execMut, waitStart, steps, waitExit, ending },
  ) =>
    openSteps("exec", nonce, {}).map((open) => ({
      target: "exec" as const,
      service: "exec",
      nonce,
      steps: [
        ...open,
        ...early,
        frame(kind, MessageType.Exec, body, execMut),
        ...(waitStart ? [{ t: "await", what: "started", ms: 1000 } as const] : []),
        ...steps,
        ...(waitExit ? [{ t: "await", what: "exit", ms: 1000 } as const] : []),
      ],
      ending,
      mayWelcome: true,
      mayStart: allowed && early.length === 0,
    }))
  );
}

// --- upload

/**
 * The upload names the fuzzer sends: good ones, which may be stored, and
 * hostile ones, which must be refused.
 *
 * @param paths where the hostile names aim
 * @returns both lists
 */
export function uploadNames(paths: FuzzPaths): { good: string[]; hostile: string[] } {
  const baseName = paths.base.split("/").pop()!;
  return {
    good: [
      "a.txt",
      "d/b.bin",
      "d/e/f.txt",
      "d",
      "link", // a file with overwrite replaces the planted link itself
      "e\u0301.txt", // NFD: stored as NFC
      "%2e%2e/x",
      "-rf",
      "space name.txt",
      ".hidden",
      // Names only Windows cannot hold: accepted unless the server asks for portable names.
      "nul.txt",
      "CON",
      "a.",
      "a ",
      "x:stream",
    ],
    hostile: [
      "../outside/pwn",
      `../../${baseName}/outside/pwn`,
      `${paths.outside}/pwn`,
      "a/../../outside/pwn",
      "./../outside/pwn",
      "..",
      ".",
      "",
      "link/pwn", // link -> ../outside
      "link/../../outside/pwn",
      "..\\outside\\pwn",
      "C:\\pwn",
      "\\\\host\\share\\pwn",
      "x\u0000/../../outside/pwn",
      "\u0000",
      "a".repeat(1025),
      `${"b/".repeat(70)}c`,
      `${"x".repeat(256)}/y`,
      ".sockit-partial/pwn",
      ".SOCKIT-PARTIAL/pwn",
      "d//e",
      "d/",
      "/",
      "a\u202etxt.exe",
      "a\ud800",
      "\u200bx",
    ],
  };
}

/** Upload file lengths; few, so that an interrupted file and its resume meet. */
const LENGTHS = [0, 7, 5000, 70_000] as const;

/** An entry with nothing wrong with it (bar, rarely, one damaged frame). */
function cleanEntryArb(paths: FuzzPaths): fc.Arbitrary<EntrySpec> {
  return fc.record({
    type: weighted<unknown>([4, fc.constant("file")], [1, fc.constant("dir")]),
    name: fc.constantFrom(...uploadNames(paths).good),
    hostile: fc.constant(false),
    seed: fc.integer({ min: 1, max: 2 }),
    length: fc.constantFrom(...LENGTHS),
    size: fc.constant<SizeHow>("exact"),
    chunks: fc.integer({ min: 1, max: 3 }),
    overwrite: fc.constantFrom(undefined, false, true),
    resume: weighted<unknown>([3, fc.constantFrom(undefined, false)], [1, fc.constant(true)]),
    mode: fc.constantFrom(undefined, 0o644, 0o755, 0o6777, 0o400),
    mtime: fc.constantFrom(undefined, 0, 1_767_225_600_000, -1e12, 1.5),
    start: fc.constant<StartHow>("auto"),
    end: fc.constant<EndHow>("correct"),
    fileMut: maybeMutation(20),
    dataMut: maybeMutation(20),
  });
}

/** One thing wrong with an entry; several at once mostly test the first check. */
type Defect = Partial<EntrySpec>;

function defectArb(paths: FuzzPaths): fc.Arbitrary<Defect> {
  const { hostile } = uploadNames(paths);
  return weighted<Defect>(
    [5, fc.constantFrom(...hostile).map((name) => ({ name, hostile: true }))],
    [1, fc.constantFrom<unknown>("pipe", "symlink", 1, null, undefined).map((type) => ({ type }))],
    [
      2,
      fc.constantFrom<SizeHow>(
        "more",
        "less",
        "too-large",
        "negative",
        "fraction",
        "unsafe",
        "text",
        "missing",
      ).map((size) => ({ size, type: "file" })),
    ],
    [
      3,
      fc.constantFrom<EndHow>("wrong", "malformed", "missing", "empty", "not-json", "none")
        .map((end) => ({ end, type: "file" })),
    ],
    [
      1,
      fc.constantFrom<StartHow>("zero", "held-anyway", "wrong", "none", "twice")
        .map((start) => ({ start, resume: true, type: "file" })),
    ],
    [1, fc.constantFrom<unknown>("yes", 1, null).map((overwrite) => ({ overwrite }))],
    [1, fc.constantFrom<unknown>(1, "true").map((resume) => ({ resume }))],
    [1, fc.constant<Defect>({ type: "dir", resume: true })],
    [1, fc.constantFrom<unknown>(-1, 0o10000, 1.5, "644").map((mode) => ({ mode }))],
    [1, fc.constantFrom<unknown>(9e15, -Infinity, "now", null).map((mtime) => ({ mtime }))],
  );
}

function entryArb(paths: FuzzPaths): fc.Arbitrary<Step> {
  return fc.tuple(
    cleanEntryArb(paths),
    weighted<Defect | undefined>([4, fc.constant(undefined)], [5, defectArb(paths)]),
  ).map(([clean, defect]) => ({
    t: "entry",
    kind: "upload-entry",
    entry: { ...clean, ...defect },
  }));
}

/** The kinds of bad input an entry carries, for the summary. */
function entryKinds(entry: EntrySpec): string[] {
  const kinds = [entry.type === "dir" ? "upload-dir" : "upload-file"];
  if (entry.hostile) kinds.push("upload-hostile-name");
  if (entry.type !== "file" && entry.type !== "dir") kinds.push("upload-bad-type");
  if (entry.size !== "exact") kinds.push(`upload-size-${entry.size}`);
  if (entry.end !== "correct") kinds.push(`upload-end-${entry.end}`);
  if (entry.resume === true) kinds.push(`upload-resume-${entry.start}`);
  if (!mayCommit({ ...entry, hostile: false, size: "exact", end: "correct", start: "auto" })) {
    kinds.push("upload-bad-attributes");
  }
  return kinds;
}

/** Whether the server may commit `entry`: a good name and honest size and hash. */
export function mayCommit(entry: EntrySpec): boolean {
  const optionalBool = (v: unknown) => v === undefined || typeof v === "boolean";
  const mode = entry.mode === undefined ||
    (Number.isSafeInteger(entry.mode) && (entry.mode as number) >= 0 &&
      (entry.mode as number) <= 0o7777);
  const mtime = entry.mtime === undefined ||
    (typeof entry.mtime === "number" && Math.abs(entry.mtime) <= 8.64e15);
  if (entry.hostile || !mode || !mtime || !optionalBool(entry.overwrite)) return false;
  if (!optionalBool(entry.resume)) return false;
  if (entry.type === "dir") return entry.resume !== true;
  return entry.type === "file" && entry.size === "exact" && entry.end === "correct" &&
    (entry.resume !== true || ["auto", "zero", "held-anyway"].includes(entry.start));
}

function uploadArb(paths: FuzzPaths): fc.Arbitrary<SessionScript> {
  const violation = fc.oneof(
    fc.constant(frame("data-outside-file", MessageType.Data, { text: "x" })),
    fc.constant(frame("end-outside-file", MessageType.End, { json: { sha256: "0".repeat(64) } })),
    fc.constant(frame("start-without-resume", MessageType.Start, { json: { offset: 0 } })),
    fc.constantFrom<Body>(
      { text: "{" },
      { text: "[]" },
      { json: { name: "x", size: 1 } },
      { json: { type: "file", name: 5, size: 1 } },
    ).map((body) => frame("file-malformed", MessageType.File, body)),
  );
  const step = weighted<Step>(
    [12, entryArb(paths)],
    [1, violation],
    [
      2,
      anywhereSteps([
        MessageType.Data,
        MessageType.Ping,
        MessageType.File,
        MessageType.End,
        MessageType.Start,
      ]),
    ],
  );
  return fc.record({
    nonce: nonceArb,
    steps: fc.array(step, { minLength: 1, maxLength: 6 }),
    ending: endingArb,
  }).chain(({ nonce, steps, ending }) => uploadSession(nonce, steps, ending));
}

function uploadSession(
  nonce: Uint8Array,
  steps: Step[],
  ending: Ending,
): fc.Arbitrary<SessionScript> {
  return openSteps("upload", nonce, {}).map((open) => ({
    target: "upload" as const,
    service: "upload",
    nonce,
    steps: [...open, ...steps],
    ending,
    mayWelcome: true,
    mayStart: false,
  }));
}

/**
 * Two upload sessions: one that ends inside a file, leaving its bytes for a
 * resume, then one that resumes it (the same name, size and content).
 */
function resumePairArb(paths: FuzzPaths): fc.Arbitrary<SessionScript[][]> {
  return fc.record({
    entry: cleanEntryArb(paths),
    start: weighted<StartHow>(
      [4, fc.constant("auto")],
      [1, fc.constantFrom("zero", "held-anyway", "wrong", "none", "twice")],
    ),
    cut: fc.constantFrom<Ending>("half-close", "close"),
    nonces: fc.tuple(nonceArb, nonceArb),
  }).chain(({ entry, start, cut, nonces: [a, b] }) => {
    const file = { ...entry, type: "file", length: Math.max(7, entry.length), chunks: 3 };
    const interrupted: Step = {
      t: "entry",
      kind: "upload-interrupted",
      entry: { ...file, end: "none" },
    };
    const resumed: Step = {
      t: "entry",
      kind: "upload-resumed",
      entry: { ...file, resume: true, start },
    };
    return fc.tuple(
      uploadSession(a, [interrupted], cut).map((s) => [s]),
      uploadSession(b, [resumed], "half-close").map((s) => [s]),
    );
  });
}

/**
 * The arbitrary of one fuzz run: sessions, each aimed at one protocol state,
 * in groups played at once (a few sessions of any kind, the members of a
 * chat room), or a cut-off upload and then its resume.
 *
 * @param paths the directories the upload names aim at
 * @param limits the server's limits
 * @returns the arbitrary
 */
export function runArbitrary(paths: FuzzPaths, limits: FuzzLimits): fc.Arbitrary<RunScript> {
  const session = weighted<SessionScript>(
    [2, preHelloArb(limits)],
    [3, handshakeArb(limits)],
    [2, echoArb(limits)],
    [2, chatArb(limits)],
    [3, execArb(paths, limits)],
    [4, uploadArb(paths)],
  );
  return fc.record({
    parallel: weighted([1, fc.constant(true)], [3, fc.constant(false)]),
    groups: fc.array(
      weighted<SessionScript[][]>(
        [5, session.map((s) => [[s]])],
        [2, fc.array(session, { minLength: 2, maxLength: 3 }).map((g) => [g])],
        [1, chatRoomArb(limits).map((g) => [g])],
        [1, resumePairArb(paths)],
      ),
      { minLength: 1, maxLength: 3 },
    ).map((groups) => groups.flat()),
  });
}

// ---------------------------------------------------------------------------
// The driver

/** Counters over every session played, for the summary line. */
export class FuzzStats {
  sessions = 0;
  /** Frames written; a raw step (garbage, a bare header) counts as one. */
  frames = 0;
  bytes = 0;
  mutated = 0;
  readonly kinds = new Set<string>();
  readonly targets = new Set<string>();
  /** How often each state was reached: `welcome:echo`, `exec:started`, `upload:committed`... */
  readonly reached = new Map<string, number>();
  /** ERROR codes and failed-entry codes the server answered with. */
  readonly codes = new Set<string>();
  /** An AUTH frame from an earlier session, for replays. */
  lastAuth: Uint8Array | undefined;
}

/** What one run expects of the upload directory, and what went wrong. */
export class RunModel {
  /** SHA-256 of every content sent with its correct END hash. */
  readonly goodHashes = new Set<string>();
  /** `NFC name NUL sha256` of those whose FILE frame went out intact. */
  readonly goodFiles = new Set<string>();
  /** Directories that may appear: every prefix of a good name. */
  readonly goodDirs = new Set<string>();
  /**
   * Set when a frame of an upload session went out damaged (or raw bytes
   * desynchronised it): names and types may then differ from the script's,
   * and only the hashes are checked.
   */
  damagedUpload = false;
  /** Broken promises: oracle failures and hangs. */
  readonly violations: string[] = [];
}

/** What the driver needs besides the script. */
export interface DriverContext {
  address: string;
  token: string;
  stats: FuzzStats;
  model: RunModel;
  /** Milliseconds the server gets to close a connection it should close. */
  closeWithin: number;
  /** The server's limits. */
  limits: FuzzLimits;
}

/** A message received, decoded where it carries JSON. */
interface Received {
  type: number;
  json: Record<string, unknown> | undefined;
}

const JSON_TYPES = new Set<number>([
  MessageType.Challenge,
  MessageType.Welcome,
  MessageType.Error,
  MessageType.Event,
]);

/** A raw connection that reads everything the server sends, in the background. */
class Peer {
  readonly conn: Deno.TcpConn;
  readonly received: Received[] = [];
  /** Resolves when the server's side has ended (or the connection was closed). */
  readonly done: Promise<void>;
  ended = false;
  broken = false;
  #wake = new Set<() => void>();

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.done = this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const reader = new FrameReader(this.conn, { maxFrameLength: 1 << 24 });
    try {
      for (;;) {
        const payload = await reader.read();
        if (payload === null) return;
        const type = payload[0] ?? -1;
        let json: Record<string, unknown> | undefined;
        if (JSON_TYPES.has(type)) {
          try {
            json = JSON.parse(new TextDecoder().decode(payload.subarray(1)));
          } catch (error) {
            if (!(error instanceof SyntaxError)) throw error;
          }
        }
        this.received.push({ type, json });
        this.#notify();
      }
    } catch (error) {
      // The connection was reset, or closed here, or closed by the server in
      // the middle of a frame after its linger time: the session is over.
      if (!isConnectionError(error) && !(error instanceof FrameTruncatedError)) throw error;
    } finally {
      this.ended = true;
      this.#notify();
    }
  }

  #notify(): void {
    for (const wake of this.#wake) wake();
    this.#wake.clear();
  }

  /** The first message from index `from` on that matches, waiting at most `ms`. */
  async until(
    match: (m: Received) => boolean,
    ms: number,
    from = 0,
  ): Promise<Received | undefined> {
    const deadline = performance.now() + ms;
    for (;;) {
      const found = this.received.slice(from).find(match);
      if (found || this.ended) return found;
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#wake.delete(wake);
          resolve();
        }, left);
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        this.#wake.add(wake);
      });
    }
  }

  /** Waits at most `ms` for the server to end the connection; true if it did. */
  async closedWithin(ms: number): Promise<boolean> {
    await this.until(() => false, ms);
    return this.ended;
  }

  /** Writes bytes; after the server has gone, writes nothing. */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.broken) return;
    try {
      for (let at = 0; at < bytes.length;) at += await this.conn.write(bytes.subarray(at));
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      this.broken = true;
    }
  }
}

function bodyBytes(body: Body): Uint8Array {
  if ("json" in body) return utf8.encode(JSON.stringify(body.json));
  if ("text" in body) return utf8.encode(body.text);
  if ("fill" in body) return new Uint8Array(body.length).fill(body.fill);
  return body.bytes;
}

function encode(type: number, body: Uint8Array): Uint8Array {
  return concat(frameHeader(body.length + 1), new Uint8Array([type]), body);
}

/** The pieces to write for a (maybe mutated) frame, and a pause between them. */
function mutate(
  bytes: Uint8Array,
  mut: Mutation | undefined,
): { pieces: Uint8Array[]; pause: number } {
  if (!mut) return { pieces: [bytes], pause: 0 };
  const payload = bytes.subarray(4);
  switch (mut.how) {
    case "flip": {
      const copy = bytes.slice(); // mutated: the original stays intact for the record
      copy[mut.at % copy.length]! ^= mut.value;
      return { pieces: [copy], pause: 0 };
    }
    case "truncate": {
      // A well-formed frame whose payload was cut short.
      const cut = mut.at % Math.max(1, payload.length);
      return { pieces: [concat(frameHeader(cut), payload.subarray(0, cut))], pause: 0 };
    }
    case "length-lie": {
      const lie = mut.value > 250
        ? 0xffff_ffff - mut.value
        : Math.max(0, payload.length + mut.value - 128);
      return {
        pieces: [concat(frameHeader(lie === payload.length ? lie + 1 : lie), payload)],
        pause: 0,
      };
    }
    case "type": {
      if (payload.length === 0) return { pieces: [bytes], pause: 0 };
      const copy = bytes.slice();
      copy[4] = mut.value === copy[4] ? mut.value ^ 1 : mut.value;
      return { pieces: [copy], pause: 0 };
    }
    case "duplicate":
      return { pieces: [bytes, bytes], pause: 0 };
    case "drop":
      return { pieces: [], pause: 0 };
    case "junk": {
      const junk = new Uint8Array(mut.value % 16 + 1).map((_, i) => (mut.at * 31 + i * 7) & 0xff);
      return { pieces: [concat(bytes, junk)], pause: 0 };
    }
    case "split": {
      const cut = 1 + mut.at % Math.max(1, bytes.length - 1);
      const second = cut + (mut.value % Math.max(1, bytes.length - cut));
      return {
        pieces: [bytes.subarray(0, cut), bytes.subarray(cut, second), bytes.subarray(second)]
          .filter((p) => p.length > 0),
        pause: mut.value % 30,
      };
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Plays one session script against the server and checks its promises. */
export class SessionDriver {
  readonly #script: SessionScript;
  readonly #ctx: DriverContext;
  readonly #peer: Peer;
  /** Set when a frame went out damaged: the script's promises no longer hold. */
  #mutated = false;
  #entries: EntrySpec[] = [];

  private constructor(script: SessionScript, ctx: DriverContext, peer: Peer) {
    this.#script = script;
    this.#ctx = ctx;
    this.#peer = peer;
  }

  /**
   * Plays `script` on a new connection and closes it.
   *
   * @param script the session
   * @param ctx the server, counters and the run's model
   */
  static async play(script: SessionScript, ctx: DriverContext): Promise<void> {
    const peer = new Peer(await rawConnect(ctx.address));
    const driver = new SessionDriver(script, ctx, peer);
    ctx.stats.sessions++;
    ctx.stats.targets.add(script.target);
    // However the server behaves, the session ends: a hang is reported, not waited out.
    let hung = false;
    const watchdog = setTimeout(() => {
      hung = true;
      peer.conn.close();
    }, 15_000);
    try {
      await driver.#run();
    } finally {
      clearTimeout(watchdog);
      if (!hung) peer.conn.close();
      await peer.done;
    }
    if (hung) driver.#violation("the session did not end within 15 s");
    driver.#checkPromises();
  }

  #damaged(): void {
    this.#mutated = true;
    if (this.#script.target === "upload") this.#ctx.model.damagedUpload = true;
  }

  #violation(what: string): void {
    const kinds = this.#script.steps.map((s) => ("kind" in s ? s.kind : s.t)).join(",");
    this.#ctx.model.violations.push(`${this.#script.target} session [${kinds}]: ${what}`);
  }

  async #run(): Promise<void> {
    for (const step of this.#script.steps) {
      if (this.#peer.ended) break;
      await this.#step(step);
    }
    const { ending } = this.#script;
    const { closeWithin } = this.#ctx;
    if (ending === "half-close") {
      try {
        await this.#peer.conn.closeWrite();
      } catch (error) {
        if (!isConnectionError(error)) throw error;
      }
      if (!await this.#peer.closedWithin(closeWithin)) {
        this.#violation(`the server kept a half-closed connection open for ${closeWithin} ms`);
      }
    } else if (ending === "wait") {
      if (!await this.#peer.closedWithin(closeWithin)) {
        this.#violation(`no timeout closed a silent connection within ${closeWithin} ms`);
      }
    }
  }

  async #send(kind: string, bytes: Uint8Array, mut: Mutation | undefined): Promise<void> {
    const { stats } = this.#ctx;
    stats.kinds.add(kind);
    if (mut) {
      stats.kinds.add(`mutation:${mut.how}`);
      stats.mutated++;
      if (mut.how !== "split") this.#damaged();
    }
    const { pieces, pause } = mutate(bytes, mut);
    stats.frames += mut?.how === "duplicate" ? 2 : mut?.how === "drop" ? 0 : 1;
    for (const [i, piece] of pieces.entries()) {
      if (i > 0 && pause > 0) await delay(pause);
      stats.bytes += piece.length;
      await this.#peer.write(piece);
    }
  }

  async #step(step: Step): Promise<void> {
    switch (step.t) {
      case "raw":
        // Raw bytes in a session may desynchronise the framing: what follows
        // is no longer what the script says. (Before and in the handshake the
        // promise checked is "no WELCOME without a proof", which no byte
        // sequence but the driver's own AUTH can break.)
        if (this.#script.target !== "pre-hello" && this.#script.target !== "handshake") {
          this.#damaged();
        }
        return this.#send(step.kind, step.bytes, undefined);
      case "frame": {
        const bytes = encode(step.type, bodyBytes(step.body));
        const times = step.kind === "stdin-over-window" ? 5 : 1;
        for (let i = 0; i < times; i++) await this.#send(step.kind, bytes, step.mut);
        return;
      }
      case "auth":
        return this.#auth(step);
      case "await": {
        const match = step.what === "welcome"
          ? (m: Received) => m.type === MessageType.Welcome || m.type === MessageType.Error
          : (m: Received) => m.type === MessageType.Event && m.json?.kind === step.what;
        await this.#peer.until(match, step.ms);
        return;
      }
      case "entry":
        return this.#entry(step.kind, step.entry);
      case "pause":
        return delay(step.ms);
    }
  }

  async #auth(step: Extract<Step, { t: "auth" }>): Promise<void> {
    const { how, kind, mut } = step;
    const { token, stats } = this.#ctx;
    const script = this.#script;
    const auth = (body: Body) => encode(MessageType.Auth, bodyBytes(body));
    if (how === "none") return;
    if (how === "early") {
      return this.#send(
        kind,
        auth({ json: { proof: new Uint8Array(32).fill(1).toBase64() } }),
        mut,
      );
    }
    const challenge = await this.#peer.until((m) => m.type === MessageType.Challenge, 1000);
    const serverNonce = typeof challenge?.json?.nonce === "string"
      ? Uint8Array.fromBase64(challenge.json.nonce)
      : new Uint8Array(32);
    const proof = (
      key: string,
      role: "client" | "server",
      service: string,
      a: Uint8Array,
      b: Uint8Array,
    ) => computeProof(key, role, service, a, b);
    const correct = await proof(token, "client", script.service, serverNonce, script.nonce);
    let bytes: Uint8Array;
    switch (how) {
      case "correct":
      case "twice":
        bytes = auth({ json: { proof: correct.toBase64() } });
        break;
      case "wrong-token":
        bytes = auth({
          json: {
            proof: (await proof(`${token}!`, "client", script.service, serverNonce, script.nonce))
              .toBase64(),
          },
        });
        break;
      case "other-service": {
        const other = script.service === "exec" ? "echo" : "exec";
        bytes = auth({
          json: {
            proof: (await proof(token, "client", other, serverNonce, script.nonce)).toBase64(),
          },
        });
        break;
      }
      case "server-role":
        bytes = auth({
          json: {
            proof: (await proof(token, "server", script.service, serverNonce, script.nonce))
              .toBase64(),
          },
        });
        break;
      case "swapped-nonces":
        bytes = auth({
          json: {
            proof: (await proof(token, "client", script.service, script.nonce, serverNonce))
              .toBase64(),
          },
        });
        break;
      case "flipped": {
        const flipped = correct.slice();
        flipped[31]! ^= 0x80;
        bytes = auth({ json: { proof: flipped.toBase64() } });
        break;
      }
      case "replay":
        // An AUTH that proved the token on another connection, or, before
        // there is one, a proof for a server nonce this connection never saw.
        bytes = stats.lastAuth ?? auth({
          json: {
            proof: (await proof(token, "client", script.service, new Uint8Array(32), script.nonce))
              .toBase64(),
          },
        });
        break;
      case "missing":
        bytes = auth({ json: {} });
        break;
      case "short":
        bytes = auth({ json: { proof: correct.subarray(0, 16).toBase64() } });
        break;
      case "not-base64":
        bytes = auth({ json: { proof: "!".repeat(44) } });
        break;
      case "url-safe": {
        const b64 = correct.toBase64();
        const url = b64.replaceAll("+", "-").replaceAll("/", "_");
        bytes = auth({ json: { proof: url === b64 ? `-${b64.slice(1)}` : url } });
        break;
      }
      case "number":
        bytes = auth({ json: { proof: 1 } });
        break;
      case "not-json":
        bytes = auth({ text: correct.toBase64() });
        break;
      case "hello-again":
        bytes = encode(
          MessageType.Hello,
          bodyBytes(helloJson(script.service, script.nonce, {})),
        );
        break;
      case "wrong-type":
        bytes = encode(MessageType.Data, bodyBytes({ json: { proof: correct.toBase64() } }));
        break;
    }
    if (how === "correct") stats.lastAuth = bytes;
    await this.#send(kind, bytes, mut);
    if (how === "twice") {
      await this.#peer.until((m) => m.type === MessageType.Welcome, 1000);
      await this.#send("auth-after-welcome", bytes, undefined);
    }
  }

  async #entry(kind: string, entry: EntrySpec): Promise<void> {
    const { model, stats } = this.#ctx;
    this.#entries.push(entry);
    for (const k of entryKinds(entry)) stats.kinds.add(k);
    const data = fileContent(entry.seed, entry.length);
    const digest = sha256(data);
    const nfc = entry.name.normalize("NFC");
    if (entry.end === "correct") {
      model.goodHashes.add(digest);
      if (!entry.fileMut || entry.fileMut.how === "split") {
        model.goodFiles.add(`${nfc}\0${digest}`);
      }
    }
    if (!entry.hostile) {
      const parts = nfc.split("/");
      for (let i = 1; i <= parts.length; i++) model.goodDirs.add(parts.slice(0, i).join("/"));
    }
    const size = {
      exact: data.length,
      more: data.length + 3,
      less: data.length > 0 ? data.length - 1 : 1,
      "too-large": this.#ctx.limits.maxFileSize + 1,
      negative: -1,
      fraction: data.length + 0.5,
      unsafe: 2 ** 53,
      text: String(data.length),
      missing: undefined,
    }[entry.size];
    const seen = this.#peer.received.length;
    await this.#send(
      kind,
      encode(
        MessageType.File,
        bodyBytes({
          json: {
            type: entry.type,
            name: entry.name,
            size,
            mode: entry.mode,
            mtime: entry.mtime,
            overwrite: entry.overwrite,
            resume: entry.resume,
          },
        }),
      ),
      entry.fileMut,
    );
    if (entry.type !== "file") return; // a directory has no bytes (a bad type ends the session)
    let from = 0;
    if (entry.resume === true) {
      const answer = await this.#peer.until(
        (m) =>
          m.type === MessageType.Event && m.json?.name === entry.name &&
          (m.json.kind === "ready" || m.json.kind === "failed"),
        1000,
        seen,
      );
      if (answer?.json?.kind === "ready") {
        const held = typeof answer.json.offset === "number" ? answer.json.offset : 0;
        const prefixMatches = held <= data.length &&
          sha256(data.subarray(0, held)) ===
            (held > 0 ? answer.json.prefixSha256 : sha256(data.subarray(0, 0)));
        const start = (offset: unknown) =>
          this.#send(
            `upload-start`,
            encode(MessageType.Start, bodyBytes({ json: { offset } })),
            undefined,
          );
        switch (entry.start) {
          case "auto":
            from = prefixMatches ? held : 0;
            await start(from);
            break;
          case "zero":
            await start(0);
            break;
          case "held-anyway":
            from = Math.min(held, data.length);
            await start(held);
            break;
          case "wrong":
            await start(held + 1);
            break;
          case "none":
            break;
          case "twice":
            await start(0);
            await start(0);
            break;
        }
      } else if (answer?.json?.kind === "failed") {
        from = data.length; // no bytes after a failure: END at once
      }
    }
    // A file left without END stops after its first chunk: a cut-off upload.
    const rest = data.subarray(
      from,
      entry.end === "none" && entry.chunks > 1
        ? from + Math.ceil((data.length - from) / entry.chunks)
        : data.length,
    );
    const per = Math.ceil((data.length - from) / entry.chunks);
    for (let at = 0, i = 0; at < rest.length; at += per, i++) {
      await this.#send(
        "upload-data",
        encode(MessageType.Data, rest.subarray(at, at + per)),
        i === 0 ? entry.dataMut : undefined,
      );
    }
    const end: Record<EndHow, Body | undefined> = {
      correct: { json: { sha256: digest } },
      wrong: { json: { sha256: sha256(concat(data, new Uint8Array([1]))) } },
      malformed: { json: { sha256: digest.slice(1) } },
      missing: { json: { sha: digest } },
      empty: { json: {} },
      "not-json": { text: digest },
      none: undefined,
    };
    const body = end[entry.end];
    if (body) await this.#send("upload-end", encode(MessageType.End, bodyBytes(body)), undefined);
  }

  /** Checks what the server sent against what the script allows. */
  #checkPromises(): void {
    const { received } = this.#peer;
    const { stats } = this.#ctx;
    const reach = (what: string) => stats.reached.set(what, (stats.reached.get(what) ?? 0) + 1);
    for (const m of received) {
      if (m.type === MessageType.Welcome) reach(`welcome:${this.#script.service}`);
      if (m.type === MessageType.Event && typeof m.json?.kind === "string") {
        reach(`${this.#script.service}:${m.json.kind}`);
      }
      if (m.type === MessageType.Error && typeof m.json?.code === "string") {
        stats.codes.add(m.json.code);
      }
      if (m.type === MessageType.Event && m.json?.kind === "failed") {
        stats.codes.add(`failed:${String(m.json.code)}`);
      }
    }
    if (this.#mutated) return;
    const script = this.#script;
    if (!script.mayWelcome && received.some((m) => m.type === MessageType.Welcome)) {
      this.#violation("WELCOME without a valid HELLO and token proof");
    }
    if (
      !script.mayStart &&
      received.some((m) => m.type === MessageType.Event && m.json?.kind === "started")
    ) {
      this.#violation("a command started that the allowlist or the protocol forbids");
    }
    if (script.target === "upload") {
      const answers = received.filter((m) =>
        m.type === MessageType.Event &&
        (m.json?.kind === "committed" || m.json?.kind === "failed")
      );
      for (const [i, answer] of answers.entries()) {
        const entry = this.#entries[i];
        if (!entry || answer.json?.name !== entry.name) {
          this.#violation(
            `answer ${i} (${JSON.stringify(answer.json?.name)}) matches no entry in order`,
          );
          break;
        }
        if (answer.json.kind === "committed" && !mayCommit(entry)) {
          this.#violation(`committed an entry it must refuse: ${JSON.stringify(entry)}`);
        }
      }
    }
  }
}
