import { strict as assert } from "node:assert";
import fc from "fast-check";
import {
  DEFAULT_REPLAY_CAPACITY,
  DEFAULT_REPLAY_WINDOW_MS,
  ReplayGuard,
} from "../../lib/handshake/mod.ts";
import { assertThrowsWith } from "../support/assert.ts";

const nonce = (i: number) =>
  new Uint8Array(32).fill(0).map((_, j) => (j < 4 ? (i >> (8 * j)) & 0xff : 0));

Deno.test("ReplayGuard accepts a nonce once and calls the second time a replay", () => {
  const g = new ReplayGuard();
  assert.equal(g.windowMs, DEFAULT_REPLAY_WINDOW_MS);
  assert.equal(g.capacity, DEFAULT_REPLAY_CAPACITY);
  assert.equal(g.check(nonce(1), 1000, 1000), "ok");
  assert.equal(g.check(nonce(1), 1000, 1000), "replay");
  assert.equal(g.check(nonce(1), 1500, 2000), "replay", "a new timestamp does not launder a nonce");
  assert.equal(g.check(nonce(2), 1000, 1000), "ok");
});

Deno.test("ReplayGuard calls hellos outside now ± window stale", () => {
  const g = new ReplayGuard({ windowMs: 100 });
  assert.equal(g.check(nonce(1), 899, 1000), "stale");
  assert.equal(g.check(nonce(2), 1101, 1000), "stale");
  assert.equal(g.check(nonce(3), 900, 1000), "ok");
  assert.equal(g.check(nonce(4), 1100, 1000), "ok");
  assert.equal(g.size, 2, "stale hellos are not remembered");
});

Deno.test("ReplayGuard forgets expired nonces but never accepts them again", () => {
  const g = new ReplayGuard({ windowMs: 100 });
  assert.equal(g.check(nonce(1), 1000, 1000), "ok");
  assert.equal(g.check(nonce(2), 1150, 1150), "ok");
  assert.equal(g.size, 1, "nonce 1 expired at now 1150");
  assert.equal(g.floorMs, 1000);
  // Even if the clock jumps back, the floor keeps nonce 1 out.
  assert.equal(g.check(nonce(1), 1000, 1000), "stale");
});

Deno.test("ReplayGuard at capacity evicts the oldest and raises the floor to it", () => {
  const g = new ReplayGuard({ windowMs: 1000, capacity: 3 });
  for (const [i, ts] of [[1, 10], [2, 20], [3, 30]]) {
    assert.equal(g.check(nonce(i!), ts!, 50), "ok");
  }
  assert.equal(g.floorMs, -Infinity);
  assert.equal(g.check(nonce(4), 40, 50), "ok");
  assert.equal(g.size, 3);
  assert.equal(g.floorMs, 10);
  assert.equal(g.check(nonce(1), 10, 50), "stale", "the evicted nonce is refused");
  assert.equal(g.check(nonce(9), 10, 50), "stale", "anything at the floor is refused");
  assert.equal(g.check(nonce(2), 20, 50), "replay", "still remembered");
  assert.equal(g.check(nonce(5), 11, 50), "ok", "newer than the floor is fine");
  assert.equal(g.floorMs, 11, "the newcomer was itself the oldest and was evicted at once");
  assert.equal(g.check(nonce(5), 11, 50), "stale", "and its replay is refused");
});

Deno.test("ReplayGuard refuses bad options", () => {
  assertThrowsWith(
    () => new ReplayGuard({ capacity: 0 }),
    RangeError,
    "Cannot create ReplayGuard: capacity 0 is not an integer >= 1",
  );
  assertThrowsWith(
    () => new ReplayGuard({ windowMs: -1 }),
    RangeError,
    "Cannot create ReplayGuard: window -1 ms is not a finite number >= 0",
  );
  assertThrowsWith(
    () => new ReplayGuard({ windowMs: Infinity }),
    RangeError,
    "Cannot create ReplayGuard: window Infinity ms is not a finite number >= 0",
  );
});

Deno.test("ReplayGuard never accepts the same Hello twice and never exceeds its capacity (property)", () => {
  // A Hello's nonce and timestamp are sealed together, so a replay repeats both:
  // hello i is (nonce i, timestamp 20 i). Clocks advance; hellos are retried at random.
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 12 })), {
        maxLength: 300,
      }),
      (capacity, ops) => {
        const g = new ReplayGuard({ windowMs: 60, capacity });
        const accepted = new Set<number>();
        let now = 0, oks = 0;
        for (const [id, advance] of ops) {
          now += advance;
          if (g.check(nonce(id), 20 * id, now) === "ok") {
            assert.ok(!accepted.has(id), `hello ${id} accepted twice`);
            accepted.add(id);
            oks++;
          }
          assert.ok(g.size <= capacity);
        }
        return oks >= 0;
      },
    ),
    { numRuns: 1000 },
  );
});
