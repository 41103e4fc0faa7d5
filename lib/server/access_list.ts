/**
 * IP access control for the server: `--allow CIDR`, `--deny CIDR` and
 * `--allow-file FILE`.
 *
 * The rules, in order:
 *
 * 1. A host inside any deny rule is refused, whatever the allow rules say.
 * 2. With no allow rules, every host not denied is allowed.
 * 3. With allow rules, only hosts inside one of them are allowed.
 *
 * A rule is an IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`,
 * `2001:db8::/32`) or a bare address, which means that single host (`/32` or
 * `/128`). An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, as a dual-stack
 * socket reports an IPv4 client) is matched as its IPv4 address, and a mapped
 * rule with a prefix of at least 96 bits is read as the IPv4 rule it spells.
 *
 * Security: access lists fail closed. Rules are parsed strictly — IPv4 only
 * as four decimal numbers, so the `inet_aton` shorthands (`010.0.0.1` as
 * octal, `10.1` as `10.0.0.1`, hex parts) that made other parsers disagree
 * about what a rule covers (CVE-2021-28918) are errors, as are host bits set
 * past the prefix (`10.1.2.3/8`), which usually mean a typo. A peer without
 * an IP address (a Unix-socket peer) is allowed only when there are no allow
 * rules, and a host that is neither an IP address nor a Unix-socket peer is
 * always refused, so a malformed address can never slip past a deny rule.
 *
 * @module
 */

import ipaddr from "ipaddr.js";
import { escapeForLog } from "../text/escape.ts";

/** The rules for {@linkcode AccessList.from}. */
export interface AccessRules {
  /**
   * Networks allowed in; when non-empty, every other host is refused.
   *
   * @default {[]}
   */
  allow?: readonly string[] | undefined;
  /**
   * Networks refused, even when an allow rule also matches.
   *
   * @default {[]}
   */
  deny?: readonly string[] | undefined;
}

/**
 * What {@linkcode AccessList.check} decided. When refused, `rule` is the deny
 * rule that matched, as it was written (`reason: "denied"`), or a short text
 * such as `"not in any allow rule"` (`reason: "not_allowed"`).
 */
export type AccessDecision =
  | { allowed: true }
  | { allowed: false; rule: string; reason: "denied" | "not_allowed" };

/**
 * A rule that is not a valid IPv4 or IPv6 network, or a line of an access
 * file that is not a rule.
 *
 * @example Read what was wrong
 * ```ts
 * import { AccessList } from "@sockit/sockit";
 * import { AccessRuleError } from "@sockit/sockit/server";
 * import { deepEqual, ok } from "node:assert/strict";
 *
 * try {
 *   AccessList.from({ allow: ["10.0.0.0/33"] });
 *   ok(false, "expected an AccessRuleError");
 * } catch (error) {
 *   ok(error instanceof AccessRuleError);
 *   deepEqual(error.rule, "10.0.0.0/33");
 *   deepEqual(
 *     error.message,
 *     'Cannot use access rule "10.0.0.0/33": prefix length must be 0 to 32 for IPv4',
 *   );
 * }
 * ```
 */
export class AccessRuleError extends TypeError {
  /** The rule, or the whole line of an access file, as written. */
  readonly rule: string;
  /** The access file's name, when the rule came from one with a name. */
  readonly file: string | undefined;
  /** The line number (from 1), when the rule came from an access file. */
  readonly line: number | undefined;

  /**
   * Creates an `AccessRuleError`.
   *
   * @param rule the rule or line as written
   * @param reason what is wrong with it, for people
   * @param where the access file and line it came from, if any
   */
  constructor(rule: string, reason: string, where: { file?: string; line?: number } = {}) {
    const at = where.line === undefined
      ? ""
      : ` on line ${where.line}${where.file === undefined ? "" : ` of "${where.file}"`}`;
    // The rule may come from a file of unknown origin: keep it printable and short.
    super(`Cannot use access rule "${escapeForLog(rule, 100)}"${at}: ${reason}`);
    this.name = "AccessRuleError";
    this.rule = rule;
    this.file = where.file;
    this.line = where.line;
  }
}

/** A parsed rule: the network, its prefix length, and the text it came from. */
interface Range {
  readonly network: ipaddr.IPv4 | ipaddr.IPv6;
  readonly prefix: number;
  readonly text: string;
}

/** Rules of both families, pre-parsed so that a check only compares bits. */
interface Ranges {
  readonly v4: readonly Range[];
  readonly v6: readonly Range[];
}

/** Why a refused host was refused when no deny rule matched it. */
const NOT_IN_ALLOW = "not in any allow rule";
const NOT_AN_IP = "not an IP address";

/**
 * Parses a peer's address strictly (see the module doc), folding an
 * IPv4-mapped IPv6 address to IPv4. Returns `undefined` for anything else.
 */
function parseHost(host: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return ipaddr.IPv4.parse(host);
  if (!ipaddr.IPv6.isValid(host)) return undefined;
  const address = ipaddr.IPv6.parse(host);
  return address.isIPv4MappedAddress() ? address.toIPv4Address() : address;
}

/** Whether `host` is how sockit names a peer on a Unix socket. */
function isUnixPeer(host: string): boolean {
  return host === "" || host === "unix" || host.startsWith("unix:");
}

function parseRule(text: string, where: { file?: string; line?: number } = {}): Range {
  const fail = (reason: string) => new AccessRuleError(text, reason, where);
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  if (addressText.includes("%")) {
    throw fail("zone indexes (%) are not supported in rules");
  } else if (ipaddr.IPv4.isValidFourPartDecimal(addressText)) {
    address = ipaddr.IPv4.parse(addressText);
  } else if (ipaddr.IPv6.isValid(addressText)) {
    address = ipaddr.IPv6.parse(addressText);
  } else {
    throw fail(
      `"${escapeForLog(addressText, 100)}" is not an IP address ` +
        "(IPv4 is four decimal numbers 0 to 255, such as 10.0.0.0/8; IPv6 such as 2001:db8::/32)",
    );
  }
  const bits = address.kind() === "ipv4" ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix <= bits)) {
      throw fail(`prefix length must be 0 to ${bits} for ${bits === 32 ? "IPv4" : "IPv6"}`);
    }
  }
  const network = address instanceof ipaddr.IPv4
    ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${prefix}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${address}/${prefix}`);
  if (network.toNormalizedString() !== address.toNormalizedString()) {
    throw fail(
      `the address has bits set past the /${prefix} prefix; the network is "${network}/${prefix}"`,
    );
  }
  // Peers that are IPv4-mapped are matched as IPv4, so a mapped rule must be too.
  if (network instanceof ipaddr.IPv6 && network.isIPv4MappedAddress() && prefix >= 96) {
    return { network: network.toIPv4Address(), prefix: prefix - 96, text };
  }
  return { network, prefix, text };
}

function parseRules(texts: readonly string[]): Ranges {
  const v4: Range[] = [];
  const v6: Range[] = [];
  for (const text of texts) {
    const range = parseRule(text);
    (range.network instanceof ipaddr.IPv4 ? v4 : v6).push(range);
  }
  return { v4, v6 };
}

/** The first range containing `address`, if any. */
function findRange(ranges: Ranges, address: ipaddr.IPv4 | ipaddr.IPv6): string | undefined {
  // Each family has its own list: ipaddr.js refuses to match across families.
  for (const r of address instanceof ipaddr.IPv4 ? ranges.v4 : ranges.v6) {
    if (address.match(r.network, r.prefix)) return r.text;
  }
  return undefined;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/**
 * A set of allow and deny rules, parsed once, checked per connection.
 *
 * A check parses the peer's address and compares it with the rules of its
 * family, first the deny rules, then the allow rules: its cost grows with the
 * number of rules (about 10 ns each), so a list of thousands still takes well
 * under a millisecond. See the module doc for the exact semantics.
 *
 * @example Allow a subnet except one host
 * ```ts
 * import { AccessList } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const list = AccessList.from({ allow: ["10.0.0.0/8"], deny: ["10.6.6.6"] });
 * deepEqual(list.check("10.1.2.3"), { allowed: true });
 * deepEqual(list.check("::ffff:10.1.2.3"), { allowed: true });
 * deepEqual(list.check("10.6.6.6"), { allowed: false, rule: "10.6.6.6", reason: "denied" });
 * deepEqual(list.check("192.0.2.1"), {
 *   allowed: false,
 *   rule: "not in any allow rule",
 *   reason: "not_allowed",
 * });
 * ```
 */
export class AccessList {
  /** The allow rules, as written. */
  readonly allow: readonly string[];
  /** The deny rules, as written. */
  readonly deny: readonly string[];
  readonly #allow: Ranges;
  readonly #deny: Ranges;
  readonly #hasAllow: boolean;

  /**
   * Parses the rules; same as {@linkcode AccessList.from}.
   *
   * @param rules the allow and deny rules
   * @throws {AccessRuleError} when a rule is not a valid address or network
   */
  constructor(rules: AccessRules = {}) {
    this.allow = Object.freeze([...rules.allow ?? []]);
    this.deny = Object.freeze([...rules.deny ?? []]);
    this.#allow = parseRules(this.allow);
    this.#deny = parseRules(this.deny);
    this.#hasAllow = this.allow.length > 0;
  }

  /**
   * Parses allow and deny rules into an access list.
   *
   * @param rules the allow and deny rules: CIDR networks or bare addresses
   * @returns the access list
   * @throws {AccessRuleError} when a rule is not a valid address or network
   *
   * @example Deny one network, allow everyone else
   * ```ts
   * import { AccessList } from "@sockit/sockit";
   * import { deepEqual } from "node:assert/strict";
   *
   * const list = AccessList.from({ deny: ["2001:db8::/32"] });
   * deepEqual(list.check("2001:db8::1").allowed, false);
   * deepEqual(list.check("2001:db9::1").allowed, true);
   * ```
   */
  static from(rules: AccessRules): AccessList {
    return new AccessList(rules);
  }

  /**
   * Decides whether a peer may connect.
   *
   * `host` is the peer's address without port or brackets, as in
   * `Deno.NetAddr.hostname`. A Unix-socket peer (`""`, `"unix"` or
   * `"unix:…"`) is allowed only when there are no allow rules; any other text
   * that is not an IP address is refused with rule `"not an IP address"`.
   *
   * @param host the peer's address
   * @returns `{ allowed: true }`, or why not
   *
   * @example Fail closed for Unix-socket peers once an allow list exists
   * ```ts
   * import { AccessList } from "@sockit/sockit";
   * import { deepEqual } from "node:assert/strict";
   *
   * deepEqual(AccessList.from({ deny: ["10.0.0.0/8"] }).check("unix").allowed, true);
   * deepEqual(AccessList.from({ allow: ["10.0.0.0/8"] }).check("unix").allowed, false);
   * ```
   */
  check(host: string): AccessDecision {
    const address = parseHost(host);
    if (address === undefined) {
      return isUnixPeer(host) && !this.#hasAllow
        ? { allowed: true }
        : { allowed: false, rule: NOT_AN_IP, reason: "not_allowed" };
    }
    const denied = findRange(this.#deny, address);
    if (denied !== undefined) return { allowed: false, rule: denied, reason: "denied" };
    if (!this.#hasAllow || findRange(this.#allow, address) !== undefined) return { allowed: true };
    return { allowed: false, rule: NOT_IN_ALLOW, reason: "not_allowed" };
  }

  /**
   * Summarises the list for a log line.
   *
   * @returns the rule counts and what an empty allow list means
   *
   * @example Describe a list
   * ```ts
   * import { AccessList } from "@sockit/sockit";
   * import { deepEqual } from "node:assert/strict";
   *
   * deepEqual(
   *   AccessList.from({ allow: ["10.0.0.0/8", "::1"], deny: ["10.6.6.6"] }).describe(),
   *   "2 allow rules (1 IPv4, 1 IPv6), 1 deny rule (1 IPv4, 0 IPv6)",
   * );
   * deepEqual(AccessList.from({}).describe(), "no access rules: every peer is allowed");
   * ```
   */
  describe(): string {
    if (this.allow.length === 0 && this.deny.length === 0) {
      return "no access rules: every peer is allowed";
    }
    const part = (n: number, noun: string, ranges: Ranges) =>
      `${count(n, noun)} (${ranges.v4.length} IPv4, ${ranges.v6.length} IPv6)`;
    const allow = this.allow.length === 0
      ? "no allow rules (every peer not denied is allowed)"
      : part(this.allow.length, "allow rule", this.#allow);
    return `${allow}, ${part(this.deny.length, "deny rule", this.#deny)}`;
  }
}

/**
 * Parses the text of an access file (`--allow-file FILE`) into allow and deny
 * rules, checking every rule.
 *
 * One rule per line: `allow CIDR`, `deny CIDR`, or a bare `CIDR`, which means
 * allow. A `#` starts a comment, to the end of the line; blank lines are
 * ignored. A CIDR may be a bare address (a single host).
 *
 * @param text the file's contents
 * @param name the file's name, for error messages
 * @returns the rules, in file order, ready for {@linkcode AccessList.from}
 * @throws {AccessRuleError} naming the file, the line number and the bad text
 *
 * @example Read an access file
 * ```ts
 * import { AccessList } from "@sockit/sockit";
 * import { parseAccessFile } from "@sockit/sockit/server";
 * import { deepEqual } from "node:assert/strict";
 *
 * const rules = parseAccessFile(
 *   "# office and VPN\n10.0.0.0/8\nallow 2001:db8::/32\n\ndeny 10.6.6.6  # old laptop\n",
 *   "access.txt",
 * );
 * deepEqual(rules, { allow: ["10.0.0.0/8", "2001:db8::/32"], deny: ["10.6.6.6"] });
 * deepEqual(AccessList.from(rules).check("10.6.6.6").allowed, false);
 * ```
 *
 * @example A bad line is reported with its number
 * ```ts
 * import { parseAccessFile } from "@sockit/sockit/server";
 * import { throws } from "node:assert/strict";
 *
 * throws(() => parseAccessFile("10.0.0.0/8\npermit 10.1.0.0/16\n", "access.txt"), {
 *   name: "AccessRuleError",
 *   line: 2,
 *   message:
 *     'Cannot use access rule "permit 10.1.0.0/16" on line 2 of "access.txt": ' +
 *     'expected "allow CIDR", "deny CIDR" or "CIDR"',
 * });
 * ```
 */
export function parseAccessFile(text: string, name?: string): { allow: string[]; deny: string[] } {
  const allow: string[] = [];
  const deny: string[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const where = name === undefined ? { line: index + 1 } : { file: name, line: index + 1 };
    const hash = raw.indexOf("#");
    const content = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (content === "") continue;
    const words = content.split(/\s+/);
    let list: string[];
    let rule: string;
    if (words.length === 1) {
      [list, rule] = [allow, words[0]!];
    } else if (words.length === 2 && (words[0] === "allow" || words[0] === "deny")) {
      [list, rule] = [words[0] === "allow" ? allow : deny, words[1]!];
    } else {
      throw new AccessRuleError(content, 'expected "allow CIDR", "deny CIDR" or "CIDR"', where);
    }
    parseRule(rule, where);
    list.push(rule);
  }
  return { allow, deny };
}
