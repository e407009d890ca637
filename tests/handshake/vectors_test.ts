import { strict as assert } from "node:assert";
import { hmac } from "@noble/hashes/hmac.js";
import { CURVES, withCurves } from "../support/curves.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import { hkdfExpandLabel, hkdfExtract } from "../../lib/crypto/mod.ts";
import { representativeToPublicKey } from "../../lib/crypto/elligator.ts";
import { ed25519Verify, x25519SharedSecret } from "../../lib/crypto/keys.ts";
import { totp } from "../../lib/crypto/totp.ts";
import { saltedPassword } from "../../lib/crypto/scram.ts";
import {
  ClientHandshake,
  decodeServerIdentity,
  decodeTicketKeys,
  ReplayGuard,
  ServerHandshake,
  TicketKeyring,
  type UserRecord,
} from "../../lib/handshake/mod.ts";
import {
  decodeHelloBody,
  decodeResponseBody,
  decodeResultBody,
  decodeServerHelloBody,
} from "../../lib/handshake/messages.ts";
import { assertBytes, hex, unhex } from "../crypto/_hex.ts";
import {
  buildVectors,
  type HandshakeVectorCase,
  type HandshakeVectorFile,
  VECTOR_FILE,
} from "./gen_vectors.ts";
import { drbg, expectClient, expectServer } from "./_helpers.ts";
import { CK0, mixHash, openSpecFrame } from "./_spec.ts";

const file = JSON.parse(Deno.readTextFileSync(VECTOR_FILE)) as HandshakeVectorFile;
const enc = new TextEncoder();

Deno.test("handshake_v1.json equals a fresh run with the same keys, randomness and clock", () => {
  assert.deepEqual(
    buildVectors(),
    file,
    "regenerate only for a deliberate protocol change (see gen_vectors.ts)",
  );
  assert.equal(file.cases.length, 5);
  assert.deepEqual(file.cases[4]!.inputs.recordPadding, { client: "random", server: "bucket" });
  assert.equal(file.cases[4]!.secrets.recordPadding, "bucket");
  assert.notEqual(file.cases[2]!.inputs.password, null);
  assert.notEqual(file.cases[3]!.inputs.jwt, null);
  assert.equal(file.cases[1]!.secrets.kex, "x25519-mlkem768");
});

function identityOf(c: HandshakeVectorCase) {
  return decodeServerIdentity(unhex(c.inputs.serverSignSeed + c.inputs.serverDhPrivate));
}

for (const c of file.cases) {
  for (const [be, curves] of CURVES) {
    Deno.test(`[${c.name}] our server, alone, answers the vector's client messages byte for byte (${be} curves)`, () =>
      withCurves(curves, () => {
        const pw = c.inputs.password;
        const jwt = c.inputs.jwt;
        const user: UserRecord = {
          userId: c.inputs.userId,
          publicKey: unhex(c.inputs.clientPublicKey),
          ...(pw !== null
            ? { password: { storedKey: unhex(pw.storedKey), serverKey: unhex(pw.serverKey) } }
            : jwt !== null
            ? { jwt: { keys: { hs256: [unhex(jwt.hs256Secret)] } } }
            : { token: unhex(c.inputs.token!) }),
        };
        const resumption = c.inputs.serverResumption;
        if (c.inputs.totpSecret !== null) user.totpSecret = unhex(c.inputs.totpSecret);
        const server = new ServerHandshake({
          identity: identityOf(c),
          lookupUser: (id) => (id === user.userId ? user : undefined),
          replay: new ReplayGuard(),
          now: () => c.inputs.serverNowMs,
          random: drbg(c.inputs.serverRandom),
          kex: c.inputs.serverKex,
          aead: c.inputs.serverAead,
          ...(c.inputs.recordPadding === null
            ? {}
            : { recordPadding: c.inputs.recordPadding.server }),
          ...(resumption === null ? {} : {
            tickets: new TicketKeyring(decodeTicketKeys(resumption.ticketKeys)),
            lookupSession: () => undefined,
          }),
        });
        assert.equal(
          hex(expectServer(server.push(unhex(c.messages.hello)), "send").bytes),
          c.messages.serverHello,
        );
        assert.equal(
          hex(expectServer(server.push(unhex(c.messages.response)), "send").bytes),
          c.messages.result,
        );
        const done = expectServer(server.push(unhex(c.messages.finish)), "done");
        assert.equal(done.secrets.ticket, undefined, "a keyring seals no ticket for a JWT login");
        assert.equal(hex(done.secrets.clientToServer), c.secrets.clientToServer);
        assert.equal(hex(done.secrets.serverToClient), c.secrets.serverToClient);
        assert.equal(hex(done.secrets.resumptionSecret), c.secrets.resumptionSecret);
        assert.equal(done.secrets.recordPadding ?? null, c.secrets.recordPadding);
      }));
  }

  Deno.test(`[${c.name}] our client, alone, produces the vector's client messages byte for byte`, () => {
    const client = new ClientHandshake({
      serverPublicKey: unhex(c.inputs.serverPublicKey),
      credentials: {
        userId: c.inputs.userId,
        clientKey: unhex(c.inputs.clientPrivateKey),
        ...(c.inputs.password !== null
          ? {
            password: {
              clientKey: unhex(c.inputs.password.clientKey),
              serverKey: unhex(c.inputs.password.serverKey),
            },
          }
          : c.inputs.jwt !== null
          ? { jwt: c.inputs.jwt.token }
          : { token: unhex(c.inputs.token!) }),
        ...(c.inputs.totpSecret === null ? {} : { totpSecret: unhex(c.inputs.totpSecret) }),
      },
      kex: c.inputs.clientKex,
      aead: c.inputs.clientAead,
      ...(c.inputs.recordPadding === null ? {} : { recordPadding: c.inputs.recordPadding.client }),
      now: () => c.inputs.clientNowMs,
      random: drbg(c.inputs.clientRandom),
    });
    assert.equal(hex(client.hello()), c.messages.hello);
    assert.equal(
      hex(expectClient(client.push(unhex(c.messages.serverHello)), "send").bytes),
      c.messages.response,
    );
    const done = expectClient(client.push(unhex(c.messages.result)), "done");
    assert.equal(hex(done.send), c.messages.finish);
    assert.equal(hex(done.secrets.transcriptHash), c.secrets.transcriptHash);
    assert.equal(done.secrets.recordPadding ?? null, c.secrets.recordPadding);
  });

  Deno.test(`[${c.name}] the vector follows the written key schedule (independent re-derivation)`, () => {
    const tc = Object.fromEntries(Object.entries(c.trace.client).map(([k, v]) => [k, unhex(v)]));
    const m = Object.fromEntries(
      Object.entries(c.messages).map(([k, v]) => [k, unhex(v)]),
    ) as Record<keyof typeof c.messages, Uint8Array>;
    const id = identityOf(c);
    const spk = unhex(c.inputs.serverPublicKey);
    // Hello: representative, es, ck1, hc, sealed body.
    const repr = m.hello.subarray(0, 32);
    const cEph = representativeToPublicKey(repr);
    assertBytes(cEph, tc.c_eph_public!);
    const es = x25519SharedSecret(id.dhPrivate, cEph);
    assertBytes(es, x25519SharedSecret(tc.c_eph_private!, spk.subarray(32)));
    assertBytes(es, tc.es!);
    const ck1 = hkdfExtract(CK0, es);
    assertBytes(ck1, tc.ck1!);
    const hc = mixHash(mixHash(CK0, spk), repr);
    const hello = decodeHelloBody(openSpecFrame(ck1, "hello", hc, m.hello.subarray(64)));
    assert.deepEqual(hello.versions, [1]);
    assert.equal(hello.timestampMs, c.inputs.clientNowMs);
    assert.deepEqual(hello.kex, c.inputs.clientKex.map((k) => (k === "x25519" ? 1 : 2)));
    const h1 = mixHash(hc, m.hello.subarray(64));
    assertBytes(h1, tc.h1!);
    // ServerHello: opens under es, signed with the pinned Ed25519 key.
    const sh = decodeServerHelloBody(openSpecFrame(ck1, "server hello", h1, m.serverHello));
    const signed = new Uint8Array([
      ...enc.encode("NitroSocks v1 ServerHello signature\0"),
      ...mixHash(h1, sh.signed),
    ]);
    assert.ok(ed25519Verify(spk.subarray(0, 32), signed, sh.signature));
    const h2 = mixHash(h1, m.serverHello);
    assertBytes(h2, tc.h2!);
    const ee = x25519SharedSecret(tc.c_eph_private!, sh.serverEphemeral);
    assertBytes(ee, tc.ee!);
    const ck2 = hkdfExtract(
      ck1,
      tc.mlkem_ss === undefined ? ee : new Uint8Array([...ee, ...tc.mlkem_ss]),
    );
    assertBytes(ck2, tc.ck2!);
    // Response: sealed body, then key tag (after se) and token tag (after the PSK).
    const sealed = m.response.subarray(0, m.response.length - 64);
    const response = decodeResponseBody(openSpecFrame(ck2, "client hs", h2, sealed));
    assert.equal(response.userId, c.inputs.userId);
    if (c.inputs.totpSecret !== null) {
      assert.equal(
        response.totpCode,
        Number(totp(unhex(c.inputs.totpSecret), c.inputs.clientNowMs)),
      );
    } else assert.equal(response.totpCode, undefined);
    const h3 = mixHash(h2, sealed);
    const ck3 = hkdfExtract(
      ck2,
      x25519SharedSecret(unhex(c.inputs.clientPrivateKey), sh.serverEphemeral),
    );
    const tag = (ck: Uint8Array, label: string, h: Uint8Array) =>
      hmac(sha256, hkdfExpandLabel(ck, label, new Uint8Array(0), 32), h);
    assertBytes(m.response.subarray(sealed.length, sealed.length + 32), tag(ck3, "key tag", h3));
    const pw = c.inputs.password;
    const jwt = c.inputs.jwt;
    assert.equal(response.jwt, jwt?.token, "a JWT login carries its token in extension 4");
    let ck4: Uint8Array;
    if (jwt !== null) {
      // Section 14.6: jwt_psk = SHA-256("NitroSocks v1 jwt" ‖ 0x00 ‖ token) in place of the token.
      const psk = sha256(
        new Uint8Array([...enc.encode("NitroSocks v1 jwt\0"), ...enc.encode(jwt.token)]),
      );
      ck4 = hkdfExtract(ck3, psk);
      assertBytes(m.response.subarray(sealed.length + 32), tag(ck4, "token tag", h3));
    } else if (pw === null) {
      ck4 = hkdfExtract(ck3, unhex(c.inputs.token!));
      assertBytes(m.response.subarray(sealed.length + 32), tag(ck4, "token tag", h3));
    } else {
      // Section 14: ClientProof over AuthMessage = "NitroSocks v1 SCRAM-SHA-256" ‖ 0x00 ‖ h3,
      // masked under ck3; ck4 = Extract(ck3, ClientKey ‖ ServerKey).
      const salted = unhex(pw.saltedPassword);
      const clientKey = hmac(sha256, salted, enc.encode("Client Key"));
      const serverKey = hmac(sha256, salted, enc.encode("Server Key"));
      assert.equal(hex(clientKey), pw.clientKey);
      assert.equal(hex(serverKey), pw.serverKey);
      assert.equal(hex(sha256(clientKey)), pw.storedKey);
      const auth = new Uint8Array([...enc.encode("NitroSocks v1 SCRAM-SHA-256\0"), ...h3]);
      const signature = hmac(sha256, sha256(clientKey), auth);
      const mask = hkdfExpandLabel(ck3, "password proof", h3, 32);
      const field = clientKey.map((b, i) => b ^ signature[i]! ^ mask[i]!);
      assertBytes(m.response.subarray(sealed.length + 32), field);
      ck4 = hkdfExtract(ck3, new Uint8Array([...clientKey, ...serverKey]));
    }
    assertBytes(ck4, tc.ck4!);
    const h4 = mixHash(h3, m.response.subarray(sealed.length));
    assertBytes(h4, tc.h4!);
    // Result and Finish.
    const rSealed = m.result.subarray(0, m.result.length - 32);
    const result = decodeResultBody(openSpecFrame(ck4, "server hs", h4, rSealed));
    assert.equal(hex(result.sessionId), c.secrets.sessionId);
    // Section 14.6: a JWT login's Result says resumable (session table) but announces no ticket,
    // though the server has a keyring; and nothing follows the Result MAC.
    assert.equal(result.resumable, c.inputs.serverResumption === null ? undefined : true);
    assert.equal(result.ticketFollows, undefined);
    // Section 4.7: the padding extension, 05 0001 mode, ends the Hello body (no resume extension
    // here) and the Result body; absent from both when the case sets no modes.
    const helloBody = openSpecFrame(ck1, "hello", hc, m.hello.subarray(64));
    const resultBody = openSpecFrame(ck4, "server hs", h4, rSealed);
    const modeId = { none: 0, random: 1, bucket: 2 } as const;
    const rp = c.inputs.recordPadding;
    if (rp === null) {
      assert.equal(hello.recordPadding, undefined);
      assert.equal(result.recordPadding, undefined);
    } else {
      assert.equal(
        hex(helloBody.subarray(-4)),
        `050001${hex(new Uint8Array([modeId[rp.client]]))}`,
      );
      const agreed = c.secrets.recordPadding!;
      assert.equal(hex(resultBody.subarray(-4)), `050001${hex(new Uint8Array([modeId[agreed]]))}`);
    }
    const h5 = mixHash(h4, rSealed);
    assertBytes(m.result.subarray(rSealed.length), tag(ck4, "server finished", h5));
    const h6 = mixHash(h5, m.result.subarray(rSealed.length));
    assertBytes(m.finish, tag(ck4, "client finished", h6));
    const h7 = mixHash(h6, m.finish);
    assert.equal(hex(h7), c.secrets.transcriptHash);
    assert.equal(hex(hkdfExpandLabel(ck4, "c ap traffic", h7, 32)), c.secrets.clientToServer);
    assert.equal(hex(hkdfExpandLabel(ck4, "s ap traffic", h7, 32)), c.secrets.serverToClient);
    assert.equal(hex(hkdfExpandLabel(ck4, "resumption", h7, 32)), c.secrets.resumptionSecret);
  });
}

Deno.test("the password case's SaltedPassword is PBKDF2-HMAC-SHA256 of RFC 7677's password", async () => {
  const pw = file.cases[2]!.inputs.password!;
  assert.equal(
    hex(await saltedPassword(pw.password, unhex(pw.salt), pw.iterations)),
    pw.saltedPassword,
  );
});
