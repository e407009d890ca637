/** JWT logins in the handshake: docs/PROTOCOL.md part 2 (handshake) section 14. */
import { strict as assert } from "node:assert";
import { parseRoute } from "../../lib/config/mod.ts";
import { signJwt } from "../../lib/crypto/jwt.ts";
import { ed25519PublicKey } from "../../lib/crypto/keys.ts";
import type { UserRecord } from "../../lib/handshake/mod.ts";
import { decodeResponseBody } from "../../lib/handshake/messages.ts";
import {
  expectClient,
  expectServer,
  fixture,
  makePair,
  type PairOptions,
  runHandshake,
  T0,
} from "./_helpers.ts";
import { openSpecFrame } from "./_spec.ts";

const SECRET = new Uint8Array(32).fill(3);
const SEED = new Uint8Array(32).fill(4);
const EXP = T0 / 1000 + 3600;

function jwtUser(label: string, keys: UserRecord["jwt"] = { keys: { hs256: [SECRET] } }) {
  const f = fixture(label);
  const { token: _, ...rest } = f.record;
  return { f, record: { ...rest, jwt: keys } as UserRecord };
}

function attempt(o: PairOptions) {
  const { client, server } = makePair({ clientKex: ["x25519"], ...o });
  const sh = expectServer(server.push(client.hello()), "send").bytes;
  return server.push(expectClient(client.push(sh), "send").bytes);
}

Deno.test("a JWT user logs in with an HS256 token; the server gets exp and routes", () => {
  const { f, record } = jwtUser("jwt hs256");
  const jwt = signJwt({ alg: "HS256", secret: SECRET }, {
    sub: "alice",
    exp: EXP,
    routes: ["127.0.0.1:*"],
  });
  const { client, server } = makePair({
    fixture: f,
    users: [record],
    credentials: { jwt },
    clientKex: ["x25519"],
  });
  const hello = client.hello();
  const sh = expectServer(server.push(hello), "send").bytes;
  const response = expectClient(client.push(sh), "send").bytes;
  const result = expectServer(server.push(response), "send").bytes;
  const done = expectClient(client.push(result), "done");
  const sdone = expectServer(server.push(done.send), "done");
  assert.equal(sdone.userId, "alice");
  assert.deepEqual(sdone.jwt, { subject: "alice", expiresMs: EXP * 1000, routes: ["127.0.0.1:*"] });
});

Deno.test("a JWT user logs in with an EdDSA token", () => {
  const { f, record } = jwtUser("jwt eddsa", { keys: { ed25519: [ed25519PublicKey(SEED)] } });
  const jwt = signJwt({ alg: "EdDSA", seed: SEED }, { sub: "alice", exp: EXP });
  const { client, server } = makePair({
    fixture: f,
    users: [record],
    credentials: { jwt },
    clientKex: ["x25519"],
  });
  const t = runHandshake(client, server);
  assert.equal(t.serverUserId, "alice");
});

Deno.test("the JWT travels sealed in the Response, as extension 4 after the padding", () => {
  const { f, record } = jwtUser("jwt sealed");
  const jwt = signJwt({ alg: "HS256", secret: SECRET }, { sub: "alice", exp: EXP });
  const traces = { client: new Map<string, Uint8Array>() };
  const { client, server } = makePair({
    fixture: f,
    users: [record],
    credentials: { jwt },
    clientKex: ["x25519"],
    trace: traces,
  });
  const t = runHandshake(client, server);
  const sealed = t.response.subarray(0, t.response.length - 64);
  assert.ok(!new TextDecoder().decode(t.response).includes(jwt.slice(0, 20)), "not in clear");
  const body = decodeResponseBody(
    openSpecFrame(traces.client.get("ck2")!, "client hs", traces.client.get("h2")!, sealed),
  );
  assert.equal(body.jwt, jwt);
});

Deno.test("JWT logins are refused for expiry, nbf, wrong key, wrong sub, and a token user", () => {
  const { f, record } = jwtUser("jwt refusals");
  const sign = (claims: Record<string, unknown>, secret = SECRET) =>
    signJwt({ alg: "HS256", secret }, claims);
  const cases: [string, string, RegExp][] = [
    ["expired", sign({ sub: "alice", exp: T0 / 1000 - 1 }), /refused: expired at/],
    [
      "nbf in the future",
      sign({ sub: "alice", exp: EXP, nbf: T0 / 1000 + 60 }),
      /not valid before/,
    ],
    ["wrong key", sign({ sub: "alice", exp: EXP }, new Uint8Array(32).fill(5)), /does not verify/],
    ["wrong sub", sign({ sub: "bob", exp: EXP }), /sub "bob" is not the user/],
  ];
  for (const [name, jwt, re] of cases) {
    const step = attempt({ fixture: f, users: [record], credentials: { jwt } });
    assert.equal(step.type, "reject", name);
    assert.match((step as { reason: string }).reason, re, name);
  }
  // A token user sending a (valid-looking) JWT: the token check fails.
  const step = attempt({ fixture: f, credentials: { jwt: sign({ sub: "alice", exp: EXP }) } });
  assert.match((step as { reason: string }).reason, /wrong token for user "alice"/);
  // A JWT user sending a token: no JWT.
  const none = attempt({ fixture: f, users: [record] });
  assert.match((none as { reason: string }).reason, /no JWT from user "alice"/);
});

Deno.test("a JWT whose routes claim does not parse is refused at login like a wrong key", () => {
  const routeError = (p: string) => {
    try {
      parseRoute(p);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  };
  const { f, record } = jwtUser("jwt bad routes", { keys: { hs256: [SECRET] }, routeError });
  const sign = (routes: string[], secret = SECRET) =>
    signJwt({ alg: "HS256", secret }, { sub: "alice", exp: EXP, routes });
  const bad = attempt({ fixture: f, users: [record], credentials: { jwt: sign(["10.0.0.1/8"]) } });
  assert.equal(bad.type, "reject");
  assert.match(
    (bad as { reason: string }).reason,
    /JWT for user "alice" refused: routes claim pattern "10\.0\.0\.1\/8" is refused: Invalid route/,
  );
  // The same step and verdict as a token signed with the wrong key: nothing else to tell apart.
  const wrong = attempt({
    fixture: f,
    users: [record],
    credentials: { jwt: sign(["10.0.0.0/8"], new Uint8Array(32).fill(5)) },
  });
  assert.deepEqual(Object.keys(bad).sort(), Object.keys(wrong).sort());
  assert.equal(wrong.type, "reject");
  const good = attempt({ fixture: f, users: [record], credentials: { jwt: sign(["10.0.0.0/8"]) } });
  assert.equal(good.type, "send");
});
