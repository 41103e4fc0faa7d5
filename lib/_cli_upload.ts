/**
 * `sockit upload`: sends files and trees, with progress.
 *
 * @module
 */

import { parseAddress } from "./address.ts";
import { ConnectError } from "./client.ts";
import { ProtocolError, RemoteError } from "./errors.ts";
import { escapeForLog } from "./escape.ts";
import { UPLOAD_OPTIONS, UPLOAD_USAGE } from "./_cli_usage.ts";
import {
  clientTls,
  clientToken,
  errorName,
  flag,
  parse,
  period,
  print,
  requireConnect,
  UsageError,
} from "./_cli_common.ts";

export async function uploadCommand(args: string[]): Promise<number> {
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
    import("./upload.ts"),
    import("./progress.ts"),
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
