/**
 * The server's side of the version 1 handshake: HELLO, optional
 * CHALLENGE/AUTH, then WELCOME or ERROR.
 *
 * @module
 */

import { computeProof, createNonce, verifyProof } from "../protocol/auth.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { FrameTooLargeError } from "../frame/frame.ts";
import {
  bytesField,
  chooseVersion,
  decodeControl,
  MessageType,
  parseHello,
  SUPPORTED_VERSIONS,
} from "../protocol/protocol.ts";
import type { Service } from "../protocol/service.ts";
import type { Session } from "../protocol/session.ts";

/** What the server's handshake needs to know. */
export interface AcceptOptions {
  /** Services by name. */
  services: ReadonlyMap<string, Service>;
  /** The shared token; when set, every session must prove it. */
  token?: string | undefined;
  /** Largest frame payload accepted after the handshake. */
  maxFrame: number;
  /** Idle timeout in milliseconds announced in WELCOME (0 = none). */
  idleTimeout: number;
  /** Write-stall timeout in milliseconds announced in WELCOME. @default {undefined} */
  stallTimeout?: number | undefined;
  /**
   * Called once the client's token proof has been checked: with `false` just
   * before the handshake fails with `auth_failed`, with `true` when the proof
   * is right. A server uses it for per-source penalties. Not called without a
   * token, nor when the AUTH message is malformed or never comes.
   *
   * @default {undefined}
   */
  onProof?: ((valid: boolean) => void) | undefined;
}

/** The outcome of a successful handshake, before WELCOME is sent. */
export interface Accepted {
  /** The service asked for. */
  service: Service;
  /** Whether the client proved the token. */
  authenticated: boolean;
  /** Sends WELCOME and lifts the frame limit to `maxFrame`. */
  welcome: () => Promise<void>;
}

/**
 * A TLS record starts with its content type (22 for a handshake) and major
 * version 3: read as a frame header, a ClientHello declares 0x1603xxxx bytes.
 */
function isTlsRecordHeader(frameLength: number): boolean {
  return frameLength >>> 24 === 0x16 && (frameLength >>> 16 & 0xff) === 0x03;
}

async function readControl(session: Session, type: number, stage: string) {
  let payload: Uint8Array | null;
  try {
    payload = await session.read();
  } catch (error) {
    if (error instanceof FrameTooLargeError && isTlsRecordHeader(error.frameLength)) {
      throw new ProtocolError(
        "bad_handshake",
        "Cannot start session: the client began a TLS handshake, and this port serves plain " +
          "sockit (start the server with TLS, or connect without it)",
        { tls: true },
        { cause: error },
      );
    }
    throw error;
  }
  if (payload === null) {
    throw new ProtocolError("bad_handshake", `Cannot start session: peer closed before ${stage}`);
  }
  if (payload[0] !== type) {
    throw new ProtocolError(
      "bad_handshake",
      `Cannot start session: expected ${stage}, got message type ${payload[0] ?? "(empty frame)"}`,
      { expected: type, got: payload[0] ?? -1 },
    );
  }
  return decodeControl(payload);
}

/**
 * Runs the server's side of the handshake on a fresh session.
 *
 * @param session the connection
 * @param options services, token and limits
 * @returns the chosen service and a function that sends WELCOME
 * @throws {ProtocolError} with the code to send when the client is refused
 *
 * @example Accept on an accepted connection
 * ```ts ignore
 * const { service, welcome } = await acceptHandshake(session, {
 *   services: new Map([["echo", echoService]]),
 *   maxFrame: 1 << 20,
 *   idleTimeout: 300_000,
 * });
 * await service.handle(session, welcome);
 * ```
 */
export async function acceptHandshake(
  session: Session,
  options: AcceptOptions,
): Promise<Accepted> {
  const hello = parseHello(await readControl(session, MessageType.Hello, "HELLO"));
  const version = chooseVersion(hello.versions);
  if (version === undefined) {
    throw new ProtocolError(
      "unsupported_version",
      `Cannot start session: no common protocol version (offered ${
        hello.versions.join(", ")
      }; supported ${SUPPORTED_VERSIONS.join(", ")})`,
      { supported: [...SUPPORTED_VERSIONS] },
    );
  }
  const { token } = options;
  let serverProof: Uint8Array | undefined;
  if (token !== undefined) {
    const serverNonce = createNonce();
    await session.sendControl(MessageType.Challenge, {
      version,
      auth: "hmac-sha256",
      nonce: serverNonce.toBase64(),
    });
    const auth = await readControl(session, MessageType.Auth, "AUTH");
    const proof = bytesField(auth, "proof", 32);
    const valid = await verifyProof(
      token,
      "client",
      hello.service,
      serverNonce,
      hello.nonce,
      proof,
    );
    options.onProof?.(valid);
    if (!valid) throw new ProtocolError("auth_failed", "Cannot authenticate: wrong token proof");
    serverProof = await computeProof(token, "server", hello.service, serverNonce, hello.nonce);
  }
  const service = options.services.get(hello.service);
  if (service === undefined) {
    throw new ProtocolError(
      "unknown_service",
      `Cannot start session: unknown service "${hello.service}"`,
      { service: hello.service, available: [...options.services.keys()].join(",") },
    );
  }
  session.service = hello.service;
  session.params = hello.params;
  session.authenticated = token !== undefined;
  return {
    service,
    authenticated: token !== undefined,
    welcome: () => {
      session.deadline = Infinity;
      session.reader.maxFrameLength = options.maxFrame;
      const body: Record<string, unknown> = {
        version,
        service: hello.service,
        maxFrame: options.maxFrame,
        idleTimeout: options.idleTimeout,
      };
      if (options.stallTimeout !== undefined) body.stallTimeout = options.stallTimeout;
      if (serverProof) body.proof = serverProof.toBase64();
      return session.sendControl(MessageType.Welcome, body);
    },
  };
}
