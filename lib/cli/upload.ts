/**
 * `sockit upload`: sends files and trees, with progress.
 *
 * {@linkcode planUpload} checks every flag and touches nothing; only then
 * are the token read and the server connected.
 *
 * @module
 */

import { type Address, parseAddress } from "../net/address.ts";
import { ConnectError } from "../client/client.ts";
import { ProtocolError, RemoteError } from "../protocol/errors.ts";
import { escapeForLog } from "../text/escape.ts";
import type { UploadSummary } from "../upload/upload.ts";
import { UPLOAD_OPTIONS, UPLOAD_USAGE } from "./usage.ts";
import {
  clientTls,
  type ClientTlsPlan,
  clientToken,
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

/** The upload flags as parsed. */
export type UploadValues = ReturnType<typeof parse<typeof UPLOAD_OPTIONS>>["values"];

/** Every upload flag, parsed and checked; nothing is touched to make it. */
export interface UploadPlan {
  readonly address: Address;
  /** The local files and directories to send. */
  readonly paths: string[];
  /** --to: the remote directory. */
  readonly to: string | undefined;
  readonly resume: boolean;
  readonly overwrite: boolean;
  readonly preserve: boolean;
  readonly connectTimeout: number;
  readonly tls: ClientTlsPlan | undefined;
  readonly tokenFile: string | undefined;
  /** --json: events as NDJSON on stdout. */
  readonly json: boolean;
  /** Whether a progress bar may be drawn (not --no-progress, not --json). */
  readonly progress: boolean;
}

export async function uploadCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, UPLOAD_OPTIONS, UPLOAD_USAGE);
  if (values.help) {
    print(Deno.stdout, UPLOAD_USAGE);
    return 0;
  }
  const plan = planUpload(values, positionals);
  requireConnect(plan.address);
  const tls = await clientTls(plan.tls);
  const token = await clientToken("upload", plan.tokenFile);
  const [{ upload }, { ProgressBar }] = await Promise.all([
    import("../upload/upload.ts"),
    import("./progress.ts"),
  ]);
  const { json } = plan;
  const bar = plan.progress && Deno.stderr.isTerminal()
    ? new ProgressBar(Deno.stderr, () => Deno.consoleSize().columns)
    : undefined;
  let lastJson = 0;
  let current = "";
  const interrupted = (error: unknown) => {
    bar?.clear();
    const remote = error instanceof RemoteError;
    const code = remote || error instanceof ProtocolError ? error.code : errorName(error);
    let message = withFlags(error instanceof Error ? error.message : String(error));
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
  const summary = await upload(plan.address, plan.paths, {
    token,
    to: plan.to,
    resume: plan.resume,
    overwrite: plan.overwrite,
    preserve: plan.preserve,
    connectTimeout: plan.connectTimeout,
    handshakeTimeout: plan.connectTimeout,
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
  return report(summary, json);
}

/**
 * Checks every upload flag and the operands, and returns what to do; it
 * reads and connects nothing.
 *
 * @throws {UsageError} for a bad value or a missing operand
 */
export function planUpload(values: UploadValues, positionals: readonly string[]): UploadPlan {
  const u = UPLOAD_USAGE;
  if (positionals.length < 2) {
    throw new UsageError(positionals.length === 0 ? "missing ADDR" : "missing PATH", u);
  }
  const [addressText, ...paths] = positionals as [string, ...string[]];
  const json = values.json ?? false;
  return {
    address: flag(u, "address", addressText, parseAddress)!,
    paths,
    to: values.to,
    resume: values.resume ?? false,
    overwrite: values.overwrite ?? false,
    preserve: !values["no-preserve"],
    connectTimeout: flag(u, "connect-timeout", values["connect-timeout"], period) ?? 10_000,
    tls: planClientTls(values, u),
    tokenFile: values["token-file"],
    json,
    progress: !json && !values["no-progress"],
  };
}

/** Prints what did not go through (and with --json every file) and the totals; the exit code. */
function report(summary: UploadSummary, json: boolean): number {
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
