/**
 * Shared test fixtures: a deterministic random source, fixed keys and a
 * driver that runs a whole handshake and keeps every message.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { hash, type RandomSource } from "../../lib/crypto/mod.ts";
import { scramClientKeys, scramStoredKey } from "../../lib/crypto/scram.ts";
import { cookieKeys, helloMac1 } from "../../lib/handshake/cookie.ts";
import {
  type AeadId,
  ClientHandshake,
  type ClientHandshakeOptions,
  type ClientStep,
  generateClientKey,
  generateServerIdentity,
  generateToken,
  type KexId,
  type PaddingMode,
  type PasswordKeys,
  type PasswordVerifier,
  ReplayGuard,
  ServerHandshake,
  type ServerHandshakeOptions,
  type ServerIdentity,
  serverPublicKey,
  type ServerStep,
  type SessionSecrets,
  type TicketKeyring,
  type UserRecord,
} from "../../lib/handshake/mod.ts";

/**
 * sha256-ctr: block i = SHA-256(SHA-256(label) ‖ u32be(i)); bytes are handed
 * out in order, so a run is fixed by its label and the order of draws.
 */
export function drbg(label: string): RandomSource & { draws: Uint8Array[] } {
  const seed = hash(new TextEncoder().encode(label));
  let counter = 0;
  let pool = new Uint8Array(0);
  const draws: Uint8Array[] = [];
  const next = (n: number): Uint8Array => {
    while (pool.length < n) {
      const block = new Uint8Array(36);
      block.set(seed);
      new DataView(block.buffer).setUint32(32, counter++);
      const more = new Uint8Array(pool.length + 32);
      more.set(pool);
      more.set(hash(block), pool.length);
      pool = more;
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    draws.push(out);
    return out;
  };
  return Object.assign(next, { draws });
}

/** Long-term keys and a user table, fixed by a label. */
export interface Fixture {
  identity: ServerIdentity;
  serverPublicKey: Uint8Array;
  clientKey: { privateKey: Uint8Array; publicKey: Uint8Array };
  token: Uint8Array;
  totpSecret: Uint8Array;
  userId: string;
  /** The user record (with TOTP when `withTotp`). */
  record: UserRecord;
}

/** Fixed keys from `drbg(label)`. */
export function fixture(label = "nitrosocks test keys", withTotp = false): Fixture {
  const r = drbg(label);
  const identity = generateServerIdentity(r);
  const clientKey = generateClientKey(r);
  const token = generateToken(r);
  const totpSecret = r(20);
  const userId = "alice";
  const record: UserRecord = { userId, publicKey: clientKey.publicKey, token };
  if (withTotp) record.totpSecret = totpSecret;
  return {
    identity,
    serverPublicKey: serverPublicKey(identity),
    clientKey,
    token,
    totpSecret,
    userId,
    record,
  };
}

/**
 * SCRAM-SHA-256 keys for a password, fixed by a label (SaltedPassword =
 * SHA-256(label), so no PBKDF2 run is needed), and the verifier the server
 * stores for them.
 */
export function passwordFixture(label = "nitrosocks test password"): {
  keys: PasswordKeys;
  verifier: PasswordVerifier;
} {
  const keys = scramClientKeys(hash(new TextEncoder().encode(label)));
  return {
    keys,
    verifier: { storedKey: scramStoredKey(keys.clientKey), serverKey: keys.serverKey },
  };
}

/** A fixed clock. */
export const T0 = 1_750_000_000_000;

/** Options for {@linkcode makePair}. */
export interface PairOptions {
  fixture?: Fixture;
  clientKex?: KexId[];
  clientAead?: AeadId[];
  serverKex?: KexId[];
  serverAead?: AeadId[];
  clientNow?: number;
  serverNow?: number;
  clientRandom?: RandomSource;
  serverRandom?: RandomSource;
  replay?: ReplayGuard;
  /** Credentials override (defaults to the fixture's, with TOTP when the record has it). */
  credentials?: Partial<ClientHandshakeOptions["credentials"]>;
  users?: UserRecord[];
  /** The server's lockout hook. */
  allowLogin?: (userId: string) => string | undefined;
  /** The server's ticket keyring (section 13). */
  tickets?: TicketKeyring;
  /** The server's session table (section 13): the Result then says `resumable`. */
  lookupSession?: ServerHandshakeOptions["lookupSession"];
  /** The record padding mode the client asks for (section 4.7). */
  clientRecordPadding?: PaddingMode;
  /** The server's own record padding mode. */
  serverRecordPadding?: PaddingMode;
  trace?: { client?: Map<string, Uint8Array>; server?: Map<string, Uint8Array> };
}

/** A client and a server wired to the same fixture, plus the server's log. */
export function makePair(
  o: PairOptions = {},
): { client: ClientHandshake; server: ServerHandshake; log: string[] } {
  const f = o.fixture ?? fixture();
  const log: string[] = [];
  const users = new Map((o.users ?? [f.record]).map((u) => [u.userId, u]));
  const credentials: ClientHandshakeOptions["credentials"] = {
    userId: f.userId,
    clientKey: f.clientKey.privateKey,
    ...(o.credentials?.password === undefined && o.credentials?.jwt === undefined
      ? { token: f.token }
      : {}),
    ...(f.record.totpSecret === undefined ? {} : { totpSecret: f.totpSecret }),
    ...o.credentials,
  };
  const clientOpts: ClientHandshakeOptions = {
    serverPublicKey: f.serverPublicKey,
    credentials,
    now: () => o.clientNow ?? T0,
    random: o.clientRandom ?? drbg("client random"),
  };
  if (o.clientKex) clientOpts.kex = o.clientKex;
  if (o.clientAead) clientOpts.aead = o.clientAead;
  if (o.clientRecordPadding) clientOpts.recordPadding = o.clientRecordPadding;
  const ct = o.trace?.client;
  if (ct) clientOpts.trace = (n, v) => ct.set(n, v);
  const serverOpts: ServerHandshakeOptions = {
    identity: f.identity,
    lookupUser: (id) => users.get(id),
    replay: o.replay ?? new ReplayGuard(),
    now: () => o.serverNow ?? T0,
    random: o.serverRandom ?? drbg("server random"),
    log: (m) => log.push(m),
  };
  if (o.allowLogin) serverOpts.allowLogin = o.allowLogin;
  if (o.tickets) serverOpts.tickets = o.tickets;
  if (o.lookupSession) serverOpts.lookupSession = o.lookupSession;
  if (o.serverKex) serverOpts.kex = o.serverKex;
  if (o.serverAead) serverOpts.aead = o.serverAead;
  if (o.serverRecordPadding) serverOpts.recordPadding = o.serverRecordPadding;
  const st = o.trace?.server;
  if (st) serverOpts.trace = (n, v) => st.set(n, v);
  return { client: new ClientHandshake(clientOpts), server: new ServerHandshake(serverOpts), log };
}

/** Every message of a successful handshake and both sides' results. */
export interface Transcript {
  hello: Uint8Array;
  serverHello: Uint8Array;
  response: Uint8Array;
  result: Uint8Array;
  finish: Uint8Array;
  client: SessionSecrets;
  server: SessionSecrets;
  serverUserId: string;
}

/** Asserts the step type and narrows it. */
export function expectServer<T extends ServerStep["type"]>(
  step: ServerStep,
  type: T,
): Extract<ServerStep, { type: T }> {
  assert.equal(step.type, type, `server step ${JSON.stringify(step)}`);
  return step as Extract<ServerStep, { type: T }>;
}

/** Asserts the step type and narrows it. */
export function expectClient<T extends ClientStep["type"]>(
  step: ClientStep,
  type: T,
): Extract<ClientStep, { type: T }> {
  assert.equal(step.type, type, `client step ${step.type}`);
  return step as Extract<ClientStep, { type: T }>;
}

/** Runs a whole handshake, one push per message. */
export function runHandshake(client: ClientHandshake, server: ServerHandshake): Transcript {
  const hello = client.hello();
  const serverHello = expectServer(server.push(hello), "send").bytes;
  const response = expectClient(client.push(serverHello), "send").bytes;
  const result = expectServer(server.push(response), "send").bytes;
  const done = expectClient(client.push(result), "done");
  const sdone = expectServer(server.push(done.send), "done");
  return {
    hello,
    serverHello,
    response,
    result,
    finish: done.send,
    client: done.secrets,
    server: sdone.secrets,
    serverUserId: sdone.userId,
  };
}

/** makePair + runHandshake. */
export function handshake(o: PairOptions = {}): Transcript {
  const { client, server } = makePair(o);
  return runHandshake(client, server);
}

/**
 * A Hello on the wire from its representative and its frame (masked length
 * ‖ ciphertext), with a correct mac1 for `serverPublicKey` and a mac2 of
 * `mac2Fill` bytes (section 15): what a forger who knows the server's public
 * key, or a test that rewrote the frame, sends.
 */
export function helloWithMacs(
  repr: Uint8Array,
  frame: Uint8Array,
  serverPublicKey: Uint8Array,
  mac2Fill = 0,
): Uint8Array {
  const mac1 = helloMac1(cookieKeys(serverPublicKey).mac1, repr, frame.subarray(0, 2));
  const out = new Uint8Array(repr.length + 32 + frame.length);
  out.set(repr);
  out.set(mac1, repr.length);
  out.fill(mac2Fill, repr.length + 16, repr.length + 32);
  out.set(frame, repr.length + 32);
  return out;
}
