import { strict as assert } from "node:assert";
import { ProtocolError } from "../../lib/errors.ts";
import { ed25519Sign } from "../../lib/crypto/keys.ts";
import { signJwt } from "../../lib/crypto/jwt.ts";
import { concat } from "../../lib/wire/bytes.ts";
import {
  type ClientHandshake,
  HELLO_MAX_BYTES,
  ReplayGuard,
  RESPONSE_MAX_BYTES,
  RESULT_MAX_BYTES,
  SERVER_HELLO_MAX_BYTES,
  type ServerHandshake,
  type ServerStep,
  type UserRecord,
} from "../../lib/handshake/mod.ts";
import { decodeServerHelloBody, encodeServerHelloBody } from "../../lib/handshake/messages.ts";
import { hex } from "../crypto/_hex.ts";
import {
  drbg,
  expectClient,
  expectServer,
  fixture,
  handshake,
  makePair,
  type PairOptions,
  passwordFixture,
  T0,
  type Transcript,
} from "./_helpers.ts";
import { mixHash, openSpecFrame, sealSpecFrame } from "./_spec.ts";

const SIGNATURE_CONTEXT = new TextEncoder().encode("NitroSocks v1 ServerHello signature\0");

type Msg = "hello" | "serverHello" | "response" | "result" | "finish";

const SUITES: { name: string; opts: PairOptions }[] = [
  { name: "x25519", opts: { clientKex: ["x25519"], fixture: fixture("neg keys", true) } },
  { name: "hybrid", opts: { fixture: fixture("neg keys", true) } },
];

/** Pushes `bytes`; while the peer waits for more, offers zeros up to `limit` so a verdict must come. */
function settleServer(server: ServerHandshake, bytes: Uint8Array, limit: number): ServerStep {
  let step = server.push(bytes);
  if (step.type === "need_more") step = server.push(new Uint8Array(limit));
  return step;
}

function settleClient(client: ClientHandshake, bytes: Uint8Array, limit: number): unknown {
  try {
    let step = client.push(bytes);
    if (step.type === "need_more") step = client.push(new Uint8Array(limit));
    return step;
  } catch (e) {
    return e;
  }
}

/** A fresh pair (same randomness, so it replays `t` exactly) advanced to just before `msg` is received. */
function pairBefore(
  opts: PairOptions,
  t: Transcript,
  msg: Msg,
): { client: ClientHandshake; server: ServerHandshake } {
  const p = makePair(opts);
  p.client.hello();
  if (msg === "hello") return p;
  if (msg === "serverHello") return p;
  expectServer(p.server.push(t.hello), "send");
  if (msg === "response") return p;
  expectClient(p.client.push(t.serverHello), "send");
  if (msg === "result") return p;
  expectServer(p.server.push(t.response), "send");
  return p;
}

function flipped(b: Uint8Array, i: number, mask: number): Uint8Array {
  const out = b.slice();
  out[i]! ^= mask;
  return out;
}

for (const suite of SUITES) {
  Deno.test(`[${suite.name}] flipping any bit-pattern in any Hello byte makes the server answer probe`, () => {
    const t = handshake(suite.opts);
    for (let i = 0; i < t.hello.length; i++) {
      const masks = i === 31 ? [0x01, 0x40, 0x80] : [1 << (i % 8)];
      for (const m of masks) {
        const { server } = makePair({ ...suite.opts, replay: new ReplayGuard() });
        const step = settleServer(server, flipped(t.hello, i, m), HELLO_MAX_BYTES);
        // mac2 (bytes 48..63) counts only under load (section 15); it is outside the transcript.
        const want = i >= 48 && i < 64 ? "send" : "probe";
        assert.equal(step.type, want, `byte ${i} mask ${m}: ${JSON.stringify(step)}`);
      }
    }
  });

  Deno.test(`[${suite.name}] flipping any ServerHello byte makes the client throw`, () => {
    const t = handshake(suite.opts);
    for (let i = 0; i < t.serverHello.length; i++) {
      const { client } = pairBefore(suite.opts, t, "serverHello");
      const out = settleClient(
        client,
        flipped(t.serverHello, i, 1 << (i % 8)),
        SERVER_HELLO_MAX_BYTES,
      );
      assert.ok(out instanceof ProtocolError, `byte ${i}: ${JSON.stringify(out)}`);
      assert.ok(
        ["AUTH_FAILED", "TOO_LARGE", "MALFORMED"].includes(out.code),
        `byte ${i}: ${out.code}`,
      );
    }
  });

  Deno.test(`[${suite.name}] flipping any Response byte makes the server reject`, () => {
    const t = handshake(suite.opts);
    for (let i = 0; i < t.response.length; i++) {
      const { server } = pairBefore(suite.opts, t, "response");
      const step = settleServer(server, flipped(t.response, i, 1 << (i % 8)), RESPONSE_MAX_BYTES);
      assert.equal(step.type, "reject", `byte ${i}: ${JSON.stringify(step)}`);
    }
  });

  Deno.test(`[${suite.name}] flipping any Result byte makes the client throw`, () => {
    const t = handshake(suite.opts);
    for (let i = 0; i < t.result.length; i++) {
      const { client } = pairBefore(suite.opts, t, "result");
      const out = settleClient(client, flipped(t.result, i, 1 << (i % 8)), RESULT_MAX_BYTES);
      assert.ok(out instanceof ProtocolError, `byte ${i}: ${JSON.stringify(out)}`);
    }
  });

  Deno.test(`[${suite.name}] flipping any Finish byte makes the server reject`, () => {
    const t = handshake(suite.opts);
    for (let i = 0; i < t.finish.length; i++) {
      const { server } = pairBefore(suite.opts, t, "finish");
      const step = server.push(flipped(t.finish, i, 1 << (i % 8)));
      assert.equal(step.type, "reject", `byte ${i}`);
    }
  });

  Deno.test(`[${suite.name}] every truncation of every message is need_more, never a verdict or a throw`, () => {
    const t = handshake(suite.opts);
    const sides: [Msg, "client" | "server"][] = [
      ["hello", "server"],
      ["serverHello", "client"],
      ["response", "server"],
      ["result", "client"],
      ["finish", "server"],
    ];
    for (const [msg, side] of sides) {
      const full = t[msg];
      for (let k = 0; k < full.length; k++) {
        const p = pairBefore(suite.opts, t, msg);
        const step = side === "server"
          ? p.server.push(full.subarray(0, k))
          : p.client.push(full.subarray(0, k));
        assert.equal(step.type, "need_more", `${msg} cut at ${k}`);
        if (msg === "hello") assert.equal(hex(p.server.received()), hex(full.subarray(0, k)));
      }
    }
  });
}

Deno.test("all authentication failures look the same on the wire", () => {
  const f = fixture("auth keys", true);
  const other = fixture("other keys", true);
  const pw = passwordFixture("auth password");
  const wrongPw = passwordFixture("another password");
  const { token: _, ...withoutToken } = f.record;
  const pwRecord: UserRecord = { ...withoutToken, password: pw.verifier };
  const jwtSecret = new Uint8Array(32).fill(6);
  const jwtRecord: UserRecord = { ...withoutToken, jwt: { keys: { hs256: [jwtSecret] } } };
  const disabled: UserRecord = { ...f.record, inactive: { reason: "disabled in users.yml" } };
  const removed: UserRecord = {
    userId: "alice",
    publicKey: f.record.publicKey,
    inactive: { reason: "removed from users.yml", removed: true },
  };
  // `counts`: what the refusal counts against (ServerStep "reject": user and failed).
  const SOURCE = { failed: "source" };
  const USER = { user: "alice", failed: "user" };
  const cases: { name: string; opts: PairOptions; log: RegExp; counts: object }[] = [
    {
      name: "unknown user",
      opts: { credentials: { userId: "mallory" } },
      log: /unknown user "mallory"/,
      counts: SOURCE,
    },
    {
      name: "wrong client key",
      opts: { credentials: { clientKey: other.clientKey.privateKey } },
      log: /wrong client key/,
      counts: SOURCE,
    },
    {
      name: "wrong token",
      opts: { credentials: { token: other.token } },
      log: /wrong token/,
      counts: USER,
    },
    {
      name: "wrong TOTP",
      opts: { credentials: { totpSecret: other.totpSecret } },
      log: /wrong TOTP/,
      counts: USER,
    },
    {
      name: "missing TOTP",
      opts: { fixture: fixture("auth keys"), users: [f.record] },
      log: /missing TOTP/,
      counts: USER,
    },
    {
      name: "wrong password",
      opts: { credentials: { password: wrongPw.keys }, users: [pwRecord] },
      log: /wrong password for user "alice"/,
      counts: USER,
    },
    {
      name: "password sent to a token user",
      opts: { credentials: { password: pw.keys } },
      log: /wrong token for user "alice"/,
      counts: USER,
    },
    {
      name: "token sent to a password user",
      opts: { users: [pwRecord] },
      log: /wrong password for user "alice"/,
      counts: USER,
    },
    {
      name: "expired JWT",
      opts: {
        credentials: {
          jwt: signJwt({ alg: "HS256", secret: jwtSecret }, { sub: "alice", exp: T0 / 1000 - 1 }),
        },
        users: [jwtRecord],
      },
      log: /JWT for user "alice" refused: expired/,
      counts: USER,
    },
    {
      name: "locked out, with the right credentials",
      opts: { allowLogin: (id) => (id === "alice" ? "locked for the test" : undefined) },
      log: /user "alice" refused: locked for the test/,
      counts: { user: "alice" },
    },
    {
      name: "password of an unknown user",
      opts: { credentials: { userId: "mallory", password: pw.keys }, users: [pwRecord] },
      log: /unknown user "mallory"/,
      counts: SOURCE,
    },
    {
      name: "disabled user, right credentials: refused, not a failed login",
      opts: { users: [disabled] },
      log: /user "alice" refused: disabled in users\.yml/,
      counts: {},
    },
    {
      name: "disabled user, wrong token",
      opts: { credentials: { token: other.token }, users: [disabled] },
      log: /wrong token for user "alice"/,
      counts: USER,
    },
    {
      name: "disabled user, wrong client key",
      opts: { credentials: { clientKey: other.clientKey.privateKey }, users: [disabled] },
      log: /wrong client key for user "alice"/,
      counts: SOURCE,
    },
    {
      name: "removed user, right key (and any token): refused, not a failed login",
      opts: { credentials: { token: other.token }, users: [removed] },
      log: /user "alice" refused: removed from users\.yml/,
      counts: {},
    },
    {
      name: "removed user, wrong client key",
      opts: { credentials: { clientKey: other.clientKey.privateKey }, users: [removed] },
      log: /wrong client key for user "alice"/,
      counts: SOURCE,
    },
  ];
  const emitted: string[] = [];
  for (const c of cases) {
    const { client, server } = makePair({ fixture: f, clientKex: ["x25519"], ...c.opts });
    const wire: string[] = [];
    const s1 = expectServer(server.push(client.hello()), "send");
    wire.push(hex(s1.bytes));
    const response = expectClient(client.push(s1.bytes), "send").bytes;
    const s2 = server.push(response);
    wire.push(s2.type);
    if (s2.type === "send") wire.push(hex(s2.bytes));
    emitted.push(wire.join("|"));
    assert.equal(s2.type, "reject", c.name);
    const { type: _t, reason, ...counts } = s2 as { type: "reject"; reason: string };
    assert.match(reason, c.log, c.name);
    assert.deepEqual(counts, c.counts, c.name);
    const closed = client.closed();
    assert.equal(closed.code, "AUTH_FAILED");
    assert.equal(closed.authFailure, "login_refused");
  }
  // Every case: the same ServerHello, then nothing but a close.
  assert.equal(new Set(emitted).size, 1, emitted.join("\n"));
});

Deno.test("a user is refused when the key and token are right but the TOTP code is from 2 steps ago", () => {
  const f = fixture("totp skew", true);
  const { client, server } = makePair({
    fixture: f,
    clientKex: ["x25519"],
    clientNow: T0 - 60_000,
  });
  const s1 = expectServer(server.push(client.hello()), "send");
  const step = server.push(expectClient(client.push(s1.bytes), "send").bytes);
  assert.equal(step.type, "reject");
  assert.match(
    (step as { reason: string }).reason,
    /^wrong TOTP code for user "alice": codes are accepted within 30 s of this server's clock, so a clock off on the client or here is the likely cause/,
  );
});

Deno.test("a TOTP code from one step ago is accepted", () => {
  const t = handshake({
    fixture: fixture("totp skew", true),
    clientKex: ["x25519"],
    clientNow: T0 - 30_000,
  });
  assert.equal(t.server.userId, "alice");
});

Deno.test("a Hello timestamp more than 120 s off is a probe, and the skew is logged", () => {
  for (const skew of [-120_001, 120_001, -3_600_000]) {
    const { client, server, log } = makePair({ clientNow: T0 + skew });
    const step = server.push(client.hello());
    assert.equal(step.type, "probe", `skew ${skew}`);
    assert.ok(
      log.some((l) => l.includes(`clock skew ${(skew / 1000).toFixed(1)} s`)),
      JSON.stringify(log),
    );
  }
  for (const skew of [-120_000, 120_000]) {
    assert.equal(handshake({ clientNow: T0 + skew, clientKex: ["x25519"] }).server.userId, "alice");
  }
});

Deno.test("a replayed Hello is a probe, even on another connection", () => {
  const replay = new ReplayGuard();
  const first = makePair({ replay, clientKex: ["x25519"] });
  const hello = first.client.hello();
  expectServer(first.server.push(hello), "send");
  const second = makePair({ replay, clientKex: ["x25519"] });
  const step = second.server.push(hello);
  assert.equal(step.type, "probe");
  assert.match((step as { reason: string }).reason, /replay/);
  assert.equal(hex(second.server.received()), hex(hello));
});

Deno.test("a tampered offer (KEX list rewritten to drop the hybrid) is a probe", () => {
  const { client } = makePair();
  const hello = client.hello();
  // Body offset 4 is the first KEX id (0x02, hybrid); the ciphertext is a stream cipher, so XOR 3 makes it 0x01.
  const { server } = makePair();
  const step = server.push(flipped(hello, 66 + 4, 0x03));
  assert.equal(step.type, "probe");
  assert.match((step as { reason: string }).reason, /MAC/);
});

Deno.test("no common key exchange or AEAD is a reject", () => {
  let p = makePair({ clientKex: ["x25519"], serverKex: ["x25519-mlkem768"] });
  let step = p.server.push(p.client.hello());
  assert.equal(step.type, "reject");
  assert.match((step as { reason: string }).reason, /no common key exchange/);
  p = makePair({ clientAead: ["chacha20-poly1305"], serverAead: ["aes-256-gcm"] });
  step = p.server.push(p.client.hello());
  assert.equal(step.type, "reject");
  assert.match((step as { reason: string }).reason, /no common AEAD/);
});

Deno.test("a client pinned to another server's key is a probe to this server", () => {
  const other = fixture("someone else");
  const { client } = makePair({ fixture: other });
  const { server } = makePair();
  assert.equal(server.push(client.hello()).type, "probe");
});

Deno.test("client refuses a ServerHello signed by a key other than the pinned one", () => {
  // An attacker who stole the server's DH key but not its signing key can seal a ServerHello.
  const f = fixture();
  const trace = new Map<string, Uint8Array>();
  const t = handshake({ fixture: f, clientKex: ["x25519"], trace: { client: trace } });
  const ck1 = trace.get("ck1")!, h1 = trace.get("h1")!;
  const body = decodeServerHelloBody(openSpecFrame(ck1, "server hello", h1, t.serverHello));
  // The attacker signs exactly what the spec says is signed, with its own key.
  const forged = ed25519Sign(
    fixture("attacker").identity.signSeed,
    concat([SIGNATURE_CONTEXT, mixHash(h1, body.signed)]),
  );
  const resealed = sealSpecFrame(
    ck1,
    "server hello",
    h1,
    encodeServerHelloBody({ ...body, signature: forged }),
  );
  const { client } = makePair({ fixture: f, clientKex: ["x25519"] });
  client.hello();
  assert.throws(
    () => client.push(resealed),
    (e) =>
      e instanceof ProtocolError && e.code === "AUTH_FAILED" &&
      e.authFailure === "server_identity" && /does not match the pinned key/.test(e.message),
  );
});

Deno.test("client refuses a validly signed ServerHello that selects an AEAD it did not offer", () => {
  const f = fixture();
  const opts: PairOptions = { fixture: f, clientKex: ["x25519"], clientAead: ["aes-256-gcm"] };
  const trace = new Map<string, Uint8Array>();
  const t = handshake({ ...opts, trace: { client: trace } });
  const ck1 = trace.get("ck1")!, h1 = trace.get("h1")!;
  const body = decodeServerHelloBody(openSpecFrame(ck1, "server hello", h1, t.serverHello));
  const fields = encodeServerHelloBody({ ...body, aead: 3 }).subarray(0, body.signed.length);
  const sig = ed25519Sign(
    f.identity.signSeed,
    concat([SIGNATURE_CONTEXT, mixHash(h1, fields)]),
  );
  const resealed = sealSpecFrame(ck1, "server hello", h1, concat([fields, sig]));
  const { client } = makePair(opts);
  client.hello();
  assert.throws(
    () => client.push(resealed),
    (e) => e instanceof ProtocolError && e.code === "UNSUPPORTED",
  );
});

Deno.test("client says the server answered as a web server when its Hello was refused", () => {
  const { client } = makePair({ clientNow: T0 - 600_000 });
  const { server } = makePair();
  assert.equal(server.push(client.hello()).type, "probe");
  const page = new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  let err: ProtocolError;
  try {
    const step = client.push(page);
    assert.equal(step.type, "need_more");
    err = client.closed();
  } catch (e) {
    err = e as ProtocolError;
  }
  assert.equal(err.code, "AUTH_FAILED");
  assert.equal(err.authFailure, "decoy");
  assert.match(err.message, /web server/);
});

Deno.test("client.closed() before the ServerHello is CLOSED", () => {
  const { client } = makePair();
  client.hello();
  assert.equal(client.closed().code, "CLOSED");
});

Deno.test("a Response recorded from an earlier session is refused on a new connection", () => {
  const t = handshake({ clientKex: ["x25519"] });
  const p = makePair({ clientKex: ["x25519"], clientRandom: drbg("a later connection") });
  expectServer(p.server.push(p.client.hello()), "send");
  assert.equal(settleServer(p.server, t.response, RESPONSE_MAX_BYTES).type, "reject");
});
