import { strict as assert } from "node:assert";
import {
  LoginGuard,
  PerIpLimiter,
  PreLoginTable,
  REMEMBERED_REMOVED_USERS,
  RemovedUsers,
  sourceKey,
} from "../../lib/tunnel/login_guard.ts";

const LOCKOUT = { failures: 3, windowS: 60, durationS: 300 };

Deno.test("sourceKey() counts IPv4 as is, IPv4-mapped as IPv4, IPv6 by its /64", () => {
  assert.equal(sourceKey("192.0.2.7"), "192.0.2.7");
  assert.equal(sourceKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(sourceKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("2001:db8:1:2::ffff"), sourceKey("2001:0db8:0001:0002:1:2:3:4"));
  assert.notEqual(sourceKey("2001:db8:1:2::1"), sourceKey("2001:db8:1:3::1"));
  assert.equal(sourceKey("::1"), "::/64");
});

Deno.test("LoginGuard locks a source after N failures within the window, for the duration", () => {
  let now = 1_000_000;
  const g = new LoginGuard(LOCKOUT, { now: () => now });
  assert.deepEqual(g.failed("192.0.2.7"), []);
  now += 1_000;
  assert.deepEqual(g.failed("192.0.2.7"), []);
  assert.equal(g.check("192.0.2.7", "alice"), undefined);
  now += 1_000;
  const locks = g.failed("192.0.2.7");
  assert.deepEqual(locks, [{ by: "source", until: now + 300_000 }]);
  assert.equal(g.check("192.0.2.7", "alice")?.by, "source");
  assert.equal(g.check("192.0.2.8", "alice"), undefined, "another source is not locked");
  // Attempts while locked do not extend the lock.
  now += 299_000;
  assert.deepEqual(g.failed("192.0.2.7"), []);
  now += 1_000;
  assert.equal(g.check("192.0.2.7", "alice"), undefined);
});

Deno.test("LoginGuard forgets failures older than the window", () => {
  let now = 0;
  const g = new LoginGuard(LOCKOUT, { now: () => now });
  g.failed("192.0.2.7");
  g.failed("192.0.2.7");
  now += 60_001;
  assert.deepEqual(g.failed("192.0.2.7"), []);
  assert.equal(g.check("192.0.2.7", "x"), undefined);
});

Deno.test("LoginGuard locks a user failing from many sources; success clears the user's count", () => {
  let now = 0;
  const g = new LoginGuard(LOCKOUT, { now: () => now });
  g.failed("192.0.2.1", "alice");
  g.failed("192.0.2.2", "alice");
  g.succeeded("alice");
  g.failed("192.0.2.3", "alice");
  g.failed("192.0.2.4", "alice");
  assert.equal(g.check("198.51.100.1", "alice"), undefined, "two since the success");
  const locks = g.failed("192.0.2.5", "alice");
  assert.deepEqual(locks, [{ by: "user", until: 300_000 }]);
  assert.equal(g.check("198.51.100.1", "alice")?.by, "user");
  assert.equal(g.check("198.51.100.1", "bob"), undefined);
  now += 300_000;
  assert.equal(g.check("198.51.100.1", "alice"), undefined);
});

Deno.test("LoginGuard with failures 0 never locks", () => {
  const g = new LoginGuard({ failures: 0, windowS: 60, durationS: 300 }, { now: () => 0 });
  for (let i = 0; i < 100; i++) g.failed("192.0.2.7", "alice");
  assert.equal(g.check("192.0.2.7", "alice"), undefined);
  assert.deepEqual(g.entries, { sources: 0, users: 0 });
});

Deno.test("LoginGuard keeps at most maxEntries sources, dropping unlocked ones first", () => {
  const g = new LoginGuard(LOCKOUT, { now: () => 0, maxEntries: 10 });
  for (let i = 0; i < 3; i++) g.failed("203.0.113.1");
  for (let i = 0; i < 1000; i++) g.failed(`10.0.${i >> 8}.${i & 255}`);
  assert.ok(g.entries.sources <= 10, `${g.entries.sources}`);
  assert.equal(g.check("203.0.113.1", "x")?.by, "source", "the locked source is kept");
});

Deno.test("PerIpLimiter caps concurrent connections per source and releases them", () => {
  const l = new PerIpLimiter({ connections: 2, handshakesPerSecond: 100 }, { now: () => 0 });
  assert.equal(l.admit("192.0.2.7"), undefined);
  assert.equal(l.admit("192.0.2.7"), undefined);
  assert.match(l.admit("192.0.2.7")!, /2 connections open \(limits\.per_ip\.connections 2\)/);
  assert.equal(l.admit("192.0.2.8"), undefined, "another source has its own count");
  l.release("192.0.2.7");
  assert.equal(l.admit("192.0.2.7"), undefined);
});

Deno.test("PerIpLimiter allows a burst of one second's worth, then the rate", () => {
  let now = 0;
  const l = new PerIpLimiter({ connections: 1000, handshakesPerSecond: 5 }, { now: () => now });
  for (let i = 0; i < 5; i++) assert.equal(l.admit("192.0.2.7"), undefined, `burst ${i}`);
  assert.match(l.admit("192.0.2.7")!, /more than 5 new connections per second/);
  now += 200; // one token back
  assert.equal(l.admit("192.0.2.7"), undefined);
  assert.notEqual(l.admit("192.0.2.7"), undefined);
  // A refused connection takes no token and holds no slot.
  now += 1_000;
  for (let i = 0; i < 5; i++) assert.equal(l.admit("192.0.2.7"), undefined);
});

Deno.test("PreLoginTable evicts the oldest, of its source first, then of all; done() frees a place", () => {
  const evicted: string[] = [];
  const t = new PreLoginTable({ max: 4, perIp: 2, minAgeMs: 0 });
  const add = (name: string, ip: string) => t.admit(ip, (why) => evicted.push(`${name}: ${why}`));
  const a1 = add("a1", "192.0.2.1");
  add("a2", "192.0.2.1");
  add("a3", "192.0.2.1"); // a's third: its oldest (a1) goes
  assert.equal(evicted.length, 1);
  assert.match(evicted[0]!, /^a1: .*limits\.pre_login\.per_ip 2/);
  a1.done(); // already gone: nothing happens
  const b1 = add("b1", "2001:db8:1:2::1");
  add("b2", "2001:db8:1:2::99"); // same /64: counted as one source
  assert.equal(t.size, 4);
  b1.done();
  assert.equal(t.size, 3);
  add("c1", "198.51.100.7");
  add("c2", "198.51.100.8"); // over max 4: the oldest of all (a2) goes
  assert.deepEqual(evicted.map((e) => e.split(":")[0]), ["a1", "a2"]);
  assert.match(evicted[1]!, /limits\.pre_login\.max 4/);
  assert.equal(t.size, 4);
  assert.equal(t.evictions, 2);
});

Deno.test("PreLoginTable at max: evicts only one min_age old, or the busiest source's for a quieter one, else refuses", () => {
  let now = 0;
  const evicted: string[] = [];
  const t = new PreLoginTable({ max: 4, perIp: 100, minAgeMs: 1_000 }, { now: () => now });
  const add = (name: string, ip: string) => t.admit(ip, () => evicted.push(name));
  add("a1", "192.0.2.1");
  add("a2", "192.0.2.1");
  add("b1", "192.0.2.2");
  add("b2", "192.0.2.2");
  now = 999;
  // Full, nothing 1 s old, no source 2 ahead of a's 2: refused, nothing evicted.
  const r = add("a3", "192.0.2.1");
  assert.match(r.refused ?? "", /none older than 1 s \(limits\.pre_login\.min_age\)/);
  assert.deepEqual([evicted, t.size, t.refusals, t.evictions], [[], 4, 1, 0]);
  // A quiet source (none yet) takes the busiest source's oldest even though it is young.
  assert.equal(add("c1", "198.51.100.9").refused, undefined);
  assert.deepEqual(evicted, ["a1"]);
  // Now a 1, b 2, c 1: b is busiest but only 1 ahead of a or c: refused.
  assert.notEqual(add("a4", "192.0.2.1").refused, undefined);
  assert.notEqual(add("c2", "198.51.100.9").refused, undefined);
  // Once the oldest (a2) is 1 s old, any newcomer evicts it.
  now = 1_000;
  assert.equal(add("a5", "192.0.2.1").refused, undefined);
  assert.deepEqual(evicted, ["a1", "a2"]);
  assert.deepEqual([t.size, t.refusals, t.evictions], [4, 3, 2]);
});

Deno.test("LoginGuard.lock(): a lock from elsewhere refuses at once, ends on time, and never shortens one", () => {
  let now = 1_000;
  const guard = new LoginGuard({ failures: 3, windowS: 60, durationS: 300 }, { now: () => now });
  guard.lock("source", sourceKey("2001:db8:1:2::9"), 5_000);
  assert.equal(guard.check("2001:db8:1:2::77", "bob")?.by, "source", "the whole /64");
  guard.lock("user", "alice", 3_000);
  assert.deepEqual(guard.check("192.0.2.1", "alice"), { by: "user", until: 3_000 });
  guard.lock("user", "alice", 2_000);
  assert.equal(guard.check("192.0.2.1", "alice")?.until, 3_000, "not shortened");
  now = 3_000;
  assert.equal(guard.check("192.0.2.1", "alice"), undefined);
  const off = new LoginGuard({ failures: 0, windowS: 60, durationS: 300 }, { now: () => now });
  off.lock("user", "alice", 9_000);
  assert.equal(off.check("192.0.2.1", "alice"), undefined, "lockout off: nothing locks");
});

Deno.test("RemovedUsers remembers at most 10,000 removed users' keys, the oldest removal going first", () => {
  assert.equal(REMEMBERED_REMOVED_USERS, 10_000);
  const removed = new RemovedUsers();
  const key = (i: number) => new Uint8Array(32).fill(i & 0xff);
  for (let i = 0; i <= REMEMBERED_REMOVED_USERS; i++) removed.add(`u${i}`, key(i));
  assert.equal(removed.size, REMEMBERED_REMOVED_USERS);
  assert.equal(removed.key("u0"), undefined, "the oldest removal is forgotten");
  assert.deepEqual(removed.key("u1"), key(1));
  assert.deepEqual(removed.key(`u${REMEMBERED_REMOVED_USERS}`), key(REMEMBERED_REMOVED_USERS));
  // Removed again (re-added and removed since): it counts as the newest.
  removed.add("u1", key(7));
  removed.add("another", key(8));
  assert.deepEqual(removed.key("u1"), key(7));
  assert.equal(removed.key("u2"), undefined);
});
