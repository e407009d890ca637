import { strict as assert } from "node:assert";
import { _map_to_curve_elligator2_curve25519, ed25519 } from "@noble/curves/ed25519.js";
import { invert, mod } from "@noble/curves/abstract/modular.js";
import fc from "fast-check";
import { generateHiddenKeyPair, representativeToPublicKey } from "../../lib/crypto/elligator.ts";
import { x25519PublicKey, x25519SharedSecret } from "../../lib/crypto/keys.ts";
import { hex } from "./_hex.ts";

const P = 2n ** 255n - 19n;

function le(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

Deno.test("representativeToPublicKey() equals RFC 9380 map_to_curve_elligator2 (noble)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (r) => {
      const masked = r.slice();
      masked[31]! &= 0x3f;
      const m = _map_to_curve_elligator2_curve25519(le(masked));
      const u = mod(m.xMn * invert(m.xMd, P), P);
      assert.equal(le(representativeToPublicKey(r)), u);
    }),
    { numRuns: 200 },
  );
});

Deno.test("representativeToPublicKey() ignores the two top bits", () => {
  const r = new Uint8Array(32).fill(0x35);
  const a = representativeToPublicKey(r);
  r[31]! |= 0xc0;
  assert.equal(hex(representativeToPublicKey(r)), hex(a));
});

Deno.test("generateHiddenKeyPair() representative decodes to its public key", () => {
  for (let i = 0; i < 64; i++) {
    const kp = generateHiddenKeyPair();
    assert.equal(hex(representativeToPublicKey(kp.representative)), hex(kp.publicKey));
  }
});

Deno.test("generateHiddenKeyPair() public key gives the same DH result as the plain X25519 key", () => {
  for (let i = 0; i < 16; i++) {
    const kp = generateHiddenKeyPair();
    const peer = crypto.getRandomValues(new Uint8Array(32));
    const viaHidden = x25519SharedSecret(peer, kp.publicKey);
    const viaPlain = x25519SharedSecret(peer, x25519PublicKey(kp.privateKey));
    assert.equal(hex(viaHidden), hex(viaPlain));
    assert.equal(hex(x25519SharedSecret(kp.privateKey, x25519PublicKey(peer))), hex(viaHidden));
  }
});

Deno.test("generateHiddenKeyPair() output has no fixed pattern a censor could test", () => {
  // Each check below holds for ~100% of plain X25519 keys; for uniform bytes it is ~1/2 or ~1/8.
  const n = 256;
  let top = 0, primeOrder = 0, firstBranch = 0;
  for (let i = 0; i < n; i++) {
    const kp = generateHiddenKeyPair();
    if ((kp.representative[31]! & 0xc0) === 0) top++;
    // Is the decoded point in the prime-order subgroup? (Edwards y from Montgomery u.)
    const u = le(kp.publicKey);
    const y = mod((u - 1n) * invert(u + 1n, P), P);
    const yBytes = new Uint8Array(32);
    let t = y;
    for (let j = 0; j < 32; j++) {
      yBytes[j] = Number(t & 0xffn);
      t >>= 8n;
    }
    const point = ed25519.Point.fromBytes(yBytes, true);
    if (point.isTorsionFree()) primeOrder++;
    // Which branch of the forward map does the representative take?
    const r = le(kp.representative) & ((1n << 254n) - 1n);
    const v = mod(-486662n * invert(1n + 2n * r * r, P), P);
    if (v === u) firstBranch++;
  }
  assert.ok(top > n / 8 && top < (n * 3) / 8, `top bits zero in ${top}/${n}`);
  assert.ok(primeOrder < n / 4, `prime-order points ${primeOrder}/${n}`);
  assert.ok(firstBranch > n / 4 && firstBranch < (n * 3) / 4, `first branch ${firstBranch}/${n}`);
});

Deno.test("generateHiddenKeyPair() is deterministic for a given random source", () => {
  const source = () => {
    let i = 0;
    return (k: number) => Uint8Array.from({ length: k }, () => (i++ * 37 + 11) & 0xff);
  };
  assert.equal(
    hex(generateHiddenKeyPair(source()).representative),
    hex(generateHiddenKeyPair(source()).representative),
  );
});
