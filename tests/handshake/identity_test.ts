import { strict as assert } from "node:assert";
import fc from "fast-check";
import { ed25519PublicKey, x25519PublicKey } from "../../lib/crypto/keys.ts";
import {
  clientPublicKey,
  decodeServerIdentity,
  encodeServerIdentity,
  generateClientKey,
  generateServerIdentity,
  generateToken,
  serverPublicKey,
} from "../../lib/handshake/mod.ts";
import { hex } from "../crypto/_hex.ts";
import { assertThrowsWith } from "../support/assert.ts";

Deno.test("decodeServerIdentity(encodeServerIdentity(id)) returns the same keys (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (b) => {
      const id = decodeServerIdentity(b);
      assert.equal(hex(encodeServerIdentity(id)), hex(b));
      assert.equal(hex(id.signSeed), hex(b.subarray(0, 32)));
      assert.equal(hex(id.dhPrivate), hex(b.subarray(32)));
    }),
  );
});

Deno.test("decodeServerIdentity() throws RangeError for any other length", () => {
  for (const n of [0, 32, 63, 65, 128]) {
    assertThrowsWith(
      () => decodeServerIdentity(new Uint8Array(n)),
      RangeError,
      `Cannot use server identity: length ${n} is not 64`,
    );
  }
});

Deno.test("serverPublicKey() is the Ed25519 public key followed by the X25519 public key", () => {
  const id = generateServerIdentity();
  const pub = serverPublicKey(id);
  assert.equal(pub.length, 64);
  assert.equal(hex(pub.subarray(0, 32)), hex(ed25519PublicKey(id.signSeed)));
  assert.equal(hex(pub.subarray(32)), hex(x25519PublicKey(id.dhPrivate)));
  pub.fill(0);
  assert.notEqual(hex(serverPublicKey(id)), hex(pub), "callers get a copy, not the cache");
});

Deno.test("generateClientKey() returns a matching X25519 pair; generateToken() 32 bytes", () => {
  const k = generateClientKey();
  assert.equal(hex(clientPublicKey(k.privateKey)), hex(k.publicKey));
  assert.equal(generateToken().length, 32);
  assert.notEqual(hex(generateToken()), hex(generateToken()));
});
