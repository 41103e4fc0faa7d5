/**
 * Every subcommand checks all its flags before it touches anything: a bad
 * flag or combination ends with the usage error alone, and leaves no token,
 * TLS identity, upload area, events file, listener or connection behind.
 *
 * Each row runs the real CLI with broad permissions (so that making files,
 * listening and connecting would all be allowed) and a fresh, empty HOME,
 * and asserts the exit code, the exact stderr (the usage error and nothing
 * else: no "generated a token", no TLS fingerprint, no listening event),
 * an empty stdout, that HOME and the upload directory are still empty, and
 * that nothing connected to the address the row uses.
 */

import { deepEqual } from "node:assert/strict";
import { sockit } from "../_cli.ts";

/** Enough for every side effect a row could wrongly have. */
const PERMISSIONS = [
  "--allow-net=127.0.0.1,0.0.0.0",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys=statfs",
];

/** The paths and the address a row's arguments use. */
interface Place {
  /** `127.0.0.1:PORT` of a listener the test holds: a server cannot bind it, a client reaches it. */
  address: string;
  /** The child's HOME, empty at the start. */
  home: string;
  /** An existing, empty upload directory (mode 700, so that a server could use it). */
  uploads: string;
  /** An existing file to upload. */
  file: string;
  /** A valid token file (mode 600), for a server that then generates none. */
  token: string;
}

interface Row {
  name: string;
  args: (p: Place) => string[];
  message: string | ((p: Place) => string);
}

/**
 * A TCP listener on a free loopback port that counts the connections made
 * to it. Held open, it also makes any attempt to listen on its address fail.
 */
class Watch implements Disposable {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });

  get address(): string {
    return `127.0.0.1:${this.#listener.addr.port}`;
  }

  /**
   * The connections made so far: connects once itself and accepts up to
   * that connection, so every earlier one (queued by the kernel even if
   * its maker has exited) is counted, without a timeout to guess.
   */
  async connections(): Promise<number> {
    using sentinel = await Deno.connect({ hostname: "127.0.0.1", port: this.#listener.addr.port });
    const mine = sentinel.localAddr.port;
    for (let seen = 0;; seen++) {
      using conn = await this.#listener.accept();
      if (conn.remoteAddr.port === mine) return seen;
    }
  }

  [Symbol.dispose](): void {
    this.#listener.close();
  }
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** Runs each row as a step: the one-line usage error with its pointer to help, exit `code`, nothing made, nothing reached. */
async function rejectsEach(
  t: Deno.TestContext,
  command: string,
  code: number,
  rows: readonly Row[],
): Promise<void> {
  const scratch = await Deno.makeTempDir({ prefix: "sockit-validation-" });
  try {
    const file = `${scratch}/file.txt`;
    await Deno.writeTextFile(file, "hello\n");
    const token = `${scratch}/token`;
    await Deno.writeTextFile(token, "validation-test-token-0123456789\n", { mode: 0o600 });
    await Deno.chmod(token, 0o600);
    for (const row of rows) {
      await t.step(row.name, async () => {
        const home = await Deno.makeTempDir({ dir: scratch, prefix: "home-" });
        const uploads = await Deno.makeTempDir({ dir: scratch, prefix: "uploads-" });
        await Deno.chmod(uploads, 0o700);
        using watch = new Watch();
        const place = { address: watch.address, home, uploads, file, token };
        const message = typeof row.message === "string" ? row.message : row.message(place);
        const result = await sockit(PERMISSIONS, row.args(place), {
          clearEnv: true,
          env: { HOME: home },
        });
        deepEqual(result, {
          code,
          stdout: "",
          stderr: `error: ${message} (see "sockit help ${command}")\n`,
        });
        deepEqual(await entries(home), [], "nothing is made in HOME");
        deepEqual(await entries(uploads), [], "the upload directory is not touched");
        deepEqual(await watch.connections(), 0, "nothing connects");
      });
    }
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

const DURATION = 'expected a number and a unit (ms, s, m, h), such as "10s"';
const PIN = 'Cannot use fingerprint "nothex": expected sha256: and 64 hex digits (colons ' +
  "allowed), as openssl x509 -noout -fingerprint -sha256 prints";

Deno.test("sockit server rejects bad flags before it makes a token, a certificate or a listener", async (t) => {
  // --json: a listening event would go to stdout, which must stay empty;
  // --listen on the watched address: binding it would fail another way.
  const server = (
    p: Place,
    ...args: string[]
  ) => ["server", "--json", "--listen", p.address, ...args];
  await rejectsEach(t, "server", 2, [
    {
      name: "--udp-rate without --udp, with --exec (no token is generated)",
      args: (p) => server(p, "--exec", "--udp-rate", "5"),
      message: "--udp-rate needs --udp",
    },
    {
      name: "--udp-burst without --udp, with --upload-dir (the directory is not touched)",
      args: (p) => server(p, "--upload-dir", p.uploads, "--udp-burst", "3"),
      message: "--udp-burst needs --udp",
    },
    {
      name:
        "--udp-burst without --udp, with --upload-dir and --token-file (no partial area is made)",
      args: (p) =>
        server(p, "--upload-dir", p.uploads, "--token-file", p.token, "--udp-burst", "3"),
      message: "--udp-burst needs --udp",
    },
    {
      name: "--upload-dir that does not exist, with a stray --udp-max-datagram",
      args: (p) => server(p, "--upload-dir", `${p.home}/made`, "--udp-max-datagram", "1"),
      message: "--udp-max-datagram needs --udp",
    },
    {
      name: "--tls-cert without --tls-key",
      args: (p) => server(p, "--tls", "--tls-cert", "x"),
      message: "--tls-cert and --tls-key go together",
    },
    {
      name: "--exec-max 0",
      args: (p) => server(p, "--exec", "--exec-max", "0"),
      message: '--exec-max: Cannot parse "0": expected a positive whole number',
    },
    {
      name: "--exec-timeout without --exec",
      args: (p) => server(p, "--exec-timeout", "5s"),
      message: "--exec-timeout needs --exec",
    },
    {
      name: "--max-conns 0 with --tls and --exec (no certificate is made)",
      args: (p) => server(p, "--tls", "--exec", "--max-conns", "0"),
      message: '--max-conns: Cannot parse "0": expected a positive whole number',
    },
    {
      name: "a bad --idle-timeout with --upload-dir",
      args: (p) => server(p, "--upload-dir", p.uploads, "--idle-timeout", "10"),
      message: `--idle-timeout: Cannot parse duration "10": ${DURATION}`,
    },
    {
      name: "--max-upload-size without --upload-dir",
      args: (p) => server(p, "--exec", "--max-upload-size", "1MiB"),
      message: "--max-upload-size needs --upload-dir",
    },
    {
      name: "a bad --allow rule with --exec",
      args: (p) => server(p, "--exec", "--allow", "10.0.0.300"),
      message: 'Cannot use access rule "10.0.0.300": "10.0.0.300" is not an IP address (IPv4 ' +
        "is four decimal numbers 0 to 255, such as 10.0.0.0/8; IPv6 such as 2001:db8::/32)",
    },
    {
      name: "exec on a non-loopback address without TLS",
      args: (p) => server(p, "--exec", "--listen", "0.0.0.0:0"),
      message: "exec and upload on 0.0.0.0:0 (not a loopback address) need TLS: add --tls " +
        "(or --tls-cert and --tls-key), or --insecure-plaintext to send the data unencrypted",
    },
    {
      name: "a bad --udp-max-datagram with --udp and --exec",
      args: (p) => server(p, "--exec", "--udp", "127.0.0.1:0", "--udp-max-datagram", "70000"),
      message: '--udp-max-datagram: Cannot use "70000": expected at most 65507 bytes',
    },
  ]);
});

Deno.test("sockit client rejects bad flags before it connects or reads stdin", async (t) => {
  await rejectsEach(t, "client", 2, [
    {
      name: "--tls with a bad --pin",
      args: (p) => ["client", "--tls", "--pin", "nothex", p.address],
      message: `--pin: ${PIN}`,
    },
    {
      name: "--ca with --known-hosts",
      args: (p) => [
        "client",
        p.address,
        "--ca",
        p.file,
        "--known-hosts",
        `${p.home}/known_hosts`,
      ],
      message: "--ca and --known-hosts cannot be combined",
    },
    {
      name: "a bad --connect-timeout in raw mode",
      args: (p) => ["client", "--raw", p.address, "--connect-timeout", "10"],
      message: `--connect-timeout: Cannot parse duration "10": ${DURATION}`,
    },
    {
      name: "a bad --interval with --udp, without --count",
      args: (p) => ["client", "--udp", p.address, "--interval", "soon"],
      message: `--interval: Cannot parse duration "soon": ${DURATION}`,
    },
    {
      name: "a bad --size with --udp, without --count",
      args: (p) => ["client", "--udp", p.address, "--size", "8"],
      message: '--size: Cannot use "8": expected 16 to 65507 bytes',
    },
  ]);
});

Deno.test("sockit exec rejects bad flags with 255 before it makes its events file or connects", async (t) => {
  await rejectsEach(t, "exec", 255, [
    {
      name: "a bad --connect-timeout",
      args: (p) => ["exec", p.address, "--connect-timeout", "0s", "--", "true"],
      message: '--connect-timeout: Cannot use "0s": expected a duration above zero',
    },
    {
      name: "a bad --pin with --json FILE (the file is not made)",
      args: (p) => [
        "exec",
        p.address,
        "--json",
        `${p.home}/events.ndjson`,
        "--tls",
        "--pin",
        "nothex",
        "--",
        "true",
      ],
      message: `--pin: ${PIN}`,
    },
    {
      name: "--insecure with --pin, and --json FILE",
      args: (p) => [
        "exec",
        p.address,
        "--json",
        `${p.home}/events.ndjson`,
        "--insecure",
        "--pin",
        "nothex",
        "--",
        "true",
      ],
      message: "--pin and --insecure cannot be combined",
    },
    {
      name: "a bad --env",
      args: (p) => ["exec", p.address, "--env", "NOEQUALS", "--", "true"],
      message: '--env: expected NAME=VALUE, got "NOEQUALS"',
    },
  ]);
});

Deno.test("sockit upload rejects bad flags before it connects", async (t) => {
  await rejectsEach(t, "upload", 2, [
    {
      name: "a bad --connect-timeout",
      args: (p) => ["upload", p.address, p.file, "--connect-timeout", "5"],
      message: `--connect-timeout: Cannot parse duration "5": ${DURATION}`,
    },
    {
      name: "--tls with a bad --pin",
      args: (p) => ["upload", "--tls", "--pin", "nothex", p.address, p.file],
      message: `--pin: ${PIN}`,
    },
  ]);
});

Deno.test("sockit completions rejects a bad shell and prints no script", async (t) => {
  await rejectsEach(t, "completions", 2, [
    {
      name: "an unknown shell",
      args: () => ["completions", "tcsh"],
      message: 'unknown shell "tcsh"',
    },
    {
      name: "an extra argument",
      args: () => ["completions", "bash", "zsh"],
      message: 'unexpected argument "zsh"',
    },
  ]);
});
