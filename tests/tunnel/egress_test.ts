/**
 * The server's egress over real loopback sockets, with resolvers that give
 * fixed answers: every address a name resolves to is judged and only the
 * allowed ones are dialled, in order, falling back past one that fails; a
 * connection to the server's own address is caught after connecting when
 * the address list did not know it, and before dialling on a wildcard
 * server (a bind says the address is this machine's); a name no route
 * allows is not looked up.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  allRoutes,
  DEFAULT_EGRESS_BLOCK,
  EgressBlock,
  parseIp,
  RouteSet,
} from "../../lib/config/mod.ts";
import { dialTarget } from "../../lib/tunnel/dial.ts";
import {
  Egress,
  type EgressResult,
  isWildcard,
  LocalAddresses,
  selfAddresses,
} from "../../lib/tunnel/egress.ts";
import { serveConnections } from "../support/serve.ts";
import { test, waitFor, withDeadline } from "../support/deadline.ts";

/** Listeners on 127.0.0.1 and 127.0.0.2 on one port, counting what each accepts. */
function twoListeners() {
  const first = Deno.listen({ hostname: "127.0.0.2", port: 0 });
  const port = (first.addr as Deno.NetAddr).port;
  const a = serveConnections(first, (c) => Promise.resolve(c.close()));
  const b = serveConnections(
    Deno.listen({ hostname: "127.0.0.1", port }),
    (c) => Promise.resolve(c.close()),
  );
  return {
    port,
    on2: () => a.accepted,
    on1: () => b.accepted,
    async [Symbol.asyncDispose]() {
      await a.close();
      await b.close();
    },
  };
}

function egress(block: string[], answer: string[], self: string[] = []) {
  const asked: string[] = [];
  const e = new Egress({
    block: new EgressBlock(block, self.map((s) => parseIp(s)!)),
    resolve: (name) => {
      asked.push(name);
      return Promise.resolve(answer);
    },
    connect: dialTarget,
  });
  return { e, asked };
}

function connected(r: EgressResult): { conn: Deno.TcpConn; addr: string } {
  if ("refused" in r) throw new Error(`refused: ${r.reason}`);
  return r;
}

test("Egress dials only the allowed addresses of a name, whatever order they come in", async () => {
  await using l = twoListeners();
  const target = { proto: "tcp" as const, host: "mixed.test", port: l.port };
  for (const answer of [["127.0.0.2", "127.0.0.1"], ["127.0.0.1", "127.0.0.2"]]) {
    // 127.0.0.2 blocked; `*` may not reach it, `127.0.0.1:*` names the other.
    const { e } = egress(["127.0.0.2/32"], answer);
    const r = connected(await e.dial(["*"], target, 5_000));
    assert.equal(r.addr, "127.0.0.1");
    r.conn.close();
  }
  assert.equal(l.on2(), 0, "the blocked address was never dialled");
  assert.equal(l.on1(), 2);
  // Unblocked, the first answer is the one dialled.
  const { e } = egress([], ["127.0.0.2", "127.0.0.1"]);
  const r = connected(await e.dial(["*"], target, 5_000));
  assert.equal(r.addr, "127.0.0.2");
  r.conn.close();
});

test("Egress falls back to the next allowed address when one does not answer", async () => {
  await using l = twoListeners();
  // Nothing listens on 127.0.0.3 at this port: refused, then 127.0.0.1 answers.
  const { e } = egress([], ["127.0.0.3", "127.0.0.1"]);
  const r = connected(await e.dial(["*"], { proto: "tcp", host: "x.test", port: l.port }, 5_000));
  assert.equal(r.addr, "127.0.0.1");
  r.conn.close();
  // When none answers, the last error comes back (a dial failure, not a refusal).
  const none = egress([], ["127.0.0.3", "127.0.0.4"]).e;
  await assert.rejects(
    none.dial(["*"], { proto: "tcp", host: "x.test", port: l.port }, 5_000),
    Deno.errors.ConnectionRefused,
  );
});

test("Egress starts the next address when one hangs, and the first to answer wins", async () => {
  await using l = twoListeners();
  const tried: string[] = [];
  let hung: (() => void) | undefined;
  const e = new Egress({
    block: new EgressBlock([]),
    resolve: () => Promise.resolve(["127.0.0.9", "127.0.0.2"]),
    // 127.0.0.9 never answers (a black hole) until the test lets it fail.
    connect: (addr, port, ms) => {
      tried.push(addr);
      if (addr !== "127.0.0.9") return dialTarget(addr, port, ms);
      return new Promise((_, reject) => (hung = () => reject(new Deno.errors.TimedOut("hole"))));
    },
  });
  // The black hole is still pending when the dial resolves: the second attempt did not wait for it.
  const r = connected(
    await withDeadline(
      e.dial(["*"], { proto: "tcp", host: "x.test", port: l.port }, 60_000),
      10_000,
      "the second address to answer while the first hangs",
    ),
  );
  assert.equal(r.addr, "127.0.0.2");
  assert.deepEqual(tried, ["127.0.0.9", "127.0.0.2"]);
  r.conn.close();
  hung!();
});

test("Egress refuses a name resolving only to blocked addresses, saying which and why", async () => {
  await using l = twoListeners();
  const { e, asked } = egress([...DEFAULT_EGRESS_BLOCK], ["127.0.0.2", "::1"]);
  const r = await e.dial(["*.test"], { proto: "tcp", host: "rebind.test", port: l.port }, 5_000);
  assert.ok("refused" in r);
  assert.equal(r.refused, "egress");
  assert.equal(
    r.reason,
    `egress tcp:rebind.test:${l.port} refused: rebind.test resolved to 127.0.0.2, ::1; ` +
      "127.0.0.2 is in egress.block (127.0.0.0/8) and no route names it; " +
      "::1 is in egress.block (::1/128) and no route names it",
  );
  assert.deepEqual(asked, ["rebind.test"]);
  assert.equal(l.on1() + l.on2(), 0);
});

test("Egress judges every resolved address under a narrowing layer too (a JWT routes claim)", async () => {
  await using l = twoListeners();
  const claim = (narrow: string[]) =>
    allRoutes({ rules: new RouteSet(["127.0.0.0/8:*"]) }, {
      rules: new RouteSet(narrow),
      name: "the JWT routes claim",
    });
  const target = { proto: "tcp" as const, host: "www.example", port: l.port };
  // The user may reach loopback explicitly; a name glob in the claim may not reach it via DNS.
  const { e, asked } = egress([...DEFAULT_EGRESS_BLOCK], ["127.0.0.2", "127.0.0.1"]);
  const r = await e.dial(claim([`*.example:${l.port}`]), target, 5_000);
  assert.ok("refused" in r);
  assert.equal(r.refused, "egress");
  assert.match(
    r.reason,
    /127\.0\.0\.2 is in egress\.block \(127\.0\.0\.0\/8\) and no route of the JWT routes claim names it/,
  );
  assert.deepEqual(asked, ["www.example"]);
  // CIDR and deny forms in the claim, on the address each name resolved to.
  const only1 = connected(await e.dial(claim(["!127.0.0.2", "127.0.0.0/8"]), target, 5_000));
  assert.equal(only1.addr, "127.0.0.1");
  only1.conn.close();
  const denied = await e.dial(claim(["!127.0.0.0/30", "*"]), target, 5_000);
  assert.ok("refused" in denied && denied.refused === "route");
  assert.match(denied.reason, /127\.0\.0\.1 denied by route "!127\.0\.0\.0\/30" of the JWT/);
  // A name the claim rules out is never looked up.
  const other = await e.dial(claim(["*.example:1"]), target, 5_000);
  assert.ok("refused" in other && other.refused === "route");
  assert.equal(asked.length, 3);
  assert.equal(l.on2(), 0, "the claim's deny kept 127.0.0.2 undialled");
  assert.equal(l.on1(), 1);
  // Datagrams go by the same rules, with the address the caller resolved.
  const udp = { proto: "udp" as const, host: "www.example", port: 53 };
  assert.equal(e.allows(claim(["udp:*.example:53"]), udp, "127.0.0.1"), false);
  assert.equal(e.allows(claim(["udp:127.0.0.1:53"]), udp, "127.0.0.1"), true);
  assert.equal(e.allows(claim(["udp:127.0.0.1:53"]), udp, "127.0.0.2"), false);
});

test("Egress does not look up a name that no route could allow", async () => {
  const { e, asked } = egress([...DEFAULT_EGRESS_BLOCK], ["127.0.0.1"]);
  const r = await e.dial(["!*.corp", "*"], { proto: "tcp", host: "db.corp", port: 5432 }, 5_000);
  assert.deepEqual(r, { refused: "route", reason: "route tcp:db.corp:5432 not allowed" });
  const r2 = await e.dial(["*.example.com:443"], { proto: "tcp", host: "x.org", port: 443 }, 5_000);
  assert.ok("refused" in r2 && r2.refused === "route");
  assert.deepEqual(asked, []);
});

test("Egress catches a connection to this machine's own address after connecting", async () => {
  await using l = twoListeners();
  // `self` with no address known (a wildcard listener without the sys permission):
  // 127.0.0.1 -> 127.0.0.1 has one address at both ends, so it is this machine.
  const { e } = egress(["self"], []);
  const r = await e.dial(["*"], { proto: "tcp", host: "127.0.0.1", port: l.port }, 5_000);
  assert.ok("refused" in r);
  assert.equal(r.refused, "egress");
  assert.match(r.reason, /127\.0\.0\.1 is this server's own address \(egress\.block: self\)/);
  // Named explicitly, it is allowed.
  const ok = connected(
    await e.dial(["127.0.0.1:*"], {
      proto: "tcp",
      host: "127.0.0.1",
      port: l.port,
    }, 5_000),
  );
  ok.conn.close();
  // Without `self` in the list, no such check.
  const plain = connected(
    await egress([], []).e.dial(["*"], { proto: "tcp", host: "127.0.0.1", port: l.port }, 5_000),
  );
  plain.conn.close();
});

test("Egress blocks the server's own listening addresses before dialling", async () => {
  await using l = twoListeners();
  const { e } = egress(["self"], [], ["127.0.0.2"]);
  const r = await e.dial(["*"], { proto: "tcp", host: "127.0.0.2", port: l.port }, 5_000);
  assert.ok("refused" in r);
  assert.match(r.reason, /127\.0\.0\.2 is in egress\.block \(self\)/);
  assert.equal(l.on2(), 0);
});

Deno.test("selfAddresses() lists specific listen addresses; a wildcard adds the interfaces", () => {
  assert.deepEqual(selfAddresses(["127.0.0.2", "[::1]", "localhost"]), [
    parseIp("127.0.0.2")!,
    parseIp("::1")!,
  ]);
  const granted = Deno.permissions.querySync({ name: "sys", kind: "networkInterfaces" });
  const all = selfAddresses(["0.0.0.0"]);
  if (granted.state === "granted") {
    assert.ok(all.some((a) => a.every((b, i) => b === parseIp("127.0.0.1")![i])));
  } else assert.deepEqual(all, []);
});

Deno.test("isWildcard() knows 0.0.0.0 and :: in their spellings, nothing else", () => {
  for (const w of ["0.0.0.0", "::", "[::]", "::ffff:0.0.0.0"]) assert.ok(isWildcard(w), w);
  for (const n of ["127.0.0.1", "::1", "localhost", "0.0.0.1"]) assert.ok(!isWildcard(n), n);
});

Deno.test("LocalAddresses: a bind says which addresses are this machine's, answers kept a while", () => {
  const local = new LocalAddresses();
  assert.ok(local.has(parseIp("127.0.0.1")!));
  assert.ok(local.has(parseIp("127.0.0.2")!), "all of 127.0.0.0/8 is this machine's on Linux");
  assert.ok(local.has(parseIp("::1")!));
  // TEST-NET-3 is on no interface of a test machine.
  assert.ok(!local.has(parseIp("203.0.113.1")!));
  const asked: string[] = [];
  const counted = new LocalAddresses((h) => (asked.push(h), h === "198.51.100.7"));
  assert.ok(counted.has(parseIp("198.51.100.7")!));
  assert.ok(counted.has(parseIp("::ffff:198.51.100.7")!), "the IPv4-mapped form is the same");
  assert.ok(!counted.has(parseIp("198.51.100.8")!));
  assert.deepEqual(asked, ["198.51.100.7", "198.51.100.8"]);
});

test("Egress on a wildcard server: this machine's own address is refused before dialling", async () => {
  await using l = twoListeners();
  const local = new LocalAddresses();
  const e = new Egress({
    // `self` knows no address (a wildcard listener): the bind says 127.0.0.2 is this machine's.
    block: new EgressBlock(["self"], []),
    connect: dialTarget,
    isLocal: (a) => local.has(a),
    resolve: () => Promise.resolve(["127.0.0.2"]),
  });
  const target = { proto: "tcp", host: "127.0.0.2", port: l.port } as const;
  const r = await e.dial(["*"], target, 5_000);
  assert.ok("refused" in r);
  assert.equal(
    r.reason,
    `egress tcp:127.0.0.2:${l.port} refused: 127.0.0.2 is in egress.block (self) and no route names it`,
  );
  const byName = await e.dial(["*"], { ...target, host: "own.test" }, 5_000);
  assert.ok("refused" in byName);
  assert.equal(l.on2(), 0, "never dialled");
  // The datagram check (UDP) says the same.
  assert.ok(!e.allows(["udp:*"], { ...target, proto: "udp" }));
  assert.ok(!e.allows(["udp:*"], { ...target, proto: "udp", host: "own.test" }, "127.0.0.2"));
  assert.ok(e.allows(["udp:127.0.0.2:*"], { ...target, proto: "udp" }));
  // A route naming it reaches it.
  connected(await e.dial(["127.0.0.2:*"], target, 5_000)).conn.close();
  await waitFor("the allowed connection on 127.0.0.2", () => l.on2() === 1, 5_000);
});

test("Egress.lookup: the resolver's addresses in its order, each once, zones dropped", async () => {
  const { e, asked } = egress([], ["::1", "127.0.0.1", "::1", "fe80::1%lo", "not an address"]);
  const got = await e.lookup("many.test", 5_000);
  assert.deepEqual(got, ["::1", "127.0.0.1", "fe80::1"].map((a) => parseIp(a)!));
  assert.deepEqual(asked, ["many.test"]);
  await assert.rejects(egress([], []).e.lookup("none.test", 5_000), Deno.errors.NotFound);
});
