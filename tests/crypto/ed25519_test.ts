import { strict as assert } from "node:assert";
import { ed25519PublicKey, ed25519Sign, ed25519Verify } from "../../lib/crypto/keys.ts";
import { assertBytes, loadVector, unhex } from "./_hex.ts";
import { CURVES, withCurves } from "../support/curves.ts";

interface Ed25519Vectors {
  tests: {
    name: string;
    secretKey: string;
    publicKey: string;
    message: string;
    signature: string;
  }[];
}
const v = loadVector<Ed25519Vectors>("rfc8032_ed25519.json");

for (const [be, curves] of CURVES) {
  Deno.test(`ed25519Sign() and ed25519PublicKey() match RFC 8032 section 7.1 tests 1-3 (${be})`, () =>
    withCurves(curves, () => {
      for (const t of v.tests) {
        assertBytes(ed25519PublicKey(unhex(t.secretKey)), unhex(t.publicKey), t.name);
        assertBytes(ed25519Sign(unhex(t.secretKey), unhex(t.message)), unhex(t.signature), t.name);
        assert.ok(ed25519Verify(unhex(t.publicKey), unhex(t.message), unhex(t.signature)), t.name);
      }
    }));
}

Deno.test("ed25519Verify() refuses every single-bit change of a RFC 8032 signature", () => {
  const t = v.tests[2]!;
  const pub = unhex(t.publicKey), msg = unhex(t.message), sig = unhex(t.signature);
  for (let i = 0; i < sig.length; i++) {
    const bad = sig.slice();
    bad[i]! ^= 1 << (i % 8);
    assert.equal(ed25519Verify(pub, msg, bad), false, `byte ${i}`);
  }
});

Deno.test("ed25519Verify() refuses another message, another key and bad lengths", () => {
  const [t1, t2] = [v.tests[0]!, v.tests[1]!];
  assert.equal(ed25519Verify(unhex(t1.publicKey), unhex("72"), unhex(t1.signature)), false);
  assert.equal(ed25519Verify(unhex(t2.publicKey), unhex(t1.message), unhex(t1.signature)), false);
  assert.equal(
    ed25519Verify(unhex(t1.publicKey), unhex(t1.message), unhex(t1.signature).subarray(1)),
    false,
  );
  assert.equal(ed25519Verify(new Uint8Array(31), unhex(t1.message), unhex(t1.signature)), false);
});

Deno.test("ed25519Verify() refuses a non-canonical S (S + L)", () => {
  const t = v.tests[0]!;
  const sig = unhex(t.signature);
  // S is little-endian in bytes 32..63; add L = 2^252 + 27742317777372353535851937790883648493.
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  s += 2n ** 252n + 27742317777372353535851937790883648493n;
  for (let i = 32; i < 64; i++) {
    sig[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  assert.equal(ed25519Verify(unhex(t.publicKey), unhex(t.message), sig), false);
});
