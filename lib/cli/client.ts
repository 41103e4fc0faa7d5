/**
 * `sockit client`: echo, chat, raw and UDP modes.
 *
 * {@linkcode planClient} checks every flag and touches nothing; only then
 * does the client read stdin, open a socket or record a TLS server.
 *
 * @module
 */

import { type Address, parseAddress, type TcpAddress } from "../net/address.ts";
import { defaultTokenPath, loadToken } from "../config/token.ts";
import { parseDuration, parseSize } from "../text/units.ts";
import { CLIENT_OPTIONS, CLIENT_USAGE } from "./usage.ts";
import {
  clientTls,
  type ClientTlsPlan,
  count,
  flag,
  parse,
  period,
  planClientTls,
  print,
  requireConnect,
  TLS_CLIENT_FLAGS,
  UsageError,
} from "./common.ts";

/** The client's flags as parsed. */
export type ClientValues = ReturnType<typeof parse<typeof CLIENT_OPTIONS>>["values"];

/** Every client flag, parsed and checked; nothing is touched to make it. */
export type ClientPlan =
  | { readonly mode: "udp"; readonly udp: UdpClientPlan }
  | {
    readonly mode: "echo" | "chat" | "raw";
    readonly address: Address;
    /** --chat NAME. */
    readonly name: string | undefined;
    readonly connectTimeout: number;
    readonly tls: ClientTlsPlan | undefined;
    readonly tokenFile: string | undefined;
    readonly json: boolean;
  };

/** UDP echo lines, or with `ping` a UDP ping. */
export interface UdpClientPlan {
  /** The address as typed, for the messages. */
  readonly text: string;
  readonly address: TcpAddress;
  /** Milliseconds to wait for each reply. */
  readonly timeout: number;
  readonly ping:
    | { readonly count: number; readonly interval: number; readonly size: number }
    | undefined;
  readonly json: boolean;
}

export async function clientCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CLIENT_OPTIONS, CLIENT_USAGE);
  if (values.help) {
    print(Deno.stdout, CLIENT_USAGE);
    return 0;
  }
  const plan = planClient(values, positionals);
  if (plan.mode === "udp") return await udpClient(plan.udp);
  requireConnect(plan.address);
  const [{ connect, dial }, { chatLines, echoLines }, { relay }] = await Promise.all([
    import("../client/client.ts"),
    import("../client/line_clients.ts"),
    import("../net/relay.ts"),
  ]);
  const { address, connectTimeout } = plan;
  if (plan.mode === "raw") {
    const conn = await dial(address, { connectTimeout, tls: await clientTls(plan.tls) });
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
  // The same rule as exec and upload: --token-file, SOCKIT_TOKEN, then the
  // default token file. Echo and chat may run without a token, so one found
  // in the default file is offered only to a server that asks for it.
  const given = await loadToken({ tokenFile: plan.tokenFile });
  const token = given ?? await loadToken({ useEnv: false, defaultFile: defaultTokenPath() });
  const chat = plan.mode === "chat";
  await using session = await connect(address, {
    service: plan.mode,
    token,
    requireServerProof: given !== undefined,
    params: chat ? { name: plan.name } : {},
    connectTimeout,
    handshakeTimeout: connectTimeout,
    tls: await clientTls(plan.tls),
  });
  const io = {
    input: Deno.stdin,
    output: Deno.stdout,
    json: plan.json,
    escape: Deno.stdout.isTerminal(),
  };
  await (chat ? chatLines(session, io) : echoLines(session, io));
  return 0;
}

/**
 * Checks every client flag and every combination of them, and returns what
 * to do; it reads, connects and records nothing.
 *
 * @throws {UsageError} for a bad value or combination
 */
export function planClient(values: ClientValues, positionals: readonly string[]): ClientPlan {
  const u = CLIENT_USAGE;
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? "missing ADDR" : `unexpected argument "${positionals[1]}"`,
      u,
    );
  }
  const modes = [values.raw, values.chat !== undefined, values.udp].filter(Boolean).length;
  if (modes > 1) throw new UsageError("--raw, --chat and --udp cannot be combined", u);
  const pingOnly = ["count", "interval", "size", "timeout"] as const;
  const stray = pingOnly.find((name) => values[name] !== undefined);
  if (!values.udp && stray) throw new UsageError(`--${stray} needs --udp`, u);
  const tlsFlag = TLS_CLIENT_FLAGS.find((name) => values[name] !== undefined);
  if (values.udp && tlsFlag) throw new UsageError(`--${tlsFlag} cannot be used with --udp`, u);
  if (values.udp) return { mode: "udp", udp: planUdpClient(positionals[0]!, values) };
  const address = flag(u, "address", positionals[0], parseAddress)!;
  const connectTimeout = flag(u, "connect-timeout", values["connect-timeout"], parseDuration) ??
    10_000;
  return {
    mode: values.raw ? "raw" : values.chat !== undefined ? "chat" : "echo",
    address,
    name: values.chat,
    connectTimeout,
    tls: planClientTls(values, u),
    tokenFile: values["token-file"],
    json: values.json ?? false,
  };
}

/** UDP mode: every value is checked, also those only a ping uses. */
function planUdpClient(text: string, values: ClientValues): UdpClientPlan {
  const u = CLIENT_USAGE;
  const address = flag(u, "address", text, parseAddress)!;
  if (address.transport !== "tcp") {
    throw new UsageError(`--udp needs HOST:PORT, not "${text}"`, u);
  }
  const timeout = flag(u, "timeout", values.timeout, period) ?? 1000;
  const probes = flag(u, "count", values.count, count);
  const interval = flag(u, "interval", values.interval, period) ?? 1000;
  const size = flag(u, "size", values.size, probeSize) ?? 56;
  // Not used with --udp, but a bad value is still a mistake to report.
  flag(u, "connect-timeout", values["connect-timeout"], parseDuration);
  return {
    text,
    address,
    timeout,
    ping: probes === undefined ? undefined : { count: probes, interval, size },
    json: values.json ?? false,
  };
}

/** A ping probe size: its 16-byte header up to one datagram. */
export function probeSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 16 || bytes > 65_507) {
    throw new RangeError(`Cannot use "${text}": expected 16 to 65507 bytes`);
  }
  return bytes;
}

/** Echo lines over UDP, or with --count a UDP ping; a checked plan. */
export async function udpClient(plan: UdpClientPlan): Promise<number> {
  const { address, timeout, json, text } = plan;
  const [{ ping, UdpTimeoutError }, { formatPingReply, formatPingSummary, udpLines }] =
    await Promise.all([import("../udp/udp_client.ts"), import("../udp/udp_lines.ts")]);
  if (plan.ping === undefined) {
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
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const summary = await ping(address, {
      ...plan.ping,
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
