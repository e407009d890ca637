import { strict as assert } from "node:assert";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { signJwt, verifyJwt } from "../../lib/crypto/jwt.ts";
import { ed25519PublicKey } from "../../lib/crypto/keys.ts";
import { toBase64Url } from "../../lib/crypto/mod.ts";

const enc = new TextEncoder();
const SECRET = new Uint8Array(32).fill(7);
const SEED = new Uint8Array(32).fill(9);
const PUB = ed25519PublicKey(SEED);
const NOW = 1_900_000_000_000;
const EXP = NOW / 1000 + 600;
const check = { subject: "alice", nowMs: NOW };

function reason(r: ReturnType<typeof verifyJwt>): string {
  assert.equal(r.ok, false);
  return (r as { reason: string }).reason;
}

Deno.test("verifyJwt() accepts valid HS256 and EdDSA tokens and returns exp and routes", () => {
  const hs = signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice", exp: EXP });
  assert.deepEqual(verifyJwt(hs, { hs256: [SECRET] }, check), {
    ok: true,
    claims: { subject: "alice", expiresMs: EXP * 1000 },
  });
  const ed = signJwt({ alg: "EdDSA", seed: SEED }, {
    sub: "alice",
    exp: EXP,
    nbf: NOW / 1000 - 5,
    routes: ["127.0.0.1:*"],
  });
  const r = verifyJwt(ed, { ed25519: [new Uint8Array(32), PUB] }, check);
  assert.deepEqual(r, {
    ok: true,
    claims: { subject: "alice", expiresMs: EXP * 1000, routes: ["127.0.0.1:*"] },
  });
});

Deno.test("verifyJwt() refuses an expired token and one not valid yet (leeway counted)", () => {
  const old = signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice", exp: NOW / 1000 - 1 });
  assert.match(reason(verifyJwt(old, { hs256: [SECRET] }, check)), /expired at/);
  assert.equal(verifyJwt(old, { hs256: [SECRET] }, { ...check, leewayS: 30 }).ok, true);
  const early = signJwt({ alg: "HS256", secret: SECRET }, {
    sub: "alice",
    exp: EXP,
    nbf: NOW / 1000 + 60,
  });
  assert.match(reason(verifyJwt(early, { hs256: [SECRET] }, check)), /not valid before/);
  const noExp = signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice" });
  assert.match(reason(verifyJwt(noExp, { hs256: [SECRET] }, check)), /exp is missing/);
});

Deno.test("verifyJwt() refuses a wrong key, a wrong sub and a wrong audience", () => {
  const hs = signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice", exp: EXP, aud: "nitro" });
  assert.match(
    reason(verifyJwt(hs, { hs256: [new Uint8Array(32).fill(8)] }, check)),
    /HS256 signature does not verify/,
  );
  const ed = signJwt({ alg: "EdDSA", seed: new Uint8Array(32).fill(1) }, {
    sub: "alice",
    exp: EXP,
  });
  assert.match(reason(verifyJwt(ed, { ed25519: [PUB] }, check)), /EdDSA signature does not verify/);
  assert.match(
    reason(verifyJwt(hs, { hs256: [SECRET] }, { ...check, subject: "bob" })),
    /sub "alice" is not the user/,
  );
  assert.equal(verifyJwt(hs, { hs256: [SECRET] }, { ...check, audience: "nitro" }).ok, true);
  assert.match(
    reason(verifyJwt(hs, { hs256: [SECRET] }, { ...check, audience: "other" })),
    /aud does not include/,
  );
});

Deno.test("verifyJwt() refuses alg none and algorithm confusion", () => {
  const part = (o: unknown) => toBase64Url(enc.encode(JSON.stringify(o)));
  const payload = part({ sub: "alice", exp: EXP });
  const none = `${part({ alg: "none" })}.${payload}.`;
  assert.match(
    reason(verifyJwt(none, { hs256: [SECRET], ed25519: [PUB] }, check)),
    /algorithm "none" is not HS256 or EdDSA/,
  );
  // HS256 "signed" with the server's Ed25519 public key as the HMAC secret (padded to 32 bytes:
  // it is 32 already): only HS256 secrets verify HS256 tokens, so it fails.
  const h = part({ alg: "HS256" });
  const forged = `${h}.${payload}.${toBase64Url(hmac(sha256, PUB, enc.encode(`${h}.${payload}`)))}`;
  assert.match(
    reason(verifyJwt(forged, { ed25519: [PUB] }, check)),
    /HS256 token, but no HS256 secret/,
  );
  assert.match(
    reason(verifyJwt(forged, { hs256: [SECRET], ed25519: [PUB] }, check)),
    /HS256 signature does not verify/,
  );
  // An EdDSA token checked where only HS256 secrets exist is refused too.
  const ed = signJwt({ alg: "EdDSA", seed: SEED }, { sub: "alice", exp: EXP });
  assert.match(reason(verifyJwt(ed, { hs256: [SECRET] }, check)), /no Ed25519 public key/);
});

Deno.test("verifyJwt() refuses malformed tokens and crit headers without throwing", () => {
  for (const t of ["", "a.b", "a.b.c.d", "!!.x.y", "e30.e30.!!", "x".repeat(3000)]) {
    assert.equal(verifyJwt(t, { hs256: [SECRET] }, check).ok, false, t.slice(0, 20));
  }
  const part = (o: unknown) => toBase64Url(enc.encode(JSON.stringify(o)));
  const h = part({ alg: "HS256", crit: ["exp"] });
  const p = part({ sub: "alice", exp: EXP });
  const t = `${h}.${p}.${toBase64Url(hmac(sha256, SECRET, enc.encode(`${h}.${p}`)))}`;
  assert.match(reason(verifyJwt(t, { hs256: [SECRET] }, check)), /crit/);
  const bad = signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice", exp: EXP, routes: "*" });
  assert.match(reason(verifyJwt(bad, { hs256: [SECRET] }, check)), /routes is not a list/);
});
