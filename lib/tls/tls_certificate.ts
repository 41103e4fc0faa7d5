/**
 * TLS identities: a server's certificate and key, generated and kept when
 * the operator has none, and the SHA-256 fingerprints clients pin.
 *
 * A fingerprint is the SHA-256 of the certificate's DER bytes, the same
 * value `openssl x509 -noout -fingerprint -sha256` prints. sockit prints it
 * as `sha256:` followed by colon-separated upper-case hex, and accepts it
 * back with or without the colons, in either case.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { createPrivateFile, openToOthers } from "../config/_private_file.ts";
import { TlsCertificateError } from "./fingerprint.ts";

/** A certificate chain and its private key, in PEM, with the leaf's fingerprint. */
export interface TlsIdentity {
  /** The certificate chain, leaf first (PEM). */
  cert: string;
  /** The private key (PEM, PKCS #8). */
  key: string;
  /** SHA-256 of the leaf certificate's DER, as 64 lower-case hex digits. */
  fingerprint: string;
}

/** Options for {@linkcode createSelfSigned}. */
export interface SelfSignedOptions {
  /**
   * DNS names and IP addresses the certificate is valid for.
   * @default {["localhost", "127.0.0.1", "::1"]}
   */
  names?: readonly string[];
  /** The subject's common name. @default {"sockit"} */
  commonName?: string;
  /** Start of validity. @default {one hour ago} */
  notBefore?: Date;
  /** End of validity. @default {ten years after notBefore} */
  notAfter?: Date;
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 86_400_000;

x509.cryptoProvider.set(crypto);

function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  const base64 = new Uint8Array(der).toBase64();
  return `-----BEGIN ${label}-----\n${
    base64.match(/.{1,64}/g)!.join("\n")
  }\n-----END ${label}-----\n`;
}

function hex(bytes: ArrayBuffer): string {
  return new Uint8Array(bytes).toHex();
}

function isIp(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.includes(":");
}

/**
 * Makes a new ECDSA P-256 key and a self-signed certificate for it, valid
 * for `names` as a TLS server (not a CA).
 *
 * @param options names, common name and validity
 * @returns the identity
 *
 * @example A certificate for loopback
 * ```ts
 * import { createSelfSigned } from "@sockit/sockit/tls";
 * import { match } from "node:assert/strict";
 *
 * const identity = await createSelfSigned();
 * match(identity.cert, /^-----BEGIN CERTIFICATE-----/);
 * match(identity.fingerprint, /^[0-9a-f]{64}$/);
 * ```
 */
export async function createSelfSigned(options: SelfSignedOptions = {}): Promise<TlsIdentity> {
  const names = options.names ?? ["localhost", "127.0.0.1", "::1"];
  const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + 3650 * DAY);
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0]! &= 0x7f; // a positive serial number
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toHex(),
    name: `CN=${(options.commonName ?? "sockit").replace(/[,+="<>#;\\]/g, "")}`,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((name) => ({ type: isIp(name) ? "ip" as const : "dns" as const, value: name })),
      ),
    ],
  });
  const key = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    cert: pem("CERTIFICATE", cert.rawData),
    key: pem("PRIVATE KEY", key),
    fingerprint: hex(await crypto.subtle.digest("SHA-256", cert.rawData)),
  };
}

function firstCertificate(text: string, source = "the PEM text"): x509.X509Certificate {
  const block = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/);
  if (!block) throw new TlsCertificateError(`Cannot use ${source}: no PEM certificate in it`);
  try {
    return new x509.X509Certificate(block[0]);
  } catch (error) {
    throw new TlsCertificateError(`Cannot use ${source}: the certificate does not parse`, {
      cause: error,
    });
  }
}

/**
 * Loads a certificate chain and key from PEM files, checking that both
 * parse and the certificate is within its validity period.
 *
 * @param certFile the certificate chain, leaf first
 * @param keyFile the private key
 * @returns the identity
 * @throws {TlsCertificateError} when a file is missing, holds no PEM, the key
 *   file can be read by other users (as ssh refuses such keys), or the
 *   certificate has expired or is not valid yet
 *
 * @example Load files written by createSelfSigned
 * ```ts
 * import { createSelfSigned, loadTlsIdentity } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const made = await createSelfSigned();
 * await Deno.writeTextFile(`${dir}/cert.pem`, made.cert);
 * await Deno.writeTextFile(`${dir}/key.pem`, made.key, { mode: 0o600 });
 * const loaded = await loadTlsIdentity(`${dir}/cert.pem`, `${dir}/key.pem`);
 * deepEqual(loaded.fingerprint, made.fingerprint);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadTlsIdentity(certFile: string, keyFile: string): Promise<TlsIdentity> {
  const [cert, key] = await Promise.all([read(certFile), privateFile(keyFile).then(read)]);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new TlsCertificateError(`Cannot use key file "${keyFile}": no PEM private key in it`);
  }
  const leaf = firstCertificate(cert, `certificate file "${certFile}"`);
  const now = new Date();
  if (leaf.notAfter < now || leaf.notBefore > now) {
    throw new TlsCertificateError(
      `Cannot use certificate file "${certFile}": valid from ${leaf.notBefore.toISOString()} ` +
        `to ${leaf.notAfter.toISOString()}, not now`,
    );
  }
  return { cert, key, fingerprint: hex(await crypto.subtle.digest("SHA-256", leaf.rawData)) };
}

async function read(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new TlsCertificateError(`Cannot read "${path}": no such file`, { cause: error });
    }
    throw error;
  }
}

/**
 * Reads the identity kept in `path` (key and certificate in one PEM file,
 * mode 0600), or makes a self-signed one and keeps it there, so that a
 * restarted server keeps its fingerprint and clients that pinned it still
 * connect.
 *
 * @param path the file, such as `defaultConfigPath("tls.pem")`
 * @param options what a new certificate is made with
 * @returns the identity, and whether this call created it
 * @throws {TlsCertificateError} when the file exists but holds no usable identity,
 *   or other users can read it
 *
 * @example Create once, then read back the same fingerprint
 * ```ts
 * import { ensureTlsIdentity } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const first = await ensureTlsIdentity(`${dir}/tls.pem`);
 * const again = await ensureTlsIdentity(`${dir}/tls.pem`);
 * deepEqual([first.created, again.created], [true, false]);
 * deepEqual(again.fingerprint, first.fingerprint);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function ensureTlsIdentity(
  path: string,
  options: SelfSignedOptions = {},
): Promise<TlsIdentity & { created: boolean }> {
  try {
    return { ...await loadTlsIdentity(path, path), created: false };
  } catch (error) {
    if (!(error instanceof TlsCertificateError && error.cause instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
  const made = await createSelfSigned(options);
  const created = await createPrivateFile(path, made.key + made.cert);
  if (created) return { ...made, created };
  // Another process made one meanwhile: use that.
  return { ...await loadTlsIdentity(path, path), created: false };
}

/** Refuses a key file that other users can read, as ssh does. */
async function privateFile(path: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new TlsCertificateError(`Cannot read "${path}": no such file`, { cause: error });
    }
    throw error;
  }
  const unsafe = openToOthers(info);
  if (unsafe) throw new TlsCertificateError(`Cannot use "${path}": ${unsafe}`);
  return path;
}
