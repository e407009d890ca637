/**
 * Builds tests/vectors/handshake_v1.json: whole handshakes with fixed keys,
 * fixed randomness and a fixed clock, every message and derived secret.
 * vectors_test.ts rebuilds it and compares; to regenerate after a deliberate
 * protocol change:
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/handshake/gen_vectors.ts
 *   deno fmt tests/vectors/handshake_v1.json
 *
 * @module
 */
import {
  type AeadId,
  decodeTicketKeys,
  type KexId,
  type PaddingMode,
  serverPublicKey,
  TicketKeyring,
  type UserRecord,
} from "../../lib/handshake/mod.ts";
import { signJwt } from "../../lib/crypto/jwt.ts";
import { scramClientKeys, scramStoredKey } from "../../lib/crypto/scram.ts";
import { hex, unhex } from "../crypto/_hex.ts";
import { drbg, fixture, makePair, runHandshake } from "./_helpers.ts";

/** One vector case as stored. */
export interface HandshakeVectorCase {
  name: string;
  inputs: {
    serverSignSeed: string;
    serverDhPrivate: string;
    serverPublicKey: string;
    clientPrivateKey: string;
    clientPublicKey: string;
    /** The token, or null when the user logs in with a password or a JWT. */
    token: string | null;
    /**
     * A JWT login (section 14.6): the compact token and the HS256 secret that
     * signed it (the user's record holds the secret); null otherwise.
     */
    jwt: { token: string; hs256Secret: string } | null;
    /**
     * The server's ticket keyring (section 13.6 key file) and session table,
     * or null when it has neither. A JWT login gets no ticket from it.
     */
    serverResumption: { ticketKeys: string; sessionTable: true } | null;
    /** The password login's SCRAM-SHA-256 values, or null when the user has a token. */
    password: PasswordVectorInputs | null;
    totpSecret: string | null;
    /**
     * The record padding modes (section 4.7): the one the client asks for in
     * its Hello and the server's own; null when neither side sets one (no
     * padding extension in either message).
     */
    recordPadding: { client: PaddingMode; server: PaddingMode } | null;
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
    /** The record padding mode the Result names, or null without a padding extension. */
    recordPadding: PaddingMode | null;
  };
  trace: { client: Record<string, string>; server: Record<string, string> };
}

/** A password case's inputs: the password, salt and count, and every SCRAM key from them. */
export interface PasswordVectorInputs {
  password: string;
  salt: string;
  iterations: number;
  /** PBKDF2-HMAC-SHA256(password, salt, iterations), 32 bytes (the test recomputes it). */
  saltedPassword: string;
  clientKey: string;
  serverKey: string;
  storedKey: string;
}

/** RFC 7677's password, salt and count, so the SCRAM keys can be checked against it too. */
export const VECTOR_PASSWORD = {
  password: "pencil",
  salt: "5b6d99689d12358eeca04b141236fa81",
  iterations: 4096,
  saltedPassword: "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d",
} as const;

function passwordInputs(): PasswordVectorInputs {
  const keys = scramClientKeys(unhex(VECTOR_PASSWORD.saltedPassword));
  return {
    ...VECTOR_PASSWORD,
    clientKey: hex(keys.clientKey),
    serverKey: hex(keys.serverKey),
    storedKey: hex(scramStoredKey(keys.clientKey)),
  };
}

/** The whole vector file. */
export interface HandshakeVectorFile {
  description: string;
  regenerate: string;
  random: string;
  cases: HandshakeVectorCase[];
}

/** The JWT case's HS256 secret (32 bytes of 0x4a) and its token's claims. */
const VECTOR_JWT_SECRET = "4a".repeat(32);
const VECTOR_TICKET_KEYS = "7:" + "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA" + "\n";

const CASES: {
  name: string;
  keys: string;
  totp: boolean;
  password?: boolean;
  jwt?: boolean;
  recordPadding?: { client: PaddingMode; server: PaddingMode };
  clientKex: KexId[];
  clientAead: AeadId[];
  serverKex: KexId[];
  serverAead: AeadId[];
  clientNowMs: number;
  serverNowMs: number;
}[] = [
  {
    name: "x25519, aes-256-gcm, key + token",
    keys: "vector keys 1",
    totp: false,
    clientKex: ["x25519"],
    clientAead: ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"],
    serverKex: ["x25519-mlkem768", "x25519"],
    serverAead: ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"],
    clientNowMs: 1_750_000_000_000,
    serverNowMs: 1_750_000_000_250,
  },
  {
    name: "x25519-mlkem768, chacha20-poly1305, key + token + TOTP",
    keys: "vector keys 2",
    totp: true,
    clientKex: ["x25519-mlkem768", "x25519"],
    clientAead: ["chacha20-poly1305", "aes-256-gcm"],
    serverKex: ["x25519-mlkem768", "x25519"],
    serverAead: ["chacha20-poly1305", "aes-256-gcm", "aes-128-gcm"],
    clientNowMs: 1_750_000_029_000,
    serverNowMs: 1_750_000_031_000,
  },
  {
    name: "x25519, aes-256-gcm, key + password (SCRAM-SHA-256)",
    keys: "vector keys 3",
    totp: false,
    password: true,
    clientKex: ["x25519"],
    clientAead: ["aes-256-gcm"],
    serverKex: ["x25519-mlkem768", "x25519"],
    serverAead: ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"],
    clientNowMs: 1_750_000_100_000,
    serverNowMs: 1_750_000_100_000,
  },
  {
    name: "x25519, aes-256-gcm, key + JWT (HS256) to a server with a ticket keyring: no ticket",
    keys: "vector keys 4",
    totp: false,
    jwt: true,
    clientKex: ["x25519"],
    clientAead: ["aes-256-gcm"],
    serverKex: ["x25519-mlkem768", "x25519"],
    serverAead: ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"],
    clientNowMs: 1_750_000_200_000,
    serverNowMs: 1_750_000_200_000,
  },
  {
    name: "x25519, aes-256-gcm, key + token, record padding: the client asks random, the server " +
      "is set to bucket, the Result names bucket",
    keys: "vector keys 5",
    totp: false,
    recordPadding: { client: "random", server: "bucket" },
    clientKex: ["x25519"],
    clientAead: ["aes-256-gcm"],
    serverKex: ["x25519-mlkem768", "x25519"],
    serverAead: ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"],
    clientNowMs: 1_750_000_300_000,
    serverNowMs: 1_750_000_300_000,
  },
];

/** The JWT case's token: sub = the fixture's user, exp one hour after the case's clock. */
function vectorJwt(userId: string, nowMs: number): string {
  return signJwt({ alg: "HS256", secret: unhex(VECTOR_JWT_SECRET) }, {
    sub: userId,
    exp: nowMs / 1000 + 3600,
    routes: ["10.0.0.0/8:22"],
  });
}

function record(m: Map<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...m].map(([k, v]) => [k, hex(v)]));
}

/** Runs every case and returns the file contents. */
export function buildVectors(): HandshakeVectorFile {
  const cases = CASES.map((c): HandshakeVectorCase => {
    const f = fixture(c.keys, c.totp);
    const clientRandom = `${c.keys} client`;
    const serverRandom = `${c.keys} server`;
    const traces = { client: new Map<string, Uint8Array>(), server: new Map<string, Uint8Array>() };
    const pw = c.password ? passwordInputs() : null;
    const jwt = c.jwt
      ? { token: vectorJwt(f.userId, c.clientNowMs), hs256Secret: VECTOR_JWT_SECRET }
      : null;
    const { token: _, ...withoutToken } = f.record;
    const users: UserRecord[] = [
      pw !== null
        ? {
          ...withoutToken,
          password: { storedKey: unhex(pw.storedKey), serverKey: unhex(pw.serverKey) },
        }
        : jwt !== null
        ? { ...withoutToken, jwt: { keys: { hs256: [unhex(jwt.hs256Secret)] } } }
        : f.record,
    ];
    const resumption = jwt === null
      ? null
      : { ticketKeys: VECTOR_TICKET_KEYS, sessionTable: true as const };
    const { client, server } = makePair({
      fixture: f,
      users,
      ...(pw === null ? {} : {
        credentials: {
          password: { clientKey: unhex(pw.clientKey), serverKey: unhex(pw.serverKey) },
        },
      }),
      ...(jwt === null ? {} : { credentials: { jwt: jwt.token } }),
      ...(resumption === null ? {} : {
        tickets: new TicketKeyring(decodeTicketKeys(resumption.ticketKeys), {
          now: () => c.serverNowMs,
          random: drbg(`${c.keys} ticket nonces`),
        }),
        lookupSession: () => undefined,
      }),
      ...(c.recordPadding === undefined ? {} : {
        clientRecordPadding: c.recordPadding.client,
        serverRecordPadding: c.recordPadding.server,
      }),
      clientKex: c.clientKex,
      clientAead: c.clientAead,
      serverKex: c.serverKex,
      serverAead: c.serverAead,
      clientNow: c.clientNowMs,
      serverNow: c.serverNowMs,
      clientRandom: drbg(clientRandom),
      serverRandom: drbg(serverRandom),
      trace: traces,
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
        token: pw === null && jwt === null ? hex(f.token) : null,
        jwt,
        serverResumption: resumption,
        password: pw,
        totpSecret: c.totp ? hex(f.totpSecret) : null,
        recordPadding: c.recordPadding ?? null,
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
        recordPadding: s.recordPadding ?? null,
      },
      trace: { client: record(traces.client), server: record(traces.server) },
    };
  });
  return {
    description:
      "NitroSocks handshake v1 vectors: fixed keys, randomness and clock; every message and " +
      "derived secret. Layout and meaning: docs/PROTOCOL.md part 2 (handshake) section 9.",
    regenerate: "deno run --allow-read=tests/vectors --allow-write=tests/vectors " +
      "tests/handshake/gen_vectors.ts && deno fmt tests/vectors/handshake_v1.json",
    random: "sha256-ctr: block i = SHA-256(SHA-256(utf8(label)) || u32be(i)), i = 0, 1, ...; " +
      "bytes are handed out in order of the draws listed in the spec",
    cases,
  };
}

/** Where the vector file lives. */
export const VECTOR_FILE = new URL("../vectors/handshake_v1.json", import.meta.url);

if (import.meta.main) {
  Deno.writeTextFileSync(VECTOR_FILE, JSON.stringify(buildVectors(), null, 2) + "\n");
  console.log(`wrote ${VECTOR_FILE.pathname}`);
}
