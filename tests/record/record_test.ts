/** Record layer behaviour: round trips, framing, refusal of every kind of tampering. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../../lib/errors.ts";
import {
  createRecordOpener,
  createRecordSealer,
  MAX_RECORD_BYTES,
  MAX_RECORD_CIPHERTEXT,
  MAX_RECORD_PAYLOAD,
  MAX_SEQ,
  type RecordOpener,
  type RecordSealer,
} from "../../lib/record/mod.ts";
import { Sealer } from "../../lib/record/_sealer.ts";
import { Opener } from "../../lib/record/_opener.ts";
import { HeaderMask } from "../../lib/record/_mask.ts";
import { deriveLenKey } from "../../lib/record/_keys.ts";
import { CASES, join, on, pattern, secretOf, settle } from "./_helpers.ts";
import type { AeadId, CryptoBackend } from "../../lib/record/mod.ts";
import { refEpochs, refLenKey, refSealInner } from "./_reference.ts";
import { assertRejectsWith, isProtocolError } from "../support/assert.ts";

async function pair(
  backend: CryptoBackend,
  aead: AeadId,
  b = 1,
): Promise<[RecordSealer, RecordOpener]> {
  const { createRecordSealer, createRecordOpener } = on(backend);
  return [await createRecordSealer(aead, secretOf(b)), await createRecordOpener(aead, secretOf(b))];
}

/** `got` is a prefix of `sent`: nothing wrong or out of order was delivered. */
function assertPrefix(got: Uint8Array[], sent: Uint8Array[]): void {
  assert.ok(got.length <= sent.length);
  assert.deepEqual(got, sent.slice(0, got.length));
}

/**
 * Pushes `bytes` and reports what the opener delivered: the payloads that
 * resolved (in order, up to the first failure) and whether it refused
 * (synchronous throw or a rejected record). A synchronous throw (a garbled
 * length read as TOO_LARGE) discards the records framed earlier in the same
 * push, so those tests check for a prefix.
 */
async function deliver(
  opener: RecordOpener,
  bytes: Uint8Array,
): Promise<{ ok: Uint8Array[]; refused: boolean }> {
  let ps: Promise<Uint8Array>[];
  try {
    ps = opener.push(bytes);
  } catch (e) {
    assert.ok(e instanceof ProtocolError, String(e));
    return { ok: [], refused: true };
  }
  const ok: Uint8Array[] = [];
  for (const r of await settle(ps)) {
    if (!(r instanceof Uint8Array)) {
      const err = (r as { error: unknown }).error;
      assert.ok(err instanceof ProtocolError, String(err));
      return { ok, refused: true };
    }
    ok.push(r);
  }
  return { ok, refused: false };
}

for (const { be, backend, aead } of CASES) {
  const { createRecordSealer, createRecordOpener } = on(backend);
  Deno.test(`${be} ${aead}: records of 0, 1, 16 KiB and 256 KiB round-trip`, async () => {
    const [sealer, opener] = await pair(backend, aead);
    for (const n of [0, 1, 16384, MAX_RECORD_PAYLOAD]) {
      const payload = pattern(n, n);
      const rec = await sealer.seal(payload);
      assert.equal(rec.length, 3 + 2 + n + 16);
      const ps = opener.push(rec);
      assert.equal(ps.length, 1);
      assert.deepEqual(await ps[0], payload);
      assert.equal(opener.buffered, 0);
    }
    assert.equal(sealer.recordsSealed, 4);
    assert.equal(opener.recordsReceived, 4);
  });

  Deno.test(`${be} ${aead}: seal() refuses a payload above MAX_RECORD_PAYLOAD and non-bytes`, async () => {
    const [sealer] = await pair(backend, aead);
    assert.throws(() => sealer.seal(new Uint8Array(MAX_RECORD_PAYLOAD + 1)), RangeError);
    assert.throws(() => sealer.seal("x" as unknown as Uint8Array), TypeError);
    assert.equal(sealer.recordsSealed, 0);
  });

  Deno.test(`${be} ${aead}: seal() copies the payload before returning`, async () => {
    const [sealer, opener] = await pair(backend, aead);
    const payload = pattern(1000);
    const p = sealer.seal(payload);
    payload.fill(0);
    assert.deepEqual(await opener.push(await p)[0], pattern(1000));
  });

  Deno.test(`${be} ${aead}: 16 seals in flight open correctly in call order`, async () => {
    const [sealer, opener] = await pair(backend, aead);
    const sizes = Array.from({ length: 16 }, (_, i) => (i * 4099) % 70000);
    const recs = await Promise.all(sizes.map((n, i) => sealer.seal(pattern(n, i))));
    const got = await Promise.all(opener.push(join(recs)));
    assert.deepEqual(got, sizes.map((n, i) => pattern(n, i)));
  });

  Deno.test(`${be} ${aead}: any chunking of the stream yields the same records`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.nat(64), fc.nat(5000), fc.constantFrom(65536, 100000)), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.array(fc.nat(), { maxLength: 40 }),
        async (sizes, cuts) => {
          const [sealer, opener] = await pair(backend, aead, 9);
          const payloads = sizes.map((n, i) => pattern(n, i));
          const wire = join(await Promise.all(payloads.map((p) => sealer.seal(p))));
          const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          const ps: Promise<Uint8Array>[] = [];
          let prev = 0;
          for (const c of [...points, wire.length]) {
            ps.push(...opener.push(wire.subarray(prev, c)));
            prev = c;
          }
          assert.equal(opener.buffered, 0);
          assert.deepEqual(await Promise.all(ps), payloads);
        },
      ),
      { numRuns: 40 },
    );
  });

  Deno.test(`${be} ${aead}: one byte at a time frames correctly and reports buffered bytes`, async () => {
    const [sealer, opener] = await pair(backend, aead);
    const payloads = [pattern(0), pattern(3), pattern(20000, 5)];
    const wire = join(await Promise.all(payloads.map((p) => sealer.seal(p))));
    const ps: Promise<Uint8Array>[] = [];
    for (let i = 0; i < wire.length; i++) {
      const got = opener.push(wire.subarray(i, i + 1));
      ps.push(...got);
      if (got.length === 0) assert.ok(opener.buffered > 0);
      else assert.equal(opener.buffered, 0);
    }
    assert.deepEqual(await Promise.all(ps), payloads);
  });

  Deno.test(`${be} ${aead}: a 256 KiB record pushed one byte at a time is copied once`, async () => {
    const [sealer, opener] = await pair(backend, aead, 17);
    const payload = pattern(MAX_RECORD_PAYLOAD, 3);
    const rec = await sealer.seal(payload);
    const ps: Promise<Uint8Array>[] = [];
    const t = performance.now();
    for (let i = 0; i < rec.length; i++) ps.push(...opener.push(rec.subarray(i, i + 1)));
    const ms = performance.now() - t;
    assert.equal(ps.length, 1);
    assert.deepEqual(await ps[0], payload);
    // Linear: ~262k pushes of one byte. A quadratic buffer would copy ~34 GB.
    assert.ok(ms < 5000, `framing took ${ms} ms`);
  });

  Deno.test(`${be} ${aead}: a dropped record is refused and nothing after it is delivered`, async () => {
    const [sealer, opener] = await pair(backend, aead, 2);
    // Pushed one record at a time, the records before the gap are delivered.
    {
      const [s2, o2] = await pair(backend, aead, 2);
      const rs = await Promise.all(
        [10, 20, 30, MAX_RECORD_PAYLOAD].map((n) => s2.seal(pattern(n))),
      );
      assert.deepEqual(await o2.push(rs[0]!)[0], pattern(10));
      const r = await deliver(o2, join(rs.slice(2)));
      assert.equal(r.refused, true);
      assert.deepEqual(r.ok, []);
    }
    const recs = await Promise.all(
      [10, 20, 30, 40, MAX_RECORD_PAYLOAD].map((n) => sealer.seal(pattern(n))),
    );
    const r = await deliver(opener, join([recs[0]!, ...recs.slice(2)]));
    assert.equal(r.refused, true);
    assertPrefix(r.ok, [pattern(10)]);
  });

  Deno.test(`${be} ${aead}: a replayed record is refused`, async () => {
    const [sealer, opener] = await pair(backend, aead, 3);
    const recs = await Promise.all(
      [10, 20, MAX_RECORD_PAYLOAD].map((n) => sealer.seal(pattern(n))),
    );
    const r = await deliver(opener, join([recs[0]!, recs[1]!, recs[1]!, recs[2]!]));
    assert.equal(r.refused, true);
    assertPrefix(r.ok, [pattern(10), pattern(20)]);
  });

  Deno.test(`${be} ${aead}: reordered records are refused`, async () => {
    const [sealer, opener] = await pair(backend, aead, 4);
    const recs = await Promise.all(
      [10, 20, 30, MAX_RECORD_PAYLOAD].map((n) => sealer.seal(pattern(n))),
    );
    const r = await deliver(opener, join([recs[0]!, recs[2]!, recs[1]!, recs[3]!]));
    assert.equal(r.refused, true);
    assertPrefix(r.ok, [pattern(10)]);
  });

  Deno.test(`${be} ${aead}: flipping any bit position of any byte of a small record is refused`, async () => {
    const [sealer] = await pair(backend, aead, 5);
    const rec = await sealer.seal(pattern(5));
    // Trailing bytes make sure a corrupted length is framed (not left waiting).
    const filler = new Uint8Array(MAX_RECORD_BYTES);
    for (let i = 0; i < rec.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const opener = await createRecordOpener(aead, secretOf(5));
        const bad = rec.slice();
        bad[i]! ^= bit;
        const r = await deliver(opener, join([bad, filler]));
        assert.equal(r.refused, true, `byte ${i} bit ${bit}`);
        assert.deepEqual(r.ok, [], `byte ${i} bit ${bit}`);
      }
    }
  });

  Deno.test(`${be} ${aead}: after a failed record every later record fails too`, async () => {
    const [sealer, opener] = await pair(backend, aead, 6);
    const recs = await Promise.all([10, 20, 30].map((n) => sealer.seal(pattern(n))));
    const bad = recs[1]!.slice();
    bad[10]! ^= 1; // ciphertext byte: length intact
    const ps = opener.push(join([recs[0]!, bad, recs[2]!]));
    assert.equal(ps.length, 3);
    assert.deepEqual(await ps[0], pattern(10));
    await assert.rejects(ps[1]!, isProtocolError("DECRYPT_FAILED"));
    await assert.rejects(ps[2]!, isProtocolError("DECRYPT_FAILED"));
    const later = opener.push(await sealer.seal(pattern(40)));
    await assert.rejects(later[0]!, isProtocolError("DECRYPT_FAILED"));
  });

  Deno.test(`${be} ${aead}: a truncated record is never delivered`, async () => {
    const [sealer, opener] = await pair(backend, aead, 7);
    const recs = await Promise.all([100, 200].map((n) => sealer.seal(pattern(n))));
    const cut = recs[0]!.subarray(0, recs[0]!.length - 1);
    assert.deepEqual(opener.push(cut), []);
    assert.equal(opener.buffered, cut.length);
    // The next record's bytes complete the truncated one: refused.
    const r = await deliver(opener, join([recs[1]!, new Uint8Array(MAX_RECORD_BYTES)]));
    assert.equal(r.refused, true);
    assert.deepEqual(r.ok, []);
  });

  Deno.test(`${be} ${aead}: an oversize header throws TOO_LARGE from its third byte, before the body`, async () => {
    const secret = secretOf(8);
    const mask = new HeaderMask(deriveLenKey(secret));
    for (const len of [MAX_RECORD_CIPHERTEXT + 1, 0x7fffff]) {
      const opener = await createRecordOpener(aead, secret);
      const h = len ^ mask.mask(0);
      const hdr = Uint8Array.of(h >>> 16, (h >>> 8) & 0xff, h & 0xff);
      assert.deepEqual(opener.push(hdr.subarray(0, 2)), []);
      assert.throws(() => opener.push(hdr.subarray(2)), isProtocolError("TOO_LARGE"));
      assert.equal(opener.buffered, 0);
      // Dead from now on.
      assert.throws(() => opener.push(new Uint8Array(1)), isProtocolError("TOO_LARGE"));
    }
    // The largest legal record still passes.
    const [sealer, opener] = await pair(backend, aead, 8);
    const rec = await sealer.seal(new Uint8Array(MAX_RECORD_PAYLOAD));
    assert.equal(rec.length, MAX_RECORD_BYTES);
    assert.equal((await opener.push(rec)[0])!.length, MAX_RECORD_PAYLOAD);
  });

  Deno.test(`${be} ${aead}: a ciphertext shorter than pad_len + tag is refused`, async () => {
    const secret = secretOf(10);
    const mask = new HeaderMask(deriveLenKey(secret));
    const opener = await createRecordOpener(aead, secret);
    const h = 17 ^ mask.mask(0);
    const ps = opener.push(
      join([Uint8Array.of(h >>> 16, (h >>> 8) & 0xff, h & 0xff), new Uint8Array(17)]),
    );
    await assert.rejects(ps[0]!, isProtocolError("DECRYPT_FAILED"));
  });

  Deno.test(`${be} ${aead}: an authentic record whose pad_len exceeds its inner length is MALFORMED`, async () => {
    const secret = secretOf(11);
    const ep = refEpochs(aead, secret, 0)[0]!;
    const inner = Uint8Array.of(0, 9, 1, 2, 3); // pad_len 9 > 3
    const rec = refSealInner(aead, refLenKey(secret), ep, 0, 0n, inner);
    const opener = await createRecordOpener(aead, secret);
    await assert.rejects(opener.push(rec)[0]!, isProtocolError("MALFORMED"));
  });

  Deno.test(`${be} ${aead}: the sealer refuses to go past the last sequence number`, async () => {
    const secret = secretOf(12);
    const sealer = new Sealer(aead, secret, { backend }, { firstSeq: MAX_SEQ });
    await sealer.ready;
    const opener = new Opener(aead, secret, { backend }, { firstSeq: MAX_SEQ });
    await opener.ready;
    const rec = await sealer.seal(pattern(9));
    assert.deepEqual(await opener.push(rec)[0], pattern(9));
    assert.throws(() => sealer.seal(pattern(1)), isProtocolError("LIMIT"));
    assert.throws(() => opener.push(rec), isProtocolError("LIMIT"));
  });

  Deno.test(`${be} ${aead}: records of one direction do not open in the other`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(13));
    const opener = await createRecordOpener(aead, secretOf(14));
    const r = await deliver(
      opener,
      join([await sealer.seal(pattern(50)), new Uint8Array(MAX_RECORD_BYTES)]),
    );
    assert.equal(r.refused, true);
    assert.deepEqual(r.ok, []);
  });
}

Deno.test("records sealed with one suite do not open with another", async () => {
  const sealer = await createRecordSealer("aes-256-gcm", secretOf(15));
  const opener = await createRecordOpener("chacha20-poly1305", secretOf(15));
  const ps = opener.push(await sealer.seal(pattern(50)));
  await assert.rejects(ps[0]!, isProtocolError("DECRYPT_FAILED"));
});

Deno.test("createRecordSealer()/createRecordOpener() refuse bad arguments", async () => {
  await assertRejectsWith(
    createRecordSealer("aes-512-gcm" as "aes-256-gcm", secretOf(1)),
    TypeError,
    'Cannot create record sealer: unknown AEAD "aes-512-gcm"',
  );
  await assertRejectsWith(
    createRecordOpener("rot13" as "aes-256-gcm", secretOf(1)),
    TypeError,
    'Cannot create record opener: unknown AEAD "rot13"',
  );
  await assertRejectsWith(
    createRecordSealer("aes-256-gcm", new Uint8Array(31)),
    RangeError,
    "Cannot create record sealer: traffic secret length 31 is not 32",
  );
  await assertRejectsWith(
    createRecordOpener("aes-256-gcm", [1, 2] as unknown as Uint8Array),
    TypeError,
    "Cannot create record opener: traffic secret is not a Uint8Array",
  );
  await assertRejectsWith(
    createRecordSealer("aes-256-gcm", secretOf(1), { ratchet: { bytes: 0 } }),
    RangeError,
    "Cannot use ratchet policy: bytes 0 is not a positive number",
  );
  await assertRejectsWith(
    createRecordSealer("aes-256-gcm", secretOf(1), { ratchet: { ms: NaN } }),
    RangeError,
    "Cannot use ratchet policy: ms NaN is not a positive number",
  );
  await assertRejectsWith(
    createRecordSealer("aes-256-gcm", secretOf(1), { padding: { mode: "random", max: 65536 } }),
    RangeError,
    "Cannot use padding policy: max 65536 is not an integer in 0..65535",
  );
  await assertRejectsWith(
    createRecordSealer("aes-256-gcm", secretOf(1), { padding: { mode: "fancy" as "none" } }),
    TypeError,
    'Cannot use padding policy: unknown mode "fancy"',
  );
});

Deno.test("the caller's traffic secret is copied, not kept or wiped", async () => {
  const secret = secretOf(16);
  const sealer = await createRecordSealer("aes-256-gcm", secret);
  assert.deepEqual(secret, secretOf(16));
  secret.fill(0);
  const opener = await createRecordOpener("aes-256-gcm", secretOf(16));
  assert.deepEqual(await opener.push(await sealer.seal(pattern(4)))[0], pattern(4));
});
