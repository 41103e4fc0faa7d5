import { deepEqual, match, ok } from "node:assert/strict";
import { CLI, NET, sockit, startCli } from "../_cli.ts";
import { startServer } from "../_utils.ts";
import denoConfig from "../../deno.json" with { type: "json" };

const TOKEN = "cli-test-token-0123456789";

Deno.test("sockit client echoes stdin lines and exits 0", async () => {
  await using server = await startCli(NET, ["--listen", "127.0.0.1:0"]);
  const result = await sockit(NET, ["client", server.address], {
    stdin: "hello\nsticky packets\n\nno newline at the end",
  });
  deepEqual(result, {
    code: 0,
    stdout: "hello\nsticky packets\n\nno newline at the end\n",
    stderr: "",
  });
  const stopped = await server.stop();
  deepEqual(stopped.code, 0);
  const events = stopped.stdout.trim().split("\n").map((l) => JSON.parse(l));
  deepEqual(events.map((e) => e.type), [
    "listening",
    "permissions",
    "connected",
    "session",
    "closed",
    "shutdown",
  ]);
  deepEqual(events[4].reason, "eof");
});

Deno.test("sockit client --json prints one object per reply", async () => {
  await using t = await startServer();
  const result = await sockit(NET, ["client", t.address, "--json"], { stdin: "a\nb\n" });
  deepEqual(result.code, 0);
  deepEqual(result.stdout, '{"event":"reply","text":"a"}\n{"event":"reply","text":"b"}\n');
});

Deno.test("sockit client reports a refused connection with exit 1 and one line", async () => {
  using probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const result = await sockit(NET, ["client", `127.0.0.1:${port}`], { stdin: "x\n" });
  deepEqual(result.code, 1);
  deepEqual(result.stderr, `error: Cannot connect to "127.0.0.1:${port}": connection refused\n`);
});

Deno.test("usage errors exit 2 with one line that points to help", async (t) => {
  for (
    const [name, args, message] of [
      ["no command", [], /Usage:/],
      ["unknown command", ["serve"], /unknown command "serve"/],
      ["missing address", ["client"], /missing ADDR/],
      ["unknown flag", ["client", "127.0.0.1:1", "--bogus"], /bogus/],
      [
        "bad duration",
        ["server", "--idle-timeout", "10"],
        /--idle-timeout: Cannot parse duration "10"/,
      ],
      ["bad size", ["server", "--max-frame", "1XB"], /--max-frame: Cannot parse size "1XB"/],
      ["bad address", ["server", "--listen", "localhost"], /Cannot parse address "localhost"/],
      ["a token on argv", ["client", "127.0.0.1:1", "--token", "x"], /token/],
      [
        "a value that starts with a dash, in one line",
        ["server", "--idle-timeout", "-1s"],
        /^error: --idle-timeout: the value "-1s" starts with "-"; write --idle-timeout=-1s to give it \(see "sockit help server"\)\n$/,
      ],
      [
        "a missing value",
        ["server", "--idle-timeout"],
        /^error: --idle-timeout needs a value \(see/,
      ],
    ] as const
  ) {
    await t.step(name, async () => {
      const result = await sockit(NET, [...args]);
      deepEqual(result.code, 2, result.stderr);
      match(result.stderr, message);
    });
  }
});

Deno.test("help and version exit 0 on stdout", async () => {
  const help = await sockit([], ["help", "server"]);
  deepEqual(help.code, 0);
  match(help.stdout, /--max-conns N/);
  const version = await sockit([], ["--version"]);
  deepEqual(version, { code: 0, stdout: "sockit 0.1.0\n", stderr: "" });
});

Deno.test("a missing permission is one line that names the flag", async () => {
  await using t = await startServer();
  const result = await sockit([], ["client", t.address], { stdin: "x\n" });
  deepEqual(result.code, 1);
  deepEqual(result.stderr.trim().split("\n").length, 1, result.stderr);
  match(result.stderr, new RegExp(`^error: .*missing permission --allow-net=${t.address}`));
});

Deno.test("token authentication from a file and from SOCKIT_TOKEN", async (t) => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/token`;
  await Deno.writeTextFile(file, TOKEN + "\n");
  await Deno.chmod(file, 0o600);
  const read = [`--allow-read=${file}`];
  try {
    await using server = await startCli([...NET, ...read], [
      "--listen",
      "127.0.0.1:0",
      "--token-file",
      file,
    ]);
    await t.step("no token: exit 1, says a token is required", async () => {
      const r = await sockit(NET, ["client", server.address], { stdin: "x\n" });
      deepEqual(r.code, 1);
      match(r.stderr, /requires a token/);
    });
    await t.step("token file", async () => {
      const r = await sockit([...NET, ...read], ["client", server.address, "--token-file", file], {
        stdin: "secret hello\n",
      });
      deepEqual(r, { code: 0, stdout: "secret hello\n", stderr: "" });
    });
    await t.step("SOCKIT_TOKEN", async () => {
      const r = await sockit([...NET, "--allow-env=SOCKIT_TOKEN"], ["client", server.address], {
        stdin: "env hello\n",
        env: { SOCKIT_TOKEN: TOKEN },
      });
      deepEqual(r, { code: 0, stdout: "env hello\n", stderr: "" });
    });
    await t.step("wrong token: exit 1 with auth_failed", async () => {
      const r = await sockit([...NET, "--allow-env=SOCKIT_TOKEN"], ["client", server.address], {
        stdin: "x\n",
        env: { SOCKIT_TOKEN: "a-wrong-token-of-length" },
      });
      deepEqual(r.code, 1);
      match(r.stderr, /\(auth_failed\)/);
    });
    await t.step("a token file others can read is refused", async () => {
      await Deno.chmod(file, 0o644);
      const r = await sockit([...NET, ...read], ["client", server.address, "--token-file", file]);
      deepEqual(r.code, 1);
      match(r.stderr, /other users can access it \(mode 644\)/);
      await Deno.chmod(file, 0o600);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sockit client --raw half-closes and still receives the whole reply", async () => {
  // An upper-casing server that answers only after the client's EOF, like
  // the seed's classic exercise: a client that closed its socket at EOF
  // instead of half-closing would lose the reply.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    using conn = await listener.accept();
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(4096);
    for (let n; (n = await conn.read(buf)) !== null;) chunks.push(buf.slice(0, n));
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    const reply = new TextEncoder().encode(text.toUpperCase().repeat(1000));
    for (let at = 0; at < reply.length;) at += await conn.write(reply.subarray(at));
  })();
  const result = await sockit(NET, ["client", `127.0.0.1:${listener.addr.port}`, "--raw"], {
    stdin: "make me loud\n",
  });
  await serving;
  deepEqual(result.code, 0, result.stderr);
  deepEqual(result.stdout, "MAKE ME LOUD\n".repeat(1000));
});

Deno.test("sockit client --chat joins, talks and escapes what it prints", async () => {
  await using t = await startServer();
  const ada = new Deno.Command(Deno.execPath(), {
    args: ["run", ...NET, CLI, "client", t.address, "--chat", "ada"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const adaOut = ada.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const until = async (text: string) => {
    while (!seen.includes(text)) {
      const { value, done } = await adaOut.read();
      if (done) break;
      seen += value;
    }
  };
  await until("* members: ada\n");
  const bob = await sockit(NET, ["client", t.address, "--chat", "bob"], {
    stdin: "hello ada\n\u001b]0;pwned\u0007 \u202eevil\n",
  });
  deepEqual(bob, { code: 0, stdout: "* members: ada, bob\n", stderr: "" });
  await until("* bob left (quit)\n");
  await ada.stdin.close();
  for (let r = await adaOut.read(); !r.done; r = await adaOut.read()) seen += r.value;
  const { code } = await ada.status;
  await ada.stderr.cancel();
  deepEqual(code, 0);
  deepEqual(
    seen,
    [
      "* members: ada",
      "* bob joined",
      "<bob> hello ada",
      "<bob> \\x1b]0;pwned\\x07 \\u202eevil",
      "* bob left (quit)",
      "",
    ].join("\n"),
  );
});

Deno.test("sockit server on a Unix socket: mode 0600, stale file replaced, live one kept", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sockit.sock`;
  const perms = [`--allow-read=${path}`, `--allow-write=${path}`, `--allow-net=unix:${path}`];
  try {
    // A stale socket file, as a crashed server leaves it (a clean close removes it).
    const crash = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${
          JSON.stringify(path)
        } }); Deno.kill(Deno.pid, "SIGKILL");`,
      ],
    }).output();
    deepEqual(crash.signal, "SIGKILL");
    ok((await Deno.lstat(path)).isSocket);
    await using server = await startCli(perms, ["--listen", `unix:${path}`]);
    deepEqual(server.address, `unix:${path}`);
    deepEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
    const echo = await sockit(perms, ["client", `unix:${path}`], { stdin: "over unix\n" });
    deepEqual(echo, { code: 0, stdout: "over unix\n", stderr: "" });
    const second = await sockit(perms, ["server", "--listen", `unix:${path}`]);
    deepEqual(second.code, 1);
    match(second.stderr, /another server is listening there/);
    deepEqual((await server.stop()).code, 0);
    await Deno.lstat(path).then(
      () => ok(false, "socket file left behind"),
      (error) => ok(error instanceof Deno.errors.NotFound),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sockit server logs one text line per event on stderr", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...NET, CLI, "server", "--listen", "127.0.0.1:0"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const err = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("listening on")) {
    const { value, done } = await err.read();
    if (done) break;
    seen += value;
  }
  const address = /sockit: listening on (\S+)\n/.exec(seen)?.[1];
  ok(address, seen);
  const echo = await sockit(NET, ["client", address], { stdin: "x\n" });
  deepEqual(echo.code, 0);
  child.kill("SIGINT");
  for (let r = await err.read(); !r.done; r = await err.read()) seen += r.value;
  const { code } = await child.status;
  await child.stdout.cancel();
  deepEqual(code, 0);
  const lines = seen.trim().split("\n").map((l) => l.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, "ADDR"));
  deepEqual(lines, [
    "sockit: warning: no token: any client that can connect is served (use --token-file FILE, or SOCKIT_TOKEN with --allow-env=SOCKIT_TOKEN, to require one)",
    "sockit: listening on ADDR",
    "sockit: permissions after start-up: revoked read, write, net, env, run, sys, ffi, import; kept nothing",
    "sockit: connected #1 ADDR",
    "sockit: session #1 ADDR echo",
    "sockit: closed #1 ADDR echo: eof",
    "sockit: shutting down (0 sessions open)",
  ]);
});

Deno.test("sockit client --raw delivers all input to a peer that half-closes first", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const input = "0123456789abcdef".repeat(64 * 1024); // 1 MiB
  const counting = (async () => {
    using conn = await listener.accept();
    await conn.closeWrite(); // nothing to say, but keep listening
    let total = 0;
    const buf = new Uint8Array(65536);
    for (let n; (n = await conn.read(buf)) !== null;) total += n;
    return total;
  })();
  const result = await sockit(NET, ["client", `127.0.0.1:${listener.addr.port}`, "--raw"], {
    stdin: input,
  });
  deepEqual(await counting, input.length);
  deepEqual(result, { code: 0, stdout: "", stderr: "" });
});

Deno.test("sockit client --raw fails when the peer closes before the input is sent", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closing = (async () => {
    const conn = await listener.accept();
    conn.close();
  })();
  const result = await sockit(NET, ["client", `127.0.0.1:${listener.addr.port}`, "--raw"], {
    stdin: "x".repeat(32 * 1024 * 1024),
  });
  await closing;
  deepEqual(result.code, 1);
  match(
    result.stderr,
    /^error: Cannot send all input: the peer closed the connection after \d+ bytes\n$/,
  );
});

Deno.test("sockit client prints the lines before an overlong one, then fails", async () => {
  await using t = await startServer({ maxFrame: 1024 });
  const result = await sockit(NET, ["client", t.address], {
    stdin: `short\n${"x".repeat(2000)}\nnever sent\n`,
  });
  deepEqual(result.code, 1);
  deepEqual(result.stdout, "short\n");
  deepEqual(
    result.stderr,
    "error: Cannot send line: 2000 bytes exceed the server's limit of 1023 bytes per message\n",
  );
});

Deno.test("server-controlled error text is escaped before it reaches the terminal", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const evil = (async () => {
    using conn = await listener.accept();
    await conn.read(new Uint8Array(4096)); // the HELLO
    const body = { code: "busy\u001b[31m", message: "\u001b]0;pwned\u0007\u001b[2Jfake prompt $" };
    const payload = new TextEncoder().encode(" " + JSON.stringify(body));
    payload[0] = 5; // ERROR
    const frame = new Uint8Array(4 + payload.length);
    new DataView(frame.buffer).setUint32(0, payload.length);
    frame.set(payload, 4);
    await conn.write(frame);
  })();
  const result = await sockit(NET, ["client", `127.0.0.1:${listener.addr.port}`], { stdin: "x\n" });
  await evil;
  deepEqual(result.code, 1);
  deepEqual(result.stderr, "error: \\x1b]0;pwned\\x07\\x1b[2Jfake prompt $ (busy\\x1b[31m)\n");
});

Deno.test("out-of-range flag values are usage errors naming the flag", async (t) => {
  for (
    const [args, message] of [
      [["--handshake-timeout", "0s"], /--handshake-timeout: .*above zero/],
      [["--max-frame", "5GiB"], /--max-frame: .*4GiB - 1/],
      [["--max-frame", "0"], /--max-frame: .*from 1 byte/],
      [["--max-conns", "0"], /--max-conns: .*positive whole number/],
    ] as const
  ) {
    await t.step(args.join(" "), async () => {
      const result = await sockit(NET, ["server", ...args]);
      deepEqual(result.code, 2);
      match(result.stderr, message);
    });
  }
});

Deno.test("an unknown flag or command is a usage error that suggests the nearest name", async (t) => {
  for (
    const [args, first, usage] of [
      [
        ["server", "--listn", "127.0.0.1:0"],
        'error: unknown option "--listn" (did you mean --listen?)',
        "server",
      ],
      [
        ["client", "127.0.0.1:1", "--tsl"],
        'error: unknown option "--tsl" (did you mean --tls?)',
        "client",
      ],
      [
        ["upload", "127.0.0.1:1", "f", "--overwrit=yes"],
        'error: unknown option "--overwrit" (did you mean --overwrite?)',
        "upload",
      ],
      [["server", "--zzzzzz"], 'error: unknown option "--zzzzzz"', "server"],
      [["server", "-q"], 'error: unknown option "-q"', "server"],
      [["sever"], 'error: unknown command "sever" (did you mean server?)', ""],
      [["--verison"], 'error: unknown command "--verison" (did you mean --version?)', ""],
      [["help", "uplod"], 'error: unknown command "uplod" (did you mean upload?)', ""],
      [["frobnicate"], 'error: unknown command "frobnicate"', ""],
      [
        ["completions", "bsh"],
        'error: unknown shell "bsh" (did you mean bash?)',
        "completions",
      ],
    ] as const
  ) {
    await t.step(args.join(" "), async () => {
      // No permissions: arguments are checked before anything is touched.
      const result = await sockit([], [...args]);
      deepEqual(result.code, 2, result.stderr);
      deepEqual(result.stdout, "");
      // One line, and where to read more.
      deepEqual(result.stderr, `${first} (see "sockit help${usage ? ` ${usage}` : ""}")\n`);
    });
  }
});

Deno.test("sockit --version and -V print the version in deno.json", async () => {
  const expected = `sockit ${denoConfig.version}\n`;
  deepEqual(await sockit([], ["--version"]), { code: 0, stdout: expected, stderr: "" });
  deepEqual(await sockit([], ["-V"]), { code: 0, stdout: expected, stderr: "" });
});

Deno.test("help COMMAND and COMMAND --help print the same text on stdout", async () => {
  for (const command of ["server", "client", "exec", "upload", "completions"]) {
    const help = await sockit([], ["help", command]);
    deepEqual(help.code, 0);
    match(help.stdout, new RegExp(`^Usage: sockit ${command}`));
    match(help.stdout, /\nExamples:\n {2}\S/);
    deepEqual(await sockit([], [command, "--help"]), help);
  }
});

/** Each `--flag` an option line of `sockit help COMMAND` lists. */
async function helpFlags(command: string): Promise<string[]> {
  const { stdout } = await sockit([], ["help", command]);
  return [...stdout.matchAll(/^ {2}(?:-\w, | {4})(--[\w-]+)/gm)].map((m) => m[1]!);
}

Deno.test("sockit completions bash offers every subcommand and every flag of each", async () => {
  const result = await sockit([], ["completions", "bash"]);
  deepEqual(result.code, 0, result.stderr);
  deepEqual(result.stderr, "");
  const script = result.stdout;
  match(script, /^complete -o default -F _sockit sockit$/m);
  match(script, /compgen -W 'server client exec upload help completions --version --help'/);
  for (const command of ["server", "client", "exec", "upload", "completions"]) {
    const flags = await helpFlags(command);
    ok(flags.length > 0, command);
    const offered = script.match(new RegExp(`^ {4}${command}\\)\\n(?:.*\\n)*? {6};;$`, "m"))?.[0];
    ok(offered, `no case for ${command}`);
    for (const flag of flags) match(offered, new RegExp(`[' ]${flag}[' ]`), `${command} ${flag}`);
  }
  ok(script.includes("--listen"));
});

/** Whether `program` runs here. */
async function installed(program: string): Promise<boolean> {
  try {
    await new Deno.Command(program, { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test("completion scripts parse in bash, zsh and fish (each skipped when not installed)", async (t) => {
  for (
    const [shell, check] of [
      ["bash", ["-n"]],
      ["zsh", ["-n"]],
      ["fish", ["--no-execute"]],
    ] as const
  ) {
    const present = await installed(shell);
    if (!present) console.log(`skipped: ${shell} is not installed, its script is not parsed`);
    await t.step({
      name: `${shell} ${check.join(" ")}`,
      ignore: !present,
      fn: async () => {
        const result = await sockit([], ["completions", shell]);
        deepEqual(result.code, 0, result.stderr);
        const file = await Deno.makeTempFile({ suffix: `.${shell}` });
        try {
          await Deno.writeTextFile(file, result.stdout);
          const parsed = await new Deno.Command(shell, { args: [...check, file] }).output();
          const errors = new TextDecoder().decode(parsed.stderr);
          deepEqual([parsed.code, errors], [0, ""]);
        } finally {
          await Deno.remove(file);
        }
      },
    });
  }
});

Deno.test("the bash completion completes subcommands, flags and operands", async (t) => {
  const present = await installed("bash");
  if (!present) console.log("skipped: bash is not installed");
  const { stdout: script } = await sockit([], ["completions", "bash"]);
  for (
    const [line, expected] of [
      ["sockit se", "server"],
      ["sockit server --lis", "--listen"],
      ["sockit server --tls", "--tls --tls-cert --tls-key"],
      ["sockit client 127.0.0.1:7070 --tl", "--tls"],
      ["sockit upload 127.0.0.1:7070 --res", "--resume"],
      ["sockit exec 127.0.0.1:7070 --ti", "--timeout"],
      ["sockit exec 127.0.0.1:7070 -- ls --ti", ""], // the remote command's own flags
      ["sockit server --listen ", ""], // a value: bash's default applies
      ["sockit help ex", "exec"],
      ["sockit completions ", "bash zsh fish"],
      ["sockit --vers", "--version"],
    ] as const
  ) {
    await t.step({
      name: JSON.stringify(line),
      ignore: !present,
      fn: async () => {
        const words = line.split(" ");
        const test = `${script}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})
COMP_CWORD=${words.length - 1}
_sockit
printf '%s' "\${COMPREPLY[*]}"`;
        const { code, stdout, stderr } = await new Deno.Command("bash", {
          args: ["--norc", "--noprofile", "-c", test],
        }).output();
        const decoder = new TextDecoder();
        deepEqual([code, decoder.decode(stdout), decoder.decode(stderr)], [0, expected, ""]);
      },
    });
  }
});
