import assert from "node:assert/strict";
import { Pacers, TokenBucket } from "../../lib/tunnel/pace.ts";

Deno.test("TokenBucket: a burst of 100 ms passes, then each byte waits its share of a second", () => {
  const b = new TokenBucket(1_000_000, 0);
  assert.equal(b.slice, 100_000);
  assert.equal(b.take(100_000, 0), 0);
  assert.equal(b.take(50_000, 0), 50);
  // 50 ms later the debt is paid; the next 100 kB are 100 ms of debt.
  assert.equal(b.take(100_000, 50), 100);
  // Idle time refills at most one burst.
  assert.equal(b.take(100_000, 10_000), 0);
  assert.equal(b.take(1, 10_000), 1);
});

Deno.test("TokenBucket: over any span, bytes taken ≈ rate × time + one burst", () => {
  const rate = 250_000;
  const b = new TokenBucket(rate, 0);
  let now = 0;
  let moved = 0;
  // Three streams taking slices in turn, each waiting what it is told.
  const ready = [0, 0, 0];
  while (now < 10_000) {
    const i = ready.indexOf(Math.min(...ready));
    now = ready[i]!;
    moved += b.slice;
    ready[i] = now + b.take(b.slice, now);
  }
  const expected = rate * 10 + b.slice;
  assert.ok(Math.abs(moved - expected) <= 3 * b.slice, `${moved} vs ${expected}`);
});

Deno.test("TokenBucket: low rates still move 4 KiB slices; setRate keeps the debt", () => {
  const b = new TokenBucket(2_048, 0);
  assert.equal(b.slice, 4_096);
  assert.equal(b.take(8_192, 0), 2_000);
  b.setRate(4_096, 0);
  assert.equal(b.take(0, 0), 1_000);
});

Deno.test("Pacers: one pair of buckets per limited user, kept across reloads", () => {
  const pacers = new Pacers(() => 0);
  const p = pacers.update("alice", 1_000_000)!;
  assert.equal(pacers.update("alice", 1_000_000), p, "the same buckets: streams keep sharing");
  assert.equal(pacers.update("alice", 2_000_000), p);
  assert.equal(p.down.rate, 2_000_000);
  assert.equal(p.up.rate, 2_000_000);
  assert.equal(pacers.update("bob", undefined), undefined);
  pacers.retain(() => false);
  assert.notEqual(pacers.update("alice", 2_000_000), p, "forgotten, then made anew");
});

Deno.test("TokenBucket.admit: datagrams pass while the bucket is not in debt, and share it with streams", () => {
  const b = new TokenBucket(100_000, 0); // a burst of 10 kB
  let passed = 0;
  // 1000-byte datagrams offered at 1 MB/s for 10 s: one per ms.
  for (let now = 0; now < 10_000; now++) if (b.admit(1000, now)) passed++;
  // Ten times the rate offered: what passes is the rate, plus the burst.
  const expected = (100_000 * 10 + 10_000) / 1000;
  assert.ok(Math.abs(passed - expected) <= 2, `${passed} datagrams passed, ${expected} expected`);
  // A stream's debt shuts datagrams out until it is paid, and a datagram's bytes are debt too.
  const s = new TokenBucket(100_000, 0);
  assert.equal(s.take(20_000, 0), 100);
  assert.equal(s.admit(1000, 50), false);
  assert.equal(s.admit(1000, 101), true);
  assert.equal(s.take(1000, 101), 19); // 100 - 1000 - 1000 bytes: 19 ms of debt
});
