#!/usr/bin/env -S deno run --allow-run --allow-read --allow-write
/**
 * `deno task demo`: a tour of sockit in a few seconds, with the real command
 * line. It starts `sockit server` as a child process on a free loopback
 * port, runs `sockit client` child processes against it step by step, tells
 * what happened, stops the server with SIGTERM, and exits 0 only if every
 * step behaved exactly as expected (1 otherwise, naming the step and what
 * differed).
 *
 * ```sh
 * deno task demo
 * ./examples/demo.ts        # the same
 * ```
 *
 * The demo itself starts processes, makes a temporary upload directory and
 * reads what arrives there to check it; each child gets only the flags it
 * needs.
 *
 * Every wait has a deadline, every child is killed on every path, and the
 * output is the same on every run apart from the port and the hashes. To extend the demo,
 * write a {@linkcode Step} and add it to {@linkcode STEPS}.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { createToken, FrameDecoderStream, MessageType } from "@sockit/sockit";
import { escapeControl } from "@sockit/sockit/client";
// The demo reads one raw ERROR frame to show its bytes: a protocol internal.
import { decodeControl } from "../lib/protocol/protocol.ts";

/** The repository root, where `cli.ts` and `deno.json` live. */
const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** How every client starts: the CLI with loopback-only network access and the token. */
const SOCKIT = ["run", "--allow-net=127.0.0.1", "--allow-env=SOCKIT_TOKEN", "cli.ts"];
/**
 * How the server starts: it may also run the two programs exec allows, and
 * read and write its upload directory (and check the free space there).
 */
function serverCommand(uploads: string): string[] {
  return [
    "run",
    "--allow-net=127.0.0.1",
    "--allow-env=SOCKIT_TOKEN,PATH,LANG,HOME",
    "--allow-run=printf,sh",
    `--allow-read=${uploads}`,
    `--allow-write=${uploads}`,
    "--allow-sys=statfs",
    "cli.ts",
  ];
}
/** What the upload client may read: the files the demo uploads. */
const UPLOAD_READ = "--allow-read=README.md,examples";
/** A fresh token for this run, handed to every child in `SOCKIT_TOKEN`. */
const TOKEN = createToken();
/** Limit on any one wait: a line of output, an exit, a server event. */
const WAIT_MS = 5_000;
/** Limit on a whole step. */
const STEP_MS = 15_000;
/** Limit on the server's start, which may include compiling the CLI. */
const START_MS = 15_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A step did not behave as expected; the message says how. */
class DemoFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DemoFailure";
  }
}

function quote(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new DemoFailure(message);
}

function checkEqual<T>(actual: T, expected: T, what: string): void {
  check(
    quote(actual) === quote(expected),
    `${what}: expected ${quote(expected)}, got ${quote(actual)}`,
  );
}

function reasonOf(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
}

/** Waits for `promise`, failing after `ms` milliseconds or when `signal` aborts. */
async function within<T>(
  what: string,
  promise: Promise<T>,
  signal: AbortSignal,
  ms: number = WAIT_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort = () => {};
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DemoFailure(`${what}: nothing after ${ms} ms`)), ms);
    onAbort = () => reject(new DemoFailure(`${what}: ${reasonOf(signal)}`));
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}

/** Reads a byte stream as lines, each wait bounded. */
class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #pending: Promise<ReadableStreamReadResult<string>> | undefined;
  #buffer = "";
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line without its newline, or `null` at the end of the stream. */
  async next(what: string, signal: AbortSignal, ms: number = WAIT_MS): Promise<string | null> {
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline !== -1) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      if (this.#done) {
        const rest = this.#buffer;
        this.#buffer = "";
        return rest === "" ? null : rest;
      }
      // A read that outlives a timeout is kept for the next call: no bytes are lost.
      this.#pending ??= this.#reader.read();
      const { value, done } = await within(what, this.#pending, signal, ms);
      this.#pending = undefined;
      if (done) this.#done = true;
      else this.#buffer += value;
    }
  }

  /** Stops reading and releases the stream. */
  async cancel(): Promise<void> {
    await this.#reader.cancel();
  }
}

/**
 * A `sockit` child process that keeps running while the demo talks to it:
 * stdin is written line by line, stdout is read line by line. Disposing of it
 * kills it if it still runs and releases its pipes.
 */
class Child implements AsyncDisposable {
  /** Its stdout, line by line. */
  readonly lines: Lines;
  /** Its exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Everything it wrote to stderr, once it has exited. */
  readonly stderr: Promise<string>;
  readonly #process: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdinClosed = false;
  #exited = false;
  #disposed: Promise<void> | undefined;

  constructor(args: string[], command: readonly string[] = SOCKIT) {
    this.#process = new Deno.Command(Deno.execPath(), {
      args: [...command, ...args],
      cwd: ROOT,
      env: { NO_COLOR: "1", SOCKIT_TOKEN: TOKEN },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#process.status.then((status) => {
      this.#exited = true;
      return status;
    });
    this.lines = new Lines(this.#process.stdout);
    this.stderr = new Response(this.#process.stderr).text();
    this.#stdin = this.#process.stdin.getWriter();
  }

  /** Sends `text` to its stdin. */
  async write(text: string): Promise<void> {
    await this.#stdin.write(encoder.encode(text));
  }

  /** Closes its stdin, as Ctrl-D does in a terminal. */
  async closeStdin(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#stdin.close();
  }

  /** Sends it `signal` unless it has exited. */
  kill(signal: Deno.Signal): void {
    if (this.#exited) return;
    try {
      this.#process.kill(signal);
    } catch (error) {
      // It exited between the check and the kill.
      if (!(error instanceof TypeError)) throw error;
    }
  }

  /** Kills it if it still runs and releases its pipes; later calls wait for the first. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#disposed ??= this.#dispose();
    return this.#disposed;
  }

  async #dispose(): Promise<void> {
    this.kill("SIGKILL");
    await this.status;
    await this.lines.cancel();
    try {
      await this.closeStdin();
    } catch (error) {
      // The child is gone, so its stdin is broken: nothing left to tell it.
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    }
    await this.stderr;
  }
}

/** A child process that ran to its end. */
interface Finished {
  /** Its exit code. */
  code: number;
  /** Everything it wrote to stdout. */
  stdout: Uint8Array;
  /** Everything it wrote to stderr. */
  stderr: string;
}

/** Runs `sockit ARGS` with `input` on stdin until it exits, within `WAIT_MS`. */
async function runToEnd(
  args: string[],
  input: Uint8Array,
  signal: AbortSignal,
  permissions: readonly string[] = [],
): Promise<Finished> {
  const timeout = AbortSignal.timeout(WAIT_MS);
  const deadline = AbortSignal.any([signal, timeout]);
  const child = new Deno.Command(Deno.execPath(), {
    args: [SOCKIT[0]!, ...permissions, ...SOCKIT.slice(1), ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", SOCKIT_TOKEN: TOKEN },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: deadline, // kills the child when the time is up
  }).spawn();
  const writer = child.stdin.getWriter();
  try {
    await writer.write(input);
    await writer.close();
  } catch (error) {
    // It exited without reading all of its input; its output tells why.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
  const { code, stdout, stderr } = await child.output();
  if (deadline.aborted) {
    const why = timeout.aborted ? `still running after ${WAIT_MS} ms` : reasonOf(signal);
    throw new DemoFailure(`sockit ${args.join(" ")}: killed, ${why}`);
  }
  return { code, stdout, stderr: decoder.decode(stderr) };
}

/** What the server logged about one connection. */
interface ConnectionLog {
  /** The connection id. */
  id: number;
  /** The service asked for, or `""` if the HELLO never came. */
  service: string;
  /** Whether the service accepted it and a session started. */
  session: boolean;
  /** Why it closed. */
  reason: string;
}

/** The running `sockit server` and its NDJSON event log. */
class DemoServer implements AsyncDisposable {
  /** The address it listens on. */
  readonly address: string;
  readonly #child: Child;

  /** Use {@linkcode DemoServer.start}. */
  constructor(child: Child, address: string) {
    this.#child = child;
    this.address = address;
  }

  /** Starts the server on a free port and reads the address from its `listening` event. */
  static async start(signal: AbortSignal, uploads: string): Promise<DemoServer> {
    const child = new Child(
      [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--exec",
        "--exec-allow",
        "printf,sh",
        "--upload-dir",
        uploads,
      ],
      serverCommand(uploads),
    );
    try {
      const event = await DemoServer.#event(
        child,
        "the server's listening event",
        signal,
        START_MS,
      );
      check(event !== null, "the server exited before it was listening");
      check(
        event.type === "listening" && typeof event.address === "string",
        `the server's first event: expected "listening", got ${quote(event)}`,
      );
      return new DemoServer(child, event.address);
    } catch (error) {
      await child[Symbol.asyncDispose]();
      const stderr = (await child.stderr).trim();
      if (stderr !== "" && error instanceof DemoFailure) {
        throw new DemoFailure(`${error.message}\nserver stderr:\n${stderr}`);
      }
      throw error;
    }
  }

  static async #event(
    child: Child,
    what: string,
    signal: AbortSignal,
    ms: number = WAIT_MS,
  ): Promise<Record<string, unknown> | null> {
    const line = await child.lines.next(what, signal, ms);
    if (line === null) return null;
    try {
      return JSON.parse(line);
    } catch {
      throw new DemoFailure(`${what}: expected one JSON event, got ${quote(line)}`);
    }
  }

  /**
   * Reads events until `count` more connections have closed, then tells
   * what the server logged about each, in id order.
   */
  async connections(count: number, signal: AbortSignal): Promise<ConnectionLog[]> {
    const sessions = new Set<number>();
    const closed: ConnectionLog[] = [];
    while (closed.length < count) {
      const what = `the server's log of ${count} closed connection(s)`;
      const event = await DemoServer.#event(this.#child, what, signal);
      if (event === null) throw new DemoFailure(`${what}: the server exited`);
      const id = Number(event.id);
      if (event.type === "session") sessions.add(id);
      else if (event.type === "closed") {
        const service = String(event.service);
        closed.push({ id, service, session: sessions.has(id), reason: String(event.reason) });
      }
      // Other events (connected, permissions, ones added later) tell this
      // demo nothing it checks: foreign clients skip what they do not know.
    }
    closed.sort((a, b) => a.id - b.id);
    for (const { id, service, session, reason } of closed) {
      const what = session
        ? `${service} session`
        : `no session${service && ` (asked for ${service})`}`;
      say(`server: #${id} ${what}, closed: ${reason}`);
    }
    return closed;
  }

  /** Sends SIGTERM and checks for a clean shutdown and exit code 0. */
  async stop(signal: AbortSignal): Promise<void> {
    this.#child.kill("SIGTERM");
    const event = await DemoServer.#event(this.#child, "the server's shutdown event", signal);
    check(event?.type === "shutdown", `after SIGTERM: expected "shutdown", got ${quote(event)}`);
    say(`server: shutting down (${event.sessions} sessions open)`);
    checkEqual(event.sessions, 0, "sessions open at shutdown");
    const rest = await this.#child.lines.next("the end of the server's log", signal);
    checkEqual(rest, null, "the server's log after shutdown");
    const { code } = await within("the server's exit", this.#child.status, signal);
    say(`server: exited with code ${code}`);
    checkEqual(code, 0, "the server's exit code");
  }

  /** Kills the server if it still runs and releases its pipes. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#child[Symbol.asyncDispose]();
  }

  /** What the server wrote to stderr; complete once it has exited. */
  get stderr(): Promise<string> {
    return this.#child.stderr;
  }
}

/** What a step can use. */
interface Demo {
  /** The server's address, `127.0.0.1:PORT`. */
  readonly address: string;
  /** Aborts when the step runs out of time or the demo is interrupted. */
  readonly signal: AbortSignal;
  /** Runs `sockit ARGS` with `input` on stdin to its end, with extra permission flags. */
  run(args: string[], input: string | Uint8Array, permissions?: string[]): Promise<Finished>;
  /** The server's upload directory. */
  readonly uploads: string;
  /** Starts `sockit ARGS` to talk to it while it runs; dispose of it when done. */
  start(args: string[]): Child;
  /** Waits until `count` more connections have closed and reports them. */
  serverLog(count: number): Promise<ConnectionLog[]>;
}

/** One scenario of the demo. */
interface Step {
  /** A heading: what the step shows. */
  title: string;
  /** Runs the scenario, printing what happens; throws {@linkcode DemoFailure} on a surprise. */
  run(demo: Demo): Promise<void>;
}

/** Prints one line of the narrative, indented under its step. */
function say(line: string): void {
  console.log(`  ${line}`);
}

/** Prints a command as a reader would type it; `sockit` is the CLI, `$ADDR` the server. */
function shell(line: string): void {
  console.log(`  $ ${line}`);
}

function checkClean(run: Finished, what: string): void {
  check(
    run.code === 0,
    `${what}: exited with code ${run.code}${run.stderr ? `, stderr:\n${run.stderr}` : ""}`,
  );
  checkEqual(run.stderr, "", `${what}: stderr`);
}

const echoStep: Step = {
  title: "Echo: three lines become three frames and come back as three replies",
  async run(demo) {
    const lines = ["hello", "sticky packets", "wörld ✓"];
    shell(`printf '${lines.join("\\n")}\\n' | sockit client $ADDR`);
    const run = await demo.run(["client", demo.address], lines.join("\n") + "\n");
    for (const line of decoder.decode(run.stdout).split("\n").slice(0, -1)) say(`| ${line}`);
    checkClean(run, "the echo client");
    checkEqual(decoder.decode(run.stdout), lines.join("\n") + "\n", "the echo client's output");
    say("ok: each line went out as one frame and came back whole, alone and in order");
    const conns = await demo.serverLog(1);
    const actual = conns.map((c) => [c.service, c.session, c.reason]);
    checkEqual(actual, [["echo", true, "eof"]], "the server's log of the echo connection");
  },
};

const chatStep: Step = {
  title: "Chat: two members talk both ways",
  async run(demo) {
    shell("sockit client $ADDR --chat ada      # keeps running");
    await using ada = demo.start(["client", demo.address, "--chat", "ada"]);
    // Bob starts only once ada is in the room, so what each sees is fixed.
    await expectLine(demo, "ada", ada, "* members: ada");
    shell("sockit client $ADDR --chat bob      # keeps running");
    await using bob = demo.start(["client", demo.address, "--chat", "bob"]);
    await expectLine(demo, "bob", bob, "* members: ada, bob");
    await expectLine(demo, "ada", ada, "* bob joined");

    say("bob types: hello ada");
    await bob.write("hello ada\n");
    await expectLine(demo, "ada", ada, "<bob> hello ada");

    // Chat text reaches the terminal escaped: this cannot clear bob's screen.
    const text = "hi bob, \u001b[2J cannot clear your screen";
    say(`ada types: ${escapeControl(text)}  (a real ESC character)`);
    await ada.write(text + "\n");
    await expectLine(demo, "bob", bob, "<ada> hi bob, \\x1b[2J cannot clear your screen");

    say("bob presses Ctrl-D");
    await bob.closeStdin();
    await expectLine(demo, "ada", ada, "* bob left (quit)");
    await expectExit(demo, "bob", bob);

    say("ada presses Ctrl-D");
    await ada.closeStdin();
    await expectExit(demo, "ada", ada);
    say("ok: each saw the other's messages once, in order, and both left cleanly");
    const conns = await demo.serverLog(2);
    const expected = [["chat", true, "eof"], ["chat", true, "eof"]];
    const actual = conns.map((c) => [c.service, c.session, c.reason]);
    checkEqual(actual, expected, "the server's log of the chat connections");
  },
};

async function expectLine(
  demo: Demo,
  name: string,
  child: Child,
  expected: string,
): Promise<void> {
  const line = await child.lines.next(`${name}'s line ${quote(expected)}`, demo.signal);
  if (line !== null) say(`${name} | ${line}`);
  checkEqual(line, expected, `${name}'s next line`);
}

async function expectExit(demo: Demo, name: string, child: Child): Promise<void> {
  const rest = await child.lines.next(`the end of ${name}'s output`, demo.signal);
  checkEqual(rest, null, `${name}'s output after leaving`);
  const { code } = await within(`${name}'s exit`, child.status, demo.signal);
  const stderr = await within(`${name}'s stderr`, child.stderr, demo.signal);
  say(`${name} exited with code ${code}`);
  checkEqual(code, 0, `${name}'s exit code`);
  checkEqual(stderr, "", `${name}'s stderr`);
}

const rawStep: Step = {
  title: "Raw bytes: a garbage header claiming a 4 GiB frame",
  async run(demo) {
    const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, ...encoder.encode("garbage")]);
    shell("printf '\\377\\377\\377\\377garbage' | sockit client $ADDR --raw");
    say("the first 4 bytes declare a frame of 4294967295 bytes; naive code would allocate it");
    const run = await demo.run(["client", demo.address, "--raw"], garbage);
    checkClean(run, "the raw client");
    const frames = await Array.fromAsync(
      ReadableStream.from([run.stdout]).pipeThrough(new FrameDecoderStream()),
    ).catch((error) => {
      throw new DemoFailure(`the raw reply ${quote([...run.stdout])} is not frames: ${error}`);
    });
    checkEqual(frames.length, 1, "frames in the raw reply");
    const payload = frames[0]!;
    checkEqual(payload[0], MessageType.Error, "the reply's message type (ERROR)");
    const error = decodeControl(payload);
    say(`reply: ${run.stdout.length} bytes, one ERROR frame:`);
    say(`  code: ${error.code}`);
    say(`  message: ${error.message}`);
    say(`  frameLength: ${error.frameLength}, maxFrameLength: ${error.maxFrameLength}`);
    checkEqual(error.code, "frame_too_large", "the error code");
    checkEqual(error.frameLength, 0xffff_ffff, "the declared length the server reports");
    check(
      typeof error.maxFrameLength === "number" && error.maxFrameLength < 0xffff_ffff,
      `the limit the server reports: expected a number, got ${quote(error.maxFrameLength)}`,
    );
    say("ok: refused from the header alone, with a stable code and the limit in force");
    const conns = await demo.serverLog(1);
    const actual = conns.map((c) => [c.service, c.session, c.reason]);
    checkEqual(actual, [["", false, "frame_too_large"]], "the server's log of the raw connection");
  },
};

const execStep: Step = {
  title: "Exec: argv exactly as typed, stdout and stderr apart, the real exit code",
  async run(demo) {
    shell(`sockit exec $ADDR -- printf '<%s>\\n' 'a b' "c'd" '$HOME'`);
    const argv = await demo.run(
      ["exec", demo.address, "--", "printf", "<%s>\\n", "a b", "c'd", "$HOME"],
      "",
    );
    for (const line of decoder.decode(argv.stdout).split("\n").slice(0, -1)) say(`| ${line}`);
    checkClean(argv, "exec printf");
    checkEqual(decoder.decode(argv.stdout), "<a b>\n<c'd>\n<$HOME>\n", "exec printf's output");
    say("ok: no remote shell re-parsed the arguments (ssh would have split 'a b')");

    shell(`sockit exec $ADDR -- sh -c 'echo out; echo err >&2; exit 3'`);
    const split = await demo.run(
      ["exec", demo.address, "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
      "",
    );
    say(`stdout: ${quote(decoder.decode(split.stdout))}, stderr: ${quote(split.stderr)}`);
    say(`exit code: ${split.code}`);
    checkEqual(
      [decoder.decode(split.stdout), split.stderr, split.code],
      ["out\n", "err\n", 3],
      "exec sh's stdout, stderr and exit code",
    );
    say("ok: stderr stayed stderr and the exit code is the remote one (ncat and socat say 0)");

    shell("sockit exec $ADDR -- touch sockit-demo-marker");
    const refused = await demo.run(["exec", demo.address, "--", "touch", "sockit-demo-marker"], "");
    say(`stderr: ${refused.stderr.trim()}`);
    say(`exit code: ${refused.code}`);
    checkEqual(refused.code, 255, "the refused exec's exit code");
    check(
      refused.stderr.includes("not_allowed"),
      `the refused exec's stderr: expected not_allowed, got ${quote(refused.stderr)}`,
    );
    say("ok: touch is not on the allowlist, so nothing ran; 255 means sockit said no");
    const conns = await demo.serverLog(3);
    const actual = conns.map((c) => [c.service, c.session, c.reason]);
    const expected = [["exec", true, "eof"], ["exec", true, "eof"], ["exec", true, "not_allowed"]];
    checkEqual(actual, expected, "the server's log of the exec connections");
  },
};

async function sha256(path: string): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(path))).toHex();
}

const uploadStep: Step = {
  title: "Upload: a file and a tree, verified, atomic, never clobbering",
  async run(demo) {
    shell("sockit upload $ADDR README.md examples --to demo");
    const first = await demo.run(
      ["upload", demo.address, "README.md", "examples", "--to", "demo", "--json"],
      "",
      [UPLOAD_READ],
    );
    checkEqual(first.code, 0, `the upload's exit code (stderr: ${first.stderr})`);
    const lines = decoder.decode(first.stdout).split("\n").filter(Boolean).map((l) =>
      JSON.parse(l)
    );
    const summary = lines.find((l) => l.event === "summary");
    say(
      `summary: ${summary?.committed} committed, ${summary?.failed} failed, ` +
        `${summary?.bytesSent} bytes sent`,
    );
    check(
      summary?.failed === 0 && summary?.skipped === 0 && summary?.committed > 0,
      `the upload's summary: expected every entry committed, got ${quote(summary)}`,
    );
    for (const file of ["README.md", "examples/demo.ts"]) {
      const local = await sha256(`${ROOT}/${file}`);
      const remote = await sha256(`${demo.uploads}/demo/${file}`);
      say(`${file}: sha256 ${remote.slice(0, 16)}… on both sides`);
      checkEqual(remote, local, `the SHA-256 of the uploaded ${file}`);
    }
    say("ok: every file arrived whole; each appeared only after the server checked its hash");

    shell("sockit upload $ADDR README.md --to demo      # again");
    const again = await demo.run(["upload", demo.address, "README.md", "--to", "demo"], "", [
      UPLOAD_READ,
    ]);
    say(`stderr: ${again.stderr.trim()}`);
    say(`exit code: ${again.code}`);
    checkEqual(again.code, 1, "the second upload's exit code");
    check(again.stderr.includes("(exists)"), `the second upload's stderr: ${quote(again.stderr)}`);
    say("ok: an existing file is never replaced without --overwrite");
    const conns = await demo.serverLog(2);
    const actual = conns.map((c) => [c.service, c.session, c.reason]);
    checkEqual(actual, [["upload", true, "eof"], ["upload", true, "eof"]], "the server's log");
  },
};

/** The demo's steps, in order. Each starts where the previous one left the server. */
const STEPS: readonly Step[] = [echoStep, chatStep, rawStep, execStep, uploadStep];

/** Runs one step against the server, under its time limit and the interrupt. */
async function runStep(
  step: Step,
  server: DemoServer,
  uploads: string,
  interrupt: AbortSignal,
): Promise<void> {
  const stepTimeout = new AbortController();
  const timer = setTimeout(
    () => stepTimeout.abort(new DemoFailure(`the step took longer than ${STEP_MS} ms`)),
    STEP_MS,
  );
  const signal = AbortSignal.any([interrupt, stepTimeout.signal]);
  const demo: Demo = {
    address: server.address,
    signal,
    run: (args, input, permissions) =>
      runToEnd(
        args,
        typeof input === "string" ? encoder.encode(input) : input,
        signal,
        permissions,
      ),
    uploads,
    start: (args) => new Child(args),
    serverLog: (count) => server.connections(count, signal),
  };
  try {
    await step.run(demo);
  } finally {
    clearTimeout(timer);
  }
}

/** Says what failed, and shows the server's stderr once it has stopped. */
async function reportFailure(
  error: unknown,
  current: string,
  server: DemoServer | undefined,
): Promise<void> {
  console.log();
  console.log(`demo FAILED while ${current}:`);
  // A DemoFailure says what differed; anything else is a surprise worth its stack.
  const text = error instanceof DemoFailure
    ? error.message
    : error instanceof Error
    ? error.stack
    : String(error);
  console.log(`  ${text}`);
  if (server) {
    await server[Symbol.asyncDispose]();
    const stderr = (await server.stderr).trim();
    if (stderr !== "") console.log(`server stderr:\n${stderr}`);
  }
}

async function main(): Promise<number> {
  // Ctrl-C or SIGTERM aborts the step under way; the finally blocks then
  // kill every child, so no server is left behind.
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort(new DemoFailure("interrupted"));
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  let current = "starting the server";
  let server: DemoServer | undefined;
  // A fresh upload directory, only its owner may write to it (as the server demands).
  const uploads = await Deno.makeTempDir({ prefix: "sockit-demo-uploads-" });
  await Deno.chmod(uploads, 0o755);
  try {
    console.log("sockit demo: a real server and real clients, each a child process");
    console.log(`("sockit" below is: deno ${SOCKIT.join(" ")})`);
    console.log(`(the server runs as: deno ${serverCommand("$UPLOADS").join(" ")})`);
    console.log();
    console.log("== Start a server ==");
    say("every child gets a fresh token in SOCKIT_TOKEN; exec never runs without one");
    shell(
      "sockit server --listen 127.0.0.1:0 --json --exec --exec-allow printf,sh " +
        "--upload-dir $UPLOADS",
    );
    server = await DemoServer.start(interrupt.signal, uploads);
    say(`server: listening on ${server.address} (a free port; $ADDR below)`);
    for (const [i, step] of STEPS.entries()) {
      current = `step ${i + 1} (${step.title})`;
      console.log();
      console.log(`== ${i + 1}. ${step.title} ==`);
      await runStep(step, server, uploads, interrupt.signal);
    }
    current = "stopping the server";
    console.log();
    console.log("== Stop the server ==");
    shell("kill -TERM <server>");
    await server.stop(interrupt.signal);
    console.log();
    console.log(`demo passed: all ${STEPS.length} steps behaved as expected`);
    return 0;
  } catch (error) {
    await reportFailure(error, current, server);
    return 1;
  } finally {
    await server?.[Symbol.asyncDispose]();
    await Deno.remove(uploads, { recursive: true });
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  }
}

if (import.meta.main) Deno.exit(await main());
