import { strict as assert } from "node:assert";
import fc from "fast-check";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { JWT_MAX_NUMERIC_DATE, signJwt, verifyJwt } from "../../lib/crypto/jwt.ts";
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

Deno.test("verifyJwt() refuses a routes claim whose patterns routeError refuses, naming it", () => {
  const routeError = (p: string) => (p.includes("!!") ? "not a route" : undefined);
  const sign = (routes: unknown) =>
    signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice", exp: EXP, routes });
  const good = verifyJwt(sign(["10.0.0.0/8:22"]), { hs256: [SECRET] }, { ...check, routeError });
  assert.equal(good.ok, true);
  assert.match(
    reason(verifyJwt(sign(["*", "bad!!host"]), { hs256: [SECRET] }, { ...check, routeError })),
    /routes claim pattern "bad!!host" is refused: not a route/,
  );
  // Without a routeError hook any strings are kept (the grammar lives in lib/config).
  assert.equal(verifyJwt(sign(["bad!!host"]), { hs256: [SECRET] }, check).ok, true);
  assert.match(
    reason(verifyJwt(sign(Array(257).fill("*")), { hs256: [SECRET] }, check)),
    /routes is not a list/,
  );
});

Deno.test("verifyJwt() refuses NumericDates that are not numbers, negative or past year 9999", () => {
  const sign = (claims: Record<string, unknown>) =>
    signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice", exp: EXP, ...claims });
  const refused = (claims: Record<string, unknown>, re: RegExp) =>
    assert.match(reason(verifyJwt(sign(claims), { hs256: [SECRET] }, check)), re);
  refused({ exp: 1e300 }, /exp 1e\+300 is outside 0\.\.253402300799/);
  refused({ exp: -1e300 }, /exp -1e\+300 is outside/);
  refused({ exp: JWT_MAX_NUMERIC_DATE + 1 }, /exp 253402300800 is outside/);
  refused({ exp: "2000000000" }, /exp "2000000000" is not a NumericDate/);
  refused({ exp: null }, /exp null is not a NumericDate/);
  refused({ nbf: 1e300 }, /nbf 1e\+300 is outside/);
  refused({ nbf: -1 }, /nbf -1 is outside/);
  refused({ nbf: [1] }, /nbf \[1\] is not a NumericDate/);
  refused({ iat: 1e300 }, /iat 1e\+300 is outside/);
  refused({ iat: { a: 1 } }, /iat \{"a":1\} is not a NumericDate/);
  // 1e400 parses as Infinity: not a NumericDate either.
  const part = (o: string) => toBase64Url(enc.encode(o));
  const h = part(JSON.stringify({ alg: "HS256" }));
  const p = part(`{"sub":"alice","exp":1e400}`);
  const t = `${h}.${p}.${toBase64Url(hmac(sha256, SECRET, enc.encode(`${h}.${p}`)))}`;
  assert.match(reason(verifyJwt(t, { hs256: [SECRET] }, check)), /exp null is not a NumericDate/);
  // Fractions are NumericDates (RFC 7519 section 2); the latest date is accepted.
  assert.equal(verifyJwt(sign({ exp: EXP + 0.5, iat: 0.25 }), { hs256: [SECRET] }, check).ok, true);
  const last = verifyJwt(sign({ exp: JWT_MAX_NUMERIC_DATE }), { hs256: [SECRET] }, check);
  assert.deepEqual(last, {
    ok: true,
    claims: { subject: "alice", expiresMs: JWT_MAX_NUMERIC_DATE * 1000 },
  });
});

Deno.test("verifyJwt() property: any exp, nbf, iat and leeway give a verdict, never a throw", () => {
  const date = fc.oneof(
    fc.double(),
    fc.integer(),
    fc.constantFrom(0, -0, JWT_MAX_NUMERIC_DATE, JWT_MAX_NUMERIC_DATE + 1, 2 ** 53, -(2 ** 53)),
    fc.constantFrom(NOW / 1000, NOW / 1000 + 1e-9, NOW / 1000 - 1e-9),
    fc.jsonValue(),
    fc.constant(undefined),
  );
  fc.assert(
    fc.property(date, date, date, fc.integer({ min: 0, max: 3600 }), (exp, nbf, iat, leewayS) => {
      const claims: Record<string, unknown> = { sub: "alice", exp, nbf, iat };
      const token = signJwt({ alg: "HS256", secret: SECRET }, claims);
      const r = verifyJwt(token, { hs256: [SECRET] }, { ...check, leewayS });
      // What went over the wire, as the verifier read it (undefined drops out, -0 becomes 0).
      const sent = JSON.parse(JSON.stringify(claims)) as Record<string, unknown>;
      const isDate = (v: unknown) =>
        typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= JWT_MAX_NUMERIC_DATE;
      const valid = isDate(sent.exp) && (sent.nbf === undefined || isDate(sent.nbf)) &&
        (sent.iat === undefined || isDate(sent.iat)) &&
        NOW < (sent.exp as number) * 1000 + leewayS * 1000 &&
        (sent.nbf === undefined || (sent.nbf as number) * 1000 - leewayS * 1000 <= NOW);
      assert.equal(r.ok, valid, JSON.stringify(r));
      if (r.ok) {
        assert.ok(Number.isSafeInteger(Math.floor(r.claims.expiresMs)));
        assert.ok(r.claims.expiresMs > NOW);
      } else assert.equal(typeof r.reason, "string");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("verifyJwt() property: arbitrary tokens and payloads are refused, never thrown", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 3000 }), (t) => {
      assert.equal(typeof verifyJwt(t, { hs256: [SECRET], ed25519: [PUB] }, check).ok, "boolean");
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (payload, header) => {
      const part = (o: unknown) => toBase64Url(enc.encode(JSON.stringify(o) ?? "null"));
      const h = part(header);
      const p = part(payload);
      const t = `${h}.${p}.${toBase64Url(hmac(sha256, SECRET, enc.encode(`${h}.${p}`)))}`;
      const r = verifyJwt(t, { hs256: [SECRET] }, check);
      assert.equal(typeof r.ok, "boolean");
      // Signed with the right key under a header that is not HS256: never accepted.
      if (r.ok) assert.equal((header as { alg?: unknown }).alg, "HS256");
    }),
    { numRuns: 500 },
  );
});
