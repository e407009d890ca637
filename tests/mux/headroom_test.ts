/**
 * pull() with headroom: the same payloads, starting `headroom` bytes into a
 * buffer of their own whose leading bytes the caller may write, also when a
 * kept payload is returned again after a resume.
 */
import assert from "node:assert/strict";
import { Mux, type MuxOptions } from "../../lib/mux/mod.ts";
import { pattern, REPLY_OK, REQUEST } from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

/** Two identical clients fed the same calls, so their pulls can be compared. */
function twins(opts: Partial<MuxOptions> = {}): [Mux, Mux] {
  const make = () => {
    const c = new Mux({ ...opts, role: "client" });
    const s = new Mux({ ...opts, role: "server" });
    const id = c.open(REQUEST);
    for (let r = c.pull(); r !== null; r = c.pull()) {
      for (const ev of s.receive(r, 0)) if (ev.type === "open") s.reply(ev.id, REPLY_OK);
    }
    for (let r = s.pull(); r !== null; r = s.pull()) c.receive(r, 0);
    c.send(id, pattern(300_000, 1));
    c.send(id, pattern(100, 2));
    c.ping(5);
    c.finish(id);
    return c;
  };
  return [make(), make()];
}

for (const resume of [false, true]) {
  Deno.test(`pull() with headroom returns the same payloads, behind headroom${resume ? " (resume)" : ""}`, () => {
    const [a, b] = twins({ resume });
    for (const headroom of [2, 16, 0, 5]) {
      const want = a.pull(4096);
      const got = b.pull(4096, { headroom });
      assert.ok(want !== null && got !== null);
      assert.deepEqual(got, want);
      assert.equal(got.byteOffset, headroom);
      assert.equal(got.buffer.byteLength, headroom + got.length);
    }
    for (let want = a.pull(); want !== null; want = a.pull()) {
      const got = b.pull(undefined, { headroom: 2 })!;
      assert.deepEqual(got, want);
      new Uint8Array(got.buffer, 0, 2).fill(0xff); // the caller's bytes
      assert.deepEqual(got, want);
    }
    assert.equal(b.pull(undefined, { headroom: 2 }), null);
  });
}

Deno.test("pull() refuses a headroom that is not an integer in [0, 16]", () => {
  const [c] = twins();
  for (const headroom of [-1, 17, 1.5, NaN]) {
    assertThrowsWith(() => c.pull(undefined, { headroom }), RangeError, "Cannot pull: headroom ");
  }
});

Deno.test("a kept payload returned after a resume keeps its headroom, or gets it in a copy", () => {
  const [c] = twins({ resume: true });
  const roomy = c.pull(8192, { headroom: 2 })!;
  const bare = c.pull(8192)!;
  c.connectionLost();
  c.onPeerResumed(1n); // the server ACKed the payload with the OPEN
  assert.equal(c.pull(undefined, { headroom: 2 }), roomy, "the same array again");
  const again = c.pull(undefined, { headroom: 2 })!;
  assert.notEqual(again, bare, "no headroom in front of it: a copy");
  assert.deepEqual(again, bare);
  assert.ok(again.byteOffset >= 2);
});
