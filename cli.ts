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
// Only what every command needs is imported up front; each command loads
// the rest itself, so `sockit exec` never loads the server or upload code
// (start-up time is most of a one-shot command's cost).
import { type Address, formatAddress, parseAddress } from "./lib/address.ts";
import { ConnectError } from "./lib/client.ts";
import { defaultConfigPath } from "./lib/config_path.ts";
import { ProtocolError, RemoteError } from "./lib/errors.ts";
import { escapeForLog } from "./lib/escape.ts";
import { defaultTokenPath, ensureToken, loadToken, TOKEN_ENV } from "./lib/token.ts";
import { type TlsClientOptions, TlsVerifyError } from "./lib/tls_client.ts";
import { parseDuration, parseSize } from "./lib/units.ts";
import { suggest } from "./lib/_suggest.ts";
import type { ServerEvent } from "./lib/server.ts";
import type { UdpEvent } from "./lib/udp_server.ts";
import type { Service } from "./lib/service.ts";
import { type PermissionNeed, requirePermissions } from "./lib/permissions.ts";
import denoConfig from "./deno.json" with { type: "json" };

const encoder = new TextEncoder();

const USAGE = `sockit ${denoConfig.version}: framed, authenticated sockets

Usage:
  sockit server [--listen ADDR]... [--exec] [options]
  sockit client ADDR [--chat NAME | --raw] [options]
  sockit exec ADDR [options] -- PROGRAM [ARG]...
  sockit upload ADDR PATH... [options]
  sockit help [COMMAND]
  sockit completions bash|zsh|fish
  sockit --version

Addresses are HOST:PORT, [IPV6]:PORT or unix:PATH.
Run "sockit help COMMAND" (server, client, exec, upload, completions) for its options.
`;

const SERVER_USAGE = `Usage: sockit server [--listen ADDR]... [options]

Serves the echo and chat services (and exec, when enabled) until SIGINT or SIGTERM.

Options:
  -l, --listen ADDR            address to listen on, repeatable; port 0 picks a free port
                               (default 127.0.0.1:7070)
      --token-file FILE        require clients to prove this token (or set SOCKIT_TOKEN)
      --tls                    serve TLS on the TCP listeners with a self-signed certificate,
                               made once and kept in ~/.config/sockit/tls.pem (mode 600); its
                               fingerprint is printed for clients' --pin
      --tls-cert FILE          serve TLS with this certificate chain (PEM; needs --tls-key)
      --tls-key FILE           the certificate's private key (PEM)
      --insecure-plaintext     allow exec or upload on a non-loopback address without TLS
      --allow CIDR             serve only these addresses, repeatable (default: everyone)
      --deny CIDR              refuse these addresses, repeatable; deny wins over allow
      --allow-file FILE        more rules, one per line: "allow CIDR", "deny CIDR" or "CIDR";
                               re-read on SIGHUP (established sessions stay)
      --max-per-source N       connections in their handshake from one address (default:
                               half of --max-startups); from the third failed authentication
                               an address is barred for a growing time (1s, doubling, to 10m)
      --exec                   offer remote command execution (off by default); it always
                               needs a token: without one, a token is generated and kept
                               in ~/.config/sockit/token (mode 600), which local clients read
      --exec-allow PROG[,PROG]...
                               run only these programs, compared with argv[0] exactly
                               (default: any program --allow-run permits)
      --exec-env-allow NAME[,NAME]...
                               variables clients may set with --env (default: none)
      --exec-max N             commands running at once; more get "busy" (default 64)
      --exec-timeout DUR       longest a command may run (default 1h)
      --upload-dir DIR         accept uploads into DIR (off by default); DIR must exist and
                               not be writable by group or others; needs a token like exec
      --max-upload-size SIZE   largest file accepted (default 4GiB)
      --udp ADDR               also serve UDP echo on ADDR, repeatable (needs --unstable-net)
      --udp-max-datagram SIZE  largest datagram echoed; larger ones are dropped (default 65507)
      --udp-rate N             datagrams per second echoed per source (default 20000)
      --udp-burst N            datagrams a source may send at once above its rate (default 2000)
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

Examples:
  sockit server --listen 127.0.0.1:7070 --listen unix:/tmp/sockit.sock
  sockit server --exec --exec-allow uname,ls,sh
  sockit server --upload-dir ~/inbox
  sockit server --listen 0.0.0.0:7070 --tls --upload-dir ~/inbox --allow 192.168.1.0/24
`;

const UPLOAD_USAGE = `Usage: sockit upload ADDR PATH... [options]

Uploads files and directories (recursively, like scp -r) into the server's upload
directory. Each file is verified by SHA-256 and appears on the server only when complete;
an existing file is never replaced without --overwrite. Symbolic links are skipped with a
warning, never followed.

Options:
      --to DIR                 remote directory to upload into (default: the top)
      --resume                 continue interrupted uploads; the part the server holds is
                               checked by hash against the local file first
      --overwrite              replace existing remote files (atomically)
      --no-preserve            do not send mode bits and modification times
      --no-progress            no progress line on a terminal
      --json                   NDJSON progress, one line per file and a summary on stdout
      --token-file FILE        the server's token (default: SOCKIT_TOKEN, then
                               ~/.config/sockit/token when it exists)
      --connect-timeout DUR    limit on connecting and the handshake (default 10s)
      --tls                    connect with TLS; the server is verified by --ca, --pin, or
                               else trust on first use (--known-hosts)
      --ca FILE                trust the CA certificates (PEM) in FILE; name checked
      --pin FINGERPRINT        accept only the certificate with this SHA-256 fingerprint
                               (sha256:AB:CD:..., as the server and openssl print it)
      --known-hosts FILE       trust on first use: record a new server's fingerprint, refuse a
                               changed one (default ~/.config/sockit/known_hosts)
      --insecure               TLS without verifying the server (encrypted, not authenticated)
  -h, --help                   show this help

Exit codes: 0 when every file was committed, 1 when any failed or sockit failed, 2 usage,
3 when the server's TLS certificate changed since it was recorded (known hosts).

Examples:
  sockit upload 127.0.0.1:7070 report.pdf photos --to inbox
  sockit upload 127.0.0.1:7070 big.iso --resume
`;

const EXEC_USAGE = `Usage: sockit exec ADDR [options] -- PROGRAM [ARG]...

Runs PROGRAM with exactly these arguments on the server (no remote shell re-parses them),
streams local stdin to it, and its stdout and stderr to local stdout and stderr as they
arrive. Ctrl-C sends SIGINT to the remote command; a second Ctrl-C kills it.

Options:
      --timeout DUR            end the command after DUR (SIGTERM, then SIGKILL); exit 124
      --cwd DIR                working directory on the server
      --env NAME=VALUE         set a variable, repeatable; the server must allow NAME
      --no-stdin               give the command an empty stdin (also when stdin is a terminal)
      --token-file FILE        the server's token (default: SOCKIT_TOKEN, then
                               ~/.config/sockit/token when it exists)
      --connect-timeout DUR    limit on connecting and the handshake (default 10s)
      --tls                    connect with TLS; the server is verified by --ca, --pin, or
                               else trust on first use (--known-hosts)
      --ca FILE                trust the CA certificates (PEM) in FILE; name checked
      --pin FINGERPRINT        accept only the certificate with this SHA-256 fingerprint
                               (sha256:AB:CD:..., as the server and openssl print it)
      --known-hosts FILE       trust on first use: record a new server's fingerprint, refuse a
                               changed one (default ~/.config/sockit/known_hosts)
      --insecure               TLS without verifying the server (encrypted, not authenticated)
      --json FILE              write NDJSON events (started, exit, error) to FILE (a file
                               or a named pipe); stdout and stderr stay the command's
  -h, --help                   show this help

Exit codes: the remote command's; 128+N when a signal N ended it; 124 when --timeout
passed; 126 when the program cannot be executed; 127 when it is not found; 255 when
sockit itself fails (cannot connect, authentication, not allowed, usage, protocol error).

Examples:
  sockit exec 127.0.0.1:7070 -- uname -a
  seq 1 100000 | sockit exec 127.0.0.1:7070 -- wc -l
  sockit exec 127.0.0.1:7070 --timeout 5s -- sh -c 'echo $HOME; sleep 10'
`;

const CLIENT_USAGE = `Usage: sockit client ADDR [--chat NAME | --raw | --udp] [options]

Echo mode (default): sends each stdin line as a frame and prints each reply.
Chat mode: joins the chat room as NAME; stdin lines are messages.
Raw mode: no framing, like netcat; stdin EOF half-closes, output runs until the peer closes.
UDP mode: each stdin line is one datagram to a UDP echo server; each reply is printed.
  With --count, pings instead: numbered probes, each reply's round trip, then a summary.

Options:
      --chat NAME              join the chat room as NAME
      --raw                    unframed bytes (talk to nc, socat or any TCP server)
      --udp                    datagrams to a UDP echo server (sockit server --udp ADDR)
      --count N                UDP ping: send N probes (exit 0 if any reply came, else 1)
      --interval DUR           UDP ping: time between probes (default 1s)
      --size BYTES             UDP ping: bytes per probe, 16 to 65507 (default 56)
      --timeout DUR            UDP: wait for each reply (default 1s)
      --token-file FILE        prove this token to the server (or set SOCKIT_TOKEN)
      --connect-timeout DUR    limit on connecting and the handshake (default 10s)
      --tls                    connect with TLS; the server is verified by --ca, --pin, or
                               else trust on first use (--known-hosts)
      --ca FILE                trust the CA certificates (PEM) in FILE; name checked
      --pin FINGERPRINT        accept only the certificate with this SHA-256 fingerprint
                               (sha256:AB:CD:..., as the server and openssl print it)
      --known-hosts FILE       trust on first use: record a new server's fingerprint, refuse a
                               changed one (default ~/.config/sockit/known_hosts)
      --insecure               TLS without verifying the server (encrypted, not authenticated)
      --json                   print replies and events as NDJSON
  -h, --help                   show this help

Exit codes: 0 success, 1 failure (refused, denied, auth failed, protocol error), 2 usage
error, 3 when the server's TLS certificate changed since it was recorded (known hosts).

Examples:
  printf 'hello\\nworld\\n' | sockit client 127.0.0.1:7070
  sockit client 127.0.0.1:7070 --chat ada
  echo hi | sockit client 127.0.0.1:9999 --raw
  sockit client 127.0.0.1:7070 --udp --count 5 --interval 200ms
`;

const COMPLETIONS_USAGE = `Usage: sockit completions bash|zsh|fish

Prints a script that completes sockit's commands and each command's flags in the shell.

Options:
  -h, --help                   show this help

Examples:
  source <(sockit completions bash)
  sockit completions bash > ~/.local/share/bash-completion/completions/sockit
  sockit completions zsh > ~/.zfunc/_sockit       # a directory in $fpath
  sockit completions fish > ~/.config/fish/completions/sockit.fish
`;

/** A subcommand's flags, as node:util's parseArgs takes them. */
type Options = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;

// Each subcommand's flags: what it parses, and what completion scripts offer.
const SERVER_OPTIONS = {
  listen: { type: "string", multiple: true, short: "l" },
  "token-file": { type: "string" },
  tls: { type: "boolean" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "insecure-plaintext": { type: "boolean" },
  allow: { type: "string", multiple: true },
  deny: { type: "string", multiple: true },
  "allow-file": { type: "string" },
  "max-per-source": { type: "string" },
  "max-conns": { type: "string" },
  "max-startups": { type: "string" },
  "max-frame": { type: "string" },
  "max-handshake-frame": { type: "string" },
  "handshake-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "stall-timeout": { type: "string" },
  "shutdown-grace": { type: "string" },
  exec: { type: "boolean" },
  "exec-allow": { type: "string", multiple: true },
  "exec-env-allow": { type: "string", multiple: true },
  "exec-max": { type: "string" },
  "exec-timeout": { type: "string" },
  "upload-dir": { type: "string" },
  "max-upload-size": { type: "string" },
  udp: { type: "string", multiple: true },
  "udp-max-datagram": { type: "string" },
  "udp-rate": { type: "string" },
  "udp-burst": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

const CLIENT_OPTIONS = {
  chat: { type: "string" },
  raw: { type: "boolean" },
  udp: { type: "boolean" },
  count: { type: "string" },
  interval: { type: "string" },
  size: { type: "string" },
  timeout: { type: "string" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  pin: { type: "string" },
  "known-hosts": { type: "string" },
  insecure: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

const EXEC_OPTIONS = {
  timeout: { type: "string" },
  cwd: { type: "string" },
  env: { type: "string", multiple: true },
  "no-stdin": { type: "boolean" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  pin: { type: "string" },
  "known-hosts": { type: "string" },
  insecure: { type: "boolean" },
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

const UPLOAD_OPTIONS = {
  to: { type: "string" },
  resume: { type: "boolean" },
  overwrite: { type: "boolean" },
  "no-preserve": { type: "boolean" },
  "no-progress": { type: "boolean" },
  json: { type: "boolean" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  pin: { type: "string" },
  "known-hosts": { type: "string" },
  insecure: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

const COMPLETIONS_OPTIONS = { help: { type: "boolean", short: "h" } } satisfies Options;

/** The subcommands: for `help COMMAND`, suggestions and completion scripts. */
const COMMANDS: readonly {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  operands?: "files" | readonly string[];
}[] = [
  {
    name: "server",
    summary: "serve echo, chat, exec and upload",
    usage: SERVER_USAGE,
    options: SERVER_OPTIONS,
  },
  {
    name: "client",
    summary: "echo, chat, raw or UDP client",
    usage: CLIENT_USAGE,
    options: CLIENT_OPTIONS,
  },
  { name: "exec", summary: "run a command on a server", usage: EXEC_USAGE, options: EXEC_OPTIONS },
  {
    name: "upload",
    summary: "upload files and directories to a server",
    usage: UPLOAD_USAGE,
    options: UPLOAD_OPTIONS,
    operands: "files",
  },
  {
    name: "help",
    summary: "show the help of a command",
    usage: USAGE,
    options: {},
    operands: ["server", "client", "exec", "upload", "completions"],
  },
  {
    name: "completions",
    summary: "print a shell completion script",
    usage: COMPLETIONS_USAGE,
    options: COMPLETIONS_OPTIONS,
    operands: ["bash", "zsh", "fish"],
  },
];

/** What may come first on the command line. */
const TOP_LEVEL = [...COMMANDS.map((c) => c.name), "--version", "--help"];

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

function parse<T extends Options>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    const unknown =
      error instanceof Error && "code" in error && error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
        ? unknownOption(args, options)
        : undefined;
    if (unknown !== undefined) {
      const known = Object.keys(options).map((name) => `--${name}`);
      throw new UsageError(unknownName("option", unknown, known), usage);
    }
    throw new UsageError(error instanceof Error ? error.message : String(error), usage);
  }
}

/** The first flag in `args` that `options` does not declare, as typed (`--listn`). */
function unknownOption(args: string[], options: Options): string | undefined {
  const { tokens } = parseArgs({
    args,
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const shorts = new Set(Object.values(options).map((o) => o.short));
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const long = token.rawName.startsWith("--");
    if (long ? !Object.hasOwn(options, token.name) : !shorts.has(token.name)) return token.rawName;
  }
  return undefined;
}

/** `unknown option "--listn" (did you mean --listen?)`, without the hint when nothing is close. */
function unknownName(what: string, name: string, known: readonly string[]): string {
  // A one-letter flag is too short to guess from.
  const hint = /^-[^-]/.test(name) ? undefined : suggest(name, known);
  return `unknown ${what} "${name}"` + (hint === undefined ? "" : ` (did you mean ${hint}?)`);
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
  const { values, positionals } = parse(args, SERVER_OPTIONS, SERVER_USAGE);
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
  const execOnly = ["exec-allow", "exec-env-allow", "exec-max", "exec-timeout"] as const;
  const stray = execOnly.find((name) => values[name] !== undefined);
  if (!values.exec && stray) throw new UsageError(`--${stray} needs --exec`, u);
  const { revokeExcept } = await import("./lib/permissions.ts");
  requirePermissions(serverNeeds(listen, values), { action: "start the server" });
  const [{ serve }, { echoService }, { ChatRoom }, { formatEvent, formatEventJson }] = await Promise
    .all([
      import("./lib/server.ts"),
      import("./lib/echo.ts"),
      import("./lib/chat.ts"),
      import("./lib/log.ts"),
    ]);
  const services: Service[] = [echoService, new ChatRoom()];
  if (values.exec) {
    const { execService } = await import("./lib/exec_service.ts");
    services.push(execService({
      allow: list(values["exec-allow"]),
      envAllow: list(values["exec-env-allow"]) ?? [],
      maxConcurrent: flag(u, "exec-max", values["exec-max"], count) ?? 64,
      timeout: flag(u, "exec-timeout", values["exec-timeout"], period) ?? 3_600_000,
    }));
  }
  if (values["max-upload-size"] !== undefined && values["upload-dir"] === undefined) {
    throw new UsageError("--max-upload-size needs --upload-dir", u);
  }
  if (values["upload-dir"] !== undefined) {
    const [{ UploadStore }, { uploadService }] = await Promise.all([
      import("./lib/upload_store.ts"),
      import("./lib/upload_service.ts"),
    ]);
    const maxFileSize = flag(u, "max-upload-size", values["max-upload-size"], parseSize);
    const statfs = Deno.permissions.querySync({ name: "sys", kind: "statfs" }).state ===
      "granted";
    const store = await UploadStore.open(values["upload-dir"], {
      ...(maxFileSize === undefined ? {} : { maxFileSize }),
      ...(statfs ? {} : { reserveBytes: 0, reservePercent: 0 }),
    });
    if (!statfs) {
      print(
        Deno.stderr,
        "sockit: warning: upload: no free-space check without --allow-sys=statfs\n",
      );
    }
    services.push(uploadService(store));
  }
  const guarded = values.exec || values["upload-dir"] !== undefined;
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together", u);
  }
  const tlsWanted = values.tls || values["tls-cert"] !== undefined;
  const exposed = listen.find((a) => a.transport === "tcp" && !isLoopback(a.hostname));
  if (guarded && !tlsWanted && exposed && !values["insecure-plaintext"]) {
    throw new UsageError(
      `exec and upload on ${formatAddress(exposed)} (not a loopback address) need TLS: add --tls ` +
        "(or --tls-cert and --tls-key), or --insecure-plaintext to send the data unencrypted",
      u,
    );
  }
  const tls = tlsWanted ? await serverTls(values, listen) : undefined;
  const accessFile = values["allow-file"];
  const readAccess = async () => {
    const { AccessList, parseAccessFile } = await import("./lib/access_list.ts");
    const fromFile = accessFile === undefined
      ? { allow: [], deny: [] }
      : parseAccessFile(await Deno.readTextFile(accessFile), accessFile);
    const allow = [...(list(values.allow) ?? []), ...fromFile.allow];
    const deny = [...(list(values.deny) ?? []), ...fromFile.deny];
    return allow.length + deny.length === 0 ? undefined : AccessList.from({ allow, deny });
  };
  const access = await readAccess().catch((error) => {
    throw error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable
      ? error
      : new UsageError(error instanceof Error ? error.message : String(error), u);
  });
  const maxPerSource = flag(u, "max-per-source", values["max-per-source"], count);
  let token = await loadToken({ tokenFile: values["token-file"] });
  if (token === undefined && guarded) token = await generatedToken();
  if (values.exec) warnRunPermission(list(values["exec-allow"]));
  const onEvent = values.json
    ? (event: ServerEvent | UdpEvent) => print(Deno.stdout, formatEventJson(event) + "\n")
    : (event: ServerEvent | UdpEvent) => print(Deno.stderr, `sockit: ${formatEvent(event)}\n`);
  const options = {
    listen,
    token,
    onEvent,
    services,
    maxConnections: flag(u, "max-conns", values["max-conns"], count),
    maxUnauthenticated: flag(u, "max-startups", values["max-startups"], count),
    maxFrame: flag(u, "max-frame", values["max-frame"], frameSize),
    maxHandshakeFrame: flag(u, "max-handshake-frame", values["max-handshake-frame"], frameSize),
    handshakeTimeout: flag(u, "handshake-timeout", values["handshake-timeout"], period),
    idleTimeout: flag(u, "idle-timeout", values["idle-timeout"], parseDuration),
    stallTimeout: flag(u, "stall-timeout", values["stall-timeout"], period),
    shutdownGrace: flag(u, "shutdown-grace", values["shutdown-grace"], parseDuration),
    tls,
    access,
    sourceGuard: maxPerSource === undefined ? undefined : { maxPerSource },
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
  // Every flag is checked before anything listens.
  const udpOnly = ["udp-max-datagram", "udp-rate", "udp-burst"] as const;
  const strayUdp = udpOnly.find((name) => values[name] !== undefined);
  if (values.udp === undefined && strayUdp) throw new UsageError(`--${strayUdp} needs --udp`, u);
  const udpOptions = values.udp === undefined ? undefined : {
    listen: values.udp.map((a) => flag(u, "udp", a, udpAddress)!),
    maxDatagram: flag(u, "udp-max-datagram", values["udp-max-datagram"], datagramSize),
    rate: flag(u, "udp-rate", values["udp-rate"], count),
    burst: flag(u, "udp-burst", values["udp-burst"], count),
    onEvent,
  };
  const server = await serve(defined);
  let udp: { close(): Promise<void> } | undefined;
  if (udpOptions) {
    const { serveUdp } = await import("./lib/udp_server.ts");
    try {
      udp = serveUdp(udpOptions);
    } catch (error) {
      await server.shutdown();
      throw error;
    }
  }
  // Everything is bound and read: give up what serving no longer needs.
  const revoked = revokeExcept(serverKeeps(listen, values));
  print(
    values.json ? Deno.stdout : Deno.stderr,
    values.json
      ? JSON.stringify({
        time: new Date().toISOString(),
        type: "permissions",
        revoked: revoked.revoked,
        kept: revoked.kept,
      }) + "\n"
      : `sockit: permissions after start-up: ${revoked.line}\n`,
  );
  const stop = () => {
    udp?.close();
    server.shutdown();
  };
  // SIGHUP re-reads the access rules; a bad file keeps the rules in force.
  const reload = () => {
    readAccess().then((list) => {
      server.setAccess(list);
      print(Deno.stderr, `sockit: access rules reloaded: ${list?.describe() ?? "no rules"}\n`);
    }, (error) => {
      print(
        Deno.stderr,
        `sockit: access rules not reloaded, the old ones stay: ${describe(error)}\n`,
      );
    });
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  const hangup = Deno.build.os !== "windows" && accessFile !== undefined;
  if (hangup) Deno.addSignalListener("SIGHUP", reload);
  try {
    await server.finished;
    await udp?.close();
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
    if (hangup) Deno.removeSignalListener("SIGHUP", reload);
  }
  return 0;
}

/** The server flags that decide its permissions. */
interface ServerFlags {
  exec?: boolean | undefined;
  "upload-dir"?: string | undefined;
  udp?: string[] | undefined;
  "allow-file"?: string | undefined;
}

/** What the server needs to start: its addresses, the upload directory, running programs. */
function serverNeeds(listen: Address[], values: ServerFlags): PermissionNeed[] {
  const needs: PermissionNeed[] = listen.map((a) =>
    a.transport === "tcp"
      ? {
        name: "net",
        host: `${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}`,
        why: `to listen on ${formatAddress(a)}`,
      }
      : { name: "net", host: `unix:${a.path}`, why: `to listen on unix:${a.path}` }
  );
  for (const a of listen) {
    if (a.transport === "unix") {
      needs.push({ name: "read", path: a.path, why: "for the socket file" });
      needs.push({ name: "write", path: a.path, why: "for the socket file" });
    }
  }
  const dir = values["upload-dir"];
  if (dir !== undefined) {
    needs.push({ name: "read", path: dir, why: "to check uploads" });
    needs.push({ name: "write", path: dir, why: "to store uploads" });
  }
  if (values.exec) needs.push({ name: "run", why: "to run commands for exec" });
  return needs;
}

/**
 * What the server keeps once it listens: accepting needs no permission, but
 * UDP replies do, uploads need their directory, exec needs to run programs
 * (and to look at the directories clients ask for), a Unix socket file is
 * removed at shutdown, and SIGHUP re-reads the access file.
 */
function serverKeeps(listen: Address[], values: ServerFlags): PermissionNeed[] {
  const keep: PermissionNeed[] = [];
  if (values.udp !== undefined) keep.push({ name: "net", why: "to answer UDP clients" });
  for (const a of listen) {
    if (a.transport === "unix") {
      keep.push({ name: "write", path: a.path, why: "to remove the socket file" });
    }
  }
  const dir = values["upload-dir"];
  if (dir !== undefined) {
    keep.push({ name: "read", path: dir }, { name: "write", path: dir });
    keep.push({ name: "sys", kind: "statfs", why: "for the free-space check" });
  }
  if (values.exec) keep.push({ name: "run" }, { name: "read", why: "for --cwd" });
  if (values["allow-file"] !== undefined) keep.push({ name: "read", path: values["allow-file"] });
  return keep;
}

/** Whether connections to `hostname` stay on this machine. */
function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname.startsWith("127.");
}

/**
 * The server's TLS identity: --tls-cert and --tls-key, or with --tls alone
 * a self-signed one kept in the configuration directory. Prints the
 * fingerprint clients pin.
 */
async function serverTls(
  values: { "tls-cert"?: string | undefined; "tls-key"?: string | undefined },
  listen: Address[],
): Promise<{ cert: string; key: string }> {
  const [{ ensureTlsIdentity, loadTlsIdentity }, { formatFingerprint }] = await Promise.all([
    import("./lib/tls_certificate.ts"),
    import("./lib/fingerprint.ts"),
  ]);
  let identity;
  let where: string;
  if (values["tls-cert"] !== undefined && values["tls-key"] !== undefined) {
    identity = await loadTlsIdentity(values["tls-cert"], values["tls-key"]);
    where = values["tls-cert"];
  } else {
    const path = defaultConfigPath("tls.pem");
    if (path === undefined) {
      throw new Error(
        "--tls needs a place to keep its certificate: grant --allow-env=HOME, or give " +
          "--tls-cert FILE and --tls-key FILE",
      );
    }
    const names = new Set(["localhost", "127.0.0.1", "::1"]);
    for (const a of listen) {
      if (a.transport === "tcp" && a.hostname !== "0.0.0.0" && a.hostname !== "::") {
        names.add(a.hostname);
      }
    }
    identity = await ensureTlsIdentity(path, { names: [...names] });
    where = `${path} (self-signed, ${identity.created ? "made now" : "kept from before"})`;
  }
  print(
    Deno.stderr,
    `sockit: TLS certificate ${formatFingerprint(identity.fingerprint)} from ${where}; ` +
      "clients verify it with --pin, or record it on first use\n",
  );
  return identity;
}

/** Splits comma-separated, repeatable flag values; `undefined` when none were given. */
function list(values: string[] | undefined): string[] | undefined {
  return values?.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

/** Says at start-up when Deno's --allow-run will refuse what exec would allow. */
function warnRunPermission(allow: string[] | undefined): void {
  if (allow === undefined) {
    if (Deno.permissions.querySync({ name: "run" }).state === "granted") return;
    print(
      Deno.stderr,
      "sockit: warning: exec: --allow-run does not grant every program; commands it does " +
        "not grant are refused as not_allowed\n",
    );
    return;
  }
  const denied = allow.filter((command) =>
    Deno.permissions.querySync({ name: "run", command }).state !== "granted"
  );
  if (denied.length === 0) return;
  print(
    Deno.stderr,
    `sockit: warning: exec: --allow-run does not grant ${denied.join(", ")}; ` +
      `running ${denied.length === 1 ? "it" : "them"} is refused as not_allowed\n`,
  );
}

/** The token exec falls back to: the default token file, created when missing. */
async function generatedToken(): Promise<string> {
  const path = defaultTokenPath();
  if (path === undefined) {
    throw new Error(
      "exec and upload need a token: give --token-file FILE or SOCKIT_TOKEN, or grant --allow-env=HOME " +
        "so one can be kept in ~/.config/sockit/token",
    );
  }
  const { token, created } = await ensureToken(path);
  print(
    Deno.stderr,
    created
      ? `sockit: exec and upload need a token: generated one in ${path} (mode 600); local ` +
        `clients read it by default, remote clients need a copy (--token-file FILE)\n`
      : `sockit: using the token in ${path}\n`,
  );
  return token;
}

async function clientCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CLIENT_OPTIONS, CLIENT_USAGE);
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
  const modes = [values.raw, values.chat !== undefined, values.udp].filter(Boolean).length;
  if (modes > 1) throw new UsageError("--raw, --chat and --udp cannot be combined", CLIENT_USAGE);
  const pingOnly = ["count", "interval", "size", "timeout"] as const;
  const stray = pingOnly.find((name) => values[name] !== undefined);
  if (!values.udp && stray) throw new UsageError(`--${stray} needs --udp`, CLIENT_USAGE);
  const tlsFlag = TLS_CLIENT_FLAGS.find((name) => values[name] !== undefined);
  if (values.udp && tlsFlag) {
    throw new UsageError(`--${tlsFlag} cannot be used with --udp`, CLIENT_USAGE);
  }
  if (values.udp) return await udpClient(positionals[0]!, values);
  const address = flag(CLIENT_USAGE, "address", positionals[0], parseAddress)!;
  requireConnect(address);
  const connectTimeout =
    flag(CLIENT_USAGE, "connect-timeout", values["connect-timeout"], parseDuration) ??
      10_000;
  const [{ connect, dial }, { chatLines, echoLines }, { relay }] = await Promise.all([
    import("./lib/client.ts"),
    import("./lib/line_clients.ts"),
    import("./lib/relay.ts"),
  ]);
  if (values.raw) {
    const conn = await dial(address, {
      connectTimeout,
      tls: await clientTls(values, CLIENT_USAGE),
    });
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
    tls: await clientTls(values, CLIENT_USAGE),
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

/** Exit code for sockit's own failures in `exec`, as ssh uses it. */
const EXEC_FAILURE = 255;

/** Exit code of a program ended by SIGPIPE: 128 + 13. */
const EXIT_SIGPIPE = 141;

/** Exit codes for refusals that mean what a shell means by them. */
const EXEC_REFUSALS: Record<string, number> = { not_executable: 126, not_found: 127 };

async function execCommand(args: string[]): Promise<number> {
  const split = args.indexOf("--");
  const { values, positionals } = parse(
    split === -1 ? args : args.slice(0, split),
    EXEC_OPTIONS,
    EXEC_USAGE,
  );
  if (values.help) {
    print(Deno.stdout, EXEC_USAGE);
    return 0;
  }
  const u = EXEC_USAGE;
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? "missing ADDR" : `put the command after "--": "${positionals[1]}"`,
      u,
    );
  }
  const argv = split === -1 ? [] : args.slice(split + 1);
  if (argv.length === 0) throw new UsageError('missing the command after "--"', u);
  const address = flag(u, "address", positionals[0], parseAddress)!;
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--env: expected NAME=VALUE, got "${pair}"`, u);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const timeout = flag(u, "timeout", values.timeout, period);
  const connectTimeout = flag(u, "connect-timeout", values["connect-timeout"], period) ?? 10_000;
  using events = values.json === undefined ? undefined : await Deno.open(values.json, {
    write: true,
    create: true,
    truncate: true,
  });
  const emit = (event: Record<string, unknown>) => {
    if (events) print(events, JSON.stringify(event) + "\n");
  };
  const fail = (error: unknown, code: number) => {
    const remote = error instanceof RemoteError;
    emit({
      event: "error",
      origin: remote ? "remote" : "local",
      code: remote || error instanceof ProtocolError ? error.code : errorName(error),
      message: error instanceof Error ? error.message : String(error),
    });
    print(Deno.stderr, `sockit: ${describe(error)}\n`);
    return code;
  };
  let token: string;
  let tls: TlsClientOptions | undefined;
  try {
    requireConnect(address);
    tls = await clientTls(values, u);
    token = await clientToken("exec", values["token-file"]);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    return fail(error, EXEC_FAILURE);
  }
  const pipedStdin = !values["no-stdin"] && !Deno.stdin.isTerminal();
  const [{ exec }, { exitCodeOf, pipeExec }] = await Promise.all([
    import("./lib/exec.ts"),
    import("./lib/exec_stdio.ts"),
  ]);
  let proc;
  try {
    proc = await exec(address, argv, {
      token,
      env,
      cwd: values.cwd,
      timeout,
      stdin: pipedStdin ? "piped" : "null",
      connectTimeout,
      handshakeTimeout: connectTimeout,
      tls,
    });
  } catch (error) {
    const refusal = error instanceof RemoteError ? EXEC_REFUSALS[error.code] : undefined;
    return fail(error, refusal ?? EXEC_FAILURE);
  }
  emit({ event: "started", argv });
  let interrupts = 0;
  const interrupt = () => {
    interrupts++;
    if (interrupts > 2) Deno.exit(130);
    const signal = interrupts === 1 ? "SIGINT" : "SIGKILL";
    emit({ event: "signal", signal });
    proc.kill(signal).catch(() => {});
  };
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGINT", interrupt);
  try {
    const status = await pipeExec(proc, {
      stdout: Deno.stdout,
      stderr: Deno.stderr,
      stdin: pipedStdin ? Deno.stdin : undefined,
    });
    emit({ event: "exit", ...status });
    if (status.timedOut) {
      const limit = values.timeout === undefined ? "the server's time limit" : values.timeout;
      print(Deno.stderr, `sockit: remote command timed out after ${limit}\n`);
    } else if (status.signal !== null) {
      print(Deno.stderr, `sockit: remote command killed by ${status.signal}\n`);
    }
    return exitCodeOf(status);
  } catch (error) {
    // Whoever read our output stopped (`| head`): end quietly, as a program
    // killed by SIGPIPE would, and the remote command ends with the session.
    if (error instanceof Deno.errors.BrokenPipe) return EXIT_SIGPIPE;
    return fail(error, EXEC_FAILURE);
  } finally {
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGINT", interrupt);
    proc.close();
  }
}

async function uploadCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, UPLOAD_OPTIONS, UPLOAD_USAGE);
  if (values.help) {
    print(Deno.stdout, UPLOAD_USAGE);
    return 0;
  }
  const u = UPLOAD_USAGE;
  if (positionals.length < 2) {
    throw new UsageError(positionals.length === 0 ? "missing ADDR" : "missing PATH", u);
  }
  const [addressText, ...paths] = positionals as [string, ...string[]];
  const address = flag(u, "address", addressText, parseAddress)!;
  const connectTimeout = flag(u, "connect-timeout", values["connect-timeout"], period) ?? 10_000;
  requireConnect(address);
  const tls = await clientTls(values, u);
  const token = await clientToken("upload", values["token-file"]);
  const [{ upload }, { ProgressBar }] = await Promise.all([
    import("./lib/upload.ts"),
    import("./lib/progress.ts"),
  ]);
  const json = values.json ?? false;
  const bar = !json && !values["no-progress"] && Deno.stderr.isTerminal()
    ? new ProgressBar(Deno.stderr, () => Deno.consoleSize().columns)
    : undefined;
  let lastJson = 0;
  let current = "";
  const interrupted = (error: unknown) => {
    bar?.clear();
    const remote = error instanceof RemoteError;
    const code = remote || error instanceof ProtocolError ? error.code : errorName(error);
    let message = error instanceof Error ? error.message : String(error);
    // The connection went while a file was on its way: say which, and how to go on.
    if (current !== "" && !remote && !(error instanceof ConnectError)) {
      message = `upload of ${JSON.stringify(current)} interrupted: ${message}; ` +
        "run the same command with --resume to continue";
    }
    if (json) {
      const origin = remote ? "remote" : "local";
      print(Deno.stdout, JSON.stringify({ event: "error", origin, code, message }) + "\n");
    }
    return remote || !(error instanceof Error) ? error : new Error(message, { cause: error });
  };
  const summary = await upload(address, paths, {
    token,
    to: values.to,
    resume: values.resume ?? false,
    overwrite: values.overwrite ?? false,
    preserve: !values["no-preserve"],
    connectTimeout,
    handshakeTimeout: connectTimeout,
    tls,
    onProgress: (p) => {
      current = p.done < p.size ? p.name : "";
      bar?.update(p);
      const now = performance.now();
      if (json && (now - lastJson >= 250 || p.done === p.size)) {
        lastJson = now;
        print(Deno.stdout, JSON.stringify({ event: "progress", ...p }) + "\n");
      }
    },
  }).catch((error) => {
    throw interrupted(error);
  });
  bar?.clear();
  for (const result of summary.results) {
    if (json) print(Deno.stdout, JSON.stringify({ event: "file", ...result }) + "\n");
    if (result.status === "committed") continue;
    const what = result.status === "skipped" ? "skipped" : "failed";
    print(
      Deno.stderr,
      `sockit: ${what} ${escapeForLog(result.path, 300)}: ${
        escapeForLog(result.message ?? "", 500)
      } (${escapeForLog(result.code ?? "", 40)})\n`,
    );
  }
  const { results: _, ...totals } = summary;
  if (json) print(Deno.stdout, JSON.stringify({ event: "summary", ...totals }) + "\n");
  else if (Deno.stderr.isTerminal()) {
    // Quiet on success when not on a terminal, like scp; failures always show.
    print(
      Deno.stderr,
      `sockit: ${summary.committed} committed, ${summary.failed} failed, ${summary.skipped} ` +
        `skipped; ${summary.bytesSent} bytes sent, ${summary.bytesResumed} resumed, in ` +
        `${summary.duration} ms\n`,
    );
  }
  return summary.failed === 0 ? 0 : 1;
}

/**
 * The token for a service that always needs one: --token-file, else
 * SOCKIT_TOKEN, else the default token file; the error says what to grant
 * when the default file exists but may not be read.
 */
async function clientToken(service: string, tokenFile: string | undefined): Promise<string> {
  const defaultFile = defaultTokenPath();
  const token = await loadToken({ tokenFile, defaultFile });
  if (token !== undefined) return token;
  const unreadable = defaultFile !== undefined &&
    Deno.permissions.querySync({ name: "read", path: defaultFile }).state !== "granted";
  throw new Error(
    `${service} needs the server's token: use --token-file FILE or SOCKIT_TOKEN, or run on ` +
      (unreadable
        ? `the server's machine with --allow-read=${defaultFile} so that its token file is read`
        : "the server's machine, where it is read from ~/.config/sockit/token"),
  );
}

/**
 * Checks, before anything else happens, that Deno lets this process connect
 * to `address`; if not, one line names the flag to add.
 */
function requireConnect(address: Address): void {
  const host = address.transport === "unix"
    ? `unix:${address.path}`
    : `${
      address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
    }:${address.port}`;
  requirePermissions([{ name: "net", host, why: `to connect to ${formatAddress(address)}` }], {
    action: "connect",
  });
}

/** The client flags that ask for TLS. */
const TLS_CLIENT_FLAGS = ["tls", "ca", "pin", "known-hosts", "insecure"] as const;

/** Exit code when a server's certificate changed since it was recorded. */
const EXIT_HOST_KEY_CHANGED = 3;

/**
 * How to verify a TLS server, from --tls, --ca, --pin, --known-hosts and
 * --insecure; `undefined` for plain TCP. --tls alone means trust on first use
 * with the default known-hosts file.
 */
async function clientTls(
  values: {
    tls?: boolean | undefined;
    ca?: string | undefined;
    pin?: string | undefined;
    "known-hosts"?: string | undefined;
    insecure?: boolean | undefined;
  },
  usage: string,
): Promise<TlsClientOptions | undefined> {
  if (!TLS_CLIENT_FLAGS.some((name) => values[name])) return undefined;
  const ways = (["ca", "pin", "known-hosts", "insecure"] as const).filter((name) => values[name]);
  if (ways.length > 1) {
    throw new UsageError(`--${ways[0]} and --${ways[1]} cannot be combined`, usage);
  }
  const { formatFingerprint, parseFingerprint } = await import("./lib/fingerprint.ts");
  if (values.insecure) {
    print(
      Deno.stderr,
      "sockit: warning: --insecure: the server's certificate is not verified; anyone on the " +
        "path can read and change this session\n",
    );
    return { insecure: true };
  }
  if (values.pin !== undefined) {
    return { pin: flag(usage, "pin", values.pin, parseFingerprint) };
  }
  if (values.ca !== undefined) return { caCerts: [await Deno.readTextFile(values.ca)] };
  const knownHosts = values["known-hosts"] ?? defaultConfigPath("known_hosts");
  if (knownHosts === undefined) {
    throw new Error(
      "TLS needs a way to verify the server: give --ca FILE, --pin FINGERPRINT or " +
        "--known-hosts FILE, or grant --allow-env=HOME for the default known-hosts file",
    );
  }
  return {
    knownHosts,
    onNewHost: (address, fingerprint) =>
      print(
        Deno.stderr,
        `sockit: new TLS server ${address}, certificate ${formatFingerprint(fingerprint)}; ` +
          `recorded in ${knownHosts} (trust on first use: compare it with the one the server ` +
          "printed)\n",
      ),
  };
}

function errorName(error: unknown): string {
  if (error instanceof ConnectError) return "connect_failed";
  return error instanceof Error ? error.name : "error";
}

/** A UDP address: HOST:PORT or [IPV6]:PORT, not a Unix socket. */
function udpAddress(text: string) {
  const address = parseAddress(text);
  if (address.transport !== "tcp") {
    throw new TypeError(`Cannot serve UDP on "${text}": expected HOST:PORT or [IPV6]:PORT`);
  }
  return address;
}

/** A datagram size limit: 0 to 65,507 bytes. */
function datagramSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes > 65_507) throw new RangeError(`Cannot use "${text}": expected at most 65507 bytes`);
  return bytes;
}

/** A ping probe size: its 16-byte header up to one datagram. */
function probeSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 16 || bytes > 65_507) {
    throw new RangeError(`Cannot use "${text}": expected 16 to 65507 bytes`);
  }
  return bytes;
}

async function udpClient(
  addressText: string,
  values: {
    count?: string | undefined;
    interval?: string | undefined;
    size?: string | undefined;
    timeout?: string | undefined;
    json?: boolean | undefined;
  },
): Promise<number> {
  const u = CLIENT_USAGE;
  const address = flag(u, "address", addressText, parseAddress)!;
  if (address.transport !== "tcp") {
    throw new UsageError(`--udp needs HOST:PORT, not "${addressText}"`, u);
  }
  const timeout = flag(u, "timeout", values.timeout, period) ?? 1000;
  const [{ ping, UdpTimeoutError }, { formatPingReply, formatPingSummary, udpLines }] =
    await Promise.all([import("./lib/udp_client.ts"), import("./lib/udp_lines.ts")]);
  const json = values.json ?? false;
  if (values.count === undefined) {
    try {
      await udpLines(address, {
        input: Deno.stdin,
        output: Deno.stdout,
        json,
        escape: Deno.stdout.isTerminal(),
        timeout,
      });
      return 0;
    } catch (error) {
      if (!(error instanceof UdpTimeoutError)) throw error;
      print(Deno.stderr, `error: ${error.message}\n`);
      return 1;
    }
  }
  const text = addressText;
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const summary = await ping(address, {
      count: flag(u, "count", values.count, count)!,
      interval: flag(u, "interval", values.interval, period) ?? 1000,
      size: flag(u, "size", values.size, probeSize) ?? 56,
      timeout,
      signal: interrupt.signal,
      onReply: (reply) =>
        print(
          Deno.stdout,
          (json ? JSON.stringify({ event: "reply", ...reply }) : formatPingReply(reply, text)) +
            "\n",
        ),
    });
    print(
      Deno.stdout,
      (json
        ? JSON.stringify({ event: "summary", ...summary })
        : `\n${formatPingSummary(summary)}`) + "\n",
    );
    if (summary.received + summary.late === 0 && !json) {
      print(
        Deno.stderr,
        `sockit: no reply from ${text}: nothing answers there, the port is closed or ` +
          "filtered, or the server drops probes of this size\n",
      );
    }
    return summary.received + summary.late > 0 ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
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

async function completionsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, COMPLETIONS_OPTIONS, COMPLETIONS_USAGE);
  if (values.help) {
    print(Deno.stdout, COMPLETIONS_USAGE);
    return 0;
  }
  const { completionScript, SHELLS } = await import("./lib/_completions.ts");
  const [shell, extra] = positionals;
  if (shell === undefined) throw new UsageError("missing the shell", COMPLETIONS_USAGE);
  if (extra !== undefined) {
    throw new UsageError(`unexpected argument "${extra}"`, COMPLETIONS_USAGE);
  }
  const known = SHELLS.find((s) => s === shell);
  if (known === undefined) {
    throw new UsageError(unknownName("shell", shell, SHELLS), COMPLETIONS_USAGE);
  }
  print(
    Deno.stdout,
    completionScript(known, {
      program: "sockit",
      commands: COMMANDS,
      globalFlags: [
        { long: "version", short: "V", description: "print the version" },
        { long: "help", short: "h", description: "show the usage" },
      ],
    }),
  );
  return 0;
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
      case "upload":
        return await uploadCommand(rest);
      case "exec":
        try {
          return await execCommand(rest);
        } catch (error) {
          // exec's own failures must not look like a remote exit code.
          print(
            Deno.stderr,
            error instanceof UsageError
              ? `error: ${error.message}\n\n${error.usage}`
              : `error: ${describe(error)}\n`,
          );
          return EXEC_FAILURE;
        }
      case "--version":
      case "-V":
        print(Deno.stdout, `sockit ${denoConfig.version}\n`);
        return 0;
      case "completions":
        return await completionsCommand(rest);
      case "help":
      case "--help":
      case "-h": {
        const topic = rest[0];
        const usage = topic === undefined || topic === "--help" || topic === "-h"
          ? USAGE
          : COMMANDS.find((c) => c.name === topic)?.usage;
        if (usage === undefined) {
          throw new UsageError(unknownName("command", topic!, COMMANDS.map((c) => c.name)), USAGE);
        }
        print(Deno.stdout, usage);
        return 0;
      }
      case undefined:
        print(Deno.stderr, USAGE);
        return 2;
      default:
        throw new UsageError(unknownName("command", command, TOP_LEVEL), USAGE);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      print(Deno.stderr, `error: ${error.message}\n\n${error.usage}`);
      return 2;
    }
    print(Deno.stderr, `error: ${describe(error)}\n`);
    return error instanceof TlsVerifyError && error.code === "host_key_changed"
      ? EXIT_HOST_KEY_CHANGED
      : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
