/**
 * The crypto backends in the record layer: the process-wide choice,
 * records sealed on one backend and opened on the other byte for byte,
 * synchronous sealing into a caller's buffer, the opener's synchronous
 * path, and keys that refuse use after `wipe`. (Loading a backend:
 * tests/openssl/load_test.ts.)
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import {
  type AeadId,
  createRecordOpener,
  createRecordSealer,
  type CryptoBackend,
  cryptoBackend,
  describeCryptoBackend,
  PAD_PREFIX_BYTES,
  type PaddingPolicy,
  RECORD_HEADER_BYTES,
  setCryptoBackend,
  webCryptoBackend,
} from "../../lib/record/mod.ts";
import { OpenSslKey } from "../../lib/record/_openssl.ts";
import { BACKENDS, CASES, join, on, pattern, secretOf, SUITES, u16Source } from "./_helpers.ts";
import { hex, unhex } from "./_reference.ts";

const OPENSSL = BACKENDS.find((b) => b.be === "openssl")!.backend;
const WEBCRYPTO = BACKENDS.find((b) => b.be === "webcrypto")!.backend;
Deno.test("each backend names itself and what runs it", () => {
  assert.equal(OPENSSL.name, "openssl");
  assert.equal(OPENSSL.synchronous, true);
  assert.equal(OPENSSL.fallbackReason, undefined);
  assert.match(describeCryptoBackend(OPENSSL), /^openssl \(libcrypto\S*, OpenSSL [3-9]\.\d+\.\d+/);
  assert.equal(WEBCRYPTO, webCryptoBackend);
  assert.equal(WEBCRYPTO.synchronous, false);
  assert.equal(
    describeCryptoBackend(WEBCRYPTO),
    "webcrypto (Web Crypto AES-GCM, @noble/ciphers ChaCha20-Poly1305)",
  );
});

Deno.test("setCryptoBackend() sets what sealers and openers use by default (webcrypto until set)", async () => {
  const before = cryptoBackend();
  try {
    assert.equal(setCryptoBackend(WEBCRYPTO), cryptoBackend());
    assert.equal((await createRecordSealer("aes-256-gcm", secretOf(1))).synchronous, false);
    assert.equal(setCryptoBackend(OPENSSL), OPENSSL);
    assert.equal(cryptoBackend().name, "openssl");
    assert.equal((await createRecordSealer("aes-256-gcm", secretOf(1))).synchronous, true);
    assert.equal(
      (await createRecordOpener("aes-256-gcm", secretOf(1))).push(new Uint8Array(0)).length,
      0,
    );
    assert.throws(() => setCryptoBackend({} as CryptoBackend), TypeError);
    assert.equal(cryptoBackend(), OPENSSL, "a refused value leaves the previous one");
  } finally {
    setCryptoBackend(before);
  }
});

const POLICIES: readonly PaddingPolicy[] = [
  { mode: "none" },
  { mode: "random", max: 255 },
  { mode: "bucket" },
];
const SIZES = [0, 1, 15, 16, 17, 1000, 16384, 70000, 262144];
const PADS = [0, 7, 255, 3, 0, 128, 1, 0, 9, 200, 5];

for (const aead of SUITES) {
  for (const [from, to] of [[OPENSSL, WEBCRYPTO], [WEBCRYPTO, OPENSSL]] as const) {
    Deno.test(`${aead}: records sealed on ${from.name} are the same bytes and open on ${to.name}`, async () => {
      for (const padding of POLICIES) {
        const opts = { padding, ratchet: { records: 4 } };
        const a = await createRecordSealer(aead, secretOf(70), {
          ...opts,
          backend: from,
          random: u16Source(PADS),
        });
        const b = await createRecordSealer(aead, secretOf(70), {
          ...opts,
          backend: to,
          random: u16Source(PADS),
        });
        const opener = await createRecordOpener(aead, secretOf(70), { backend: to });
        const mixin = new Uint8Array(32).fill(5);
        const recs: Uint8Array[] = [];
        for (const [i, n] of SIZES.entries()) {
          if (i === 5) {
            a.rekey(mixin);
            b.rekey(mixin);
            opener.provideMixin(mixin);
          }
          const [ra, rb] = [await a.seal(pattern(n, i)), await b.seal(pattern(n, i))];
          assert.equal(hex(ra), hex(rb), `record ${i} under ${padding.mode}`);
          recs.push(ra);
        }
        assert.equal(a.epoch, 2); // a ratchet, then a DH re-key
        const got = await Promise.all(opener.push(join(recs)));
        assert.deepEqual(got, SIZES.map((n, i) => pattern(n, i)));
      }
    });
  }
}

for (const { be, backend, aead } of CASES) {
  const { createRecordSealer, createRecordOpener } = on(backend);
  const sync = be === "openssl" || aead === "chacha20-poly1305";

  Deno.test(`${be} ${aead}: synchronous is ${sync}`, async () => {
    assert.equal((await createRecordSealer(aead, secretOf(71))).synchronous, sync);
  });

  if (!sync) {
    Deno.test(`${be} ${aead}: sealInto() refuses, taking no sequence number; openWhole() leaves every record to pushWhole()`, async () => {
      const sealer = await createRecordSealer(aead, secretOf(72));
      assert.throws(() => sealer.sealInto(pattern(3), new Uint8Array(100)), TypeError);
      assert.equal(sealer.recordsSealed, 0);
      // openWhole() opens nothing: every record goes through pushWhole()'s promises.
      const opener = await createRecordOpener(aead, secretOf(72));
      const wire = await (await createRecordSealer(aead, secretOf(72))).seal(pattern(3));
      assert.equal(opener.openWhole(wire, () => assert.fail("opened")), 0);
      assert.deepEqual(await opener.pushWhole(wire).records[0], pattern(3));
    });
    continue;
  }

  Deno.test(`${be} ${aead}: sealInto() writes seal()'s bytes at the offset and nothing else`, async () => {
    for (const padding of POLICIES) {
      const a = await createRecordSealer(aead, secretOf(73), { padding, random: u16Source(PADS) });
      const b = await createRecordSealer(aead, secretOf(73), { padding, random: u16Source(PADS) });
      const out = new Uint8Array(300000);
      for (const [i, n] of SIZES.entries()) {
        if (i === 4) {
          a.ratchetNow();
          b.ratchetNow();
        }
        const want = await a.seal(pattern(n, i));
        out.fill(0xa5); // garbage where padding goes must not show
        const off = 1 + i * 3;
        assert.equal(b.sealInto(pattern(n, i), out, off), want.length);
        assert.equal(hex(out.subarray(off, off + want.length)), hex(want), `record ${i}`);
        assert.ok(out.subarray(0, off).every((x) => x === 0xa5), "nothing before the offset");
        assert.ok(out.subarray(off + want.length).every((x) => x === 0xa5), "nothing after");
      }
      assert.equal(b.recordsSealed, SIZES.length);
    }
  });

  Deno.test(`${be} ${aead}: sealInto() seals a payload where it lies, in place`, async () => {
    const a = await createRecordSealer(aead, secretOf(74));
    const b = await createRecordSealer(aead, secretOf(74));
    const opener = await createRecordOpener(aead, secretOf(74));
    const at = RECORD_HEADER_BYTES + PAD_PREFIX_BYTES;
    const out = new Uint8Array(10 + at + 5000 + 16);
    const payload = out.subarray(10 + at, 10 + at + 5000);
    payload.set(pattern(5000, 4));
    const want = await a.seal(pattern(5000, 4));
    const n = b.sealInto(payload, out, 10);
    assert.equal(hex(out.subarray(10, 10 + n)), hex(want));
    assert.notDeepEqual(payload, pattern(5000, 4), "encrypted where it lay");
    assert.deepEqual(await opener.push(out.subarray(10, 10 + n))[0], pattern(5000, 4));
    // A payload overlapping the record elsewhere is copied before anything is written.
    const c = await createRecordSealer(aead, secretOf(74));
    const buf = new Uint8Array(200);
    buf.set(pattern(50, 8), 1);
    const m = c.sealInto(buf.subarray(1, 51), buf, 0);
    const fresh = await createRecordOpener(aead, secretOf(74));
    assert.deepEqual(await fresh.push(buf.subarray(0, m))[0], pattern(50, 8));
  });

  Deno.test(`${be} ${aead}: sealInto() without room throws RangeError before taking a sequence number`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(75));
    const opener = await createRecordOpener(aead, secretOf(75));
    const need = RECORD_HEADER_BYTES + PAD_PREFIX_BYTES + 100 + 16;
    assert.throws(() => sealer.sealInto(pattern(100), new Uint8Array(need - 1)), RangeError);
    assert.throws(() => sealer.sealInto(pattern(100), new Uint8Array(need), 1), RangeError);
    assert.throws(() => sealer.sealInto(pattern(100), new Uint8Array(need), -1), RangeError);
    assert.throws(() => sealer.sealInto(pattern(100), new Uint8Array(need), 0.5), RangeError);
    assert.throws(() => sealer.sealInto(pattern(100), new Uint8Array(need), need + 1), RangeError);
    assert.throws(() => sealer.sealInto(pattern(100), [] as unknown as Uint8Array), TypeError);
    assert.throws(
      () => sealer.sealInto(new Uint8Array(262145), new Uint8Array(300000)),
      RangeError,
    );
    assert.equal(sealer.recordsSealed, 0);
    const out = new Uint8Array(need);
    assert.equal(sealer.sealInto(pattern(100), out), need);
    assert.deepEqual(await opener.push(out)[0], pattern(100));
  });

  Deno.test(`${be} ${aead}: sealInto() with headroom seals from where the payload lies, byte-equal to seal()`, async () => {
    for (const padding of POLICIES) {
      const a = await createRecordSealer(aead, secretOf(77), { padding, random: u16Source(PADS) });
      const b = await createRecordSealer(aead, secretOf(77), { padding, random: u16Source(PADS) });
      const out = new Uint8Array(300000);
      for (const [i, n] of SIZES.entries()) {
        const want = await a.seal(pattern(n, i));
        const src = new Uint8Array(PAD_PREFIX_BYTES + n + 1);
        src.set(pattern(n, i), PAD_PREFIX_BYTES);
        const payload = src.subarray(PAD_PREFIX_BYTES, PAD_PREFIX_BYTES + n);
        const room = b.maxSealedLength(n);
        assert.ok(room >= want.length, `maxSealedLength ${room} < ${want.length}`);
        if (padding.mode === "none") assert.equal(room, want.length, "exact without padding");
        out.fill(0xa5);
        assert.equal(b.sealInto(payload, out, 7, { useHeadroom: true }), want.length);
        assert.equal(hex(out.subarray(7, 7 + want.length)), hex(want), `record ${i}`);
        assert.ok(out.subarray(7 + want.length).every((x) => x === 0xa5), "nothing after");
        assert.deepEqual(payload, pattern(n, i), "the payload itself is never written");
      }
    }
    const c = await createRecordSealer(aead, secretOf(77));
    const noRoom = new Uint8Array(10).subarray(1, 5);
    assert.throws(
      () => c.sealInto(noRoom, new Uint8Array(100), 0, { useHeadroom: true }),
      RangeError,
    );
    assert.equal(c.recordsSealed, 0);
  });

  Deno.test(`${be} ${aead}: openWhole() hands each whole record to the sink, in order, without promises`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(78));
    const opener = await createRecordOpener(aead, secretOf(78));
    const recs: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) {
      if (i === 3) sealer.ratchetNow();
      recs.push(await sealer.seal(pattern(100 + i * 1000, i)));
    }
    const wire = join(recs);
    const cut = wire.length - 10; // the last record incomplete
    const got: Uint8Array[] = [];
    const used = opener.openWhole(wire.subarray(0, cut), (p) => got.push(p));
    assert.equal(used, wire.length - recs[4]!.length);
    assert.deepEqual(got, [0, 1, 2, 3].map((i) => pattern(100 + i * 1000, i)));
    assert.equal(opener.epoch, 1, "followed the ratchet");
    wire.fill(0, 0, used); // the payloads are not views of the input
    assert.deepEqual(got[0], pattern(100, 0));
    assert.equal(opener.openWhole(wire.subarray(used), (p) => got.push(p)), recs[4]!.length);
    assert.deepEqual(got[4], pattern(4100, 4));
    // A forged record throws DECRYPT_FAILED, and every later record fails.
    const bad = await sealer.seal(pattern(9));
    bad[bad.length - 1]! ^= 1;
    const next = await sealer.seal(pattern(9));
    assert.throws(
      () => opener.openWhole(join([bad, next]), () => {}),
      (e: unknown) => e instanceof ProtocolError && e.code === "DECRYPT_FAILED",
    );
    const [p] = opener.pushWhole(next).records;
    await assert.rejects(p!, (e: unknown) => e instanceof ProtocolError);
  });

  Deno.test(`${be} ${aead}: openWhole() stops before a re-key epoch whose mixin is unknown; pushWhole() takes over`, async () => {
    const mixin = new Uint8Array(32).fill(5);
    const sealer = await createRecordSealer(aead, secretOf(79));
    const opener = await createRecordOpener(aead, secretOf(79));
    const first = await sealer.seal(pattern(10));
    sealer.rekey(mixin);
    const second = await sealer.seal(pattern(20, 1));
    const wire = join([first, second]);
    const got: Uint8Array[] = [];
    const used = opener.openWhole(wire, (p) => got.push(p));
    assert.equal(used, first.length, "stopped before the re-key record");
    assert.deepEqual(got, [pattern(10)]);
    const { records, used: rest } = opener.pushWhole(wire.subarray(used));
    assert.equal(rest, second.length);
    assert.equal(opener.awaitingMixin, true);
    assert.equal(opener.openWhole(new Uint8Array(0), () => {}), 0);
    opener.provideMixin(mixin);
    assert.deepEqual(await records[0], pattern(20, 1));
    // With the mixin known first, the re-key record opens at once.
    const third = await sealer.seal(pattern(30, 2));
    const m2 = new Uint8Array(32).fill(6);
    opener.provideMixin(m2);
    sealer.rekey(m2);
    const fourth = await sealer.seal(pattern(40, 3));
    assert.equal(
      opener.openWhole(join([third, fourth]), (p) => got.push(p)),
      third.length + fourth.length,
    );
    assert.deepEqual(got.slice(1), [pattern(30, 2), pattern(40, 3)]);
  });

  Deno.test(`${be} ${aead}: openWhole() passes on what the sink throws, the record consumed`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(80));
    const opener = await createRecordOpener(aead, secretOf(80));
    const wire = join([await sealer.seal(pattern(1)), await sealer.seal(pattern(2))]);
    assert.throws(() =>
      opener.openWhole(wire, () => {
        throw new SyntaxError("bad frame");
      }), SyntaxError);
    assert.equal(opener.recordsReceived, 1);
  });

  Deno.test(`${be} ${aead}: push() gives settled promises when opening synchronously`, async () => {
    const sealer = await createRecordSealer(aead, secretOf(76));
    const opener = await createRecordOpener(aead, secretOf(76));
    const recs = [await sealer.seal(pattern(10)), await sealer.seal(pattern(20, 1))];
    const seen: Uint8Array[] = [];
    for (const p of opener.push(join(recs))) p.then((v) => seen.push(v));
    await null; // one turn: only an already settled promise has run its callback
    assert.deepEqual(seen, [pattern(10), pattern(20, 1)]);
    // A bad record fails at once too, and everything after it.
    const bad = await sealer.seal(pattern(5));
    bad[bad.length - 1]! ^= 1;
    const [pb, pn] = opener.push(join([bad, await sealer.seal(pattern(5))]));
    let code = "";
    pb!.catch((e: unknown) => (code = e instanceof ProtocolError ? e.code : "?"));
    await null;
    assert.equal(code, "DECRYPT_FAILED");
    await assert.rejects(pn!, ProtocolError);
  });
}

Deno.test("webcrypto aes-256-gcm: push() settles later (asynchronous opens chain in order)", async () => {
  const { createRecordSealer, createRecordOpener } = on(WEBCRYPTO);
  const sealer = await createRecordSealer("aes-256-gcm", secretOf(77));
  const opener = await createRecordOpener("aes-256-gcm", secretOf(77));
  const [p] = opener.push(await sealer.seal(pattern(10)));
  let seen = false;
  p!.then(() => (seen = true));
  await null;
  assert.equal(seen, false);
  assert.deepEqual(await p, pattern(10));
});

for (const aead of SUITES) {
  Deno.test(`openssl ${aead}: a key refuses use after wipe and in the other direction`, () => {
    const len = aead === "aes-128-gcm" ? 16 : 32;
    const raw = new Uint8Array(len).fill(3);
    const key = OPENSSL.importKey(aead, raw, "seal");
    assert.ok(key instanceof OpenSslKey);
    assert.ok(raw.every((b) => b === 0), "the raw key is zeroed once in the context");
    const nonce = new Uint8Array(12);
    const out = new Uint8Array(20);
    key.sealTo(nonce, new Uint8Array(0), new Uint8Array(4), out);
    assert.throws(() => key.openTo(nonce, new Uint8Array(0), out, new Uint8Array(4)), TypeError);
    key.wipe();
    key.wipe(); // twice is harmless
    assert.equal(key.wiped, true);
    assert.throws(() => key.sealTo(nonce, new Uint8Array(0), new Uint8Array(4), out), TypeError);
    assert.throws(() => OPENSSL.importKey(aead, new Uint8Array(len + 1), "open"), RangeError);
    assert.throws(
      () => OPENSSL.importKey("aes-192-gcm" as AeadId, new Uint8Array(24), "open"),
      TypeError,
    );
  });
}

Deno.test("openssl: RFC 8439 section 2.8.2 and its invalid variants (tests/vectors)", async () => {
  const v = JSON.parse(
    await Deno.readTextFile(new URL("../vectors/rfc8439_chacha20_poly1305.json", import.meta.url)),
  ) as {
    valid: Record<"key" | "nonce" | "aad" | "plaintextUtf8" | "ciphertext" | "tag", string>;
    invalid: { name: string; field: string; index: number; xor: number }[];
  };
  const pt = new TextEncoder().encode(v.valid.plaintextUtf8);
  for (const { be, backend } of BACKENDS) {
    const sealer = await backend.importKey("chacha20-poly1305", unhex(v.valid.key), "seal");
    assert.ok(sealer.sync);
    const out = new Uint8Array(pt.length + 16);
    sealer.sealTo(unhex(v.valid.nonce), unhex(v.valid.aad), pt, out);
    assert.equal(hex(out), v.valid.ciphertext + v.valid.tag, be);
    for (const bad of v.invalid) {
      const f = {
        key: unhex(v.valid.key),
        nonce: unhex(v.valid.nonce),
        aad: unhex(v.valid.aad),
        sealed: unhex(v.valid.ciphertext + v.valid.tag),
      };
      const n = f.sealed.length - 16;
      if (bad.field === "tag") f.sealed[n + bad.index]! ^= bad.xor;
      else if (bad.field === "ciphertext") f.sealed[bad.index]! ^= bad.xor;
      else if (bad.field === "truncate") {
        f.sealed = f.sealed.subarray(0, f.sealed.length - bad.index);
      } else if (bad.field !== "truncate") {
        f[bad.field as "key" | "nonce" | "aad"][bad.index]! ^= bad.xor;
      }
      const opener = await backend.importKey("chacha20-poly1305", f.key, "open");
      assert.ok(opener.sync);
      const back = new Uint8Array(f.sealed.length - 16).fill(0x77);
      assert.throws(
        () => opener.openTo(f.nonce, f.aad, f.sealed, back),
        (e: unknown) => e instanceof ProtocolError && e.code === "DECRYPT_FAILED",
        `${be}: ${bad.name}`,
      );
      assert.ok(back.every((b) => b === 0), `${be}: ${bad.name}: no plaintext left`);
    }
  }
});
