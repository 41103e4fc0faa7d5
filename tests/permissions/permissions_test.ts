/**
 * Tests of `lib/permissions.ts`. The checks run in this process (which
 * `deno test` starts with --allow-net=127.0.0.1 and without --allow-sys or
 * --allow-ffi); every revocation runs in a child process started with
 * exactly chosen flags, because a revoked permission never comes back.
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  flagFor,
  MissingPermissionError,
  missingPermissions,
  type PermissionNeed,
  requirePermissions,
  type RevokeSummary,
} from "../../lib/permissions/permissions.ts";

const CHILD = fileURLToPath(new URL("../fixtures/permissions_child.ts", import.meta.url));

/** One JSON line the child printed about a probe. */
interface ProbeLine {
  op: string;
  arg?: string;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** How a child ended, with its stdout parsed line by line. */
interface ChildResult {
  code: number;
  stderr: string;
  summary: RevokeSummary | undefined;
  probes: ProbeLine[];
  lines: Record<string, unknown>[];
}

function parseLines(stdout: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

function toResult(code: number, stdout: string, stderr: string): ChildResult {
  const lines = parseLines(stdout);
  return {
    code,
    stderr,
    summary: lines.find((line) => "summary" in line)?.summary as RevokeSummary | undefined,
    probes: lines.filter((line) => "op" in line) as unknown as ProbeLine[],
    lines,
  };
}

function command(flags: readonly string[], plan: object, env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, CHILD, JSON.stringify(plan)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  });
}

/** Runs the child with exactly `flags`, killing it after 30 s. */
async function runChild(
  flags: readonly string[],
  plan: object,
  env: Record<string, string> = {},
): Promise<ChildResult> {
  const child = command(flags, plan, env).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    return toResult(code, decoder.decode(stdout), decoder.decode(stderr));
  } finally {
    clearTimeout(timer);
  }
}

function probe(result: ChildResult, op: string, arg?: string): ProbeLine {
  const line = result.probes.find((p) => p.op === op && (arg === undefined || p.arg === arg));
  ok(line, `no probe "${op}" ${arg ?? ""} in ${JSON.stringify(result.lines)}\n${result.stderr}`);
  return line;
}

function query(need: PermissionNeed): { op: string; arg: string } {
  return { op: "query", arg: JSON.stringify(need) };
}

Deno.test("flagFor names the exact flag for each kind of need", async (t) => {
  const cases: [PermissionNeed, string][] = [
    [{ name: "net", host: "127.0.0.1:7070" }, "--allow-net=127.0.0.1:7070"],
    [{ name: "net", host: "[::1]:7070" }, "--allow-net=[::1]:7070"],
    [{ name: "net", host: "unix:/run/sockit.sock" }, "--allow-net=unix:/run/sockit.sock"],
    [{ name: "net" }, "--allow-net"],
    [{ name: "read", path: "/srv/in", why: "to read" }, "--allow-read=/srv/in"],
    [{ name: "write", path: "dist" }, "--allow-write=dist"],
    [{ name: "env", variable: "SOCKIT_TOKEN" }, "--allow-env=SOCKIT_TOKEN"],
    [{ name: "env", variable: "SOCKIT_*" }, "--allow-env=SOCKIT_*"],
    [{ name: "run" }, "--allow-run"],
    [{ name: "run", command: "uname" }, "--allow-run=uname"],
    [{ name: "sys", kind: "statfs" }, "--allow-sys=statfs"],
    [{ name: "ffi", path: "./libsqlite3.so" }, "--allow-ffi=./libsqlite3.so"],
    [{ name: "import", host: "jsr.io" }, "--allow-import=jsr.io"],
    [{ name: "read", path: "/srv/my inbox" }, "--allow-read=/srv/my inbox"],
    // Deno 2.9.6 cannot parse a comma inside a value: the nearest ancestor
    // without one, or the bare flag.
    [{ name: "write", path: "/srv/a,b/in" }, "--allow-write=/srv"],
    [{ name: "read", path: "/a,b" }, "--allow-read=/"],
    [{ name: "read", path: "a,b/c" }, "--allow-read=."],
    [{ name: "read", path: "C:\\data\\x,y" }, "--allow-read=C:\\data"],
    [{ name: "read", path: "C:\\x,y" }, "--allow-read=C:\\"],
    [{ name: "net", host: "unix:/tmp/a,b.sock" }, "--allow-net"],
  ];
  for (const [need, flag] of cases) {
    await t.step(`${JSON.stringify(need)} needs ${flag}`, () => {
      deepEqual(flagFor(need), flag);
    });
  }
  await t.step("quote adds POSIX shell quoting only where a shell needs it", () => {
    deepEqual(flagFor({ name: "read", path: "/srv/in" }, { quote: true }), "--allow-read=/srv/in");
    deepEqual(
      flagFor({ name: "read", path: "/srv/my inbox" }, { quote: true }),
      "--allow-read='/srv/my inbox'",
    );
    deepEqual(
      flagFor({ name: "read", path: "/srv/it's" }, { quote: true }),
      `--allow-read='/srv/it'\\''s'`,
    );
    deepEqual(
      flagFor({ name: "net", host: "[::1]:7070" }, { quote: true }),
      "--allow-net='[::1]:7070'",
    );
    deepEqual(
      flagFor({ name: "env", variable: "SOCKIT_*" }, { quote: true }),
      "--allow-env='SOCKIT_*'",
    );
  });
});

Deno.test("flagFor rejects a need with an empty value or an unknown name", () => {
  throws(
    () => flagFor({ name: "read", path: "" }),
    (error) =>
      error instanceof TypeError && /"path" must be a non-empty string/.test(error.message),
  );
  throws(
    () => flagFor({ name: "disk" } as unknown as PermissionNeed),
    (error) => error instanceof TypeError && /unknown name "disk"/.test(error.message),
  );
});

Deno.test("missingPermissions returns the needs this process does not hold", () => {
  const here = fileURLToPath(import.meta.url);
  const missing = missingPermissions([
    { name: "net", host: "127.0.0.1:7070" },
    { name: "net", host: "192.0.2.1:7070", why: "to reach the test net" },
    { name: "read", path: here },
    { name: "sys", kind: "hostname" },
  ]);
  deepEqual(missing, [
    { name: "net", host: "192.0.2.1:7070", why: "to reach the test net" },
    { name: "sys", kind: "hostname" },
  ]);
  deepEqual(missingPermissions([{ name: "read", path: here }]), []);
});

Deno.test("missingPermissions turns a value Deno refuses into a TypeError", () => {
  throws(
    () => missingPermissions([{ name: "net", host: "bad host" }]),
    (error) =>
      error instanceof TypeError &&
      error.message.startsWith("Cannot check permission --allow-net=bad host: invalid host"),
  );
});

Deno.test("MissingPermissionError names every flag in one line", async (t) => {
  await t.step("one flag", () => {
    const error = new MissingPermissionError([{ name: "run", why: "to run remote commands" }]);
    deepEqual(
      error.message,
      "Cannot start: missing permission --allow-run (to run remote commands); run again with it",
    );
    deepEqual(error.name, "MissingPermissionError");
  });
  await t.step("several flags, a shared flag once with both reasons, quoted for a shell", () => {
    const needs: PermissionNeed[] = [
      { name: "write", path: "/srv/my in", why: "to write uploads into /srv/my in" },
      { name: "net", host: "127.0.0.1:7070", why: "to listen on 127.0.0.1:7070" },
      { name: "write", path: "/srv/my in", why: "to keep partial uploads" },
      { name: "env", variable: "SOCKIT_TOKEN" },
    ];
    const error = new MissingPermissionError(needs, "serve");
    deepEqual(
      error.message,
      "Cannot serve: missing permissions --allow-write='/srv/my in' (to write uploads into " +
        "/srv/my in; to keep partial uploads), --allow-net=127.0.0.1:7070 (to listen on " +
        "127.0.0.1:7070), --allow-env=SOCKIT_TOKEN; run again with them",
    );
    ok(!error.message.includes("\n"));
    deepEqual(error.flags, [
      "--allow-write=/srv/my in",
      "--allow-net=127.0.0.1:7070",
      "--allow-env=SOCKIT_TOKEN",
    ]);
    deepEqual(error.needs, needs);
  });
  await t.step("a reason with a line break stays on one line", () => {
    const error = new MissingPermissionError([{ name: "run", why: "a\nb" }]);
    ok(!error.message.includes("\n"));
  });
  await t.step("no needs is a RangeError", () => {
    throws(() => new MissingPermissionError([]), RangeError);
  });
});

Deno.test("requirePermissions passes when every need is granted", () => {
  requirePermissions([{ name: "net", host: "127.0.0.1:7070" }]);
  requirePermissions([]);
});

Deno.test("requirePermissions in a child started without the flags names them in one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sockit perm " });
  try {
    const needs: PermissionNeed[] = [
      { name: "net", host: "127.0.0.1:7070", why: "to listen on 127.0.0.1:7070" },
      { name: "write", path: dir, why: `to write uploads into ${dir}` },
      { name: "env", variable: "SOCKIT_TOKEN", why: "to read the token" },
    ];
    const refused = await runChild(["--allow-net=127.0.0.1:7070"], { require: needs });
    deepEqual(refused.code, 1);
    deepEqual(
      refused.stderr,
      `error: Cannot start: missing permissions --allow-write='${dir}' (to write uploads into ` +
        `${dir}), --allow-env=SOCKIT_TOKEN (to read the token); run again with them\n`,
    );
    deepEqual(refused.lines, []);

    // The flags the error names, added as they are, are enough.
    const added = [flagFor(needs[1]!), flagFor(needs[2]!)];
    const started = await runChild(["--allow-net=127.0.0.1:7070", ...added], { require: needs });
    deepEqual([started.code, started.stderr, started.lines], [0, "", [{ required: true }]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("revokeExcept revokes what keep does not name, and it stays revoked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/kept.txt`, "still readable\n");
    const result = await runChild([
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      "--allow-run",
      "--allow-env=HOME",
      "--allow-sys=hostname",
      "--allow-net=127.0.0.1",
    ], {
      listen: true,
      keep: [{ name: "net", host: "127.0.0.1" }, { name: "read", path: dir }],
      probes: [
        { op: "write", arg: `${dir}/new.txt` },
        { op: "run", arg: "true" },
        { op: "env", arg: "HOME" },
        { op: "hostname" },
        query({ name: "write", path: dir }),
        query({ name: "run", command: "true" }),
        query({ name: "env", variable: "HOME" }),
        query({ name: "sys", kind: "hostname" }),
        query({ name: "import", host: "jsr.io" }),
        { op: "read", arg: `${dir}/kept.txt` },
        { op: "connect" },
        { op: "listen" },
        query({ name: "net", host: "127.0.0.1:7070" }),
        { op: "import" },
        { op: "import-computed" },
      ],
    });
    deepEqual(result.code, 0, result.stderr);
    deepEqual(result.summary, {
      revoked: ["write", "env", "run", "sys", "ffi", "import"],
      kept: ["read", "net"],
      keptWhole: [],
      narrowed: [],
      skipped: [],
      line: "revoked write, env, run, sys, ffi, import; kept read, net",
    });
    for (const op of ["write", "run", "env", "hostname"]) {
      deepEqual(probe(result, op).error, "NotCapable", op);
    }
    for (const name of ["write", "run", "env", "sys", "import"]) {
      const line = result.probes.find((p) => p.op === "query" && p.arg?.includes(`"${name}"`));
      deepEqual(line?.value, "prompt", name);
    }
    // Kept: reading the kept directory, and the network to 127.0.0.1.
    deepEqual(probe(result, "read").value, "still readable\n");
    deepEqual(probe(result, "connect").value, 42);
    deepEqual(probe(result, "listen").value, "tcp");
    deepEqual(
      probe(result, "query", query({ name: "net", host: "127.0.0.1:7070" }).arg).value,
      "granted",
    );
    // A literal dynamic import loads from the start-up module graph; a
    // computed one needs read access to lib/, which was never granted.
    deepEqual(probe(result, "import").value, "function");
    deepEqual(probe(result, "import-computed").error, "TypeError");
    await Deno.stat(`${dir}/new.txt`).then(
      () => ok(false, "the revoked write happened"),
      (error) => ok(error instanceof Deno.errors.NotFound),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a listener bound before revokeExcept keeps accepting with net revoked", async () => {
  const child = command(["--allow-net=127.0.0.1"], {
    listen: true,
    keep: [],
    probes: [{ op: "connect" }, { op: "listen" }, { op: "import" }, { op: "import-computed" }],
    accept: true,
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const stderr = new Response(child.stderr).text();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let port: number | undefined;
    while (port === undefined) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      const found = /"port":(\d+)/.exec(text);
      if (found) port = Number(found[1]);
    }
    ok(port, `no port in ${text}`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new Uint8Array([7]));
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      text += chunk.value;
    }
    conn.close();
    const { code } = await child.status;
    const result = toResult(code, text, await stderr);
    deepEqual(result.code, 0, result.stderr);
    deepEqual(result.summary?.revoked, [
      "read",
      "write",
      "net",
      "env",
      "run",
      "sys",
      "ffi",
      "import",
    ]);
    deepEqual(
      result.summary?.line,
      "revoked read, write, net, env, run, sys, ffi, import; kept nothing",
    );
    // New connections and listeners need net; the bound listener does not.
    deepEqual(probe(result, "connect").error, "NotCapable");
    deepEqual(probe(result, "listen").error, "NotCapable");
    deepEqual(probe(result, "accept").value, 7);
    // Without any --allow-read, and after read and import are revoked.
    deepEqual(probe(result, "import").value, "function");
    deepEqual(probe(result, "import-computed").error, "TypeError");
  } finally {
    clearTimeout(timer);
  }
});

Deno.test("revokeExcept narrows a listed grant given in narrow", async () => {
  const result = await runChild(["--allow-env=SOCKIT_TOKEN,HOME,LANG"], {
    keep: [{ name: "env", variable: "SOCKIT_TOKEN" }],
    narrow: [{ name: "env", variable: "HOME" }],
    probes: [
      { op: "env", arg: "HOME" },
      { op: "env", arg: "SOCKIT_TOKEN" },
      { op: "env", arg: "LANG" },
    ],
  }, { SOCKIT_TOKEN: "kept-token-0123456789", HOME: "/home/test", LANG: "C.UTF-8" });
  deepEqual(result.code, 0, result.stderr);
  deepEqual(result.summary?.narrowed, ["--allow-env=HOME"]);
  match(result.summary?.line ?? "", /; kept env; narrowed --allow-env=HOME$/);
  deepEqual(probe(result, "env", "HOME").error, "NotCapable");
  deepEqual(probe(result, "env", "SOCKIT_TOKEN").value, "kept-token-0123456789");
  // Not in keep but not in narrow either: Deno cannot list a flag's entries,
  // so what keep's permission holds beyond keep stays.
  deepEqual(probe(result, "env", "LANG").value, "C.UTF-8");
});

Deno.test("revokeExcept leaves a narrow grant that would take a kept one with it", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/in`);
    await Deno.mkdir(`${dir}/out`);
    await Deno.writeTextFile(`${dir}/in/f`, "in\n");
    await Deno.writeTextFile(`${dir}/out/f`, "out\n");
    const plan = {
      keep: [{ name: "read", path: `${dir}/in` }],
      narrow: [{ name: "read", path: `${dir}/out` }],
      probes: [{ op: "read", arg: `${dir}/in/f` }, { op: "read", arg: `${dir}/out/f` }],
    };
    await t.step("one listed directory covers both", async () => {
      const result = await runChild([`--allow-read=${dir}`], plan);
      deepEqual(result.code, 0, result.stderr);
      deepEqual(result.summary?.narrowed, []);
      deepEqual(result.summary?.skipped, [{
        need: { name: "read", path: `${dir}/out` },
        reason: `a grant that covers it may also cover the kept --allow-read=${dir}/in`,
      }]);
      deepEqual(probe(result, "read", `${dir}/in/f`).value, "in\n");
      deepEqual(probe(result, "read", `${dir}/out/f`).value, "out\n");
    });
    await t.step("separate entries are narrowed", async () => {
      const result = await runChild([`--allow-read=${dir}/in,${dir}/out`], plan);
      deepEqual(result.code, 0, result.stderr);
      deepEqual(result.summary?.narrowed, [`--allow-read=${dir}/out`]);
      deepEqual(probe(result, "read", `${dir}/in/f`).value, "in\n");
      deepEqual(probe(result, "read", `${dir}/out/f`).error, "NotCapable");
    });
    await t.step("a bare flag cannot be narrowed", async () => {
      const result = await runChild(["--allow-read"], plan);
      deepEqual(result.code, 0, result.stderr);
      deepEqual(result.summary?.keptWhole, ["read"]);
      deepEqual(
        result.summary?.skipped[0]?.reason,
        "a bare --allow-read grants it, and Deno revokes that only whole",
      );
      equal(
        result.summary?.line,
        "revoked write, net, env, run, sys, ffi, import; kept read (whole); not narrowed " +
          `--allow-read=${dir}/out: a bare --allow-read grants it, and Deno revokes that only whole`,
      );
      deepEqual(probe(result, "read", `${dir}/out/f`).value, "out\n");
    });
    await t.step("a wildcard covers both", async () => {
      const result = await runChild(["--allow-env=SOCKIT_*", "--allow-net=*.example.test"], {
        keep: [{ name: "env", variable: "SOCKIT_TOKEN" }, { name: "net", host: "b.example.test" }],
        narrow: [{ name: "env", variable: "SOCKIT_OTHER" }, {
          name: "net",
          host: "a.example.test",
        }],
        probes: [
          query({ name: "env", variable: "SOCKIT_TOKEN" }),
          query({ name: "net", host: "b.example.test" }),
        ],
      });
      deepEqual(result.code, 0, result.stderr);
      deepEqual(result.summary?.narrowed, []);
      deepEqual(result.summary?.skipped.map((s) => s.reason), [
        "a grant that covers it may also cover the kept --allow-env=SOCKIT_TOKEN",
        "a grant that covers it may also cover the kept --allow-net=b.example.test",
      ]);
      deepEqual(result.probes.map((p) => p.value), ["granted", "granted"]);
    });
    await t.step("one host covers every port", async () => {
      const plan = {
        keep: [{ name: "net", host: "127.0.0.1:7070" }],
        narrow: [{ name: "net", host: "127.0.0.1:8080" }],
        probes: [
          query({ name: "net", host: "127.0.0.1:7070" }),
          query({ name: "net", host: "127.0.0.1:8080" }),
        ],
      };
      const wide = await runChild(["--allow-net=127.0.0.1"], plan);
      deepEqual(wide.summary?.narrowed, [], wide.stderr);
      deepEqual(wide.probes.map((p) => p.value), ["granted", "granted"]);
      const listed = await runChild(["--allow-net=127.0.0.1:7070,127.0.0.1:8080"], plan);
      deepEqual(listed.summary?.narrowed, ["--allow-net=127.0.0.1:8080"], listed.stderr);
      deepEqual(listed.probes.map((p) => p.value), ["granted", "prompt"]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
