/**
 * Checking the Deno permissions a job needs before it starts, naming the
 * exact flags that are missing, and dropping the permissions it no longer
 * needs once it runs. Nothing here ever prompts: it uses
 * `Deno.permissions.querySync` and `Deno.permissions.revokeSync` only.
 *
 * What Deno 2.9.6 lets a process give up (each point checked with small
 * scripts, and by `tests/permissions/permissions_test.ts`):
 *
 * - `revokeSync({ name })` with no value drops the whole permission: a bare
 *   `--allow-x` and every entry of `--allow-x=A,B`. It is final: nothing can
 *   grant it back without a prompt.
 * - `revokeSync` with a value (`path`, `host`, `variable`, `command`, `kind`)
 *   drops every listed entry that *covers* that value — the path and its
 *   ancestor directories, the host with and without a port, an `env`
 *   wildcard such as `SOCKIT_*` — and leaves entries below it: revoking
 *   `/etc` keeps a separate `/etc/hosts` entry. So revoking one value can
 *   take a wider entry with it that also covered something still needed.
 * - Against a bare flag (`--allow-read`, granted for everything) a revoke
 *   with a value does nothing at all: the permission stays granted for that
 *   value too. A bare flag can only be dropped whole.
 * - Bound listeners keep accepting (TCP and Unix) and open connections and
 *   files keep working after `net`, `read` and `write` are revoked; what
 *   fails with `Deno.errors.NotCapable` is every new connect, listen, UDP
 *   send, open, spawn or variable read.
 *
 * Module loading: a dynamic `import()` whose specifier is a string literal
 * (`await import("./lib/server.ts")`, as `cli.ts` does) is part of the module
 * graph Deno loads at start-up, local or remote, so it still loads after
 * `read`, `net` and `import` are revoked — and also when the process never
 * had `--allow-read`. A computed specifier (`import(name)`,
 * `import(new URL(…).href)`) is checked when it runs: it needs `read` for a
 * local file and `import` for a remote one, and fails with a `TypeError`
 * ("Requires read access to …"), not `NotCapable`. `npm:` and `node:`
 * modules imported by literal specifiers load after revocation too.
 *
 * @example Name the flags a server needs
 * ```ts
 * import { flagFor, type PermissionNeed } from "./permissions.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const needs: PermissionNeed[] = [
 *   { name: "net", host: "127.0.0.1:7070", why: "to listen on 127.0.0.1:7070" },
 *   { name: "env", variable: "SOCKIT_TOKEN" },
 * ];
 * deepEqual(needs.map((need) => flagFor(need)), [
 *   "--allow-net=127.0.0.1:7070",
 *   "--allow-env=SOCKIT_TOKEN",
 * ]);
 * ```
 *
 * @module
 */

/** What `--allow-sys` may be limited to, as `Deno.SysPermissionDescriptor` names it. */
export type SysKind = NonNullable<Deno.SysPermissionDescriptor["kind"]>;

/**
 * A permission a job needs, shaped like the `Deno.PermissionDescriptor` of
 * the same name plus an optional `why` for people. Leave the value out
 * (`{ name: "run" }`) to need the whole permission.
 *
 * `net` and `import` hosts are `HOST`, `HOST:PORT`, `[IPV6]:PORT` or, for
 * `net`, `unix:PATH`; paths may be relative to the working directory.
 */
export type PermissionNeed =
  | {
    readonly name: "net";
    /** `HOST`, `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`; all hosts when left out. */
    readonly host?: string;
    /** Why it is needed, such as `"to listen on 127.0.0.1:7070"`. */
    readonly why?: string;
  }
  | {
    readonly name: "read";
    /** A file or directory (and everything below it); all paths when left out. */
    readonly path?: string;
    /** Why it is needed, such as `"to read the token file"`. */
    readonly why?: string;
  }
  | {
    readonly name: "write";
    /** A file or directory (and everything below it); all paths when left out. */
    readonly path?: string;
    /** Why it is needed, such as `"to write uploads into /srv/in"`. */
    readonly why?: string;
  }
  | {
    readonly name: "env";
    /** One variable, or a `PREFIX*` wildcard; all variables when left out. */
    readonly variable?: string;
    /** Why it is needed, such as `"to read the token"`. */
    readonly why?: string;
  }
  | {
    readonly name: "run";
    /** One program, by name or path; every program when left out. */
    readonly command?: string;
    /** Why it is needed, such as `"to run remote commands"`. */
    readonly why?: string;
  }
  | {
    readonly name: "sys";
    /** One kind of system information; all of them when left out. */
    readonly kind?: SysKind;
    /** Why it is needed, such as `"to check free disk space"`. */
    readonly why?: string;
  }
  | {
    readonly name: "ffi";
    /** A library path; all libraries when left out. */
    readonly path?: string;
    /** Why it is needed. */
    readonly why?: string;
  }
  | {
    readonly name: "import";
    /** `HOST` or `HOST:PORT` of remote modules; all hosts when left out. */
    readonly host?: string;
    /** Why it is needed, such as `"to load plugins from jsr.io"`. */
    readonly why?: string;
  };

/** The name of a permission: `"net"`, `"read"`, … */
export type PermissionNeedName = PermissionNeed["name"];

/** The field that holds each permission's value, as `Deno.PermissionDescriptor` names it. */
const VALUE_KEY = {
  read: "path",
  write: "path",
  net: "host",
  env: "variable",
  run: "command",
  sys: "kind",
  ffi: "path",
  import: "host",
} as const satisfies Record<PermissionNeedName, string>;

/** Every permission name, in the order {@linkcode revokeExcept} revokes them. */
const NAMES = Object.keys(VALUE_KEY) as PermissionNeedName[];

/** Characters a POSIX shell passes through unquoted. */
const SHELL_SAFE = /^[\w@%+=:,./-]*$/;

/** Options for {@linkcode flagFor}. */
export interface FlagForOptions {
  /**
   * Quote the value for a POSIX shell when it holds a space or another
   * character the shell would interpret (`--allow-read='/srv/my inbox'`),
   * for a command line a person copies. Leave it off for the arguments of
   * `Deno.Command`, which reach Deno unparsed. @default {false}
   */
  quote?: boolean;
}

/**
 * The flag that grants `need`, such as `--allow-net=127.0.0.1:7070`,
 * `--allow-sys=statfs` or, for a need without a value, `--allow-run`.
 *
 * Deno splits flag values at commas and 2.9.6 has no escape for a comma
 * (`a,,b` is refused as an empty path, `a\,b` is split), so a value with a
 * comma cannot be named exactly. A path with one (`read`, `write`, `ffi`)
 * gets its nearest ancestor directory without a comma instead — wider than
 * needed, but the narrowest grant Deno can parse — and any other value with
 * one gets the bare flag. Spaces need no escape for Deno; `quote` adds shell
 * quoting for people.
 *
 * Repeated flags of one name add up (`--allow-read=/a --allow-read=/b`),
 * but a bare flag next to a list of the same name is ignored: Deno 2.9.6
 * grants only `sh` for `--allow-run=sh --allow-run`. Replace the list when
 * told to add a bare flag.
 *
 * @param need the permission
 * @param options shell quoting
 * @returns the flag
 * @throws {TypeError} when the name is unknown or the value is empty
 *
 * @example Flags for each kind of need
 * ```ts
 * import { flagFor } from "./permissions.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(flagFor({ name: "write", path: "/srv/in" }), "--allow-write=/srv/in");
 * deepEqual(flagFor({ name: "run" }), "--allow-run");
 * deepEqual(flagFor({ name: "sys", kind: "statfs" }), "--allow-sys=statfs");
 * deepEqual(flagFor({ name: "read", path: "/srv/my inbox" }), "--allow-read=/srv/my inbox");
 * deepEqual(
 *   flagFor({ name: "read", path: "/srv/my inbox" }, { quote: true }),
 *   "--allow-read='/srv/my inbox'",
 * );
 * deepEqual(flagFor({ name: "read", path: "/srv/a,b/in" }), "--allow-read=/srv");
 * ```
 */
export function flagFor(need: PermissionNeed, options: FlagForOptions = {}): string {
  const value = checkedValue(need);
  const flag = `--allow-${need.name}`;
  if (value === undefined) return flag;
  let granted = value;
  if (value.includes(",")) {
    if (VALUE_KEY[need.name] !== "path") return flag;
    granted = commaFreeAncestor(value);
  }
  if (options.quote && !SHELL_SAFE.test(granted)) {
    granted = `'${granted.replaceAll("'", `'\\''`)}'`;
  }
  return `${flag}=${granted}`;
}

/**
 * The needs in `needs` that this process does not hold: those whose
 * `Deno.permissions.querySync` state is `"prompt"` or `"denied"`.
 *
 * A permission granted with an exception (`--allow-read --deny-read=/etc`
 * queried for all of `read`) counts as granted: the exception was asked for.
 *
 * @param needs what the job needs
 * @returns the missing needs, in the given order
 * @throws {TypeError} when a need is malformed or Deno refuses its value
 *   (`"bad host"`, an unknown `sys` kind)
 *
 * @example Find what is missing
 * ```ts
 * import { missingPermissions } from "./permissions.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * // Run by `deno test` with --allow-net=127.0.0.1 and without --allow-ffi.
 * const missing = missingPermissions([
 *   { name: "net", host: "127.0.0.1:7070" },
 *   { name: "ffi", path: "./libsqlite3.so" },
 * ]);
 * deepEqual(missing, [{ name: "ffi", path: "./libsqlite3.so" }]);
 * ```
 */
export function missingPermissions(needs: readonly PermissionNeed[]): PermissionNeed[] {
  return needs.filter((need) => !isGranted(need));
}

/**
 * Thrown by {@linkcode requirePermissions} when the process lacks a
 * permission it needs. Its message is one line that names every flag to add,
 * so a command line can print it as is.
 *
 * @example The message names the flag and why
 * ```ts
 * import { MissingPermissionError } from "./permissions.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const error = new MissingPermissionError([
 *   { name: "write", path: "/srv/in", why: "to write uploads into /srv/in" },
 * ]);
 * deepEqual(
 *   error.message,
 *   "Cannot start: missing permission --allow-write=/srv/in (to write uploads into /srv/in); " +
 *     "run again with it",
 * );
 * deepEqual(error.flags, ["--allow-write=/srv/in"]);
 * ```
 */
export class MissingPermissionError extends Error {
  /** The missing needs, in the order given. */
  readonly needs: readonly PermissionNeed[];
  /**
   * The flags to add, one per permission (`--allow-run=printf,sh`),
   * unquoted: ready to be arguments of `Deno.Command`. The message quotes
   * them for a shell.
   */
  readonly flags: readonly string[];

  /**
   * Creates a `MissingPermissionError`.
   *
   * @param needs the missing needs; at least one
   * @param action what cannot be done without them, after "Cannot"
   * @throws {RangeError} when `needs` is empty
   */
  constructor(needs: readonly PermissionNeed[], action = "start") {
    if (needs.length === 0) {
      throw new RangeError("Cannot create MissingPermissionError: no missing permission given");
    }
    // One entry per permission: the values of needs that share it are listed
    // in one flag (`--allow-run=printf,sh`), their reasons joined. A need for
    // the whole permission takes the list's place: Deno ignores a bare flag
    // next to a list of its name.
    const byName = new Map<string, { values: string[]; quoted: string[]; whys: string[] }>();
    const whole = new Set<string>();
    for (const need of needs) {
      const name = `--allow-${need.name}`;
      const value = flagFor(need).slice(name.length + 1);
      const entry = byName.get(name) ?? { values: [], quoted: [], whys: [] };
      if (value === "") whole.add(name);
      else if (!entry.values.includes(value)) {
        entry.values.push(value);
        entry.quoted.push(flagFor(need, { quote: true }).slice(name.length + 1));
      }
      if (need.why !== undefined && need.why !== "" && !entry.whys.includes(need.why)) {
        entry.whys.push(need.why);
      }
      byName.set(name, entry);
    }
    const merged = [...byName].map(([name, { values, quoted, whys }]) =>
      whole.has(name)
        ? { flag: name, quoted: name, whys }
        : { flag: `${name}=${values.join(",")}`, quoted: `${name}=${quoted.join(",")}`, whys }
    );
    const items = merged.map(({ quoted, whys }) =>
      whys.length === 0 ? quoted : `${quoted} (${whys.join("; ").replace(/[\r\n]+/g, " ")})`
    );
    const several = items.length > 1;
    super(
      `Cannot ${action}: missing permission${several ? "s" : ""} ${items.join(", ")}; ` +
        `run again with ${several ? "them" : "it"}`,
    );
    this.name = "MissingPermissionError";
    this.needs = needs;
    this.flags = merged.map(({ flag }) => flag);
  }
}

/** Options for {@linkcode requirePermissions}. */
export interface RequirePermissionsOptions {
  /** What cannot be done without the permissions, after "Cannot". @default {"start"} */
  action?: string;
}

/**
 * Checks that the process holds every permission in `needs`, without
 * prompting, so a job fails before it starts instead of halfway.
 *
 * @param needs what the job needs
 * @param options the action named in the error
 * @throws {MissingPermissionError} naming every missing flag in one line
 * @throws {TypeError} when a need is malformed or Deno refuses its value
 *
 * @example Refuse to start without a permission
 * ```ts
 * import { MissingPermissionError, requirePermissions } from "./permissions.ts";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * // Run by `deno test` without --allow-sys.
 * throws(
 *   () => requirePermissions([{ name: "sys", kind: "hostname", why: "to name the log" }]),
 *   (error) => {
 *     deepEqual(error instanceof MissingPermissionError && error.flags, ["--allow-sys=hostname"]);
 *     return true;
 *   },
 * );
 * ```
 */
export function requirePermissions(
  needs: readonly PermissionNeed[],
  options: RequirePermissionsOptions = {},
): void {
  const missing = missingPermissions(needs);
  if (missing.length > 0) throw new MissingPermissionError(missing, options.action ?? "start");
}

/** Options for {@linkcode revokeExcept}. */
export interface RevokeExceptOptions {
  /**
   * Listed grants to drop although `keep` keeps part of their permission,
   * such as the token file once it is read, or `HOME` once the token path
   * is known: `[{ name: "env", variable: "HOME" }]`.
   *
   * Each is revoked only when that cannot take a kept need with it, that is
   * when no grant could cover both (the common ancestor directory, the host
   * without its port, a shared `env` prefix is not granted); otherwise, and
   * when a bare flag grants the whole permission (revoking part of it does
   * nothing), it is left and reported in {@linkcode RevokeSummary.skipped}.
   * @default {[]}
   */
  narrow?: readonly PermissionNeed[];
}

/** A `narrow` grant {@linkcode revokeExcept} left in place. */
export interface SkippedNarrowing {
  /** The grant. */
  readonly need: PermissionNeed;
  /** Why it was left, such as `"a bare --allow-read grants every path"`. */
  readonly reason: string;
}

/** What {@linkcode revokeExcept} did. */
export interface RevokeSummary {
  /**
   * The permissions revoked whole because `keep` names none of them, held
   * or not: Deno cannot tell which entries a `--allow-x=LIST` holds.
   */
  readonly revoked: readonly PermissionNeedName[];
  /** The permissions `keep` names, left as they were except for `narrowed`. */
  readonly kept: readonly PermissionNeedName[];
  /** Those of `kept` that a bare flag grants whole, which nothing can narrow. */
  readonly keptWhole: readonly PermissionNeedName[];
  /** The flags of the `narrow` grants revoked. */
  readonly narrowed: readonly string[];
  /** The `narrow` grants left in place, with the reason. */
  readonly skipped: readonly SkippedNarrowing[];
  /**
   * All of it as one line for a log: `revoked env, run, write; kept net
   * (whole), read; narrowed --allow-env=HOME`.
   */
  readonly line: string;
}

/**
 * Revokes every permission the process holds that `keep` does not need,
 * for the rest of the process's life: call it once start-up is done
 * (listeners bound, token and configuration files read, lazily imported
 * modules that use computed specifiers loaded), after
 * {@linkcode requirePermissions} has checked `keep`.
 *
 * A permission `keep` does not name at all is revoked whole — `read`,
 * `write`, `net`, `env`, `run`, `sys`, `ffi` and `import`. One it names is
 * kept as granted, wider than `keep` when the flags were wider: Deno cannot
 * revoke "everything but `/srv/in`", and cannot list what a
 * `--allow-x=LIST` holds. Listed grants it should drop go in `narrow`.
 * Revoking `import` does not stop `import()` of string-literal specifiers,
 * which Deno loads at start-up; see the module documentation.
 *
 * @param keep what the process still needs; a need without a value keeps its whole permission
 * @param options listed grants to drop as well
 * @returns what was revoked and kept, with a log line
 * @throws {TypeError} when a need is malformed or Deno refuses its value
 * @throws {Error} when revoking a `narrow` grant took a kept one with it
 *   (a wildcard host such as `*.example.com` can cover both); it cannot be
 *   undone, so the process should stop
 *
 * @example Keep everything (a real caller keeps far less)
 * ```ts
 * import { revokeExcept } from "./permissions.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const summary = revokeExcept([
 *   { name: "read" }, { name: "write" }, { name: "net" }, { name: "env" },
 *   { name: "run" }, { name: "sys" }, { name: "ffi" }, { name: "import" },
 * ]);
 * deepEqual(summary.revoked, []);
 * ```
 *
 * @example Keep only the listener's network and the upload directory
 * ```ts ignore
 * import { revokeExcept } from "./permissions.ts";
 *
 * const summary = revokeExcept([
 *   { name: "net", host: "127.0.0.1" },
 *   { name: "read", path: "/srv/in" },
 *   { name: "write", path: "/srv/in" },
 * ], { narrow: [{ name: "read", path: "/home/ada/.config/sockit/token" }] });
 * console.error(`sockit: permissions: ${summary.line}`);
 * ```
 */
export function revokeExcept(
  keep: readonly PermissionNeed[],
  options: RevokeExceptOptions = {},
): RevokeSummary {
  const narrow = options.narrow ?? [];
  for (const need of [...keep, ...narrow]) checkedValue(need);
  const keptNames = new Set(keep.map((need) => need.name));
  const revoked = NAMES.filter((name) => !keptNames.has(name));
  for (const name of revoked) Deno.permissions.revokeSync({ name } as Deno.PermissionDescriptor);
  const kept = NAMES.filter((name) => keptNames.has(name));
  const keptWhole = kept.filter((name) => isGranted({ name } as PermissionNeed));

  const narrowed: string[] = [];
  const skipped: SkippedNarrowing[] = [];
  for (const need of narrow) {
    const reason = narrowingRefusal(need, keep, keptWhole);
    if (reason !== undefined) {
      skipped.push({ need, reason });
      continue;
    }
    const held = keep.filter((k) => k.name === need.name && isGranted(k));
    Deno.permissions.revokeSync(descriptorOf(need));
    const lost = held.filter((k) => !isGranted(k));
    if (lost.length > 0) {
      throw new Error(
        `Cannot narrow permissions: revoking ${flagFor(need)} also revoked ` +
          `${lost.map((k) => flagFor(k)).join(", ")}, which ${
            lost.length === 1 ? "is" : "are"
          } kept; a single grant covered both`,
      );
    }
    narrowed.push(flagFor(need));
  }

  const parts = [
    `revoked ${revoked.length === 0 ? "nothing" : revoked.join(", ")}`,
    `kept ${
      kept.length === 0
        ? "nothing"
        : kept.map((name) => keptWhole.includes(name) ? `${name} (whole)` : name).join(", ")
    }`,
  ];
  if (narrowed.length > 0) parts.push(`narrowed ${narrowed.join(", ")}`);
  for (const { need, reason } of skipped) parts.push(`not narrowed ${flagFor(need)}: ${reason}`);
  return { revoked, kept, keptWhole, narrowed, skipped, line: parts.join("; ") };
}

/** Why `need` must not be revoked while `keep` is kept, or `undefined` when it may be. */
function narrowingRefusal(
  need: PermissionNeed,
  keep: readonly PermissionNeed[],
  keptWhole: readonly PermissionNeedName[],
): string | undefined {
  const value = valueOf(need);
  if (!keep.some((k) => k.name === need.name)) {
    return `--allow-${need.name} is revoked whole`;
  }
  if (value === undefined) return `it would revoke all of --allow-${need.name}, which is kept`;
  if (keptWhole.includes(need.name)) {
    return `a bare --allow-${need.name} grants it, and Deno revokes that only whole`;
  }
  if (!isGranted(need)) return "not granted";
  for (const k of keep) {
    if (k.name !== need.name) continue;
    const kept = valueOf(k);
    if (kept === undefined) return `--allow-${need.name} is kept whole`;
    let covering: Deno.PermissionDescriptor[] | undefined;
    try {
      covering = sharedGrants(need, kept);
    } catch (error) {
      // Deno.cwd() fails when the working directory was removed: a relative
      // path cannot be placed, so whether a grant covers both is unknown.
      if (!(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable)) {
        throw error;
      }
    }
    if (covering === undefined || covering.some((d) => queryOrTrue(d))) {
      return `a grant that covers it may also cover the kept ${flagFor(k)}`;
    }
  }
  return undefined;
}

/**
 * The descriptors a single listed grant covering both `need`'s value and
 * `kept` would also cover: if none of them is granted, no entry covers
 * both. `undefined` when that cannot be told (the same value).
 */
function sharedGrants(need: PermissionNeed, kept: string): Deno.PermissionDescriptor[] | undefined {
  const value = valueOf(need)!;
  switch (need.name) {
    case "read":
    case "write":
    case "ffi": {
      const common = commonAncestor(value, kept);
      return common === undefined ? [] : [{ name: need.name, path: common }];
    }
    case "net":
    case "import":
      return sharedHosts(value, kept)?.map((host) => ({ name: need.name, host }));
    case "env": {
      if (value === kept) return undefined;
      let n = 0;
      while (n < value.length && value[n] === kept[n]) n++;
      // A wildcard entry "P*" covering both covers "<common prefix>*" too.
      return [{ name: "env", variable: `${value.slice(0, n)}*` }];
    }
    case "run":
    case "sys":
      // Entries name one program or kind each: only the same value shares one.
      return value === kept ? undefined : [];
  }
}

/** Hosts whose grant would cover both `a` and `b`: the same host, or a shared domain. */
function sharedHosts(a: string, b: string): string[] | undefined {
  if (a === b) return undefined;
  if (a.startsWith("unix:") || b.startsWith("unix:")) return [];
  const hostA = hostnameOf(a);
  const hostB = hostnameOf(b);
  const shared = hostA === hostB ? [hostA] : [];
  const isName = (host: string) => !host.startsWith("[") && !/^[\d.]+$/.test(host);
  if (isName(hostA) && isName(hostB)) {
    // A wildcard entry (*.example.com) covers every name below a domain and the domain.
    const labelsA = hostA.split(".").reverse();
    const labelsB = hostB.split(".").reverse();
    for (let n = 1; n <= Math.min(labelsA.length, labelsB.length); n++) {
      if (labelsA[n - 1] !== labelsB[n - 1]) break;
      const domain = labelsA.slice(0, n).reverse().join(".");
      if (!shared.includes(domain)) shared.push(domain);
    }
  }
  return shared;
}

/** The host of `HOST`, `HOST:PORT` or `[IPV6]:PORT`, in lower case. */
function hostnameOf(host: string): string {
  const text = host.toLowerCase();
  if (text.startsWith("[")) return text.slice(0, text.indexOf("]") + 1);
  const colon = text.lastIndexOf(":");
  return colon >= 0 && text.indexOf(":") === colon ? text.slice(0, colon) : text;
}

/** The deepest directory holding both paths, or `undefined` when they have different roots. */
function commonAncestor(a: string, b: string): string | undefined {
  const windows = Deno.build.os === "windows";
  const partsA = absoluteParts(a);
  const partsB = absoluteParts(b);
  const same = (x: string, y: string) => windows ? x.toLowerCase() === y.toLowerCase() : x === y;
  if (!same(partsA[0]!, partsB[0]!)) return undefined;
  let n = 1;
  while (n < partsA.length && n < partsB.length && same(partsA[n]!, partsB[n]!)) n++;
  const sep = windows ? "\\" : "/";
  return partsA[0]! + sep + partsA.slice(1, n).join(sep);
}

/** `[root, ...names]` of `path` made absolute and without `.`, `..` or doubled separators. */
function absoluteParts(path: string): string[] {
  const absolute = /^([\\/]|[A-Za-z]:[\\/])/.test(path) ? path : `${Deno.cwd()}/${path}`;
  const [root = "", ...rest] = absolute.split(/[\\/]+/);
  const names: string[] = [];
  for (const name of rest) {
    if (name === "" || name === ".") continue;
    if (name === "..") names.pop();
    else names.push(name);
  }
  return [root, ...names];
}

/** The nearest ancestor of `path` without a comma, keeping it absolute or relative. */
function commaFreeAncestor(path: string): string {
  const head = path.slice(0, path.indexOf(","));
  const cut = Math.max(head.lastIndexOf("/"), head.lastIndexOf("\\"));
  if (cut < 0) return ".";
  const ancestor = head.slice(0, cut);
  if (ancestor === "") return path[0]!; // the root directory
  return /^[A-Za-z]:$/.test(ancestor) ? ancestor + path[cut]! : ancestor;
}

/** The value of `need` after checking its name and value, `undefined` when it has none. */
function checkedValue(need: PermissionNeed): string | undefined {
  if (!Object.hasOwn(VALUE_KEY, need.name)) {
    throw new TypeError(
      `Cannot use permission need ${JSON.stringify(need)}: unknown name "${need.name}"; ` +
        `expected one of ${NAMES.join(", ")}`,
    );
  }
  const value = valueOf(need);
  if (value !== undefined && (typeof value !== "string" || value === "")) {
    throw new TypeError(
      `Cannot use permission need ${JSON.stringify(need)}: "${
        VALUE_KEY[need.name]
      }" must be a non-empty string or left out`,
    );
  }
  return value;
}

function valueOf(need: PermissionNeed): string | undefined {
  return (need as Record<string, unknown>)[VALUE_KEY[need.name]] as string | undefined;
}

/** `need` as a `Deno.PermissionDescriptor`, without `why`. */
function descriptorOf(need: PermissionNeed): Deno.PermissionDescriptor {
  const value = checkedValue(need);
  return (value === undefined ? { name: need.name } : {
    name: need.name,
    [VALUE_KEY[need.name]]: value,
  }) as Deno.PermissionDescriptor;
}

function isGranted(need: PermissionNeed): boolean {
  const descriptor = descriptorOf(need);
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch (error) {
    // querySync throws only for a descriptor it cannot parse (TypeError,
    // URIError, or Error "Empty path is not allowed").
    if (!(error instanceof Error)) throw error;
    throw new TypeError(`Cannot check permission ${flagFor(need)}: ${error.message}`, {
      cause: error,
    });
  }
}

/** Whether `descriptor` is granted; `true` when Deno cannot parse it, to stay on the safe side. */
function queryOrTrue(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    return true;
  }
}
