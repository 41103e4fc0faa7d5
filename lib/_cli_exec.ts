/**
 * `sockit exec`: runs a command on the server with local stdio.
 *
 * @module
 */

import { parseAddress } from "./address.ts";
import { ProtocolError, RemoteError } from "./errors.ts";
import type { TlsClientOptions } from "./tls_client.ts";
import { EXEC_OPTIONS, EXEC_USAGE } from "./_cli_usage.ts";
import {
  clientTls,
  clientToken,
  describe,
  errorName,
  flag,
  parse,
  period,
  print,
  requireConnect,
  UsageError,
} from "./_cli_common.ts";

export const EXEC_FAILURE = 255;

/** Exit code of a program ended by SIGPIPE: 128 + 13. */
export const EXIT_SIGPIPE = 141;

/** Exit codes for refusals that mean what a shell means by them. */
export const EXEC_REFUSALS: Record<string, number> = { not_executable: 126, not_found: 127 };

export async function execCommand(args: string[]): Promise<number> {
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
    import("./exec.ts"),
    import("./exec_stdio.ts"),
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
