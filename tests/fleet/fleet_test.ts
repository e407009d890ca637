/**
 * lib/fleet against a real redis-server (tests/support/redis.ts): the
 * replay cache's set-if-absent with expiry, tunnel leases (cap, drop,
 * expiry, renewal that puts back what Redis lost), prefixes that keep two
 * fleets apart, the answer while Redis is down, and users' counters that
 * wait during an outage and reconcile after it.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import {
  ACTIVE_TTL_MS,
  Fleet,
  FleetCounters,
  RedisLink,
  StoreUnavailableError,
} from "../../lib/fleet/mod.ts";
import { MemoryStore } from "../../lib/accounting/mod.ts";
import { hasRedis, type RedisServer, startRedis } from "../support/redis.ts";
import { test, waitFor } from "../support/deadline.ts";

const ignore = !(await hasRedis());

async function fleetOn(redis: RedisServer, prefix = "t:", id = "s1"): Promise<Fleet> {
  const link = await RedisLink.connect({ url: redis.url });
  const f = new Fleet({ link, prefix, serverId: id });
  await f.listen();
  return f;
}

/** Runs `fn` with two servers' fleets (ids "a" and "b") on a new Redis, closed after. */
async function withTwo(
  fn: (a: Fleet, b: Fleet) => Promise<void>,
  prefixes: [string, string] = ["t:", "t:"],
): Promise<void> {
  await using redis = await startRedis();
  const a = await fleetOn(redis, prefixes[0], "a");
  const b = await fleetOn(redis, prefixes[1], "b");
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
  }
}

test("claimNonce() says ok once fleet-wide, then replay, until the key expires", {
  ignore,
}, () =>
  withTwo(async (a, b) => {
    await a.checkEpoch();
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const t = Date.now();
    assert.equal((await a.claimNonce(nonce, t, 150)).verdict, "ok");
    assert.equal((await b.claimNonce(nonce, t, 150)).verdict, "replay");
    assert.equal((await a.claimNonce(nonce, t, 150)).verdict, "replay");
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await b.claimNonce(nonce, t, 150)).verdict, "ok", "gone after its TTL");
  }));

test(
  "the replay epoch: written once at first use; after Redis lost its data, Hellos stamped before the new epoch are refused for one clock window",
  { ignore },
  () =>
    withTwo(async (a, b) => {
      const first = await a.checkEpoch();
      assert.ok(first.created && first.epoch > 0);
      assert.deepEqual(await b.checkEpoch(), { ...first, created: false }, "kept, not rewritten");
      const window = 1_000;
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      const stamped = Date.now();
      assert.equal((await a.claimNonce(nonce, stamped, window)).verdict, "ok");

      // Redis loses its data (as a restart without persistence): the claim notices and refuses.
      await a.link.run((c) => c.flushAll());
      const lost = await b.claimNonce(nonce, stamped, window);
      assert.equal(lost.verdict, "before_epoch");
      assert.ok(lost.created && lost.epoch >= stamped);
      assert.equal((await a.claimNonce(nonce, stamped, window)).verdict, "before_epoch");
      // The refusal claimed nothing; a Hello stamped now passes, once.
      const fresh = crypto.getRandomValues(new Uint8Array(32));
      const now = Date.now();
      assert.equal((await a.claimNonce(fresh, now, window)).verdict, "ok");
      assert.equal((await b.claimNonce(fresh, now, window)).verdict, "replay");
      // One clock window later the epoch no longer matters (the clock check refuses such stamps).
      await new Promise((r) => setTimeout(r, window + 100));
      const later = await b.claimNonce(nonce, stamped, window);
      assert.deepEqual(later, { verdict: "ok", epoch: lost.epoch, created: false });
    }),
);

test(
  "acquire() caps a user's leases across servers; drop and release free places; renewal puts back what Redis lost",
  {
    ignore,
  },
  () =>
    withTwo(async (a, b) => {
      assert.equal(await a.acquire({ user: "u", id: "a:1" }, 2), "ok");
      assert.equal(await b.acquire({ user: "u", id: "b:1" }, 2), "ok");
      assert.equal(await b.acquire({ user: "u", id: "b:2" }, 2), "over");
      assert.equal(await a.acquire({ user: "u", id: "a:1" }, 2), "ok", "a lease held is renewed");
      assert.equal(await b.leases("u"), 2);
      // A tunnel that gave its place on b: its lease goes first.
      assert.equal(await b.acquire({ user: "u", id: "b:2" }, 2, ["b:1"]), "ok");
      await a.release({ user: "u", id: "a:1" });
      assert.equal(await b.leases("u"), 1);
      assert.equal(await b.acquire({ user: "other", id: "b:9" }, undefined), "ok", "no cap");
      // Redis lost the leases (a flush): renewal puts them back.
      await a.link.run((c) => c.flushAll());
      assert.equal(await b.leases("u"), 0);
      assert.ok(await b.renew([{ user: "u", id: "b:2" }]));
      assert.equal(await a.leases("u"), 1);
    }),
);

test("two prefixes on one Redis are two fleets: nonces and leases do not mix", {
  ignore,
}, () =>
  withTwo(async (one, two) => {
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    await one.checkEpoch();
    await two.checkEpoch();
    const t = Date.now();
    assert.equal((await one.claimNonce(nonce, t, 5_000)).verdict, "ok");
    assert.equal((await two.claimNonce(nonce, t, 5_000)).verdict, "ok");
    assert.equal(await one.acquire({ user: "u", id: "a:1" }, 1), "ok");
    assert.equal(await two.acquire({ user: "u", id: "b:1" }, 1), "ok");
    const keys = await one.link.run((c) => c.keys("*"));
    assert.ok(keys.length >= 4);
    assert.ok(keys.every((k) => k.startsWith("one:") || k.startsWith("two:")), keys.join(" "));
    // Kicks stay within a prefix too.
    const got: string[] = [];
    two.onKick((k) => got.push(k.user));
    assert.ok(await one.publishKick({ user: "u", reason: "test", code: 3 }));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got, []);
  }, ["one:", "two:"]));

test(
  "kicks reach the other servers, not the one that published",
  { ignore },
  () =>
    withTwo(async (a, b) => {
      const atA: string[] = [];
      const atB: string[] = [];
      a.onKick((k) => atA.push(`${k.user}/${k.code}/${k.reason}`));
      b.onKick((k) => atB.push(`${k.user}/${k.code}/${k.reason}`));
      assert.ok(await a.publishKick({ user: "alice", reason: "kicked", code: 3 }));
      await waitFor("b to get the kick", () => atB.length === 1, 2_000);
      assert.deepEqual(atB, ["alice/3/kicked"]);
      assert.deepEqual(atA, []);
      // Garbage on the channel is ignored.
      await a.link.run((c) => c.publish("t:kick", "{not json"));
      await a.link.run((c) => c.publish("t:kick", JSON.stringify({ user: 1, from: "x" })));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(atB.length, 1);
    }),
);

test("with Redis down: nonces are unavailable at once, leases too; both work again after", {
  ignore,
}, async () => {
  await using redis = await startRedis();
  const states: boolean[] = [];
  const link = await RedisLink.connect({ url: redis.url, onState: (up) => states.push(up) });
  const f = new Fleet({ link, prefix: "t:", serverId: "a" });
  try {
    await redis.stop({ kill: true });
    await waitFor("the link to see Redis gone", () => !f.up, 5_000);
    const t0 = performance.now();
    assert.equal((await f.claimNonce(new Uint8Array(32), Date.now(), 500)).verdict, "unavailable");
    assert.equal(await f.acquire({ user: "u", id: "a:1" }, 1), "unavailable");
    assert.ok(performance.now() - t0 < 2_000, "no waiting on a dead store");
    await assert.rejects(f.link.run((c) => c.ping()), StoreUnavailableError);
    await redis.start();
    await waitFor("the link to reconnect", () => f.up, 10_000);
    // Right after a restart Redis may still be loading its data (LOADING): answers come soon.
    let fill = 0;
    await waitFor(
      "a nonce claimed again",
      async () =>
        (await f.claimNonce(new Uint8Array(32).fill(++fill), Date.now(), 500)).verdict === "ok",
      5_000,
      50,
    );
    assert.deepEqual(states, [true, false, true], "connected, lost, back");
  } finally {
    await f.close();
  }
});

test("users' counters: increments wait while Redis is down and are all there after", {
  ignore,
}, async () => {
  await using redis = await startRedis();
  const a = await fleetOn(redis, "t:", "a");
  const b = await fleetOn(redis, "t:", "b");
  const local = new MemoryStore();
  const ca = new FleetCounters(a, local);
  const cb = new FleetCounters(b, new MemoryStore());
  try {
    const period = 1_700_000_000_000;
    await ca.add({
      server: { loginsOk: 1 },
      users: new Map([["alice", { bytesIn: 100, bytesOut: 1000, periodStart: period }]]),
    });
    await cb.add({ server: {}, users: new Map([["alice", { bytesOut: 500, loginsOk: 1 }]]) });
    let u = await cb.user("alice");
    assert.equal(u?.bytesOut, 1500);
    assert.equal(u?.loginsOk, 1);
    assert.deepEqual(u?.period, { start: period, bytesIn: 100, bytesOut: 1500 });
    assert.equal((await local.snapshot()).server.loginsOk, 1, "server counters stay local");
    assert.equal((await cb.snapshot()).server.loginsOk, 0);

    await redis.stop({ kill: true });
    await waitFor("a to see Redis gone", () => !a.up, 5_000);
    await assert.rejects(
      ca.add({ server: {}, users: new Map([["alice", { bytesOut: 7 }]]) }),
      StoreUnavailableError,
    );
    await assert.rejects(ca.add({ server: {}, users: new Map([["alice", { bytesOut: 3 }]]) }));
    await redis.start();
    await waitFor("both to reconnect", () => a.up && b.up, 10_000);
    await ca.add({ server: {}, users: new Map() }); // the retry carries what waited
    u = await cb.user("alice");
    assert.equal(u?.bytesOut, 1510);
    // A new period resets the period's bytes, once, for every server.
    await ca.add({
      server: {},
      users: new Map([["alice", { bytesIn: 1, periodStart: period + 1 }]]),
    });
    await cb.add({
      server: {},
      users: new Map([["alice", { bytesIn: 2, periodStart: period + 1 }]]),
    });
    u = await ca.user("alice");
    assert.deepEqual(u?.period, { start: period + 1, bytesIn: 3, bytesOut: 0 });
  } finally {
    await ca.close();
    await cb.close();
    await a.close();
    await b.close();
  }
});

test(
  "active() counts the servers moving a user's traffic; one that stops drops out after ACTIVE_TTL_MS",
  {
    ignore,
  },
  () =>
    withTwo(async (a, b) => {
      assert.deepEqual(await a.active(["u", "v"]), new Map([["u", 1], ["v", 1]]));
      assert.deepEqual(await b.active(["u"]), new Map([["u", 2]]));
      assert.deepEqual(await a.active(["u"]), new Map([["u", 2]]), "renewing does not count twice");
      await new Promise((r) => setTimeout(r, ACTIVE_TTL_MS + 200));
      assert.deepEqual(await b.active(["u"]), new Map([["u", 1]]));
    }),
);
