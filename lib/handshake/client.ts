/**
 * The client side of the NitroSocks v1 handshake: a push-based engine over
 * explicit states (`createHello` → `consumeServerHello` → `consumeResult`,
 * then the ticket frame when the server sends one). With the `resume`
 * option the same states run a resumption (spec section 13).
 * No I/O, no timers, no awaits: bytes in, bytes and secrets out.
 * Spec: docs/PROTOCOL.md part 2 (handshake).
 *
 * @module
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { ProtocolError } from "../errors.ts";
import { ctEqual, randomBytes, type RandomSource, wipe } from "../crypto/mod.ts";
import { generateHiddenKeyPair } from "../crypto/elligator.ts";
import { ed25519Verify, x25519SharedSecret } from "../crypto/keys.ts";
import { totp } from "../crypto/totp.ts";
import { SCRAM_KEY_BYTES, scramClientProof } from "../crypto/scram.ts";
import { JWT_MAX_BYTES } from "../crypto/jwt.ts";
import { concat } from "../wire/bytes.ts";
import {
  AEAD_IDS,
  AEAD_TAG_BYTES,
  AEAD_WIRE_IDS,
  type AeadId,
  BINDER_BYTES,
  HELLO_BODY_MAX,
  KEX_IDS,
  KEX_WIRE_IDS,
  type KexId,
  LENGTH_BYTES,
  MAC_BYTES,
  MAX_PADDING,
  MAX_USER_ID_BYTES,
  PADDING_WIRE_IDS,
  type PaddingMode,
  RESULT_BODY_MAX,
  RESULT_BODY_MIN,
  SECRET_BYTES,
  SERVER_HELLO_BODY_MAX,
  SERVER_HELLO_BODY_MIN,
  SESSION_ID_BYTES,
  SIGNATURE_CONTEXT,
  SUPPORTED_VERSIONS,
  TICKET_MAX_BYTES,
  TICKET_MIN_BYTES,
  TOKEN_BYTES,
} from "./constants.ts";
import { SERVER_PUBLIC_KEY_BYTES } from "./identity.ts";
import {
  COOKIE_BYTES,
  COOKIE_REPLY_BYTES,
  cookieKeys,
  helloMac1,
  helloMac2,
  openCookieReply,
} from "./cookie.ts";

import {
  decodeResultBody,
  decodeServerHelloBody,
  encodeHelloBody,
  encodeResponseBody,
  encodeResumeResponseBody,
  type HelloBody,
  type ResumeExtension,
  resumeExtensionLength,
} from "./messages.ts";
import {
  aeadFromWire,
  checkList,
  checkPaddingMax,
  checkPaddingMode,
  clockMs,
  kexFromWire,
  paddingFromWire,
} from "./_negotiate.ts";
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
  ClientCredentials,
  ClientResume,
  ClientStep,
  HandshakeTrace,
  SessionSecrets,
} from "./types.ts";

/** Options for {@linkcode ClientHandshake}. */
export interface ClientHandshakeOptions {
  /** The pinned 64-byte server public key (Ed25519 ‖ X25519). */
  serverPublicKey: Uint8Array;
  /** The user's credentials. */
  credentials: ClientCredentials;
  /** Key exchanges to offer, preferred first; default both, hybrid first. */
  kex?: KexId[];
  /** AEADs to offer, preferred first; default AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305. */
  aead?: AeadId[];
  /** Clock in milliseconds since the Unix epoch. */
  now: () => number;
  /** Source of random bytes; default the platform CSPRNG. */
  random?: RandomSource;
  /** Most padding bytes per message, 0..255; default 255. */
  paddingMax?: number;
  /**
   * The record padding mode to ask for (a padding extension in the Hello,
   * section 4.7); the session then uses the mode the Result names. Absent:
   * no extension, and `SessionSecrets.recordPadding` stays unset.
   */
  recordPadding?: PaddingMode;
  /** Receives intermediate secrets; for test vectors only. */
  trace?: HandshakeTrace;
  /**
   * Resume this session instead of logging in: the Hello carries the ticket
   * (or the session id) and a binder, the Response a tag proving the
   * resumption secret; the credentials are not sent. A refusal looks like
   * any failed login (`closed()` after the Response): connect again without
   * `resume`.
   */
  resume?: ClientResume;
  /**
   * The cookie from the server's last cookie reply (a `cookie` step,
   * section 15): the Hello's mac2 is made with it, so a server under load
   * goes on with the handshake.
   */
  cookie?: Uint8Array;
}

const SIGNATURE_PREFIX = new TextEncoder().encode(SIGNATURE_CONTEXT);
const HTTP_PREFIX = new TextEncoder().encode("HTTP/");
const encoder = new TextEncoder();

interface ClientContext {
  signPublic: Uint8Array;
  dhPublic: Uint8Array;
  serverPublicKey: Uint8Array;
  credentials: ClientCredentials;
  kex: KexId[];
  aead: AeadId[];
  now: () => number;
  random: RandomSource;
  paddingMax: number;
  recordPadding: PaddingMode | undefined;
  trace: HandshakeTrace;
  resume: ClientResume | undefined;
  cookie: Uint8Array | undefined;
  cookieKeys: { mac1: Uint8Array; reply: Uint8Array };
}

/** A resumption in progress: the PSK to mix and the session it must name. */
interface PendingResume {
  psk: Uint8Array;
  sessionId: Uint8Array;
}

/** Waiting for the ServerHello; holds what is needed to open and answer it. */
interface ExpectServerHello {
  kind: "expect_server_hello";
  ck: Uint8Array;
  h: Uint8Array;
  keys: FrameKeys;
  ephemeral: Uint8Array;
  mlkemSecret: Uint8Array | undefined;
  resume: PendingResume | undefined;
  /** The Hello's mac1: a cookie reply is sealed to it. */
  mac1: Uint8Array;
}

/** Response sent; waiting for the Result. */
interface ExpectResult {
  kind: "expect_result";
  ck: Uint8Array;
  h: Uint8Array;
  keys: FrameKeys;
  version: number;
  kex: KexId;
  aead: AeadId;
  /** When resuming: the session id the Result must carry. */
  resumeSessionId: Uint8Array | undefined;
}

/** Result verified and announced a ticket: waiting for the ticket frame. */
interface ExpectTicket {
  kind: "expect_ticket";
  keys: FrameKeys;
  h: Uint8Array;
  finish: Uint8Array;
  secrets: SessionSecrets;
}

type ClientState =
  | { kind: "start" }
  | ExpectServerHello
  | ExpectResult
  | ExpectTicket
  | { kind: "done" }
  | { kind: "failed" };

function authFailed(detail: string): ProtocolError {
  return new ProtocolError("AUTH_FAILED", `Cannot verify server: ${detail}`, {
    authFailure: "server_identity",
  });
}

/** Builds the Hello (representative ‖ masked_len ‖ sealed body) and the first state. */
function createHello(ctx: ClientContext): { bytes: Uint8Array; state: ExpectServerHello } {
  const ck0 = INITIAL_CHAINING_KEY.slice();
  const h0 = mixHash(ck0, ctx.serverPublicKey);
  const eph = generateHiddenKeyPair(ctx.random);
  const nonce = ctx.random(32);
  const hybrid = ctx.kex.includes("x25519-mlkem768");
  let mlkem: { publicKey: Uint8Array; secretKey: Uint8Array } | undefined;
  if (hybrid) {
    const seed = ctx.random(64);
    mlkem = ml_kem768.keygen(seed);
    wipe(seed);
  }
  const fields: HelloBody = {
    versions: [...SUPPORTED_VERSIONS],
    kex: ctx.kex.map((k) => KEX_WIRE_IDS[k]),
    aead: ctx.aead.map((a) => AEAD_WIRE_IDS[a]),
    nonce,
    timestampMs: clockMs(ctx.now),
    ...(mlkem === undefined ? {} : { mlkemKey: mlkem.publicKey }),
    paddingLength: 0,
    ...(ctx.recordPadding === undefined
      ? {}
      : { recordPadding: PADDING_WIRE_IDS[ctx.recordPadding] }),
  };
  const r = ctx.resume;
  let padMax = Math.min(ctx.paddingMax, HELLO_BODY_MAX - encodeHelloBody(fields).length);
  if (r !== undefined) {
    const ext = resumeExtension(fields, r);
    fields.resume = ext.resume;
    padMax = Math.min(padMax, ext.room);
  }
  fields.paddingLength = paddingLength(ctx.random, padMax);
  const body = encodeHelloBody(fields);
  const hc = mixHash(h0, eph.representative);
  let resume: PendingResume | undefined;
  if (r !== undefined) {
    // The binder covers the transcript so far: hc and every body byte before it.
    const binder = resumeBinder(r.resumptionSecret, hc, body.subarray(0, -BINDER_BYTES));
    body.set(binder, body.length - BINDER_BYTES);
    ctx.trace("binder", binder);
    resume = { psk: resumePsk(r.resumptionSecret), sessionId: r.sessionId };
    wipe(r.resumptionSecret); // our copy; hello() runs once
  }
  const es = x25519SharedSecret(eph.privateKey, ctx.dhPublic);
  ctx.trace("c_eph_private", eph.privateKey);
  ctx.trace("c_eph_public", eph.publicKey);
  ctx.trace("es", es);
  const ck1 = mixKey(ck0, es);
  wipe(es);
  const frame = sealFrame(frameKeys(ck1, "hello", hc), hc, body);
  const h1 = mixHash(hc, frame);
  ctx.trace("ck1", ck1);
  ctx.trace("h1", h1);
  // Section 15: the MACs are outside the transcript; mac1 proves we know the server's key.
  const maskedLen = frame.subarray(0, LENGTH_BYTES);
  const mac1 = helloMac1(ctx.cookieKeys.mac1, eph.representative, maskedLen);
  const mac2 = helloMac2(
    ctx.cookie === undefined ? { ephemeralPrivate: eph.privateKey } : { cookie: ctx.cookie },
    eph.representative,
    maskedLen,
    mac1,
  );
  return {
    bytes: concat([eph.representative, mac1, mac2, frame]),
    state: {
      kind: "expect_server_hello",
      ck: ck1,
      h: h1,
      keys: frameKeys(ck1, "server hello", h1),
      ephemeral: eph.privateKey,
      mlkemSecret: mlkem?.secretKey,
      resume,
      mac1,
    },
  };
}

/**
 * The resume extension (binder still zero) for a Hello with these fields
 * (padding 0), and the room left for padding. The Hello stays within its
 * maximum, so the padding is drawn from what room is left (uniform, not
 * clipped: a clipped size would pile up at the maximum and stand out); a
 * ticket too long to fit at all is replaced by the session id.
 */
function resumeExtension(
  fields: HelloBody,
  r: ClientResume,
): { resume: ResumeExtension; room: number } {
  const room = HELLO_BODY_MAX - encodeHelloBody(fields).length;
  const t = r.ticket;
  const useTicket = t !== undefined && resumeExtensionLength(t.length) <= room;
  const identity = useTicket ? t : r.sessionId;
  return {
    resume: {
      kind: useTicket ? "ticket" : "session_id",
      identity,
      binder: new Uint8Array(BINDER_BYTES),
    },
    room: room - resumeExtensionLength(identity.length),
  };
}

/** Opens and checks the ServerHello; returns the Response and the next state. */
function consumeServerHello(
  ctx: ClientContext,
  s: ExpectServerHello,
  frame: Uint8Array,
): { bytes: Uint8Array; state: ExpectResult } {
  let plain: Uint8Array;
  try {
    plain = openFrame(s.keys, s.h, frame);
  } catch (e) {
    throw authFailedFor(frame, e);
  }
  const sh = decodeServerHelloBody(plain);
  // Seed 000 Sign(ServerCert): the signature covers everything so far.
  const signed = concat([SIGNATURE_PREFIX, mixHash(s.h, sh.signed)]);
  if (!ed25519Verify(ctx.signPublic, signed, sh.signature)) {
    throw authFailed("the server's identity does not match the pinned key (bad signature)");
  }
  const kex = kexFromWire(sh.kex);
  const aead = aeadFromWire(sh.aead);
  if (!SUPPORTED_VERSIONS.includes(sh.version)) {
    throw new ProtocolError(
      "UNSUPPORTED",
      `Cannot accept ServerHello: version ${sh.version} was not offered`,
    );
  }
  if (kex === undefined || !ctx.kex.includes(kex)) {
    throw new ProtocolError(
      "UNSUPPORTED",
      `Cannot accept ServerHello: key exchange ${sh.kex} was not offered`,
    );
  }
  if (aead === undefined || !ctx.aead.includes(aead)) {
    throw new ProtocolError(
      "UNSUPPORTED",
      `Cannot accept ServerHello: AEAD ${sh.aead} was not offered`,
    );
  }
  const h2 = mixHash(s.h, frame);
  const ee = x25519SharedSecret(s.ephemeral, sh.serverEphemeral);
  let ikm = ee;
  ctx.trace("ee", ee);
  if (kex === "x25519-mlkem768") {
    // Decapsulation never throws for a well-sized ciphertext (FIPS 203 implicit rejection).
    const ss = ml_kem768.decapsulate(sh.mlkemCiphertext!, s.mlkemSecret!);
    ctx.trace("mlkem_ss", ss);
    ikm = concat([ee, ss]);
    wipe(ss);
  }
  const ck2 = mixKey(s.ck, ikm);
  wipe(ee, ikm, s.ephemeral, s.mlkemSecret);
  ctx.trace("ck2", ck2);
  ctx.trace("h2", h2);
  const negotiated = { version: sh.version, kex, aead };
  if (s.resume !== undefined) return resumeResponse(ctx, s.resume, ck2, h2, negotiated);

  const creds = ctx.credentials;
  const body = encodeResponseBody({
    userId: creds.userId,
    ...(creds.totpSecret === undefined
      ? {}
      : { totpCode: Number(totp(creds.totpSecret, ctx.now())) }),
    paddingLength: paddingLength(ctx.random, ctx.paddingMax),
    ...(creds.jwt === undefined ? {} : { jwt: creds.jwt }),
  });
  const sealed = sealFrame(frameKeys(ck2, "client hs", h2), h2, body);
  wipe(body);
  const h3 = mixHash(h2, sealed);
  // Proof of the client's private key: se mixed into the chain.
  const se = x25519SharedSecret(creds.clientKey, sh.serverEphemeral);
  const ck3 = mixKey(ck2, se);
  wipe(se);
  const keyTag = transcriptMac(ck3, "key tag", h3);
  // Traced before secondFactor wipes it.
  ctx.trace("h3", h3);
  ctx.trace("ck3", ck3);
  const { ck4, tag: tokenTag } = secondFactor(creds, ck3, h3);
  const h4 = mixHash(h3, keyTag, tokenTag);
  ctx.trace("ck4", ck4);
  ctx.trace("h4", h4);
  return {
    bytes: concat([sealed, keyTag, tokenTag]),
    state: {
      kind: "expect_result",
      ck: ck4,
      h: h4,
      keys: frameKeys(ck4, "server hs", h4),
      ...negotiated,
      resumeSessionId: undefined,
    },
  };
}

/**
 * The second factor's 32-byte field after the key tag, and ck4 with the
 * factor mixed in (PROTOCOL.md part 2 sections 5 and 14). Token: ck4 =
 * Extract(ck3, token), field = the token tag. Password (SCRAM-SHA-256):
 * field = ClientProof over the transcript, masked under ck3; ck4 =
 * Extract(ck3, ClientKey ‖ ServerKey). Wipes ck3.
 */
function secondFactor(
  creds: ClientCredentials,
  ck3: Uint8Array,
  h3: Uint8Array,
): { ck4: Uint8Array; tag: Uint8Array } {
  const pw = creds.password;
  if (pw !== undefined) {
    const proof = scramClientProof(pw.clientKey, passwordAuthMessage(h3));
    const tag = passwordProofField(ck3, h3, proof);
    wipe(proof);
    const psk = passwordPsk(pw.clientKey, pw.serverKey);
    const ck4 = mixKey(ck3, psk);
    wipe(psk);
    return { ck4, tag };
  }
  // Proof of the token (or of the JWT sent in the body): mixed as a PSK.
  const psk = creds.jwt === undefined ? creds.token! : jwtPsk(creds.jwt);
  const ck4 = mixKey(ck3, psk);
  return { ck4, tag: transcriptMac(ck4, "token tag", h3) };
}

/**
 * The resume Response: a sealed padding-only body, then the resume tag made
 * with the resumption PSK mixed into the chain in place of se and token.
 */
function resumeResponse(
  ctx: ClientContext,
  resume: PendingResume,
  ck2: Uint8Array,
  h2: Uint8Array,
  negotiated: { version: number; kex: KexId; aead: AeadId },
): { bytes: Uint8Array; state: ExpectResult } {
  const body = encodeResumeResponseBody({
    paddingLength: paddingLength(ctx.random, ctx.paddingMax),
  });
  const sealed = sealFrame(frameKeys(ck2, "client hs", h2), h2, body);
  const h3 = mixHash(h2, sealed);
  const ck4 = mixKey(ck2, resume.psk);
  wipe(resume.psk);
  const tag = transcriptMac(ck4, "resume tag", h3);
  const h4 = mixHash(h3, tag);
  ctx.trace("h3", h3);
  ctx.trace("ck4", ck4);
  ctx.trace("h4", h4);
  return {
    bytes: concat([sealed, tag]),
    state: {
      kind: "expect_result",
      ck: ck4,
      h: h4,
      keys: frameKeys(ck4, "server hs", h4),
      ...negotiated,
      resumeSessionId: resume.sessionId,
    },
  };
}

/**
 * Opens and checks the Result; returns the Finish, the session secrets and,
 * when the Result announces a ticket, the keys of the ticket frame.
 */
function consumeResult(
  ctx: ClientContext,
  s: ExpectResult,
  frame: Uint8Array,
): { finish: Uint8Array; secrets: SessionSecrets; ticket?: { keys: FrameKeys; h: Uint8Array } } {
  const sealed = frame.subarray(0, frame.length - MAC_BYTES);
  const mac = frame.subarray(frame.length - MAC_BYTES);
  let plain: Uint8Array;
  try {
    plain = openFrame(s.keys, s.h, sealed);
  } catch (e) {
    throw new ProtocolError("AUTH_FAILED", "Cannot verify server: Result does not open", {
      cause: e,
      authFailure: "server_identity",
    });
  }
  const result = decodeResultBody(plain);
  const recordPadding = agreedPadding(ctx, result.recordPadding);
  const h5 = mixHash(s.h, sealed);
  const expected = transcriptMac(s.ck, "server finished", h5);
  if (!ctEqual(expected, mac)) throw authFailed("Result MAC does not match the transcript");
  if (s.resumeSessionId !== undefined && !ctEqual(result.sessionId, s.resumeSessionId)) {
    throw authFailed("the Result of a resumption names another session");
  }
  const h6 = mixHash(h5, mac);
  const finish = transcriptMac(s.ck, "client finished", h6);
  const h7 = mixHash(h6, finish);
  ctx.trace("h7", h7);
  const secrets: SessionSecrets = {
    version: s.version,
    kex: s.kex,
    aead: s.aead,
    sessionId: result.sessionId,
    ...finalSecrets(s.ck, h7),
    userId: ctx.credentials.userId,
    transcriptHash: h7,
    resumed: s.resumeSessionId !== undefined,
    resumable: result.resumable === true,
    ...(recordPadding === undefined ? {} : { recordPadding }),
  };
  const ticket = result.ticketFollows === true
    ? { keys: frameKeys(s.ck, "ticket", h7), h: h7 }
    : undefined;
  wipe(s.ck);
  return ticket === undefined ? { finish, secrets } : { finish, secrets, ticket };
}

/**
 * The record padding mode from the Result's padding extension (section 4.7):
 * present only in answer to ours, and one of the modes we know; without it
 * (a server that predates the extension), our own.
 */
function agreedPadding(ctx: ClientContext, wire: number | undefined): PaddingMode | undefined {
  if (wire === undefined) return ctx.recordPadding;
  const mode = paddingFromWire(wire);
  if (ctx.recordPadding === undefined || mode === undefined) {
    throw new ProtocolError(
      "MALFORMED",
      ctx.recordPadding === undefined
        ? "Cannot decode Result: a padding extension answers no request of ours"
        : `Cannot decode Result: padding mode ${wire} is unknown`,
    );
  }
  return mode;
}

function checkResume(r: ClientResume): ClientResume {
  const bytes = (what: string, b: unknown, min: number, max: number): Uint8Array => {
    if (!(b instanceof Uint8Array)) {
      throw new TypeError(`Cannot resume: ${what} is not a Uint8Array`);
    }
    if (b.length < min || b.length > max) {
      throw new RangeError(
        `Cannot resume: ${what} length ${b.length} is ${
          min === max ? `not ${min}` : `outside ${min}..${max}`
        }`,
      );
    }
    return b.slice();
  };
  const out: ClientResume = {
    sessionId: bytes("session id", r.sessionId, SESSION_ID_BYTES, SESSION_ID_BYTES),
    resumptionSecret: bytes("resumption secret", r.resumptionSecret, SECRET_BYTES, SECRET_BYTES),
  };
  if (r.ticket !== undefined) {
    out.ticket = bytes("ticket", r.ticket, TICKET_MIN_BYTES, TICKET_MAX_BYTES);
  }
  return out;
}

function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(b.length, prefix.length);
  for (let i = 0; i < n; i++) if (b[i] !== prefix[i]) return false;
  return true;
}

function authFailedFor(received: Uint8Array, cause: unknown): ProtocolError {
  if (received.length >= HTTP_PREFIX.length && startsWith(received, HTTP_PREFIX)) {
    return new ProtocolError(
      "AUTH_FAILED",
      "Cannot verify server: it answered as a web server, so it did not accept our Hello " +
        "(wrong server public key, clock more than 2 minutes off, or not a NitroSocks server)",
      { cause, authFailure: "decoy" },
    );
  }
  return authFailed(
    "the server's identity does not match the pinned key (ServerHello does not open)",
  );
}

/**
 * Client handshake engine. Call `hello()` once and send its bytes, then feed
 * every received chunk to `push()` and act on the step it returns.
 *
 * @example
 * ```ts
 * import {
 *   ClientHandshake, generateClientKey, generateServerIdentity, generateToken, ReplayGuard,
 *   serverPublicKey, ServerHandshake,
 * } from "./mod.ts";
 * const identity = generateServerIdentity();
 * const key = generateClientKey();
 * const token = generateToken();
 * const client = new ClientHandshake({
 *   serverPublicKey: serverPublicKey(identity),
 *   credentials: { userId: "alice", clientKey: key.privateKey, token },
 *   now: Date.now,
 * });
 * const server = new ServerHandshake({
 *   identity,
 *   lookupUser: (id) => id === "alice" ? { userId: id, publicKey: key.publicKey, token } : undefined,
 *   replay: new ReplayGuard(),
 *   now: Date.now,
 * });
 * const s1 = server.push(client.hello());           // { type: "send", bytes: ServerHello }
 * const c1 = client.push(s1.type === "send" ? s1.bytes : new Uint8Array());  // send Response
 * const s2 = server.push(c1.type === "send" ? c1.bytes : new Uint8Array());  // send Result
 * const c2 = client.push(s2.type === "send" ? s2.bytes : new Uint8Array());  // done + Finish
 * const s3 = server.push(c2.type === "done" ? c2.send : new Uint8Array());   // done
 * ```
 */
export class ClientHandshake {
  #ctx: ClientContext;
  #state: ClientState = { kind: "start" };
  #in = new ByteQueue();

  /** Checks the options; throws `TypeError` or `RangeError` for a bad one. */
  constructor(opts: ClientHandshakeOptions) {
    const spk = opts.serverPublicKey;
    if (!(spk instanceof Uint8Array) || spk.length !== SERVER_PUBLIC_KEY_BYTES) {
      throw new RangeError(
        `Cannot use server public key: length ${spk?.length} is not ${SERVER_PUBLIC_KEY_BYTES}`,
      );
    }
    const c = opts.credentials;
    const idLen = encoder.encode(c.userId).length;
    if (idLen < 1 || idLen > MAX_USER_ID_BYTES) {
      throw new RangeError(`Cannot use user id: ${idLen} bytes is outside 1..${MAX_USER_ID_BYTES}`);
    }
    if (c.clientKey.length !== 32) {
      throw new RangeError(`Cannot use client key: length ${c.clientKey.length} is not 32`);
    }
    const factors = [c.token, c.password, c.jwt].filter((f) => f !== undefined).length;
    if (factors !== 1) {
      throw new TypeError(
        "Cannot use credentials: give exactly one second factor, a token, a password or a JWT",
      );
    }
    if (c.jwt !== undefined && (c.jwt.length === 0 || c.jwt.length > JWT_MAX_BYTES)) {
      throw new RangeError(`Cannot use JWT: length ${c.jwt.length} is outside 1..${JWT_MAX_BYTES}`);
    }
    if (c.token !== undefined && c.token.length !== TOKEN_BYTES) {
      throw new RangeError(`Cannot use token: length ${c.token.length} is not ${TOKEN_BYTES}`);
    }
    if (
      c.password !== undefined &&
      (c.password.clientKey.length !== SCRAM_KEY_BYTES ||
        c.password.serverKey.length !== SCRAM_KEY_BYTES)
    ) {
      throw new RangeError(`Cannot use password keys: each must be ${SCRAM_KEY_BYTES} bytes`);
    }
    const trace = opts.trace;
    const resume = opts.resume === undefined ? undefined : checkResume(opts.resume);
    if (opts.cookie !== undefined && opts.cookie.length !== COOKIE_BYTES) {
      throw new RangeError(`Cannot use cookie: it must be ${COOKIE_BYTES} bytes`);
    }
    this.#ctx = {
      resume,
      cookie: opts.cookie?.slice(),
      cookieKeys: cookieKeys(spk),
      serverPublicKey: spk.slice(),
      signPublic: spk.slice(0, 32),
      dhPublic: spk.slice(32, 64),
      credentials: { ...c },
      kex: checkList("key exchange", opts.kex, KEX_IDS),
      aead: checkList("AEAD", opts.aead, AEAD_IDS),
      now: opts.now,
      random: opts.random ?? randomBytes,
      paddingMax: checkPaddingMax(opts.paddingMax, MAX_PADDING),
      recordPadding: checkPaddingMode(opts.recordPadding),
      trace: trace === undefined ? () => {} : (name, v) => trace(name, v.slice()),
    };
  }

  /** The Hello to send first. Call once. */
  hello(): Uint8Array {
    if (this.#state.kind !== "start") {
      throw new ProtocolError("BAD_STATE", "Cannot create Hello: hello() was already called");
    }
    try {
      const { bytes, state } = createHello(this.#ctx);
      this.#state = state;
      return bytes;
    } catch (e) {
      this.#state = { kind: "failed" };
      throw e;
    }
  }

  /**
   * Feeds received bytes. Throws `ProtocolError` when the server cannot be
   * trusted (`AUTH_FAILED`), sent something malformed (`MALFORMED`,
   * `TOO_LARGE`) or chose what we did not offer (`UNSUPPORTED`). An empty
   * chunk re-examines bytes already buffered.
   */
  push(chunk: Uint8Array): ClientStep {
    const s = this.#state;
    if (s.kind === "start" || s.kind === "done" || s.kind === "failed") {
      throw new ProtocolError(
        "BAD_STATE",
        `Cannot push handshake bytes: the client handshake is ${
          s.kind === "start" ? "not started (call hello() first)" : s.kind
        }`,
      );
    }
    this.#in.push(chunk);
    try {
      if (s.kind === "expect_server_hello") return this.#onServerHello(s);
      return s.kind === "expect_result" ? this.#onResult(s) : this.#onTicket(s);
    } catch (e) {
      this.#fail();
      throw e;
    }
  }

  /**
   * The error to report when the server closes the connection now: after
   * our Response, a close means the server refused our credentials.
   */
  closed(): ProtocolError {
    const k = this.#state.kind;
    const s = this.#state;
    if (s.kind === "expect_server_hello" && this.#cookieReply(s) !== undefined) {
      return new ProtocolError(
        "CLOSED",
        "Cannot finish handshake: the server is under load and answered with a cookie; " +
          "connect again with it (push() returns it as a cookie step)",
      );
    }
    if (k === "expect_result" && this.#ctx.resume !== undefined) {
      return new ProtocolError(
        "AUTH_FAILED",
        "Cannot resume: the server closed the connection after our resumption proof " +
          "(session unknown, expired or released, or ticket refused); connect again without resume",
        { authFailure: "resume_refused" },
      );
    }
    if (k === "expect_result") {
      return new ProtocolError(
        "AUTH_FAILED",
        "Cannot log in: the server closed the connection after our credentials " +
          "(check user id, client key, token and TOTP secret)",
        { authFailure: "login_refused" },
      );
    }
    const buffered = this.#in.length;
    const head = this.#in.peek(HTTP_PREFIX.length);
    if (
      k === "expect_server_hello" && head.length === HTTP_PREFIX.length &&
      startsWith(head, HTTP_PREFIX)
    ) {
      return authFailedFor(head, undefined);
    }
    return new ProtocolError(
      "CLOSED",
      `Cannot finish handshake: the connection closed while ${
        k === "expect_server_hello" ? "waiting for the ServerHello" : `in state ${k}`
      }${buffered > 0 ? ` (${buffered} bytes of a message buffered)` : ""}`,
    );
  }

  /** The cookie, when exactly a cookie reply to our Hello is buffered. */
  #cookieReply(s: ExpectServerHello): Uint8Array | undefined {
    if (this.#in.length !== COOKIE_REPLY_BYTES) return undefined;
    return openCookieReply(this.#ctx.cookieKeys.reply, this.#in.peek(COOKIE_REPLY_BYTES), s.mac1);
  }

  #onServerHello(s: ExpectServerHello): ClientStep {
    if (this.#in.length < LENGTH_BYTES) return { type: "need_more" };
    // A cookie reply (section 15) is 56 bytes, shorter than any ServerHello; its first two
    // bytes may unmask to any length, so 56 bytes that open as one are one.
    if (this.#in.length === COOKIE_REPLY_BYTES) {
      const cookie = this.#cookieReply(s);
      if (cookie !== undefined) return { type: "cookie", cookie };
    }
    const ctLen = frameLength(s.keys, this.#in.peek(LENGTH_BYTES));
    const min = SERVER_HELLO_BODY_MIN + AEAD_TAG_BYTES,
      max = SERVER_HELLO_BODY_MAX + AEAD_TAG_BYTES;
    if (ctLen < min || ctLen > max) {
      const head = this.#in.peek(HTTP_PREFIX.length);
      if (startsWith(head, HTTP_PREFIX) && head.length < HTTP_PREFIX.length) {
        return { type: "need_more" };
      }
      // Perhaps the start of a cookie reply (section 15): wait for its 56 bytes.
      if (!startsWith(head, HTTP_PREFIX) && this.#in.length < COOKIE_REPLY_BYTES) {
        return { type: "need_more" };
      }
      if (head.length === HTTP_PREFIX.length && startsWith(head, HTTP_PREFIX)) {
        throw authFailedFor(head, undefined);
      }
      throw new ProtocolError(
        ctLen > max ? "TOO_LARGE" : "MALFORMED",
        `Cannot decode ServerHello: length ${ctLen} is outside ${min}..${max}`,
      );
    }
    if (this.#in.length < LENGTH_BYTES + ctLen) return { type: "need_more" };
    const { bytes, state } = consumeServerHello(this.#ctx, s, this.#in.take(LENGTH_BYTES + ctLen));
    this.#state = state;
    return { type: "send", bytes };
  }

  #onResult(s: ExpectResult): ClientStep {
    if (this.#in.length < LENGTH_BYTES) return { type: "need_more" };
    const ctLen = frameLength(s.keys, this.#in.peek(LENGTH_BYTES));
    const min = RESULT_BODY_MIN + AEAD_TAG_BYTES, max = RESULT_BODY_MAX + AEAD_TAG_BYTES;
    if (ctLen < min || ctLen > max) {
      throw new ProtocolError(
        ctLen > max ? "TOO_LARGE" : "MALFORMED",
        `Cannot decode Result: length ${ctLen} is outside ${min}..${max}`,
      );
    }
    const total = LENGTH_BYTES + ctLen + MAC_BYTES;
    if (this.#in.length < total) return { type: "need_more" };
    const { finish, secrets, ticket } = consumeResult(this.#ctx, s, this.#in.take(total));
    if (ticket !== undefined) {
      const next: ExpectTicket = { kind: "expect_ticket", ...ticket, finish, secrets };
      this.#state = next;
      return this.#onTicket(next);
    }
    this.#state = { kind: "done" };
    return { type: "done", send: finish, secrets, rest: this.#in.rest() };
  }

  /** The ticket frame after the Result: `masked_len ‖ AEAD(ticket)` under (ck4, "ticket", h7). */
  #onTicket(s: ExpectTicket): ClientStep {
    if (this.#in.length < LENGTH_BYTES) return { type: "need_more" };
    const ctLen = frameLength(s.keys, this.#in.peek(LENGTH_BYTES));
    const min = TICKET_MIN_BYTES + AEAD_TAG_BYTES, max = TICKET_MAX_BYTES + AEAD_TAG_BYTES;
    if (ctLen < min || ctLen > max) {
      throw new ProtocolError(
        ctLen > max ? "TOO_LARGE" : "MALFORMED",
        `Cannot decode ticket: length ${ctLen} is outside ${min}..${max}`,
      );
    }
    if (this.#in.length < LENGTH_BYTES + ctLen) return { type: "need_more" };
    let ticket: Uint8Array;
    try {
      ticket = openFrame(s.keys, s.h, this.#in.take(LENGTH_BYTES + ctLen));
    } catch (e) {
      throw new ProtocolError("AUTH_FAILED", "Cannot verify server: ticket does not open", {
        cause: e,
        authFailure: "server_identity",
      });
    }
    this.#state = { kind: "done" };
    return {
      type: "done",
      send: s.finish,
      secrets: { ...s.secrets, ticket },
      rest: this.#in.rest(),
    };
  }

  #fail(): void {
    const s = this.#state;
    if (s.kind === "expect_server_hello") {
      wipe(s.ck, s.keys.key, s.ephemeral, s.mlkemSecret, s.resume?.psk);
    }
    if (s.kind === "expect_result") wipe(s.ck, s.keys.key);
    if (s.kind === "expect_ticket") {
      const x = s.secrets;
      wipe(s.keys.key, x.clientToServer, x.serverToClient, x.resumptionSecret);
    }
    this.#state = { kind: "failed" };
  }
}
