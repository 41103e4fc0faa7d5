/**
 * Parsing and formatting of the addresses sockit listens on and connects to:
 * `HOST:PORT`, `[IPV6]:PORT` and `unix:PATH`.
 *
 * @module
 */

/** A TCP address. */
export interface TcpAddress {
  /** Always `"tcp"`. */
  transport: "tcp";
  /** Host name or IP address, without brackets. */
  hostname: string;
  /** Port number; 0 asks the system for a free port when listening. */
  port: number;
}

/** A Unix domain socket address. */
export interface UnixAddress {
  /** Always `"unix"`. */
  transport: "unix";
  /** Path of the socket file. */
  path: string;
}

/** An address sockit can listen on or connect to. */
export type Address = TcpAddress | UnixAddress;

/** The address `sockit server` listens on when given none. */
export const DEFAULT_ADDRESS = "127.0.0.1:7070";

/**
 * Parses `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`.
 *
 * @param text the address
 * @returns the parsed address
 * @throws {TypeError} when the text is not one of the three forms or the port is out of range
 *
 * @example Parse each form
 * ```ts
 * import { parseAddress } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(parseAddress("127.0.0.1:7070"), { transport: "tcp", hostname: "127.0.0.1", port: 7070 });
 * deepEqual(parseAddress("[::1]:0"), { transport: "tcp", hostname: "::1", port: 0 });
 * deepEqual(parseAddress("unix:/tmp/s.sock"), { transport: "unix", path: "/tmp/s.sock" });
 * ```
 */
export function parseAddress(text: string): Address {
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length);
    if (path === "" || path.includes("\0")) {
      throw new TypeError(
        `Cannot parse address "${text}": expected unix:PATH with a non-empty path`,
      );
    }
    return { transport: "unix", path };
  }
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65_535) {
    throw new TypeError(
      `Cannot parse address "${text}": expected HOST:PORT, [IPV6]:PORT or unix:PATH`,
    );
  }
  return { transport: "tcp", hostname: match[1] ?? match[2]!, port };
}

/**
 * Formats an address back into the text form {@linkcode parseAddress} reads.
 *
 * @param address a parsed address or a `Deno.Addr`-like object
 * @returns the text form
 *
 * @example Bracket IPv6 hosts
 * ```ts
 * import { formatAddress } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(formatAddress({ transport: "tcp", hostname: "::1", port: 80 }), "[::1]:80");
 * deepEqual(formatAddress({ transport: "unix", path: "/run/s" }), "unix:/run/s");
 * ```
 */
export function formatAddress(
  address: { transport: string; hostname?: string; port?: number; path?: string | null },
): string {
  if (address.transport === "unix" || address.transport === "unixpacket") {
    return `unix:${address.path ?? ""}`;
  }
  const host = address.hostname ?? "";
  return `${host.includes(":") ? `[${host}]` : host}:${address.port ?? 0}`;
}
