/**
 * {@linkcode serve}: the server core with sockit's default services. This
 * is the one server module that knows concrete services — the core
 * (`server.ts`) only knows the {@linkcode Service} interface.
 *
 * @module
 */

import { ChatRoom } from "../chat/chat.ts";
import { echoService } from "../echo/echo.ts";
import type { Service } from "../protocol/service.ts";
import { type ServeOptions, type Server, startServer } from "./server.ts";

/**
 * Starts a server on every address in `options.listen`.
 *
 * A stale Unix socket file left by a crash is replaced, but a live one is
 * never taken over; Unix sockets are made mode 0600.
 *
 * @param options addresses, services, token and limits
 * @returns the running server
 * @throws {Deno.errors.AddrInUse} when an address is taken
 * @throws {RangeError} when an option is out of range
 * @throws {TypeError} when a service that requires a token is offered without one
 *
 * @example Serve echo and chat on a free loopback port
 * ```ts
 * import { serve } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"] });
 * deepEqual(server.connections, 0);
 * ```
 */
export function serve(options: ServeOptions = {}): Promise<Server> {
  const services: readonly Service[] = options.services ?? [echoService, new ChatRoom()];
  return startServer({ ...options, services });
}
