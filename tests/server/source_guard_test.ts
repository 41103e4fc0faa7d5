import { deepEqual, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  type AdmitResult,
  SourceGuard,
  type SourceGuardOptions,
  sourceOf,
} from "../../lib/server/source_guard.ts";

/** A guard on a fake clock that the test moves by hand. */
function fakeGuard(options: SourceGuardOptions = {}) {
  const clock = { now: 0 };
  const guard = new SourceGuard({ now: () => clock.now, ...options });
  return { guard, clock };
}

/** Admits and asserts it worked, returning the release function. */
function admitOk(guard: SourceGuard, host: string): () => void {
  const result: AdmitResult = guard.admit(host);
  ok(result.ok, `expected ${host} to be admitted, got ${JSON.stringify(result)}`);
  return result.release;
}

Deno.test("sourceOf names IPv4, mapped, IPv6 /64 and local sources", () => {
  deepEqual(sourceOf("192.0.2.7"), "192.0.2.7");
  deepEqual(sourceOf("::ffff:192.0.2.7"), "192.0.2.7");
  deepEqual(sourceOf("::ffff:c000:207"), "192.0.2.7");
  deepEqual(sourceOf("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  deepEqual(sourceOf("2001:DB8:1:2::ffff"), "2001:db8:1:2::/64");
  deepEqual(sourceOf("2001:db8:1:3::1"), "2001:db8:1:3::/64");
  deepEqual(sourceOf("fe80::1%eth0"), "fe80::/64");
  deepEqual(sourceOf("::1"), "::/64");
  deepEqual(sourceOf("unix"), "local");
  deepEqual(sourceOf(""), "local");
});

Deno.test("SourceGuard caps connections in flight per source, and release is idempotent", () => {
  const { guard } = fakeGuard({ maxPerSource: 3 });
  const releases = [1, 2, 3].map(() => admitOk(guard, "192.0.2.7"));
  deepEqual(guard.admit("192.0.2.7"), { ok: false, reason: "per_source", limit: 3 });
  // The mapped spelling is the same source.
  deepEqual(guard.admit("::ffff:192.0.2.7"), { ok: false, reason: "per_source", limit: 3 });
  releases[0]!();
  releases[0]!();
  releases[0]!();
  const again = admitOk(guard, "::ffff:192.0.2.7");
  deepEqual(guard.admit("192.0.2.7"), { ok: false, reason: "per_source", limit: 3 });
  for (const release of [...releases, again]) release();
  deepEqual(guard.size, 0);
  [1, 2, 3].map(() => admitOk(guard, "192.0.2.7"));
});

Deno.test("SourceGuard counts an IPv6 /64 as one source", () => {
  const { guard } = fakeGuard({ maxPerSource: 2 });
  admitOk(guard, "2001:db8:0:1::1");
  admitOk(guard, "2001:db8:0:1:ffff::2");
  deepEqual(guard.admit("2001:db8:0:1::3"), { ok: false, reason: "per_source", limit: 2 });
  admitOk(guard, "2001:db8:0:2::1");
  guard.authFailed("2001:db8:0:1::99");
  deepEqual(guard.admit("2001:db8:0:1::1"), { ok: false, reason: "penalty", retryAfter: 1000 });
  admitOk(guard, "2001:db8:0:2::1");
});

Deno.test("SourceGuard penalties grow by the factor up to the cap, and end", () => {
  const { guard, clock } = fakeGuard({ penaltyBase: 1000, penaltyGrowth: 3, penaltyMax: 20_000 });
  const host = "198.51.100.4";
  const expected = [1000, 3000, 9000, 20_000, 20_000];
  for (const penalty of expected) {
    deepEqual(guard.authFailed(host), penalty);
    deepEqual(guard.admit(host), { ok: false, reason: "penalty", retryAfter: penalty });
    clock.now += penalty - 1;
    deepEqual(guard.admit(host), { ok: false, reason: "penalty", retryAfter: 1 });
    clock.now += 1;
    admitOk(guard, host)();
  }
});

Deno.test("SourceGuard reports retryAfter rounded up and keeps the longer of two penalties", () => {
  const { guard, clock } = fakeGuard({ penaltyBase: 1000, penaltyGrowth: 1, penaltyMax: 1000 });
  guard.authFailed("192.0.2.1");
  clock.now = 999.5;
  deepEqual(guard.admit("192.0.2.1"), { ok: false, reason: "penalty", retryAfter: 1 });
  clock.now = 1000;
  admitOk(guard, "192.0.2.1");
});

Deno.test("SourceGuard forgets failures after forgetAfter without one, and not before", () => {
  const { guard, clock } = fakeGuard({ penaltyBase: 100, penaltyGrowth: 2, forgetAfter: 10_000 });
  const host = "203.0.113.9";
  deepEqual(guard.authFailed(host), 100);
  clock.now = 9_999;
  deepEqual(guard.authFailed(host), 200, "remembered one ms before forgetAfter");
  clock.now = 9_999 + 10_000;
  admitOk(guard, host)();
  deepEqual(guard.size, 0, "the record is dropped once forgotten");
  deepEqual(guard.authFailed(host), 100, "growth starts over");
});

Deno.test("SourceGuard keeps a penalty longer than forgetAfter until it ends", () => {
  const { guard, clock } = fakeGuard({ penaltyBase: 5000, forgetAfter: 1000 });
  guard.authFailed("192.0.2.1");
  clock.now = 4999;
  admitOk(guard, "192.0.2.2")();
  deepEqual(guard.admit("192.0.2.1"), { ok: false, reason: "penalty", retryAfter: 1 });
  clock.now = 5000;
  admitOk(guard, "192.0.2.1")();
  deepEqual(guard.size, 0);
});

Deno.test("SourceGuard: a success resets the growth but not a penalty in force", () => {
  const { guard, clock } = fakeGuard({ penaltyBase: 1000 });
  const host = "192.0.2.50";
  const early = [1, 2].map(() => admitOk(guard, host));
  guard.authFailed(host);
  guard.authFailed(host);
  // Connections admitted before the failures end after them: one succeeds…
  guard.authSucceeded(host);
  deepEqual(guard.admit(host), { ok: false, reason: "penalty", retryAfter: 2000 });
  // …and one fails: a base penalty, which does not shorten the one in force.
  deepEqual(guard.authFailed(host), 1000);
  for (const release of early) release();
  deepEqual(guard.admit(host), { ok: false, reason: "penalty", retryAfter: 2000 });
  clock.now = 2000;
  admitOk(guard, host)();
  deepEqual(guard.size, 1, "the failure after the success is remembered");
  guard.authSucceeded(host);
  deepEqual(guard.size, 0, "with no penalty in force, a success leaves nothing to remember");
  deepEqual(guard.authFailed(host), 1000);
  guard.authSucceeded("192.0.2.99"); // unknown source: nothing to do
  deepEqual(guard.size, 1);
});

Deno.test("SourceGuard: a flood from one address never affects another", () => {
  const { guard, clock } = fakeGuard({ maxPerSource: 4, maxSources: 16 });
  const attacker = "203.0.113.66";
  for (let i = 0; i < 10_000; i++) {
    const result = guard.admit(attacker);
    if (result.ok && i % 3 === 0) result.release();
    if (i % 7 === 0) guard.authFailed(attacker);
    clock.now += 1;
  }
  deepEqual(guard.size, 1);
  deepEqual(guard.admit(attacker).ok, false);
  for (const other of ["203.0.113.67", "::ffff:198.51.100.1", "2001:db8::1", "unix"]) {
    const releases = [1, 2, 3, 4].map(() => admitOk(guard, other));
    deepEqual(guard.admit(other), { ok: false, reason: "per_source", limit: 4 });
    for (const release of releases) release();
  }
});

Deno.test("SourceGuard bounds its table, evicting idle sources before penalised ones", async (t) => {
  await t.step("the least recently active unpenalised source goes first", () => {
    const { guard, clock } = fakeGuard({ maxSources: 3, penaltyBase: 1000 });
    guard.authFailed("10.0.0.1"); // penalised until 1000
    clock.now = 10;
    const inFlight = admitOk(guard, "10.0.0.2");
    clock.now = 2000; // 10.0.0.1's penalty is over, its failure still counted
    guard.authFailed("10.0.0.3");
    deepEqual(guard.size, 3);
    const fourth = admitOk(guard, "10.0.0.4"); // evicts 10.0.0.1
    deepEqual(guard.size, 3);
    fourth();
    deepEqual(guard.size, 2, "an idle source without failures is dropped at once");
    deepEqual(guard.authFailed("10.0.0.1"), 1000, "growth starts over: 10.0.0.1 was evicted");
    deepEqual(guard.admit("10.0.0.3"), { ok: false, reason: "penalty", retryAfter: 1000 });
    inFlight();
  });
  await t.step("a penalised source goes only when nothing else can", () => {
    const { guard, clock } = fakeGuard({ maxSources: 2, penaltyBase: 1000 });
    for (let i = 0; i < 3; i++) guard.authFailed("10.0.0.1"); // penalised until 4000
    clock.now = 10;
    guard.authFailed("10.0.0.2"); // penalised until 1010
    clock.now = 2000;
    // 10.0.0.1 is the least recently active, but still penalised: 10.0.0.2 goes.
    admitOk(guard, "10.0.0.3")();
    deepEqual(guard.admit("10.0.0.1"), { ok: false, reason: "penalty", retryAfter: 2000 });
    deepEqual(guard.authFailed("10.0.0.2"), 1000, "growth starts over: 10.0.0.2 was evicted");
    // Now both are penalised: the least recently active one is let off.
    admitOk(guard, "10.0.0.4")();
    deepEqual(guard.admit("10.0.0.2"), { ok: false, reason: "penalty", retryAfter: 1000 });
    admitOk(guard, "10.0.0.1")();
  });
  await t.step("sources with connections in flight are never evicted", () => {
    const { guard } = fakeGuard({ maxSources: 2, maxPerSource: 1 });
    const a = admitOk(guard, "10.0.0.1");
    admitOk(guard, "10.0.0.2");
    deepEqual(guard.admit("10.0.0.3"), { ok: false, reason: "per_source", limit: 2 });
    deepEqual(guard.authFailed("10.0.0.3"), 0);
    deepEqual(guard.admit("10.0.0.1"), { ok: false, reason: "per_source", limit: 1 });
    a();
    admitOk(guard, "10.0.0.3");
  });
  await t.step("expired records are dropped without waiting for the table to fill", () => {
    const { guard, clock } = fakeGuard({ penaltyBase: 10, forgetAfter: 100 });
    for (let i = 0; i < 50; i++) guard.authFailed(`10.0.1.${i}`);
    deepEqual(guard.size, 50);
    clock.now = 100;
    for (let i = 0; i < 50; i++) admitOk(guard, "192.0.2.1")();
    deepEqual(guard.size, 0);
  });
});

Deno.test("SourceGuard rejects options out of range", () => {
  for (
    const options of [
      { maxPerSource: 0 },
      { maxPerSource: 1.5 },
      { penaltyBase: -1 },
      { penaltyBase: NaN },
      { penaltyBase: 2000, penaltyMax: 1000 },
      { penaltyGrowth: 0.5 },
      { penaltyGrowth: Infinity },
      { forgetAfter: 0 },
      { maxSources: 0 },
    ] satisfies SourceGuardOptions[]
  ) {
    throws(() => new SourceGuard(options), RangeError, JSON.stringify(options));
  }
  throws(() => new SourceGuard({ maxPerSource: 0 }), {
    message: 'Cannot use maxPerSource "0": expected a positive integer',
  });
  const { guard } = fakeGuard({ penaltyBase: 0 });
  deepEqual(guard.authFailed("192.0.2.1"), 0);
  admitOk(guard, "192.0.2.1");
});

Deno.test("property: what other sources do never changes what one source is told", () => {
  // With the table not full (eviction is the one, documented, way sources interact).
  const bystander = "203.0.113.5";
  const who = fc.constantFrom(
    bystander,
    "::ffff:203.0.113.6",
    "203.0.113.4",
    "2001:db8::1",
    "2001:db8::2",
    "unix",
  );
  // Mostly actions; now and then the clock moves (a number of ms).
  const op = fc.oneof(
    { arbitrary: fc.constantFrom("admit", "admit", "release", "fail", "succeed"), weight: 5 },
    { arbitrary: fc.nat(2000), weight: 1 },
  );
  const view = (result: AdmitResult) => result.ok ? "ok" : result;
  fc.assert(
    fc.property(fc.array(fc.tuple(who, op), { maxLength: 300, size: "max" }), (script) => {
      const options = { maxPerSource: 3, penaltyBase: 500, forgetAfter: 5000 };
      const shared = fakeGuard(options);
      const alone = fakeGuard(options);
      const pending = new Map<string, (() => void)[]>();
      const alonePending: (() => void)[] = [];
      for (const [host, step] of script) {
        if (typeof step === "number") {
          shared.clock.now += step;
          alone.clock.now += step;
          continue;
        }
        const mine = pending.get(host) ?? [];
        pending.set(host, mine);
        if (step === "admit") {
          const result = shared.guard.admit(host);
          if (result.ok) mine.push(result.release);
          if (host === bystander) {
            const expected = alone.guard.admit(host);
            if (expected.ok) alonePending.push(expected.release);
            deepEqual(view(result), view(expected));
          }
        } else if (step === "release") {
          mine.shift()?.();
          if (host === bystander) alonePending.shift()?.();
        } else if (step === "fail") {
          const penalty = shared.guard.authFailed(host);
          if (host === bystander) deepEqual(penalty, alone.guard.authFailed(host));
        } else {
          shared.guard.authSucceeded(host);
          if (host === bystander) alone.guard.authSucceeded(host);
        }
      }
    }),
  );
});
