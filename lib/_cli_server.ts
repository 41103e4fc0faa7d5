/**
 * `sockit server`: parses its flags and runs the library's server.
 *
 * @module
 */

import { type Address, formatAddress, parseAddress } from "./address.ts";
import { defaultConfigPath } from "./config_path.ts";
import { defaultTokenPath, ensureToken, loadToken } from "./token.ts";
import { parseDuration, parseSize } from "./units.ts";
import type { ServerEvent } from "./server.ts";
import type { UdpEvent } from "./udp_server.ts";
import type { Service } from "./service.ts";
import { type PermissionNeed, requirePermissions } from "./permissions.ts";
import { SERVER_OPTIONS, SERVER_USAGE } from "./_cli_usage.ts";
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
  UsageError,
} from "./_cli_common.ts";

export async function serverCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, SERVER_OPTIONS, SERVER_USAGE);
  if (values.help) {
    print(Deno.stdout, SERVER_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`, SERVER_USAGE);
  }
  const u = SERVER_USAGE;
  const listen = (values.listen ?? ["127.0.0.1:7070"]).map((a) =>
    flag(u, "listen", a, parseAddress)!
  );
  const execOnly = ["exec-allow", "exec-env-allow", "exec-max", "exec-timeout"] as const;
  const stray = execOnly.find((name) => values[name] !== undefined);
  if (!values.exec && stray) throw new UsageError(`--${stray} needs --exec`, u);
  const { revokeExcept } = await import("./permissions.ts");
  requirePermissions(serverNeeds(listen, values), { action: "start the server" });
  const [{ serve }, { echoService }, { ChatRoom }, { formatEvent, formatEventJson }] = await Promise
    .all([
      import("./server.ts"),
      import("./echo.ts"),
      import("./chat.ts"),
      import("./log.ts"),
    ]);
  const services: Service[] = [echoService, new ChatRoom()];
  if (values.exec) {
    const { execService } = await import("./exec_service.ts");
    services.push(execService({
      allow: list(values["exec-allow"]),
      envAllow: list(values["exec-env-allow"]) ?? [],
      maxConcurrent: flag(u, "exec-max", values["exec-max"], count) ?? 64,
      timeout: flag(u, "exec-timeout", values["exec-timeout"], period) ?? 3_600_000,
    }));
  }
  if (values["max-upload-size"] !== undefined && values["upload-dir"] === undefined) {
    throw new UsageError("--max-upload-size needs --upload-dir", u);
  }
  if (values["upload-dir"] !== undefined) {
    const [{ UploadStore }, { uploadService }] = await Promise.all([
      import("./upload_store.ts"),
      import("./upload_service.ts"),
    ]);
    const maxFileSize = flag(u, "max-upload-size", values["max-upload-size"], parseSize);
    const statfs = Deno.permissions.querySync({ name: "sys", kind: "statfs" }).state ===
      "granted";
    const store = await UploadStore.open(values["upload-dir"], {
      ...(maxFileSize === undefined ? {} : { maxFileSize }),
      ...(statfs ? {} : { reserveBytes: 0, reservePercent: 0 }),
    });
    if (!statfs) {
      print(
        Deno.stderr,
        "sockit: warning: upload: no free-space check without --allow-sys=statfs\n",
      );
    }
    services.push(uploadService(store));
  }
  const guarded = values.exec || values["upload-dir"] !== undefined;
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together", u);
  }
  const tlsWanted = values.tls || values["tls-cert"] !== undefined;
  const exposed = listen.find((a) => a.transport === "tcp" && !isLoopback(a.hostname));
  if (guarded && !tlsWanted && exposed && !values["insecure-plaintext"]) {
    throw new UsageError(
      `exec and upload on ${formatAddress(exposed)} (not a loopback address) need TLS: add --tls ` +
        "(or --tls-cert and --tls-key), or --insecure-plaintext to send the data unencrypted",
      u,
    );
  }
  const tls = tlsWanted ? await serverTls(values, listen) : undefined;
  const accessFile = values["allow-file"];
  const readAccess = async () => {
    const { AccessList, parseAccessFile } = await import("./access_list.ts");
    const fromFile = accessFile === undefined
      ? { allow: [], deny: [] }
      : parseAccessFile(await Deno.readTextFile(accessFile), accessFile);
    const allow = [...(list(values.allow) ?? []), ...fromFile.allow];
    const deny = [...(list(values.deny) ?? []), ...fromFile.deny];
    return allow.length + deny.length === 0 ? undefined : AccessList.from({ allow, deny });
  };
  const access = await readAccess().catch((error) => {
    throw error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable
      ? error
      : new UsageError(error instanceof Error ? error.message : String(error), u);
  });
  const maxPerSource = flag(u, "max-per-source", values["max-per-source"], count);
  let token = await loadToken({ tokenFile: values["token-file"] });
  if (token === undefined && guarded) token = await generatedToken();
  if (values.exec) warnRunPermission(list(values["exec-allow"]));
  const onEvent = values.json
    ? (event: ServerEvent | UdpEvent) => print(Deno.stdout, formatEventJson(event) + "\n")
    : (event: ServerEvent | UdpEvent) => print(Deno.stderr, `sockit: ${formatEvent(event)}\n`);
  const options = {
    listen,
    token,
    onEvent,
    services,
    maxConnections: flag(u, "max-conns", values["max-conns"], count),
    maxUnauthenticated: flag(u, "max-startups", values["max-startups"], count),
    maxFrame: flag(u, "max-frame", values["max-frame"], frameSize),
    maxHandshakeFrame: flag(u, "max-handshake-frame", values["max-handshake-frame"], frameSize),
    handshakeTimeout: flag(u, "handshake-timeout", values["handshake-timeout"], period),
    idleTimeout: flag(u, "idle-timeout", values["idle-timeout"], parseDuration),
    stallTimeout: flag(u, "stall-timeout", values["stall-timeout"], period),
    shutdownGrace: flag(u, "shutdown-grace", values["shutdown-grace"], parseDuration),
    tls,
    access,
    sourceGuard: maxPerSource === undefined ? undefined : { maxPerSource },
  };
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
  // Every flag is checked before anything listens.
  const udpOnly = ["udp-max-datagram", "udp-rate", "udp-burst"] as const;
  const strayUdp = udpOnly.find((name) => values[name] !== undefined);
  if (values.udp === undefined && strayUdp) throw new UsageError(`--${strayUdp} needs --udp`, u);
  const udpOptions = values.udp === undefined ? undefined : {
    listen: values.udp.map((a) => flag(u, "udp", a, udpAddress)!),
    maxDatagram: flag(u, "udp-max-datagram", values["udp-max-datagram"], datagramSize),
    rate: flag(u, "udp-rate", values["udp-rate"], count),
    burst: flag(u, "udp-burst", values["udp-burst"], count),
    onEvent,
  };
  const server = await serve(defined);
  let udp: { close(): Promise<void> } | undefined;
  if (udpOptions) {
    const { serveUdp } = await import("./udp_server.ts");
    try {
      udp = serveUdp(udpOptions);
    } catch (error) {
      await server.shutdown();
      throw error;
    }
  }
  // Everything is bound and read: give up what serving no longer needs.
  const revoked = revokeExcept(serverKeeps(listen, values));
  print(
    values.json ? Deno.stdout : Deno.stderr,
    values.json
      ? JSON.stringify({
        time: new Date().toISOString(),
        type: "permissions",
        revoked: revoked.revoked,
        kept: revoked.kept,
      }) + "\n"
      : `sockit: permissions after start-up: ${revoked.line}\n`,
  );
  const stop = () => {
    udp?.close();
    server.shutdown();
  };
  // SIGHUP re-reads the access rules; a bad file keeps the rules in force.
  const reload = () => {
    readAccess().then((list) => {
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
  const hangup = Deno.build.os !== "windows" && accessFile !== undefined;
  if (hangup) Deno.addSignalListener("SIGHUP", reload);
  try {
    await server.finished;
    await udp?.close();
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
    if (hangup) Deno.removeSignalListener("SIGHUP", reload);
  }
  return 0;
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
 * The server's TLS identity: --tls-cert and --tls-key, or with --tls alone
 * a self-signed one kept in the configuration directory. Prints the
 * fingerprint clients pin.
 */
export async function serverTls(
  values: { "tls-cert"?: string | undefined; "tls-key"?: string | undefined },
  listen: Address[],
): Promise<{ cert: string; key: string }> {
  const [{ ensureTlsIdentity, loadTlsIdentity }, { formatFingerprint }] = await Promise.all([
    import("./tls_certificate.ts"),
    import("./fingerprint.ts"),
  ]);
  let identity;
  let where: string;
  if (values["tls-cert"] !== undefined && values["tls-key"] !== undefined) {
    identity = await loadTlsIdentity(values["tls-cert"], values["tls-key"]);
    where = values["tls-cert"];
  } else {
    const path = defaultConfigPath("tls.pem");
    if (path === undefined) {
      throw new Error(
        "--tls needs a place to keep its certificate: grant --allow-env=HOME, or give " +
          "--tls-cert FILE and --tls-key FILE",
      );
    }
    const names = new Set(["localhost", "127.0.0.1", "::1"]);
    for (const a of listen) {
      if (a.transport === "tcp" && a.hostname !== "0.0.0.0" && a.hostname !== "::") {
        names.add(a.hostname);
      }
    }
    identity = await ensureTlsIdentity(path, { names: [...names] });
    where = `${path} (self-signed, ${identity.created ? "made now" : "kept from before"})`;
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
export function warnRunPermission(allow: string[] | undefined): void {
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

/** The token exec falls back to: the default token file, created when missing. */
export async function generatedToken(): Promise<string> {
  const path = defaultTokenPath();
  if (path === undefined) {
    throw new Error(
      "exec and upload need a token: give --token-file FILE or SOCKIT_TOKEN, or grant --allow-env=HOME " +
        "so one can be kept in ~/.config/sockit/token",
    );
  }
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

export function udpAddress(text: string) {
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

/** A ping probe size: its 16-byte header up to one datagram. */
