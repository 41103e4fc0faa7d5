/**
 * `sockit server`: parses its flags and runs the library's server.
 *
 * Three steps, in this order: {@linkcode planServer} checks every flag and
 * touches nothing; the permission check and {@linkcode readServerInputs} read
 * what the plan names (access file, token, where the generated files go);
 * only then {@linkcode startServer} makes files (upload area, TLS identity,
 * token) and listens.
 *
 * @module
 */

import { type Address, formatAddress, parseAddress, type TcpAddress } from "../net/address.ts";
import { AccessList, parseAccessFile } from "../server/access_list.ts";
import { defaultConfigPath } from "../config/config_path.ts";
import type { ExecServiceOptions } from "../exec/exec_service.ts";
import type { TlsIdentity } from "../tls/tls_certificate.ts";
import { defaultTokenPath, ensureToken, loadToken } from "../config/token.ts";
import { parseDuration, parseSize } from "../text/units.ts";
import type { Server, ServerEvent } from "../server/server.ts";
import type { UdpEvent } from "../udp/udp_server.ts";
import type { Service } from "../protocol/service.ts";
import {
  type PermissionNeed,
  requirePermissions,
  revokeExcept,
} from "../permissions/permissions.ts";
import { SERVER_OPTIONS, SERVER_USAGE } from "./usage.ts";
import {
  count,
  describe,
  envReadable,
  flag,
  frameSize,
  list,
  parse,
  period,
  print,
  readFlagFile,
  UsageError,
} from "./common.ts";

/** The server's flags as parsed. */
export type ServerValues = ReturnType<typeof parse<typeof SERVER_OPTIONS>>["values"];

/** Every server flag, parsed and checked; nothing is touched to make it. */
export interface ServerPlan {
  /** Where to listen: TCP addresses and Unix socket paths. */
  readonly listen: Address[];
  /** The flags that decide the permissions ({@linkcode serverNeeds}, {@linkcode serverKeeps}). */
  readonly flags: ServerFlags;
  /** The exec service's options; `undefined` without --exec. */
  readonly exec: ExecServiceOptions | undefined;
  /** The upload directory and its file size limit; `undefined` without --upload-dir. */
  readonly upload: UploadPlan | undefined;
  /** Where the TLS identity comes from; `undefined` for plain TCP. */
  readonly tls: ServerTlsPlan | undefined;
  /** The access rules of --allow and --deny (checked), and the --allow-file to add. */
  readonly access: AccessPlan;
  /** --token-file. */
  readonly tokenFile: string | undefined;
  /** Whether a service that needs a token runs (exec, upload): one is generated if none is given. */
  readonly guarded: boolean;
  /** --json: events as NDJSON on stdout. */
  readonly json: boolean;
  /** The server's limits; `undefined` keeps the library's default. */
  readonly limits: ServerLimits;
  /** The UDP echo sockets; `undefined` without --udp. */
  readonly udp: UdpPlan | undefined;
}

/** The TLS identity: the given files, or a self-signed one for these names. */
export type ServerTlsPlan =
  | { readonly kind: "files"; readonly cert: string; readonly key: string }
  | { readonly kind: "self-signed"; readonly names: readonly string[] };

/** The access rules from the command line, and the file to read more from. */
export interface AccessPlan {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  readonly file: string | undefined;
}

/** The limits of `serve`, from their flags. */
export interface ServerLimits {
  readonly maxConnections: number | undefined;
  readonly maxUnauthenticated: number | undefined;
  readonly maxFrame: number | undefined;
  readonly maxHandshakeFrame: number | undefined;
  readonly handshakeTimeout: number | undefined;
  readonly idleTimeout: number | undefined;
  readonly stallTimeout: number | undefined;
  readonly shutdownGrace: number | undefined;
  readonly sourceGuard: { readonly maxPerSource: number } | undefined;
}

/** The UDP echo sockets and their limits. */
export interface UdpPlan {
  readonly listen: TcpAddress[];
  readonly maxDatagram: number | undefined;
  readonly rate: number | undefined;
  readonly burst: number | undefined;
}

export async function serverCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, SERVER_OPTIONS, SERVER_USAGE);
  if (values.help) {
    print(Deno.stdout, SERVER_USAGE);
    return 0;
  }
  // Every flag is checked before anything is read, made or bound.
  const plan = planServer(values, positionals);
  requirePermissions(serverNeeds(plan.listen, plan.flags), { action: "start the server" });
  const inputs = await readServerInputs(plan);
  const running = await startServer(plan, inputs);
  await runServer(plan, running);
  return 0;
}

/**
 * Checks every server flag and every combination of them, and returns what
 * to do; it reads, makes and binds nothing.
 *
 * @throws {UsageError} for a bad value or combination
 */
export function planServer(values: ServerValues, positionals: readonly string[]): ServerPlan {
  const u = SERVER_USAGE;
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`, u);
  }
  const listen = (values.listen ?? ["127.0.0.1:7070"]).map((a) =>
    flag(u, "listen", a, parseAddress)!
  );
  const exec = planExec(values);
  const upload = planUpload(values);
  const tls = planTls(values, listen);
  const access = planAccess(values);
  const maxPerSource = flag(u, "max-per-source", values["max-per-source"], count);
  const limits: ServerLimits = {
    maxConnections: flag(u, "max-conns", values["max-conns"], count),
    maxUnauthenticated: flag(u, "max-startups", values["max-startups"], count),
    maxFrame: flag(u, "max-frame", values["max-frame"], frameSize),
    maxHandshakeFrame: flag(u, "max-handshake-frame", values["max-handshake-frame"], frameSize),
    handshakeTimeout: flag(u, "handshake-timeout", values["handshake-timeout"], period),
    idleTimeout: flag(u, "idle-timeout", values["idle-timeout"], parseDuration),
    stallTimeout: flag(u, "stall-timeout", values["stall-timeout"], period),
    shutdownGrace: flag(u, "shutdown-grace", values["shutdown-grace"], parseDuration),
    sourceGuard: maxPerSource === undefined ? undefined : { maxPerSource },
  };
  return {
    listen,
    flags: values,
    exec,
    upload,
    tls,
    access,
    tokenFile: values["token-file"],
    guarded: exec !== undefined || upload !== undefined,
    json: values.json ?? false,
    limits,
    udp: planUdp(values),
  };
}

function planExec(values: ServerValues): ExecServiceOptions | undefined {
  const u = SERVER_USAGE;
  const execOnly = ["exec-allow", "exec-env-allow", "exec-max", "exec-timeout"] as const;
  const stray = execOnly.find((name) => values[name] !== undefined);
  if (!values.exec && stray) throw new UsageError(`--${stray} needs --exec`, u);
  if (!values.exec) return undefined;
  return {
    allow: list(values["exec-allow"]),
    envAllow: list(values["exec-env-allow"]) ?? [],
    maxConcurrent: flag(u, "exec-max", values["exec-max"], count) ?? 64,
    timeout: flag(u, "exec-timeout", values["exec-timeout"], period) ?? 3_600_000,
  };
}

/** The upload directory and what it accepts. */
interface UploadPlan {
  readonly dir: string;
  readonly maxFileSize: number | undefined;
  /** Free space to keep, from --min-free; `undefined` for the store's default. */
  readonly minFree: { readonly reserveBytes: number; readonly reservePercent: number } | undefined;
  readonly portableNames: boolean;
}

function planUpload(values: ServerValues): UploadPlan | undefined {
  const dir = values["upload-dir"];
  for (const name of ["max-upload-size", "min-free", "portable-names"] as const) {
    if (values[name] !== undefined && dir === undefined) {
      throw new UsageError(`--${name} needs --upload-dir`, SERVER_USAGE);
    }
  }
  if (dir === undefined) return undefined;
  return {
    dir,
    maxFileSize: flag(SERVER_USAGE, "max-upload-size", values["max-upload-size"], parseSize),
    minFree: flag(SERVER_USAGE, "min-free", values["min-free"], parseMinFree),
    portableNames: values["portable-names"] === true,
  };
}

/** `--min-free SIZE` or `--min-free N%`: the free space an upload must leave. */
function parseMinFree(text: string): { reserveBytes: number; reservePercent: number } {
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text.trim());
  if (percent === null) return { reserveBytes: parseSize(text), reservePercent: 0 };
  const reservePercent = Number(percent[1]);
  if (!(reservePercent < 100)) {
    throw new RangeError(`Cannot use "${text}": a share of the disk below 100%`);
  }
  return { reserveBytes: 0, reservePercent };
}

/** TLS from --tls, --tls-cert and --tls-key; exec and upload off loopback need it. */
function planTls(values: ServerValues, listen: readonly Address[]): ServerTlsPlan | undefined {
  const u = SERVER_USAGE;
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together", u);
  }
  const guarded = values.exec || values["upload-dir"] !== undefined;
  const tlsWanted = values.tls || cert !== undefined;
  const exposed = listen.find((a) => a.transport === "tcp" && !isLoopback(a.hostname));
  if (guarded && !tlsWanted && exposed && !values["insecure-plaintext"]) {
    throw new UsageError(
      `exec and upload on ${formatAddress(exposed)} (not a loopback address) need TLS: add --tls ` +
        "(or --tls-cert and --tls-key), or --insecure-plaintext to send the data unencrypted",
      u,
    );
  }
  if (!tlsWanted) return undefined;
  if (cert !== undefined && key !== undefined) return { kind: "files", cert, key };
  const names = new Set(["localhost", "127.0.0.1", "::1"]);
  for (const a of listen) {
    if (a.transport === "tcp" && a.hostname !== "0.0.0.0" && a.hostname !== "::") {
      names.add(a.hostname);
    }
  }
  return { kind: "self-signed", names: [...names] };
}

/** --allow and --deny, each rule checked; --allow-file is read later (and on SIGHUP). */
function planAccess(values: ServerValues): AccessPlan {
  const allow = list(values.allow) ?? [];
  const deny = list(values.deny) ?? [];
  try {
    AccessList.from({ allow, deny });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), SERVER_USAGE);
  }
  return { allow, deny, file: values["allow-file"] };
}

function planUdp(values: ServerValues): UdpPlan | undefined {
  const u = SERVER_USAGE;
  const udpOnly = ["udp-max-datagram", "udp-rate", "udp-burst"] as const;
  const strayUdp = udpOnly.find((name) => values[name] !== undefined);
  if (values.udp === undefined && strayUdp) throw new UsageError(`--${strayUdp} needs --udp`, u);
  if (values.udp === undefined) return undefined;
  return {
    listen: values.udp.map((a) => flag(u, "udp", a, udpAddress)!),
    maxDatagram: flag(u, "udp-max-datagram", values["udp-max-datagram"], datagramSize),
    rate: flag(u, "udp-rate", values["udp-rate"], count),
    burst: flag(u, "udp-burst", values["udp-burst"], count),
  };
}

/** What the server reads, and checks it can do, before it makes or binds anything. */
export interface ServerInputs {
  /** The access rules of the flags and the --allow-file. */
  readonly access: AccessList | undefined;
  /** The token of --token-file or SOCKIT_TOKEN. */
  readonly token: string | undefined;
  /** Where to generate a token: set when one is needed and none was found. */
  readonly tokenPath: string | undefined;
  /** The identity of --tls-cert and --tls-key, loaded; or where the self-signed one is kept. */
  readonly tls: TlsSource | undefined;
}

/** The server's TLS identity: loaded from the given files, or the self-signed one to keep at `path`. */
export type TlsSource =
  | { readonly kind: "files"; readonly identity: TlsIdentity; readonly cert: string }
  | { readonly kind: "self-signed"; readonly path: string; readonly names: readonly string[] };

/**
 * Reads the access file, the TLS files and the token, finds where a
 * generated TLS identity or token would go, and checks that UDP is
 * available, so that a failure here leaves nothing made.
 *
 * @throws {UsageError} when an access rule is bad
 * @throws {Error} when a file cannot be read, there is no place for a generated file, or
 *   --udp is given and Deno runs without --unstable-net
 */
async function readServerInputs(plan: ServerPlan): Promise<ServerInputs> {
  const access = await readAccess(plan.access).catch((error) => {
    throw error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable
      ? error
      : new UsageError(error instanceof Error ? error.message : String(error), SERVER_USAGE);
  });
  const tls = plan.tls === undefined ? undefined : await tlsSource(plan.tls);
  const token = await loadToken({ tokenFile: plan.tokenFile });
  const tokenPath = token === undefined && plan.guarded ? generatedTokenPath() : undefined;
  if (plan.udp) (await import("../udp/_datagram.ts")).requireDatagrams();
  return { access, token, tokenPath, tls };
}

/** The rules of the flags and of the access file; `undefined` when there are none. */
async function readAccess(access: AccessPlan): Promise<AccessList | undefined> {
  const fromFile = access.file === undefined
    ? { allow: [], deny: [] }
    : parseAccessFile(await readFlagFile("allow-file", access.file), access.file);
  const allow = [...access.allow, ...fromFile.allow];
  const deny = [...access.deny, ...fromFile.deny];
  return allow.length + deny.length === 0 ? undefined : AccessList.from({ allow, deny });
}

/** A started server: TCP (and UDP), with its permissions narrowed. */
interface RunningServer {
  readonly server: Server;
  readonly udp: { close(): Promise<void> } | undefined;
}

/**
 * Acts on a checked plan: opens the services (the upload area is made
 * here), loads or makes the TLS identity and the token, listens, and gives
 * up the permissions serving no longer needs.
 */
async function startServer(plan: ServerPlan, inputs: ServerInputs): Promise<RunningServer> {
  const [{ serve }, { formatEvent, formatEventJson }] = await Promise.all([
    import("../server/serve.ts"),
    import("../server/log.ts"),
  ]);
  const services = await openServices(plan);
  const tls = inputs.tls === undefined ? undefined : await serverTls(inputs.tls);
  const token = inputs.token ??
    (inputs.tokenPath === undefined ? undefined : await generatedToken(inputs.tokenPath));
  if (plan.exec) warnRunPermission(plan.exec.allow);
  const onEvent = plan.json
    ? (event: ServerEvent | UdpEvent) => print(Deno.stdout, formatEventJson(event) + "\n")
    : (event: ServerEvent | UdpEvent) => print(Deno.stderr, `sockit: ${formatEvent(event)}\n`);
  const { listen, limits } = plan;
  const options = { listen, token, onEvent, services, ...limits, tls, access: inputs.access };
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  if (token === undefined) {
    const hint = envReadable()
      ? "use --token-file FILE or SOCKIT_TOKEN to require one"
      : "use --token-file FILE, or SOCKIT_TOKEN with --allow-env=SOCKIT_TOKEN, to require one";
    print(
      Deno.stderr,
      `sockit: warning: no token: any client that can connect is served (${hint})\n`,
    );
  }
  const server = await serve(defined);
  let udp: RunningServer["udp"];
  if (plan.udp) {
    const { serveUdp } = await import("../udp/udp_server.ts");
    try {
      udp = serveUdp({ ...plan.udp, onEvent });
    } catch (error) {
      await server.shutdown();
      throw error;
    }
  }
  // Everything is bound and read: give up what serving no longer needs.
  const revoked = revokeExcept(serverKeeps(plan.listen, plan.flags));
  print(
    plan.json ? Deno.stdout : Deno.stderr,
    plan.json
      ? JSON.stringify({
        time: new Date().toISOString(),
        type: "permissions",
        revoked: revoked.revoked,
        kept: revoked.kept,
      }) + "\n"
      : `sockit: permissions after start-up: ${revoked.line}\n`,
  );
  return { server, udp };
}

/** Echo and chat, and exec and upload as the plan asks; opening the upload store makes its partial area. */
async function openServices(plan: ServerPlan): Promise<Service[]> {
  const [{ echoService }, { ChatRoom }] = await Promise.all([
    import("../echo/echo.ts"),
    import("../chat/chat.ts"),
  ]);
  const services: Service[] = [echoService, new ChatRoom()];
  if (plan.exec) {
    const { execService } = await import("../exec/exec_service.ts");
    services.push(execService(plan.exec));
  }
  if (plan.upload) {
    const [{ UploadStore }, { uploadService }] = await Promise.all([
      import("../upload/upload_store.ts"),
      import("../upload/upload_service.ts"),
    ]);
    const { dir, maxFileSize, minFree, portableNames } = plan.upload;
    const statfs = Deno.permissions.querySync({ name: "sys", kind: "statfs" }).state ===
      "granted";
    const noCheck = minFree !== undefined && minFree.reserveBytes === 0 &&
      minFree.reservePercent === 0;
    const store = await UploadStore.open(dir, {
      ...(maxFileSize === undefined ? {} : { maxFileSize }),
      ...(statfs ? minFree : { reserveBytes: 0, reservePercent: 0 }),
      portableNames,
    });
    if (!statfs && !noCheck) {
      print(
        Deno.stderr,
        "sockit: warning: upload: no free-space check without --allow-sys=statfs\n",
      );
    }
    services.push(uploadService(store));
  }
  return services;
}

/** Serves until SIGINT or SIGTERM; SIGHUP re-reads the access rules. */
async function runServer(plan: ServerPlan, { server, udp }: RunningServer): Promise<void> {
  const stop = () => {
    udp?.close();
    server.shutdown();
  };
  // SIGHUP re-reads the access rules; a bad file keeps the rules in force.
  const reload = () => {
    readAccess(plan.access).then((list) => {
      server.setAccess(list);
      print(Deno.stderr, `sockit: access rules reloaded: ${list?.describe() ?? "no rules"}\n`);
    }, (error) => {
      print(
        Deno.stderr,
        `sockit: access rules not reloaded, the old ones stay: ${describe(error)}\n`,
      );
    });
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  const hangup = Deno.build.os !== "windows" && plan.access.file !== undefined;
  if (hangup) Deno.addSignalListener("SIGHUP", reload);
  try {
    await server.finished;
    await udp?.close();
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
    if (hangup) Deno.removeSignalListener("SIGHUP", reload);
  }
}

/** The server flags that decide its permissions. */
export interface ServerFlags {
  exec?: boolean | undefined;
  "exec-allow"?: string[] | undefined;
  "upload-dir"?: string | undefined;
  udp?: string[] | undefined;
  "allow-file"?: string | undefined;
}

/** What the server needs to start: its addresses, the upload directory, running programs. */
export function serverNeeds(listen: Address[], values: ServerFlags): PermissionNeed[] {
  const needs: PermissionNeed[] = listen.map((a) =>
    a.transport === "tcp"
      ? {
        name: "net",
        host: `${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}`,
        why: `to listen on ${formatAddress(a)}`,
      }
      : { name: "net", host: `unix:${a.path}`, why: `to listen on unix:${a.path}` }
  );
  for (const a of listen) {
    if (a.transport === "unix") {
      needs.push({ name: "read", path: a.path, why: "for the socket file" });
      needs.push({ name: "write", path: a.path, why: "for the socket file" });
    }
  }
  const dir = values["upload-dir"];
  if (dir !== undefined) {
    needs.push({ name: "read", path: dir, why: "to check uploads" });
    needs.push({ name: "write", path: dir, why: "to store uploads" });
  }
  if (values.exec) needs.push(...runNeeds(list(values["exec-allow"])));
  return needs;
}

/**
 * The run permission exec needs: the listed programs with `--exec-allow`
 * (all of them while none is granted; a grant that leaves some out starts
 * with a warning naming them, see {@linkcode warnRunPermission}), every
 * program without it.
 */
function runNeeds(allow: string[] | undefined): PermissionNeed[] {
  const why = "to run commands for exec";
  if (allow === undefined) return [{ name: "run", why }];
  const granted = allow.some((command) =>
    Deno.permissions.querySync({ name: "run", command }).state === "granted"
  );
  return granted ? [] : allow.map((command) => ({ name: "run", command, why }));
}

/**
 * What the server keeps once it listens: accepting needs no permission, but
 * UDP replies do, uploads need their directory, exec needs to run programs
 * (and to look at the directories clients ask for), a Unix socket file is
 * removed at shutdown, and SIGHUP re-reads the access file.
 */
export function serverKeeps(listen: Address[], values: ServerFlags): PermissionNeed[] {
  const keep: PermissionNeed[] = [];
  if (values.udp !== undefined) keep.push({ name: "net", why: "to answer UDP clients" });
  for (const a of listen) {
    if (a.transport === "unix") {
      keep.push({ name: "write", path: a.path, why: "to remove the socket file" });
    }
  }
  const dir = values["upload-dir"];
  if (dir !== undefined) {
    keep.push({ name: "read", path: dir }, { name: "write", path: dir });
    keep.push({ name: "sys", kind: "statfs", why: "for the free-space check" });
  }
  if (values.exec) keep.push({ name: "run" }, { name: "read", why: "for --cwd" });
  if (values["allow-file"] !== undefined) keep.push({ name: "read", path: values["allow-file"] });
  return keep;
}

/** Whether connections to `hostname` stay on this machine. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname.startsWith("127.");
}

/**
 * Reads the identity of --tls-cert and --tls-key, or finds where the
 * self-signed one is kept (the configuration directory); makes nothing.
 *
 * @throws {Error} when the files are bad, or with --tls alone when there is
 *   no configuration directory (no --allow-env=HOME)
 */
async function tlsSource(plan: ServerTlsPlan): Promise<TlsSource> {
  if (plan.kind === "files") {
    const { loadTlsIdentity } = await import("../tls/tls_certificate.ts");
    return { kind: "files", identity: await loadTlsIdentity(plan.cert, plan.key), cert: plan.cert };
  }
  const path = defaultConfigPath("tls.pem");
  if (path === undefined) {
    throw new Error(
      "--tls needs a place to keep its certificate: grant --allow-env=HOME, or give " +
        "--tls-cert FILE and --tls-key FILE",
    );
  }
  return { kind: "self-signed", path, names: plan.names };
}

/**
 * The server's TLS identity: the one of --tls-cert and --tls-key, or the
 * self-signed one (made now when missing). Prints the fingerprint clients
 * pin.
 */
export async function serverTls(source: TlsSource): Promise<{ cert: string; key: string }> {
  const [{ ensureTlsIdentity }, { formatFingerprint }] = await Promise.all([
    import("../tls/tls_certificate.ts"),
    import("../tls/fingerprint.ts"),
  ]);
  let identity: TlsIdentity;
  let where: string;
  if (source.kind === "files") {
    identity = source.identity;
    where = source.cert;
  } else {
    const made = await ensureTlsIdentity(source.path, { names: [...source.names] });
    identity = made;
    where = `${source.path} (self-signed, ${made.created ? "made now" : "kept from before"})`;
  }
  print(
    Deno.stderr,
    `sockit: TLS certificate ${formatFingerprint(identity.fingerprint)} from ${where}; ` +
      "clients verify it with --pin, or record it on first use\n",
  );
  return identity;
}

/**
 * Says at start-up which programs of `--exec-allow` Deno's `--allow-run`
 * leaves out: running them is refused as `not_allowed`. Without
 * `--exec-allow` the whole run permission was required already.
 */
export function warnRunPermission(allow: readonly string[] | undefined): void {
  if (allow === undefined) return;
  const denied = allow.filter((command) =>
    Deno.permissions.querySync({ name: "run", command }).state !== "granted"
  );
  if (denied.length === 0) return;
  print(
    Deno.stderr,
    `sockit: warning: exec: --allow-run does not grant ${denied.join(", ")}; ` +
      `running ${denied.length === 1 ? "it" : "them"} is refused as not_allowed\n`,
  );
}

/**
 * Where exec and upload keep the token they generate: the default token file.
 *
 * @throws {Error} when there is none (no --allow-env=HOME)
 */
function generatedTokenPath(): string {
  const path = defaultTokenPath();
  if (path === undefined) {
    throw new Error(
      "exec and upload need a token: give --token-file FILE or SOCKIT_TOKEN, or grant --allow-env=HOME " +
        "so one can be kept in ~/.config/sockit/token",
    );
  }
  return path;
}

/** The token exec and upload fall back to: the one in `path`, created when missing. */
export async function generatedToken(path: string): Promise<string> {
  const { token, created } = await ensureToken(path);
  print(
    Deno.stderr,
    created
      ? `sockit: exec and upload need a token: generated one in ${path} (mode 600); local ` +
        `clients read it by default, remote clients need a copy (--token-file FILE)\n`
      : `sockit: using the token in ${path}\n`,
  );
  return token;
}

/** A UDP address: HOST:PORT or [IPV6]:PORT, not a Unix socket. */
export function udpAddress(text: string): TcpAddress {
  const address = parseAddress(text);
  if (address.transport !== "tcp") {
    throw new TypeError(`Cannot serve UDP on "${text}": expected HOST:PORT or [IPV6]:PORT`);
  }
  return address;
}

/** A datagram size limit: 0 to 65,507 bytes. */
export function datagramSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes > 65_507) throw new RangeError(`Cannot use "${text}": expected at most 65507 bytes`);
  return bytes;
}
