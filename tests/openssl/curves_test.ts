/**
 * X25519 and Ed25519 signing through OpenSSL (lib/openssl/_curves.ts): the
 * CLI's backend choice sets them with the record backend, `lib/crypto`
 * routes its operations through them, and they give `@noble/curves`'
 * bytes. (RFC vectors on both: tests/crypto/x25519_test.ts and
 * ed25519_test.ts; handshake vectors: tests/handshake/vectors_test.ts.)
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type CurveBackend,
  curveBackend,
  ed25519Sign,
  generateX25519PrivateKey,
  setCurveBackend,
  x25519PublicKey,
  x25519SharedSecret,
} from "../../lib/crypto/keys.ts";
import { loadCryptoBackend, loadCurveBackend } from "../../lib/openssl/mod.ts";
import { useCryptoBackend } from "../../lib/cli/crypto.ts";
import { cryptoBackend, setCryptoBackend } from "../../lib/record/mod.ts";
import { CURVES, withCurves } from "../support/curves.ts";
import { wipe } from "../../lib/crypto/mod.ts";
import { MAX_HELD_KEYS } from "../../lib/openssl/_curves.ts";

Deno.test("useCryptoBackend(): openssl sets OpenSSL's curves too, webcrypto clears them", () => {
  const prevRecord = cryptoBackend();
  const prevCurves = curveBackend();
  try {
    useCryptoBackend({ backend: "openssl" });
    assert.equal(curveBackend()?.name, "openssl");
    useCryptoBackend({ backend: "webcrypto" });
    assert.equal(curveBackend(), undefined);
    assert.equal(loadCurveBackend(loadCryptoBackend("webcrypto")), undefined);
  } finally {
    setCryptoBackend(prevRecord);
    setCurveBackend(prevCurves);
  }
});

Deno.test("lib/crypto routes X25519 and Ed25519 signing through the curve backend set", () => {
  const openssl = CURVES[1]![1]!;
  const calls: string[] = [];
  const spy: CurveBackend = {
    name: "spy",
    x25519: (k, u) => (calls.push("x25519"), openssl.x25519(k, u)),
    x25519PublicKey: (k) => (calls.push("public"), openssl.x25519PublicKey(k)),
    ed25519Sign: (s, m) => (calls.push("sign"), openssl.ed25519Sign(s, m)),
  };
  withCurves(spy, () => {
    const a = generateX25519PrivateKey();
    x25519SharedSecret(a, x25519PublicKey(generateX25519PrivateKey()));
    ed25519Sign(new Uint8Array(32), new Uint8Array([1]));
  });
  assert.deepEqual(calls, ["public", "x25519", "sign"]);
});

Deno.test("OpenSSL's X25519 and Ed25519 signatures equal @noble/curves' for random keys", () => {
  const noble = CURVES[0]![1], openssl = CURVES[1]![1];
  for (let i = 0; i < 64; i++) {
    const a = generateX25519PrivateKey(), b = generateX25519PrivateKey();
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const msg = crypto.getRandomValues(new Uint8Array(i * 17));
    const run = () => [
      x25519PublicKey(a),
      x25519SharedSecret(a, x25519PublicKey(b)),
      ed25519Sign(seed, msg),
    ];
    assert.deepEqual(withCurves(openssl, run), withCurves(noble, run), `case ${i}`);
  }
});

/** The OpenSSL backend's count of held private keys (lib/openssl/_curves.ts). */
function held(backend: CurveBackend): number {
  return (backend as unknown as { held: number }).held;
}

Deno.test("a private key used again through its buffer reuses OpenSSL's key object, same bytes", () => {
  const openssl = CURVES[1]![1]!;
  withCurves(openssl, () => {
    const k = generateX25519PrivateKey(), seed = generateX25519PrivateKey();
    const before = held(openssl);
    const peers = [0, 1, 2].map(() => x25519PublicKey(generateX25519PrivateKey()));
    const afterPeers = held(openssl);
    const pub1 = x25519PublicKey(k);
    const shared = peers.map((p) => x25519SharedSecret(k, p));
    ed25519Sign(seed, new Uint8Array([1]));
    const sig = ed25519Sign(seed, new Uint8Array([2]));
    // k and seed: one entry each, however often they are used.
    assert.equal(
      held(openssl) - afterPeers,
      2,
      `held ${before} → ${afterPeers} → ${held(openssl)}`,
    );
    withCurves(undefined, () => {
      assert.deepEqual(pub1, x25519PublicKey(k));
      peers.forEach((p, i) => assert.deepEqual(shared[i], x25519SharedSecret(k, p)));
      assert.deepEqual(sig, ed25519Sign(seed, new Uint8Array([2])));
    });
  });
});

Deno.test("a key buffer changed in place is a new key, and wipe() drops what OpenSSL held for it", () => {
  const openssl = CURVES[1]![1]!;
  withCurves(openssl, () => {
    const k = generateX25519PrivateKey();
    const first = x25519PublicKey(k);
    k.set(generateX25519PrivateKey());
    const second = x25519PublicKey(k);
    assert.notDeepEqual(second, first);
    assert.deepEqual(second, withCurves(undefined, () => x25519PublicKey(k)));
    const n = held(openssl);
    wipe(k);
    assert.equal(held(openssl), n - 1, "wipe() left the key held");
    assert.ok(k.every((b) => b === 0));
  });
});

Deno.test("past MAX_HELD_KEYS, keys are made per use and results stay right", () => {
  const openssl = CURVES[1]![1]!;
  withCurves(openssl, () => {
    const keys = Array.from({ length: MAX_HELD_KEYS + 8 }, () => generateX25519PrivateKey());
    const pubs = keys.map((k) => x25519PublicKey(k));
    assert.ok(held(openssl) <= MAX_HELD_KEYS, `held ${held(openssl)}`);
    withCurves(
      undefined,
      () => keys.forEach((k, i) => assert.deepEqual(pubs[i], x25519PublicKey(k))),
    );
    wipe(...keys);
  });
});
