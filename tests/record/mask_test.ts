/** The fast header mask equals the reference ChaCha20 keystream (noble). */
import assert from "node:assert/strict";
import fc from "fast-check";
import { HeaderMask } from "../../lib/record/_mask.ts";
import { refMask } from "./_reference.ts";
import { assertThrowsWith } from "../support/assert.ts";

function expected(key: Uint8Array, seq: number): number {
  const m = refMask(key, BigInt(seq));
  return (m[0]! << 16) | (m[1]! << 8) | m[2]!;
}

Deno.test("HeaderMask.mask() equals ChaCha20 keystream bytes 0..2 at edge sequence numbers", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 9 + 1);
  const hm = new HeaderMask(key);
  for (
    const seq of [
      0,
      1,
      2,
      255,
      256,
      65535,
      2 ** 24,
      2 ** 31,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 32 + 1,
      2 ** 40 + 7,
      2 ** 53 - 1,
    ]
  ) {
    assert.equal(hm.mask(seq), expected(key, seq), `seq ${seq}`);
  }
});

Deno.test("HeaderMask.mask() equals ChaCha20 for random keys and sequence numbers", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.maxSafeNat(),
      (key, seq) => new HeaderMask(key).mask(seq) === expected(key, seq),
    ),
    { numRuns: 300 },
  );
});

Deno.test("HeaderMask copies its key and rejects a wrong key length", () => {
  const key = new Uint8Array(32).fill(5);
  const hm = new HeaderMask(key);
  const before = hm.mask(3);
  key.fill(0);
  assert.equal(hm.mask(3), before);
  assertThrowsWith(
    () => new HeaderMask(new Uint8Array(31)),
    RangeError,
    "Cannot create header mask: key length 31 is not 32",
  );
});
