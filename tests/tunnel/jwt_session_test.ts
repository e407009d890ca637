/**
 * JwtLifetime (the server's end at a JWT's expiry, moved by RENEW frames)
 * and JwtRenewer (the client reading its jwt_file before exp), with real
 * timers of a few hundred ms and a real file.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { signJwt } from "../../lib/crypto/jwt.ts";
import { EventHub, EventLog, silentLogger } from "../../lib/observe/mod.ts";
import { encodeRenewPayload } from "../../lib/session/mod.ts";
import { jwtExpiresMs, JwtLifetime, JwtRenewer } from "../../lib/tunnel/jwt_session.ts";
import { test, waitFor } from "../support/deadline.ts";

const SECRET = new Uint8Array(32).fill(7);
const sign = (claims: Record<string, unknown>, secret: Uint8Array = SECRET) =>
  signJwt({ alg: "HS256", secret }, { sub: "dave", ...claims });
const renew = (claims: Record<string, unknown>, secret?: Uint8Array) =>
  encodeRenewPayload(sign(claims, secret));

function lifetime(expiresMs: number, routes?: string[]) {
  const hub = new EventHub();
  const events = new EventLog(hub);
  let ended = 0;
  let verifier: { keys: { hs256: Uint8Array[] } } | undefined = { keys: { hs256: [SECRET] } };
  const life = new JwtLifetime({
    session: 3,
    user: "dave",
    claims: { subject: "dave", expiresMs, ...(routes === undefined ? {} : { routes }) },
    verifier: () => verifier,
    end: () => ended++,
    events: hub,
  });
  return {
    life,
    events,
    ended: () => ended,
    dropUser: () => (verifier = undefined),
    [Symbol.dispose]() {
      life.cancel();
      events.close();
    },
  };
}

test("JwtLifetime ends the session at exp, once, with a jwt.exp limit event", async () => {
  using t = lifetime(Date.now() + 300);
  await waitFor("the end at exp", () => t.ended() === 1, 5_000);
  const [limit] = t.events.of("limit");
  assert.equal(limit!.limit, "jwt.exp");
  assert.equal(limit!.session, 3);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(t.ended(), 1);
  // A renewal after the end changes nothing.
  assert.equal(t.life.renew(renew({ exp: Date.now() / 1000 + 60 })), false);
  assert.match(t.events.of("jwt_renewal")[0]!.detail, /already ended/);
});

test("JwtLifetime takes a fresh token with a later exp and moves the end", async () => {
  const exp0 = Date.now() + 400;
  using t = lifetime(exp0, ["10.0.0.0/8"]);
  const exp1 = Math.floor(Date.now() / 1000) + 3600;
  assert.equal(t.life.renew(renew({ exp: exp1, routes: ["10.0.0.0/8"] })), true);
  assert.equal(t.life.expiresMs, exp1 * 1000);
  const [ok] = t.events.of("jwt_renewal");
  assert.deepEqual({ ok: ok!.ok, expiresMs: ok!.expiresMs, session: ok!.session }, {
    ok: true,
    expiresMs: exp1 * 1000,
    session: 3,
  });
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(t.ended(), 0, "not ended at the old exp");
});

test("JwtLifetime refuses renewals that are not a fresh token of this user with the same routes", () => {
  using t = lifetime(Date.now() + 60_000, ["10.0.0.0/8"]);
  const later = Math.floor(Date.now() / 1000) + 3600;
  const cases: [Uint8Array, RegExp][] = [
    [Uint8Array.of(0x20), /Cannot decode RENEW payload: 1 bytes/],
    [renew({ exp: later, routes: ["10.0.0.0/8"] }, new Uint8Array(32).fill(8)), /does not verify/],
    [
      encodeRenewPayload(signJwt({ alg: "HS256", secret: SECRET }, {
        sub: "erin",
        exp: later,
        routes: ["10.0.0.0/8"],
      })),
      /sub "erin" is not the user/,
    ],
    [renew({ exp: Date.now() / 1000 - 1, routes: ["10.0.0.0/8"] }), /expired at/],
    [renew({ exp: Date.now() / 1000 + 30, routes: ["10.0.0.0/8"] }), /is not later than/],
    [renew({ exp: later }), /routes claim differs from the login's \(\["10\.0\.0\.0\/8"\]\)/],
    [renew({ exp: later, routes: ["10.0.0.0/8", "*"] }), /routes claim differs/],
  ];
  for (const [payload, why] of cases) {
    assert.equal(t.life.renew(payload), false, String(why));
    const last = t.events.of("jwt_renewal").at(-1)!;
    assert.equal(last.ok, false);
    assert.match(last.detail, why);
  }
  t.dropUser();
  assert.equal(t.life.renew(renew({ exp: later, routes: ["10.0.0.0/8"] })), false);
  assert.match(t.events.of("jwt_renewal").at(-1)!.detail, /no longer logs in with a JWT/);
  assert.equal(t.life.expiresMs > Date.now() + 50_000 && t.life.expiresMs < later * 1000, true);
});

test("jwtExpiresMs() reads exp without verifying, and undefined for anything else", () => {
  assert.equal(jwtExpiresMs(sign({ exp: 2e9 })), 2e12);
  assert.equal(jwtExpiresMs(sign({})), undefined);
  assert.equal(jwtExpiresMs(sign({ exp: "2e9" })), undefined);
  for (const t of ["", "a.b.c", "e30", "!!.!!.!!"]) assert.equal(jwtExpiresMs(t), undefined, t);
});

test("JwtRenewer re-reads jwt_file before exp until it holds a later token, then sends it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "dave.jwt");
    const first = sign({ exp: Math.floor(Date.now() / 1000) + 3 });
    await Deno.writeTextFile(file, `${first}\n`);
    const sent: string[] = [];
    const renewer = new JwtRenewer({
      file,
      token: first,
      send: (t) => sent.push(t),
      log: silentLogger,
    });
    try {
      // The same token on disk is not sent again; a fresh one is, once.
      await new Promise((r) => setTimeout(r, 600));
      assert.deepEqual(sent, []);
      const fresh = sign({ exp: Math.floor(Date.now() / 1000) + 3600 });
      await Deno.writeTextFile(file, `${fresh}\n`);
      await waitFor("the fresh token to be sent", () => sent.length === 1, 5_000);
      assert.equal(sent[0], fresh);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(sent.length, 1, "its exp is an hour away: nothing more to do for now");
    } finally {
      renewer.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
