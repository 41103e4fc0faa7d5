import { deepEqual, throws } from "node:assert/strict";
import { formatAddress, parseAddress, parseDuration, parseSize } from "../_lib.ts";

Deno.test("parseDuration reads ms, s, m and h and rejects everything else", () => {
  for (
    const [text, ms] of [["0ms", 0], ["500ms", 500], ["10s", 10_000], ["1.5s", 1500], [
      "5m",
      300_000,
    ], ["1h", 3_600_000]] as const
  ) {
    deepEqual(parseDuration(text), ms, text);
  }
  for (const bad of ["", "10", "s", "-1s", "1d", "1 s", "1e3ms", "ten s", "1000h"]) {
    throws(() => parseDuration(bad), RangeError, bad);
  }
});

Deno.test("parseSize reads bytes, binary and decimal units and rejects everything else", () => {
  for (
    const [text, n] of [
      ["0", 0],
      ["65536", 65_536],
      ["64KiB", 65_536],
      ["1MiB", 1_048_576],
      ["1mib", 1_048_576],
      ["2GB", 2e9],
      ["1.5KiB", 1536],
      ["10B", 10],
    ] as const
  ) {
    deepEqual(parseSize(text), n, text);
  }
  for (const bad of ["", "KiB", "-1", "1XB", "0.5B", "1e3", "99999999999999999999"]) {
    throws(() => parseSize(bad), RangeError, bad);
  }
});

Deno.test("parseAddress reads the three forms and formatAddress writes them back", () => {
  for (
    const text of [
      "127.0.0.1:7070",
      "[::1]:0",
      "localhost:65535",
      "unix:/run/sockit.sock",
      "unix:rel/x",
    ]
  ) {
    deepEqual(formatAddress(parseAddress(text)), text);
  }
  for (
    const bad of [
      "",
      "127.0.0.1",
      ":80",
      "::1:80",
      "[::1]",
      "host:65536",
      "host:-1",
      "unix:",
      "a b:1",
    ]
  ) {
    throws(() => parseAddress(bad), TypeError, bad);
  }
});
