/**
 * The zero-copy paths of the record layer: `sealParts()` (with and without
 * headroom) gives exactly `seal()`'s wire bytes, never writes the payload;
 * `push()` keeps no view of a chunk once it returns; `pushWhole()` opens
 * records in the caller's buffer and leaves an incomplete one in place.
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import { deriveLenKey } from "../../lib/record/_keys.ts";
import { HeaderMask } from "../../lib/record/_mask.ts";
import {
  MAX_RECORD_BYTES,
  MAX_RECORD_CIPHERTEXT,
  MAX_RECORD_PAYLOAD,
  PAD_PREFIX_BYTES,
  type PaddingPolicy,
  type RecordOpener,
  type RecordSealer,
} from "../../lib/record/mod.ts";
import { CASES, join, on, pattern, secretOf, u16Source } from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

/** `payload` copied into a new buffer behind `headroom` bytes of `fill`. */
function withHeadroom(payload: Uint8Array, headroom = PAD_PREFIX_BYTES, fill = 0xee): Uint8Array {
  const buf = new Uint8Array(headroom + payload.length).fill(fill, 0, headroom);
  buf.set(payload, headroom);
  return buf.subarray(headroom);
}

const POLICIES: readonly PaddingPolicy[] = [
  { mode: "none" },
  { mode: "random", max: 255 },
  { mode: "bucket" },
];
const SIZES = [0, 1, 100, 4095, 5000, 65536, MAX_RECORD_PAYLOAD];

for (const { be, backend, aead } of CASES) {
  const { createRecordSealer, createRecordOpener } = on(backend);
  Deno.test(`${be} ${aead}: sealParts() gives seal()'s wire bytes under every padding policy`, async () => {
    for (const padding of POLICIES) {
      const opts = { padding, random: u16Source([7, 300, 65535, 12, 9999, 1, 2, 3]) };
      const a = await createRecordSealer(aead, secretOf(5), opts);
      const b = await createRecordSealer(aead, secretOf(5), {
        ...opts,
        random: u16Source([7, 300, 65535, 12, 9999, 1, 2, 3]),
      });
      for (const [i, n] of SIZES.entries()) {
        const payload = pattern(n, i);
        const want = await a.seal(payload);
        const parts = await b.sealParts(withHeadroom(payload), { useHeadroom: i % 2 === 0 });
        assert.equal(parts.length, 2, "header, then ciphertext ‖ tag");
        assert.equal(parts[0]!.length, 3);
        assert.deepEqual(join(parts), want, `${padding.mode} ${n} bytes`);
      }
    }
  });

  Deno.test(`${be} ${aead}: sealParts() with headroom writes only the two bytes before the payload`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(6));
    const opener = await createRecordOpener(aead, secretOf(6));
    const buf = new Uint8Array(4 + 1000).fill(0xaa);
    buf.set(pattern(1000), 4);
    const payload = buf.subarray(4);
    const before = buf.slice();
    const p = sealer.sealParts(payload, { useHeadroom: true });
    assert.deepEqual(buf.subarray(0, 2), before.subarray(0, 2), "bytes before the headroom kept");
    assert.deepEqual(payload, before.subarray(4), "payload never written");
    // Neither payload nor headroom is read after sealParts() returns.
    buf.fill(0x55);
    assert.deepEqual(await opener.push(join(await p))[0], before.subarray(4));
  });

  Deno.test(`${be} ${aead}: the same kept payload sealed again (a resend) opens to the same bytes`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(7));
    const opener = await createRecordOpener(aead, secretOf(7));
    const payload = withHeadroom(pattern(3000, 1));
    const first = sealer.sealParts(payload, { useHeadroom: true });
    const again = sealer.sealParts(payload, { useHeadroom: true });
    const [x, y] = opener.push(join([...(await first), ...(await again)]));
    assert.deepEqual(await x, pattern(3000, 1));
    assert.deepEqual(await y, pattern(3000, 1));
  });

  Deno.test(`${be} ${aead}: sealParts() refuses useHeadroom without room and checks like seal()`, async () => {
    const sealer: RecordSealer = await createRecordSealer(aead, secretOf(8));
    assertThrowsWith(
      () => sealer.sealParts(new Uint8Array(10), { useHeadroom: true }),
      RangeError,
      "Cannot seal record: payload offset 0 leaves no headroom of 2 bytes",
    );
    assertThrowsWith(
      () => sealer.sealParts(new Uint8Array(11).subarray(1), { useHeadroom: true }),
      RangeError,
      "Cannot seal record: payload offset 1 leaves no headroom of 2 bytes",
    );
    assertThrowsWith(
      () => sealer.sealParts(new Uint8Array(MAX_RECORD_PAYLOAD + 1)),
      RangeError,
      "Cannot seal record: payload length 262145 exceeds maximum 262144",
    );
    assertThrowsWith(
      () => sealer.sealParts("x" as unknown as Uint8Array),
      TypeError,
      "Cannot seal record: payload is not a Uint8Array",
    );
    assert.equal(sealer.recordsSealed, 0, "a refused payload takes no sequence number");
  });

  Deno.test(`${be} ${aead}: sealParts() right after a ratchet (key import pending) copies its input`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(9));
    const opener = await createRecordOpener(aead, secretOf(9));
    sealer.ratchetNow();
    const payload = withHeadroom(pattern(500, 2));
    const p = sealer.sealParts(payload, { useHeadroom: true });
    payload.fill(0); // the caller reuses its buffer at once
    assert.deepEqual(await opener.push(join(await p))[0], pattern(500, 2));
  });

  Deno.test(`${be} ${aead}: push() keeps no view of a chunk once it returns`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(10));
    const opener = await createRecordOpener(aead, secretOf(10));
    const payloads = [pattern(10, 1), pattern(70000, 2), pattern(5, 3), pattern(1, 4)];
    const recs: Uint8Array[] = [];
    for (const [i, p] of payloads.entries()) {
      if (i === 2) sealer.ratchetNow(); // record 2 waits for the opener's key import
      recs.push(await sealer.seal(p));
    }
    const wire = join(recs);
    // One reused buffer, cut at odd places (inside headers and bodies), zeroed after each push.
    const buf = new Uint8Array(4096);
    const ps: Promise<Uint8Array>[] = [];
    for (let o = 0; o < wire.length;) {
      const n = Math.min(1 + ((o * 31) % 4095), wire.length - o);
      buf.set(wire.subarray(o, o + n));
      ps.push(...opener.push(buf.subarray(0, n)));
      buf.fill(0);
      o += n;
    }
    ps.push(...opener.push(new Uint8Array(0)));
    const whole = join(recs);
    ps.push(...(await createRecordOpener(aead, secretOf(10))).push(whole));
    whole.fill(0);
    const got = await Promise.all(ps);
    assert.deepEqual(got, [...payloads, ...payloads]);
  });
}

/**
 * A reader with its own buffer, as lib/tunnel/session.ts keeps one: reads of
 * the given sizes land behind the incomplete record, which moves to the
 * front when the buffer runs out of room.
 */
function readWhole(
  opener: RecordOpener,
  wire: Uint8Array,
  readSizes: (i: number) => number,
  bufBytes: number,
): Promise<Uint8Array>[] {
  const buf = new Uint8Array(bufBytes);
  const out: Promise<Uint8Array>[] = [];
  let start = 0;
  let end = 0;
  for (let o = 0, i = 0; o < wire.length; i++) {
    if (start === end) start = end = 0;
    else if (buf.length - end < 4096) {
      buf.copyWithin(0, start, end);
      end -= start;
      start = 0;
    }
    const n = Math.min(readSizes(i), wire.length - o, buf.length - end);
    buf.set(wire.subarray(o, o + n), end);
    o += n;
    end += n;
    const { records, used } = opener.pushWhole(buf.subarray(start, end));
    start += used;
    assert.ok(end - start < MAX_RECORD_BYTES, "what is left is less than one record");
    buf.fill(0, 0, start); // the reader reuses what was taken
    out.push(...records);
  }
  assert.equal(start, end, "every byte taken at the end");
  return out;
}

for (const { be, backend, aead } of CASES) {
  const { createRecordSealer, createRecordOpener } = on(backend);
  Deno.test(`${be} ${aead}: pushWhole() opens records in place and leaves an incomplete one`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(11));
    const payloads = [0, 1, 300, 70000, MAX_RECORD_PAYLOAD, 5, MAX_RECORD_PAYLOAD, 2].map((n, i) =>
      pattern(n, i)
    );
    const recs: Uint8Array[] = [];
    for (const [i, p] of payloads.entries()) {
      if (i === 5) sealer.ratchetNow(); // later records wait for a key import
      recs.push(await sealer.seal(p));
    }
    const wire = join(recs);
    for (const size of [1, 2, 3, 4, 1000, 65536, 262144]) {
      const opener = await createRecordOpener(aead, secretOf(11));
      const got = readWhole(opener, wire, (i) => size + (i % 3), MAX_RECORD_BYTES + 300000);
      assert.deepEqual(await Promise.all(got), payloads, `reads of ${size}`);
      assert.equal(opener.buffered, 0);
      assert.equal(opener.recordsReceived, payloads.length);
    }
  });

  Deno.test(`${be} ${aead}: pushWhole() takes nothing of an incomplete record`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(12));
    const opener = await createRecordOpener(aead, secretOf(12));
    const rec = await sealer.seal(pattern(100));
    for (const n of [0, 1, 2, 3, rec.length - 1]) {
      const r = opener.pushWhole(rec.subarray(0, n));
      assert.deepEqual([r.records.length, r.used], [0, 0], `${n} bytes`);
    }
    const next = await sealer.seal(pattern(50));
    const r = opener.pushWhole(join([rec, next.subarray(0, 7)]));
    assert.equal(r.used, rec.length);
    assert.deepEqual(await r.records[0], pattern(100));
  });

  Deno.test(`${be} ${aead}: pushWhole() refuses an oversize length once its header is in`, async () => {
    const secret = secretOf(13);
    const mask = new HeaderMask(deriveLenKey(secret));
    const opener = await createRecordOpener(aead, secret);
    const h = (MAX_RECORD_CIPHERTEXT + 1) ^ mask.mask(0);
    const hdr = Uint8Array.of(h >>> 16, (h >>> 8) & 0xff, h & 0xff);
    assert.equal(opener.pushWhole(hdr.subarray(0, 2)).used, 0);
    const tooLarge = (e: unknown) => e instanceof ProtocolError && e.code === "TOO_LARGE";
    assert.throws(() => opener.pushWhole(hdr), tooLarge);
    assert.throws(() => opener.pushWhole(new Uint8Array(1)), tooLarge, "dead from now on");
  });

  Deno.test(`${be} ${aead}: pushWhole() refuses to follow push() that left a record incomplete`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(14));
    const opener = await createRecordOpener(aead, secretOf(14));
    const rec = await sealer.seal(pattern(10));
    assert.deepEqual(opener.push(rec.subarray(0, 5)), []);
    assertThrowsWith(
      () => opener.pushWhole(rec.subarray(5)),
      TypeError,
      "Cannot open whole records: push() left an incomplete record",
    );
    assert.deepEqual(await opener.push(rec.subarray(5))[0], pattern(10));
    assert.equal(opener.pushWhole(new Uint8Array(0)).used, 0, "fine again between records");
  });
}
