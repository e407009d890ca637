/**
 * The server side of the NitroSocks v1 handshake: the probe gate and a
 * push-based engine over explicit states (`consumeHelloHeader` →
 * `consumeHello` → `consumeResponse` → `consumeFinish`). It never throws
 * for peer input: anything wrong before the gate is a "probe" (forward to
 * the fallback), anything wrong after it a "reject" (close, log the reason).
 * Spec: docs/protocol/20-handshake.md.
 *
 * @module
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { ProtocolError } from "../errors.ts";
import { ctEqual, hash, randomBytes, type RandomSource, wipe } from "../crypto/mod.ts";
import { representativeToPublicKey } from "../crypto/elligator.ts";
import { ed25519Sign, x25519PublicKey, x25519SharedSecret } from "../crypto/keys.ts";
import { verifyTotp } from "../crypto/totp.ts";
import { concat } from "../wire/bytes.ts";
import {
  AEAD_IDS,
  AEAD_TAG_BYTES,
  AEAD_WIRE_IDS,
  type AeadId,
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
  REPRESENTATIVE_BYTES,
  RESPONSE_BODY_MAX,
  RESPONSE_BODY_MIN,
  SESSION_ID_BYTES,
  SIGNATURE_CONTEXT,
  SUPPORTED_VERSIONS,
  TOKEN_BYTES,
} from "./constants.ts";
import { type ServerIdentity, serverPublicKey } from "./identity.ts";
import {
  decodeHelloBody,
  decodeResponseBody,
  encodeResultBody,
  encodeServerHelloFields,
} from "./messages.ts";
import { checkList, checkPaddingMax, clockMs } from "./_negotiate.ts";
import type { ReplayGuard } from "./replay.ts";
import {
  ByteQueue,
  finalSecrets,
  type FrameKeys,
  frameKeys,
  frameLength,
  INITIAL_CHAINING_KEY,
  mixHash,
  mixKey,
  openFrame,
  paddingLength,
  sealFrame,
  transcriptMac,
} from "./_schedule.ts";
import type { HandshakeTrace, ServerStep, SessionSecrets, UserRecord } from "./types.ts";

/** Default clock window: Hello timestamps further than this from now are refused. */
export const DEFAULT_CLOCK_WINDOW_MS = 120_000;

/** Options for {@linkcode ServerHandshake}. */
export interface ServerHandshakeOptions {
  identity: ServerIdentity;
  /** Finds a user by id; undefined when unknown. */
  lookupUser: (userId: string) => UserRecord | undefined;
  /** Shared by every connection of this server. */
  replay: ReplayGuard;
  /** Clock in milliseconds since the Unix epoch. */
  now: () => number;
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
  /** Receives intermediate secrets; for test vectors only. */
  trace?: HandshakeTrace;
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
  trace: HandshakeTrace;
}

/** Nothing read yet, or fewer than 34 bytes. */
interface ExpectHello {
  kind: "expect_hello";
}

/** The Hello's first 34 bytes are in: es is known and the length unmasked. */
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
  aead: AeadId;
}

/** Result sent; waiting for the Finish. */
interface ExpectFinish {
  kind: "expect_finish";
  ck: Uint8Array;
  h: Uint8Array;
  expected: Uint8Array;
  sessionId: Uint8Array;
  userId: string;
  version: number;
  kex: KexId;
  aead: AeadId;
}

type ServerState =
  | ExpectHello
  | ReadingHello
  | ExpectResponse
  | ExpectFinish
  | { kind: "done" }
  | { kind: "probe" }
  | { kind: "reject" };

type Verdict = { type: "probe"; reason: string } | { type: "reject"; reason: string };

const SIGNATURE_PREFIX = new TextEncoder().encode(SIGNATURE_CONTEXT);
const HELLO_CT_MIN = HELLO_BODY_MIN + AEAD_TAG_BYTES;
const HELLO_CT_MAX = HELLO_BODY_MAX + AEAD_TAG_BYTES;
const RESPONSE_CT_MIN = RESPONSE_BODY_MIN + AEAD_TAG_BYTES;
const RESPONSE_CT_MAX = RESPONSE_BODY_MAX + AEAD_TAG_BYTES;
const TOTP_DIGITS = 6;

/** Stand-ins for an unknown user, so its Response costs the same work. */
let dummy: { publicKey: Uint8Array; token: Uint8Array; totpSecret: Uint8Array } | undefined;
function dummyUser(): { publicKey: Uint8Array; token: Uint8Array; totpSecret: Uint8Array } {
  dummy ??= {
    publicKey: x25519PublicKey(hash(new TextEncoder().encode("NitroSocks v1 dummy client key"))),
    token: new Uint8Array(TOKEN_BYTES),
    totpSecret: new Uint8Array(20),
  };
  return dummy;
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

function detail(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The first 34 bytes: decode the representative, compute es, unmask the length. */
function consumeHelloHeader(ctx: ServerContext, header: Uint8Array): ReadingHello | Verdict {
  const repr = header.subarray(0, REPRESENTATIVE_BYTES);
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
  const ctLen = frameLength(keys, header.subarray(REPRESENTATIVE_BYTES));
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
): { bytes: Uint8Array; state: ExpectResponse } | Verdict {
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

  const ephemeral = ctx.random(DH_BYTES);
  const ephemeralPublic = x25519PublicKey(ephemeral);
  ctx.trace("s_eph_private", ephemeral);
  let mlkem: { cipherText: Uint8Array; sharedSecret: Uint8Array } | undefined;
  if (kex === "x25519-mlkem768") {
    const m = ctx.random(32);
    try {
      mlkem = ml_kem768.encapsulate(hello.mlkemKey!, m);
    } catch (e) {
      wipe(ephemeral);
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
    wipe(ephemeral, mlkem?.sharedSecret);
    return probe("hello key has low order");
  }
  const ikm = mlkem === undefined ? ee : concat([ee, mlkem.sharedSecret]);
  const ck2 = mixKey(s.ck, ikm);
  wipe(ee, ikm, mlkem?.sharedSecret);
  ctx.trace("ck2", ck2);
  ctx.trace("h2", h2);
  return {
    bytes: sealed,
    state: {
      kind: "expect_response",
      ck: ck2,
      h: h2,
      keys: frameKeys(ck2, "client hs", h2),
      ephemeral,
      version,
      kex,
      aead,
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
  const tokenUsable = known && record.token.length === TOKEN_BYTES;
  const ck4 = mixKey(ck3, tokenUsable ? record!.token : stand.token);
  const tokenMatches = ctEqual(transcriptMac(ck4, "token tag", h3), tokenTag);
  const tokenOk = tokenUsable && tokenMatches;
  const secret = record?.totpSecret;
  const code = response.totpCode === undefined
    ? ""
    : String(response.totpCode).padStart(TOTP_DIGITS, "0");
  const totpOk = verifyTotp(secret ?? stand.totpSecret, code, clockMs(ctx.now)) ||
    secret === undefined;

  const who = quote(response.userId);
  let failure: string | undefined;
  if (!known) failure = `unknown user ${who}`;
  else if (!keyOk) failure = `wrong client key for user ${who}`;
  else if (!tokenOk) failure = `wrong token for user ${who}`;
  else if (!totpOk) failure = `${code === "" ? "missing" : "wrong"} TOTP code for user ${who}`;
  if (failure !== undefined) {
    wipe(ck4);
    return reject(failure);
  }
  const h4 = mixHash(h3, keyTag, tokenTag);
  ctx.trace("h4", h4);
  const sessionId = ctx.random(SESSION_ID_BYTES);
  const body = encodeResultBody({
    sessionId,
    paddingLength: paddingLength(ctx.random, ctx.paddingMax),
  });
  const resultSealed = sealFrame(frameKeys(ck4, "server hs", h4), h4, body);
  const h5 = mixHash(h4, resultSealed);
  const mac = transcriptMac(ck4, "server finished", h5);
  const h6 = mixHash(h5, mac);
  return {
    bytes: concat([resultSealed, mac]),
    state: {
      kind: "expect_finish",
      ck: ck4,
      h: h6,
      expected: transcriptMac(ck4, "client finished", h6),
      sessionId,
      userId: response.userId,
      version: s.version,
      kex: s.kex,
      aead: s.aead,
    },
  };
}

/** The Finish: MAC over the whole transcript; then the session secrets. */
function consumeFinish(
  s: ExpectFinish,
  finish: Uint8Array,
): { secrets: SessionSecrets } | Verdict {
  if (!ctEqual(finish, s.expected)) {
    wipe(s.ck);
    return reject(`Finish MAC does not match the transcript for user ${quote(s.userId)}`);
  }
  const h7 = mixHash(s.h, finish);
  const secrets: SessionSecrets = {
    version: s.version,
    kex: s.kex,
    aead: s.aead,
    sessionId: s.sessionId,
    ...finalSecrets(s.ck, h7),
    userId: s.userId,
    transcriptHash: h7,
  };
  wipe(s.ck, s.expected);
  return { secrets };
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
      trace: trace === undefined ? () => {} : (name, v) => trace(name, v.slice()),
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
        const frame = this.#in.take(total).subarray(REPRESENTATIVE_BYTES);
        const out = consumeHello(this.#ctx, s, frame, this.#log);
        if ("type" in out) return out;
        this.#state = out.state;
        return { type: "send", bytes: out.bytes };
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
      case "expect_finish": {
        if (this.#in.length < FINISH_BYTES) return { type: "need_more" };
        const out = consumeFinish(s, this.#in.take(FINISH_BYTES));
        if ("type" in out) return out;
        this.#state = { kind: "done" };
        return { type: "done", secrets: out.secrets, userId: s.userId, rest: this.#in.rest() };
      }
      default:
        throw new ProtocolError("BAD_STATE", `Cannot push handshake bytes in state ${s.kind}`);
    }
  }

  #end(kind: "probe" | "reject"): void {
    const s = this.#state;
    if (s.kind === "reading_hello") wipe(s.ck, s.keys.key);
    if (s.kind === "expect_response") wipe(s.ck, s.keys.key, s.ephemeral);
    if (s.kind === "expect_finish") wipe(s.ck, s.expected);
    this.#state = { kind };
  }
}
