/**
 * `sockit client`: echo, chat, raw and UDP modes.
 *
 * @module
 */

import { parseAddress } from "./address.ts";
import { loadToken } from "./token.ts";
import { parseDuration, parseSize } from "./units.ts";
import { CLIENT_OPTIONS, CLIENT_USAGE } from "./_cli_usage.ts";
import {
  clientTls,
  count,
  flag,
  parse,
  period,
  print,
  requireConnect,
  TLS_CLIENT_FLAGS,
  UsageError,
} from "./_cli_common.ts";

export async function clientCommand(args: string[]): Promise<number> {
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
    import("./client.ts"),
    import("./line_clients.ts"),
    import("./relay.ts"),
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

export function probeSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes < 16 || bytes > 65_507) {
    throw new RangeError(`Cannot use "${text}": expected 16 to 65507 bytes`);
  }
  return bytes;
}

export async function udpClient(
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
    await Promise.all([import("./udp_client.ts"), import("./udp_lines.ts")]);
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
