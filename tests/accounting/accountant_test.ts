/**
 * The Accountant over synthetic server events (the event shapes of
 * lib/observe/events.ts): what each event counts, bytes counted once
 * whatever mix of `bytes` events, samples and `session_end` totals
 * arrives, per-user counters only for users that exist, batching to the
 * store, and store failures reported once.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Accountant,
  type AccountingBatch,
  type AccountingSnapshot,
  type AccountingStore,
  MemoryStore,
  type SessionBytes,
  type UserCounters,
} from "../../lib/accounting/mod.ts";
import { EventHub } from "../../lib/observe/mod.ts";

/** A store that records its calls and can be made to fail (keeping the batch, as the contract says). */
class RecordingStore implements AccountingStore {
  readonly inner: MemoryStore;
  readonly batches: AccountingBatch[] = [];
  readonly forgotten: string[] = [];
  fail = false;
  closed = 0;

  constructor(initial?: AccountingSnapshot) {
    this.inner = new MemoryStore(initial);
  }
  snapshot() {
    return this.inner.snapshot();
  }
  user(name: string) {
    return this.inner.user(name);
  }
  async add(batch: AccountingBatch) {
    this.batches.push(batch);
    await this.inner.add(batch);
    if (this.fail) throw new Error("store down");
  }
  forget(names: readonly string[]) {
    this.forgotten.push(...names);
    return this.inner.forget(names);
  }
  close() {
    this.closed++;
    return Promise.resolve();
  }
}

const USERS = new Set(["alice", "bob"]);
const users = { get: (n: string) => (USERS.has(n) ? {} : undefined) };

async function setup(
  opts: { store?: RecordingStore; sample?: () => Iterable<SessionBytes> } = {},
) {
  const hub = new EventHub();
  const store = opts.store ?? new RecordingStore();
  const errors: [unknown, boolean][] = [];
  const acct = await Accountant.start(hub, {
    store,
    users,
    flushIntervalMs: 3_600_000,
    ...(opts.sample === undefined ? {} : { sample: opts.sample }),
    onStoreError: (e, recovered) => errors.push([e, recovered]),
  });
  return { hub, store, acct, errors };
}

function login(hub: EventHub, session: number, user: string, resumed = false) {
  hub.emit({ type: "login", session, user, remote: "192.0.2.1", kex: "x", aead: "y", resumed });
  if (!resumed) hub.emit({ type: "session_start", session, user, peer: "192.0.2.1" });
}

function end(hub: EventHub, session: number, user: string, bytesIn: number, bytesOut: number) {
  hub.emit({
    type: "session_end",
    session,
    user,
    reason: "released",
    graceful: true,
    bytesIn,
    bytesOut,
  });
}

function pick(u: UserCounters | undefined, ...keys: (keyof UserCounters)[]) {
  return Object.fromEntries(keys.map((k) => [k, u?.[k]]));
}

Deno.test("Accountant counts logins, resumptions, failures, streams, refusals, kicks and limits", async () => {
  const { hub, acct } = await setup();
  login(hub, 1, "alice");
  hub.emit({
    type: "login",
    session: 1,
    user: "alice",
    remote: "r",
    kex: "x",
    aead: "y",
    resumed: true,
  });
  hub.emit({
    type: "refusal",
    remote: "r",
    reason: "auth_failed",
    detail: "wrong token",
    user: "alice",
  });
  hub.emit({ type: "refusal", remote: "r", reason: "auth_failed", detail: "unknown user" });
  hub.emit({ type: "refusal", remote: "r", reason: "probe", detail: "GET /" });
  hub.emit({ type: "stream_open", session: 1, stream: 1, target: "h:1", user: "alice" });
  hub.emit({ type: "stream_open", session: 1, stream: 3, target: "h:1", user: "alice" });
  hub.emit({
    type: "stream_refused",
    session: 1,
    stream: 5,
    target: "h:2",
    reply: 2,
    reason: "no",
    cause: "route",
    user: "alice",
  });
  hub.emit({ type: "kick", user: "alice", sessions: 1, by: "admin 127.0.0.1" });
  hub.emit({ type: "limit", limit: "max_tunnels", user: "alice", detail: "2 of 2" });
  assert.deepEqual(
    pick(
      acct.user("alice"),
      "loginsOk",
      "loginsResumed",
      "loginsFailed",
      "streamsOpened",
      "streamsRefused",
      "kicks",
      "sessionsLive",
    ),
    {
      loginsOk: 1,
      loginsResumed: 1,
      loginsFailed: 1,
      streamsOpened: 2,
      streamsRefused: 1,
      kicks: 1,
      sessionsLive: 1,
    },
  );
  const s = acct.server();
  assert.equal(s.loginsOk, 1);
  assert.equal(s.loginsFailed, 2, "unknown names count for the server");
  assert.equal(s.sessionsStarted, 1);
  assert.deepEqual([...s.refusals].sort(), [["auth_failed", 2], ["probe", 1]]);
  assert.deepEqual([...s.limits], [["max_tunnels", 1]]);
  end(hub, 1, "alice", 0, 0);
  assert.equal(acct.user("alice")?.sessionsLive, 0);
  await acct.close();
});

Deno.test("Accountant keeps per-user counters only for users that exist", async () => {
  const { hub, acct } = await setup();
  for (let i = 0; i < 1000; i++) {
    hub.emit({
      type: "refusal",
      remote: "r",
      reason: "auth_failed",
      detail: "x",
      user: `guess${i}`,
    });
  }
  assert.equal(acct.snapshot().users.size, 0);
  assert.equal(acct.server().loginsFailed, 1000);
  await acct.close();
});

Deno.test("bytes: events, samples and the session's final total count each byte once", async () => {
  let live: SessionBytes[] = [];
  const { hub, acct } = await setup({ sample: () => live });
  login(hub, 7, "bob");
  hub.emit({ type: "bytes", session: 7, user: "bob", in: 100, out: 1000 });
  hub.emit({ type: "bytes", session: 7, user: "bob", in: 50, out: 500 });
  assert.deepEqual(pick(acct.user("bob"), "bytesIn", "bytesOut"), { bytesIn: 150, bytesOut: 1500 });
  // A sample of the session's own counters, ahead of the events.
  live = [{ session: 7, user: "bob", bytesIn: 160, bytesOut: 2000 }];
  acct.refresh();
  assert.deepEqual(pick(acct.user("bob"), "bytesIn", "bytesOut"), { bytesIn: 160, bytesOut: 2000 });
  // The next event catches up past the sample: only the growth beyond it counts.
  hub.emit({ type: "bytes", session: 7, user: "bob", in: 20, out: 600 });
  assert.deepEqual(pick(acct.user("bob"), "bytesIn", "bytesOut"), { bytesIn: 170, bytesOut: 2100 });
  acct.refresh();
  assert.deepEqual(pick(acct.user("bob"), "bytesIn", "bytesOut"), { bytesIn: 170, bytesOut: 2100 });
  live = [];
  end(hub, 7, "bob", 171, 2300);
  assert.deepEqual(pick(acct.user("bob"), "bytesIn", "bytesOut"), { bytesIn: 171, bytesOut: 2300 });
  // Bytes reported after the end are in the final total already.
  hub.emit({ type: "bytes", session: 7, user: "bob", in: 1, out: 200 });
  assert.deepEqual(pick(acct.user("bob"), "bytesIn", "bytesOut"), { bytesIn: 171, bytesOut: 2300 });
  assert.equal(acct.server().bytesOut, 2300);
  await acct.close();
});

Deno.test("bytes: without any bytes event the session_end totals count", async () => {
  const { hub, acct } = await setup();
  login(hub, 1, "alice");
  login(hub, 2, "alice");
  end(hub, 1, "alice", 10, 20);
  end(hub, 2, "alice", 1, 2);
  assert.deepEqual(pick(acct.user("alice"), "bytesIn", "bytesOut", "sessionsLive"), {
    bytesIn: 11,
    bytesOut: 22,
    sessionsLive: 0,
  });
  await acct.close();
});

Deno.test("the quota period restarts its bytes at a new start only", async () => {
  const { hub, acct } = await setup();
  login(hub, 1, "alice");
  acct.beginPeriod("alice", 1000);
  hub.emit({ type: "bytes", session: 1, user: "alice", in: 5, out: 50 });
  acct.beginPeriod("alice", 1000);
  hub.emit({ type: "bytes", session: 1, user: "alice", in: 5, out: 50 });
  assert.deepEqual(acct.user("alice")?.period, { start: 1000, bytesIn: 10, bytesOut: 100 });
  acct.beginPeriod("alice", 2000);
  assert.deepEqual(acct.user("alice")?.period, { start: 2000, bytesIn: 0, bytesOut: 0 });
  assert.equal(acct.user("alice")?.bytesOut, 100, "totals are kept");
  await acct.close();
});

Deno.test("increments reach the store in batches, at flush and at close", async () => {
  const { hub, store, acct } = await setup();
  login(hub, 1, "alice");
  for (let i = 0; i < 100; i++) {
    hub.emit({ type: "stream_open", session: 1, stream: i, target: "h:1", user: "alice" });
  }
  assert.equal(store.batches.length, 0, "nothing is written per event");
  await acct.flush();
  assert.equal(store.batches.length, 1);
  assert.equal(store.batches[0]!.users.get("alice")?.streamsOpened, 100);
  await acct.flush();
  assert.equal(store.batches.length, 1, "an empty batch is not written");
  hub.emit({ type: "kick", user: "alice", sessions: 1, by: "t" });
  await acct.close();
  assert.equal(store.batches.length, 2);
  assert.equal(store.closed, 1);
  assert.equal((await store.user("alice"))?.kicks, 1);
  hub.emit({ type: "kick", user: "alice", sessions: 1, by: "t" });
  assert.equal(acct.user("alice")?.kicks, 1, "nothing is counted after close");
  await acct.close();
  assert.equal(store.closed, 1);
});

Deno.test("the flush timer writes on its own", async () => {
  const hub = new EventHub();
  const store = new RecordingStore();
  const acct = await Accountant.start(hub, { store, users, flushIntervalMs: 50 });
  try {
    hub.emit({ type: "kick", user: "bob", sessions: 0, by: "t" });
    const deadline = Date.now() + 5_000;
    while (store.batches.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(store.batches.length, 1);
  } finally {
    await acct.close();
  }
});

Deno.test("a failing store is reported once, its increments are not lost, recovery is reported", async () => {
  const store = new RecordingStore();
  const { hub, acct, errors } = await setup({ store });
  store.fail = true;
  hub.emit({ type: "kick", user: "bob", sessions: 0, by: "t" });
  await acct.flush();
  hub.emit({ type: "kick", user: "bob", sessions: 0, by: "t" });
  await acct.flush();
  assert.equal(errors.length, 1);
  assert.equal(errors[0]![1], false);
  assert.match(String(errors[0]![0]), /store down/);
  store.fail = false;
  const before = store.batches.length;
  await acct.flush();
  assert.equal(store.batches.length, before + 1, "the store is asked to retry with no new events");
  assert.deepEqual(errors.map(([, r]) => r), [false, true]);
  assert.equal((await store.user("bob"))?.kicks, 2);
  await acct.close();
});

Deno.test("start() loads the store's counters and forgets users that no longer exist", async () => {
  const initial = new MemoryStore();
  await initial.add({
    server: { loginsOk: 5 },
    users: new Map([["alice", { loginsOk: 3, sessionsLive: 2 }], ["gone", { loginsOk: 2 }]]),
  });
  const store = new RecordingStore(await initial.snapshot());
  const { hub, acct } = await setup({ store });
  assert.deepEqual(store.forgotten, ["gone"]);
  assert.equal(acct.user("gone"), undefined);
  assert.equal(acct.user("alice")?.loginsOk, 3);
  assert.equal(acct.user("alice")?.sessionsLive, 0, "no session survives a restart");
  login(hub, 1, "alice");
  assert.equal(acct.user("alice")?.loginsOk, 4, "counting continues from the loaded value");
  assert.equal(acct.server().loginsOk, 6);
  await acct.close();
});

Deno.test("a user removed from users.yml is forgotten at the next flush once their sessions end", async () => {
  const present = new Set(["alice", "carol"]);
  const hub = new EventHub();
  const store = new RecordingStore();
  const acct = await Accountant.start(hub, {
    store,
    users: { get: (n) => (present.has(n) ? {} : undefined) },
    flushIntervalMs: 3_600_000,
  });
  login(hub, 1, "carol");
  present.delete("carol");
  await acct.flush();
  assert.equal(acct.user("carol")?.loginsOk, 1, "kept while a session is live");
  end(hub, 1, "carol", 1, 1);
  await acct.flush();
  assert.equal(acct.user("carol"), undefined);
  assert.deepEqual(store.forgotten, ["carol"]);
  await acct.close();
});
