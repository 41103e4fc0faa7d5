/**
 * Certificate fingerprints: the SHA-256 of a certificate's DER bytes, the
 * value `openssl x509 -noout -fingerprint -sha256` prints. sockit prints it
 * as `sha256:` and colon-separated upper-case hex, and accepts it back with
 * or without the colons, in either case.
 *
 * Kept apart from certificate generation so that clients load no X.509 code.
 *
 * @module
 */

/**
 * Thrown when a certificate, key or fingerprint cannot be used.
 *
 * @example The message names what was wrong
 * ```ts
 * import { parseFingerprint, TlsCertificateError } from "@sockit/sockit/tls";
 * import { throws } from "node:assert/strict";
 *
 * throws(() => parseFingerprint("sha256:abc"), TlsCertificateError);
 * ```
 */
export class TlsCertificateError extends Error {
  /**
   * Creates a `TlsCertificateError`.
   *
   * @param message what failed, with the values involved
   * @param options the original error as `cause`
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsCertificateError";
  }
}

/** The DER bytes of the first PEM certificate in `text`. */
function firstCertificateDer(text: string): Uint8Array<ArrayBuffer> {
  const block = text.match(
    /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/,
  );
  if (!block) throw new TlsCertificateError("Cannot use the PEM text: no certificate in it");
  return Uint8Array.fromBase64(block[1]!.replace(/\s+/g, ""));
}

/**
 * The SHA-256 fingerprint of a certificate: of the first one in `cert` when
 * it is PEM text, or of the DER bytes themselves.
 *
 * @param cert PEM text or DER bytes
 * @returns 64 lower-case hex digits
 * @throws {TlsCertificateError} when `cert` holds no certificate
 *
 * @example Fingerprint a fresh certificate
 * ```ts
 * import { certificateFingerprint, createSelfSigned } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * const identity = await createSelfSigned();
 * deepEqual(await certificateFingerprint(identity.cert), identity.fingerprint);
 * ```
 */
export async function certificateFingerprint(cert: string | Uint8Array): Promise<string> {
  const der = typeof cert === "string" ? firstCertificateDer(cert) : new Uint8Array(cert);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", der)).toHex();
}

/**
 * Turns DER certificate bytes into PEM text.
 *
 * @param der the certificate's DER bytes
 * @returns one `CERTIFICATE` PEM block
 *
 * @example Round trip through DER
 * ```ts
 * import { createSelfSigned } from "@sockit/sockit/tls";
 * import { derToPem } from "./fingerprint.ts";
 * import { match } from "node:assert/strict";
 *
 * const der = Uint8Array.fromBase64((await createSelfSigned()).cert.split("\n").slice(1, -2).join(""));
 * match(derToPem(der), /^-----BEGIN CERTIFICATE-----\n/);
 * ```
 */
export function derToPem(der: Uint8Array): string {
  const base64 = der.toBase64();
  return `-----BEGIN CERTIFICATE-----\n${
    base64.match(/.{1,64}/g)!.join("\n")
  }\n-----END CERTIFICATE-----\n`;
}

/**
 * Reads a fingerprint as people paste it: `sha256:` optional, colons
 * optional, either case.
 *
 * @param text such as `sha256:AB:CD:…` or `abcd…`
 * @returns 64 lower-case hex digits
 * @throws {TlsCertificateError} when it is not a SHA-256 fingerprint
 *
 * @example openssl's output pastes as it is
 * ```ts
 * import { parseFingerprint } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * const colons = Array.from({ length: 32 }, () => "AB").join(":");
 * deepEqual(parseFingerprint(`sha256:${colons}`), "ab".repeat(32));
 * ```
 */
export function parseFingerprint(text: string): string {
  const digits = text.trim().replace(/^sha-?256[:=]/i, "").replaceAll(":", "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(digits)) {
    throw new TlsCertificateError(
      `Cannot use fingerprint "${text.slice(0, 120)}": expected sha256: and 64 hex digits ` +
        "(colons allowed), as openssl x509 -noout -fingerprint -sha256 prints",
    );
  }
  return digits;
}

/**
 * Formats a fingerprint for people: `sha256:` and colon-separated upper-case
 * hex, as openssl prints it; {@linkcode parseFingerprint} reads it back.
 *
 * @param fingerprint 64 hex digits
 * @returns the printable form
 *
 * @example
 * ```ts
 * import { formatFingerprint } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(formatFingerprint("ab".repeat(32)).slice(0, 15), "sha256:AB:AB:AB");
 * ```
 */
export function formatFingerprint(fingerprint: string): string {
  return `sha256:${fingerprint.toUpperCase().match(/../g)!.join(":")}`;
}
