import { strict as assert } from "node:assert";
import { expand } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { hkdfExpandLabel, hkdfExtract } from "../../lib/crypto/mod.ts";
import { assertBytes, loadVector, unhex } from "./_hex.ts";

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

Deno.test("hkdfExtract() and HKDF-Expand match RFC 5869 A.1-A.3", () => {
  for (const t of v.tests) {
    const prk = hkdfExtract(unhex(t.salt), unhex(t.ikm));
    assertBytes(prk, unhex(t.prk), t.name);
    assertBytes(expand(sha256, prk, unhex(t.info), t.length), unhex(t.okm), t.name);
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
