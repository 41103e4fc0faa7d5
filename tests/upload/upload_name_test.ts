import { deepEqual, ok, throws } from "node:assert/strict";
import { posix, win32 } from "node:path";
import fc from "fast-check";
import { NAME_LIMITS, parseRemoteName, ProtocolError } from "../_lib.ts";

const badName = (e: unknown) => e instanceof ProtocolError && e.code === "bad_name";

Deno.test("remote names that try to leave the directory are refused", () => {
  const bad = [
    "../x",
    "/etc/x",
    "a/../../x",
    "a/..",
    "./x",
    "a//b",
    "a/",
    "C:\\x",
    "\\\\server\\share\\x",
    "//server/share/x",
    "a\\..\\..\\x",
    "x\0y",
    "x\ny",
    "x\ry",
    "\u001b[2Jx",
    "x\u202egnp.exe",
    "x\u200by",
    "back\\slash",
    ".sockit-partial/x",
    ".SOCKIT-Partial/x",
    "",
    "a".repeat(10_000),
    "a".repeat(256),
    Array(65).fill("a").join("/"),
    "\ud800",
  ];
  for (const name of bad) throws(() => parseRemoteName(name), badName, JSON.stringify(name));
});

Deno.test("names only Windows cannot hold are refused with the portable rule only", () => {
  const windowsOnly = [
    "CON",
    "nul.txt",
    "aux.c",
    "dir/com1",
    "trailing.",
    "trailing ",
    "file:stream",
    "C:x",
    "what?.txt",
    "a*b",
    'say "hi"',
    "<tag>",
    "pipe|x",
  ];
  for (const name of windowsOnly) {
    deepEqual(parseRemoteName(name), name.split("/"), JSON.stringify(name));
    throws(() => parseRemoteName(name, { portable: true }), badName, JSON.stringify(name));
  }
  deepEqual(parseRemoteName("Screenshot 2026-12-06 at 12.30.00.png", { portable: true }), [
    "Screenshot 2026-12-06 at 12.30.00.png",
  ]);
});

Deno.test("ordinary names are accepted as their components", () => {
  deepEqual(parseRemoteName("a.txt"), ["a.txt"]);
  deepEqual(parseRemoteName("tree/sub dir/ünï cødé ✓.md"), ["tree", "sub dir", "ünï cødé ✓.md"]);
  deepEqual(parseRemoteName(".hidden/..dots/...x"), [".hidden", "..dots", "...x"]);
  deepEqual(parseRemoteName("a".repeat(255)), ["a".repeat(255)]);
  deepEqual(parseRemoteName("console.log"), ["console.log"]);
});

Deno.test("NFC and NFD spellings name the same file", () => {
  const nfd = "cafe\u0301.txt";
  deepEqual(parseRemoteName(nfd), ["caf\u00e9.txt"]);
  deepEqual(parseRemoteName(nfd), parseRemoteName("caf\u00e9.txt"));
});

Deno.test("an accepted name never resolves outside the directory, on POSIX, or on Windows with the portable rule", () => {
  const pieces = ["a", "b", ".", "..", "/", "\\", ":", "C", " ", "\0", "\n", "é", "e\u0301", "~"];
  const names = fc.oneof(
    fc.array(fc.constantFrom(...pieces), { maxLength: 12 }).map((p) => p.join("")),
    fc.string({ unit: "binary", maxLength: 40 }),
  );
  fc.assert(
    fc.property(names, (name) => {
      for (const [path, portable] of [[posix, false], [win32, true]] as const) {
        let parts: string[];
        try {
          parts = parseRemoteName(name, { portable });
        } catch (error) {
          ok(badName(error));
          continue;
        }
        const root = path === posix ? "/srv/up" : "C:\\srv\\up";
        const target = path.resolve(root, ...parts);
        ok(target.startsWith(root + path.sep), `${JSON.stringify(name)} -> ${target}`);
        deepEqual(path.relative(root, target).split(path.sep), parts);
        ok(new TextEncoder().encode(parts.join("/")).length <= NAME_LIMITS.maxNameBytes);
      }
    }),
    { numRuns: 5000 },
  );
});
