import { deepEqual, ok } from "node:assert/strict";
import { ChatRoom, type ClientSession, connect, MessageType, RemoteError } from "../_lib.ts";
import {
  errorOf,
  helloFrame,
  messageFrame,
  rawConnect,
  readUntilClose,
  send,
  startServer,
  waitFor,
} from "../_utils.ts";

const text = new TextEncoder();

type Event = Record<string, unknown>;

function join(address: string, name: string): Promise<ClientSession> {
  return connect(address, { service: "chat", params: { name } });
}

/** Reads events until `until` matches one (included) or the session ends. */
async function eventsUntil(session: ClientSession, until: (e: Event) => boolean): Promise<Event[]> {
  const events: Event[] = [];
  for (;;) {
    const message = await session.read();
    if (message === null) return events;
    if (message.type !== MessageType.Event) continue;
    const event = JSON.parse(new TextDecoder().decode(message.body)) as Event;
    events.push(event);
    if (until(event)) return events;
  }
}

Deno.test("chat delivers every message to every other member exactly once, in order", async () => {
  await using t = await startServer();
  await using ada = await join(t.address, "ada");
  await using bob = await join(t.address, "bob");
  await using cy = await join(t.address, "cy");
  const count = 300;
  for (let i = 0; i < count; i++) {
    ada.writer.frame(new Uint8Array([MessageType.Data]), text.encode(`ada ${i}`));
    bob.writer.frame(new Uint8Array([MessageType.Data]), text.encode(`bob ${i}`));
  }
  await Promise.all([ada.writer.flush(), bob.writer.flush()]);
  await ada.send(MessageType.Data, text.encode("ada done"));
  await bob.send(MessageType.Data, text.encode("bob done"));

  const seenBy = async (session: ClientSession, others: string[]) => {
    const done = new Set<string>();
    const events = await eventsUntil(session, (e) => {
      if (e.kind === "message" && String(e.text).endsWith("done")) done.add(String(e.from));
      return others.every((o) => done.has(o));
    });
    return events.filter((e) => e.kind === "message" && !String(e.text).endsWith("done"));
  };
  const [atCy, atAda, atBob] = await Promise.all([
    seenBy(cy, ["ada", "bob"]),
    seenBy(ada, ["bob"]),
    seenBy(bob, ["ada"]),
  ]);
  const from = (events: Event[], name: string) =>
    events.filter((e) => e.from === name).map((e) => e.text);
  const expected = (name: string) => Array.from({ length: count }, (_, i) => `${name} ${i}`);
  deepEqual(from(atCy, "ada"), expected("ada"));
  deepEqual(from(atCy, "bob"), expected("bob"));
  deepEqual(from(atAda, "bob"), expected("bob"));
  deepEqual(from(atAda, "ada"), [], "a member does not get its own messages back");
  deepEqual(from(atBob, "ada"), expected("ada"));
});

Deno.test("chat announces joins and leaves and lists members on join", async () => {
  await using t = await startServer();
  await using ada = await join(t.address, "ada");
  deepEqual((await eventsUntil(ada, () => true))[0], { kind: "members", names: ["ada"] });
  const bob = await join(t.address, "bob");
  deepEqual((await eventsUntil(bob, () => true))[0], { kind: "members", names: ["ada", "bob"] });
  deepEqual((await eventsUntil(ada, () => true))[0], { kind: "join", name: "bob" });
  await bob.closeWrite();
  deepEqual(await bob.read(), null);
  bob.close();
  deepEqual((await eventsUntil(ada, () => true))[0], {
    kind: "leave",
    name: "bob",
    reason: "quit",
  });
});

Deno.test("chat refuses bad and taken names", async (t) => {
  await using s = await startServer();
  await using ada = await join(s.address, "ada");
  for (
    const [name, code] of [
      ["ada", "name_taken"],
      ["", "bad_name"],
      ["has space", "bad_name"],
      ["esc\u001b[31m", "bad_name"],
      ["rtl\u202eevil", "bad_name"],
      ["x".repeat(33), "bad_name"],
      [42, "bad_name"],
    ] as const
  ) {
    await t.step(JSON.stringify(name), async () => {
      try {
        (await connect(s.address, { service: "chat", params: { name } })).close();
        ok(false, "joined with a bad name");
      } catch (error) {
        ok(error instanceof RemoteError, String(error));
        deepEqual(error.code, code);
      }
    });
  }
  deepEqual((await eventsUntil(ada, () => true))[0], { kind: "members", names: ["ada"] });
});

Deno.test("chat passes control characters through as data for clients to escape", async () => {
  await using t = await startServer();
  await using ada = await join(t.address, "ada");
  await using bob = await join(t.address, "bob");
  await ada.send(MessageType.Data, text.encode("\u001b[2Jgotcha\u0007"));
  const events = await eventsUntil(bob, (e) => e.kind === "message");
  deepEqual(events.at(-1), { kind: "message", from: "ada", text: "\u001b[2Jgotcha\u0007" });
});

Deno.test("chat drops a member that stops reading and the others never wait", async () => {
  await using t = await startServer({
    services: [new ChatRoom({ maxBacklog: 256 * 1024 })],
    stallTimeout: 60_000,
  });
  using lurker = await rawConnect(t.address);
  await send(lurker, helloFrame("chat", { name: "lurker" }));
  await using ada = await join(t.address, "ada");
  await using bob = await join(t.address, "bob");
  await waitFor(
    () => t.events.filter((e) => e.type === "session").length === 3,
    5000,
    "the three members' sessions",
  );
  const big = "x".repeat(60_000);
  let delivered = 0;
  let notice: Event | undefined;
  // Bounded: at most 1,000 messages of 60 kB (60 MB); the lurker must go long before.
  for (let i = 0; i < 1000 && !notice; i++) {
    await ada.send(MessageType.Data, text.encode(big));
    const events = await eventsUntil(bob, (e) => e.kind === "message");
    delivered += events.filter((e) => e.kind === "message").length;
    notice = events.find((e) => e.kind === "leave");
  }
  deepEqual(notice, { kind: "leave", name: "lurker", reason: "slow_consumer" });
  ok(delivered >= 4, `bob got ${delivered} messages`);
  await waitFor(
    () => t.events.some((e) => e.type === "closed" && e.reason === "slow_consumer"),
    5000,
    "the lurker's connection to close as slow_consumer",
  );
  await ada.send(MessageType.Data, text.encode("after"));
  deepEqual((await eventsUntil(bob, (e) => e.kind === "message")).at(-1)?.text, "after");
});

Deno.test("chat rejects a message that is not UTF-8", async () => {
  await using t = await startServer();
  using conn = await rawConnect(t.address);
  await send(conn, helloFrame("chat", { name: "ada" }));
  await send(conn, messageFrame(MessageType.Data, new Uint8Array([0xff, 0xfe])));
  deepEqual(errorOf(await readUntilClose(conn))?.code, "bad_message");
});
