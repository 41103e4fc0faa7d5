/**
 * The `chat` service: a room where every message reaches every other member
 * exactly once, in order, and a member that stops reading is dropped instead
 * of stalling the room.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
import { encodeControl, MessageType } from "./protocol.ts";
import type { Service } from "./service.ts";
import { type Session, typeByte } from "./session.ts";

/** An event the chat service sends to members, as an EVENT message body. */
export type ChatEvent =
  | { kind: "members"; names: string[] }
  | { kind: "join"; name: string }
  | { kind: "leave"; name: string; reason: string }
  | { kind: "message"; from: string; text: string };

/** Options for {@linkcode ChatRoom}. */
export interface ChatRoomOptions {
  /**
   * Bytes that may wait to be written to one member. A member whose backlog
   * would grow past this is dropped with the code `slow_consumer`.
   *
   * @default {1048576}
   */
  maxBacklog?: number;
}

/** Longest nickname, in Unicode code points. */
export const MAX_NAME_LENGTH = 32;

/** Letters, digits, punctuation and symbols; no controls, format or space characters. */
const NAME_PATTERN = /^[^\p{C}\p{Z}]+$/u;

/**
 * Checks a chat nickname and returns its NFC form.
 *
 * @param name the nickname as sent
 * @returns the normalised nickname
 * @throws {ProtocolError} `bad_name` when it is empty, longer than 32 code
 *   points, or holds control, format (bidi) or space characters
 *
 * @example Accept and refuse names
 * ```ts
 * import { checkName } from "@sockit/sockit";
 * import { assertEquals, assertThrows } from "node:assert/strict";
 *
 * assertEquals(checkName("ada"), "ada");
 * assertThrows(() => checkName("evil\u001b[2J"));
 * assertThrows(() => checkName("two words"));
 * ```
 */
export function checkName(name: unknown): string {
  const text = typeof name === "string" ? name.normalize("NFC") : "";
  if (text === "" || [...text].length > MAX_NAME_LENGTH || !NAME_PATTERN.test(text)) {
    throw new ProtocolError(
      "bad_name",
      `Cannot join chat: a name is 1 to ${MAX_NAME_LENGTH} characters without spaces or control characters`,
      { maxLength: MAX_NAME_LENGTH },
    );
  }
  return text;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A chat room, served as the `chat` service.
 *
 * Members join with `params.name` in their HELLO. DATA frames from a member
 * are UTF-8 messages; each is sent to every other member as an EVENT
 * `{"kind":"message","from":NAME,"text":TEXT}`. Joins and leaves are
 * announced. Each member has a bounded backlog: a member that stops reading
 * is dropped (`slow_consumer`) and the others never wait for it.
 *
 * Text is passed on as sent; clients escape control characters before
 * printing (the sockit client does).
 *
 * @example Serve a room on a free port
 * ```ts ignore
 * import { ChatRoom, serve } from "@sockit/sockit";
 *
 * await using server = await serve({ listen: ["127.0.0.1:0"], services: [new ChatRoom()] });
 * ```
 */
export class ChatRoom implements Service {
  /** Always `"chat"`. */
  readonly name = "chat";
  readonly #maxBacklog: number;
  readonly #members = new Map<string, Session>();
  readonly #pumping = new Set<Session>();

  /**
   * Creates a `ChatRoom`.
   *
   * @param options limits
   * @throws {RangeError} when `maxBacklog` is not a positive integer
   */
  constructor(options: ChatRoomOptions = {}) {
    this.#maxBacklog = options.maxBacklog ?? 1024 * 1024;
    if (!Number.isSafeInteger(this.#maxBacklog) || this.#maxBacklog <= 0) {
      throw new RangeError(
        `Cannot use maxBacklog "${options.maxBacklog}": expected a positive integer`,
      );
    }
  }

  /** Names of the members present now. */
  get members(): string[] {
    return [...this.#members.keys()];
  }

  /**
   * Serves one member.
   *
   * @param session the member's connection
   * @param welcome accepts the member
   */
  async handle(session: Session, welcome: () => Promise<void>): Promise<void> {
    const name = checkName(session.params.name);
    if (this.#members.has(name)) {
      throw new ProtocolError("name_taken", `Cannot join chat: the name "${name}" is taken`, {
        name,
      });
    }
    this.#members.set(name, session);
    let reason = "quit";
    try {
      await welcome();
      this.#send(
        session,
        encodeControl(MessageType.Event, { kind: "members", names: this.members }),
      );
      this.#broadcast(session, { kind: "join", name });
      for (;;) {
        const payload = await session.read();
        if (payload === null) break;
        const type = payload[0];
        if (type === MessageType.Data) {
          let text: string;
          try {
            text = utf8.decode(payload.subarray(1));
          } catch (cause) {
            throw new ProtocolError("bad_message", "Cannot relay message: text is not UTF-8", {}, {
              cause,
            });
          }
          this.#broadcast(session, { kind: "message", from: name, text });
        } else if (type === MessageType.Ping) {
          session.writer.frame(typeByte(MessageType.Pong), payload.subarray(1));
          this.#pump(session);
        } else {
          throw new ProtocolError(
            "bad_message",
            `Cannot serve chat: unexpected message type ${type ?? "(empty frame)"}`,
            { type: type ?? -1 },
          );
        }
      }
    } catch (error) {
      reason = error instanceof ProtocolError ? error.code : "connection_lost";
      throw error;
    } finally {
      if (session.abortError) reason = session.abortError.code;
      if (this.#members.get(name) === session) this.#members.delete(name);
      this.#broadcast(session, { kind: "leave", name, reason });
    }
  }

  #broadcast(from: Session, event: ChatEvent): void {
    const payload = encodeControl(MessageType.Event, event);
    for (const member of this.#members.values()) {
      if (member !== from) this.#send(member, payload);
    }
  }

  #send(member: Session, payload: Uint8Array): void {
    if (member.abortError) return;
    const backlog = member.writer.pending + member.writer.inFlight + payload.length + 4;
    if (backlog > this.#maxBacklog) {
      member.abort(
        new ProtocolError(
          "slow_consumer",
          `Cannot deliver chat messages: more than ${this.#maxBacklog} bytes wait to be read`,
          { maxBacklog: this.#maxBacklog },
        ),
      );
      return;
    }
    member.writer.frame(payload);
    this.#pump(member);
  }

  /** Keeps one flush loop per member running while it has frames waiting. */
  #pump(member: Session): void {
    if (this.#pumping.has(member)) return;
    this.#pumping.add(member);
    (async () => {
      try {
        while (member.writer.pending > 0 && !member.abortError) await member.flush();
      } catch {
        // The write side failed (reset, closed): the member's read loop ends
        // with the same failure and announces the leave.
        member.destroy();
      } finally {
        this.#pumping.delete(member);
      }
    })();
  }
}
