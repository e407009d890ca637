import { strict as assert } from "node:assert";
import { ProtocolError } from "../../lib/errors.ts";
import { concat } from "../../lib/wire/bytes.ts";
import {
  ClientHandshake,
  HANDSHAKE_MAX_MESSAGE,
  HELLO_MAX_BYTES,
  HELLO_MIN_BYTES,
  RESPONSE_MAX_BYTES,
  RESULT_MAX_BYTES,
  SERVER_HELLO_MAX_BYTES,
  type SessionSecrets,
} from "../../lib/handshake/mod.ts";
import { hex } from "../crypto/_hex.ts";
import {
  drbg,
  expectClient,
  expectServer,
  fixture,
  handshake,
  makePair,
  runHandshake,
} from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

function assertSameSecrets(a: SessionSecrets, b: SessionSecrets): void {
  assert.deepEqual(
    {
      ...a,
      sessionId: hex(a.sessionId),
      clientToServer: hex(a.clientToServer),
      serverToClient: hex(a.serverToClient),
      resumptionSecret: hex(a.resumptionSecret),
      transcriptHash: hex(a.transcriptHash),
    },
    {
      ...b,
      sessionId: hex(b.sessionId),
      clientToServer: hex(b.clientToServer),
      serverToClient: hex(b.serverToClient),
      resumptionSecret: hex(b.resumptionSecret),
      transcriptHash: hex(b.transcriptHash),
    },
  );
}

Deno.test("handshake over x25519 gives both sides the same secrets", () => {
  const { client, server } = makePair({ clientKex: ["x25519"] });
  const t = runHandshake(client, server);
  assertSameSecrets(t.client, t.server);
  assert.equal(t.client.kex, "x25519");
  assert.equal(t.client.aead, "aes-256-gcm");
  assert.equal(t.client.version, 1);
  assert.equal(t.serverUserId, "alice");
  assert.equal(t.client.sessionId.length, 16);
  for (
    const k of ["clientToServer", "serverToClient", "resumptionSecret", "transcriptHash"] as const
  ) {
    assert.equal(t.client[k].length, 32);
  }
  assert.notEqual(hex(t.client.clientToServer), hex(t.client.serverToClient));
  assert.notEqual(hex(t.client.resumptionSecret), hex(t.client.clientToServer));
});

Deno.test("handshake negotiates the hybrid X25519 + ML-KEM-768 suite by default", () => {
  const { client, server } = makePair();
  const t = runHandshake(client, server);
  assertSameSecrets(t.client, t.server);
  assert.equal(t.server.kex, "x25519-mlkem768");
  assert.ok(t.hello.length > 1184, "Hello carries the ML-KEM encapsulation key");
  assert.ok(t.serverHello.length > 1088, "ServerHello carries the ML-KEM ciphertext");
});

Deno.test("handshake with a TOTP factor succeeds and every size stays within its limit", () => {
  const f = fixture("totp keys", true);
  const { client, server } = makePair({ fixture: f });
  const t = runHandshake(client, server);
  assertSameSecrets(t.client, t.server);
  assert.ok(t.hello.length >= HELLO_MIN_BYTES && t.hello.length <= HELLO_MAX_BYTES);
  assert.ok(t.serverHello.length <= SERVER_HELLO_MAX_BYTES);
  assert.ok(t.response.length <= RESPONSE_MAX_BYTES);
  assert.ok(t.result.length <= RESULT_MAX_BYTES);
  assert.equal(t.finish.length, 32);
  // A Response carrying the longest JWT (section 14) is the largest message.
  assert.equal(HANDSHAKE_MAX_MESSAGE, RESPONSE_MAX_BYTES);
});

Deno.test("server picks its own preference among what the client offers", () => {
  let t = handshake({
    clientKex: ["x25519", "x25519-mlkem768"],
    serverKex: ["x25519-mlkem768", "x25519"],
  });
  assert.equal(t.server.kex, "x25519-mlkem768");
  const p = makePair({
    clientKex: ["x25519-mlkem768", "x25519"],
    serverKex: ["x25519"],
    clientAead: ["aes-256-gcm", "chacha20-poly1305"],
    serverAead: ["chacha20-poly1305", "aes-128-gcm", "aes-256-gcm"],
  });
  t = runHandshake(p.client, p.server);
  assert.equal(t.server.kex, "x25519");
  assert.equal(t.server.aead, "chacha20-poly1305");
  assertSameSecrets(t.client, t.server);
});

Deno.test("handshake delivered one byte at a time gives the same bytes and secrets", () => {
  const whole = handshake();
  const { client, server } = makePair();
  const feedServer = (b: Uint8Array) => {
    for (let i = 0; i < b.length - 1; i++) {
      expectServer(server.push(b.subarray(i, i + 1)), "need_more");
    }
    return server.push(b.subarray(b.length - 1));
  };
  const feedClient = (b: Uint8Array) => {
    for (let i = 0; i < b.length - 1; i++) {
      expectClient(client.push(b.subarray(i, i + 1)), "need_more");
    }
    return client.push(b.subarray(b.length - 1));
  };
  const hello = client.hello();
  const sh = expectServer(feedServer(hello), "send").bytes;
  const resp = expectClient(feedClient(sh), "send").bytes;
  const res = expectServer(feedServer(resp), "send").bytes;
  const done = expectClient(feedClient(res), "done");
  const sdone = expectServer(feedServer(done.send), "done");
  assert.equal(
    hex(concat([hello, sh, resp, res, done.send])),
    hex(concat([whole.hello, whole.serverHello, whole.response, whole.result, whole.finish])),
  );
  assertSameSecrets(sdone.secrets, whole.server);
  assertSameSecrets(done.secrets, whole.client);
});

Deno.test("bytes after the Result and after the Finish come back as rest", () => {
  const { client, server } = makePair({ clientKex: ["x25519"] });
  const hello = client.hello();
  const sh = expectServer(server.push(hello), "send").bytes;
  const resp = expectClient(client.push(sh), "send").bytes;
  const res = expectServer(server.push(resp), "send").bytes;
  const done = expectClient(client.push(concat([res, new Uint8Array([1, 2, 3])])), "done");
  assert.deepEqual([...done.rest], [1, 2, 3]);
  const sdone = expectServer(server.push(concat([done.send, new Uint8Array([4, 5])])), "done");
  assert.deepEqual([...sdone.rest], [4, 5]);
  assert.throws(
    () => server.push(new Uint8Array(1)),
    (e) => e instanceof ProtocolError && e.code === "BAD_STATE",
  );
  assert.throws(
    () => client.push(new Uint8Array(1)),
    (e) => e instanceof ProtocolError && e.code === "BAD_STATE",
  );
});

Deno.test("two handshakes with fresh randomness give unrelated secrets", () => {
  const a = handshake({ clientRandom: drbg("a"), serverRandom: drbg("b") });
  const b = handshake({ clientRandom: drbg("c"), serverRandom: drbg("d") });
  assert.notEqual(hex(a.client.clientToServer), hex(b.client.clientToServer));
  assert.notEqual(hex(a.hello.subarray(0, 32)), hex(b.hello.subarray(0, 32)));
});

Deno.test("ephemeral private keys are zeroed after use; long-term inputs are left alone", () => {
  const f = fixture();
  const token = f.token.slice(), clientKey = f.clientKey.privateKey.slice();
  const cr = drbg("wipe client"), sr = drbg("wipe server");
  const { client, server } = makePair({ fixture: f, clientRandom: cr, serverRandom: sr });
  runHandshake(client, server);
  // Client draws: c_eph seed (32), tweak (1), ... ; an Elligator retry draws again, so find the key used.
  const zeroed = (b: Uint8Array) => b.every((x) => x === 0);
  assert.ok(cr.draws.some((d) => d.length === 32 && zeroed(d)), "client ephemeral seed wiped");
  assert.ok(cr.draws.some((d) => d.length === 64 && zeroed(d)), "ML-KEM keygen seed wiped");
  assert.ok(zeroed(sr.draws[0]!), "server ephemeral key wiped");
  assert.equal(hex(f.token), hex(token));
  assert.equal(hex(f.clientKey.privateKey), hex(clientKey));
});

Deno.test("ClientHandshake refuses bad options and a second hello()", () => {
  const f = fixture();
  const base = {
    serverPublicKey: f.serverPublicKey,
    credentials: { userId: "a", clientKey: f.clientKey.privateKey, token: f.token },
    now: () => 0,
  };
  assertThrowsWith(
    () => new ClientHandshake({ ...base, serverPublicKey: new Uint8Array(32) }),
    RangeError,
    "Cannot use server public key: length 32 is not 64",
  );
  assertThrowsWith(
    () => new ClientHandshake({ ...base, credentials: { ...base.credentials, userId: "" } }),
    RangeError,
    "Cannot use user id: 0 bytes is outside 1..255",
  );
  assertThrowsWith(
    () =>
      new ClientHandshake({
        ...base,
        credentials: { ...base.credentials, token: new Uint8Array(16) },
      }),
    RangeError,
    "Cannot use token: length 16 is not 32",
  );
  assertThrowsWith(
    () => new ClientHandshake({ ...base, kex: [] }),
    RangeError,
    "Cannot use key exchange list: it is empty",
  );
  assertThrowsWith(
    () => new ClientHandshake({ ...base, aead: ["rot13" as never] }),
    TypeError,
    'Cannot use AEAD "rot13": not one of aes-256-gcm, aes-128-gcm, chacha20-poly1305',
  );
  assertThrowsWith(
    () => new ClientHandshake({ ...base, paddingMax: 256 }),
    RangeError,
    "Cannot use padding maximum 256: not an integer in 0..255",
  );
  const c = new ClientHandshake(base);
  assert.throws(
    () => c.push(new Uint8Array(1)),
    (e) => e instanceof ProtocolError && e.code === "BAD_STATE",
  );
  c.hello();
  assert.throws(() => c.hello(), (e) => e instanceof ProtocolError && e.code === "BAD_STATE");
});

Deno.test("paddingMax 0 gives the smallest Hello", () => {
  const f = fixture();
  const c = new ClientHandshake({
    serverPublicKey: f.serverPublicKey,
    credentials: { userId: "a", clientKey: f.clientKey.privateKey, token: f.token },
    now: () => 0,
    kex: ["x25519"],
    aead: ["aes-256-gcm"],
    paddingMax: 0,
  });
  assert.equal(c.hello().length, HELLO_MIN_BYTES);
});
