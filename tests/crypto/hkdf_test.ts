import { strict as assert } from "node:assert";
import { expand } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  hash,
  hashBackend,
  HKDF_MAX_BYTES,
  hkdfExpand,
  hkdfExpandLabel,
  hkdfExtract,
  hmacSha256,
} from "../../lib/crypto/mod.ts";
import { hmac } from "@noble/hashes/hmac.js";
import { assertBytes, loadVector, unhex } from "./_hex.ts";
import { CURVES, withCurves } from "../support/curves.ts";

interface HkdfVectors {
  tests: {
    name: string;
    ikm: string;
    salt: string;
    info: string;
    length: number;
    prk: string;
    okm: string;
  }[];
}
const v = loadVector<HkdfVectors>("rfc5869_hkdf.json");

for (const [be, curves] of CURVES) {
  Deno.test(`hkdfExtract() and hkdfExpand() match RFC 5869 A.1-A.3 (${be} hashes)`, () => {
    withCurves(curves, () => {
      assert.equal(hashBackend()?.name, curves === undefined ? undefined : "openssl");
      for (const t of v.tests) {
        const prk = hkdfExtract(unhex(t.salt), unhex(t.ikm));
        assertBytes(prk, unhex(t.prk), t.name);
        assertBytes(hkdfExpand(prk, unhex(t.info), t.length), unhex(t.okm), t.name);
        assertBytes(expand(sha256, prk, unhex(t.info), t.length), unhex(t.okm), t.name);
      }
    });
  });
}

Deno.test("SHA-256, HMAC and HKDF give @noble/hashes' bytes on OpenSSL for random inputs", () => {
  const openssl = CURVES[1]![1]!;
  const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  withCurves(openssl, () => {
    for (let i = 0; i < 300; i++) {
      const data = rnd(i * 7 % 1500), key = rnd(i % 150);
      assertBytes(hash(data), sha256(data), `sha256 of ${data.length} bytes`);
      assertBytes(hmacSha256(key, data), hmac(sha256, key, data), `hmac key ${key.length}`);
      const len = (i * 13) % 200;
      const prk = rnd(32 + (i % 40));
      assertBytes(
        hkdfExpand(prk, data.subarray(0, 40), len),
        expand(sha256, prk, data.subarray(0, 40), len),
      );
    }
  });
});

Deno.test("hkdfExpand() refuses lengths outside 0…255×32 and PRKs under 32 bytes on both backends", () => {
  for (const [be, curves] of CURVES) {
    withCurves(curves, () => {
      assert.equal(hkdfExpand(new Uint8Array(32), new Uint8Array(0), 0).length, 0);
      assert.equal(hkdfExpand(new Uint8Array(32), new Uint8Array(0), HKDF_MAX_BYTES).length, 8160);
      for (const bad of [HKDF_MAX_BYTES + 1, -1, 1.5, NaN]) {
        assert.throws(
          () => hkdfExpand(new Uint8Array(32), new Uint8Array(0), bad),
          RangeError,
          `${be} ${bad}`,
        );
      }
      assert.throws(() => hkdfExpand(new Uint8Array(31), new Uint8Array(0), 32), RangeError);
    });
  }
});

Deno.test('hkdfExpandLabel() is HKDF-Expand with info = "ns1 " + label ‖ context', () => {
  const t = v.tests[0]!;
  const prk = unhex(t.prk);
  const context = unhex("0102");
  const info = new Uint8Array([...new TextEncoder().encode("ns1 hello key"), 1, 2]);
  assertBytes(hkdfExpandLabel(prk, "hello key", context, 42), expand(sha256, prk, info, 42));
  assert.notEqual(
    Array.from(hkdfExpandLabel(prk, "hello key", context, 32)).join(),
    Array.from(hkdfExpandLabel(prk, "hello mask", context, 32)).join(),
  );
});
