import { strict as assert } from "node:assert";
import {
  saltedPassword,
  scramCheckProof,
  scramClientKeys,
  scramClientProof,
  scramServerSignature,
  scramStoredKey,
  scramVerifier,
} from "../../lib/crypto/scram.ts";
import { loadVector } from "./_hex.ts";
import { assertRejectsWith } from "../support/assert.ts";

interface ScramVector {
  user: string;
  password: string;
  saltBase64: string;
  iterations: number;
  clientFirstBare: string;
  serverFirst: string;
  clientFinalWithoutProof: string;
  proofBase64: string;
  serverSignatureBase64: string;
}
const v = loadVector<ScramVector>("rfc7677_scram_sha256.json");
const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const authMessage = new TextEncoder().encode(
  `${v.clientFirstBare},${v.serverFirst},${v.clientFinalWithoutProof}`,
);

Deno.test("scramClientProof() and scramServerSignature() match RFC 7677 section 3", async () => {
  const salted = await saltedPassword(v.password, b64(v.saltBase64), v.iterations);
  const { clientKey, serverKey } = scramClientKeys(salted);
  assert.deepEqual(scramClientProof(clientKey, authMessage), b64(v.proofBase64));
  assert.deepEqual(scramServerSignature(serverKey, authMessage), b64(v.serverSignatureBase64));
});

Deno.test("scramCheckProof() accepts RFC 7677's proof and recovers ClientKey", async () => {
  const ver = await scramVerifier(v.password, b64(v.saltBase64), v.iterations);
  const got = scramCheckProof(ver.storedKey, authMessage, b64(v.proofBase64));
  assert.equal(got.ok, true);
  assert.deepEqual(scramStoredKey(got.clientKey), ver.storedKey);
  assert.deepEqual(scramServerSignature(ver.serverKey, authMessage), b64(v.serverSignatureBase64));
});

Deno.test("scramCheckProof() refuses a flipped bit, another message and a short proof", async () => {
  const ver = await scramVerifier(v.password, b64(v.saltBase64), v.iterations);
  const proof = b64(v.proofBase64);
  const flipped = proof.slice();
  flipped[7]! ^= 1;
  assert.equal(scramCheckProof(ver.storedKey, authMessage, flipped).ok, false);
  const other = new TextEncoder().encode(`${v.clientFirstBare},x`);
  assert.equal(scramCheckProof(ver.storedKey, other, proof).ok, false);
  assert.equal(scramCheckProof(ver.storedKey, authMessage, proof.subarray(0, 31)).ok, false);
});

Deno.test("scramVerifier() refuses fewer than 4096 iterations and an empty password", async () => {
  await assertRejectsWith(
    () => scramVerifier("pencil", new Uint8Array(16), 4095),
    RangeError,
    "4096",
  );
  await assertRejectsWith(() => scramVerifier("", new Uint8Array(16), 4096), RangeError, "empty");
});
