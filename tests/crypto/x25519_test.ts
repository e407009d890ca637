import { strict as assert } from "node:assert";
import { x25519 } from "@noble/curves/ed25519.js";
import { ProtocolError } from "../../lib/errors.ts";
import { x25519PublicKey, x25519SharedSecret } from "../../lib/crypto/keys.ts";
import { assertBytes, loadVector, unhex } from "./_hex.ts";
import { assertThrowsWith } from "../support/assert.ts";
import { CURVES, withCurves } from "../support/curves.ts";

interface X25519Vectors {
  scalarMult: { scalar: string; u: string; output: string }[];
  iterated: { iterations: number; output: string }[];
  diffieHellman: Record<
    "alicePrivate" | "alicePublic" | "bobPrivate" | "bobPublic" | "shared",
    string
  >;
}
const v = loadVector<X25519Vectors>("rfc7748_x25519.json");

for (const [be, curves] of CURVES) {
  Deno.test(`x25519SharedSecret() matches RFC 7748 section 5.2 single vectors (${be})`, () =>
    withCurves(curves, () => {
      for (const t of v.scalarMult) {
        assertBytes(x25519SharedSecret(unhex(t.scalar), unhex(t.u)), unhex(t.output));
      }
    }));
}

Deno.test("X25519 matches RFC 7748 section 5.2 iterated vectors (1 and 1000)", () => {
  let k: Uint8Array = unhex("0900000000000000000000000000000000000000000000000000000000000000");
  let u: Uint8Array = k.slice();
  let done = 0;
  for (const t of v.iterated) {
    for (; done < t.iterations; done++) {
      const next = x25519.scalarMult(k, u);
      u = k;
      k = next;
    }
    assertBytes(k, unhex(t.output), `after ${t.iterations} iterations`);
  }
});

for (const [be, curves] of CURVES) {
  Deno.test(`x25519PublicKey() and x25519SharedSecret() match RFC 7748 section 6.1 (${be})`, () =>
    withCurves(curves, () => {
      const d = v.diffieHellman;
      assertBytes(x25519PublicKey(unhex(d.alicePrivate)), unhex(d.alicePublic));
      assertBytes(x25519PublicKey(unhex(d.bobPrivate)), unhex(d.bobPublic));
      assertBytes(x25519SharedSecret(unhex(d.alicePrivate), unhex(d.bobPublic)), unhex(d.shared));
      assertBytes(x25519SharedSecret(unhex(d.bobPrivate), unhex(d.alicePublic)), unhex(d.shared));
    }));
}

for (const [be, curves] of CURVES) {
  Deno.test(`x25519SharedSecret() refuses low-order peer keys (${be})`, () =>
    withCurves(curves, () => {
      const a = unhex(v.diffieHellman.alicePrivate);
      for (
        const low of [
          new Uint8Array(32), // u = 0
          unhex("0100000000000000000000000000000000000000000000000000000000000000"), // u = 1
          unhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), // order 8
        ]
      ) {
        assert.throws(
          () => x25519SharedSecret(a, low),
          (e) => e instanceof ProtocolError && e.code === "MALFORMED",
        );
      }
    }));
}

Deno.test("x25519SharedSecret() refuses keys of the wrong length", () => {
  assertThrowsWith(
    () => x25519SharedSecret(new Uint8Array(31), new Uint8Array(32)),
    RangeError,
    "Cannot use X25519 private key: length 31 is not 32",
  );
  assertThrowsWith(
    () => x25519PublicKey(new Uint8Array(33)),
    RangeError,
    "Cannot use X25519 private key: length 33 is not 32",
  );
});
