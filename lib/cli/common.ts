/**
 * What every `sockit` subcommand shares: usage errors, printing, flag
 * parsing, the client's token, TLS and permission checks.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Address, formatAddress } from "../net/address.ts";
import { ConnectError } from "../client/client.ts";
import { defaultConfigPath } from "../config/config_path.ts";
import { RemoteError } from "../protocol/errors.ts";
import { escapeForLog } from "../text/escape.ts";
import { formatFingerprint, parseFingerprint } from "../tls/fingerprint.ts";
import { defaultTokenPath, loadToken, TOKEN_ENV } from "../config/token.ts";
import type { TlsClientOptions } from "../tls/tls_client.ts";
import { parseDuration, parseSize } from "../text/units.ts";
import { suggest } from "./suggest.ts";
import { requirePermissions } from "../permissions/permissions.ts";
import { type Options, TLS_CLIENT_OPTIONS } from "./usage.ts";

const encoder = new TextEncoder();

export class UsageError extends Error {
  constructor(message: string, readonly usage: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function print(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length;) at += stream.writeSync(bytes.subarray(at));
}

export function parse<T extends Options>(
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
    throw new UsageError(parserMessage(error, args), usage);
  }
}

/**
 * The argument parser's message as one line in sockit's words: Node's
 * three-line text for `--idle-timeout -1s` becomes
 * `--idle-timeout: the value "-1s" starts with "-"; write --idle-timeout=-1s`.
 */
function parserMessage(error: unknown, args: readonly string[]): string {
  const text = error instanceof Error ? error.message : String(error);
  const option = /^Option '(-[-\w]+)/.exec(text)?.[1];
  if (option !== undefined && text.includes("argument is ambiguous")) {
    const value = args[args.indexOf(option) + 1];
    return `${option}: the value "${value}" starts with "-"; write ${option}=${value} to give it`;
  }
  if (option !== undefined && text.endsWith("argument missing")) return `${option} needs a value`;
  if (option !== undefined && text.endsWith("does not take an argument")) {
    return `${option} takes no value`;
  }
  return text.split("\n")[0]!;
}

/** The first flag in `args` that `options` does not declare, as typed (`--listn`). */
export function unknownOption(args: string[], options: Options): string | undefined {
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
export function unknownName(what: string, name: string, known: readonly string[]): string {
  // A one-letter flag is too short to guess from.
  const hint = /^-[^-]/.test(name) ? undefined : suggest(name, known);
  return `unknown ${what} "${name}"` + (hint === undefined ? "" : ` (did you mean ${hint}?)`);
}

export function flag<T>(
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

export function count(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new RangeError(`Cannot parse "${text}": expected a positive whole number`);
  }
  return Number(text);
}

/** A duration above zero. */
export function period(text: string): number {
  const ms = parseDuration(text);
  if (ms === 0) throw new RangeError(`Cannot use "${text}": expected a duration above zero`);
  return ms;
}

/** A frame size from 1 byte to 4 GiB - 1. */
export function frameSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 1 || bytes > 0xffff_ffff) {
    throw new RangeError(`Cannot use "${text}": expected a size from 1 byte to 4GiB - 1`);
  }
  return bytes;
}

export function list(values: string[] | undefined): string[] | undefined {
  return values?.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

/**
 * The token for a service that always needs one: --token-file, else
 * SOCKIT_TOKEN, else the default token file; the error says what to grant
 * when the default file exists but may not be read.
 */
export async function clientToken(service: string, tokenFile: string | undefined): Promise<string> {
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
export function requireConnect(address: Address): void {
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
export const TLS_CLIENT_FLAGS = Object.keys(
  TLS_CLIENT_OPTIONS,
) as (keyof typeof TLS_CLIENT_OPTIONS)[];

/** How the client verifies a TLS server, from its flags, checked; nothing is read yet. */
export type ClientTlsPlan =
  | { readonly insecure: true }
  | { readonly pin: string }
  | { readonly ca: string }
  | { readonly knownHosts: string | undefined };

/**
 * Checks --tls, --ca, --pin, --known-hosts and --insecure: at most one way
 * to verify, and a well-formed fingerprint; `undefined` for plain TCP.
 * --tls alone means trust on first use with the default known-hosts file.
 *
 * @throws {UsageError} when two ways are given or the fingerprint is bad
 */
export function planClientTls(
  values: {
    tls?: boolean | undefined;
    ca?: string | undefined;
    pin?: string | undefined;
    "known-hosts"?: string | undefined;
    insecure?: boolean | undefined;
  },
  usage: string,
): ClientTlsPlan | undefined {
  if (!TLS_CLIENT_FLAGS.some((name) => values[name])) return undefined;
  const ways = (["ca", "pin", "known-hosts", "insecure"] as const).filter((name) => values[name]);
  if (ways.length > 1) {
    throw new UsageError(`--${ways[0]} and --${ways[1]} cannot be combined`, usage);
  }
  if (values.insecure) return { insecure: true };
  if (values.pin !== undefined) return { pin: flag(usage, "pin", values.pin, parseFingerprint)! };
  if (values.ca !== undefined) return { ca: values.ca };
  return { knownHosts: values["known-hosts"] };
}

/**
 * The TLS options of a checked plan: reads the --ca file, finds the default
 * known-hosts file, and warns about --insecure; `undefined` for plain TCP.
 * The known-hosts file is only written when the connection records a server.
 *
 * @throws {Error} when there is no known-hosts file to use (no --allow-env=HOME)
 */
export async function clientTls(
  plan: ClientTlsPlan | undefined,
): Promise<TlsClientOptions | undefined> {
  if (plan === undefined) return undefined;
  if ("insecure" in plan) {
    print(
      Deno.stderr,
      "sockit: warning: --insecure: the server's certificate is not verified; anyone on the " +
        "path can read and change this session\n",
    );
    return { insecure: true };
  }
  if ("pin" in plan) return { pin: plan.pin };
  if ("ca" in plan) return { caCerts: [await readFlagFile("ca", plan.ca)] };
  const knownHosts = plan.knownHosts ?? defaultConfigPath("known_hosts");
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

export function errorName(error: unknown): string {
  if (error instanceof ConnectError) return "connect_failed";
  return error instanceof Error ? error.name : "error";
}

/** Whether SOCKIT_TOKEN may be read (--allow-env grants it). */
export function envReadable(): boolean {
  return Deno.permissions.querySync({ name: "env", variable: TOKEN_ENV }).state === "granted";
}

/** One line for stderr; text that may come from the server is escaped. */
export function describe(error: unknown): string {
  if (error instanceof RemoteError) {
    return `${escapeForLog(error.message, 500)} (${escapeForLog(error.code, 40)})`;
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return `missing permission: ${error.message}`;
  }
  return escapeForLog(withFlags(error instanceof Error ? error.message : String(error)), 500);
}

/**
 * The library's errors name its options; on the command line the flags that
 * set them are named instead.
 */
const FLAGS_FOR_OPTIONS: readonly (readonly [string, string])[] = [
  ["connect with TLS (the tls option)", "connect with TLS (--tls)"],
  ["connect with the tls option", "connect with --tls"],
  [
    "requires a token (the token option)",
    "requires a token (use --token-file, or SOCKIT_TOKEN with --allow-env=SOCKIT_TOKEN)",
  ],
  ["verify it with the ca option instead", "verify it with --ca CA-FILE instead"],
  ["(give the ca or pin option, or use", "(give --ca FILE, --pin sha256:…, or use"],
  ["start the server with TLS, or connect", "start the server with --tls, or connect"],
];

/** `message` with the library's option names replaced by the command line's flags. */
export function withFlags(message: string): string {
  for (const [option, flag] of FLAGS_FOR_OPTIONS) message = message.replace(option, flag);
  return message;
}

/**
 * Reads the file a flag names; a failure says which flag and file and what
 * is wrong, in words: `Cannot read --ca "ca.pem": no such file`.
 */
export async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied by the file system"
      : error instanceof Error && error.name === "InvalidData"
      ? "not UTF-8 text"
      : undefined;
    if (why === undefined) throw error;
    throw new Error(`Cannot read --${flag} "${path}": ${why}`, { cause: error });
  }
}
