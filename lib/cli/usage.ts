/**
 * The command line's help texts and option tables: one source for `--help`,
 * parsing, suggestions and completion scripts.
 *
 * @module
 */

import denoConfig from "../../deno.json" with { type: "json" };
import { EXIT_CODES_HELP } from "./exit_codes.ts";

/** The help lines of the TLS client flags, the same in client, exec and upload. */
const TLS_CLIENT_HELP = `\
      --tls                    connect with TLS; the server is verified by --ca, --pin, or
                               else trust on first use (--known-hosts)
      --ca FILE                trust the CA certificates (PEM) in FILE; name checked
      --pin FINGERPRINT        accept only the certificate with this SHA-256 fingerprint
                               (sha256:AB:CD:..., as the server and openssl print it)
      --known-hosts FILE       trust on first use: record a new server's fingerprint, refuse a
                               changed one (default ~/.config/sockit/known_hosts)
      --insecure               TLS without verifying the server (encrypted, not authenticated)
`;

export const USAGE = `sockit ${denoConfig.version}: framed, authenticated sockets

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

${EXIT_CODES_HELP}`;

export const SERVER_USAGE = `Usage: sockit server [--listen ADDR]... [options]

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
      --min-free SIZE|N%       free space an upload must leave on the disk; 0 turns the check
                               off (default: the larger of 1GiB and 5%)
      --portable-names         accept only names Windows can hold too (no : * ? " < > |, no
                               device names such as aux.c, no trailing dot or space)
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

export const UPLOAD_USAGE = `Usage: sockit upload ADDR PATH... [options]

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
${TLS_CLIENT_HELP}  -h, --help                   show this help

Exit codes: 0 when every file was committed, 1 when any was not; the rest as "sockit help" lists.

Examples:
  sockit upload 127.0.0.1:7070 report.pdf photos --to inbox
  sockit upload 127.0.0.1:7070 big.iso --resume
`;

export const EXEC_USAGE = `Usage: sockit exec ADDR [options] -- PROGRAM [ARG]...

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
${TLS_CLIENT_HELP}      --json FILE              write NDJSON events (started, exit, error) to FILE (a file
                               or a named pipe); stdout and stderr stay the command's
  -h, --help                   show this help

Exit codes: the remote command's, or 255 when sockit itself fails; "sockit help" lists them.

Examples:
  sockit exec 127.0.0.1:7070 -- uname -a
  seq 1 100000 | sockit exec 127.0.0.1:7070 -- wc -l
  sockit exec 127.0.0.1:7070 --timeout 5s -- sh -c 'echo $HOME; sleep 10'
`;

export const CLIENT_USAGE = `Usage: sockit client ADDR [--chat NAME | --raw | --udp] [options]

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
      --token-file FILE        the server's token (default: SOCKIT_TOKEN, then
                               ~/.config/sockit/token when it exists)
      --connect-timeout DUR    limit on connecting and the handshake (default 10s)
${TLS_CLIENT_HELP}      --json                   print replies and events as NDJSON
  -h, --help                   show this help

Exit codes: as "sockit help" lists them.

Examples:
  printf 'hello\\nworld\\n' | sockit client 127.0.0.1:7070
  sockit client 127.0.0.1:7070 --chat ada
  echo hi | sockit client 127.0.0.1:9999 --raw
  sockit client 127.0.0.1:7070 --udp --count 5 --interval 200ms
`;

export const COMPLETIONS_USAGE = `Usage: sockit completions bash|zsh|fish

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
export type Options = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string }
>;

// Each subcommand's flags: what it parses, and what completion scripts offer.
export const SERVER_OPTIONS = {
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
  "min-free": { type: "string" },
  "portable-names": { type: "boolean" },
  udp: { type: "string", multiple: true },
  "udp-max-datagram": { type: "string" },
  "udp-rate": { type: "string" },
  "udp-burst": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

/** The flags of client, exec and upload that ask for TLS and say how to verify it. */
export const TLS_CLIENT_OPTIONS = {
  tls: { type: "boolean" },
  ca: { type: "string" },
  pin: { type: "string" },
  "known-hosts": { type: "string" },
  insecure: { type: "boolean" },
} satisfies Options;

export const CLIENT_OPTIONS = {
  chat: { type: "string" },
  raw: { type: "boolean" },
  udp: { type: "boolean" },
  count: { type: "string" },
  interval: { type: "string" },
  size: { type: "string" },
  timeout: { type: "string" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
  ...TLS_CLIENT_OPTIONS,
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

export const EXEC_OPTIONS = {
  timeout: { type: "string" },
  cwd: { type: "string" },
  env: { type: "string", multiple: true },
  "no-stdin": { type: "boolean" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
  ...TLS_CLIENT_OPTIONS,
  json: { type: "string" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

export const UPLOAD_OPTIONS = {
  to: { type: "string" },
  resume: { type: "boolean" },
  overwrite: { type: "boolean" },
  "no-preserve": { type: "boolean" },
  "no-progress": { type: "boolean" },
  json: { type: "boolean" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
  ...TLS_CLIENT_OPTIONS,
  help: { type: "boolean", short: "h" },
} satisfies Options;

export const COMPLETIONS_OPTIONS = { help: { type: "boolean", short: "h" } } satisfies Options;

/** The subcommands: for `help COMMAND`, suggestions and completion scripts. */
export const COMMANDS: readonly {
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
export const TOP_LEVEL = [...COMMANDS.map((c) => c.name), "--version", "--help"];
