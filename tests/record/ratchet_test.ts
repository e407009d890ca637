/** Key ratchet: triggers, in-band signalling, real key change, hard ceilings. */
import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import { createRecordOpener, type RecordSealer } from "../../lib/record/mod.ts";
import { Sealer } from "../../lib/record/_sealer.ts";
import { Opener } from "../../lib/record/_opener.ts";
import { KeySchedule } from "../../lib/record/_keys.ts";
import { assertKeyWiped, BACKENDS, CASES, join, on, pattern, secretOf } from "./_helpers.ts";
import type { AeadId, CryptoBackend } from "../../lib/record/mod.ts";
import { refEpochs, refLenKey, refOpenRecord } from "./_reference.ts";
import { assertThrowsWith } from "../support/assert.ts";

/** Seals payloads of the given sizes one by one; returns records and the epoch of each. */
async function sealAll(
  sealer: RecordSealer,
  sizes: number[],
): Promise<{ recs: Uint8Array[]; epochs: number[] }> {
  const recs: Uint8Array[] = [];
  const epochs: number[] = [];
  for (const [i, n] of sizes.entries()) {
    recs.push(await sealer.seal(pattern(n, i)));
    epochs.push(sealer.epoch);
  }
  return { recs, epochs };
}

/** An opener given the whole stream opens every payload and ends in the sealer's epoch. */
async function assertInStep(
  backend: CryptoBackend,
  aead: AeadId,
  secret: Uint8Array,
  sizes: number[],
  recs: Uint8Array[],
  lastEpoch: number,
): Promise<void> {
  const opener = await createRecordOpener(aead, secret, { backend });
  const got = await Promise.all(opener.push(join(recs)));
  assert.deepEqual(got, sizes.map((n, i) => pattern(n, i)));
  assert.equal(opener.epoch, lastEpoch);
}

for (const { be, backend, aead } of CASES) {
  const { createRecordSealer, createRecordOpener } = on(backend);
  Deno.test(`${be} ${aead}: ratchets every 'records' records and the opener follows`, async () => {
    const secret = secretOf(21);
    const sealer = await createRecordSealer(aead, secret, { ratchet: { records: 4 } });
    const sizes = Array.from({ length: 13 }, (_, i) => i * 10);
    const { recs, epochs } = await sealAll(sealer, sizes);
    assert.deepEqual(epochs, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3]);
    await assertInStep(backend, aead, secret, sizes, recs, 3);
  });

  Deno.test(`${be} ${aead}: ratchets before a record that would pass 'bytes'; a larger record gets its own key`, async () => {
    const secret = secretOf(22);
    const sealer = await createRecordSealer(aead, secret, { ratchet: { bytes: 1000 } });
    // inner = 2 + payload: 302 each, so three fit in 1000 bytes.
    const sizes = [300, 300, 300, 300, 300, 300, 300, 2000, 300];
    const { recs, epochs } = await sealAll(sealer, sizes);
    assert.deepEqual(epochs, [0, 0, 0, 1, 1, 1, 2, 3, 4]);
    await assertInStep(backend, aead, secret, sizes, recs, 4);
  });

  Deno.test(`${be} ${aead}: ratchets once the key is 'ms' old (clock injected)`, async () => {
    const secret = secretOf(23);
    let t = 1_000_000;
    const sealer = await createRecordSealer(aead, secret, { ratchet: { ms: 1000 }, now: () => t });
    const epochs: number[] = [];
    const recs: Uint8Array[] = [];
    for (const dt of [0, 999, 1, 500, 499, 1, 5000]) {
      t += dt;
      recs.push(await sealer.seal(pattern(recs.length, recs.length)));
      epochs.push(sealer.epoch);
    }
    // t: +0 e0, +999 e0, +1000 e1 (new clock start), +1500 e1, +1999 e1, +2000 e2, +7000 e3
    assert.deepEqual(epochs, [0, 0, 1, 1, 1, 2, 3]);
    await assertInStep(backend, aead, secret, recs.map((_, i) => i), recs, 3);
  });

  Deno.test(`${be} ${aead}: ratchetNow() ratchets once, before the next record`, async () => {
    const secret = secretOf(24);
    const sealer = await createRecordSealer(aead, secret);
    await sealer.seal(pattern(0, 0));
    sealer.ratchetNow();
    sealer.ratchetNow();
    assert.equal(sealer.epoch, 0);
    const { recs, epochs } = await sealAll(sealer, [1, 2]);
    assert.deepEqual(epochs, [1, 1]);
    const opener = await createRecordOpener(aead, secret);
    opener.push(await (await createRecordSealer(aead, secret)).seal(pattern(0, 0)));
    assert.deepEqual(await Promise.all(opener.push(join(recs))), [pattern(1, 0), pattern(2, 1)]);
    assert.equal(opener.epoch, 1);
  });

  Deno.test(`${be} ${aead}: a ratchet really changes the key; an opener that does not ratchet fails`, async () => {
    const secret = secretOf(25);
    const plain = await createRecordSealer(aead, secret);
    const ratcheted = await createRecordSealer(aead, secret);
    ratcheted.ratchetNow(); // epoch 1 from seq 0
    const a = await plain.seal(pattern(64));
    const b = await ratcheted.seal(pattern(64));
    assert.equal(ratcheted.epoch, 1);
    // Same seq and len_key: headers differ only in the epoch bit.
    assert.equal(a[0]! ^ b[0]!, 0x80);
    assert.deepEqual(a.subarray(1, 3), b.subarray(1, 3));
    // Ciphertexts share no 16-byte block.
    for (let o = 3; o + 16 <= a.length; o += 16) {
      assert.notDeepEqual(a.subarray(o, o + 16), b.subarray(o, o + 16));
    }
    const lenKey = refLenKey(secret);
    const [e0, e1] = refEpochs(aead, secret, 1);
    assertThrowsWith(() => refOpenRecord(aead, lenKey, e0!, 0n, b), Error, /invalid tag/);
    assert.deepEqual(refOpenRecord(aead, lenKey, e1!, 0n, b).payload, pattern(64));
  });

  Deno.test(`${be} ${aead}: the opener moves forward one epoch only; an old-epoch record after a flip fails`, async () => {
    const secret = secretOf(26);
    const sealer = await createRecordSealer(aead, secret);
    const stale = await createRecordSealer(aead, secret); // never ratchets
    const r0 = await sealer.seal(pattern(1));
    sealer.ratchetNow();
    const r1 = await sealer.seal(pattern(2));
    await stale.seal(pattern(1));
    await stale.seal(pattern(2));
    const oldEpoch = await stale.seal(pattern(3)); // seq 2, epoch 0
    const opener = await createRecordOpener(aead, secret);
    const ps = opener.push(join([r0, r1, oldEpoch]));
    assert.deepEqual(await ps[0], pattern(1));
    assert.deepEqual(await ps[1], pattern(2));
    await assert.rejects(
      ps[2]!,
      (e: unknown) => e instanceof ProtocolError && e.code === "DECRYPT_FAILED",
    );
  });

  Deno.test(`${be} ${aead}: hard ceilings apply whatever the policy says`, async () => {
    const secret = secretOf(27);
    const sealer = new Sealer(aead, secret, { backend, ratchet: { records: 1e12, bytes: 1e15 } }, {
      hardRecords: 3,
    });
    await sealer.ready;
    const { recs, epochs } = await sealAll(sealer, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(epochs, [0, 0, 0, 1, 1, 1, 2]);
    await assertInStep(backend, aead, secret, [1, 2, 3, 4, 5, 6, 7], recs, 2);

    const bytes = new Sealer(aead, secret, { backend, ratchet: { bytes: 1e15 } }, {
      hardBytes: 100,
    });
    await bytes.ready;
    const r = await sealAll(bytes, [40, 40, 40, 40]);
    assert.deepEqual(r.epochs, [0, 0, 1, 1]);
  });

  Deno.test(`${be} ${aead}: the opener refuses a peer that exceeds the per-key hard limit`, async () => {
    const secret = secretOf(28);
    const sealer = await createRecordSealer(aead, secret, { ratchet: { records: 10 } });
    const { recs } = await sealAll(sealer, [1, 2, 3, 4]);
    const opener = new Opener(aead, secret, { backend }, { hardRecords: 3 });
    await opener.ready;
    assert.throws(
      () => opener.push(join(recs)),
      (e: unknown) => e instanceof ProtocolError && e.code === "LIMIT",
    );
  });

  Deno.test(`${be} ${aead}: the opener refuses a key older than 24 hours`, async () => {
    const secret = secretOf(29);
    let t = 0;
    const sealer = await createRecordSealer(aead, secret, { now: () => 0 });
    const opener = await createRecordOpener(aead, secret, { now: () => t });
    assert.deepEqual(await opener.push(await sealer.seal(pattern(1)))[0], pattern(1));
    t = 24 * 3600 * 1000 + 1;
    const rec = await sealer.seal(pattern(2));
    assert.throws(
      () => opener.push(rec),
      (e: unknown) => e instanceof ProtocolError && e.code === "LIMIT",
    );
  });

  Deno.test(`${be} ${aead}: pipelined seals across ratchets stay in order and in step`, async () => {
    const secret = secretOf(30);
    const sealer = await createRecordSealer(aead, secret, { ratchet: { records: 3 } });
    const sizes = Array.from({ length: 16 }, (_, i) => 1000 + i * 3000);
    const recs = await Promise.all(sizes.map((n, i) => sealer.seal(pattern(n, i))));
    assert.equal(sealer.epoch, 5);
    await assertInStep(backend, aead, secret, sizes, recs, 5);
  });
}

for (const { be, backend } of BACKENDS) {
  Deno.test(`${be}: KeySchedule.advance() wipes the previous epoch's key material`, () => {
    const ks = new KeySchedule("chacha20-poly1305", secretOf(31), { backend, use: "seal" });
    const e0 = ks.current;
    const key0 = e0.key;
    assert.equal(key0?.wiped, false);
    assert.equal(e0.secret, undefined); // already replaced by the prepared successor
    ks.advance();
    assertKeyWiped(be, key0);
    assert.ok(e0.iv.every((b) => b === 0));
    assert.equal(ks.current.n, 1);
  });
}
