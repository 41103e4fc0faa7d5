import { deepEqual, match, ok, rejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  MAX_UDP_PAYLOAD,
  ping,
  serveUdp,
  type UdpEvent,
  udpRequest,
  UdpTimeoutError,
} from "../_lib.ts";
import { kill } from "../_cli.ts";
import { ipv6Loopback, waitFor } from "../_utils.ts";

/**
 * Whether [::1] can be bound here. The IPv6 tests are ignored without it
 * (the count shows them as ignored), never passed by returning early.
 */
const ipv6 = ipv6Loopback();

const bytes = (n: number) => new Uint8Array(n).map((_, i) => (i * 31 + 7) & 0xff);

Deno.test("datagrams of 0, 1, 1,200 and 65,507 bytes come back byte-exact", async () => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"] });
  for (const size of [0, 1, 1200, MAX_UDP_PAYLOAD]) {
    const reply = await udpRequest(server.addrs[0]!, bytes(size), { timeout: 500 });
    deepEqual(reply, bytes(size), `${size} bytes`);
  }
  deepEqual(server.stats.echoed, 4);
});

Deno.test({
  name: "IPv6 loopback works too",
  ignore: !ipv6, // no IPv6 loopback on this machine
  async fn() {
    await using server = serveUdp({ listen: ["[::1]:0"] });
    deepEqual(await udpRequest(server.addrs[0]!, bytes(10)), bytes(10));
  },
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
    // Wait, bounded, until the server has dealt with every datagram that
    // reached it (its count stays put for 100 ms: the kernel may have dropped
    // some of the flood) and each echo it sent the flood has arrived.
    let received = -1;
    let since = performance.now();
    await waitFor(
      () => {
        if (server.stats.received !== received) {
          received = server.stats.received;
          since = performance.now();
        }
        return performance.now() - since >= 100 &&
          answered === server.stats.echoed - other.received;
      },
      2000,
      () => `the flood to settle: ${answered} answers, ${JSON.stringify(server.stats)}`,
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

/** A peer tool that can send a UDP datagram and print the reply, with its flags. */
interface PeerTool {
  /** What the tool is, as its help or version text names it. */
  flavour: string;
  /** The arguments that send stdin to 127.0.0.1:`port` over UDP and print what comes back. */
  args(port: number): string[];
}

/** The help or version text `program ARGS` prints, or undefined when it is not installed. */
async function banner(program: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await new Deno.Command(program, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return decoder.decode(stdout) + decoder.decode(stderr);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * What `program` is here, or why it cannot be used. `nc` may be OpenBSD
 * netcat or nmap's Ncat (`ncat` is always Ncat), and their UDP flags differ:
 * OpenBSD nc needs `-w` to quit once stdin has ended and the peer is quiet;
 * Ncat's `-w` is a connect timeout, and Ncat quits at stdin's end by itself.
 */
async function peerTool(program: "socat" | "nc" | "ncat"): Promise<PeerTool | string> {
  if (program === "socat") {
    const text = await banner("socat", ["-V"]);
    if (text === undefined) return "socat is not installed";
    return { flavour: "socat", args: (port) => ["-T", "1", "-", `UDP:127.0.0.1:${port}`] };
  }
  const text = await banner(program, ["-h"]);
  if (text === undefined) return `${program} is not installed`;
  if (/OpenBSD netcat/.test(text)) {
    return {
      flavour: "OpenBSD netcat",
      args: (port) => ["-u", "-w", "1", "127.0.0.1", String(port)],
    };
  }
  if (/\bNcat\b/.test(text)) {
    return { flavour: "Ncat", args: (port) => ["-u", "127.0.0.1", String(port)] };
  }
  const first = text.trim().split("\n")[0] ?? "";
  return `${program} is neither OpenBSD netcat nor Ncat (${JSON.stringify(first)})`;
}

/**
 * Runs `program ARGS`, writes `line` to its stdin, reads its stdout until a
 * line has come back, then closes its stdin and waits for it to exit (10 s
 * at most, then SIGKILL). Stdin stays open until the reply is in because
 * Ncat in UDP mode quits as soon as stdin ends, before any reply arrives.
 */
async function exchange(program: string, args: string[], line: string) {
  const child = new Deno.Command(program, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => kill(child, "SIGKILL"), 10_000);
  try {
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const writer = child.stdin.getWriter();
    let stdout = "";
    try {
      await writer.write(new TextEncoder().encode(line));
      while (!stdout.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        stdout += value;
      }
      await writer.close();
    } catch (error) {
      // The tool quit early: its stdout and exit status tell why.
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    }
    for (let r = await reader.read(); !r.done; r = await reader.read()) stdout += r.value;
    const { code, signal } = await child.status;
    return { stdout, code, signal, stderr: await stderr };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a datagram from socat, nc or ncat is echoed back", async (t) => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"] });
  const { port } = server.addrs[0]!;
  const line = "hello from a peer tool\n";
  for (const program of ["socat", "nc", "ncat"] as const) {
    const tool = await peerTool(program);
    if (typeof tool === "string") {
      // A tool that cannot be used is ignored, and its step's name says why.
      await t.step({ name: `${program} (ignored: ${tool})`, ignore: true, fn: () => {} });
      continue;
    }
    await t.step(`${program} (${tool.flavour})`, async () => {
      const echoed = server.stats.echoed;
      const args = tool.args(port);
      const { stderr, ...result } = await exchange(program, args, line);
      deepEqual(
        result,
        { stdout: line, code: 0, signal: null },
        `${program} ${args.join(" ")}: ${JSON.stringify(result)}, stderr ${JSON.stringify(stderr)}`,
      );
      deepEqual(server.stats.echoed, echoed + 1, "the server echoed one datagram");
    });
  }
});

Deno.test("without --unstable-net the error names the flag", async () => {
  const mod = fileURLToPath(new URL("../../mod.ts", import.meta.url));
  // As a JSR user has it: the package's imports, without this repository's
  // "unstable" setting.
  const project = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
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

Deno.test({
  name: "a reply is matched to a target written in a non-canonical IPv6 form",
  ignore: !ipv6, // no IPv6 loopback on this machine
  async fn() {
    await using server = serveUdp({ listen: ["[::1]:0"] });
    const { port } = server.addrs[0]!;
    deepEqual(await udpRequest(`[0:0:0:0:0:0:0:1]:${port}`, bytes(4)), bytes(4));
  },
});

Deno.test("equal round trips give a deviation of 0, never NaN", async () => {
  await using server = serveUdp({ listen: ["127.0.0.1:0"] });
  const summary = await ping(server.addrs[0]!, { count: 1 });
  deepEqual(summary.mdev, 0);
});
