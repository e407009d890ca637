/**
 * tests/vectors/record_v1.json: the reference implementation and the record
 * layer both reproduce every record byte for byte, and the opener opens them.
 */
import assert from "node:assert/strict";
import { createRecordOpener, createRecordSealer } from "../../lib/record/mod.ts";
import { deriveEpochKeys, deriveLenKey, nextTrafficSecret } from "../../lib/record/_keys.ts";
import { hex, refEpochs, refLenKey, refOpenRecord, refSealRecord, unhex } from "./_reference.ts";
import { BACKENDS, join, u16Source } from "./_helpers.ts";
import type { AeadId } from "../../lib/record/mod.ts";

interface SuiteVectors {
  aead: AeadId;
  len_key: string;
  epochs: { epoch: number; secret: string; key: string; iv: string }[];
  records: { seq: number; epoch: number; payload: string; pad_len: number; record: string }[];
}
const doc = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/record_v1.json", import.meta.url)),
) as { traffic_secret: string; suites: SuiteVectors[] };
const secret = unhex(doc.traffic_secret);

for (const v of doc.suites) {
  Deno.test(`record_v1.json ${v.aead}: the key schedule matches`, () => {
    assert.equal(hex(deriveLenKey(secret)), v.len_key);
    let s = secret;
    for (const e of v.epochs) {
      assert.equal(hex(s), e.secret);
      const k = deriveEpochKeys(v.aead, s);
      assert.equal(hex(k.key), e.key);
      assert.equal(hex(k.iv), e.iv);
      s = nextTrafficSecret(s);
    }
  });

  Deno.test(`record_v1.json ${v.aead}: the reference reproduces and opens every record`, () => {
    const lenKey = refLenKey(secret);
    const epochs = refEpochs(v.aead, secret, v.epochs.length - 1);
    for (const r of v.records) {
      const ep = epochs[r.epoch]!;
      const rec = refSealRecord(
        v.aead,
        lenKey,
        ep,
        r.epoch,
        BigInt(r.seq),
        unhex(r.payload),
        r.pad_len,
      );
      assert.equal(hex(rec), r.record, `seq ${r.seq}`);
      const opened = refOpenRecord(v.aead, lenKey, ep, BigInt(r.seq), unhex(r.record));
      assert.equal(hex(opened.payload), r.payload);
      assert.equal(opened.epochBit, r.epoch & 1);
    }
  });

  for (const { be, backend } of BACKENDS) {
    Deno.test(`record_v1.json ${be} ${v.aead}: createRecordSealer() produces every record byte for byte`, async () => {
      const sealer = await createRecordSealer(v.aead, secret, {
        backend,
        padding: { mode: "random", max: 255 },
        random: u16Source(v.records.map((r) => r.pad_len)),
      });
      for (const r of v.records) {
        if (r.epoch !== sealer.epoch && r.seq > 0) sealer.ratchetNow();
        assert.equal(hex(await sealer.seal(unhex(r.payload))), r.record, `seq ${r.seq}`);
        assert.equal(sealer.epoch, r.epoch);
      }
    });

    Deno.test(`record_v1.json ${be} ${v.aead}: createRecordOpener() opens the stream`, async () => {
      const opener = await createRecordOpener(v.aead, secret, { backend });
      const ps = opener.push(join(v.records.map((r) => unhex(r.record))));
      assert.equal(ps.length, v.records.length);
      const got = await Promise.all(ps);
      assert.deepEqual(got.map(hex), v.records.map((r) => r.payload));
      assert.equal(opener.epoch, v.records.at(-1)!.epoch);
    });
  }
}
