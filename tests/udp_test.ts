import { deepEqual, match, ok, rejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  MAX_UDP_PAYLOAD,
  ping,
  serveUdp,
  type UdpEvent,
  udpRequest,
  type UdpServer,
  UdpTimeoutError,
} from "../mod.ts";
import { waitFor } from "./_utils.ts";

/** A UDP echo server on [::1], or undefined (with a note) where there is no IPv6 loopback. */
function ipv6Server(): UdpServer | undefined {
  try {
    return serveUdp({ listen: ["[::1]:0"] });
  } catch (error) {
    console.log(`skipping: no IPv6 loopback here (${error})`);
    return undefined;
  }
}

const bytes = (n: number) => new Uint8Array(n).map((_, i) => (i * 31 + 7) & 0xff);

Deno.test("datagrams of 0, 1, 1,200 and 65,507 bytes come back byte-exact", async () => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"] });
  for (const size of [0, 1, 1200, MAX_UDP_PAYLOAD]) {
    const reply = await udpRequest(server.addrs[0]!, bytes(size), { timeout: 500 });
    deepEqual(reply, bytes(size), `${size} bytes`);
  }
  deepEqual(server.stats.echoed, 4);
});

Deno.test("IPv6 loopback works too", async () => {
  const server = ipv6Server();
  if (!server) return;
  await using _ = server;
  deepEqual(await udpRequest(server.addrs[0]!, bytes(10)), bytes(10));
});

Deno.test("a datagram over the limit is counted, reported and never answered", async () => {
  const events: UdpEvent[] = [];
  await using server = serveUdp({
    listen: ["127.0.0.1:0"],
    maxDatagram: 1200,
    onEvent: (e) => events.push(e),
  });
  await rejects(
    udpRequest(server.addrs[0]!, bytes(1201), { timeout: 150, retries: 1 }),
    UdpTimeoutError,
  );
  deepEqual(server.stats.oversize, 2);
  deepEqual(server.stats.echoed, 0);
  const dropped = events.filter((e) => e.type === "udp-dropped");
  // Reported once per source per interval, not once per datagram.
  deepEqual(dropped.length, 1);
  deepEqual(dropped[0], {
    type: "udp-dropped",
    remote: (dropped[0] as { remote: string }).remote,
    reason: "oversize",
    size: 1201,
    count: 1,
  });
  deepEqual(await udpRequest(server.addrs[0]!, bytes(1200)), bytes(1200));
});

Deno.test("ping a running server: every probe answered", async () => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"] });
  const replies: number[] = [];
  const summary = await ping(server.addrs[0]!, {
    count: 5,
    interval: 20,
    size: 64,
    onReply: (r) => replies.push(r.seq),
  });
  deepEqual([summary.sent, summary.received, summary.loss], [5, 5, 0]);
  deepEqual(replies, [1, 2, 3, 4, 5]);
  ok(summary.min <= summary.avg && summary.avg <= summary.max, JSON.stringify(summary));
  deepEqual([summary.duplicates, summary.late, summary.reordered], [0, 0, 0]);
});

Deno.test("ping a closed port: every probe lost, no crash", async () => {
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const summary = await ping(`127.0.0.1:${port}`, { count: 3, interval: 10, timeout: 100 });
  deepEqual([summary.sent, summary.received, summary.loss], [3, 0, 100]);
  ok(Number.isNaN(summary.avg));
});

Deno.test("a burst from one source is rate-limited while another source is answered", async () => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"], rate: 10, burst: 20 });
  const target = server.addrs[0]!;
  const flood = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    let answered = 0;
    const counting = (async () => {
      try {
        for (;;) {
          await flood.receive();
          answered++;
        }
      } catch {
        // closed below
      }
    })();
    // The flood runs while a second source pings. (It pauses now and then
    // only so that the kernel's socket buffer, which no server can empty
    // faster than it fills at full speed, does not drop the ping itself.)
    const started = performance.now();
    const flooding = (async () => {
      for (let i = 0; i < 300; i++) {
        await flood.send(bytes(32), target);
        if (i % 25 === 24) await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    const other = await ping(target, { count: 5, interval: 5, timeout: 300 });
    await flooding;
    const seconds = (performance.now() - started) / 1000;
    deepEqual(other.received, 5, "the second source was answered every time");
    // Wait, bounded, until the server has dealt with every datagram (the
    // flood's 300 and the 5 pings) and each echo it sent the flood has
    // arrived; if the kernel dropped some, the counts below still decide.
    await waitFor(
      () => server.stats.received >= 305 && answered === server.stats.echoed - other.received,
      2000,
    );
    flood.close();
    await counting;
    // The burst, plus what the rate refills while the test runs.
    const most = 20 + Math.ceil(10 * (seconds + 0.2));
    ok(answered >= 20 && answered <= most, `the flooding source got ${answered} answers`);
    ok(server.stats.rateLimited >= 270, JSON.stringify(server.stats));
  } finally {
    try {
      flood.close();
    } catch {
      // already closed
    }
  }
});

Deno.test("closing the server closes its socket and reports the totals", async () => {
  const events: UdpEvent[] = [];
  const server = serveUdp({ listen: ["127.0.0.1:0"], onEvent: (e) => events.push(e) });
  await udpRequest(server.addrs[0]!, bytes(3));
  await server.close();
  const closed = events.find((e) => e.type === "udp-closed");
  deepEqual(closed?.type === "udp-closed" && closed.stats.echoed, 1);
  await rejects(
    udpRequest(server.addrs[0]!, bytes(3), { timeout: 50, retries: 0 }),
    UdpTimeoutError,
  );
});

Deno.test("a datagram from socat or nc is echoed back", async (t) => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"] });
  const { port } = server.addrs[0]!;
  const tools: [string, string[]][] = [
    ["socat", ["-T", "1", "-", `UDP:127.0.0.1:${port}`]],
    ["nc", ["-u", "-w", "1", "127.0.0.1", String(port)]],
  ];
  for (const [tool, args] of tools) {
    await t.step({
      name: tool,
      ignore: !(await installed(tool)),
      fn: async () => {
        const child = new Deno.Command(tool, {
          args,
          stdin: "piped",
          stdout: "piped",
          stderr: "null",
        }).spawn();
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode("hello from a peer tool\n"));
        await writer.close();
        const { stdout } = await child.output();
        deepEqual(new TextDecoder().decode(stdout), "hello from a peer tool\n");
      },
    });
  }
});

async function installed(tool: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("sh", {
      args: ["-c", `command -v ${tool}`],
      stdout: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

Deno.test("without --unstable-net the error names the flag", async () => {
  const mod = fileURLToPath(new URL("../mod.ts", import.meta.url));
  // As a JSR user has it: the package's imports, without this repository's
  // "unstable" setting.
  const project = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const config = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(config, JSON.stringify({ imports: project.imports }));
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--config",
      config,
      "--no-lock",
      `import { serveUdp } from ${JSON.stringify(mod)}; serveUdp({ listen: ["127.0.0.1:0"] });`,
    ],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  await Deno.remove(config);
  ok(code !== 0);
  match(
    new TextDecoder().decode(stderr),
    /Deno\.listenDatagram is unstable; run Deno with --unstable-net/,
  );
});

Deno.test("a reply is matched to a target written in a non-canonical IPv6 form", async () => {
  const server = ipv6Server();
  if (!server) return;
  await using _ = server;
  const { port } = server.addrs[0]!;
  deepEqual(await udpRequest(`[0:0:0:0:0:0:0:1]:${port}`, bytes(4)), bytes(4));
});

Deno.test("equal round trips give a deviation of 0, never NaN", async () => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"] });
  const summary = await ping(server.addrs[0]!, { count: 1 });
  deepEqual(summary.mdev, 0);
});
