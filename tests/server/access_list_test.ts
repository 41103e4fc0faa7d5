import { deepEqual, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { AccessList, AccessRuleError, parseAccessFile } from "../../lib/server/access_list.ts";

const ALLOWED = { allowed: true };
const NOT_ALLOWED = { allowed: false, rule: "not in any allow rule", reason: "not_allowed" };
const NOT_AN_IP = { allowed: false, rule: "not an IP address", reason: "not_allowed" };
const denied = (rule: string) => ({ allowed: false, rule, reason: "denied" });

Deno.test("AccessList matches IPv4 networks at their prefix boundaries", () => {
  const list = AccessList.from({ allow: ["10.0.0.0/8", "192.168.1.0/24", "0.0.0.0/32"] });
  deepEqual(list.check("10.0.0.0"), ALLOWED);
  deepEqual(list.check("10.255.255.255"), ALLOWED);
  deepEqual(list.check("11.0.0.0"), NOT_ALLOWED);
  deepEqual(list.check("9.255.255.255"), NOT_ALLOWED);
  deepEqual(list.check("192.168.1.77"), ALLOWED);
  deepEqual(list.check("192.168.2.1"), NOT_ALLOWED);
  deepEqual(list.check("0.0.0.0"), ALLOWED);
  deepEqual(list.check("0.0.0.1"), NOT_ALLOWED);
});

Deno.test("AccessList matches IPv6 networks and never mixes families", () => {
  const list = AccessList.from({
    allow: ["2001:db8::/32", "fe80::/10"],
    deny: ["2001:db8:bad::/48"],
  });
  deepEqual(list.check("2001:db8::1"), ALLOWED);
  deepEqual(list.check("2001:DB8:ffff:ffff:ffff:ffff:ffff:ffff"), ALLOWED);
  deepEqual(list.check("2001:db9::"), NOT_ALLOWED);
  deepEqual(list.check("febf::1"), ALLOWED);
  deepEqual(list.check("fec0::1"), NOT_ALLOWED);
  deepEqual(list.check("fe80::1%eth0"), ALLOWED);
  deepEqual(list.check("2001:db8:bad:1::1"), denied("2001:db8:bad::/48"));
  // 32.1.13.184 spells the first 32 bits of 2001:db8:: but is not in an IPv6 rule.
  deepEqual(list.check("32.1.13.184"), NOT_ALLOWED);
  deepEqual(AccessList.from({ allow: ["0.0.0.0/0"] }).check("::1"), NOT_ALLOWED);
  deepEqual(AccessList.from({ allow: ["::/0"] }).check("127.0.0.1"), NOT_ALLOWED);
});

Deno.test("AccessList matches IPv4-mapped IPv6 peers and rules as IPv4", () => {
  const list = AccessList.from({ allow: ["10.0.0.0/8"], deny: ["::ffff:10.6.0.0/112"] });
  deepEqual(list.check("::ffff:10.1.2.3"), ALLOWED);
  deepEqual(list.check("::FFFF:a01:203"), ALLOWED);
  deepEqual(list.check("::ffff:11.1.2.3"), NOT_ALLOWED);
  deepEqual(list.check("10.6.1.1"), denied("::ffff:10.6.0.0/112"));
  deepEqual(list.check("::ffff:10.6.1.1"), denied("::ffff:10.6.0.0/112"));
  deepEqual(AccessList.from({ deny: ["10.1.2.3"] }).check("::ffff:10.1.2.3"), denied("10.1.2.3"));
});

Deno.test("AccessList lets a deny rule win over any allow rule", () => {
  const narrowDeny = AccessList.from({ allow: ["10.0.0.0/8"], deny: ["10.1.0.0/16"] });
  deepEqual(narrowDeny.check("10.1.2.3"), denied("10.1.0.0/16"));
  deepEqual(narrowDeny.check("10.2.2.3"), ALLOWED);
  const broadDeny = AccessList.from({ allow: ["10.1.2.3"], deny: ["0.0.0.0/0"] });
  deepEqual(broadDeny.check("10.1.2.3"), denied("0.0.0.0/0"));
  const same = AccessList.from({ allow: ["::1"], deny: ["::1/128"] });
  deepEqual(same.check("::1"), denied("::1/128"));
});

Deno.test("AccessList with no allow rules allows every peer not denied", () => {
  const list = AccessList.from({ deny: ["203.0.113.0/24"] });
  deepEqual(list.check("198.51.100.9"), ALLOWED);
  deepEqual(list.check("2001:db8::9"), ALLOWED);
  deepEqual(list.check("203.0.113.200"), denied("203.0.113.0/24"));
  const empty = AccessList.from({});
  deepEqual(empty.check("198.51.100.9"), ALLOWED);
  deepEqual(AccessList.from({ allow: undefined, deny: [] }).check("::1"), ALLOWED);
});

Deno.test("AccessList reads a bare address as a single host", () => {
  const list = AccessList.from({ allow: ["192.0.2.7", "2001:db8::7"] });
  deepEqual(list.check("192.0.2.7"), ALLOWED);
  deepEqual(list.check("192.0.2.6"), NOT_ALLOWED);
  deepEqual(list.check("192.0.2.8"), NOT_ALLOWED);
  deepEqual(list.check("2001:db8:0:0:0:0:0:7"), ALLOWED);
  deepEqual(list.check("2001:db8::6"), NOT_ALLOWED);
  deepEqual(list.check("2001:db8::7:0"), NOT_ALLOWED);
});

Deno.test("AccessList allows Unix-socket peers only without allow rules and refuses non-addresses", async (t) => {
  const denyOnly = AccessList.from({ deny: ["0.0.0.0/0", "::/0"] });
  const allowList = AccessList.from({ allow: ["0.0.0.0/0"] });
  for (const host of ["", "unix", "unix:/run/sockit.sock"]) {
    await t.step(`Unix peer ${JSON.stringify(host)}`, () => {
      deepEqual(denyOnly.check(host), ALLOWED);
      deepEqual(AccessList.from({}).check(host), ALLOWED);
      deepEqual(allowList.check(host), NOT_AN_IP);
    });
  }
  for (
    const host of [
      "localhost",
      "10.0.0.1:443",
      "[::1]",
      "010.0.0.1",
      "10.1",
      "0x0a.0.0.1",
      "167772161",
      "10.0.0.256",
      " 10.0.0.1",
    ]
  ) {
    await t.step(`non-address ${JSON.stringify(host)}`, () => {
      deepEqual(denyOnly.check(host), NOT_AN_IP);
      deepEqual(AccessList.from({}).check(host), NOT_AN_IP);
    });
  }
});

Deno.test("AccessList rejects a bad rule with a message naming it and what is wrong", async (t) => {
  const cases: [string, string][] = [
    ["10.0.0.0/33", "prefix length must be 0 to 32 for IPv4"],
    ["2001:db8::/129", "prefix length must be 0 to 128 for IPv6"],
    ["10.0.0.0/-1", "prefix length must be 0 to 32 for IPv4"],
    ["10.0.0.0/", "prefix length must be 0 to 32 for IPv4"],
    ["10.0.0.0/8/8", "prefix length must be 0 to 32 for IPv4"],
    ["10.0.0.0/ 8", "prefix length must be 0 to 32 for IPv4"],
    ["10.0.0.0/1000", "prefix length must be 0 to 32 for IPv4"],
    ["10.1.2.3/8", 'the address has bits set past the /8 prefix; the network is "10.0.0.0/8"'],
    [
      "2001:db8::1/64",
      'the address has bits set past the /64 prefix; the network is "2001:db8::/64"',
    ],
    ["fe80::1%eth0", "zone indexes (%) are not supported in rules"],
  ];
  for (const [rule, reason] of cases) {
    await t.step(rule, () => {
      throws(() => AccessList.from({ deny: [rule] }), {
        name: "AccessRuleError",
        rule,
        file: undefined,
        line: undefined,
        message: `Cannot use access rule "${rule}": ${reason}`,
      });
    });
  }
  for (const rule of ["", "10.0.0.256", "010.0.0.0/8", "10.1", "0x0a.0.0.0/8", "::g", "host/8"]) {
    await t.step(JSON.stringify(rule), () => {
      throws(
        () => AccessList.from({ allow: [rule] }),
        (e) =>
          e instanceof AccessRuleError && e.rule === rule && /is not an IP address/.test(e.message),
      );
    });
  }
  await t.step("a control character is escaped in the message", () => {
    throws(() => AccessList.from({ allow: ["10.0.0.0/8\u001b[2J"] }), {
      message: /^Cannot use access rule "10\.0\.0\.0\/8\\x1b\[2J": /,
    });
  });
});

Deno.test("parseAccessFile reads allow, deny and bare rules, skipping comments and blank lines", () => {
  const text = [
    "\uFEFF# sockit access file",
    "",
    "10.0.0.0/8",
    "  allow   2001:db8::/32  ",
    "deny 10.6.6.6 # the old laptop",
    "\tdeny\t::ffff:10.7.0.0/112\r",
    "   # indented comment",
    "192.0.2.1#no space before the comment",
  ].join("\n");
  deepEqual(parseAccessFile(text, "access.txt"), {
    allow: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"],
    deny: ["10.6.6.6", "::ffff:10.7.0.0/112"],
  });
  deepEqual(parseAccessFile(""), { allow: [], deny: [] });
  deepEqual(parseAccessFile("# nothing\n\n"), { allow: [], deny: [] });
});

Deno.test("parseAccessFile names the file, line number and bad text", async (t) => {
  const cases: [string, number, string, string][] = [
    [
      "10.0.0.0/8\n\npermit 10.1.0.0/16\n",
      3,
      "permit 10.1.0.0/16",
      'expected "allow CIDR", "deny CIDR" or "CIDR"',
    ],
    ["allow\n", 1, "allow", '"allow" is not an IP address'],
    [
      "deny 10.0.0.0/8 extra\n",
      1,
      "deny 10.0.0.0/8 extra",
      'expected "allow CIDR", "deny CIDR" or "CIDR"',
    ],
    ["Allow 10.0.0.0/8\n", 1, "Allow 10.0.0.0/8", 'expected "allow CIDR", "deny CIDR" or "CIDR"'],
    [
      "# ok\r\n10.0.0.0/8\r\ndeny 10.0.0.0/33\r\n",
      3,
      "10.0.0.0/33",
      "prefix length must be 0 to 32 for IPv4",
    ],
    ["allow 2001:db8::1/200", 1, "2001:db8::1/200", "prefix length must be 0 to 128 for IPv6"],
  ];
  for (const [text, line, rule, reason] of cases) {
    await t.step(`line ${line}: ${rule}`, () => {
      throws(() => parseAccessFile(text, "rules.txt"), (e) => {
        ok(e instanceof AccessRuleError);
        deepEqual([e.file, e.line, e.rule], ["rules.txt", line, rule]);
        ok(
          e.message.startsWith(`Cannot use access rule "${rule}" on line ${line} of "rules.txt": `),
          e.message,
        );
        ok(e.message.includes(reason), e.message);
        return true;
      });
    });
  }
  await t.step("without a name, only the line", () => {
    throws(() => parseAccessFile("\n\n\ndeny 1.2.3.4/40"), {
      file: undefined,
      line: 4,
      message:
        'Cannot use access rule "1.2.3.4/40" on line 4: prefix length must be 0 to 32 for IPv4',
    });
  });
});

Deno.test("AccessList keeps its rules as written and describes them", () => {
  const list = AccessList.from(parseAccessFile("10.0.0.0/8\ndeny 10.1.0.0/16\ndeny ::1\n"));
  deepEqual(list.allow, ["10.0.0.0/8"]);
  deepEqual(list.deny, ["10.1.0.0/16", "::1"]);
  deepEqual(list.describe(), "1 allow rule (1 IPv4, 0 IPv6), 2 deny rules (1 IPv4, 1 IPv6)");
  deepEqual(
    AccessList.from({ deny: ["::1"] }).describe(),
    "no allow rules (every peer not denied is allowed), 1 deny rule (0 IPv4, 1 IPv6)",
  );
});

/** An IPv4 address as a 32-bit number, its text, and a network containing or not containing it. */
const ipv4 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const v4Text = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
/** The network of `n` at `prefix`, as a rule, computed without ipaddr.js. */
const v4Rule = (n: number, prefix: number) =>
  `${v4Text(prefix === 0 ? 0 : (n >>> (32 - prefix)) << (32 - prefix) >>> 0)}/${prefix}`;
const v4Contains = (network: number, prefix: number, host: number) =>
  prefix === 0 || network >>> (32 - prefix) === host >>> (32 - prefix);

Deno.test("property: a host inside any deny rule is denied, whatever the allow rules", () => {
  const rule = fc.tuple(ipv4, fc.integer({ min: 0, max: 32 }));
  fc.assert(
    fc.property(
      fc.array(rule, { maxLength: 6 }),
      fc.array(rule, { maxLength: 6 }),
      ipv4,
      (allow, deny, host) => {
        const list = AccessList.from({
          allow: allow.map(([n, p]) => v4Rule(n, p)),
          deny: deny.map(([n, p]) => v4Rule(n, p)),
        });
        const inDeny = deny.some(([n, p]) => v4Contains(n, p, host));
        const inAllow = allow.some(([n, p]) => v4Contains(n, p, host));
        const expected = inDeny ? false : allow.length === 0 || inAllow;
        for (const text of [v4Text(host), `::ffff:${v4Text(host)}`]) {
          const decision = list.check(text);
          deepEqual(decision.allowed, expected, text);
          if (inDeny) deepEqual(!decision.allowed && decision.reason, "denied");
        }
      },
    ),
  );
});

Deno.test("property: a single-host rule matches exactly that host, IPv4 and IPv6", () => {
  fc.assert(
    fc.property(ipv4, ipv4, (rule, host) => {
      const list = AccessList.from({ allow: [v4Text(rule)] });
      deepEqual(list.check(v4Text(host)).allowed, rule === host);
    }),
  );
  const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
  const v6Text = (parts: number[]) => parts.map((p) => p.toString(16)).join(":");
  fc.assert(
    fc.property(v6, v6, fc.nat(7), (rule, other, flip) => {
      // Half the time the host differs from the rule in one group only.
      const host = other[0]! % 2 === 0 ? rule.map((p, i) => (i === flip ? p ^ 1 : p)) : other;
      const list = AccessList.from({ deny: [v6Text(rule)] });
      deepEqual(list.check(v6Text(host)).allowed, host.join() !== rule.join());
      deepEqual(list.check(v6Text(rule)).allowed, false);
    }),
  );
});
