/**
 * lib/session/release.ts: the three-step release (PROTOCOL.md part 4 section 4), the
 * one-way NOTICE, refusals, and body codecs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ProtocolError } from "../../lib/errors.ts";
import { hkdfExpandLabel } from "../../lib/crypto/mod.ts";
import {
  decodeReleaseBody,
  deriveReleaseKey,
  encodeReleaseBody,
  incrementNonce,
  RELEASE_BODY_BYTES,
  type ReleaseBody,
  ReleaseReason,
  ReleaseState,
} from "../../lib/session/mod.ts";

const KEY = deriveReleaseKey(new Uint8Array(32).fill(7), new Uint8Array(16).fill(9));

function pair(key = KEY): { client: ReleaseState; server: ReleaseState } {
  return { client: new ReleaseState(key, "client"), server: new ReleaseState(key, "server") };
}

/** HMAC-SHA256(key, ascii(label) ‖ parts), independent of the module. */
function refMac(key: Uint8Array, label: string, ...parts: Uint8Array[]): Uint8Array {
  const l = new TextEncoder().encode(label);
  const m = new Uint8Array(l.length + parts.reduce((n, p) => n + p.length, 0));
  m.set(l);
  let o = l.length;
  for (const p of parts) m.set(p, (o += p.length) - p.length);
  return hmac(sha256, key, m);
}

Deno.test("ReleaseState: request → challenge → confirm releases both sides", () => {
  const nonce = new Uint8Array(16).fill(0xff);
  nonce[0] = 0x01;
  const random = new Uint8Array(32).fill(0x5a);
  const client = new ReleaseState(KEY, "client", () => nonce.slice());
  const server = new ReleaseState(KEY, "server", () => random.slice());
  const req = client.request();
  assert.equal(client.state, "requested");
  // Layout: 1 ‖ nonce ‖ HMAC(K, "ns1 release request" ‖ 0x01 ‖ nonce).
  assert.deepEqual(
    req,
    Uint8Array.from([1, ...nonce, ...refMac(KEY, "ns1 release request", Uint8Array.of(1), nonce)]),
  );
  const ch = server.consume(req);
  assert.equal(server.state, "challenged");
  assert.equal(ch.released, undefined);
  assert.ok(ch.reply !== undefined);
  const expectNonce = new Uint8Array(16);
  expectNonce[0] = 0x02; // 0x01ffff…ff + 1
  assert.deepEqual(ch.reply, Uint8Array.from([2, ...random, ...expectNonce]));
  const conf = client.consume(ch.reply);
  assert.equal(conf.released, true);
  assert.equal(client.released, true);
  assert.deepEqual(
    conf.reply,
    Uint8Array.from([3, ...refMac(KEY, "ns1 release confirm", nonce, random)]),
  );
  assert.deepEqual(server.consume(conf.reply!), { released: true });
  assert.equal(server.released, true);
  // Released is final on both sides.
  assert.ok(server.consume(conf.reply!).error !== undefined);
  assert.ok(client.consume(ch.reply).error !== undefined);
  assert.throws(() => client.request(), (e: unknown) => e instanceof ProtocolError);
});

Deno.test("ReleaseState: the server may request too", () => {
  const { client, server } = pair();
  const ch = client.consume(server.request());
  const conf = server.consume(ch.reply!);
  assert.equal(conf.released, true);
  assert.equal(client.consume(conf.reply!).released, true);
});

Deno.test("ReleaseState: a bad request MAC is refused and releases nothing", () => {
  const { client, server } = pair();
  const req = client.request();
  req[20]! ^= 1;
  const r = server.consume(req);
  assert.match(r.error!, /MAC/);
  assert.equal(r.reply, undefined);
  assert.equal(server.state, "idle");
  // A request under another session's key is refused too.
  const other = new ReleaseState(new Uint8Array(32).fill(1), "client");
  assert.match(server.consume(other.request()).error!, /MAC/);
  // A request reflected back to its sender is refused (the MAC binds the role).
  const c2 = new ReleaseState(KEY, "client");
  assert.match(c2.consume(new ReleaseState(KEY, "client").request()).error!, /MAC/);
});

Deno.test("ReleaseState: a bad confirm MAC is refused, ends the challenge and releases nothing", () => {
  const { client, server } = pair();
  const ch = server.consume(client.request()).reply!;
  const conf = client.consume(ch).reply!;
  const bad = conf.slice();
  bad[5]! ^= 0x80;
  const r = server.consume(bad);
  assert.match(r.error!, /MAC/);
  assert.equal(r.released, undefined);
  assert.equal(server.released, false);
  // One attempt per challenge: even the right MAC is now out of order.
  assert.match(server.consume(conf).error!, /state "idle"/);
  assert.equal(server.released, false);
});

Deno.test("ReleaseState: a confirm replayed from an earlier release does not release", () => {
  // Release 1 completes; its CONFIRM is recorded.
  const a = pair();
  const old = a.client.consume(a.server.consume(a.client.request()).reply!).reply!;
  assert.equal(a.server.consume(old).released, true);
  // The same key (worst case) with a new challenge: the old confirm does not fit.
  const b = pair();
  b.server.consume(b.client.request());
  const r = b.server.consume(old);
  assert.match(r.error!, /MAC/);
  assert.equal(b.server.released, false);
  // And a replay to a released side is refused.
  assert.match(a.server.consume(old).error!, /already released/);
});

Deno.test("ReleaseState: out-of-order steps are refused and release nothing", () => {
  const { client, server } = pair();
  const otherPair = pair();
  const foreignChallenge = otherPair.server.consume(otherPair.client.request()).reply!;
  // A challenge without a request; a confirm without a challenge.
  assert.match(client.consume(foreignChallenge).error!, /state "idle"/);
  assert.match(
    server.consume(encodeReleaseBody({ type: "confirm", mac: new Uint8Array(32) })).error!,
    /state "idle"/,
  );
  // A challenge echoing the wrong nonce.
  client.request();
  assert.match(client.consume(foreignChallenge).error!, /nonce/);
  assert.equal(client.state, "requested");
  // A second request while a challenge is outstanding.
  const c3 = new ReleaseState(KEY, "client");
  server.consume(c3.request());
  assert.match(server.consume(new ReleaseState(KEY, "client").request()).error!, /outstanding/);
  assert.equal(client.released || server.released, false);
  // Malformed bodies come back as errors, never as throws.
  assert.match(server.consume(new Uint8Array(0)).error!, /empty/);
  assert.match(server.consume(Uint8Array.of(9)).error!, /subtype 9/);
  assert.match(server.consume(new Uint8Array(48).fill(1, 0, 1)).error!, /length 48/);
});

Deno.test("ReleaseState: simultaneous requests: the server's wins", () => {
  const { client, server } = pair();
  const cr = client.request(), sr = server.request();
  assert.deepEqual(server.consume(cr), {}); // ignored
  const ch = client.consume(sr); // the client abandons its own and answers
  assert.equal(client.state, "challenged");
  const conf = server.consume(ch.reply!);
  assert.equal(conf.released, true);
  assert.equal(client.consume(conf.reply!).released, true);
});

for (const [who, peer] of [["client", "server"], ["server", "client"]] as const) {
  Deno.test(`ReleaseState: a ${who} NOTICE releases at once`, () => {
    const sender = new ReleaseState(KEY, who), receiver = new ReleaseState(KEY, peer);
    sender.request(); // e.g. the peer never answered
    const n = sender.notice(ReleaseReason.NO_RESPONSE);
    assert.equal(sender.released, true);
    assert.equal(n.length, RELEASE_BODY_BYTES.notice);
    assert.deepEqual(
      n.subarray(2),
      refMac(KEY, "ns1 release notice", Uint8Array.of(who === "client" ? 1 : 2, 1)),
    );
    assert.deepEqual(receiver.consume(n), { released: true, reason: ReleaseReason.NO_RESPONSE });
    assert.throws(() => sender.notice(), (e: unknown) => e instanceof ProtocolError);
  });
}

Deno.test("ReleaseState: a NOTICE with a bad MAC or reason swapped is refused", () => {
  const { client, server } = pair();
  const n = new ReleaseState(KEY, "client").notice(ReleaseReason.SHUTDOWN);
  const bad = n.slice();
  bad[1] = ReleaseReason.IDLE; // the reason is under the MAC
  assert.match(server.consume(bad).error!, /MAC/);
  assert.equal(server.released, false);
  // Reflected to a client: the role byte differs.
  assert.match(client.consume(n).error!, /MAC/);
  assert.equal(server.consume(n).released, true);
});

Deno.test("ReleaseState: refuses bad construction arguments and leaves the caller's key alone", () => {
  assert.throws(() => new ReleaseState(new Uint8Array(31), "client"), RangeError);
  assert.throws(() => new ReleaseState("k" as unknown as Uint8Array, "client"), TypeError);
  assert.throws(() => new ReleaseState(KEY, "relay" as "client"), TypeError);
  assert.throws(() => new ReleaseState(KEY, "client").notice(256), RangeError);
  const key = KEY.slice();
  const s = new ReleaseState(key, "server");
  s.notice();
  assert.deepEqual(key, KEY); // the caller's copy is untouched
});

Deno.test('deriveReleaseKey() is HKDF-Expand-Label(resumption, "release", session id, 32)', () => {
  const rs = new Uint8Array(32).fill(7), sid = new Uint8Array(16).fill(9);
  assert.deepEqual(deriveReleaseKey(rs, sid), hkdfExpandLabel(rs, "release", sid, 32));
  assert.notDeepEqual(deriveReleaseKey(rs, new Uint8Array(16)), deriveReleaseKey(rs, sid));
  assert.throws(() => deriveReleaseKey(new Uint8Array(16), sid), RangeError);
});

Deno.test("incrementNonce() adds one modulo 2^128", () => {
  assert.deepEqual(incrementNonce(new Uint8Array(16)), Uint8Array.of(...new Uint8Array(15), 1));
  assert.deepEqual(incrementNonce(new Uint8Array(16).fill(0xff)), new Uint8Array(16));
  const n = Uint8Array.of(...new Uint8Array(14), 0x01, 0xff);
  assert.deepEqual(incrementNonce(n), Uint8Array.of(...new Uint8Array(14), 0x02, 0x00));
});

const bodyArb: fc.Arbitrary<ReleaseBody> = fc.oneof(
  fc.record({
    type: fc.constant("request" as const),
    nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    mac: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  }),
  fc.record({
    type: fc.constant("challenge" as const),
    random: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  }),
  fc.record({
    type: fc.constant("confirm" as const),
    mac: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  }),
  fc.record({
    type: fc.constant("notice" as const),
    reason: fc.integer({ min: 0, max: 255 }),
    mac: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  }),
);

Deno.test("encodeReleaseBody()/decodeReleaseBody() round-trip every body", () => {
  fc.assert(
    fc.property(bodyArb, (body) => {
      const enc = encodeReleaseBody(body);
      assert.equal(enc.length, RELEASE_BODY_BYTES[body.type]);
      assert.deepEqual(decodeReleaseBody(enc), { ...body }); // fc.record objects have no prototype
    }),
  );
});

Deno.test("decodeReleaseBody() accepts exactly the four subtypes at their lengths", () => {
  const lengths: Record<number, number> = { 1: 49, 2: 49, 3: 33, 4: 34 };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70 }), fc.integer({ min: 0, max: 6 }), (bytes, t) => {
      if (bytes.length > 0) bytes[0] = t;
      const ok = bytes.length > 0 && lengths[t] === bytes.length;
      try {
        const d = decodeReleaseBody(bytes);
        assert.ok(ok);
        assert.deepEqual(encodeReleaseBody(d), bytes);
      } catch (e) {
        assert.ok(!ok, String(e));
        assert.ok(e instanceof ProtocolError && e.code === "MALFORMED");
      }
    }),
    { numRuns: 500 },
  );
  // Every truncation and extension of a valid body is refused.
  fc.assert(
    fc.property(bodyArb, fc.integer({ min: -40, max: 40 }).filter((d) => d !== 0), (body, d) => {
      const enc = encodeReleaseBody(body);
      const changed = d < 0
        ? enc.subarray(0, Math.max(1, enc.length + d))
        : Uint8Array.from([...enc, ...new Uint8Array(d)]);
      if (changed.length === enc.length) return;
      assert.throws(() => decodeReleaseBody(changed), ProtocolError);
    }),
  );
});

Deno.test("encodeReleaseBody() refuses wrong field lengths and types", () => {
  assert.throws(
    () =>
      encodeReleaseBody({ type: "request", nonce: new Uint8Array(15), mac: new Uint8Array(32) }),
    RangeError,
  );
  assert.throws(() => encodeReleaseBody({ type: "confirm", mac: new Uint8Array(33) }), RangeError);
  assert.throws(
    () => encodeReleaseBody({ type: "notice", reason: 1.5, mac: new Uint8Array(32) }),
    RangeError,
  );
  assert.throws(
    () => encodeReleaseBody({ type: "other" } as unknown as ReleaseBody),
    TypeError,
  );
});
