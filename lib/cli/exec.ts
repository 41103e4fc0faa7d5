/**
 * `sockit exec`: runs a command on the server with local stdio.
 *
 * {@linkcode planExec} checks every flag and touches nothing; only then is
 * the --json file made, the token read and the server connected.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Address, parseAddress } from "../net/address.ts";
import { ProtocolError, RemoteError } from "../protocol/errors.ts";
import type { TlsClientOptions } from "../tls/tls_client.ts";
import type { RemoteProcess } from "../exec/exec.ts";
import { EXEC_OPTIONS, EXEC_USAGE } from "./usage.ts";
import {
  clientTls,
  type ClientTlsPlan,
  clientToken,
  describe,
  errorName,
  flag,
  parse,
  period,
  planClientTls,
  print,
  requireConnect,
  UsageError,
  withFlags,
} from "./common.ts";

export const EXEC_FAILURE = 255;

/** Exit code of a program ended by SIGPIPE: 128 + 13. */
export const EXIT_SIGPIPE = 141;

/** Exit codes for refusals that mean what a shell means by them. */
export const EXEC_REFUSALS: Record<string, number> = { not_executable: 126, not_found: 127 };

/** The exec flags as parsed. */
export type ExecValues = ReturnType<typeof parse<typeof EXEC_OPTIONS>>["values"];

/** Every exec flag, parsed and checked; nothing is touched to make it. */
export interface ExecPlan {
  readonly address: Address;
  /** The command after `--`. */
  readonly argv: string[];
  /** --env NAME=VALUE. */
  readonly env: Record<string, string>;
  readonly cwd: string | undefined;
  /** --timeout in milliseconds, and as typed for the message. */
  readonly timeout: number | undefined;
  readonly timeoutText: string | undefined;
  readonly connectTimeout: number;
  readonly tls: ClientTlsPlan | undefined;
  readonly tokenFile: string | undefined;
  /** --json FILE: where the events go. */
  readonly eventsFile: string | undefined;
  /** Whether stdin may be sent (not --no-stdin). */
  readonly stdin: boolean;
}

export async function execCommand(args: string[]): Promise<number> {
  const split = args.indexOf("--");
  if (split === -1) requireDashes(args);
  const { values, positionals } = parse(
    split === -1 ? args : args.slice(0, split),
    EXEC_OPTIONS,
    EXEC_USAGE,
  );
  if (values.help) {
    print(Deno.stdout, EXEC_USAGE);
    return 0;
  }
  const plan = planExec(values, positionals, split === -1 ? [] : args.slice(split + 1));
  using events = plan.eventsFile === undefined ? undefined : await Deno.open(plan.eventsFile, {
    write: true,
    create: true,
    truncate: true,
  });
  return await runExec(plan, new EventLog(events));
}

/**
 * Without `--`, a word after the address starts the command: `sockit exec
 * H:P uname -a` is refused with the line that works, not with `unknown
 * option "-a"`.
 */
function requireDashes(args: string[]): void {
  const { tokens } = parseArgs({
    args,
    options: EXEC_OPTIONS,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const words = tokens.filter((t) => t.kind === "positional");
  if (words.length < 2) return;
  const address = words[0]!.value;
  const command = args.slice(words[1]!.index);
  throw new UsageError(
    `put the command after "--": sockit exec ${address} -- ${command.join(" ")}`,
    EXEC_USAGE,
  );
}

/**
 * Checks every exec flag, the address and the command, and returns what to
 * do; it makes, reads and connects nothing.
 *
 * @throws {UsageError} for a bad value or combination
 */
export function planExec(
  values: ExecValues,
  positionals: readonly string[],
  argv: string[],
): ExecPlan {
  const u = EXEC_USAGE;
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? "missing ADDR" : `put the command after "--": "${positionals[1]}"`,
      u,
    );
  }
  if (argv.length === 0) throw new UsageError('missing the command after "--"', u);
  const address = flag(u, "address", positionals[0], parseAddress)!;
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--env: expected NAME=VALUE, got "${pair}"`, u);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    address,
    argv,
    env,
    cwd: values.cwd,
    timeout: flag(u, "timeout", values.timeout, period),
    timeoutText: values.timeout,
    connectTimeout: flag(u, "connect-timeout", values["connect-timeout"], period) ?? 10_000,
    tls: planClientTls(values, u),
    tokenFile: values["token-file"],
    eventsFile: values.json,
    stdin: !values["no-stdin"],
  };
}

/** The --json events, and sockit's own failures as one line on stderr. */
class EventLog {
  readonly #file: Deno.FsFile | undefined;

  constructor(file: Deno.FsFile | undefined) {
    this.#file = file;
  }

  emit(event: Record<string, unknown>): void {
    if (this.#file) print(this.#file, JSON.stringify(event) + "\n");
  }

  /** Records and prints `error`; returns `code`. */
  fail(error: unknown, code: number): number {
    const remote = error instanceof RemoteError;
    this.emit({
      event: "error",
      origin: remote ? "remote" : "local",
      code: remote || error instanceof ProtocolError ? error.code : errorName(error),
      message: withFlags(error instanceof Error ? error.message : String(error)),
    });
    print(Deno.stderr, `sockit: ${describe(error)}\n`);
    return code;
  }
}

/** Starts the remote command of a checked plan and pipes local stdio to it. */
async function runExec(plan: ExecPlan, log: EventLog): Promise<number> {
  let token: string;
  let tls: TlsClientOptions | undefined;
  try {
    requireConnect(plan.address);
    tls = await clientTls(plan.tls);
    token = await clientToken("exec", plan.tokenFile);
  } catch (error) {
    return log.fail(error, EXEC_FAILURE);
  }
  const pipedStdin = plan.stdin && !Deno.stdin.isTerminal();
  const [{ exec }, { exitCodeOf, pipeExec }] = await Promise.all([
    import("../exec/exec.ts"),
    import("../exec/exec_stdio.ts"),
  ]);
  let proc: RemoteProcess;
  try {
    proc = await exec(plan.address, plan.argv, {
      token,
      env: plan.env,
      cwd: plan.cwd,
      timeout: plan.timeout,
      stdin: pipedStdin ? "piped" : "null",
      connectTimeout: plan.connectTimeout,
      handshakeTimeout: plan.connectTimeout,
      tls,
    });
  } catch (error) {
    const refusal = error instanceof RemoteError ? EXEC_REFUSALS[error.code] : undefined;
    return log.fail(error, refusal ?? EXEC_FAILURE);
  }
  log.emit({ event: "started", argv: plan.argv });
  let interrupts = 0;
  const interrupt = () => {
    interrupts++;
    if (interrupts > 2) Deno.exit(130);
    const signal = interrupts === 1 ? "SIGINT" : "SIGKILL";
    log.emit({ event: "signal", signal });
    proc.kill(signal).catch(() => {});
  };
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGINT", interrupt);
  try {
    const status = await pipeExec(proc, {
      stdout: Deno.stdout,
      stderr: Deno.stderr,
      stdin: pipedStdin ? Deno.stdin : undefined,
    });
    log.emit({ event: "exit", ...status });
    if (status.timedOut) {
      const limit = plan.timeoutText ?? "the server's time limit";
      print(Deno.stderr, `sockit: remote command timed out after ${limit}\n`);
    } else if (status.signal !== null) {
      print(Deno.stderr, `sockit: remote command killed by ${status.signal}\n`);
    }
    return exitCodeOf(status);
  } catch (error) {
    // Whoever read our output stopped (`| head`): end quietly, as a program
    // killed by SIGPIPE would, and the remote command ends with the session.
    if (error instanceof Deno.errors.BrokenPipe) return EXIT_SIGPIPE;
    return log.fail(error, EXEC_FAILURE);
  } finally {
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGINT", interrupt);
    proc.close();
  }
}
