/**
 * The event interface itself (`lib/observe/events.ts`): the hub's fan-out
 * and unsubscribe, observers that throw, `stream()` with its bounded buffer
 * and its signal, `next()` and its deadline, and the `EventLog` recorder.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { EventHub, EventLog, NO_EVENTS, type TunnelEvent } from "../../lib/observe/mod.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };

/** A hub whose clock reads 1000, 1001, 1002, … */
function fakeClockHub(): EventHub {
  let t = 1000;
  return new EventHub(() => t++);
}

function rekey(session: number) {
  return { type: "rekey", session } as const;
}

Deno.test("EventHub: subscribe() delivers stamped events until its unsubscribe function is called", () => {
  const hub = fakeClockHub();
  assert.equal(hub.active, false);
  const a: TunnelEvent[] = [];
  const b: TunnelEvent[] = [];
  const stopA = hub.subscribe((e) => a.push(e));
  const stopB = hub.subscribe((e) => b.push(e));
  assert.equal(hub.active, true);
  hub.emit(rekey(1));
  stopA();
  hub.emit(rekey(2));
  stopA(); // twice is harmless
  stopB();
  assert.equal(hub.active, false);
  hub.emit(rekey(3));
  assert.deepEqual(a, [{ type: "rekey", session: 1, time: 1000 }]);
  assert.deepEqual(b, [
    { type: "rekey", session: 1, time: 1000 },
    { type: "rekey", session: 2, time: 1001 },
  ]);
});

Deno.test("EventHub: an event is stamped only when someone listens; the caller's object is not changed", () => {
  const hub = fakeClockHub();
  const init = rekey(1);
  hub.emit(init); // nobody listens: the clock is not even read
  const seen: TunnelEvent[] = [];
  hub.subscribe((e) => seen.push(e));
  hub.emit(init);
  assert.deepEqual(seen, [{ type: "rekey", session: 1, time: 1000 }]);
  assert.deepEqual(init, { type: "rekey", session: 1 });
  NO_EVENTS.emit(init); // the null sink accepts anything
});

Deno.test("EventHub: an observer that throws does not keep the others from their events", () => {
  const hub = new EventHub();
  const before: number[] = [];
  const after: number[] = [];
  hub.subscribe((e) => before.push((e as { session: number }).session));
  hub.subscribe(() => {
    throw new Error("broken observer");
  });
  hub.subscribe((e) => after.push((e as { session: number }).session));
  hub.emit(rekey(1));
  hub.emit(rekey(2));
  assert.deepEqual(before, [1, 2]);
  assert.deepEqual(after, [1, 2]);
});

Deno.test("EventHub: an observer that unsubscribes another during delivery does not break the loop", () => {
  const hub = new EventHub();
  const seen: string[] = [];
  let stopB = () => {};
  hub.subscribe(() => {
    seen.push("a");
    stopB();
  });
  stopB = hub.subscribe(() => seen.push("b"));
  hub.emit(rekey(1)); // b was registered when the event was sent: it still gets this one
  hub.emit(rekey(2));
  assert.deepEqual(seen, ["a", "b", "a"]);
});

Deno.test("EventHub.stream(): events in order, the oldest dropped and counted beyond the buffer", async () => {
  const hub = new EventHub();
  const it = hub.stream({ buffer: 3 });
  assert.equal(hub.active, true);
  for (let i = 1; i <= 5; i++) hub.emit(rekey(i));
  assert.equal(it.dropped, 2);
  const got: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await it.next();
    assert.equal(r.done, false);
    got.push((r.value as { session: number }).session);
  }
  assert.deepEqual(got, [3, 4, 5], "the two oldest were dropped");
  // A reader already waiting gets the next event directly.
  const pending = it.next();
  hub.emit(rekey(6));
  assert.equal(((await pending).value as { session: number }).session, 6);
  assert.equal(it.dropped, 2);
  await it.return!();
  assert.equal(hub.active, false, "return() unsubscribes");
  assert.deepEqual(await it.next(), { value: undefined, done: true });
});

Deno.test("EventHub.stream(): a buffer below 1 holds one event", async () => {
  const hub = new EventHub();
  const it = hub.stream({ buffer: 0 });
  hub.emit(rekey(1));
  hub.emit(rekey(2));
  assert.equal(it.dropped, 1);
  assert.equal(((await it.next()).value as { session: number }).session, 2);
  await it.return!();
});

Deno.test(
  "EventHub.stream(): aborting the signal ends the iteration, also for a waiting reader",
  SANITIZE,
  async () => {
    const hub = new EventHub();
    const controller = new AbortController();
    const seen: number[] = [];
    const reading = (async () => {
      for await (const e of hub.stream({ signal: controller.signal })) {
        seen.push((e as { session: number }).session);
      }
    })();
    hub.emit(rekey(1));
    await new Promise((r) => setTimeout(r, 0));
    controller.abort(); // the loop is waiting for a second event
    await reading;
    assert.deepEqual(seen, [1]);
    assert.equal(hub.active, false, "the stream unsubscribed");
    hub.emit(rekey(2));
    // A signal aborted before the call gives an empty stream.
    const it = hub.stream({ signal: AbortSignal.abort() });
    hub.emit(rekey(3));
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    assert.equal(hub.active, false);
  },
);

Deno.test("EventHub: for await over the hub itself is a stream", async () => {
  const hub = new EventHub();
  const it = hub[Symbol.asyncIterator]();
  hub.emit(rekey(7));
  assert.equal(((await it.next()).value as { session: number }).session, 7);
  await it.return!();
  assert.equal(hub.active, false);
});

Deno.test(
  "EventHub.next(): the first matching event of the type, ignoring others",
  SANITIZE,
  async () => {
    const hub = new EventHub();
    const p = hub.next("resume", { match: (e) => e.via === "b", timeoutMs: 1_000 });
    hub.emit(rekey(1));
    hub.emit({ type: "resume", session: 1, user: "alice", via: "a" });
    hub.emit({ type: "resume", session: 2, user: "alice", via: "b" });
    const e = await p;
    assert.equal(e.session, 2);
    assert.equal(hub.active, false, "next() unsubscribes once it has its event");
  },
);

Deno.test(
  "EventHub.next(): rejects after its deadline naming the event type",
  SANITIZE,
  async () => {
    const hub = new EventHub();
    const t0 = performance.now();
    await assert.rejects(
      hub.next("session_end", { timeoutMs: 50 }),
      (e: unknown) =>
        e instanceof Deno.errors.TimedOut &&
        /No "session_end" event within 0\.05 s/.test(e.message),
    );
    assert.ok(performance.now() - t0 >= 45);
    assert.equal(hub.active, false, "a timed-out next() unsubscribes");
  },
);

Deno.test(
  "EventHub.next(): an aborted signal rejects with its reason and unsubscribes",
  SANITIZE,
  async () => {
    const hub = new EventHub();
    const controller = new AbortController();
    const p = hub.next("login", { signal: controller.signal, timeoutMs: 5_000 });
    const reason = new Error("test over");
    controller.abort(reason);
    await assert.rejects(p, (e: unknown) => e === reason);
    assert.equal(hub.active, false);
  },
);

Deno.test("EventLog: records every event; of() filters by type and predicate; close() stops", () => {
  const hub = fakeClockHub();
  const log = new EventLog(hub);
  hub.emit(rekey(1));
  hub.emit({ type: "release", session: 1, by: "peer", reason: "released by peer" });
  hub.emit(rekey(2));
  assert.deepEqual(log.events.map((e) => e.type), ["rekey", "release", "rekey"]);
  assert.deepEqual(log.of("rekey").map((e) => [e.session, e.time]), [[1, 1000], [2, 1002]]);
  assert.deepEqual(log.of("rekey", (e) => e.session === 2).length, 1);
  assert.deepEqual(log.of("release")[0]?.by, "peer");
  log.close();
  hub.emit(rekey(3));
  assert.equal(log.events.length, 3);
  assert.equal(hub.active, false);
});

Deno.test("EventLog: holds at most its limit of events", () => {
  const hub = new EventHub();
  const log = new EventLog(hub, 2);
  for (let i = 1; i <= 4; i++) hub.emit(rekey(i));
  assert.deepEqual(log.of("rekey").map((e) => e.session), [1, 2]);
  log.close();
});

Deno.test(
  "EventLog.waitFor(): counts events recorded before the call and waits for the rest",
  SANITIZE,
  async () => {
    const hub = new EventHub();
    const log = new EventLog(hub);
    hub.emit(rekey(1));
    // Already there: resolves without waiting.
    assert.deepEqual((await log.waitFor("rekey", { timeoutMs: 1 })).map((e) => e.session), [1]);
    const three = log.waitFor("rekey", {
      count: 3,
      match: (e) => e.session !== 99,
      timeoutMs: 1_000,
    });
    hub.emit(rekey(99)); // does not match
    hub.emit(rekey(2));
    hub.emit({ type: "resume", session: 1, user: "alice", via: "x" });
    hub.emit(rekey(3));
    assert.deepEqual((await three).map((e) => e.session), [1, 2, 3]);
    log.close();
    assert.equal(hub.active, false, "waitFor() unsubscribed once satisfied");
  },
);

Deno.test(
  "EventLog.waitFor(): rejects after its deadline saying what it waited for and what it saw",
  SANITIZE,
  async () => {
    const hub = new EventHub();
    const log = new EventLog(hub);
    hub.emit({ type: "resume", session: 1, user: "alice", via: "x" });
    await assert.rejects(
      log.waitFor("resume", { count: 2, timeoutMs: 30 }),
      (e: unknown) =>
        e instanceof Deno.errors.TimedOut &&
        e.message === 'Timed out after 0.03 s waiting for 2 "resume" events (saw 1)',
    );
    await assert.rejects(
      log.waitFor("login", { timeoutMs: 30 }),
      (e: unknown) =>
        e instanceof Deno.errors.TimedOut &&
        e.message === 'Timed out after 0.03 s waiting for a "login" event (saw 0)',
    );
    log.close();
    assert.equal(hub.active, false, "timed-out waits unsubscribed");
    // A closed log records nothing more: waiting on it fails at once.
    await assert.rejects(log.waitFor("login"), Deno.errors.BadResource);
    assert.equal((await log.waitFor("resume")).length, 1, "what it holds can still be had");
  },
);
