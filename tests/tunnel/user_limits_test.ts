import assert from "node:assert/strict";
import { Accountant, MemoryStore } from "../../lib/accounting/mod.ts";
import type { UserEntry } from "../../lib/config/mod.ts";
import { EventHub } from "../../lib/observe/mod.ts";
import { SessionTable } from "../../lib/tunnel/session_table.ts";
import { UserLimits } from "../../lib/tunnel/user_limits.ts";

function user(name: string, more: Partial<UserEntry> = {}): UserEntry {
  return {
    name,
    publicKey: new Uint8Array(32),
    token: new Uint8Array(32),
    routes: ["*"],
    disabled: false,
    ...more,
  };
}

async function setup(users: Map<string, UserEntry>) {
  const events = new EventHub();
  const accountant = await Accountant.start(events, { store: new MemoryStore(), users });
  const limits = new UserLimits({
    table: new SessionTable(),
    users,
    events,
    accountant,
    maxTunnels: 2,
    end: () => Promise.resolve(0),
  });
  return {
    limits,
    [Symbol.asyncDispose]: async () => {
      limits.close();
      await accountant.close();
    },
  };
}

Deno.test("UserLimits.meter(): none for a user without bandwidth or quota (nothing on the data path)", async () => {
  const users = new Map([
    ["free", user("free", { maxStreams: 4, maxTunnels: 1 })],
    ["paced", user("paced", { bandwidth: 1_000_000 })],
    ["capped", user("capped", { quota: { bytes: 1e9, periodS: 86_400 } })],
  ]);
  await using s = await setup(users);
  assert.equal(s.limits.meter("free"), undefined);
  assert.equal(s.limits.meter("nobody"), undefined);
  const paced = s.limits.meter("paced")!;
  assert.equal(paced.down?.rate, 1_000_000);
  assert.equal(paced.up?.rate, 1_000_000);
  assert.equal(paced.budget, undefined);
  assert.equal(s.limits.meter("paced"), paced, "one meter per user, shared by their sessions");
  const capped = s.limits.meter("capped")!;
  assert.deepEqual([capped.down, capped.up], [undefined, undefined]);
  assert.ok(capped.budget !== undefined);
  // A reload that lifts the limit: the user goes back to no meter at all.
  users.set("paced", user("paced"));
  assert.equal(s.limits.meter("paced"), undefined);
});

Deno.test("UserLimits: tunnel and stream admission with no live sessions", async () => {
  const users = new Map([["a", user("a", { maxTunnels: 1, maxStreams: 1 })]]);
  await using s = await setup(users);
  assert.equal(s.limits.admitTunnel("a"), undefined);
  assert.equal(s.limits.admitStream("a"), undefined);
  users.set("a", user("a", { quota: { bytes: 1024, periodS: 60 } }));
  assert.equal(s.limits.admitStream("a"), undefined, "nothing used yet");
});

Deno.test("UserLimits.setShares(): a user's live buckets run at bandwidth / servers, and at all of it again", async () => {
  const users = new Map([["alice", user("alice", { bandwidth: 4_000_000 })]]);
  await using s = await setup(users);
  const m = s.limits.meter("alice")!;
  assert.equal(m.down!.rate, 4_000_000);
  s.limits.setShares(new Map([["alice", 2]]));
  assert.equal(m.down!.rate, 2_000_000, "the same bucket, at half the rate");
  assert.equal(m.up!.rate, 2_000_000);
  assert.equal(s.limits.meter("alice")!.down, m.down);
  s.limits.setShares(new Map());
  assert.equal(m.down!.rate, 4_000_000);
});
