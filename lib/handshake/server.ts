/**
 * The server side of the NitroSocks v1 handshake: the probe gate and a
 * push-based engine over explicit states (`consumeHelloHeader` →
 * `consumeHello` → `consumeResponse` or, for a resumption,
 * `consumeResumeResponse` → `consumeFinish`). It never throws
 * for peer input: anything wrong before the gate is a "probe" (forward to
 * the fallback), anything wrong after it a "reject" (close, log the reason).
 * Spec: docs/PROTOCOL.md part 2 (handshake).
 *
 * @module
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { ProtocolError } from "../errors.ts";
import { ctEqual, hash, randomBytes, type RandomSource, wipe } from "../crypto/mod.ts";
import { representativeToPublicKey } from "../crypto/elligator.ts";
import {
  ed25519PublicKey,
  ed25519Sign,
  x25519PublicKey,
  x25519SharedSecret,
} from "../crypto/keys.ts";
import { TOTP_PERIOD_SECONDS, TOTP_WINDOW_STEPS, verifyTotp } from "../crypto/totp.ts";
import { SCRAM_KEY_BYTES, scramCheckProof } from "../crypto/scram.ts";
import { type JwtClaims, type JwtKeys, type JwtResult, verifyJwt } from "../crypto/jwt.ts";
import { concat } from "../wire/bytes.ts";
import {
  AEAD_IDS,
  AEAD_TAG_BYTES,
  AEAD_WIRE_IDS,
  type AeadId,
  BINDER_BYTES,
  DH_BYTES,
  FINISH_BYTES,
  HELLO_BODY_MAX,
  HELLO_BODY_MIN,
  HELLO_HEADER_BYTES,
  KEX_IDS,
  KEX_WIRE_IDS,
  type KexId,
  LENGTH_BYTES,
  MAC_BYTES,
  MAX_PADDING,
  PADDING_WIRE_IDS,
  type PaddingMode,
  REPRESENTATIVE_BYTES,
  RESPONSE_BODY_MAX,
  RESPONSE_BODY_MIN,
  RESUME_RESPONSE_BODY_MAX,
  RESUME_RESPONSE_BODY_MIN,
  SECRET_BYTES,
  SESSION_ID_BYTES,
  SIGNATURE_CONTEXT,
  SUPPORTED_VERSIONS,
  TOKEN_BYTES,
} from "./constants.ts";
import { type ServerIdentity, serverPublicKey } from "./identity.ts";
import { COOKIE_MAC_BYTES, cookieKeys, helloMac1 } from "./cookie.ts";
import {
  decodeHelloBody,
  decodeResponseBody,
  decodeResumeResponseBody,
  encodeResultBody,
  encodeServerHelloFields,
  type ResumeExtension,
} from "./messages.ts";
import {
  agreePadding,
  checkList,
  checkPaddingMax,
  checkPaddingMode,
  clockMs,
} from "./_negotiate.ts";
import type { ReplayGuard } from "./replay.ts";
import type { TicketKeyring } from "./ticket.ts";
import {
  ByteQueue,
  finalSecrets,
  type FrameKeys,
  frameKeys,
  frameLength,
  INITIAL_CHAINING_KEY,
  jwtPsk,
  mixHash,
  mixKey,
  openFrame,
  paddingLength,
  passwordAuthMessage,
  passwordProofField,
  passwordPsk,
  resumeBinder,
  resumePsk,
  sealFrame,
  transcriptMac,
} from "./_schedule.ts";
import type {
  HandshakeTrace,
  HelloSeen,
  PasswordVerifier,
  ResumableSession,
  ServerStep,
  SessionSecrets,
  UserRecord,
} from "./types.ts";

/** Default clock window: Hello timestamps further than this from now are refused. */
export const DEFAULT_CLOCK_WINDOW_MS = 120_000;

/** Options for {@linkcode ServerHandshake}. */
export interface ServerHandshakeOptions {
  /** The server's private identity (Ed25519 and X25519 keys). */
  identity: ServerIdentity;
  /** Finds a user by id; undefined when unknown. */
  lookupUser: (userId: string) => UserRecord | undefined;
  /** Shared by every connection of this server. */
  replay: ReplayGuard;
  /** Clock in milliseconds since the Unix epoch. */
  now: () => number;
  /** Source of random bytes; default the platform CSPRNG. */
  random?: RandomSource;
  /** Allowed key exchanges, server preference first; default both, hybrid first. */
  kex?: KexId[];
  /** Allowed AEADs, server preference first; default AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305. */
  aead?: AeadId[];
  /** Hello timestamps outside now ± this are probes; default 120 000. */
  clockWindowMs?: number;
  /** Server log for detail beyond a step's `reason` (the clock skew of a stale Hello). */
  log?: (msg: string) => void;
  /** Most padding bytes per message, 0..255; default 255. */
  paddingMax?: number;
  /**
   * This server's record padding mode (section 4.7): a client that asks
   * for a mode gets the stronger of the two in the Result; with one that
   * does not ask, the server's records use this mode alone.
   */
  recordPadding?: PaddingMode;
  /** Receives intermediate secrets; for test vectors only. */
  trace?: HandshakeTrace;
  /**
   * The tunnel's table of resumable sessions: the current resumption secret
   * and user of a session id, undefined when unknown, expired or released.
   * Without it (and without `tickets`) every resumption is refused.
   */
  lookupSession?: (sessionId: Uint8Array) => ResumableSession | undefined;
  /**
   * Ticket keys shared by the servers behind one address: tickets sealed
   * with them are accepted, and every Result carries a fresh ticket.
   */
  tickets?: TicketKeyring;
  /**
   * Asked for every full login, once the user id is known and whatever the
   * credentials: a reason (for the log) refuses the login even with right
   * credentials (a lockout), exactly as wrong credentials are refused.
   */
  allowLogin?: (userId: string) => string | undefined;
  /**
   * Asked for each Hello whose mac1 verified, before any public-key work
   * (section 15): under load, a cookie reply to send instead of going on
   * (the step is then `cookie`), or undefined to go on. `mac2` must be made
   * with the cookie of the connection's source.
   */
  cookie?: (hello: HelloMacs) => Uint8Array | undefined;
}

/** The parts of a Hello that its MACs cover (section 15). */
export interface HelloMacs {
  /** The Hello's first 32 bytes: the representative. */
  repr: Uint8Array;
  /** The masked length (2 bytes). */
  maskedLen: Uint8Array;
  /** mac1 (16 bytes), already checked. */
  mac1: Uint8Array;
  /** mac2 (16 bytes): a cookie's MAC, or filler. */
  mac2: Uint8Array;
}

interface ServerContext {
  identity: ServerIdentity;
  publicKey: Uint8Array;
  lookupUser: (userId: string) => UserRecord | undefined;
  replay: ReplayGuard;
  now: () => number;
  random: RandomSource;
  kex: KexId[];
  aead: AeadId[];
  clockWindowMs: number;
  paddingMax: number;
  recordPadding: PaddingMode | undefined;
  trace: HandshakeTrace;
  lookupSession: ((sessionId: Uint8Array) => ResumableSession | undefined) | undefined;
  tickets: TicketKeyring | undefined;
  allowLogin: ((userId: string) => string | undefined) | undefined;
  mac1Key: Uint8Array;
  cookie: ((hello: HelloMacs) => Uint8Array | undefined) | undefined;
}

/** Nothing read yet, or fewer than 66 bytes. */
interface ExpectHello {
  kind: "expect_hello";
}

/** The Hello's first 66 bytes are in: mac1 checked, es known and the length unmasked. */
interface ReadingHello {
  kind: "reading_hello";
  ck: Uint8Array;
  hc: Uint8Array;
  keys: FrameKeys;
  clientEphemeral: Uint8Array;
  ctLen: number;
}

/** ServerHello sent; waiting for the Response. */
interface ExpectResponse {
  kind: "expect_response";
  ck: Uint8Array;
  h: Uint8Array;
  keys: FrameKeys;
  ephemeral: Uint8Array;
  version: number;
  kex: KexId;
  aead: AeadId; /** The Hello's padding extension (a wire id), if it had one. */
  recordPadding: number | undefined;
}

/**
 * What a resume Hello resolved to. On failure the stand-in PSK keeps the
 * work alike and `failure` is the reject reason, given after the Response.
 */
interface ServerResume {
  psk: Uint8Array;
  sessionId: Uint8Array;
  userId: string;
  failure: string | undefined;
}

/** ServerHello sent for a resume Hello; waiting for the resume Response. */
interface ExpectResumeResponse {
  kind: "expect_resume_response";
  ck: Uint8Array;
  h: Uint8Array;
  keys: FrameKeys;
  version: number;
  kex: KexId;
  aead: AeadId;
  resume: ServerResume; /** The Hello's padding extension (a wire id), if it had one. */
  recordPadding: number | undefined;
}

/** Result sent; waiting for the Finish. Secrets are derived (the ticket needed them). */
interface ExpectFinish {
  kind: "expect_finish";
  expected: Uint8Array;
  userId: string;
  secrets: SessionSecrets;
  jwt?: JwtClaims;
}

type ServerState =
  | ExpectHello
  | ReadingHello
  | ExpectResponse
  | ExpectResumeResponse
  | ExpectFinish
  | { kind: "done" }
  | { kind: "probe" }
  | { kind: "reject" };

type Verdict =
  | { type: "probe"; reason: string }
  | { type: "reject"; reason: string; user?: string; failed?: "source" | "user" };

const SIGNATURE_PREFIX = new TextEncoder().encode(SIGNATURE_CONTEXT);
const HELLO_CT_MIN = HELLO_BODY_MIN + AEAD_TAG_BYTES;
const HELLO_CT_MAX = HELLO_BODY_MAX + AEAD_TAG_BYTES;
const RESPONSE_CT_MIN = RESPONSE_BODY_MIN + AEAD_TAG_BYTES;
const RESPONSE_CT_MAX = RESPONSE_BODY_MAX + AEAD_TAG_BYTES;
const RESUME_CT_MIN = RESUME_RESPONSE_BODY_MIN + AEAD_TAG_BYTES;
const RESUME_CT_MAX = RESUME_RESPONSE_BODY_MAX + AEAD_TAG_BYTES;
/** Stands in for an unknown session's resumption secret, so a refusal costs the same work. */
const STAND_IN_SECRET = new Uint8Array(SECRET_BYTES);
const TOTP_DIGITS = 6;

interface StandIn {
  publicKey: Uint8Array;
  token: Uint8Array;
  totpSecret: Uint8Array;
  password: PasswordVerifier;
  jwtKeys: JwtKeys;
}

/** Stand-ins for an unknown user, so its Response costs the same work. */
let dummy: StandIn | undefined;
function dummyUser(): StandIn {
  const label = (s: string) => hash(new TextEncoder().encode(`NitroSocks v1 dummy ${s}`));
  dummy ??= {
    publicKey: x25519PublicKey(label("client key")),
    token: new Uint8Array(TOKEN_BYTES),
    totpSecret: new Uint8Array(20),
    password: { storedKey: label("stored key"), serverKey: label("server key") },
    jwtKeys: { hs256: [label("jwt secret")], ed25519: [ed25519PublicKey(label("jwt key"))] },
  };
  return dummy;
}

/**
 * Checks the second factor's field both ways, token and password, whatever
 * the user's factor (stand-ins for the one the user lacks), so the time taken
 * tells nothing; returns ck4 for the user's factor and whether it verified.
 * Wipes ck3. Spec: PROTOCOL.md part 2 sections 5 and 14.
 */
/** The user logs in with a JWT (a password wins over a JWT, as in checkSecondFactor). */
function isJwtUser(record: UserRecord | undefined): boolean {
  return record?.jwt !== undefined && record.password === undefined;
}

function checkSecondFactor(
  record: UserRecord | undefined,
  ck3: Uint8Array,
  h3: Uint8Array,
  field: Uint8Array,
  jwt: { token: string | undefined; ok: boolean },
): { ck4: Uint8Array; ok: boolean; factor: "token" | "password" | "JWT" } {
  const stand = dummyUser();
  // A JWT user's "token" is the PSK derived from the JWT in the Response (checked on its own).
  const jwtUser = isJwtUser(record);
  const jwtKey = jwtUser && jwt.token !== undefined ? jwtPsk(jwt.token) : undefined;
  const token = jwtUser ? jwtKey : record?.token?.length === TOKEN_BYTES ? record.token : undefined;
  const pw = record?.password;
  const password = pw !== undefined && pw.storedKey.length === SCRAM_KEY_BYTES &&
      pw.serverKey.length === SCRAM_KEY_BYTES
    ? pw
    : undefined;
  // Token: ck4 = Extract(ck3, token); the field is the token tag.
  const ck4Token = mixKey(ck3.slice(), token ?? stand.token);
  const tokenOk = ctEqual(transcriptMac(ck4Token, "token tag", h3), field) && token !== undefined;
  // Password: unmask ClientProof, recover ClientKey, compare H(ClientKey) with StoredKey.
  const verifier = password ?? stand.password;
  const proof = passwordProofField(ck3, h3, field);
  const check = scramCheckProof(verifier.storedKey, passwordAuthMessage(h3), proof);
  const psk = passwordPsk(check.clientKey, verifier.serverKey);
  const ck4Password = mixKey(ck3, psk);
  wipe(proof, psk, check.clientKey);
  const passwordOk = check.ok && password !== undefined;
  if (password !== undefined) {
    wipe(ck4Token);
    return { ck4: ck4Password, ok: passwordOk, factor: "password" };
  }
  wipe(ck4Password, jwtKey);
  if (jwtUser) return { ck4: ck4Token, ok: tokenOk && jwt.ok, factor: "JWT" };
  return { ck4: ck4Token, ok: tokenOk, factor: "token" };
}

function probe(reason: string): Verdict {
  return { type: "probe", reason };
}

function reject(reason: string): Verdict {
  return { type: "reject", reason };
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

/** First 4 bytes of a session id in hex, for the log. */
function short(id: Uint8Array): string {
  return Array.from(id.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join("") + "…";
}

function detail(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The first 66 bytes: check mac1 (and, under load, the cookie), then es and the length. */
function consumeHelloHeader(
  ctx: ServerContext,
  header: Uint8Array,
): ReadingHello | Verdict | { type: "cookie"; bytes: Uint8Array } {
  const repr = header.subarray(0, REPRESENTATIVE_BYTES);
  const mac1 = header.subarray(REPRESENTATIVE_BYTES, REPRESENTATIVE_BYTES + COOKIE_MAC_BYTES);
  const mac2 = header.subarray(REPRESENTATIVE_BYTES + COOKIE_MAC_BYTES, HELLO_HEADER_BYTES - 2);
  const maskedLen = header.subarray(HELLO_HEADER_BYTES - LENGTH_BYTES, HELLO_HEADER_BYTES);
  // Section 15: one HMAC says whether the sender knows our public key, before any X25519.
  if (!ctEqual(helloMac1(ctx.mac1Key, repr, maskedLen), mac1)) {
    return probe("hello mac1 does not verify");
  }
  const reply = ctx.cookie?.({ repr, maskedLen, mac1, mac2 });
  if (reply !== undefined) return { type: "cookie", bytes: reply };
  const clientEphemeral = representativeToPublicKey(repr);
  let es: Uint8Array;
  try {
    es = x25519SharedSecret(ctx.identity.dhPrivate, clientEphemeral);
  } catch {
    return probe("hello key has low order");
  }
  const ck0 = INITIAL_CHAINING_KEY.slice();
  const hc = mixHash(mixHash(ck0, ctx.publicKey), repr);
  const ck = mixKey(ck0, es);
  wipe(es);
  const keys = frameKeys(ck, "hello", hc);
  const ctLen = frameLength(keys, maskedLen);
  if (ctLen < HELLO_CT_MIN || ctLen > HELLO_CT_MAX) {
    wipe(ck, keys.key);
    return probe(`hello length ${ctLen} is outside ${HELLO_CT_MIN}..${HELLO_CT_MAX}`);
  }
  return { kind: "reading_hello", ck, hc, keys, clientEphemeral, ctLen };
}

/** The whole Hello: the gate (MAC, clock, replay), negotiation, then the ServerHello. */
function consumeHello(
  ctx: ServerContext,
  s: ReadingHello,
  frame: Uint8Array,
  log: (msg: string) => void,
): { bytes: Uint8Array; state: ExpectResponse | ExpectResumeResponse; hello: HelloSeen } | Verdict {
  let plain: Uint8Array;
  try {
    plain = openFrame(s.keys, s.hc, frame);
  } catch {
    return probe("hello MAC does not verify");
  }
  let hello;
  try {
    hello = decodeHelloBody(plain);
  } catch (e) {
    return probe(`malformed hello: ${detail(e)}`);
  }
  const now = clockMs(ctx.now);
  const skew = hello.timestampMs - now;
  if (Math.abs(skew) > ctx.clockWindowMs) {
    log(`hello clock skew ${(skew / 1000).toFixed(1)} s exceeds ±${ctx.clockWindowMs / 1000} s`);
    return probe(`hello timestamp is ${(skew / 1000).toFixed(1)} s from our clock`);
  }
  const seen = ctx.replay.check(hello.nonce, hello.timestampMs, now);
  if (seen === "replay") return probe("replayed hello nonce");
  if (seen === "stale") return probe("hello is older than the replay window or floor");

  const h1 = mixHash(s.hc, frame);
  ctx.trace("h1", h1);
  const version = SUPPORTED_VERSIONS.find((v) => hello.versions.includes(v));
  const kex = ctx.kex.find((k) => hello.kex.includes(KEX_WIRE_IDS[k]));
  const aead = ctx.aead.find((a) => hello.aead.includes(AEAD_WIRE_IDS[a]));
  if (version === undefined) {
    return reject(`no common version (client offers ${hello.versions.join(", ")})`);
  }
  if (kex === undefined) {
    return reject(`no common key exchange (client offers ids ${hello.kex.join(", ")})`);
  }
  if (aead === undefined) {
    return reject(`no common AEAD (client offers ids ${hello.aead.join(", ")})`);
  }
  // Resolved now, refused (if at all) only after the Response: every failure looks alike.
  const resume = hello.resume === undefined
    ? undefined
    : resolveResume(ctx, hello.resume, s.hc, plain);

  const ephemeral = ctx.random(DH_BYTES);
  const ephemeralPublic = x25519PublicKey(ephemeral);
  ctx.trace("s_eph_private", ephemeral);
  let mlkem: { cipherText: Uint8Array; sharedSecret: Uint8Array } | undefined;
  if (kex === "x25519-mlkem768") {
    const m = ctx.random(32);
    try {
      mlkem = ml_kem768.encapsulate(hello.mlkemKey!, m);
    } catch (e) {
      wipe(ephemeral, resume?.psk);
      return probe(`malformed hello: ML-KEM key is invalid: ${detail(e)}`);
    } finally {
      wipe(m);
    }
  }
  const fields = encodeServerHelloFields({
    version,
    kex: KEX_WIRE_IDS[kex],
    aead: AEAD_WIRE_IDS[aead],
    serverEphemeral: ephemeralPublic,
    ...(mlkem === undefined ? {} : { mlkemCiphertext: mlkem.cipherText }),
    nonce: ctx.random(32),
    timestampMs: now,
    paddingLength: paddingLength(ctx.random, ctx.paddingMax),
  });
  // Seed 000 Sign(ServerCert): over everything so far, the client's offer included.
  const signature = ed25519Sign(
    ctx.identity.signSeed,
    concat([SIGNATURE_PREFIX, mixHash(h1, fields)]),
  );
  const sealed = sealFrame(frameKeys(s.ck, "server hello", h1), h1, concat([fields, signature]));
  const h2 = mixHash(h1, sealed);
  let ee: Uint8Array;
  try {
    ee = x25519SharedSecret(ephemeral, s.clientEphemeral);
  } catch {
    // Unreachable: es with the same key already succeeded.
    wipe(ephemeral, mlkem?.sharedSecret, resume?.psk);
    return probe("hello key has low order");
  }
  const ikm = mlkem === undefined ? ee : concat([ee, mlkem.sharedSecret]);
  const ck2 = mixKey(s.ck, ikm);
  wipe(ee, ikm, mlkem?.sharedSecret);
  ctx.trace("ck2", ck2);
  ctx.trace("h2", h2);
  if (resume !== undefined) {
    // No se in a resumption: the ephemeral key has done its work.
    wipe(ephemeral);
    return {
      bytes: sealed,
      hello: { nonce: hello.nonce, timestampMs: hello.timestampMs },
      state: {
        kind: "expect_resume_response",
        ck: ck2,
        h: h2,
        keys: frameKeys(ck2, "client hs", h2),
        version,
        kex,
        aead,
        resume,
        recordPadding: hello.recordPadding,
      },
    };
  }
  return {
    bytes: sealed,
    hello: { nonce: hello.nonce, timestampMs: hello.timestampMs },
    state: {
      kind: "expect_response",
      ck: ck2,
      h: h2,
      keys: frameKeys(ck2, "client hs", h2),
      ephemeral,
      version,
      kex,
      aead,
      recordPadding: hello.recordPadding,
    },
  };
}

/** The Response: who, proof of key (key tag), proof of token (token tag), TOTP; then the Result. */
function consumeResponse(
  ctx: ServerContext,
  s: ExpectResponse,
  frame: Uint8Array,
): { bytes: Uint8Array; state: ExpectFinish } | Verdict {
  const sealedLen = frame.length - 2 * MAC_BYTES;
  const sealed = frame.subarray(0, sealedLen);
  const keyTag = frame.subarray(sealedLen, sealedLen + MAC_BYTES);
  const tokenTag = frame.subarray(sealedLen + MAC_BYTES);
  let plain: Uint8Array;
  try {
    plain = openFrame(s.keys, s.h, sealed);
  } catch {
    return reject("response does not open (not sealed under this handshake's keys)");
  }
  let response;
  try {
    response = decodeResponseBody(plain);
  } catch (e) {
    return reject(`malformed response: ${detail(e)}`);
  } finally {
    wipe(plain);
  }
  const h3 = mixHash(s.h, sealed);
  const record = ctx.lookupUser(response.userId);
  const stand = dummyUser();
  const known = record !== undefined;
  // Unknown user: the same steps with stand-in values, so timing is alike.
  let keyUsable = known && record.publicKey.length === DH_BYTES;
  let se: Uint8Array;
  try {
    se = x25519SharedSecret(s.ephemeral, keyUsable ? record!.publicKey : stand.publicKey);
  } catch {
    keyUsable = false;
    se = x25519SharedSecret(s.ephemeral, stand.publicKey);
  }
  wipe(s.ephemeral);
  const ck3 = mixKey(s.ck, se);
  wipe(se);
  // Every tag is computed and compared whatever the outcome, so the time taken does not tell.
  const keyMatches = ctEqual(transcriptMac(ck3, "key tag", h3), keyTag);
  const keyOk = keyUsable && keyMatches;
  // A JWT in the Response is verified whatever the user (stand-in keys for a user without
  // JWT keys): the work depends on the token the client sent, not on who the user is.
  let jwtVerdict: JwtResult | undefined;
  if (response.jwt !== undefined) {
    const v = record?.jwt;
    jwtVerdict = verifyJwt(response.jwt, v?.keys ?? stand.jwtKeys, {
      subject: response.userId,
      nowMs: clockMs(ctx.now),
      ...(v?.audience === undefined ? {} : { audience: v.audience }),
      ...(v?.leewayS === undefined ? {} : { leewayS: v.leewayS }),
      ...(v?.routeError === undefined ? {} : { routeError: v.routeError }),
    });
  }
  const second = checkSecondFactor(record, ck3, h3, tokenTag, {
    token: response.jwt,
    ok: jwtVerdict?.ok === true,
  });
  const ck4 = second.ck4;
  const secret = record?.totpSecret;
  const code = response.totpCode === undefined
    ? ""
    : String(response.totpCode).padStart(TOTP_DIGITS, "0");
  const totpOk = verifyTotp(secret ?? stand.totpSecret, code, clockMs(ctx.now)) ||
    secret === undefined;

  const who = quote(response.userId);
  // Asked whatever the outcome, so a locked-out login costs the same as any other.
  const locked = ctx.allowLogin?.(response.userId);
  const inactive = record?.inactive;
  let failure: string | undefined;
  // Only a client that proved the user's static key may count against the user.
  let failed: "source" | "user" = "user";
  if (!known) {
    failure = `unknown user ${who}`;
    failed = "source";
  } else if (!keyOk) {
    failure = `wrong client key for user ${who}`;
    failed = "source";
  } else if (inactive?.removed) {
    // Only the key is remembered: nothing more to check.
  } else if (!second.ok && second.factor === "JWT") {
    failure = jwtVerdict === undefined
      ? `no JWT from user ${who}`
      : jwtVerdict.ok
      ? `wrong JWT for user ${who}`
      : `JWT for user ${who} refused: ${jwtVerdict.reason}`;
  } else if (!second.ok) failure = `wrong ${second.factor} for user ${who}`;
  else if (!totpOk) {
    failure = code === ""
      ? `missing TOTP code for user ${who}`
      : `wrong TOTP code for user ${who}: codes are accepted within ${
        TOTP_WINDOW_STEPS * TOTP_PERIOD_SECONDS
      } s of this server's clock, so a clock off on the client or here is the likely cause ` +
        "(compare both with an NTP source)";
  }
  if (failure !== undefined) {
    wipe(ck4);
    return {
      type: "reject",
      reason: failure,
      ...(failed === "user" ? { user: response.userId } : {}),
      failed,
    };
  }
  if (inactive !== undefined) {
    // The user's own client, reconnecting: refused, the same bytes, but no failed login.
    wipe(ck4);
    return { type: "reject", reason: `user ${who} refused: ${inactive.reason}` };
  }
  if (locked !== undefined) {
    // Right credentials, but refused: the same verdict (and bytes) as wrong ones.
    wipe(ck4);
    return { type: "reject", reason: `user ${who} refused: ${locked}`, user: response.userId };
  }
  const h4 = mixHash(h3, keyTag, tokenTag);
  ctx.trace("h4", h4);
  const sessionId = ctx.random(SESSION_ID_BYTES);
  return createResult(ctx, s, ck4, h4, {
    sessionId,
    userId: response.userId,
    resumed: false,
    ...(jwtVerdict?.ok && second.factor === "JWT" ? { jwt: jwtVerdict.claims } : {}),
  });
}

/**
 * Which session a resume Hello names, and whether its binder proves the
 * secret. Never refuses here: the reason is kept for after the Response.
 */
function resolveResume(
  ctx: ServerContext,
  ext: ResumeExtension,
  hc: Uint8Array,
  plain: Uint8Array,
): ServerResume {
  let found: { sessionId: Uint8Array; secret: Uint8Array; userId: string } | undefined;
  let failure: string | undefined;
  if (ext.kind === "ticket") {
    const opened = ctx.tickets?.inspect(ext.identity);
    if (opened === undefined) failure = "resume by ticket, but this server has no ticket keyring";
    else if ("reason" in opened) failure = opened.reason;
    else {
      const t = opened.state;
      found = { sessionId: t.sessionId, secret: t.resumptionSecret, userId: t.userId };
      // The server that holds the session knows its latest secret: an older ticket is spent.
      const live = ctx.lookupSession?.(t.sessionId);
      if (live !== undefined && !ctEqual(live.resumptionSecret, t.resumptionSecret)) {
        failure = `ticket for session ${short(t.sessionId)} holds a superseded resumption secret`;
      }
    }
  } else if (ctx.lookupSession === undefined) {
    failure = "resume by session id, but this server has no session table";
  } else {
    const rec = ctx.lookupSession(ext.identity);
    const what = `session ${short(ext.identity)}`;
    if (rec === undefined) failure = `${what} is unknown, expired or released`;
    else if (rec.resumptionSecret.length !== SECRET_BYTES) {
      failure = `${what} has a resumption secret of length ${rec.resumptionSecret.length}`;
    } else {
      found = {
        sessionId: ext.identity.slice(),
        secret: rec.resumptionSecret.slice(),
        userId: rec.userId,
      };
    }
  }
  const secret = found?.secret ?? STAND_IN_SECRET.slice();
  const binder = resumeBinder(secret, hc, plain.subarray(0, plain.length - BINDER_BYTES));
  const binderOk = ctEqual(binder, ext.binder);
  const psk = resumePsk(secret);
  wipe(secret, binder);
  const sessionId = found?.sessionId ?? new Uint8Array(SESSION_ID_BYTES);
  const userId = found?.userId ?? "";
  if (failure === undefined && !binderOk) {
    failure = `resume binder for session ${short(sessionId)} does not verify ` +
      "(not this session's current resumption secret)";
  }
  const user = ctx.lookupUser(userId);
  if (failure === undefined) {
    if (user === undefined) {
      failure = `user ${quote(userId)} of session ${short(sessionId)} no longer exists`;
    } else if (user.inactive !== undefined) {
      // Disabled, expired or removed since the login: no way back in by resuming either.
      failure = `user ${quote(userId)} of session ${
        short(sessionId)
      } refused: ${user.inactive.reason}`;
    }
  }
  if (failure === undefined && ext.kind === "ticket" && isJwtUser(user)) {
    // A ticket would carry neither the token's exp nor its routes claim (section 14.6).
    failure = `ticket for session ${short(sessionId)} of user ${quote(userId)}, ` +
      "who logs in with a JWT: JWT sessions resume by session id only";
  }
  return { psk, sessionId, userId, failure };
}

/** The resume Response: the resume tag proves the resumption PSK; then the Result. */
function consumeResumeResponse(
  ctx: ServerContext,
  s: ExpectResumeResponse,
  frame: Uint8Array,
): { bytes: Uint8Array; state: ExpectFinish } | Verdict {
  const sealed = frame.subarray(0, frame.length - MAC_BYTES);
  const tag = frame.subarray(frame.length - MAC_BYTES);
  let bodyFailure: string | undefined;
  try {
    const plain = openFrame(s.keys, s.h, sealed);
    try {
      decodeResumeResponseBody(plain);
    } catch (e) {
      bodyFailure = `malformed resume response: ${detail(e)}`;
    }
  } catch {
    bodyFailure = "response does not open (not sealed under this handshake's keys)";
  }
  const h3 = mixHash(s.h, sealed);
  const ck4 = mixKey(s.ck, s.resume.psk);
  wipe(s.resume.psk);
  // Computed and compared whatever the outcome, so the time taken does not tell.
  const tagOk = ctEqual(transcriptMac(ck4, "resume tag", h3), tag);
  const { sessionId, userId } = s.resume;
  const failure = s.resume.failure ?? bodyFailure ??
    (tagOk ? undefined : `resume tag for session ${short(sessionId)} does not verify`);
  if (failure !== undefined) {
    wipe(ck4);
    return reject(failure);
  }
  const h4 = mixHash(h3, tag);
  ctx.trace("h3", h3);
  ctx.trace("ck4", ck4);
  ctx.trace("h4", h4);
  return createResult(ctx, s, ck4, h4, { sessionId, userId, resumed: true });
}

/**
 * The Result (and, with a ticket keyring, the ticket frame after it). The
 * final secrets are derived now, from the Finish the client must send, so
 * the ticket can carry the new resumption secret. Wipes ck4.
 */
function createResult(
  ctx: ServerContext,
  negotiated: { version: number; kex: KexId; aead: AeadId; recordPadding: number | undefined },
  ck4: Uint8Array,
  h4: Uint8Array,
  session: { sessionId: Uint8Array; userId: string; resumed: boolean; jwt?: JwtClaims },
): { bytes: Uint8Array; state: ExpectFinish } {
  // No ticket for a JWT user's session (section 14.6): it resumes by session id only, on the
  // server that holds it, which keeps its end at exp and its routes claim.
  const tickets = isJwtUser(ctx.lookupUser(session.userId)) ? undefined : ctx.tickets;
  const resumable = tickets !== undefined || ctx.lookupSession !== undefined;
  const asked = negotiated.recordPadding;
  const recordPadding = asked === undefined
    ? ctx.recordPadding
    : agreePadding(asked, ctx.recordPadding);
  const body = encodeResultBody({
    sessionId: session.sessionId,
    paddingLength: paddingLength(ctx.random, ctx.paddingMax),
    ...(tickets === undefined ? {} : { ticketFollows: true }),
    ...(resumable ? { resumable } : {}),
    ...(asked === undefined ? {} : { recordPadding: PADDING_WIRE_IDS[recordPadding!] }),
  });
  const resultSealed = sealFrame(frameKeys(ck4, "server hs", h4), h4, body);
  const h5 = mixHash(h4, resultSealed);
  const mac = transcriptMac(ck4, "server finished", h5);
  const h6 = mixHash(h5, mac);
  const expected = transcriptMac(ck4, "client finished", h6);
  const h7 = mixHash(h6, expected);
  const secrets: SessionSecrets = {
    version: negotiated.version,
    kex: negotiated.kex,
    aead: negotiated.aead,
    sessionId: session.sessionId,
    ...finalSecrets(ck4, h7),
    userId: session.userId,
    transcriptHash: h7,
    resumed: session.resumed,
    resumable,
    ...(recordPadding === undefined ? {} : { recordPadding }),
  };
  const parts = [resultSealed, mac];
  if (tickets !== undefined) {
    const ticket = tickets.seal({
      sessionId: session.sessionId,
      resumptionSecret: secrets.resumptionSecret,
      userId: session.userId,
      issuedMs: clockMs(ctx.now),
    });
    // Outside the transcript (it is final) but sealed under a key bound to all of it.
    parts.push(sealFrame(frameKeys(ck4, "ticket", h7), h7, ticket));
    secrets.ticket = ticket;
  }
  wipe(ck4);
  return {
    bytes: concat(parts),
    state: {
      kind: "expect_finish",
      expected,
      userId: session.userId,
      secrets,
      ...(session.jwt === undefined ? {} : { jwt: session.jwt }),
    },
  };
}

function wipeSecrets(x: SessionSecrets): void {
  wipe(x.clientToServer, x.serverToClient, x.resumptionSecret);
}

/** The Finish: MAC over the whole transcript; then the session secrets. */
function consumeFinish(
  s: ExpectFinish,
  finish: Uint8Array,
): { secrets: SessionSecrets } | Verdict {
  const ok = ctEqual(finish, s.expected);
  wipe(s.expected);
  if (!ok) {
    wipeSecrets(s.secrets);
    return reject(`Finish MAC does not match the transcript for user ${quote(s.userId)}`);
  }
  return { secrets: s.secrets };
}

/**
 * Server handshake engine for one connection. Feed every received chunk to
 * `push()` and act on the step: "send" (write the bytes), "probe" (write
 * `received()` to the fallback and splice the sockets), "reject" (close),
 * "done" (start the record layer; `rest` holds the first record bytes).
 *
 * @example
 * ```ts
 * import { generateServerIdentity, ReplayGuard, ServerHandshake } from "./mod.ts";
 * const server = new ServerHandshake({
 *   identity: generateServerIdentity(),
 *   lookupUser: () => undefined,
 *   replay: new ReplayGuard(),
 *   now: Date.now,
 * });
 * const step = server.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"));
 * // step.type === "probe": forward server.received() to the fallback web server
 * ```
 */
export class ServerHandshake {
  #ctx: ServerContext;
  #log: (msg: string) => void;
  #state: ServerState = { kind: "expect_hello" };
  #in = new ByteQueue();
  #received: Uint8Array[] = [];

  /** Checks the options; throws `TypeError` or `RangeError` for a bad one. */
  constructor(opts: ServerHandshakeOptions) {
    const clockWindowMs = opts.clockWindowMs ?? DEFAULT_CLOCK_WINDOW_MS;
    if (!(clockWindowMs >= 0) || !Number.isFinite(clockWindowMs)) {
      throw new RangeError(`Cannot use clock window ${clockWindowMs} ms: not a finite number >= 0`);
    }
    const trace = opts.trace;
    this.#ctx = {
      identity: opts.identity,
      publicKey: serverPublicKey(opts.identity),
      lookupUser: opts.lookupUser,
      replay: opts.replay,
      now: opts.now,
      random: opts.random ?? randomBytes,
      kex: checkList("key exchange", opts.kex, KEX_IDS),
      aead: checkList("AEAD", opts.aead, AEAD_IDS),
      clockWindowMs,
      paddingMax: checkPaddingMax(opts.paddingMax, MAX_PADDING),
      recordPadding: checkPaddingMode(opts.recordPadding),
      trace: trace === undefined ? () => {} : (name, v) => trace(name, v.slice()),
      lookupSession: opts.lookupSession,
      tickets: opts.tickets,
      allowLogin: opts.allowLogin,
      mac1Key: cookieKeys(serverPublicKey(opts.identity)).mac1,
      cookie: opts.cookie,
    };
    this.#log = opts.log ?? (() => {});
  }

  /** Every byte pushed so far, in order (a copy), for forwarding to the fallback. */
  received(): Uint8Array {
    return concat(this.#received);
  }

  /**
   * Feeds received bytes and returns what to do. Never throws for peer
   * input; throws `ProtocolError` `BAD_STATE` when called after a final step.
   * An empty chunk re-examines bytes already buffered.
   */
  push(chunk: Uint8Array): ServerStep {
    const k = this.#state.kind;
    if (k === "done" || k === "probe" || k === "reject") {
      throw new ProtocolError(
        "BAD_STATE",
        `Cannot push handshake bytes: the handshake ended (${k})`,
      );
    }
    if (chunk.length > 0) this.#received.push(chunk.slice());
    this.#in.push(chunk);
    const step = this.#step();
    if (step.type === "probe" || step.type === "reject") this.#end(step.type);
    if (step.type === "cookie") this.#end("probe");
    return step;
  }

  #step(): ServerStep {
    let s = this.#state;
    if (s.kind === "expect_hello") {
      if (this.#in.length < HELLO_HEADER_BYTES) return { type: "need_more" };
      const header = consumeHelloHeader(this.#ctx, this.#in.peek(HELLO_HEADER_BYTES));
      if ("type" in header) return header;
      this.#state = s = header;
    }
    switch (s.kind) {
      case "reading_hello": {
        const total = HELLO_HEADER_BYTES + s.ctLen;
        if (this.#in.length < total) return { type: "need_more" };
        const frame = this.#in.take(total).subarray(HELLO_HEADER_BYTES - LENGTH_BYTES);
        const out = consumeHello(this.#ctx, s, frame, this.#log);
        if ("type" in out) return out;
        this.#state = out.state;
        return { type: "send", bytes: out.bytes, hello: out.hello };
      }
      case "expect_response": {
        if (this.#in.length < LENGTH_BYTES) return { type: "need_more" };
        const ctLen = frameLength(s.keys, this.#in.peek(LENGTH_BYTES));
        if (ctLen < RESPONSE_CT_MIN || ctLen > RESPONSE_CT_MAX) {
          return reject(
            `response length ${ctLen} is outside ${RESPONSE_CT_MIN}..${RESPONSE_CT_MAX}`,
          );
        }
        const total = LENGTH_BYTES + ctLen + 2 * MAC_BYTES;
        if (this.#in.length < total) return { type: "need_more" };
        const out = consumeResponse(this.#ctx, s, this.#in.take(total));
        if ("type" in out) return out;
        this.#state = out.state;
        return { type: "send", bytes: out.bytes };
      }
      case "expect_resume_response": {
        if (this.#in.length < LENGTH_BYTES) return { type: "need_more" };
        const ctLen = frameLength(s.keys, this.#in.peek(LENGTH_BYTES));
        if (ctLen < RESUME_CT_MIN || ctLen > RESUME_CT_MAX) {
          return reject(
            `resume response length ${ctLen} is outside ${RESUME_CT_MIN}..${RESUME_CT_MAX}`,
          );
        }
        const total = LENGTH_BYTES + ctLen + MAC_BYTES;
        if (this.#in.length < total) return { type: "need_more" };
        const out = consumeResumeResponse(this.#ctx, s, this.#in.take(total));
        if ("type" in out) return out;
        this.#state = out.state;
        return { type: "send", bytes: out.bytes };
      }
      case "expect_finish": {
        if (this.#in.length < FINISH_BYTES) return { type: "need_more" };
        const out = consumeFinish(s, this.#in.take(FINISH_BYTES));
        if ("type" in out) return out;
        this.#state = { kind: "done" };
        return {
          type: "done",
          secrets: out.secrets,
          userId: s.userId,
          rest: this.#in.rest(),
          resumed: out.secrets.resumed,
          ...(s.jwt === undefined ? {} : { jwt: s.jwt }),
        };
      }
      default:
        throw new ProtocolError("BAD_STATE", `Cannot push handshake bytes in state ${s.kind}`);
    }
  }

  #end(kind: "probe" | "reject"): void {
    const s = this.#state;
    if (s.kind === "reading_hello") wipe(s.ck, s.keys.key);
    if (s.kind === "expect_response") wipe(s.ck, s.keys.key, s.ephemeral);
    if (s.kind === "expect_resume_response") wipe(s.ck, s.keys.key, s.resume.psk);
    if (s.kind === "expect_finish") {
      wipe(s.expected);
      wipeSecrets(s.secrets);
    }
    this.#state = { kind };
  }
}
