import { deepEqual, match, ok } from "node:assert/strict";
import { NET, sockit, startCli } from "../_cli.ts";

/** A UDP port nothing listens on right now (bound, noted, released). */
function freeUdpPort(): number {
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const { port } = probe.addr as Deno.NetAddr;
  probe.close();
  return port;
}

Deno.test("sockit server --udp with sockit client --udp: lines, ping and its summary", async (t) => {
  const port = freeUdpPort();
  const udp = `127.0.0.1:${port}`;
  await using server = await startCli(NET, [
    "--listen",
    "127.0.0.1:0",
    "--udp",
    udp,
    "--udp-max-datagram",
    "1200",
  ]);

  await t.step("each stdin line is one datagram; each reply is printed", async () => {
    const r = await sockit(NET, ["client", udp, "--udp"], { stdin: "hello\nwörld\n\nlast" });
    deepEqual([r.code, r.stdout, r.stderr], [0, "hello\nwörld\n\nlast\n", ""]);
  });

  await t.step("--json gives one object per reply", async () => {
    const r = await sockit(NET, ["client", udp, "--udp", "--json"], { stdin: "a\n" });
    deepEqual(r.code, 0, r.stderr);
    deepEqual(JSON.parse(r.stdout), { event: "reply", bytes: 1, text: "a" });
  });

  await t.step("ping: every probe answered, a ping-style summary, exit 0", async () => {
    const r = await sockit(NET, [
      "client",
      udp,
      "--udp",
      "--count",
      "3",
      "--interval",
      "20ms",
      "--size",
      "64",
    ]);
    deepEqual(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    for (const seq of [1, 2, 3]) {
      match(lines[seq - 1]!, new RegExp(`^64 bytes from ${udp}: seq=${seq} time=[\\d.]+ ms$`));
    }
    match(r.stdout, /3 datagrams sent, 3 received, 0% loss/);
    match(r.stdout, /rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms/);
  });

  await t.step("ping --json: replies and a summary as NDJSON", async () => {
    const r = await sockit(NET, [
      "client",
      udp,
      "--udp",
      "--count",
      "2",
      "--interval",
      "10ms",
      "--json",
    ]);
    deepEqual(r.code, 0, r.stderr);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    deepEqual(events.map((e) => e.event), ["reply", "reply", "summary"]);
    deepEqual([events[2].sent, events[2].received, events[2].loss], [2, 2, 0]);
  });

  await t.step(
    "probes over the server's datagram limit are dropped: 100% loss, exit 1",
    async () => {
      const r = await sockit(NET, [
        "client",
        udp,
        "--udp",
        "--count",
        "2",
        "--interval",
        "10ms",
        "--size",
        "1201",
        "--timeout",
        "200ms",
      ]);
      deepEqual(r.code, 1, r.stdout);
      match(r.stdout, /2 datagrams sent, 0 received, 100% loss/);
    },
  );

  const stopped = await server.stop();
  deepEqual(stopped.code, 0, stopped.stderr);
  const events = stopped.stdout.trim().split("\n").map((l) => JSON.parse(l));
  ok(events.some((e) => e.type === "udp-listening" && e.address === udp), stopped.stdout);
  const dropped = events.find((e) => e.type === "udp-dropped");
  deepEqual([dropped?.reason, dropped?.size], ["oversize", 1201]);
  const closed = events.find((e) => e.type === "udp-closed");
  deepEqual(closed?.stats.oversize, 2);
});

Deno.test("ping to a port where nothing listens: 100% loss, a clear line, exit 1", async () => {
  const udp = `127.0.0.1:${freeUdpPort()}`;
  const r = await sockit(NET, [
    "client",
    udp,
    "--udp",
    "--count",
    "2",
    "--interval",
    "10ms",
    "--timeout",
    "150ms",
  ]);
  deepEqual(r.code, 1);
  match(r.stdout, /2 datagrams sent, 0 received, 100% loss/);
  match(r.stderr, /no reply from .*: nothing answers there, the port is closed or filtered/);
});

Deno.test("a line with no answer fails the UDP client with exit 1", async () => {
  const udp = `127.0.0.1:${freeUdpPort()}`;
  const r = await sockit(NET, ["client", udp, "--udp", "--timeout", "100ms"], { stdin: "x\n" });
  deepEqual(r.code, 1);
  match(r.stderr, /^error: No reply from "127\.0\.0\.1:\d+" to 3 datagrams/);
});

Deno.test("UDP usage errors exit 2", async (t) => {
  for (
    const [name, args] of [
      ["--count without --udp", ["client", "127.0.0.1:1", "--count", "3"]],
      ["--udp with --raw", ["client", "127.0.0.1:1", "--udp", "--raw"]],
      ["a probe smaller than its header", [
        "client",
        "127.0.0.1:1",
        "--udp",
        "--count",
        "1",
        "--size",
        "8",
      ]],
    ] as const
  ) {
    await t.step(name, async () => {
      const r = await sockit([], [...args]);
      deepEqual(r.code, 2, r.stderr);
    });
  }
});

Deno.test("UDP server flags are checked before anything listens", async (t) => {
  for (
    const [name, args] of [
      ["--udp-rate without --udp", ["--udp-rate", "5"]],
      ["a datagram limit above 65507", ["--udp", "127.0.0.1:0", "--udp-max-datagram", "64KiB"]],
      ["a Unix socket address", ["--udp", "unix:sockit-udp.sock"]],
    ] as const
  ) {
    await t.step(name, async () => {
      const r = await sockit(NET, ["server", "--listen", "127.0.0.1:0", ...args]);
      deepEqual(r.code, 2, r.stderr);
      ok(!r.stderr.includes("listening"), r.stderr);
    });
  }
});
