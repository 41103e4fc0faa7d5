/**
 * End-to-end tests of `sockit exec` and `sockit server --exec`: real CLI
 * processes (each with exactly the permission flags it needs) over real
 * loopback sockets.
 *
 * Every child runs in a cleared environment with a temporary HOME, so the
 * zero-config token lands in HOME/.config/sockit/token and nothing of the
 * test runner's environment (SOCKIT_TOKEN, XDG_CONFIG_HOME) leaks in.
 */

import { deepEqual, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { kill, NET, type Result, sockit, spawnCli, startCli } from "../_cli.ts";

/** A 26-character token that no generated one equals. */
const TOKEN = "exec-cli-test-token-012345";

/** Where the zero-config token of a server or client with this HOME lives. */
function tokenDir(home: string): string {
  return `${home}/.config/sockit`;
}

/** The flags a zero-config `server --exec` needs with this HOME (token generated on first use). */
function zeroConfigServer(home: string): string[] {
  return [
    ...NET,
    "--allow-run",
    "--allow-env=HOME,XDG_CONFIG_HOME,PATH,LANG",
    `--allow-read=${tokenDir(home)}`,
    `--allow-write=${tokenDir(home)}`,
  ];
}

/** The flags a `sockit exec` client needs to find the token of a server with this HOME. */
function zeroConfigClient(home: string): string[] {
  return [
    ...NET,
    "--allow-env=HOME,XDG_CONFIG_HOME,SOCKIT_TOKEN",
    `--allow-read=${tokenDir(home)}/token`,
  ];
}

/** The flags of a `sockit exec` client that gets its token from SOCKIT_TOKEN. */
const ENV_CLIENT = [...NET, "--allow-env=SOCKIT_TOKEN"];

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Parses an NDJSON events file. */
async function readEvents(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  ok(text.endsWith("\n"), `events file does not end in a newline: ${JSON.stringify(text)}`);
  return text.trimEnd().split("\n").map((line) => JSON.parse(line));
}

/**
 * Which of `pids` still run: their /proc entry exists and they are not
 * zombies. (The test runner cannot read /proc itself without --allow-all,
 * so `cat` does.)
 */
async function running(pids: readonly number[]): Promise<number[]> {
  const { stdout } = await new Deno.Command("cat", {
    args: pids.map((pid) => `/proc/${pid}/stat`),
    stderr: "null", // "No such file or directory" for the ones that are gone
  }).output();
  const alive = [];
  for (const stat of new TextDecoder().decode(stdout).split("\n").filter(Boolean)) {
    // "PID (COMM) STATE …": COMM may hold spaces and parentheses; STATE follows the last ")".
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state !== "Z" && state !== "X") alive.push(Number(stat.slice(0, stat.indexOf(" "))));
  }
  return alive;
}

/** Polls until none of `pids` runs, for `ms` at most; returns those still running. */
async function waitGone(pids: readonly number[], ms: number): Promise<number[]> {
  const deadline = performance.now() + ms;
  for (;;) {
    const left = await running(pids);
    if (left.length === 0 || performance.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Reads a child's stdout until `pattern` matches what it printed so far;
 * the child is killed (ending the wait) when `ms` pass first.
 */
async function readUntil(
  child: Deno.ChildProcess,
  reader: ReadableStreamDefaultReader<string>,
  seen: { text: string },
  pattern: RegExp,
  ms: number,
): Promise<RegExpExecArray> {
  const timer = setTimeout(() => kill(child, "SIGKILL"), ms);
  try {
    for (;;) {
      const found = pattern.exec(seen.text);
      if (found) return found;
      const { value, done } = await reader.read();
      if (done) throw new Error(`output ended before ${pattern}: ${JSON.stringify(seen.text)}`);
      seen.text += value;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Reads the rest of a reader into `seen`. */
async function drain(reader: ReadableStreamDefaultReader<string>, seen: { text: string }) {
  for (let r = await reader.read(); !r.done; r = await reader.read()) seen.text += r.value;
}

/** Asserts that a failed client printed exactly one line to stderr, matching `pattern`. */
function failedWith(result: Result, code: number, pattern: RegExp): void {
  deepEqual(result.code, code, result.stderr);
  deepEqual(result.stderr.split("\n").length, 2, `not one line: ${result.stderr}`);
  ok(result.stderr.endsWith("\n"), result.stderr);
  match(result.stderr, pattern);
}

Deno.test("sockit server --exec with no token: zero configuration, stdio, exit codes, signals", async (t) => {
  const home = await Deno.makeTempDir({ prefix: "sockit-home-" });
  const work = await Deno.makeTempDir({ prefix: "sockit-work-" });
  const env = { HOME: home, LANG: "C.UTF-8" };
  const client = zeroConfigClient(home);
  try {
    await using server = await startCli(zeroConfigServer(home), [
      "--exec",
      "--listen",
      "127.0.0.1:0",
    ], { clearEnv: true, env });
    const run = (args: string[], options: { stdin?: string | Uint8Array } = {}) =>
      sockit(client, ["exec", server.address, ...args], { clearEnv: true, env, ...options });

    await t.step(
      "the server creates HOME/.config/sockit/token, mode 0600 in a 0700 directory",
      async () => {
        const file = await Deno.stat(`${tokenDir(home)}/token`);
        deepEqual(file.mode! & 0o777, 0o600);
        deepEqual((await Deno.stat(tokenDir(home))).mode! & 0o777, 0o700);
        match(await Deno.readTextFile(`${tokenDir(home)}/token`), /^[A-Za-z0-9_-]{43}\n$/);
      },
    );

    await t.step("a client with the same HOME runs a command with no token flag", async () => {
      const local = await new Deno.Command("uname", { args: ["-a"] }).output();
      const result = await run(["--", "uname", "-a"]);
      deepEqual(result, { code: 0, stdout: new TextDecoder().decode(local.stdout), stderr: "" });
    });

    await t.step("a client with another, empty HOME and no SOCKIT_TOKEN exits 255", async () => {
      const other = await Deno.makeTempDir({ prefix: "sockit-other-" });
      try {
        const marker = `${work}/other-home-marker`;
        const result = await sockit(
          zeroConfigClient(other),
          ["exec", server.address, "--", "touch", marker],
          { clearEnv: true, env: { HOME: other } },
        );
        failedWith(result, 255, /^sockit: exec needs the server's token: .*--token-file FILE/);
        deepEqual(result.stdout, "");
        ok(!await exists(marker), "the command ran");
      } finally {
        await Deno.remove(other, { recursive: true });
      }
    });

    await t.step("argv reaches the program exactly: no remote shell re-parses it", async () => {
      const result = await run(["--", "printf", "<%s>\\n", "a b", "c'd", "$HOME", "", "*"]);
      deepEqual(result, { code: 0, stdout: "<a b>\n<c'd>\n<$HOME>\n<>\n<*>\n", stderr: "" });
    });

    await t.step("stdout and stderr stay separate and the exit code passes through", async () => {
      const result = await run(["--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
      deepEqual(result, { code: 3, stdout: "out\n", stderr: "err\n" });
    });

    await t.step("stdin is streamed to the command and ends with EOF", async () => {
      const lines = Array.from({ length: 100_000 }, (_, i) => `${i + 1}\n`).join("");
      const result = await run(["--", "wc", "-l"], { stdin: lines });
      deepEqual([result.code, result.stdout.trim(), result.stderr], [0, "100000", ""]);
      // Not just a count: every byte arrives, in order.
      const echoed = await run(["--", "cat"], { stdin: lines });
      deepEqual([echoed.code, echoed.stderr], [0, ""]);
      ok(echoed.stdout === lines, `cat returned ${echoed.stdout.length} of ${lines.length} bytes`);
    });

    await t.step(
      "--no-stdin gives the command an empty stdin even when there is input",
      async () => {
        const result = await run(["--no-stdin", "--", "cat"], { stdin: "not for the command\n" });
        deepEqual(result, { code: 0, stdout: "", stderr: "" });
      },
    );

    await t.step("20 MB of binary output arrive byte-exact", async () => {
      const file = `${work}/random.bin`;
      const size = 20_000_000;
      const proc = await spawnCli(
        client,
        ["exec", server.address, "--", "sh", "-c", `head -c ${size} /dev/urandom | tee "$0"`, file],
        { clearEnv: true, env, timeout: 30_000 },
      );
      const { code, stdout, stderr } = await proc.child.output();
      deepEqual(code, 0, new TextDecoder().decode(stderr));
      const written = await Deno.readFile(file);
      deepEqual([stdout.length, written.length], [size, size]);
      deepEqual(sha256(stdout), sha256(written));
    });

    await t.step("a command killed by SIGKILL exits 137 and says so", async () => {
      const result = await run(["--", "sh", "-c", "kill -9 $$"]);
      deepEqual(result, {
        code: 137,
        stdout: "",
        stderr: "sockit: remote command killed by SIGKILL\n",
      });
    });

    await t.step("--timeout ends the command and exits 124 soon after", async () => {
      const started = performance.now();
      const result = await run(["--timeout", "300ms", "--", "sleep", "5"]);
      const elapsed = performance.now() - started;
      deepEqual(result, {
        code: 124,
        stdout: "",
        stderr: "sockit: remote command timed out after 300ms\n",
      });
      ok(elapsed < 4000, `took ${Math.round(elapsed)} ms`);
    });

    await t.step("a program that does not exist exits 127", async () => {
      const result = await run(["--", "sockit-no-such-program"]);
      failedWith(result, 127, /"sockit-no-such-program": no such program \(not_found\)/);
    });

    await t.step("a file without execute permission exits 126", async () => {
      const script = `${work}/not-executable.sh`;
      await Deno.writeTextFile(script, `#!/bin/sh\ntouch "${work}/script-ran"\n`);
      await Deno.chmod(script, 0o644);
      const result = await run(["--", script]);
      failedWith(result, 126, /permission denied \(not_executable\)/);
      ok(!await exists(`${work}/script-ran`), "the script ran");
    });

    await t.step(
      "--json FILE writes started and exit events, stdout stays the command's",
      async () => {
        const events = `${work}/events.ndjson`;
        const result = await sockit(
          [...client, `--allow-write=${events}`],
          ["exec", server.address, "--json", events, "--", "sh", "-c", "echo hi; exit 3"],
          { clearEnv: true, env },
        );
        deepEqual(result, { code: 3, stdout: "hi\n", stderr: "" });
        const [started, exit, ...more] = await readEvents(events);
        deepEqual(started, { event: "started", argv: ["sh", "-c", "echo hi; exit 3"] });
        deepEqual(
          [exit?.event, exit?.code, exit?.signal, exit?.timedOut],
          ["exit", 3, null, false],
        );
        deepEqual(more, []);
      },
    );

    await t.step("--json FILE writes a remote error event for a refused command", async () => {
      const events = `${work}/refused.ndjson`;
      const result = await sockit(
        [...client, `--allow-write=${events}`],
        ["exec", server.address, "--json", events, "--", "sockit-no-such-program"],
        { clearEnv: true, env },
      );
      deepEqual(result.code, 127, result.stderr);
      const [error, ...more] = await readEvents(events);
      deepEqual([error?.event, error?.origin, error?.code], ["error", "remote", "not_found"]);
      match(String(error?.message), /sockit-no-such-program/);
      deepEqual(more, []);
    });

    await t.step("a wrong token exits 255 and runs nothing", async () => {
      const file = `${work}/wrong-token`;
      await Deno.writeTextFile(file, "a-wrong-token-of-enough-length\n");
      await Deno.chmod(file, 0o600);
      const marker = `${work}/wrong-token-marker`;
      const result = await sockit(
        [...NET, `--allow-read=${file}`],
        ["exec", server.address, "--token-file", file, "--", "touch", marker],
        { clearEnv: true, env },
      );
      failedWith(result, 255, /\(auth_failed\)/);
      ok(!await exists(marker), "the command ran");
    });

    await t.step("10 concurrent execs each get their own argv, stdin and output", async () => {
      // Ten, not fifty: each is a Deno start-up of its own (the library
      // tests cover many concurrent sessions in one process).
      const jobs = Array.from(
        { length: 10 },
        (_, i) =>
          run(["--", "sh", "-c", 'echo "job $0"; cat', String(i)], { stdin: `input ${i}\n` }),
      );
      const results = await Promise.all(jobs);
      deepEqual(
        results,
        results.map((_, i) => ({ code: 0, stdout: `job ${i}\ninput ${i}\n`, stderr: "" })),
      );
    });

    await t.step(
      "a client killed with SIGKILL takes the command and its children along",
      async () => {
        const { child } = await spawnCli(
          client,
          ["exec", server.address, "--", "sh", "-c", "sleep 60 & echo $$ $!; wait"],
          { clearEnv: true, env, timeout: 20_000 },
        );
        const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        const seen = { text: "" };
        const [, shell, sleeper] = await readUntil(child, out, seen, /^(\d+) (\d+)\n/, 10_000);
        const pids = [Number(shell), Number(sleeper)];
        deepEqual(await waitGone(pids, 0), pids, "the command is not running");
        kill(child, "SIGKILL");
        await drain(out, seen);
        await child.stderr.cancel();
        deepEqual((await child.status).signal, "SIGKILL");
        deepEqual(await waitGone(pids, 5000), [], "still running 5 s after the client died");
      },
    );

    await t.step("SIGINT to the client reaches the command", async () => {
      const script = 'trap "echo got-int; exit 5" INT; echo ready; while :; do sleep 0.1; done';
      const { child } = await spawnCli(
        client,
        ["exec", server.address, "--", "sh", "-c", script],
        { clearEnv: true, env, timeout: 20_000 },
      );
      const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const err = new Response(child.stderr).text();
      const seen = { text: "" };
      await readUntil(child, out, seen, /^ready\n/, 10_000);
      kill(child, "SIGINT");
      await drain(out, seen);
      const status = await child.status;
      deepEqual({ code: status.code, stdout: seen.text, stderr: await err }, {
        code: 5,
        stdout: "ready\ngot-int\n",
        stderr: "",
      });
    });

    await t.step("stopping the server ends a running command and its children", async () => {
      const { child } = await spawnCli(
        client,
        ["exec", server.address, "--", "sh", "-c", "sleep 60 & echo $$ $!; wait"],
        { clearEnv: true, env, timeout: 20_000 },
      );
      const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const err = new Response(child.stderr).text();
      const seen = { text: "" };
      const [, shell, sleeper] = await readUntil(child, out, seen, /^(\d+) (\d+)\n/, 10_000);
      const pids = [Number(shell), Number(sleeper)];
      deepEqual(await waitGone(pids, 0), pids, "the command is not running");
      // SIGTERM to the server: however long its shutdown grace, a command that
      // would run for a minute must be ended, children included.
      const stopping = server.stop();
      await drain(out, seen);
      const status = await child.status;
      const stderr = await err;
      deepEqual(status.signal, null, "the client was killed by the test's time limit");
      ok(status.code !== 0, `the client exited 0 after the server stopped: ${stderr}`);
      deepEqual((await stopping).code, 0);
      deepEqual(await waitGone(pids, 5000), [], "still running 5 s after the server stopped");
    });

    await t.step("the server stopped cleanly and said where it put the token", async () => {
      const stopped = await server.stop();
      deepEqual(stopped.code, 0, stopped.stderr);
      deepEqual(
        stopped.stderr,
        `sockit: exec and upload need a token: generated one in ${
          tokenDir(home)
        }/token (mode 600); ` +
          "local clients read it by default, remote clients need a copy (--token-file FILE)\n",
      );
    });
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("sockit server --exec-allow and --exec-env-allow limit programs and variables; commands get a minimal environment", async (t) => {
  const home = await Deno.makeTempDir({ prefix: "sockit-home-" });
  const work = await Deno.makeTempDir({ prefix: "sockit-work-" });
  const clientEnv = { HOME: home, SOCKIT_TOKEN: TOKEN };
  try {
    const policy = ["--exec-allow", "printf,sh", "--exec-allow", "env", "--exec-env-allow", "FOO"];
    await using server = await startCli(
      // The token comes from SOCKIT_TOKEN: no file to read or write.
      [...NET, "--allow-run", "--allow-env=HOME,XDG_CONFIG_HOME,SOCKIT_TOKEN,PATH,LANG"],
      ["--listen", "127.0.0.1:0", "--exec", ...policy],
      {
        clearEnv: true,
        env: { HOME: home, LANG: "C.UTF-8", SOCKIT_TOKEN: TOKEN, SERVER_ONLY_SECRET: "leak" },
      },
    );
    const run = (args: string[]) =>
      sockit(ENV_CLIENT, ["exec", server.address, ...args], { clearEnv: true, env: clientEnv });

    await t.step("a program off the allowlist exits 255 and does not run", async () => {
      const marker = `${work}/marker`;
      const result = await run(["--", "touch", marker]);
      failedWith(result, 255, /"touch": not on the server's exec allowlist \(not_allowed\)/);
      deepEqual(result.stdout, "");
      ok(!await exists(marker), "touch ran");
    });

    await t.step("the allowlist compares argv[0] exactly", async () => {
      const result = await run(["--", "/usr/bin/printf", "ok"]);
      failedWith(result, 255, /\(not_allowed\)/);
    });

    await t.step("a program on the allowlist runs", async () => {
      deepEqual(await run(["--", "printf", "ok"]), { code: 0, stdout: "ok", stderr: "" });
    });

    await t.step("an allowed variable reaches the command", async () => {
      const result = await run(["--env", "FOO=bar baz", "--", "sh", "-c", 'echo "$FOO"']);
      deepEqual(result, { code: 0, stdout: "bar baz\n", stderr: "" });
    });

    await t.step("a variable the server does not allow exits 255 and runs nothing", async () => {
      const marker = `${work}/env-marker`;
      const result = await run(["--env", "BAR=1", "--", "sh", "-c", `touch "${marker}"`]);
      failedWith(result, 255, /"BAR": not allowed by the server \(not_allowed\)/);
      ok(!await exists(marker), "the command ran");
    });

    await t.step("the command's environment is PATH, LANG and HOME only, plus --env", async () => {
      const parse = (text: string) =>
        Object.fromEntries(text.trimEnd().split("\n").map((l) => l.split(/=(.*)/s).slice(0, 2)));
      const plain = await run(["--", "env"]);
      deepEqual(plain.code, 0, plain.stderr);
      deepEqual(parse(plain.stdout), { HOME: home, LANG: "C.UTF-8", PATH: Deno.env.get("PATH") });
      const extra = await run(["--env", "FOO=1", "--", "env"]);
      deepEqual(parse(extra.stdout), {
        FOO: "1",
        HOME: home,
        LANG: "C.UTF-8",
        PATH: Deno.env.get("PATH"),
      });
    });

    deepEqual((await server.stop()).code, 0);
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("sockit exec against a server without --exec exits 255 naming the service", async () => {
  const work = await Deno.makeTempDir({ prefix: "sockit-work-" });
  try {
    await using server = await startCli([...NET, "--allow-env=SOCKIT_TOKEN"], [
      "--listen",
      "127.0.0.1:0",
    ], { clearEnv: true, env: { SOCKIT_TOKEN: TOKEN } });
    const marker = `${work}/marker`;
    const result = await sockit(ENV_CLIENT, ["exec", server.address, "--", "touch", marker], {
      clearEnv: true,
      env: { SOCKIT_TOKEN: TOKEN },
    });
    failedWith(result, 255, /unknown service "exec" \(unknown_service\)/);
    ok(!await exists(marker), "the command ran");
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("sockit exec reports a refused connection with exit 255 and one line", async () => {
  using probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const result = await sockit(ENV_CLIENT, ["exec", `127.0.0.1:${port}`, "--", "true"], {
    clearEnv: true,
    env: { SOCKIT_TOKEN: TOKEN },
  });
  failedWith(
    result,
    255,
    new RegExp(`^sockit: Cannot connect to "127.0.0.1:${port}": connection refused\n$`),
  );
});

Deno.test("usage errors in sockit exec exit 255, not 2, in one line that points to help", async (t) => {
  for (
    const [name, args, message] of [
      ["no command", ["127.0.0.1:1"], /missing the command after "--"/],
      [
        "command without --",
        ["127.0.0.1:1", "printf", "x"],
        /put the command after "--": sockit exec 127.0.0.1:1 -- printf x/,
      ],
      [
        "a command with its own option, without --",
        ["127.0.0.1:1", "uname", "-a"],
        /put the command after "--": sockit exec 127.0.0.1:1 -- uname -a/,
      ],
      ["nothing after --", ["127.0.0.1:1", "--"], /missing the command after "--"/],
      ["no address", ["--", "printf"], /missing ADDR/],
      ["unknown flag", ["127.0.0.1:1", "--bogus", "--", "printf"], /--bogus/],
      [
        "bad --env",
        ["127.0.0.1:1", "--env", "NOEQUALS", "--", "printf"],
        /--env: expected NAME=VALUE/,
      ],
      ["bad --timeout", ["127.0.0.1:1", "--timeout", "soon", "--", "printf"], /--timeout: /],
    ] as const
  ) {
    await t.step(name, async () => {
      // No permissions at all: usage is checked before anything is touched.
      const result = await sockit([], ["exec", ...args], { clearEnv: true });
      deepEqual(result.code, 255, result.stderr);
      deepEqual(result.stdout, "");
      match(result.stderr, message);
      match(result.stderr, /^error: [^\n]* \(see "sockit help exec"\)\n$/);
    });
  }
});
