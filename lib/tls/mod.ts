/**
 * TLS: a server identity ({@linkcode ensureTlsIdentity} makes and keeps a
 * self-signed ECDSA certificate; {@linkcode loadTlsIdentity} reads your own),
 * and client verification by CA, by pinned fingerprint, or by trust on first
 * use in a known-hosts file ({@linkcode connectTls}).
 *
 * Owns: certificates, fingerprints, known hosts. Imports: `net/`, `config/`
 * and `@peculiar/x509` (certificate making only: `fingerprint.ts` and the
 * client load no X.509 code).
 *
 * @example Fingerprints in the form servers print and clients pin
 * ```ts
 * import { formatFingerprint, parseFingerprint } from "@sockit/sockit/tls";
 * import { deepEqual } from "node:assert/strict";
 *
 * const bytes = parseFingerprint("sha256:" + "ab".repeat(32));
 * deepEqual(formatFingerprint(bytes).slice(0, 12), "sha256:AB:AB");
 * ```
 *
 * @module
 */

export {
  createSelfSigned,
  ensureTlsIdentity,
  loadTlsIdentity,
  type SelfSignedOptions,
  type TlsIdentity,
} from "./tls_certificate.ts";
export {
  connectTls,
  type ConnectTlsOptions,
  type TlsClientOptions,
  type TlsVerifyCode,
  TlsVerifyError,
} from "./tls_client.ts";
export {
  certificateFingerprint,
  formatFingerprint,
  parseFingerprint,
  TlsCertificateError,
} from "./fingerprint.ts";
export { checkKnownHost, type KnownHostResult, readKnownHosts } from "./known_hosts.ts";
export { type TcpAddress } from "../net/address.ts";
