/**
 * DH re-key in the record layer (docs/PROTOCOL.md part 4 (re-key and release) section
 * 3): the re-key header bit, mixins early and late, pipelining across
 * re-keys, real key change, refusals.
 */
import assert from "node:assert/strict";
import { hkdfExpandLabel } from "../../lib/crypto/mod.ts";
import { HEADER_REKEY_BIT, type RecordOpener, type RecordSealer } from "../../lib/record/mod.ts";
import { KeySchedule, nextTrafficSecret, rekeyTrafficSecret } from "../../lib/record/_keys.ts";
import { HeaderMask } from "../../lib/record/_mask.ts";
import { deriveLenKey } from "../../lib/record/_keys.ts";
import {
  assertKeyWiped,
  BACKENDS,
  CASES,
  join,
  on,
  pattern,
  secretOf,
  settle,
} from "./_helpers.ts";
import type { AeadId, CryptoBackend } from "../../lib/record/mod.ts";
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { refLenKey, refNonce } from "./_reference.ts";
import { assertThrowsWith, isProtocolError } from "../support/assert.ts";

const EMPTY = new Uint8Array(0);

function mixinOf(b: number): Uint8Array {
  return new Uint8Array(32).fill(b);
}

async function pair(
  backend: CryptoBackend,
  aead: AeadId,
  b: number,
): Promise<[RecordSealer, RecordOpener]> {
  const { createRecordSealer, createRecordOpener } = on(backend);
  return [await createRecordSealer(aead, secretOf(b)), await createRecordOpener(aead, secretOf(b))];
}

/** Whether `p` settles within a few macrotask turns (enough for any ready work). */
async function settlesSoon(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 5));
  return done;
}

/** The unmasked header of record `seq` of a direction (from its secret, or its len_key). */
function header(secret: Uint8Array, seq: number, rec: Uint8Array, isLenKey = false): number {
  const m = new HeaderMask(isLenKey ? secret : deriveLenKey(secret)).mask(seq);
  return ((rec[0]! << 16) | (rec[1]! << 8) | rec[2]!) ^ m;
}

/** Opens a whole record of `seq` with keys from `secret` (noble, no lib code); throws on failure. */
function refOpen(
  aead: AeadId,
  lenKey: Uint8Array,
  ep: { key: Uint8Array; iv: Uint8Array },
  seq: number,
  rec: Uint8Array,
): Uint8Array {
  const nonce = refNonce(ep.iv, BigInt(seq));
  const aad = rec.subarray(0, 3);
  const c = aead === "chacha20-poly1305"
    ? chacha20poly1305(ep.key, nonce, aad)
    : gcm(ep.key, nonce, aad);
  assert.equal(rec.length, 3 + (header(lenKey, seq, rec, true) & 0x3fffff));
  const inner = c.decrypt(rec.subarray(3));
  return inner.subarray(2, inner.length - ((inner[0]! << 8) | inner[1]!));
}

/** Reference epoch keys from a secret. */
function refKeys(aead: AeadId, secret: Uint8Array) {
  return {
    secret,
    key: hkdfExpandLabel(secret, "record key", EMPTY, aead === "aes-128-gcm" ? 16 : 32),
    iv: hkdfExpandLabel(secret, "record iv", EMPTY, 12),
  };
}

for (const { be, backend, aead } of CASES) {
  const { createRecordSealer, createRecordOpener } = on(backend);
  Deno.test(`${be} ${aead}: rekey() round-trips with the mixin provided before the flagged record`, async () => {
    const [sealer, opener] = await pair(backend, aead, 40);
    const r0 = await sealer.seal(pattern(10, 0));
    sealer.rekey(mixinOf(1));
    assert.equal(sealer.rekeyPending, true);
    assert.equal(sealer.epoch, 0);
    const r1 = await sealer.seal(pattern(20, 1));
    const r2 = await sealer.seal(pattern(30, 2));
    assert.equal(sealer.rekeyPending, false);
    assert.equal(sealer.epoch, 1);
    // Only the first record of the DH epoch carries the re-key bit.
    assert.equal(header(secretOf(40), 0, r0) & HEADER_REKEY_BIT, 0);
    assert.equal(header(secretOf(40), 1, r1) & HEADER_REKEY_BIT, HEADER_REKEY_BIT);
    assert.equal(header(secretOf(40), 2, r2) & HEADER_REKEY_BIT, 0);
    assert.deepEqual(await opener.push(r0)[0], pattern(10, 0));
    opener.provideMixin(mixinOf(1));
    const got = await Promise.all(opener.push(join([r1, r2])));
    assert.deepEqual(got, [pattern(20, 1), pattern(30, 2)]);
    assert.equal(opener.epoch, 1);
    assert.equal(opener.awaitingMixin, false);
  });

  Deno.test(`${be} ${aead}: a late mixin: the flagged epoch waits, earlier records never do`, async () => {
    const [sealer, opener] = await pair(backend, aead, 41);
    const before = [await sealer.seal(pattern(5, 0)), await sealer.seal(pattern(6, 1))];
    sealer.rekey(mixinOf(2));
    const after = [await sealer.seal(pattern(7, 2)), await sealer.seal(pattern(8, 3))];
    sealer.ratchetNow(); // a hash ratchet on top of the waiting epoch
    after.push(await sealer.seal(pattern(9, 4)));
    const ps = opener.push(join([...before, ...after]));
    assert.equal(ps.length, 5);
    assert.equal(opener.awaitingMixin, true);
    assert.equal(opener.epoch, 2);
    assert.deepEqual(await Promise.all(ps.slice(0, 2)), [pattern(5, 0), pattern(6, 1)]);
    assert.equal(await settlesSoon(ps[2]!), false);
    // More records of the waiting epoch may still arrive.
    const more = opener.push(await sealer.seal(pattern(10, 5)));
    opener.provideMixin(mixinOf(2));
    assert.equal(opener.awaitingMixin, false);
    const got = await Promise.all([...ps.slice(2), ...more]);
    assert.deepEqual(got, [pattern(7, 2), pattern(8, 3), pattern(9, 4), pattern(10, 5)]);
    // And the schedule goes on normally afterwards.
    sealer.ratchetNow();
    assert.deepEqual(await opener.push(await sealer.seal(pattern(11, 6)))[0], pattern(11, 6));
    assert.equal(opener.epoch, 3);
  });

  Deno.test(`${be} ${aead}: pipelined seals and opens across several re-keys and ratchets`, async () => {
    const secret = secretOf(42);
    const sealer = await createRecordSealer(aead, secret, { ratchet: { records: 3 } });
    const opener = await createRecordOpener(aead, secret);
    const sizes = Array.from({ length: 24 }, (_, i) => 100 + i * 2500);
    const seals: Promise<Uint8Array>[] = [];
    // Records 9 and 10 both start DH epochs (a REPLY sealed first in a fresh DH epoch).
    const rekeyAt = new Map([[4, 1], [9, 2], [10, 3], [17, 4]]);
    for (const [i, n] of sizes.entries()) {
      const m = rekeyAt.get(i);
      if (m !== undefined) sealer.rekey(mixinOf(m)); // while earlier seals are in flight
      seals.push(sealer.seal(pattern(n, i)));
    }
    const recs = await Promise.all(seals);
    const start = (i: number) => recs.slice(0, i).reduce((n, r) => n + r.length, 0);
    const wire = join(recs);
    // Opens in flight: uneven chunks; mixin 1 early, 2 late (its epoch waits), 3 early
    // (right after 2, before record 10 is framed), 4 late, after everything.
    const ps: Promise<Uint8Array>[] = [];
    opener.provideMixin(mixinOf(1));
    const cuts = [0, 7, 5000, start(9) + 10, start(12) + 1, start(15) + 3, wire.length];
    for (let c = 1; c < cuts.length; c++) {
      ps.push(...opener.push(wire.subarray(cuts[c - 1]!, cuts[c]!)));
      if (c === 3) {
        assert.equal(opener.awaitingMixin, true);
        opener.provideMixin(mixinOf(2));
        opener.provideMixin(mixinOf(3));
      }
    }
    assert.equal(opener.awaitingMixin, true);
    assert.deepEqual(
      await Promise.all(ps.slice(0, 9)),
      sizes.slice(0, 9).map((n, i) => pattern(n, i)),
    );
    opener.provideMixin(mixinOf(4));
    assert.deepEqual(await Promise.all(ps), sizes.map((n, i) => pattern(n, i)));
    assert.equal(opener.epoch, sealer.epoch);
  });

  Deno.test(`${be} ${aead}: a wrong mixin fails the DH epoch with DECRYPT_FAILED, not earlier records`, async () => {
    const [sealer, opener] = await pair(backend, aead, 43);
    const r0 = await sealer.seal(pattern(3, 0));
    sealer.rekey(mixinOf(5));
    const r1 = await sealer.seal(pattern(4, 1));
    const r2 = await sealer.seal(pattern(5, 2));
    const ps = opener.push(join([r0, r1, r2]));
    opener.provideMixin(mixinOf(6));
    assert.deepEqual(await ps[0], pattern(3, 0));
    await assert.rejects(ps[1]!, isProtocolError("DECRYPT_FAILED"));
    await assert.rejects(ps[2]!, isProtocolError("DECRYPT_FAILED"));
    // Early and wrong: same.
    const [s2, o2] = await pair(backend, aead, 43);
    o2.provideMixin(mixinOf(6));
    s2.rekey(mixinOf(5));
    await assert.rejects(o2.push(await s2.seal(pattern(1)))[0]!, isProtocolError("DECRYPT_FAILED"));
  });

  Deno.test(`${be} ${aead}: a DH re-key really changes the keys: neither the old chain nor the hash ratchet opens it`, async () => {
    const secret = secretOf(44);
    const rekeyed = await createRecordSealer(aead, secret);
    const ratcheted = await createRecordSealer(aead, secret);
    rekeyed.rekey(mixinOf(7));
    ratcheted.ratchetNow();
    const a = await rekeyed.seal(pattern(64));
    const b = await ratcheted.seal(pattern(64));
    // Same seq and epoch bit: the headers differ in the re-key bit only.
    assert.equal(a[0]! ^ b[0]!, HEADER_REKEY_BIT >>> 16);
    assert.deepEqual(a.subarray(1, 3), b.subarray(1, 3));
    for (let o = 3; o + 16 <= a.length; o += 16) {
      assert.notDeepEqual(a.subarray(o, o + 16), b.subarray(o, o + 16));
    }
    const lenKey = refLenKey(secret);
    const chain = nextTrafficSecret(secret);
    // Someone holding the traffic secret (or the next chain secret) but not the mixin fails.
    assertThrowsWith(
      () => refOpen(aead, lenKey, refKeys(aead, secret), 0, a),
      Error,
      /invalid tag/,
    );
    assertThrowsWith(() => refOpen(aead, lenKey, refKeys(aead, chain), 0, a), Error, /invalid tag/);
    const s1 = rekeyTrafficSecret(chain, mixinOf(7));
    assert.deepEqual(refOpen(aead, lenKey, refKeys(aead, s1), 0, a), pattern(64));
    assert.deepEqual(refOpen(aead, lenKey, refKeys(aead, chain), 0, b), pattern(64));
    // An opener following only hash ratchets (no mixin ever) never opens it.
    const opener = await createRecordOpener(aead, secret);
    const p = opener.push(a)[0]!;
    assert.equal(await settlesSoon(p), false);
  });

  Deno.test(`${be} ${aead}: a flagged epoch without a mixin stays pending to the end of the session`, async () => {
    const [sealer, opener] = await pair(backend, aead, 45);
    const r0 = await sealer.seal(pattern(1, 0));
    sealer.rekey(mixinOf(8));
    const rest = await Promise.all([2, 3, 4].map((n, i) => sealer.seal(pattern(n, i + 1))));
    const ps = opener.push(join([r0, ...rest]));
    assert.deepEqual(await ps[0], pattern(1, 0));
    for (const p of ps.slice(1)) assert.equal(await settlesSoon(p), false);
    assert.equal(opener.awaitingMixin, true);
    assert.equal(opener.buffered, 0);
    assert.equal(opener.recordsReceived, 4);
    // The session ends here: nothing rejects, nothing leaks (the test sanitizers check).
  });

  Deno.test(`${be} ${aead}: a second flagged epoch before the first one's mixin throws BAD_STATE`, async () => {
    const [sealer, opener] = await pair(backend, aead, 46);
    const r0 = await sealer.seal(pattern(1, 0));
    sealer.rekey(mixinOf(1));
    const r1 = await sealer.seal(pattern(2, 1));
    sealer.rekey(mixinOf(2));
    const r2 = await sealer.seal(pattern(3, 2));
    const ps = opener.push(join([r0, r1]));
    assert.deepEqual(await ps[0], pattern(1, 0));
    // Framing refuses at once: records wait in order behind the first DH epoch.
    assert.throws(() => opener.push(r2), isProtocolError("BAD_STATE"));
    assert.throws(() => opener.push(new Uint8Array(1)), isProtocolError("BAD_STATE"));
  });

  Deno.test(`${be} ${aead}: the re-key bit without an epoch change is refused like a forgery`, async () => {
    const secret = secretOf(47);
    const [sealer, opener] = await pair(backend, aead, 47);
    const r0 = await sealer.seal(pattern(1, 0));
    const r1 = (await sealer.seal(pattern(2, 1))).slice();
    r1[0]! ^= HEADER_REKEY_BIT >>> 16;
    assert.equal(header(secret, 1, r1) & HEADER_REKEY_BIT, HEADER_REKEY_BIT);
    const r2 = await sealer.seal(pattern(3, 2));
    const got = await settle(opener.push(join([r0, r1, r2])));
    assert.deepEqual(got[0], pattern(1, 0));
    assert.ok(isProtocolError("DECRYPT_FAILED")((got[1] as { error: unknown }).error));
    assert.ok(isProtocolError("DECRYPT_FAILED")((got[2] as { error: unknown }).error));
    assert.equal(opener.awaitingMixin, false);
  });

  Deno.test(`${be} ${aead}: the re-key bit is authenticated: clearing it fails the record`, async () => {
    const [sealer, opener] = await pair(backend, aead, 48);
    sealer.rekey(mixinOf(9));
    const r = (await sealer.seal(pattern(9))).slice();
    r[0]! ^= HEADER_REKEY_BIT >>> 16; // now reads as a hash ratchet
    await assert.rejects(opener.push(r)[0]!, isProtocolError("DECRYPT_FAILED"));
  });

  Deno.test(`${be} ${aead}: a hash ratchet due by policy and a re-key make one step, the re-key`, async () => {
    const secret = secretOf(49);
    const sealer = await createRecordSealer(aead, secret, { ratchet: { records: 2 } });
    const opener = await createRecordOpener(aead, secret);
    const recs = [await sealer.seal(pattern(1, 0)), await sealer.seal(pattern(2, 1))];
    sealer.rekey(mixinOf(3)); // the policy would ratchet before this record too
    sealer.ratchetNow();
    recs.push(await sealer.seal(pattern(3, 2)), await sealer.seal(pattern(4, 3)));
    assert.equal(sealer.epoch, 1);
    recs.push(await sealer.seal(pattern(5, 4))); // the policy's ratchet, 2 records later
    assert.equal(sealer.epoch, 2);
    opener.provideMixin(mixinOf(3));
    const got = await Promise.all(opener.push(join(recs)));
    assert.deepEqual(got, [1, 2, 3, 4, 5].map((n, i) => pattern(n, i)));
  });
}

Deno.test("rekey() and provideMixin() refuse bad mixins and a second unused one", async () => {
  const [sealer, opener] = await pair(BACKENDS[0]!.backend, "chacha20-poly1305", 50);
  assert.throws(() => sealer.rekey(new Uint8Array(31)), RangeError);
  assert.throws(() => sealer.rekey("x" as unknown as Uint8Array), TypeError);
  assert.throws(() => opener.provideMixin(new Uint8Array(33)), RangeError);
  assert.throws(() => opener.provideMixin([1] as unknown as Uint8Array), TypeError);
  sealer.rekey(mixinOf(1));
  assert.throws(() => sealer.rekey(mixinOf(2)), isProtocolError("BAD_STATE"));
  opener.provideMixin(mixinOf(1));
  assert.throws(() => opener.provideMixin(mixinOf(2)), isProtocolError("BAD_STATE"));
  // The first mixin still works on both sides.
  assert.deepEqual(await opener.push(await sealer.seal(pattern(4)))[0], pattern(4));
});

Deno.test("rekey() and provideMixin() copy the mixin", async () => {
  const [sealer, opener] = await pair(BACKENDS[1]!.backend, "aes-256-gcm", 51);
  const m = mixinOf(4);
  sealer.rekey(m);
  opener.provideMixin(m);
  m.fill(0);
  assert.deepEqual(await opener.push(await sealer.seal(pattern(4)))[0], pattern(4));
});

for (const { be, backend } of BACKENDS) {
  Deno.test(`${be}: KeySchedule.rekey() wipes the old epoch and the unused hash successor`, () => {
    const ks = new KeySchedule("chacha20-poly1305", secretOf(52), { backend, use: "open" });
    const e0 = ks.current;
    const key0 = e0.key;
    assert.equal(key0?.wiped, false);
    const e1 = ks.rekey(mixinOf(1));
    assertKeyWiped(be, key0);
    assert.ok(e0.iv.every((b) => b === 0));
    assert.equal(e1.n, 1);
    assert.equal(e1.secret, undefined); // replaced by its prepared successor
    assert.ok(e1.derived);
  });

  Deno.test(`${be}: KeySchedule.rekeyDeferred(): waiting epochs derive on supplyMixin() and are wiped when left`, async () => {
    const secret = secretOf(53);
    const ks = new KeySchedule("chacha20-poly1305", secret, { backend, use: "open" });
    const w1 = ks.rekeyDeferred();
    const w2 = ks.advance();
    assert.equal(ks.awaitingMixin, true);
    assert.equal(w1.derived, false);
    assert.equal(w1.key, undefined);
    assert.throws(() => ks.rekeyDeferred(), TypeError);
    ks.supplyMixin(mixinOf(2));
    assert.equal(ks.awaitingMixin, false);
    assert.ok(w1.derived && w2.derived);
    // The same keys as the sealer's schedule.
    const s1 = rekeyTrafficSecret(nextTrafficSecret(secret), mixinOf(2));
    const s2 = nextTrafficSecret(s1);
    assert.deepEqual(w2.iv, hkdfExpandLabel(s2, "record iv", EMPTY, 12));
    await w1.ready;
    await Promise.resolve();
    // w1 was left while waiting: it is wiped once its waiting records had their turn.
    assert.ok(w1.iv.every((b) => b === 0));
    assertKeyWiped(be, w1.key);
    assert.ok(!w2.iv.every((b) => b === 0));
    assert.equal(w2.key?.wiped, false);
  });
}
