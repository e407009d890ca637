/**
 * tests/vectors/handshake_resume_v1.json: resumptions with fixed keys, fixed
 * randomness and a fixed clock, every message and derived secret; checked
 * here three ways (a fresh run, each side alone, and an independent
 * re-derivation from docs/PROTOCOL.md part 2 (handshake) section 13). This file
 * also writes the vectors; regenerate only for a deliberate protocol change:
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/handshake/resume_vectors_test.ts
 *   deno fmt tests/vectors/handshake_resume_v1.json
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { chachaOpen } from "../../lib/crypto/chacha20_poly1305.ts";
import { hkdfExpandLabel, hkdfExtract } from "../../lib/crypto/mod.ts";
import { representativeToPublicKey } from "../../lib/crypto/elligator.ts";
import { ed25519Verify, x25519SharedSecret } from "../../lib/crypto/keys.ts";
import {
  type AeadId,
  ClientHandshake,
  decodeServerIdentity,
  type KexId,
  ReplayGuard,
  ServerHandshake,
  serverPublicKey,
  TicketKeyring,
} from "../../lib/handshake/mod.ts";
import { decodeServerHelloBody } from "../../lib/handshake/messages.ts";
import { assertBytes, hex, unhex } from "../crypto/_hex.ts";
import { drbg, expectClient, expectServer, fixture, runHandshake } from "./_helpers.ts";
import { CK0, mixHash, openSpecFrame } from "./_spec.ts";

/** One resumption vector as stored. */
export interface ResumeVectorCase {
  name: string;
  inputs: {
    serverSignSeed: string;
    serverDhPrivate: string;
    serverPublicKey: string;
    clientPrivateKey: string;
    clientPublicKey: string;
    token: string;
    userId: string;
    clientKex: KexId[];
    clientAead: AeadId[];
    serverKex: KexId[];
    serverAead: AeadId[];
    clientNowMs: number;
    serverNowMs: number;
    clientRandom: string;
    serverRandom: string;
    paddingMax: number;
    /** The session being resumed, as the client holds it. */
    sessionId: string;
    resumptionSecret: string;
    /** "session_id": the server has a session table; "ticket": only a ticket keyring. */
    mode: "session_id" | "ticket";
    ticket: string | null;
    ticketKeys: { id: number; key: string }[] | null;
    /** sha256-ctr label of the server keyring's nonces (the new ticket's nonce). */
    ticketRandom: string | null;
    ticketLifetimeMs: number | null;
    /** When the input ticket was sealed (its nonce: sha256-ctr of `${keys label} input ticket`). */
    ticketIssuedMs: number | null;
  };
  messages: {
    hello: string;
    serverHello: string;
    response: string;
    result: string;
    finish: string;
  };
  secrets: {
    version: number;
    kex: string;
    aead: string;
    sessionId: string;
    clientToServer: string;
    serverToClient: string;
    resumptionSecret: string;
    transcriptHash: string;
    resumed: boolean;
    ticket: string | null;
  };
  trace: { client: Record<string, string>; server: Record<string, string> };
}

/** The whole vector file. */
export interface ResumeVectorFile {
  description: string;
  regenerate: string;
  random: string;
  cases: ResumeVectorCase[];
}

const CASES: {
  name: string;
  keys: string;
  mode: "session_id" | "ticket";
  clientKex: KexId[];
  clientAead: AeadId[];
  serverKex: KexId[];
  serverAead: AeadId[];
  clientNowMs: number;
  serverNowMs: number;
}[] = [
  {
    name: "x25519, aes-256-gcm, resume by session id (session table, no ticket)",
    keys: "resume vector keys 1",
    mode: "session_id",
    clientKex: ["x25519"],
    clientAead: ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"],
    serverKex: ["x25519-mlkem768", "x25519"],
    serverAead: ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"],
    clientNowMs: 1_750_000_100_000,
    serverNowMs: 1_750_000_100_400,
  },
  {
    name: "x25519-mlkem768, chacha20-poly1305, resume by ticket (keyring only, new ticket issued)",
    keys: "resume vector keys 2",
    mode: "ticket",
    clientKex: ["x25519-mlkem768", "x25519"],
    clientAead: ["chacha20-poly1305", "aes-256-gcm"],
    serverKex: ["x25519-mlkem768", "x25519"],
    serverAead: ["chacha20-poly1305", "aes-256-gcm", "aes-128-gcm"],
    clientNowMs: 1_750_000_200_000,
    serverNowMs: 1_750_000_199_000,
  },
];

const TICKET_KEY_ID = 7;
const TICKET_LIFETIME_MS = 3_600_000;
const TICKET_AGE_MS = 600_000;

function record(m: Map<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...m].map(([k, v]) => [k, hex(v)]));
}

/** Runs every case and returns the file contents. */
export function buildVectors(): ResumeVectorFile {
  const cases = CASES.map((c): ResumeVectorCase => {
    const f = fixture(c.keys);
    const prior = drbg(`${c.keys} session`);
    const sessionId = prior(16);
    const resumptionSecret = prior(32);
    const clientRandom = `${c.keys} client`;
    const serverRandom = `${c.keys} server`;
    const ticketRandom = c.mode === "ticket" ? `${c.keys} server ticket nonces` : null;
    const ticketKey = { id: TICKET_KEY_ID, key: drbg(`${c.keys} ticket key`)(32) };
    let ticket: Uint8Array | null = null;
    if (c.mode === "ticket") {
      ticket = new TicketKeyring([ticketKey], { random: drbg(`${c.keys} input ticket`) }).seal({
        sessionId,
        resumptionSecret,
        userId: f.userId,
        issuedMs: c.serverNowMs - TICKET_AGE_MS,
      });
    }
    const traces = { client: new Map<string, Uint8Array>(), server: new Map<string, Uint8Array>() };
    const client = new ClientHandshake({
      serverPublicKey: f.serverPublicKey,
      credentials: { userId: f.userId, clientKey: f.clientKey.privateKey, token: f.token },
      kex: c.clientKex,
      aead: c.clientAead,
      now: () => c.clientNowMs,
      random: drbg(clientRandom),
      trace: (n, v) => traces.client.set(n, v),
      resume: { sessionId, resumptionSecret, ...(ticket === null ? {} : { ticket }) },
    });
    const server = new ServerHandshake({
      identity: f.identity,
      lookupUser: (id) => (id === f.userId ? f.record : undefined),
      replay: new ReplayGuard(),
      now: () => c.serverNowMs,
      random: drbg(serverRandom),
      kex: c.serverKex,
      aead: c.serverAead,
      trace: (n, v) => traces.server.set(n, v),
      ...(c.mode === "session_id"
        ? {
          lookupSession: (id: Uint8Array) =>
            hex(id) === hex(sessionId) ? { resumptionSecret, userId: f.userId } : undefined,
        }
        : {
          tickets: new TicketKeyring([ticketKey], {
            now: () => c.serverNowMs,
            random: drbg(ticketRandom!),
            lifetimeMs: TICKET_LIFETIME_MS,
          }),
        }),
    });
    const t = runHandshake(client, server);
    const s = t.client;
    return {
      name: c.name,
      inputs: {
        serverSignSeed: hex(f.identity.signSeed),
        serverDhPrivate: hex(f.identity.dhPrivate),
        serverPublicKey: hex(serverPublicKey(f.identity)),
        clientPrivateKey: hex(f.clientKey.privateKey),
        clientPublicKey: hex(f.clientKey.publicKey),
        token: hex(f.token),
        userId: f.userId,
        clientKex: c.clientKex,
        clientAead: c.clientAead,
        serverKex: c.serverKex,
        serverAead: c.serverAead,
        clientNowMs: c.clientNowMs,
        serverNowMs: c.serverNowMs,
        clientRandom,
        serverRandom,
        paddingMax: 255,
        sessionId: hex(sessionId),
        resumptionSecret: hex(resumptionSecret),
        mode: c.mode,
        ticket: ticket === null ? null : hex(ticket),
        ticketKeys: c.mode === "ticket" ? [{ id: ticketKey.id, key: hex(ticketKey.key) }] : null,
        ticketRandom,
        ticketLifetimeMs: c.mode === "ticket" ? TICKET_LIFETIME_MS : null,
        ticketIssuedMs: c.mode === "ticket" ? c.serverNowMs - TICKET_AGE_MS : null,
      },
      messages: {
        hello: hex(t.hello),
        serverHello: hex(t.serverHello),
        response: hex(t.response),
        result: hex(t.result),
        finish: hex(t.finish),
      },
      secrets: {
        version: s.version,
        kex: s.kex,
        aead: s.aead,
        sessionId: hex(s.sessionId),
        clientToServer: hex(s.clientToServer),
        serverToClient: hex(s.serverToClient),
        resumptionSecret: hex(s.resumptionSecret),
        transcriptHash: hex(s.transcriptHash),
        resumed: s.resumed,
        ticket: s.ticket === undefined ? null : hex(s.ticket),
      },
      trace: { client: record(traces.client), server: record(traces.server) },
    };
  });
  return {
    description: "NitroSocks handshake v1 resumption vectors: fixed keys, randomness and clock; " +
      "every message and derived secret. Layout and meaning: docs/PROTOCOL.md part 2 (handshake) " +
      "section 13.",
    regenerate: "deno run --allow-read=tests/vectors --allow-write=tests/vectors " +
      "tests/handshake/resume_vectors_test.ts && deno fmt tests/vectors/handshake_resume_v1.json",
    random: "sha256-ctr: block i = SHA-256(SHA-256(utf8(label)) || u32be(i)), i = 0, 1, ...; " +
      "bytes are handed out in order of the draws listed in the spec",
    cases,
  };
}

/** Where the vector file lives. */
export const VECTOR_FILE = new URL("../vectors/handshake_resume_v1.json", import.meta.url);

if (import.meta.main) {
  Deno.writeTextFileSync(VECTOR_FILE, JSON.stringify(buildVectors(), null, 2) + "\n");
  console.log(`wrote ${VECTOR_FILE.pathname}`);
}

const file = JSON.parse(Deno.readTextFileSync(VECTOR_FILE)) as ResumeVectorFile;
const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);

function identityOf(c: ResumeVectorCase) {
  return decodeServerIdentity(unhex(c.inputs.serverSignSeed + c.inputs.serverDhPrivate));
}

function serverOf(c: ResumeVectorCase): ServerHandshake {
  const i = c.inputs;
  const keys = i.ticketKeys?.map((k) => ({ id: k.id, key: unhex(k.key) }));
  const user = { userId: i.userId, publicKey: unhex(i.clientPublicKey), token: unhex(i.token) };
  return new ServerHandshake({
    identity: identityOf(c),
    lookupUser: (id) => (id === i.userId ? user : undefined),
    replay: new ReplayGuard(),
    now: () => i.serverNowMs,
    random: drbg(i.serverRandom),
    kex: i.serverKex,
    aead: i.serverAead,
    ...(i.mode === "session_id"
      ? {
        lookupSession: (id: Uint8Array) =>
          hex(id) === i.sessionId
            ? { resumptionSecret: unhex(i.resumptionSecret), userId: i.userId }
            : undefined,
      }
      : {
        tickets: new TicketKeyring(keys!, {
          now: () => i.serverNowMs,
          random: drbg(i.ticketRandom!),
          lifetimeMs: i.ticketLifetimeMs!,
        }),
      }),
  });
}

Deno.test("handshake_resume_v1.json equals a fresh run with the same keys, randomness and clock", () => {
  assert.deepEqual(
    buildVectors(),
    file,
    "regenerate only for a deliberate protocol change (see resume_vectors_test.ts)",
  );
  assert.deepEqual(file.cases.map((c) => c.inputs.mode), ["session_id", "ticket"]);
  assert.ok(file.cases.every((c) => c.secrets.resumed));
  assert.equal(file.cases[0]!.secrets.ticket, null);
  assert.notEqual(file.cases[1]!.secrets.ticket, null);
  assert.equal(file.cases[1]!.secrets.kex, "x25519-mlkem768");
});

for (const c of file.cases) {
  Deno.test(`[${c.name}] our server, alone, answers the vector's client messages byte for byte`, () => {
    const server = serverOf(c);
    assert.equal(
      hex(expectServer(server.push(unhex(c.messages.hello)), "send").bytes),
      c.messages.serverHello,
    );
    assert.equal(
      hex(expectServer(server.push(unhex(c.messages.response)), "send").bytes),
      c.messages.result,
    );
    const done = expectServer(server.push(unhex(c.messages.finish)), "done");
    assert.equal(done.resumed, true);
    assert.equal(done.userId, c.inputs.userId);
    assert.equal(hex(done.secrets.sessionId), c.inputs.sessionId);
    assert.equal(hex(done.secrets.clientToServer), c.secrets.clientToServer);
    assert.equal(hex(done.secrets.serverToClient), c.secrets.serverToClient);
    assert.equal(hex(done.secrets.resumptionSecret), c.secrets.resumptionSecret);
    assert.equal(
      done.secrets.ticket === undefined ? null : hex(done.secrets.ticket),
      c.secrets.ticket,
    );
    assert.equal(done.secrets.resumable, true);
  });

  Deno.test(`[${c.name}] our client, alone, produces the vector's client messages byte for byte`, () => {
    const i = c.inputs;
    const client = new ClientHandshake({
      serverPublicKey: unhex(i.serverPublicKey),
      credentials: {
        userId: i.userId,
        clientKey: unhex(i.clientPrivateKey),
        token: unhex(i.token),
      },
      kex: i.clientKex,
      aead: i.clientAead,
      now: () => i.clientNowMs,
      random: drbg(i.clientRandom),
      resume: {
        sessionId: unhex(i.sessionId),
        resumptionSecret: unhex(i.resumptionSecret),
        ...(i.ticket === null ? {} : { ticket: unhex(i.ticket) }),
      },
    });
    assert.equal(hex(client.hello()), c.messages.hello);
    assert.equal(
      hex(expectClient(client.push(unhex(c.messages.serverHello)), "send").bytes),
      c.messages.response,
    );
    const done = expectClient(client.push(unhex(c.messages.result)), "done");
    assert.equal(hex(done.send), c.messages.finish);
    assert.equal(hex(done.secrets.transcriptHash), c.secrets.transcriptHash);
    assert.equal(hex(done.secrets.resumptionSecret), c.secrets.resumptionSecret);
    assert.equal(
      done.secrets.ticket === undefined ? null : hex(done.secrets.ticket),
      c.secrets.ticket,
    );
    assert.equal(done.secrets.resumable, true);
  });

  Deno.test(`[${c.name}] the vector follows the written resumption schedule (independent re-derivation)`, () => {
    const i = c.inputs;
    const tc = Object.fromEntries(Object.entries(c.trace.client).map(([k, v]) => [k, unhex(v)]));
    const m = Object.fromEntries(
      Object.entries(c.messages).map(([k, v]) => [k, unhex(v)]),
    ) as Record<keyof typeof c.messages, Uint8Array>;
    const tag = (ck: Uint8Array, label: string, h: Uint8Array) =>
      hmac(sha256, hkdfExpandLabel(ck, label, EMPTY, 32), h);
    const rs = unhex(i.resumptionSecret);
    const spk = unhex(i.serverPublicKey);
    const id = identityOf(c);
    const keys = i.ticketKeys?.map((k) => ({ id: k.id, key: unhex(k.key) }));
    const openTicket = (t: Uint8Array) => {
      const kid = new DataView(t.buffer, t.byteOffset).getUint32(0);
      const key = keys!.find((k) => k.id === kid)!.key;
      return chachaOpen(key, t.subarray(4, 16), t.subarray(16), t.subarray(0, 4));
    };
    const u64 = (n: number) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt(n));
      return b;
    };
    const uid = enc.encode(i.userId);

    // Hello: es, ck1, hc as in a full handshake; the body ends with the resume extension.
    const repr = m.hello.subarray(0, 32);
    const es = x25519SharedSecret(id.dhPrivate, representativeToPublicKey(repr));
    const ck1 = hkdfExtract(CK0, es);
    const hc = mixHash(mixHash(CK0, spk), repr);
    const body = openSpecFrame(ck1, "hello", hc, m.hello.subarray(64));
    const identity = unhex(i.mode === "ticket" ? i.ticket! : i.sessionId);
    const extStart = body.length - 4 - identity.length - 32;
    const extLen = 1 + identity.length + 32;
    assert.equal(
      hex(body.subarray(extStart, extStart + 4)),
      hex(new Uint8Array([0x01, extLen >> 8, extLen & 0xff, i.mode === "ticket" ? 0x02 : 0x01])),
    );
    assertBytes(body.subarray(extStart + 4, body.length - 32), identity);
    // Binder: MAC(rs, "resume binder", MixHash(hc, body before the binder)).
    assertBytes(
      body.subarray(body.length - 32),
      tag(rs, "resume binder", mixHash(hc, body.subarray(0, body.length - 32))),
    );
    assertBytes(body.subarray(body.length - 32), tc.binder!);
    if (i.mode === "ticket") {
      // The input ticket is the written ticket format: sid ‖ rs ‖ issued ‖ len ‖ user id.
      assert.equal(
        hex(openTicket(identity)),
        i.sessionId + i.resumptionSecret + hex(u64(i.ticketIssuedMs!)) +
          hex(new Uint8Array([uid.length])) + hex(uid),
      );
    }
    const h1 = mixHash(hc, m.hello.subarray(64));
    assertBytes(h1, tc.h1!);
    // ServerHello: unchanged by resumption (fresh ephemeral, signature over h1).
    const sh = decodeServerHelloBody(openSpecFrame(ck1, "server hello", h1, m.serverHello));
    const signed = new Uint8Array([
      ...enc.encode("NitroSocks v1 ServerHello signature\0"),
      ...mixHash(h1, sh.signed),
    ]);
    assert.ok(ed25519Verify(spk.subarray(0, 32), signed, sh.signature));
    const h2 = mixHash(h1, m.serverHello);
    const ee = x25519SharedSecret(tc.c_eph_private!, sh.serverEphemeral);
    const ck2 = hkdfExtract(
      ck1,
      tc.mlkem_ss === undefined ? ee : new Uint8Array([...ee, ...tc.mlkem_ss]),
    );
    assertBytes(ck2, tc.ck2!);
    // Resume Response: sealed padding only, then the resume tag under ck4 = Extract(ck2, psk).
    const sealed = m.response.subarray(0, m.response.length - 32);
    const rbody = openSpecFrame(ck2, "client hs", h2, sealed);
    assert.equal(rbody[0], rbody.length - 1);
    assert.ok(rbody.subarray(1).every((b) => b === 0));
    const h3 = mixHash(h2, sealed);
    const psk = hkdfExpandLabel(rs, "resume psk", EMPTY, 32);
    const ck4 = hkdfExtract(ck2, psk);
    assertBytes(ck4, tc.ck4!);
    assertBytes(m.response.subarray(sealed.length), tag(ck4, "resume tag", h3));
    const h4 = mixHash(h3, m.response.subarray(sealed.length));
    assertBytes(h4, tc.h4!);
    // Result: session id is the resumed one; a ticket frame follows iff announced.
    const mask = hkdfExpandLabel(ck4, "server hs mask", h4, 2);
    const ctLen = ((m.result[0]! << 8) | m.result[1]!) ^ ((mask[0]! << 8) | mask[1]!);
    const rSealed = m.result.subarray(0, 2 + ctLen);
    const mac = m.result.subarray(2 + ctLen, 2 + ctLen + 32);
    const ticketFrame = m.result.subarray(2 + ctLen + 32);
    const result = openSpecFrame(ck4, "server hs", h4, rSealed);
    assert.equal(hex(result.subarray(0, 16)), i.sessionId);
    const padEnd = 17 + result[16]!;
    // Empty extensions: ticket (0x02) announces the ticket frame; resumable (0x03).
    assert.equal(hex(result.subarray(padEnd)), i.mode === "ticket" ? "020000030000" : "030000");
    const h5 = mixHash(h4, rSealed);
    assertBytes(mac, tag(ck4, "server finished", h5));
    const h6 = mixHash(h5, mac);
    assertBytes(m.finish, tag(ck4, "client finished", h6));
    const h7 = mixHash(h6, m.finish);
    assert.equal(hex(h7), c.secrets.transcriptHash);
    assert.equal(hex(hkdfExpandLabel(ck4, "c ap traffic", h7, 32)), c.secrets.clientToServer);
    assert.equal(hex(hkdfExpandLabel(ck4, "s ap traffic", h7, 32)), c.secrets.serverToClient);
    const newRs = hkdfExpandLabel(ck4, "resumption", h7, 32);
    assert.equal(hex(newRs), c.secrets.resumptionSecret);
    assert.notEqual(hex(newRs), i.resumptionSecret);
    if (i.mode === "ticket") {
      // Ticket frame: sealed under (ck4, "ticket", h7), outside the transcript.
      const ticket = openSpecFrame(ck4, "ticket", h7, ticketFrame);
      assert.equal(hex(ticket), c.secrets.ticket);
      assert.equal(
        hex(openTicket(ticket)),
        i.sessionId + hex(newRs) + hex(u64(i.serverNowMs)) + hex(new Uint8Array([uid.length])) +
          hex(uid),
      );
    } else assert.equal(ticketFrame.length, 0);
  });
}
