/**
 * The `echo` service: every DATA frame comes back unchanged.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";
import { MessageType } from "../protocol/protocol.ts";
import type { Service } from "../protocol/service.ts";
import { typeByte } from "../protocol/session.ts";

/**
 * Sends every DATA frame back unchanged and answers PING with PONG.
 *
 * Replies to frames that arrived together leave together in one write, and
 * the next read waits for that write, so a peer that stops reading stops the
 * service from reading too: its memory cannot grow.
 *
 * @example Serve echo on a free port
 * ```ts ignore
 * import { echoService, serve } from "@sockit/sockit";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"], services: [echoService] });
 * ```
 */
export const echoService: Service = {
  name: "echo",
  async handle(session, welcome) {
    await welcome();
    for (;;) {
      const payload = await session.read();
      if (payload === null) return;
      const type = payload[0];
      if (type === MessageType.Data) {
        session.writer.frame(payload);
      } else if (type === MessageType.Ping) {
        session.writer.frame(typeByte(MessageType.Pong), payload.subarray(1));
      } else {
        throw new ProtocolError(
          "bad_message",
          `Cannot serve echo: unexpected message type ${type ?? "(empty frame)"}`,
          { type: type ?? -1 },
        );
      }
      // Batch replies to frames already received; write before reading more.
      if (!session.reader.hasFrame) await session.flush();
    }
  },
};
