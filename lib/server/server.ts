/**
 * The sockit server: listeners on TCP and Unix sockets, the handshake, the
 * limits and timeouts that keep one bad peer from costing anyone else, and
 * graceful shutdown.
 *
 * @module
 */

import { closeQuietly } from "../net/_close.ts";
import type { AccessList } from "./access_list.ts";
import { type Address, DEFAULT_ADDRESS, formatAddress, parseAddress } from "../net/address.ts";
import { type ErrorCode, type ErrorDetails, ProtocolError } from "../protocol/errors.ts";
import { DEFAULT_MAX_FRAME_LENGTH, resolveMaxFrameLength } from "../frame/frame.ts";
import { acceptHandshake } from "./handshake.ts";
import type { Service } from "../protocol/service.ts";
import { DEFAULT_MAX_HANDSHAKE_FRAME, Session, toProtocolError } from "../protocol/session.ts";
import {
  type AdmitResult,
  SourceGuard,
  type SourceGuardOptions,
  sourceOf,
} from "./source_guard.ts";

/** Something that happened on the server, for logs and monitoring. */
export type ServerEvent =
  | { type: "listening"; address: string }
  | { type: "connected"; id: number; remote: string }
  | { type: "refused"; remote: string; code: string }
  | { type: "session"; id: number; remote: string; service: string; authenticated: boolean }
  | { type: "closed"; id: number; remote: string; service: string; reason: string }
  | { type: "tls-failed"; id: number; remote: string; message: string }
  | { type: "error"; id?: number; remote?: string; code: string; message: string }
  | { type: "shutdown"; sessions: number };

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  /**
   * Addresses to listen on: `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`. Port 0
   * picks a free port; {@linkcode Server.addrs} tells which.
   *
   * @default {["127.0.0.1:7070"]}
   */
  listen?: readonly (string | Address)[];
  /** Shared token; when set, every session must prove it. @default {undefined} */
  token?: string | undefined;
  /**
   * Serve TLS (1.2 or 1.3) on the TCP listeners with this certificate chain
   * and key (PEM), such as a `TlsIdentity`. Unix sockets stay plain: only
   * local users reach them, through the file's mode. The TLS handshake
   * counts against `handshakeTimeout`.
   * @default {undefined}
   */
  tls?: { cert: string; key: string } | undefined;
  /** Services offered. @default {[echoService, new ChatRoom()]} (added by `serve`) */
  services?: readonly Service[];
  /**
   * Which peer addresses may connect. A refused peer is sent ERROR `denied`
   * naming the rule, before anything is read from it, and never counts
   * against any other limit. Unix-socket peers are checked as `"unix"`: they
   * pass a list with no allow rules and fail one with allow rules (access
   * lists fail closed). {@linkcode Server.setAccess} replaces the list while
   * the server runs.
   *
   * @default {undefined}
   */
  access?: AccessList | undefined;
  /**
   * Per-source caps and penalties for TCP peers that have not authenticated
   * yet (see {@linkcode SourceGuard}), or `false` for none. A source with
   * `maxPerSource` connections in their handshake is refused with `busy`
   * (detail `maxPerSource`); a source serving a penalty after a wrong token
   * proof is refused with `denied` (detail `retryAfter`, in milliseconds).
   * Unix-socket peers are not guarded: the socket file's mode admits only
   * local users. Given options are applied over the server's defaults: a
   * source may hold half of `maxUnauthenticated` (so one address never
   * takes every handshake slot), and two failed proofs are free before
   * penalties start (like OpenSSH's PerSourcePenalties, which act from the
   * third failure).
   *
   * @default {{ maxPerSource: ceil(maxUnauthenticated / 2), freeFailures: 2 }}
   */
  sourceGuard?: SourceGuardOptions | false;
  /** Connections served at once; more are refused with `busy`. @default {256} */
  maxConnections?: number;
  /**
   * Connections that may be in their handshake at once; more are refused
   * with `busy`, so that silent or slow peers cannot take every slot.
   *
   * @default {min(64, ceil(maxConnections / 4))}
   */
  maxUnauthenticated?: number;
  /** Largest frame payload after the handshake, in bytes. @default {1048576} */
  maxFrame?: number;
  /** Largest frame payload before the handshake completes. @default {16384} */
  maxHandshakeFrame?: number;
  /** Milliseconds from accept to WELCOME; progress does not extend it. @default {10000} */
  handshakeTimeout?: number;
  /** Milliseconds without traffic before a session is closed; 0 for none. @default {300000} */
  idleTimeout?: number;
  /** Milliseconds a frame may stay half-received or a write blocked. @default {30000} */
  stallTimeout?: number;
  /** Milliseconds sessions get to finish after shutdown begins. @default {5000} */
  shutdownGrace?: number;
  /** Milliseconds a closing connection waits for the peer to read the reason. @default {1000} */
  lingerTime?: number;
  /** Called for every {@linkcode ServerEvent}. @default {undefined} */
  onEvent?: ((event: ServerEvent) => void) | undefined;
  /** Aborting it shuts the server down. @default {undefined} */
  signal?: AbortSignal | undefined;
}

/** Refused connections that may linger for the full linger time at once. */
const MAX_LINGERING_REFUSALS = 1024;

function positive(name: string, value: number, allowZero = false): number {
  if (!Number.isSafeInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(
      `Cannot use ${name} "${value}": expected a ${
        allowZero ? "non-negative" : "positive"
      } integer`,
    );
  }
  return value;
}

/**
 * Listens on a TCP address; an OS error becomes the same class with the
 * address in its message: `Cannot listen on "127.0.0.1:7070": address
 * already in use`.
 */
function listenTcp(
  address: Extract<Address, { transport: "tcp" }>,
  tls: ServeOptions["tls"],
): Deno.Listener {
  const { hostname, port } = address;
  try {
    return tls
      ? Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key })
      : Deno.listen({ hostname, port });
  } catch (error) {
    throw listenFailure(formatAddress(address), error);
  }
}

/** What the OS said, in words, with the address; the error keeps its class and its cause. */
function listenFailure(where: string, error: unknown): unknown {
  const why = error instanceof Deno.errors.AddrInUse
    ? "address already in use"
    : error instanceof Deno.errors.AddrNotAvailable
    ? "no interface of this machine has that address"
    : error instanceof Deno.errors.PermissionDenied
    ? "permission denied by the system (ports below 1024 need privileges)"
    : error instanceof Deno.errors.NotFound
    ? "its directory does not exist"
    : undefined;
  if (why === undefined || !(error instanceof Error)) return error;
  const Class = error.constructor as new (message: string, options: ErrorOptions) => Error;
  return new Class(`Cannot listen on "${where}": ${why}`, { cause: error });
}

async function listenUnix(path: string): Promise<Deno.Listener> {
  try {
    return Deno.listen({ transport: "unix", path });
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw listenFailure(`unix:${path}`, error);
  }
  const info = await Deno.lstat(path);
  if (!info.isSocket) {
    throw new Deno.errors.AddrInUse(
      `Cannot listen on "unix:${path}": the path exists and is not a socket`,
    );
  }
  try {
    const probe = await Deno.connect({ transport: "unix", path });
    probe.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
    // Nobody listens: a socket file left by a crash. Replace it.
    await Deno.remove(path);
    return Deno.listen({ transport: "unix", path });
  }
  throw new Deno.errors.AddrInUse(
    `Cannot listen on "unix:${path}": another server is listening there`,
  );
}

/**
 * A running server. Dispose of it (`await using`) or call
 * {@linkcode Server.shutdown} to stop it.
 *
 * @example Start, inspect and stop a server
 * ```ts
 * import { serve } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const server = await serve({ listen: ["127.0.0.1:0"] });
 * deepEqual(server.addrs[0]?.transport, "tcp");
 * await server.shutdown();
 * ```
 */
export class Server implements AsyncDisposable {
  /** The addresses listened on, with the real port where 0 was asked for. */
  readonly addrs: readonly Address[];
  /** Resolves once the server has shut down and every connection is closed. */
  readonly finished: Promise<void>;
  readonly #listeners: Deno.Listener[];
  readonly #services: ReadonlyMap<string, Service>;
  readonly #token: string | undefined;
  readonly #maxConnections: number;
  readonly #maxFrame: number;
  readonly #maxHandshakeFrame: number;
  readonly #handshakeTimeout: number;
  readonly #idleTimeout: number;
  readonly #stallTimeout: number;
  readonly #shutdownGrace: number;
  readonly #lingerTime: number;
  readonly #onEvent: (event: ServerEvent) => void;
  readonly #maxUnauthenticated: number;
  readonly #guard: SourceGuard | undefined;
  #access: AccessList | undefined;
  readonly #sessions = new Set<Session>();
  /** Sessions that have not been welcomed yet. */
  readonly #handshaking = new Set<Session>();
  /** Sessions still in their TLS handshake: nothing can be written to them yet. */
  readonly #tlsHandshaking = new Set<Session>();
  readonly #refusing = new Set<Promise<void>>();
  readonly #acceptLoops: Promise<void>[];
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #unixPaths: string[];
  #nextId = 0;
  #stopping = false;
  #shutdown: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #resolveFinished!: () => void;

  /** Use {@linkcode serve}. */
  constructor(
    listeners: Deno.Listener[],
    unixPaths: string[],
    options: ServeOptions & { services: readonly Service[] },
  ) {
    this.#listeners = listeners;
    this.#unixPaths = unixPaths;
    this.addrs = listeners.map((l) => parseAddress(formatAddress(l.addr)));
    this.#services = new Map(options.services.map((s) => [s.name, s]));
    this.#token = options.token;
    this.#maxConnections = positive("maxConnections", options.maxConnections ?? 256);
    // Every message has a type byte: a limit of 0 would allow nothing.
    this.#maxFrame = positive(
      "maxFrame",
      resolveMaxFrameLength(options.maxFrame ?? DEFAULT_MAX_FRAME_LENGTH),
    );
    this.#maxHandshakeFrame = Math.min(
      resolveMaxFrameLength(options.maxHandshakeFrame ?? DEFAULT_MAX_HANDSHAKE_FRAME),
      this.#maxFrame,
    );
    this.#handshakeTimeout = positive("handshakeTimeout", options.handshakeTimeout ?? 10_000);
    this.#idleTimeout = positive("idleTimeout", options.idleTimeout ?? 300_000, true);
    this.#stallTimeout = positive("stallTimeout", options.stallTimeout ?? 30_000);
    this.#shutdownGrace = positive("shutdownGrace", options.shutdownGrace ?? 5_000, true);
    this.#lingerTime = positive("lingerTime", options.lingerTime ?? 1_000, true);
    this.#onEvent = options.onEvent ?? (() => {});
    this.#maxUnauthenticated = positive(
      "maxUnauthenticated",
      options.maxUnauthenticated ?? Math.min(64, Math.ceil(this.#maxConnections / 4)),
    );
    this.#access = options.access;
    this.#guard = options.sourceGuard === false ? undefined : new SourceGuard({
      maxPerSource: Math.ceil(this.#maxUnauthenticated / 2),
      freeFailures: 2,
      ...options.sourceGuard,
    });
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
    const shortest = Math.min(
      this.#handshakeTimeout,
      this.#stallTimeout,
      this.#idleTimeout || Infinity,
    );
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, Math.min(1000, shortest / 4)));
    for (const addr of this.addrs) {
      this.#emit({ type: "listening", address: formatAddress(addr) });
    }
    this.#acceptLoops = listeners.map((l) => this.#acceptLoop(l));
    options.signal?.addEventListener("abort", () => this.shutdown(), { once: true });
  }

  /**
   * Reports an event. A failing event handler (a closed log pipe, say) must
   * not take the server down, and there is nowhere left to report it to, so
   * its error is dropped.
   */
  #emit(event: ServerEvent): void {
    try {
      this.#onEvent(event);
    } catch {
      // Deliberately ignored: see above.
    }
  }

  /** Connections still in their handshake (not yet authenticated). */
  #unauthenticated(): number {
    // At most maxUnauthenticated members: the walk stays short.
    let n = 0;
    for (const session of this.#handshaking) {
      // Aborted ones are closing within the linger time; they do not count.
      if (!session.abortError) n++;
    }
    return n;
  }

  /**
   * Replaces the access list for connections accepted from now on, as on a
   * configuration reload (SIGHUP). Sessions already established, or already
   * past the check, are never dropped: a list that starts denying an address
   * only keeps its new connections out. `undefined` allows every peer.
   *
   * @param access the new list, or `undefined` for none
   *
   * @example Deny a network while running, then lift it
   * ```ts
   * import { AccessList, connect, RemoteError, serve } from "@sockit/sockit";
   * import { ok, rejects } from "node:assert/strict";
   *
   * await using server = await serve({ listen: ["127.0.0.1:0"] });
   * server.setAccess(AccessList.from({ deny: ["127.0.0.0/8"] }));
   * await rejects(
   *   connect(server.addrs[0]!),
   *   (error) => error instanceof RemoteError && error.code === "denied",
   * );
   * server.setAccess(undefined);
   * await using session = await connect(server.addrs[0]!);
   * ok(session.welcome);
   * ```
   */
  setAccess(access: AccessList | undefined): void {
    this.#access = access;
  }

  /** Connections being served now (refused ones not counted). */
  get connections(): number {
    return this.#sessions.size;
  }

  /** Accepts connections from one listener until the server stops. */
  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    const failures = new AcceptFailures((message) =>
      this.#emit({ type: "error", code: "accept_failed", message })
    );
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#stopping || error instanceof Deno.errors.BadResource) return;
        // EMFILE and the like: report, pause briefly, keep serving.
        failures.failed(error);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      failures.recovered();
      if (this.#stopping) {
        conn.close();
        return;
      }
      this.#admit(conn);
    }
  }

  /**
   * Admits an accepted connection or refuses it: the access list first, then
   * the server's capacity, then the source guard; an admitted connection is
   * handed over to its session.
   */
  #admit(conn: Deno.Conn): void {
    const tcp = "hostname" in conn.remoteAddr;
    // Unix-socket peers have no address; AccessList knows them as "unix".
    const host = tcp ? (conn.remoteAddr as Deno.NetAddr).hostname : "unix";
    // The access list comes first: it keeps no state and costs a few
    // comparisons, and a denied peer must not take or count against any
    // slot, nor learn how busy the server is.
    const refusal = this.#accessRefusal(host, tcp) ?? this.#capacityRefusal();
    if (refusal) {
      this.#refuse(conn, refusal.code, refusal.why, refusal.details);
      return;
    }
    // The source guard comes after the global caps, so that it counts only
    // connections that will really be served: one refused for a global
    // reason never touches its table. Its per-source cap then keeps one
    // source from filling maxUnauthenticated.
    let release: (() => void) | undefined;
    if (this.#guard && tcp) {
      const admitted = this.#guard.admit(host);
      if (!admitted.ok) {
        this.#refuseSource(conn, host, admitted);
        return;
      }
      release = admitted.release;
    }
    this.#serveConnection(conn, host, release).catch((error) => {
      this.#emit({ type: "error", code: "internal", message: String(error) });
    });
  }

  /** Why the access list turns `host` away, or undefined when it may connect. */
  #accessRefusal(host: string, tcp: boolean): Refusal | undefined {
    const decision = this.#access?.check(host);
    if (!decision || decision.allowed) return undefined;
    const who = tcp ? `"${host}"` : "a Unix-socket peer";
    const why = decision.reason === "denied"
      ? `${who} is denied by "${decision.rule}"`
      : `${who} is denied: ${decision.rule}`;
    return { code: "denied", why, details: { rule: decision.rule } };
  }

  /** Why the server has no room for another connection, or undefined when it has. */
  #capacityRefusal(): Refusal | undefined {
    if (this.#sessions.size >= this.#maxConnections) {
      return {
        code: "busy",
        why: `all ${this.#maxConnections} connection slots are in use`,
        details: { maxConnections: this.#maxConnections },
      };
    }
    // Like OpenSSH's MaxStartups: connections that have not authenticated
    // get only part of the slots, so silent ones cannot lock out real users.
    if (this.#unauthenticated() >= this.#maxUnauthenticated) {
      return {
        code: "busy",
        why: `${this.#maxUnauthenticated} connections are already in their handshake`,
        details: { maxUnauthenticated: this.#maxUnauthenticated },
      };
    }
    return undefined;
  }

  /** Refuses a connection that the source guard did not admit. */
  #refuseSource(
    conn: Deno.Conn,
    host: string,
    refusal: Extract<AdmitResult, { ok: false }>,
  ): void {
    const source = sourceOf(host);
    if (refusal.reason === "penalty") {
      const retryAfter = refusal.retryAfter ?? 0;
      const seconds = Math.ceil(retryAfter / 1000);
      const why = `authentication failed from "${source}"; retry in ${seconds} s`;
      this.#refuse(conn, "denied", why, { retryAfter });
      return;
    }
    const limit = refusal.limit ?? 0;
    if (limit === this.#guard?.maxPerSource) {
      const why = `${limit} connections from "${source}" are already in their handshake`;
      this.#refuse(conn, "busy", why, { maxPerSource: limit });
    } else {
      // The guard's table is full of sources with connections in flight.
      const why = `${limit} sources already have connections in their handshake`;
      this.#refuse(conn, "busy", why, { maxSources: limit });
    }
  }

  #refuse(conn: Deno.Conn, code: ErrorCode, why: string, details: ErrorDetails): void {
    const remote = formatAddress(conn.remoteAddr);
    this.#emit({ type: "refused", remote, code });
    // A refused peer normally reads the reason and closes within a round
    // trip. Past the cap, peers that do not are given only a short linger.
    const crowded = this.#refusing.size >= MAX_LINGERING_REFUSALS;
    const session = new Session(conn, 0, remote, {
      lingerTime: crowded ? Math.min(50, this.#lingerTime) : this.#lingerTime,
    });
    session.abort(new ProtocolError(code, `Cannot accept connection: ${why}`, details));
    const done: Promise<void> = session.finish().catch((error) => {
      this.#emit({ type: "error", remote, code: "internal", message: String(error) });
    }).finally(() => this.#refusing.delete(done));
    this.#refusing.add(done);
  }

  /**
   * Serves one accepted connection. `release` gives back its source guard
   * slot; it is called once, when the session is welcomed or closes.
   */
  async #serveConnection(
    conn: Deno.Conn,
    host: string,
    release: (() => void) | undefined,
  ): Promise<void> {
    const session = this.#openSession(conn);
    const guard = release ? this.#guard : undefined;
    const leaveHandshake = () => {
      this.#handshaking.delete(session);
      release?.();
      release = undefined;
    };
    const reason = await this.#runSession(session, conn, { host, guard, leaveHandshake });
    await this.#closeSession(session, reason, leaveHandshake);
  }

  /** Makes and registers the session of an admitted connection, in its handshake. */
  #openSession(conn: Deno.Conn): Session {
    const id = ++this.#nextId;
    const remote = formatAddress(conn.remoteAddr);
    const session = new Session(conn, id, remote, {
      maxHandshakeFrame: this.#maxHandshakeFrame,
      lingerTime: this.#lingerTime,
    });
    session.deadline = performance.now() + this.#handshakeTimeout;
    this.#sessions.add(session);
    this.#handshaking.add(session);
    this.#emit({ type: "connected", id, remote });
    return session;
  }

  /**
   * Runs the TLS handshake if any, the protocol handshake and the chosen
   * service; returns the reason the session ended as far as it knows
   * (`"eof"` unless TLS failed or an error came that the peer cannot be told).
   */
  async #runSession(session: Session, conn: Deno.Conn, handover: Handover): Promise<string> {
    const { host, guard, leaveHandshake } = handover;
    try {
      if (isTls(conn)) {
        if (!await this.#tlsHandshake(session, conn)) throw new TlsFailed();
      } else if (conn.remoteAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
      const accepted = await acceptHandshake(session, {
        services: this.#services,
        token: this.#token,
        maxFrame: this.#maxFrame,
        idleTimeout: this.#idleTimeout,
        stallTimeout: this.#stallTimeout,
        onProof: guard &&
          ((valid) => valid ? guard.authSucceeded(host) : guard.authFailed(host)),
      });
      await accepted.service.handle(session, async () => {
        await accepted.welcome();
        leaveHandshake();
        this.#emit({
          type: "session",
          id: session.id,
          remote: session.remote,
          service: session.service,
          authenticated: accepted.authenticated,
        });
      });
      return "eof";
    } catch (error) {
      if (error instanceof TlsFailed) {
        // Nothing can be told to a peer that does not speak TLS.
        session.destroy();
        return "tls_failed";
      }
      const told = toProtocolError(error);
      if (!told) return error instanceof Error ? error.name : "error";
      session.abort(told);
      if (told.code === "internal") {
        const { id, remote } = session;
        this.#emit({ type: "error", id, remote, code: "internal", message: String(error) });
      }
      return "eof";
    }
  }

  /** Waits for the session to close, forgets it and reports why it ended. */
  async #closeSession(session: Session, reason: string, leaveHandshake: () => void): Promise<void> {
    const { id, remote } = session;
    try {
      await session.finish();
    } catch (error) {
      this.#emit({ type: "error", id, remote, code: "internal", message: String(error) });
      session.destroy();
    } finally {
      if (session.abortError) reason = session.abortError.code;
      this.#sessions.delete(session);
      leaveHandshake();
    }
    if (session.closeError !== undefined) {
      // Closing failed for a reason other than the peer going away: a bug
      // worth a line, though the connection is closed either way.
      this.#emit({
        type: "error",
        id,
        remote,
        code: "internal",
        message: `closing failed: ${String(session.closeError)}`,
      });
    }
    this.#emit({ type: "closed", id, remote, service: session.service, reason });
    if (this.#sessions.size === 0) this.#drained?.();
  }

  /** Runs the TLS handshake; reports and returns false when it fails. */
  async #tlsHandshake(session: Session, conn: Deno.TlsConn): Promise<boolean> {
    this.#tlsHandshaking.add(session);
    try {
      await conn.handshake();
      return true;
    } catch (error) {
      const timedOut = performance.now() >= session.deadline;
      this.#emit({
        type: "tls-failed",
        id: session.id,
        remote: session.remote,
        message: timedOut
          ? `no TLS handshake within ${this.#handshakeTimeout} ms`
          : tlsFailure(error),
      });
      return false;
    } finally {
      this.#tlsHandshaking.delete(session);
    }
  }

  #sweep(): void {
    const now = performance.now();
    for (const session of this.#sessions) {
      if (session.abortError) continue;
      session.noteActivity(now);
      let error: ProtocolError | undefined;
      if (now >= session.deadline && this.#tlsHandshaking.has(session)) {
        // An error frame cannot be sent before TLS is up: just close.
        session.destroy();
        continue;
      }
      if (now >= session.deadline) {
        error = new ProtocolError(
          "handshake_timeout",
          `Cannot start session: handshake not completed within ${this.#handshakeTimeout} ms`,
          { handshakeTimeout: this.#handshakeTimeout },
        );
      } else if (
        session.writer.inFlight > 0 && now - session.lastWrite > this.#stallTimeout &&
        now - session.lastRead > this.#stallTimeout
      ) {
        // A peer that reads nothing but keeps talking (an exec client whose
        // own output is paused, pinging) is slow, not gone; its service
        // bounds what it holds.
        error = new ProtocolError(
          "write_stall",
          `Cannot deliver data: peer read nothing for ${this.#stallTimeout} ms`,
          { stallTimeout: this.#stallTimeout },
        );
      } else if (
        session.reader.buffered > 0 && !session.reader.hasFrame &&
        now - session.lastRead > this.#stallTimeout
      ) {
        error = new ProtocolError(
          "frame_stall",
          `Cannot read frame: no bytes of it for ${this.#stallTimeout} ms`,
          { stallTimeout: this.#stallTimeout },
        );
      } else if (
        this.#idleTimeout > 0 && session.deadline === Infinity &&
        now - Math.max(session.lastRead, session.lastWrite) > this.#idleTimeout
      ) {
        error = new ProtocolError(
          "idle_timeout",
          `Cannot keep session: idle for ${this.#idleTimeout} ms`,
          { idleTimeout: this.#idleTimeout },
        );
      }
      if (error) session.abort(error);
    }
  }

  /**
   * Stops accepting, lets sessions finish what they hold (idle ones are told
   * at once that the server is shutting down), closes whatever is left after
   * the grace period, and resolves when everything is closed. Calling it
   * again returns the same promise.
   *
   * @returns a promise that resolves when the server has stopped
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop();
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    for (const listener of this.#listeners) {
      closeQuietly(listener);
    }
    await Promise.all(this.#acceptLoops);
    for (const path of this.#unixPaths) {
      await Deno.remove(path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
    this.#emit({ type: "shutdown", sessions: this.#sessions.size });
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve;
      if (this.#sessions.size === 0) resolve();
    });
    for (const session of this.#sessions) session.stop();
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, this.#shutdownGrace);
    });
    await Promise.race([drained, graceOver]);
    clearTimeout(graceTimer);
    for (const session of this.#sessions) session.destroy();
    await drained;
    await Promise.all(this.#refusing);
    clearInterval(this.#sweeper);
    this.#resolveFinished();
  }

  /** Shuts the server down; see {@linkcode Server.shutdown}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/**
 * Starts a server offering exactly `options.services` on every address in
 * `options.listen`: the core of {@linkcode serve}, which knows no concrete
 * service (`serve` in `serve.ts` adds the default echo and chat).
 *
 * @param options addresses, services, token and limits
 * @returns the running server
 */
export async function startServer(
  options: ServeOptions & { readonly services: readonly Service[] },
): Promise<Server> {
  const addresses = (options.listen ?? [DEFAULT_ADDRESS]).map((a) =>
    typeof a === "string" ? parseAddress(a) : a
  );
  const services = options.services;
  const guarded = services.find((s) => s.requiresToken);
  if (guarded && options.token === undefined) {
    throw new TypeError(
      `Cannot serve "${guarded.name}" without a token: it runs only for clients that prove one`,
    );
  }
  const listeners: Deno.Listener[] = [];
  const unixPaths: string[] = [];
  try {
    for (const address of addresses) {
      if (address.transport === "unix") {
        listeners.push(await listenUnix(address.path));
        unixPaths.push(address.path);
        await Deno.chmod(address.path, 0o600);
      } else {
        listeners.push(listenTcp(address, options.tls));
      }
    }
    return new Server(listeners, unixPaths, { ...options, services });
  } catch (error) {
    for (const listener of listeners) listener.close();
    for (const path of unixPaths) await Deno.remove(path).catch(() => {});
    throw error;
  }
}

/** At most one `accept_failed` report per this many milliseconds while accepts keep failing. */
const ACCEPT_FAILURE_REPORT_INTERVAL = 10_000;

/**
 * The accept failures of one listener (EMFILE and the like), reported as
 * they last: one line per {@linkcode ACCEPT_FAILURE_REPORT_INTERVAL} with
 * the count, not one per retry, and one when accepting works again.
 */
class AcceptFailures {
  readonly #report: (message: string) => void;
  /** Failures since the last report. */
  #failures = 0;
  /** When the last report was made; -Infinity when accepts are working. */
  #reported = -Infinity;

  constructor(report: (message: string) => void) {
    this.#report = report;
  }

  /** Counts a failed accept, and reports it when a report is due. */
  failed(error: unknown): void {
    const now = performance.now();
    this.#failures++;
    if (now - this.#reported >= ACCEPT_FAILURE_REPORT_INTERVAL) {
      const failures = this.#failures;
      const more = failures > 1 ? ` (${failures} failed accepts in the last period)` : "";
      this.#report(String(error) + more);
      this.#reported = now;
      this.#failures = 0;
    }
  }

  /** Notes a successful accept; after failures, reports the recovery. */
  recovered(): void {
    if (this.#failures === 0 && this.#reported === -Infinity) return;
    if (this.#failures > 0) {
      this.#report(`accepting again after ${this.#failures} more failed accepts`);
    }
    this.#failures = 0;
    this.#reported = -Infinity;
  }
}

/** Why a connection is refused: the ERROR it is sent. */
interface Refusal {
  code: ErrorCode;
  why: string;
  details: ErrorDetails;
}

/** What a session needs from its admission: the source guard and its slot. */
interface Handover {
  /** The peer's address as the source guard knows it. */
  host: string;
  /** The source guard, when it admitted this connection. */
  guard: SourceGuard | undefined;
  /** Leaves the handshake: frees its slots; idempotent. */
  leaveHandshake: () => void;
}

/** A TLS handshake failed: the session ends without an error frame. */
class TlsFailed extends Error {}

function isTls(conn: Deno.Conn): conn is Deno.TlsConn {
  return "handshake" in conn;
}

/** The reason a TLS handshake failed, in words for the log. */
function tlsFailure(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return /corrupt message|InvalidContentType|invalid ?message/i.test(text)
    ? `the client does not speak TLS (${text})`
    : text;
}
