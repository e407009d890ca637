import { strict as assert } from "node:assert";
import { ProtocolError } from "../../lib/errors.ts";
import { chachaOpen, chachaSeal } from "../../lib/crypto/chacha20_poly1305.ts";
import { assertBytes, loadVector, unhex } from "./_hex.ts";
import { assertThrowsWith } from "../support/assert.ts";

interface ChaChaVectors {
  valid: {
    key: string;
    nonce: string;
    aad: string;
    plaintextUtf8: string;
    ciphertext: string;
    tag: string;
  };
  invalid: {
    name: string;
    field: "tag" | "ciphertext" | "aad" | "nonce" | "key" | "truncate";
    index: number;
    xor: number;
  }[];
}
const v = loadVector<ChaChaVectors>("rfc8439_chacha20_poly1305.json");
const plaintext = new TextEncoder().encode(v.valid.plaintextUtf8);

Deno.test("chachaSeal() matches RFC 8439 section 2.8.2", () => {
  const sealed = chachaSeal(
    unhex(v.valid.key),
    unhex(v.valid.nonce),
    plaintext,
    unhex(v.valid.aad),
  );
  assertBytes(sealed, unhex(v.valid.ciphertext + v.valid.tag));
});

Deno.test("chachaOpen() opens the RFC 8439 section 2.8.2 example", () => {
  const opened = chachaOpen(
    unhex(v.valid.key),
    unhex(v.valid.nonce),
    unhex(v.valid.ciphertext + v.valid.tag),
    unhex(v.valid.aad),
  );
  assertBytes(opened, plaintext);
});

Deno.test("chachaOpen() throws DECRYPT_FAILED for every tampered RFC 8439 case", () => {
  for (const bad of v.invalid) {
    const f = {
      key: unhex(v.valid.key),
      nonce: unhex(v.valid.nonce),
      aad: unhex(v.valid.aad),
      ciphertext: unhex(v.valid.ciphertext),
      tag: unhex(v.valid.tag),
    };
    if (bad.field === "truncate") f.tag = f.tag.subarray(0, f.tag.length - bad.index);
    else f[bad.field][bad.index]! ^= bad.xor;
    const sealed = new Uint8Array([...f.ciphertext, ...f.tag]);
    assert.throws(
      () => chachaOpen(f.key, f.nonce, sealed, f.aad),
      (e) => e instanceof ProtocolError && e.code === "DECRYPT_FAILED",
      bad.name,
    );
  }
});

Deno.test("chachaOpen() refuses input shorter than a tag, and bad key or nonce lengths", () => {
  const k = new Uint8Array(32), n = new Uint8Array(12);
  assertThrowsWith(
    () => chachaOpen(k, n, new Uint8Array(15)),
    ProtocolError,
    "Cannot open ChaCha20-Poly1305 message: length 15 is shorter than the tag",
  );
  assertThrowsWith(
    () => chachaSeal(new Uint8Array(16), n, new Uint8Array(1)),
    RangeError,
    "Cannot use ChaCha20-Poly1305 key: length 16 is not 32",
  );
  assertThrowsWith(
    () => chachaSeal(k, new Uint8Array(8), new Uint8Array(1)),
    RangeError,
    "Cannot use ChaCha20-Poly1305 nonce: length 8 is not 12",
  );
});
