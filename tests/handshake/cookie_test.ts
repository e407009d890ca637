/**
 * Cookies under load (docs/PROTOCOL.md part 2 section 15): the vectors
 * recomputed from the spec text with @noble directly; a server under load
 * answers a Hello without the cookie with a cookie reply and no public-key
 * work at all; the client takes the cookie from the reply and its next
 * Hello goes through; a cookie is bound to its source and to the current or
 * previous secret; a Hello without mac1 is a probe before any X25519.
 */
import { strict as assert } from "node:assert";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import {
  ClientHandshake,
  COOKIE_REPLY_BYTES,
  COOKIE_SECRET_MS,
  CookieJar,
  type HelloMacs,
  ReplayGuard,
  ServerHandshake,
} from "../../lib/handshake/mod.ts";
import { openCookieReply } from "../../lib/handshake/cookie.ts";
import { setCurveBackend } from "../../lib/crypto/keys.ts";
import { hex } from "../crypto/_hex.ts";
import { cookieCases } from "./gen_cookie_vectors.ts";
import { drbg, fixture, T0 } from "./_helpers.ts";

const enc = new TextEncoder();
const unhex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const cat = (...p: Uint8Array[]) => {
  const out = new Uint8Array(p.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of p) (out.set(x, at), at += x.length);
  return out;
};
const mac16 = (k: Uint8Array, ...d: Uint8Array[]) => hmac(sha256, k, cat(...d)).subarray(0, 16);

const vectors: Record<string, string>[] = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/cookie_v1.json", import.meta.url)),
).cases;

Deno.test("cookie vectors: the stored file is what the library makes", () => {
  assert.deepEqual(cookieCases(), vectors);
});

Deno.test("cookie vectors follow the spec text (independent recomputation)", () => {
  for (const v of vectors) {
    const pub = unhex(v.server_public_key!);
    const mac1Key = sha256(cat(enc.encode("ns1 mac1"), pub));
    const replyKey = sha256(cat(enc.encode("ns1 cookie"), pub));
    assert.equal(hex(mac1Key), v.mac1_key);
    assert.equal(hex(replyKey), v.reply_key);
    const repr = unhex(v.repr!), len = unhex(v.masked_len!);
    const mac1 = mac16(mac1Key, repr, len);
    assert.equal(hex(mac1), v.mac1);
    assert.equal(
      hex(mac16(unhex(v.ephemeral_private!), enc.encode("ns1 mac2 filler"))),
      v.mac2_without_cookie,
    );
    const cookie = mac16(unhex(v.cookie_secret!), enc.encode(v.source!));
    assert.equal(hex(cookie), v.cookie);
    assert.equal(hex(mac16(cookie, repr, len, mac1)), v.mac2_with_cookie);
    const nonce = unhex(v.reply_nonce!);
    const reply = cat(nonce, xchacha20poly1305(replyKey, nonce, mac1).encrypt(cookie));
    assert.equal(reply.length, COOKIE_REPLY_BYTES);
    assert.equal(hex(reply), v.cookie_reply);
    assert.equal(hex(openCookieReply(replyKey, reply, mac1)!), v.cookie);
    // Sealed to this Hello: another mac1 does not open it.
    assert.equal(openCookieReply(replyKey, reply, new Uint8Array(16)), undefined);
  }
});

/** Counts X25519 and Ed25519 operations while `fn` runs. */
function countingCurves<T>(fn: () => T): { result: T; ops: number } {
  let ops = 0;
  const prev = setCurveBackend({
    name: "counting",
    x25519: (a, b) => (ops++, x25519.getSharedSecret(a, b)),
    x25519PublicKey: (a) => (ops++, x25519.getPublicKey(a)),
    ed25519Sign: (seed, m) => (ops++, ed25519.sign(m, seed)),
  });
  try {
    return { result: fn(), ops };
  } finally {
    setCurveBackend(prev);
  }
}

function pair(
  underLoad: boolean,
  cookie?: Uint8Array,
  source = "192.0.2.7",
  jar = new CookieJar(fixture().serverPublicKey, { random: drbg("jar") }),
) {
  const f = fixture();
  const client = new ClientHandshake({
    serverPublicKey: f.serverPublicKey,
    credentials: { userId: f.userId, clientKey: f.clientKey.privateKey, token: f.token },
    now: () => T0,
    ...(cookie === undefined ? {} : { cookie }),
  });
  const server = new ServerHandshake({
    identity: f.identity,
    lookupUser: (id) => (id === f.userId ? f.record : undefined),
    replay: new ReplayGuard(),
    now: () => T0,
    cookie: (h: HelloMacs) => {
      if (!underLoad || jar.checkMac2(source, h.repr, h.maskedLen, h.mac1, h.mac2)) return;
      return jar.reply(source, h.mac1);
    },
  });
  return { client, server, jar };
}

Deno.test("under load, a Hello without the cookie gets a cookie reply and no public-key work", () => {
  // Many Hellos, the reply cut anywhere: its first two bytes unmask to a ServerHello length
  // now and then (about 1 in 50), and the client must still see a cookie reply.
  for (let i = 0; i < 40; i++) {
    const c = pair(true);
    const reply = (c.server.push(c.client.hello()) as { bytes: Uint8Array }).bytes;
    const cut = [1, 2, 10, 55][i % 4]!;
    assert.equal(c.client.push(reply.subarray(0, cut)).type, "need_more", `cut ${cut}`);
    assert.equal(c.client.push(reply.subarray(cut)).type, "cookie", `cut ${cut}`);
  }
  const { client, server } = pair(true);
  const hello = client.hello();
  const { result: step, ops } = countingCurves(() => server.push(hello));
  assert.equal(step.type, "cookie");
  assert.equal(ops, 0, "no X25519, ML-KEM decapsulation or signature before the cookie");
  // The count is real: not under load, the same Hello costs X25519s and a signature.
  const calm = pair(false);
  assert.ok(countingCurves(() => calm.server.push(calm.client.hello())).ops >= 3);
  const reply = (step as { bytes: Uint8Array }).bytes;
  assert.equal(reply.length, COOKIE_REPLY_BYTES);
  // The client recognises it, split anyhow.
  assert.equal(client.push(reply.subarray(0, 10)).type, "need_more");
  const got = client.push(reply.subarray(10));
  assert.equal(got.type, "cookie");
});

Deno.test("the cookie from the reply lets the next Hello through; its handshake completes", () => {
  const first = pair(true);
  const step = first.server.push(first.client.hello());
  const got = first.client.push((step as { bytes: Uint8Array }).bytes);
  assert.equal(got.type, "cookie");
  const cookie = (got as { cookie: Uint8Array }).cookie;
  const second = pair(true, cookie, "192.0.2.7", first.jar);
  let s = second.server.push(second.client.hello());
  assert.equal(s.type, "send");
  let c = second.client.push((s as { bytes: Uint8Array }).bytes);
  assert.equal(c.type, "send");
  s = second.server.push((c as { bytes: Uint8Array }).bytes);
  assert.equal(s.type, "send");
  c = second.client.push((s as { bytes: Uint8Array }).bytes);
  assert.equal(c.type, "done");
});

Deno.test("a cookie is bound to its source and to the current or previous secret", () => {
  let now = 0;
  const jar = new CookieJar(fixture().serverPublicKey, { now: () => now });
  const cookie = jar.cookieFor("192.0.2.7");
  const m = { repr: new Uint8Array(32).fill(1), len: new Uint8Array(2), mac1: new Uint8Array(16) };
  const mac2 = mac16(cookie, m.repr, m.len, m.mac1);
  assert.ok(jar.checkMac2("192.0.2.7", m.repr, m.len, m.mac1, mac2));
  assert.ok(!jar.checkMac2("192.0.2.8", m.repr, m.len, m.mac1, mac2), "another source");
  now += COOKIE_SECRET_MS;
  assert.ok(jar.checkMac2("192.0.2.7", m.repr, m.len, m.mac1, mac2), "the previous secret");
  now += COOKIE_SECRET_MS;
  assert.ok(!jar.checkMac2("192.0.2.7", m.repr, m.len, m.mac1, mac2), "two secrets ago");
});

Deno.test("a Hello whose mac1 is wrong is a probe before any X25519, loaded or not", () => {
  for (const underLoad of [false, true]) {
    const { client, server } = pair(underLoad);
    const hello = client.hello();
    hello[40]! ^= 1; // inside mac1
    const { result: step, ops } = countingCurves(() => server.push(hello));
    assert.equal(step.type, "probe");
    assert.match((step as { reason: string }).reason, /mac1/);
    assert.equal(ops, 0);
  }
});

Deno.test("a client pinned to another key, or a prober, never gets a cookie reply", () => {
  const other = fixture("someone else");
  const client = new ClientHandshake({
    serverPublicKey: other.serverPublicKey,
    credentials: { userId: "x", clientKey: other.clientKey.privateKey, token: other.token },
    now: () => T0,
  });
  const { server } = pair(true);
  assert.equal(server.push(client.hello()).type, "probe");
  const { server: s2 } = pair(true);
  const probe = enc.encode(`GET / HTTP/1.1\r\nHost: a\r\n${"X-Pad: y\r\n".repeat(8)}\r\n`);
  assert.equal(s2.push(probe).type, "probe");
});
