import assert from "node:assert/strict";
import {
  allRoutes,
  compileRoutes,
  matchRoute,
  parseIp,
  parseRoute,
  RouteSet,
} from "../../lib/config/mod.ts";
import { assertThrowsWith } from "../support/assert.ts";

type Row = [patterns: string[], proto: "tcp" | "udp", host: string, port: number, want: boolean];

const TABLE: Row[] = [
  [["*"], "tcp", "example.com", 443, true],
  [["*"], "udp", "::1", 53, true],
  [[], "tcp", "example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "www.example.com", 443, true],
  [["tcp:*.example.com:443"], "tcp", "WWW.Example.COM.", 443, true],
  [["tcp:*.example.com:443"], "tcp", "a.b.example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "www.example.com", 80, false],
  [["tcp:*.example.com:443"], "udp", "www.example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "evilexample.com", 443, false],
  [["**.example.com"], "tcp", "a.b.example.com", 22, true],
  [["**.example.com"], "udp", "a.example.com", 53, true],
  [["*.example.com"], "udp", "a.example.com", 53, true],
  [["example.com"], "tcp", "example.com", 1, true],
  [["example.com"], "tcp", "example.com.evil", 1, false],
  [["tcp:10.0.0.*:*"], "tcp", "10.0.0.7", 8080, true],
  [["tcp:10.0.0.*:*"], "tcp", "10.0.0.evil.com", 8080, false],
  [["tcp:10.0.0.*:*"], "tcp", "10.0.1.7", 8080, false],
  [["10.0.0.*:22"], "tcp", "10.0.0.255", 22, true],
  [["[::1]:22"], "tcp", "::1", 22, true],
  [["[::1]:22"], "tcp", "0:0:0:0:0:0:0:1", 22, true],
  [["[::1]:22"], "tcp", "[::1]", 22, true],
  [["[::1]:22"], "tcp", "::2", 22, false],
  [["[::1]:22"], "tcp", "127.0.0.1", 22, false],
  [["tcp:[fd00::*]:8000-8999"], "tcp", "fd00::abcd", 8500, true],
  [["tcp:[fd00::*]:8000-8999"], "tcp", "fd00::abcd", 9000, false],
  [["*:443"], "tcp", "anything.example", 443, true],
  [["*:443"], "udp", "10.1.1.1", 443, true],
  [["*:443"], "tcp", "anything.example", 80, false],
  [["udp:*:53"], "udp", "8.8.8.8", 53, true],
  [["udp:*:53"], "tcp", "8.8.8.8", 53, false],
  [["*:*.example.com:443"], "udp", "a.example.com", 443, true],
  [["a.example.com:22", "b.example.com:22"], "tcp", "b.example.com", 22, true],
];

Deno.test("matchRoute() follows the documented grammar", () => {
  for (const [patterns, proto, host, port, want] of TABLE) {
    assert.equal(
      matchRoute(patterns, { proto, host, port }),
      want,
      `${patterns} ${proto}:${host}:${port}`,
    );
  }
});

Deno.test("compileRoutes() agrees with matchRoute() and caches frozen arrays", () => {
  const routes = Object.freeze(["tcp:*.example.com:443"]);
  const m = compileRoutes(routes);
  const t = { proto: "tcp" as const, host: "a.example.com", port: 443 };
  assert.equal(m(t), true);
  assert.equal(matchRoute(routes, t), true);
  assert.equal(matchRoute(routes, t), true);
});

Deno.test("parseRoute() refuses malformed patterns", () => {
  for (
    const bad of [
      "",
      "tcp:",
      "::1:22",
      "[::1",
      "[::1]22",
      "tcp:host:99999",
      "host:9-1",
      "10.0.0:22",
      "300.0.0.1",
      "bad host",
      "http:x:1:2",
      "[example.com]:1",
      "a..b",
    ]
  ) {
    assertThrowsWith(() => parseRoute(bad), TypeError, `Invalid route ${JSON.stringify(bad)}: `);
  }
});

const TABLE_V2: Row[] = [
  // CIDR ranges, IPv4 and IPv6, against literals as asked.
  [["10.0.0.0/8:22"], "tcp", "10.200.1.1", 22, true],
  [["10.0.0.0/8:22"], "tcp", "10.200.1.1", 23, false],
  [["10.0.0.0/8:22"], "tcp", "11.0.0.1", 22, false],
  [["10.0.0.0/8"], "tcp", "::ffff:10.0.0.1", 80, true],
  [["[fd00::/8]:*"], "tcp", "fd12::1", 443, true],
  [["[fd00::/8]:*"], "tcp", "fe80::1", 443, false],
  [["127.0.0.1:*"], "tcp", "::ffff:127.0.0.1", 22, true],
  [["[::ffff:127.0.0.1]"], "tcp", "127.0.0.1", 22, true],
  // Address rules never match a name as asked.
  [["10.0.0.0/8"], "tcp", "db.corp", 22, false],
  // Deny rules; the first match wins.
  [["!10.1.2.3", "10.0.0.0/8"], "tcp", "10.1.2.3", 22, false],
  [["!10.1.2.3", "10.0.0.0/8"], "tcp", "10.1.2.4", 22, true],
  [["10.0.0.0/8", "!10.1.2.3"], "tcp", "10.1.2.3", 22, true],
  [["!tcp:*:25", "*"], "tcp", "mail.example", 25, false],
  [["!tcp:*:25", "*"], "udp", "mail.example", 25, true],
  [["!*.corp", "*"], "tcp", "db.corp", 5432, false],
  [["!*.corp", "*"], "tcp", "example.com", 5432, true],
  [["!udp:*"], "udp", "example.com", 53, false],
];

Deno.test("matchRoute() understands CIDR and deny rules, first match wins", () => {
  for (const [patterns, proto, host, port, want] of TABLE_V2) {
    assert.equal(
      matchRoute(patterns, { proto, host, port }),
      want,
      `${patterns} ${proto}:${host}:${port}`,
    );
  }
});

Deno.test("RouteSet.check(): a blocked address needs an explicit address rule", () => {
  const at = (routes: string[], host: string, addr: string, blocked: boolean, port = 22) =>
    new RouteSet(routes).check({ proto: "tcp", host, port }, parseIp(addr)!, blocked);
  // `*` and name globs pass over a blocked address.
  assert.deepEqual(at(["*"], "127.0.0.1", "127.0.0.1", true), { verdict: "blocked", rule: "*" });
  assert.deepEqual(at(["localhost"], "localhost", "127.0.0.1", true), {
    verdict: "blocked",
    rule: "localhost",
  });
  assert.deepEqual(at(["*"], "127.0.0.1", "127.0.0.1", false), { verdict: "allow", rule: "*" });
  // Catch-all address rules are not explicit.
  for (const r of ["0.0.0.0/0", "[::/0]", "*.*.*.*", "**"]) {
    assert.equal(at([r], "127.0.0.1", "127.0.0.1", true).verdict, "blocked", r);
  }
  assert.equal(at(["[*::*]"], "::1", "::1", true).verdict, "blocked");
  assert.equal(at(["[::/0]"], "::1", "::1", true).verdict, "blocked");
  // Explicit rules reach it, for a literal and for a name that resolved to it.
  for (const r of ["127.0.0.1:*", "127.0.0.0/8:22", "127.0.0.*", "[::ffff:127.0.0.1]"]) {
    assert.equal(at([r], "127.0.0.1", "127.0.0.1", true).verdict, "allow", r);
    assert.equal(at([r], "localhost", "127.0.0.1", true).verdict, "allow", r);
  }
  assert.equal(at(["[::1]:*"], "::1", "::1", true).verdict, "allow");
  assert.equal(at(["127.0.0.1:*"], "::1", "::1", true).verdict, "unlisted");
  assert.equal(at(["127.0.0.1:80"], "127.0.0.1", "127.0.0.1", true).verdict, "unlisted");
  // A later explicit rule is found past an earlier `*`.
  assert.deepEqual(at(["*", "10.0.0.0/8:22"], "db.corp", "10.1.1.1", true), {
    verdict: "allow",
    rule: "10.0.0.0/8:22",
  });
  // Deny rules apply to the resolved address, and to the IPv4 inside NAT64 forms.
  assert.deepEqual(at(["!10.1.2.3", "*"], "db.corp", "10.1.2.3", false), {
    verdict: "deny",
    rule: "!10.1.2.3",
  });
  assert.equal(at(["!10.1.2.3", "*"], "x", "64:ff9b::a01:203", false).verdict, "deny");
  assert.equal(at(["!10.0.0.0/8", "10.1.0.0/16"], "x", "10.1.2.3", true).verdict, "deny");
  assert.equal(at(["10.1.0.0/16", "!10.0.0.0/8"], "x", "10.1.2.3", true).verdict, "allow");
});

Deno.test("RouteSet.mayAllowName(): a name no rule could allow is not looked up", () => {
  const may = (routes: string[], host: string, port = 443) =>
    new RouteSet(routes).mayAllowName({ proto: "tcp", host, port });
  assert.equal(may(["*"], "example.com"), true);
  assert.equal(may(["*.example.com:443"], "www.example.com"), true);
  assert.equal(may(["*.example.com:443"], "www.example.com", 80), false);
  assert.equal(may(["*.example.com:443"], "other.org"), false);
  assert.equal(may(["!*.corp", "*"], "db.corp"), false);
  assert.equal(may(["10.0.0.0/8:443"], "db.corp"), true);
  assert.equal(may(["!10.0.0.0/8", "other.org"], "db.corp"), false);
  assert.equal(may([], "example.com"), false);
});

Deno.test("parseRoute() reads deny, CIDR and explicitness", () => {
  const r = parseRoute("!tcp:10.0.0.0/8:22");
  assert.equal(r.deny, true);
  assert.equal(r.proto, "tcp");
  assert.equal(r.hostKind, "cidr");
  assert.equal(r.explicit, true);
  assert.deepEqual([r.portMin, r.portMax], [22, 22]);
  assert.equal(parseRoute("[fd00::/8]:443").hostKind, "cidr");
  assert.equal(parseRoute("*.example.com").explicit, false);
  assert.equal(parseRoute("0.0.0.0/0").explicit, false);
  for (const bad of ["!", "10.0.0.1/8", "10.0.0.0/33", "[fd00::/129]", "10.0.*.0/8", "!bad host"]) {
    assertThrowsWith(() => parseRoute(bad), TypeError, `Invalid route ${JSON.stringify(bad)}: `);
  }
});

Deno.test("allRoutes(): every layer judges every address; the first that does not allow decides", () => {
  const claim = "the JWT routes claim";
  const rules = (user: string[], narrow: string[]) =>
    allRoutes({ rules: new RouteSet(user) }, { rules: new RouteSet(narrow), name: claim });
  const at = (r: ReturnType<typeof rules>, host: string, addr: string, blocked: boolean) =>
    r.check({ proto: "tcp", host, port: 443 }, parseIp(addr)!, blocked);
  // A name glob in the claim never reaches a blocked address, even one the user's routes name.
  const glob = rules(["127.0.0.1:*", "*"], ["*.example:443"]);
  assert.deepEqual(at(glob, "www.example", "127.0.0.1", true), {
    verdict: "blocked",
    rule: "*.example:443",
    layer: claim,
  });
  assert.equal(at(glob, "www.example", "192.0.2.1", false).verdict, "allow");
  assert.deepEqual(at(glob, "other.test", "192.0.2.1", false), {
    verdict: "unlisted",
    layer: claim,
  });
  // CIDR and deny forms in the claim, as in users.yml.
  const cidr = rules(["*"], ["!10.1.2.3", "10.0.0.0/8:443"]);
  assert.deepEqual(at(cidr, "db.corp", "10.1.2.3", false), {
    verdict: "deny",
    rule: "!10.1.2.3",
    layer: claim,
  });
  assert.equal(at(cidr, "db.corp", "10.1.2.4", false).verdict, "allow");
  // Blocked: the user's `*` does not reach it, whatever the claim names.
  assert.deepEqual(at(cidr, "db.corp", "10.1.2.4", true), { verdict: "blocked", rule: "*" });
  // The user's own refusal comes first and carries no layer name.
  assert.deepEqual(at(rules(["!*.example"], ["*"]), "www.example", "192.0.2.1", false), {
    verdict: "deny",
    rule: "!*.example",
  });
  // Before a lookup: a name either layer rules out is not resolved.
  const to = (host: string) => ({ proto: "tcp" as const, host, port: 443 });
  assert.equal(glob.mayAllowName(to("www.example")), true);
  assert.equal(glob.mayAllowName(to("other.test")), false);
  assert.equal(rules(["*.corp"], ["*"]).mayAllowName(to("www.example")), false);
});
