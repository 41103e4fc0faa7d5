import { deepEqual, ok } from "node:assert/strict";
import fc from "fast-check";
import { editDistance, suggest } from "../../lib/cli/suggest.ts";

Deno.test("editDistance counts insertions, deletions, substitutions and adjacent swaps", () => {
  for (
    const [a, b, distance] of [
      ["", "", 0],
      ["", "abc", 3],
      ["abc", "", 3],
      ["listen", "listen", 0],
      ["listn", "listen", 1], // an insertion
      ["listeen", "listen", 1], // a deletion
      ["lesten", "listen", 1], // a substitution
      ["tsl", "tls", 1], // a swap of neighbours
      ["sever", "server", 1],
      ["kitten", "sitting", 3],
      ["flaw", "lawn", 2],
      ["ca", "abc", 3], // optimal string alignment: no edit of a swapped pair
      ["abcdef", "badcfe", 3],
    ] as const
  ) {
    deepEqual(editDistance(a, b), distance, `${a} -> ${b}`);
  }
});

Deno.test("property: editDistance is symmetric, zero only for equal strings, and bounded by the lengths", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => {
      const d = editDistance(a, b);
      deepEqual(d, editDistance(b, a));
      deepEqual(d === 0, a === b);
      ok(d >= Math.abs(a.length - b.length) && d <= Math.max(a.length, b.length));
    }),
  );
});

Deno.test("property: one edit of a name is one away from it", () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 2, maxLength: 12 }),
      fc.nat(),
      fc.constantFrom("a", "-", "z"),
      (name, at, c) => {
        const i = at % name.length;
        deepEqual(editDistance(name, name.slice(0, i) + c + name.slice(i)), 1); // insert
        deepEqual(editDistance(name, name.slice(0, i) + name.slice(i + 1)), 1); // delete
      },
    ),
  );
});

Deno.test("suggest names the nearest candidate, or nothing when none is close", async (t) => {
  const flags = ["--listen", "--tls", "--tls-cert", "--max-upload-size", "--ca", "--pin", "--help"];
  for (
    const [input, expected] of [
      ["--listn", "--listen"],
      ["--tsl", "--tls"],
      ["--LISTEN", "--listen"], // case is ignored
      ["--tls-crt", "--tls-cert"],
      ["--max-upload", "--max-upload-size"], // the only name it begins
      ["--tls-", "--tls"], // nearest wins over beginning several
      ["--zzzzzz", undefined],
      ["--xy", undefined], // two of four characters wrong: too far
      ["--pn", "--pin"],
      ["--m", undefined], // too short to go by its beginning
    ] as const
  ) {
    await t.step(`${input} -> ${expected}`, () => deepEqual(suggest(input, flags), expected));
  }
  await t.step("commands", () => {
    const commands = ["server", "client", "exec", "upload", "help", "completions"];
    deepEqual(suggest("sever", commands), "server");
    deepEqual(suggest("uplod", commands), "upload");
    deepEqual(suggest("comp", commands), "completions");
    deepEqual(suggest("completion", commands), "completions");
    deepEqual(suggest("x", commands), undefined);
  });
  await t.step("a tie goes to the earlier candidate", () => {
    deepEqual(suggest("ab", ["ax", "ay"]), "ax");
  });
  await t.step("no candidates", () => deepEqual(suggest("anything", []), undefined));
});
