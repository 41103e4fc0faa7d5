/**
 * Token authentication: HMAC-SHA-256 proofs bound to fresh nonces.
 *
 * Each side proves it knows the shared token without sending it:
 *
 * ```text
 * proof = HMAC-SHA-256(key = UTF-8(token),
 *                      "sockit/1 " role "\0" service "\0" server_nonce client_nonce)
 * ```
 *
 * where `role` is `client` or `server` and both nonces are 32 random bytes.
 * The server nonce is new for every connection, so a recorded proof is
 * useless on any later connection (a replay fails).
 *
 * @module
 */

import { NONCE_LENGTH } from "./protocol.ts";

/** Which side of the connection a proof comes from. */
export type ProofRole = "client" | "server";

/** Fewest characters a token may have. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Returns {@linkcode NONCE_LENGTH} bytes from the system's secure random source.
 *
 * @returns a fresh nonce
 *
 * @example Two nonces differ
 * ```ts
 * import { createNonce } from "./auth.ts";
 * import { notDeepEqual } from "node:assert/strict";
 *
 * notDeepEqual(createNonce(), createNonce());
 * ```
 */
export function createNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_LENGTH));
}

const encoder = new TextEncoder();

/** The HMAC key for `token`, for signing and verifying. */
function hmacKey(token: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(token),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** The bytes a proof covers: the label, the service and both nonces. */
function proofInput(
  role: ProofRole,
  service: string,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const label = encoder.encode(`sockit/1 ${role}\0${service}\0`);
  const input = new Uint8Array(label.length + serverNonce.length + clientNonce.length);
  input.set(label);
  input.set(serverNonce, label.length);
  input.set(clientNonce, label.length + serverNonce.length);
  return input;
}

/**
 * Computes the proof that `role` knows `token` for one session:
 * HMAC-SHA-256 keyed with the token (Web Crypto, so no Node layer loads).
 *
 * @param token the shared secret
 * @param role which side is proving
 * @param service the service named in the HELLO
 * @param serverNonce the server's nonce from the CHALLENGE
 * @param clientNonce the client's nonce from the HELLO
 * @returns the 32-byte proof
 *
 * @example The client and server proofs differ
 * ```ts
 * import { computeProof } from "./auth.ts";
 * import { notDeepEqual } from "node:assert/strict";
 *
 * const s = new Uint8Array(32), c = new Uint8Array(32).fill(1);
 * const token = "correct horse battery staple";
 * notDeepEqual(
 *   await computeProof(token, "client", "echo", s, c),
 *   await computeProof(token, "server", "echo", s, c),
 * );
 * ```
 */
export async function computeProof(
  token: string,
  role: ProofRole,
  service: string,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Promise<Uint8Array> {
  const signature = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(token),
    proofInput(role, service, serverNonce, clientNonce),
  );
  return new Uint8Array(signature);
}

/**
 * Checks a proof; Web Crypto's HMAC verification compares in constant time.
 *
 * @param token the shared secret
 * @param role which side claims to know it
 * @param service the service named in the HELLO
 * @param serverNonce the server's nonce
 * @param clientNonce the client's nonce
 * @param proof the proof received
 * @returns whether the proof is right
 *
 * @example Verify a proof
 * ```ts
 * import { computeProof, createNonce, verifyProof } from "./auth.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const s = createNonce(), c = createNonce(), token = "0123456789abcdef";
 * const proof = await computeProof(token, "client", "chat", s, c);
 * deepEqual(await verifyProof(token, "client", "chat", s, c, proof), true);
 * deepEqual(await verifyProof(token, "client", "chat", createNonce(), c, proof), false);
 * ```
 */
export async function verifyProof(
  token: string,
  role: ProofRole,
  service: string,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
  proof: Uint8Array,
): Promise<boolean> {
  if (proof.length !== 32) return false;
  return await crypto.subtle.verify(
    "HMAC",
    await hmacKey(token),
    proof.slice(),
    proofInput(role, service, serverNonce, clientNonce),
  );
}
