import { deepEqual } from "node:assert/strict";
import { connect, FrameDecoderStream, FrameEncoderStream, MessageType, serve } from "../_lib.ts";
import { ipv6Loopback } from "../_utils.ts";

const text = new TextEncoder();

Deno.test({
  name: "the server listens on IPv4 and IPv6 loopback at once",
  ignore: !ipv6Loopback(), // no IPv6 loopback on this machine
  async fn() {
    await using server = await serve({ listen: ["127.0.0.1:0", "[::1]:0"], lingerTime: 100 });
    deepEqual(server.addrs.map((a) => a.transport === "tcp" && a.hostname), [
      "127.0.0.1",
      "::1",
    ]);
    for (const addr of server.addrs) {
      await using session = await connect(addr);
      await session.send(MessageType.Data, text.encode("v" + JSON.stringify(addr)));
      deepEqual(
        new TextDecoder().decode((await session.read())?.body),
        "v" + JSON.stringify(addr),
      );
    }
  },
});

Deno.test("the stream codec composes with conn.readable and conn.writable", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const payloads = Array.from({ length: 50 }, (_, i) => new Uint8Array(i * 997).fill(i));
  const receiving = (async () => {
    const conn = await listener.accept();
    const got: Uint8Array[] = [];
    for await (const p of conn.readable.pipeThrough(new FrameDecoderStream())) got.push(p.slice());
    return got;
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  await ReadableStream.from(payloads).pipeThrough(new FrameEncoderStream()).pipeTo(conn.writable);
  deepEqual(await receiving, payloads);
});
