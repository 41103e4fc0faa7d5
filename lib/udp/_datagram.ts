/**
 * What the UDP client and server share: the datagram size limit and the
 * check for Deno's unstable datagram API.
 *
 * @module
 */

/** The largest UDP payload over IPv4: 65,535 − 8 (UDP header) − 20 (IP header). */
export const MAX_UDP_PAYLOAD = 65_507;

/**
 * Throws a clear error when `Deno.listenDatagram` is missing: it is unstable
 * and exists only with `--unstable-net` (or `"unstable": ["net"]` in the
 * configuration).
 *
 * @throws {Error} naming the flag
 *
 * @example Check before using UDP
 * ```ts
 * import { requireDatagrams } from "@sockit/sockit/udp";
 *
 * requireDatagrams(); // passes here: the repository enables unstable net
 * ```
 */
export function requireDatagrams(): void {
  if (typeof Deno.listenDatagram !== "function") {
    throw new Error(
      "Cannot use UDP: Deno.listenDatagram is unstable; run Deno with --unstable-net",
    );
  }
}
