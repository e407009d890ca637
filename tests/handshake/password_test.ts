/**
 * Password logins (SCRAM-SHA-256 bound to the transcript): docs/PROTOCOL.md
 * part 2 (handshake) section 14.
 */
import { strict as assert } from "node:assert";
import { hash, hkdfExpandLabel, hkdfExtract } from "../../lib/crypto/mod.ts";
import { scramCheckProof } from "../../lib/crypto/scram.ts";
import { ClientHandshake, type UserRecord } from "../../lib/handshake/mod.ts";
import { hex } from "../crypto/_hex.ts";
import {
  drbg,
  expectClient,
  expectServer,
  fixture,
  makePair,
  passwordFixture,
  runHandshake,
} from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

const pw = passwordFixture("password test");

function passwordUser(label: string): { f: ReturnType<typeof fixture>; record: UserRecord } {
  const f = fixture(label);
  const { token: _, ...rest } = f.record;
  return { f, record: { ...rest, password: pw.verifier } };
}

Deno.test("a password user logs in with the password's SCRAM keys and the client key", () => {
  const { f, record } = passwordUser("password login");
  const { client, server } = makePair({
    fixture: f,
    users: [record],
    credentials: { password: pw.keys },
    clientKex: ["x25519"],
  });
  const t = runHandshake(client, server);
  assert.equal(t.serverUserId, "alice");
  assert.equal(hex(t.client.clientToServer), hex(t.server.clientToServer));
  assert.equal(hex(t.client.transcriptHash), hex(t.server.transcriptHash));
});

Deno.test("the password proof is SCRAM's ClientProof over the transcript, masked under ck3", () => {
  const { f, record } = passwordUser("password spec");
  const traces = { client: new Map<string, Uint8Array>() };
  const { client, server } = makePair({
    fixture: f,
    users: [record],
    credentials: { password: pw.keys },
    clientKex: ["x25519"],
    trace: traces,
  });
  const t = runHandshake(client, server);
  const ck3 = traces.client.get("ck3")!, h3 = traces.client.get("h3")!;
  // The field is the 32 bytes after the key tag, at the end of the Response.
  const field = t.response.subarray(t.response.length - 32);
  const mask = hkdfExpandLabel(ck3, "password proof", h3, 32);
  const proof = field.map((b, i) => b ^ mask[i]!);
  const auth = new Uint8Array([
    ...new TextEncoder().encode("NitroSocks v1 SCRAM-SHA-256\0"),
    ...h3,
  ]);
  const check = scramCheckProof(pw.verifier.storedKey, auth, proof);
  assert.equal(check.ok, true);
  // ck4 = Extract(ck3, ClientKey ‖ ServerKey).
  const ck4 = hkdfExtract(ck3, new Uint8Array([...pw.keys.clientKey, ...pw.keys.serverKey]));
  assert.equal(hex(ck4), hex(traces.client.get("ck4")!));
  assert.equal(hex(hash(check.clientKey)), hex(pw.verifier.storedKey));
});

Deno.test("a password proof replayed into another handshake is refused", () => {
  const { f, record } = passwordUser("password replay");
  const first = makePair({
    fixture: f,
    users: [record],
    credentials: { password: pw.keys },
    clientKex: ["x25519"],
    clientRandom: drbg("replay client 1"),
  });
  const t = runHandshake(first.client, first.server);
  const field = t.response.subarray(t.response.length - 32);
  // A second handshake (fresh nonces): splice the first proof field into its Response.
  const second = makePair({
    fixture: f,
    users: [record],
    credentials: { password: pw.keys },
    clientKex: ["x25519"],
    clientRandom: drbg("replay client 2"),
  });
  const sh = expectServer(second.server.push(second.client.hello()), "send").bytes;
  const response = expectClient(second.client.push(sh), "send").bytes.slice();
  response.set(field, response.length - 32);
  const step = second.server.push(response);
  assert.equal(step.type, "reject");
  assert.match((step as { reason: string }).reason, /wrong password for user "alice"/);
});

Deno.test("a password login relayed to a server with another key is refused", () => {
  // The same user, password and client key on two servers: the proof for one
  // does not verify at the other, because h3 covers the server's public key.
  const { f, record } = passwordUser("relay a");
  const b = fixture("relay b");
  const a = makePair({
    fixture: f,
    users: [record],
    credentials: { password: pw.keys },
    clientKex: ["x25519"],
  });
  const t = runHandshake(a.client, a.server);
  const field = t.response.subarray(t.response.length - 32);
  const other = makePair({
    fixture: { ...b, clientKey: f.clientKey, record },
    users: [record],
    credentials: { password: pw.keys, clientKey: f.clientKey.privateKey },
    clientKex: ["x25519"],
  });
  const sh = expectServer(other.server.push(other.client.hello()), "send").bytes;
  const response = expectClient(other.client.push(sh), "send").bytes.slice();
  assert.notEqual(hex(response.subarray(response.length - 32)), hex(field));
  response.set(field, response.length - 32);
  assert.equal(other.server.push(response).type, "reject");
});

Deno.test("ClientHandshake refuses credentials with both or neither second factor", () => {
  const f = fixture();
  const base = { serverPublicKey: f.serverPublicKey, now: () => 0 };
  assertThrowsWith(
    () =>
      new ClientHandshake({
        ...base,
        credentials: {
          userId: "a",
          clientKey: f.clientKey.privateKey,
          token: f.token,
          password: pw.keys,
        },
      }),
    TypeError,
    "exactly one second factor",
  );
  assertThrowsWith(
    () =>
      new ClientHandshake({
        ...base,
        credentials: { userId: "a", clientKey: f.clientKey.privateKey },
      }),
    TypeError,
    "exactly one second factor",
  );
});
