/**
 * The `chat` service: a room where every message reaches every other member
 * exactly once, in order, and a member that stops reading is dropped instead
 * of stalling the room.
 *
 * @module
 */

import { ProtocolError } from "../protocol/errors.ts";
import { encodeControl, MessageType } from "../protocol/protocol.ts";
import type { Service } from "../protocol/service.ts";
import { type Session, toProtocolError } from "../protocol/session.ts";
import type { ChatEvent } from "./chat_events.ts";

/** Options for {@linkcode ChatRoom}. */
export interface ChatRoomOptions {
  /**
   * Bytes that may wait to be written to one member. A member whose backlog
   * would grow past this is dropped with the code `slow_consumer`.
   *
   * @default {1048576}
   */
  maxBacklog?: number;
  /**
   * Longest message text in bytes of UTF-8. Longer messages are refused
   * with `bad_message`. Kept well below `maxBacklog`, since an event can be
   * up to six times its text once control characters are JSON-escaped.
   *
   * @default {65536}
   */
  maxMessage?: number;
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
 * import { checkName } from "./chat.ts";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * deepEqual(checkName("ada"), "ada");
 * throws(() => checkName("evil\u001b[2J"));
 * throws(() => checkName("two words"));
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
  readonly #maxMessage: number;
  readonly #members = new Map<string, Session>();
  readonly #names = new Map<Session, string>();
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
    this.#maxMessage = options.maxMessage ?? 64 * 1024;
    if (!Number.isSafeInteger(this.#maxMessage) || this.#maxMessage <= 0) {
      throw new RangeError(
        `Cannot use maxMessage "${options.maxMessage}": expected a positive integer`,
      );
    }
  }

  /** Names of the members present now (welcomed ones; not those still joining). */
  get members(): string[] {
    return [...this.#names.values()];
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
      this.#names.set(session, name);
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
          if (payload.length - 1 > this.#maxMessage) {
            throw new ProtocolError(
              "bad_message",
              `Cannot relay message: ${
                payload.length - 1
              } bytes exceed the limit of ${this.#maxMessage}`,
              { length: payload.length - 1, maxMessage: this.#maxMessage },
            );
          }
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
          // PONGs count against the backlog like events: a member that pings
          // without reading is a slow consumer too.
          const pong = payload.slice();
          pong[0] = MessageType.Pong;
          if (!this.#send(session, pong)) this.#leave(session, "slow_consumer");
        } else {
          throw new ProtocolError(
            "bad_message",
            `Cannot serve chat: unexpected message type ${type ?? "(empty frame)"}`,
            { type: type ?? -1 },
          );
        }
      }
    } catch (error) {
      reason = toProtocolError(error)?.code ?? "connection_lost";
      throw error;
    } finally {
      if (session.abortError) reason = session.abortError.code;
      if (this.#members.get(name) === session) this.#members.delete(name);
      this.#leave(session, reason);
    }
  }

  /** Announces that a member left, once, however many paths report it. */
  #leave(member: Session, reason: string): void {
    const name = this.#names.get(member);
    if (name === undefined) return;
    this.#names.delete(member);
    this.#members.delete(name);
    this.#broadcast(member, { kind: "leave", name, reason });
  }

  #broadcast(from: Session, event: ChatEvent): void {
    const payload = encodeControl(MessageType.Event, event);
    const dropped: Session[] = [];
    for (const member of this.#names.keys()) {
      if (member !== from && !this.#send(member, payload)) dropped.push(member);
    }
    // Announced after the loop, so every member sees the same order.
    for (const member of dropped) this.#leave(member, "slow_consumer");
  }

  /** Queues a frame for a member; returns false when the member had to be dropped. */
  #send(member: Session, payload: Uint8Array): boolean {
    if (member.abortError) return true;
    const backlog = member.writer.pending + member.writer.inFlight + payload.length + 4;
    if (backlog > this.#maxBacklog) {
      // Dropped now, not when its connection finally closes: the room stops
      // queueing for it at once and the others hear about it at once.
      member.abort(
        new ProtocolError(
          "slow_consumer",
          `Cannot deliver chat messages: more than ${this.#maxBacklog} bytes wait to be read`,
          { maxBacklog: this.#maxBacklog },
        ),
      );
      return false;
    }
    member.writer.frame(payload);
    this.#pump(member);
    return true;
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
