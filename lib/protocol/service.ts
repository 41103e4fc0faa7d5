/**
 * The contract between the server core and the services it offers.
 *
 * @module
 */

import type { Session } from "./session.ts";

/**
 * A service the server offers by name, such as `echo` or `chat`.
 *
 * The server runs the handshake, then calls {@linkcode Service.handle}. The
 * service checks the HELLO's parameters (`session.params`) and either throws a
 * `ProtocolError` to refuse, or calls `welcome()` to accept and then serves
 * frames until the peer closes (return) or misbehaves (throw). The server
 * tells the peer about any thrown error and closes the connection.
 *
 * @example A service that answers every frame with its length
 * ```ts ignore
 * const lengths: Service = {
 *   name: "length",
 *   async handle(session, welcome) {
 *     await welcome();
 *     for (let p; (p = await session.read()) !== null;) {
 *       session.writer.frame(typeByte(MessageType.Data), new TextEncoder().encode(`${p.length}`));
 *       await session.flush();
 *     }
 *   },
 * };
 * ```
 */
export interface Service {
  /** The name clients ask for in their HELLO. */
  readonly name: string;
  /**
   * When true, {@linkcode serve} refuses to start without a token, and the
   * service refuses sessions that did not prove it.
   */
  readonly requiresToken?: boolean;
  /**
   * Serves one session.
   *
   * @param session the connection, handshake done
   * @param welcome accepts the session: sends WELCOME and lifts the frame limit
   */
  handle(session: Session, welcome: () => Promise<void>): Promise<void>;
}
