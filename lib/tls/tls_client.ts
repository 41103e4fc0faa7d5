/**
 * The client side of TLS: connect and verify the server's certificate by a
 * CA, a pinned fingerprint, or trust on first use — never silently not at
 * all.
 *
 * Deno's TLS connections do not expose the peer's certificate, so pinning
 * and trust on first use take two steps: a first TLS handshake (through
 * `node:tls`) fetches the certificate and its fingerprint is checked; then
 * the real connection is made with that exact certificate as its only
 * trust anchor. A server that could pass the second step holds the pinned
 * certificate's private key. The extra handshake costs one round trip and
 * the server sees one extra, empty connection.
 *
 * @module
 */

import type { TcpAddress } from "../net/address.ts";
import { closeQuietly } from "../net/_close.ts";
import { checkKnownHost } from "./known_hosts.ts";
import {
  certificateFingerprint,
  derToPem,
  formatFingerprint,
  parseFingerprint,
} from "./fingerprint.ts";

/** How the client verifies the server's certificate. */
export interface TlsClientOptions {
  /**
   * CA certificates (PEM) to verify the server's chain and name against,
   * instead of the system's roots.
   * @default {undefined}
   */
  caCerts?: readonly string[] | undefined;
  /**
   * Accept only the certificate with this SHA-256 fingerprint (see
   * `parseFingerprint` for the accepted forms). Name and CA are not checked.
   * @default {undefined}
   */
  pin?: string | undefined;
  /**
   * Trust on first use: a known-hosts file. The first connection to an
   * address records its fingerprint (and calls `onNewHost`); later ones
   * must match it.
   * @default {undefined}
   */
  knownHosts?: string | undefined;
  /** Called when trust on first use records a new server. @default {undefined} */
  onNewHost?: ((address: string, fingerprint: string) => void) | undefined;
  /**
   * Skip verification of CA, name and pin: the connection is encrypted but
   * anyone in the path can read it. The certificate must still be within
   * its validity period.
   * @default {false}
   */
  insecure?: boolean | undefined;
  /** The name to verify and send as SNI. @default {the address's host} */
  serverName?: string | undefined;
}

/** Why a TLS connection was not trusted or did not happen. */
export type TlsVerifyCode =
  | "untrusted"
  | "name_mismatch"
  | "expired"
  | "pin_mismatch"
  | "host_key_changed"
  | "not_tls"
  | "handshake_failed";

/**
 * Thrown when the server's certificate fails verification or the TLS
 * handshake fails.
 *
 * @example A changed fingerprint shows both
 * ```ts
 * import { TlsVerifyError } from "@sockit/sockit";
 * import { match } from "node:assert/strict";
 *
 * const error = new TlsVerifyError("host_key_changed", "127.0.0.1:7070", "certificate changed", {
 *   expected: "ab".repeat(32),
 *   actual: "cd".repeat(32),
 * });
 * match(error.message, /sha256:AB:AB.*sha256:CD:CD/s);
 * ```
 */
export class TlsVerifyError extends Error {
  /** What failed. */
  readonly code: TlsVerifyCode;
  /** The server's address. */
  readonly address: string;
  /** The fingerprint that was expected (pin or known host), as 64 hex digits. */
  readonly expected: string | undefined;
  /** The fingerprint the server presented, as 64 hex digits. */
  readonly actual: string | undefined;

  /**
   * Creates a `TlsVerifyError`.
   *
   * @param code what failed
   * @param address the server's address
   * @param reason the explanation
   * @param details fingerprints involved and the original error
   */
  constructor(
    code: TlsVerifyCode,
    address: string,
    reason: string,
    details: { expected?: string; actual?: string; cause?: unknown } = {},
  ) {
    const prints = details.expected && details.actual
      ? `\n  expected ${formatFingerprint(details.expected)}\n  presented ${
        formatFingerprint(details.actual)
      }`
      : details.actual
      ? `\n  presented ${formatFingerprint(details.actual)}`
      : "";
    super(`Cannot trust TLS server ${address}: ${reason}${prints}`, { cause: details.cause });
    this.name = "TlsVerifyError";
    this.code = code;
    this.address = address;
    this.expected = details.expected;
    this.actual = details.actual;
  }
}

/** Options for {@linkcode connectTls}. */
export interface ConnectTlsOptions extends TlsClientOptions {
  /** Aborts connecting and the handshake. @default {undefined} */
  signal?: AbortSignal | undefined;
}

/**
 * Opens a TLS connection to `address` and completes the handshake,
 * verifying the server as `options` says: by `caCerts` (or the system's
 * roots when nothing else is given), by `pin`, by `knownHosts`, or not at
 * all with `insecure`.
 *
 * @param address the server
 * @param options how to verify, and cancellation
 * @returns the connection, handshake done
 * @throws {TlsVerifyError} when verification or the handshake fails
 *
 * @example Pin a server's certificate
 * ```ts ignore
 * import { connectTls } from "@sockit/sockit/tls";
 *
 * using conn = await connectTls(
 *   { transport: "tcp", hostname: "127.0.0.1", port: 7070 },
 *   { pin: "sha256:AB:CD:…" },
 * );
 * ```
 */
export async function connectTls(
  address: TcpAddress,
  options: ConnectTlsOptions = {},
): Promise<Deno.TlsConn> {
  const text = address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
  const serverName = options.serverName ?? address.hostname;
  let caCerts = options.caCerts ? [...options.caCerts] : undefined;
  let byFingerprint = false;
  if (options.pin !== undefined || options.knownHosts !== undefined || options.insecure) {
    const der = await presentedCertificate(address, text, serverName, options.signal);
    const actual = await certificateFingerprint(der);
    if (options.pin !== undefined && !options.insecure) {
      const expected = parseFingerprint(options.pin);
      if (expected !== actual) {
        throw new TlsVerifyError("pin_mismatch", text, "its certificate is not the pinned one", {
          expected,
          actual,
        });
      }
    } else if (options.knownHosts !== undefined && !options.insecure) {
      const known = await checkKnownHost(options.knownHosts, text, actual);
      if (known.status === "changed") {
        throw new TlsVerifyError(
          "host_key_changed",
          text,
          `its certificate changed since it was recorded in ${options.knownHosts}; if the ` +
            "server was given a new certificate on purpose, remove its line from that file",
          { expected: known.expected, actual },
        );
      }
      if (known.status === "new") options.onNewHost?.(text, actual);
    }
    // The presented certificate becomes the only trust anchor: the real
    // connection succeeds only with its private key.
    caCerts = [derToPem(der)];
    byFingerprint = true;
  }
  let tcp: Deno.TcpConn;
  try {
    tcp = await Deno.connect({
      hostname: address.hostname,
      port: address.port,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    throw new TlsVerifyError("handshake_failed", text, describe(error), { cause: error });
  }
  tcp.setNoDelay(true);
  const conn = await Deno.startTls(tcp, {
    hostname: serverName,
    ...(caCerts ? { caCerts } : {}),
    ...(byFingerprint ? { unsafelyDisableHostnameVerification: true } : {}),
  });
  const onAbort = () => closeQuietly(conn);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await conn.handshake();
    return conn;
  } catch (error) {
    closeQuietly(conn);
    const failure = tlsError(text, error);
    if (byFingerprint && failure.code === "untrusted") {
      // The pinned or recorded certificate is not self-signed: it cannot be
      // its own trust anchor.
      throw new TlsVerifyError(
        "untrusted",
        text,
        "its certificate matches, but is issued by a CA, and pinning or trust on first use " +
          "needs a self-signed one; verify it with the ca option instead",
        { cause: error },
      );
    }
    throw failure;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Turns a handshake failure into a {@linkcode TlsVerifyError} that says what to do. */
function tlsError(address: string, error: unknown): TlsVerifyError {
  const message = describe(error);
  if (/UnknownIssuer|unknown ?ca|BadSignature/i.test(message)) {
    return new TlsVerifyError(
      "untrusted",
      address,
      "its certificate is not signed by a trusted CA (give the ca or pin option, or use " +
        "the known-hosts file)",
      { cause: error },
    );
  }
  if (/NotValidForName|not valid for name|CertNotValidForName/i.test(message)) {
    return new TlsVerifyError(
      "name_mismatch",
      address,
      `its certificate is not valid for this name or address (${message})`,
      { cause: error },
    );
  }
  if (/Expired|NotValidYet|not valid yet/i.test(message)) {
    return new TlsVerifyError(
      "expired",
      address,
      `its certificate is outside its validity period (${message})`,
      { cause: error },
    );
  }
  if (
    /corrupt message|InvalidContentType|wrong version|invalid ?message|record overflow/i.test(
      message,
    )
  ) {
    return new TlsVerifyError(
      "not_tls",
      address,
      "it does not speak TLS on this port (start the server with TLS, or connect without it)",
      { cause: error },
    );
  }
  return new TlsVerifyError("handshake_failed", address, `TLS handshake failed: ${message}`, {
    cause: error,
  });
}

/** The server's certificate (DER), from a handshake that verifies nothing. */
async function presentedCertificate(
  address: TcpAddress,
  text: string,
  serverName: string,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const tls = await import("node:tls");
  return await new Promise<Uint8Array>((resolve, reject) => {
    const socket = tls.connect({
      host: address.hostname,
      port: address.port,
      // SNI carries names only, never addresses.
      ...(/^[\d.]+$|:/.test(serverName) ? {} : { servername: serverName }),
      rejectUnauthorized: false,
    });
    const fail = (error: unknown) => {
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(error instanceof TlsVerifyError ? error : tlsError(text, error));
    };
    const onAbort = () => fail(signal?.reason ?? new Error("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      signal?.removeEventListener("abort", onAbort);
      const raw = socket.getPeerCertificate(true)?.raw;
      socket.destroy();
      if (raw && raw.length > 0) resolve(new Uint8Array(raw));
      else reject(new TlsVerifyError("handshake_failed", text, "the server sent no certificate"));
    });
  });
}
