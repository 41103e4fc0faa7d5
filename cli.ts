/**
 * The `sockit` command line: parses arguments, calls the library, and maps
 * errors to exit codes (0 success, 1 failure, 2 usage error).
 *
 * ```sh
 * deno run --allow-net=127.0.0.1:7070 jsr:@sockit/sockit/cli server
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  chatLines,
  connect,
  dial,
  echoLines,
  escapeForLog,
  formatEvent,
  formatEventJson,
  loadToken,
  parseAddress,
  parseDuration,
  parseSize,
  relay,
  RemoteError,
  serve,
  type ServerEvent,
  TOKEN_ENV,
} from "./mod.ts";
import denoConfig from "./deno.json" with { type: "json" };

const encoder = new TextEncoder();

const USAGE = `sockit ${denoConfig.version}: framed, authenticated sockets

Usage:
  sockit server [--listen ADDR]... [options]
  sockit client ADDR [--chat NAME | --raw] [options]
  sockit help [COMMAND]
  sockit --version

Addresses are HOST:PORT, [IPV6]:PORT or unix:PATH.
Run "sockit help server" or "sockit help client" for their options.
`;

const SERVER_USAGE = `Usage: sockit server [--listen ADDR]... [options]

Serves the echo and chat services until SIGINT or SIGTERM.

Options:
  -l, --listen ADDR            address to listen on, repeatable; port 0 picks a free port
                               (default 127.0.0.1:7070)
      --token-file FILE        require clients to prove this token (or set SOCKIT_TOKEN)
      --max-conns N            connections served at once; more get "busy" (default 256)
      --max-startups N         connections in their handshake at once; more get "busy"
                               (default: a quarter of --max-conns, at most 64)
      --max-frame SIZE         largest frame after the handshake (default 1MiB)
      --max-handshake-frame SIZE
                               largest frame before the handshake completes (default 16KiB)
      --handshake-timeout DUR  absolute limit from connect to session start (default 10s)
      --idle-timeout DUR       close sessions silent this long; 0s for never (default 5m)
      --stall-timeout DUR      limit on a half-received frame or a blocked write (default 30s)
      --shutdown-grace DUR     time sessions get to finish on shutdown (default 5s)
      --json                   print events as NDJSON on stdout instead of log lines on stderr
  -h, --help                   show this help

Sizes: 65536, 64KiB, 1MiB. Durations: 500ms, 10s, 5m, 1h.

Example:
  sockit server --listen 127.0.0.1:7070 --listen unix:/tmp/sockit.sock
`;

const CLIENT_USAGE = `Usage: sockit client ADDR [--chat NAME | --raw] [options]

Echo mode (default): sends each stdin line as a frame and prints each reply.
Chat mode: joins the chat room as NAME; stdin lines are messages.
Raw mode: no framing, like netcat; stdin EOF half-closes, output runs until the peer closes.

Options:
      --chat NAME              join the chat room as NAME
      --raw                    unframed bytes (talk to nc, socat or any TCP server)
      --token-file FILE        prove this token to the server (or set SOCKIT_TOKEN)
      --connect-timeout DUR    limit on connecting and the handshake (default 10s)
      --json                   print replies and events as NDJSON
  -h, --help                   show this help

Exit codes: 0 success, 1 failure (refused, auth failed, protocol error), 2 usage error.

Examples:
  printf 'hello\\nworld\\n' | sockit client 127.0.0.1:7070
  sockit client 127.0.0.1:7070 --chat ada
  echo hi | sockit client 127.0.0.1:9999 --raw
`;

class UsageError extends Error {
  constructor(message: string, readonly usage: string) {
    super(message);
    this.name = "UsageError";
  }
}

function print(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length;) at += stream.writeSync(bytes.subarray(at));
}

function parse<
  T extends Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>,
>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), usage);
  }
}

function flag<T>(
  usage: string,
  name: string,
  value: string | undefined,
  read: (text: string) => T,
): T | undefined {
  if (value === undefined) return undefined;
  try {
    return read(value);
  } catch (error) {
    throw new UsageError(`--${name}: ${error instanceof Error ? error.message : error}`, usage);
  }
}

function count(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new RangeError(`Cannot parse "${text}": expected a positive whole number`);
  }
  return Number(text);
}

/** A duration above zero. */
function period(text: string): number {
  const ms = parseDuration(text);
  if (ms === 0) throw new RangeError(`Cannot use "${text}": expected a duration above zero`);
  return ms;
}

/** A frame size from 1 byte to 4 GiB - 1. */
function frameSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 1 || bytes > 0xffff_ffff) {
    throw new RangeError(`Cannot use "${text}": expected a size from 1 byte to 4GiB - 1`);
  }
  return bytes;
}

async function serverCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    listen: { type: "string", multiple: true, short: "l" },
    "token-file": { type: "string" },
    "max-conns": { type: "string" },
    "max-startups": { type: "string" },
    "max-frame": { type: "string" },
    "max-handshake-frame": { type: "string" },
    "handshake-timeout": { type: "string" },
    "idle-timeout": { type: "string" },
    "stall-timeout": { type: "string" },
    "shutdown-grace": { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, SERVER_USAGE);
  if (values.help) {
    print(Deno.stdout, SERVER_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`, SERVER_USAGE);
  }
  const u = SERVER_USAGE;
  const listen = (values.listen ?? ["127.0.0.1:7070"]).map((a) =>
    flag(u, "listen", a, parseAddress)!
  );
  const token = await loadToken({ tokenFile: values["token-file"] });
  const onEvent = values.json
    ? (event: ServerEvent) => print(Deno.stdout, formatEventJson(event) + "\n")
    : (event: ServerEvent) => print(Deno.stderr, `sockit: ${formatEvent(event)}\n`);
  const options = {
    listen,
    token,
    onEvent,
    maxConnections: flag(u, "max-conns", values["max-conns"], count),
    maxUnauthenticated: flag(u, "max-startups", values["max-startups"], count),
    maxFrame: flag(u, "max-frame", values["max-frame"], frameSize),
    maxHandshakeFrame: flag(u, "max-handshake-frame", values["max-handshake-frame"], frameSize),
    handshakeTimeout: flag(u, "handshake-timeout", values["handshake-timeout"], period),
    idleTimeout: flag(u, "idle-timeout", values["idle-timeout"], parseDuration),
    stallTimeout: flag(u, "stall-timeout", values["stall-timeout"], period),
    shutdownGrace: flag(u, "shutdown-grace", values["shutdown-grace"], parseDuration),
  };
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  if (token === undefined) {
    const hint = envReadable()
      ? "use --token-file FILE or SOCKIT_TOKEN to require one"
      : "use --token-file FILE, or SOCKIT_TOKEN with --allow-env=SOCKIT_TOKEN, to require one";
    print(
      Deno.stderr,
      `sockit: warning: no token: any client that can connect is served (${hint})\n`,
    );
  }
  const server = await serve(defined);
  const stop = () => server.shutdown();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  try {
    await server.finished;
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  }
  return 0;
}

async function clientCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    chat: { type: "string" },
    raw: { type: "boolean" },
    "token-file": { type: "string" },
    "connect-timeout": { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, CLIENT_USAGE);
  if (values.help) {
    print(Deno.stdout, CLIENT_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? "missing ADDR" : `unexpected argument "${positionals[1]}"`,
      CLIENT_USAGE,
    );
  }
  if (values.raw && values.chat !== undefined) {
    throw new UsageError("--raw and --chat cannot be combined", CLIENT_USAGE);
  }
  const address = flag(CLIENT_USAGE, "address", positionals[0], parseAddress)!;
  const connectTimeout =
    flag(CLIENT_USAGE, "connect-timeout", values["connect-timeout"], parseDuration) ??
      10_000;
  if (values.raw) {
    const conn = await dial(address, { connectTimeout });
    try {
      await relay(conn, {
        input: Deno.stdin,
        output: Deno.stdout,
        waitForInput: !Deno.stdin.isTerminal(),
      });
    } finally {
      conn.close();
    }
    return 0;
  }
  const token = await loadToken({ tokenFile: values["token-file"] });
  const chat = values.chat !== undefined;
  await using session = await connect(address, {
    service: chat ? "chat" : "echo",
    token,
    params: chat ? { name: values.chat } : {},
    connectTimeout,
    handshakeTimeout: connectTimeout,
  });
  const io = {
    input: Deno.stdin,
    output: Deno.stdout,
    json: values.json ?? false,
    escape: Deno.stdout.isTerminal(),
  };
  await (chat ? chatLines(session, io) : echoLines(session, io));
  return 0;
}

function envReadable(): boolean {
  return Deno.permissions.querySync({ name: "env", variable: TOKEN_ENV }).state === "granted";
}

/** One line for stderr; text that may come from the server is escaped. */
function describe(error: unknown): string {
  if (error instanceof RemoteError) {
    return `${escapeForLog(error.message, 500)} (${escapeForLog(error.code, 40)})`;
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return `missing permission: ${error.message}`;
  }
  return escapeForLog(error instanceof Error ? error.message : String(error), 500);
}

/**
 * Runs the command line with `args` and returns the exit code.
 *
 * @param args the arguments after the program name
 * @returns 0 on success, 1 on failure, 2 on a usage error
 *
 * @example Print the version
 * ```ts ignore
 * import { main } from "@sockit/sockit/cli";
 *
 * const code = await main(["--version"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "server":
        return await serverCommand(rest);
      case "client":
        return await clientCommand(rest);
      case "--version":
      case "-V":
        print(Deno.stdout, `sockit ${denoConfig.version}\n`);
        return 0;
      case "help":
      case "--help":
      case "-h":
        print(
          Deno.stdout,
          rest[0] === "server" ? SERVER_USAGE : rest[0] === "client" ? CLIENT_USAGE : USAGE,
        );
        return 0;
      case undefined:
        print(Deno.stderr, USAGE);
        return 2;
      default:
        throw new UsageError(`unknown command "${command}"`, USAGE);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      print(Deno.stderr, `error: ${error.message}\n\n${error.usage}`);
      return 2;
    }
    print(Deno.stderr, `error: ${describe(error)}\n`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
