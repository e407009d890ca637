/**
 * The padding extension (docs/PROTOCOL.md part 2 (handshake) section 4.7):
 * the client asks for a record padding mode in its Hello, the Result names
 * the stronger of that and the server's own, and each side's
 * `SessionSecrets.recordPadding` is what its records then use.
 */
import { strict as assert } from "node:assert";
import { ProtocolError } from "../../lib/errors.ts";
import {
  ClientHandshake,
  type PaddingMode,
  ReplayGuard,
  ServerHandshake,
  type SessionSecrets,
} from "../../lib/handshake/mod.ts";
import { agreePadding } from "../../lib/handshake/_negotiate.ts";
import {
  decodeHelloBody,
  decodeResultBody,
  encodeHelloBody,
  encodeResultBody,
} from "../../lib/handshake/messages.ts";
import { hex } from "../crypto/_hex.ts";
import { drbg, fixture, handshake, runHandshake, T0 } from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

const MODES: PaddingMode[] = ["none", "random", "bucket"];

Deno.test("the Result names the stronger of the client's and the server's padding mode", () => {
  for (const client of MODES) {
    for (const server of MODES) {
      const t = handshake({ clientRecordPadding: client, serverRecordPadding: server });
      const want = MODES[Math.max(MODES.indexOf(client), MODES.indexOf(server))];
      assert.equal(t.client.recordPadding, want, `client ${client}, server ${server}`);
      assert.equal(t.server.recordPadding, want, `client ${client}, server ${server}`);
    }
  }
});

Deno.test("a client that asks for no mode sends no extension; the server pads with its own mode", () => {
  const t = handshake({ serverRecordPadding: "bucket" });
  assert.equal(t.client.recordPadding, undefined);
  assert.equal(t.server.recordPadding, "bucket");
  const plain = handshake({});
  assert.equal(plain.client.recordPadding, undefined);
  assert.equal(plain.server.recordPadding, undefined);
  // Without the extension, the Result is the same size as before it existed.
  assert.equal(t.result.length, plain.result.length);
});

Deno.test("a server with no mode of its own answers with the client's", () => {
  const t = handshake({ clientRecordPadding: "random" });
  assert.equal(t.client.recordPadding, "random");
  assert.equal(t.server.recordPadding, "random");
});

Deno.test("the padding extension fits inside the Hello's maximum: padding is drawn from the room left", () => {
  // The Hello and every message stay within their bounds with the extension on.
  for (let i = 0; i < 20; i++) {
    const t = handshake({
      clientRecordPadding: "bucket",
      clientRandom: drbg(`room ${i}`),
      clientKex: ["x25519-mlkem768", "x25519"],
    });
    assert.equal(t.client.recordPadding, "bucket");
  }
});

Deno.test("padding extension codec: 05 0001 mode after the padding, before a resume extension", () => {
  const body = encodeHelloBody({
    versions: [1],
    kex: [1],
    aead: [1],
    nonce: new Uint8Array(32),
    timestampMs: 0,
    paddingLength: 2,
    recordPadding: 2,
    resume: { kind: "session_id", identity: new Uint8Array(16), binder: new Uint8Array(32) },
  });
  // lists 7, nonce 32, time 8, pad_len 1 + 2, then the padding extension.
  assert.equal(hex(body.subarray(50, 54)), "05000102");
  assert.equal(body[54], 0x01, "the resume extension follows, last");
  assert.equal(decodeHelloBody(body).recordPadding, 2);
  const result = encodeResultBody({
    sessionId: new Uint8Array(16),
    paddingLength: 0,
    resumable: true,
    recordPadding: 1,
  });
  assert.equal(hex(result.subarray(17)), "030000" + "05000101");
  assert.equal(decodeResultBody(result).recordPadding, 1);
  // Data of the wrong size is malformed.
  const bad = Uint8Array.from([...result.subarray(0, 20), 5, 0, 2, 1, 1]);
  assertThrowsWith(
    () => decodeResultBody(bad),
    ProtocolError,
    /padding extension length 2 is not 1/,
  );
});

Deno.test("an unknown mode from the client counts as none: the server's own mode is named", () => {
  assert.equal(agreePadding(9, "random"), "random");
  assert.equal(agreePadding(9, undefined), "none");
  assert.equal(agreePadding(2, "random"), "bucket");
  assert.equal(agreePadding(0, undefined), "none");
});

Deno.test("a client refuses an unknown record padding mode", () => {
  assertThrowsWith(
    () =>
      new ClientHandshake({
        serverPublicKey: new Uint8Array(64),
        credentials: { userId: "a", clientKey: new Uint8Array(32), token: new Uint8Array(32) },
        now: () => T0,
        recordPadding: "loud" as PaddingMode,
      }),
    TypeError,
    /Cannot use record padding "loud": not one of none, random, bucket/,
  );
});

Deno.test("a resumption asks again and gets the stronger mode again (by session id)", () => {
  const f = fixture("padding resume");
  const table = new Map<string, { resumptionSecret: Uint8Array; userId: string }>();
  const server = (label: string, own: PaddingMode) =>
    new ServerHandshake({
      identity: f.identity,
      lookupUser: (id) => (id === f.userId ? f.record : undefined),
      replay,
      now: () => T0,
      random: drbg(label),
      recordPadding: own,
      lookupSession: (id) => table.get(hex(id)),
    });
  const client = (label: string, mode: PaddingMode, resume?: SessionSecrets) =>
    new ClientHandshake({
      serverPublicKey: f.serverPublicKey,
      credentials: { userId: f.userId, clientKey: f.clientKey.privateKey, token: f.token },
      now: () => T0,
      random: drbg(label),
      recordPadding: mode,
      ...(resume === undefined
        ? {}
        : { resume: { sessionId: resume.sessionId, resumptionSecret: resume.resumptionSecret } }),
    });
  const replay = new ReplayGuard();
  const first = runHandshake(client("c1", "random"), server("s1", "none"));
  assert.equal(first.client.recordPadding, "random");
  table.set(hex(first.server.sessionId), {
    resumptionSecret: first.server.resumptionSecret,
    userId: first.serverUserId,
  });
  // The server is now set to bucket: the resumed session pads with bucket, both sides.
  const again = runHandshake(client("c2", "random", first.client), server("s2", "bucket"));
  assert.equal(again.client.resumed, true);
  assert.equal(again.client.recordPadding, "bucket");
  assert.equal(again.server.recordPadding, "bucket");
});
