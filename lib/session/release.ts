/**
 * Graceful session release (docs/PROTOCOL.md part 4 (re-key and release) section 4):
 * the three-step release and the one-way NOTICE of docs/PROTOCOL.md part 4 section 4, as a pure
 * state machine over RELEASE frame bodies.
 *
 * ```
 * REQUEST   = 1 ‖ nonce (16) ‖ MAC(K, "ns1 release request" ‖ role ‖ nonce)        49 bytes
 * CHALLENGE = 2 ‖ random (32) ‖ nonce + 1 (16)                                     49 bytes
 * CONFIRM   = 3 ‖ MAC(K, "ns1 release confirm" ‖ nonce ‖ random)                  33 bytes
 * NOTICE    = 4 ‖ reason u8 ‖ MAC(K, "ns1 release notice" ‖ role ‖ reason)         34 bytes
 * MAC       = HMAC-SHA256; K = HKDF-Expand-Label(resumption_secret, "release", session_id, 32)
 * ```
 *
 * @example
 * ```ts
 * import { deriveReleaseKey, ReleaseState } from "./release.ts";
 * const key = deriveReleaseKey(new Uint8Array(32), new Uint8Array(16));
 * const client = new ReleaseState(key, "client"), server = new ReleaseState(key, "server");
 * const challenge = server.consume(client.request()).reply!;
 * const done = client.consume(challenge); // { reply: CONFIRM, released: true }
 * console.log(server.consume(done.reply!).released, done.released); // true true
 * ```
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ctEqual, hkdfExpandLabel, randomBytes, type RandomSource, wipe } from "../crypto/mod.ts";
import { ProtocolError } from "../errors.ts";

/** Subtype byte of a RELEASE body. */
export const ReleaseSubtype = {
  /** Step 1 (Release_Request): nonce and MAC. */
  REQUEST: 1,
  /** Step 2 (Release_Challenge): random string and nonce + 1. */
  CHALLENGE: 2,
  /** Step 3 (Release_Confirm): MAC over the random string. */
  CONFIRM: 3,
  /** One-way exception release (NOTICE). */
  NOTICE: 4,
} as const;

/**
 * Why a NOTICE was sent. A receiver keeps unknown values as numbers.
 *
 * @example
 * ```ts
 * import { ReleaseReason } from "./release.ts";
 * ReleaseReason.NO_RESPONSE; // 1
 * ```
 */
export const ReleaseReason = {
  /** No reason given. */
  UNSPECIFIED: 0,
  /** The peer did not answer a release request in time (a NOTICE follows). */
  NO_RESPONSE: 1,
  /** The sender is shutting down. */
  SHUTDOWN: 2,
  /** The user's access was revoked or the session was closed by an operator. */
  REVOKED: 3,
  /** The session was idle too long. */
  IDLE: 4,
  /** An internal error; the sender gives the session up. */
  ERROR: 5,
  /** The user's data quota for the current period is used up. */
  QUOTA: 6,
  /** Over a tunnel limit (the user's `max_tunnels` or the server's `limits.max_tunnels`). */
  LIMIT: 7,
} as const;

const RELEASE_REASON_TEXT: readonly string[] = [
  "no reason given",
  "no answer to a release request",
  "shutting down",
  "access revoked: the user was disabled, expired, removed or kicked",
  "idle too long",
  "internal error",
  "the user's data quota is used up; ask the operator or wait for the next period",
  "too many tunnels for this user or server; close another client first",
];

/**
 * What a NOTICE reason code means, for the log of the side that receives it.
 *
 * @example
 * ```ts
 * import { describeReleaseReason } from "./release.ts";
 * describeReleaseReason(2); // "shutting down"
 * ```
 */
export function describeReleaseReason(code: number): string {
  return RELEASE_REASON_TEXT[code] ?? `reason ${code}`;
}

/** Bytes of the request nonce. */
export const RELEASE_NONCE_BYTES = 16;
/** Bytes of the challenge's random string. */
export const RELEASE_RANDOM_BYTES = 32;
/** Bytes of every MAC (HMAC-SHA256). */
export const RELEASE_MAC_BYTES = 32;
/** Bytes of the release key. */
export const RELEASE_KEY_BYTES = 32;
/** Whole body sizes, subtype byte included. */
export const RELEASE_BODY_BYTES = {
  request: 1 + RELEASE_NONCE_BYTES + RELEASE_MAC_BYTES,
  challenge: 1 + RELEASE_RANDOM_BYTES + RELEASE_NONCE_BYTES,
  confirm: 1 + RELEASE_MAC_BYTES,
  notice: 1 + 1 + RELEASE_MAC_BYTES,
} as const;

/** HKDF and MAC labels (ASCII; `"ns1 "` is part of every MAC label). */
export const RELEASE_LABELS = {
  key: "release",
  request: "ns1 release request",
  confirm: "ns1 release confirm",
  notice: "ns1 release notice",
} as const;

/** A decoded RELEASE body. Byte fields are views of the decoded bytes. */
export type ReleaseBody =
  | { type: "request"; nonce: Uint8Array; mac: Uint8Array }
  | { type: "challenge"; random: Uint8Array; nonce: Uint8Array }
  | { type: "confirm"; mac: Uint8Array }
  | { type: "notice"; reason: number; mac: Uint8Array };

function field(what: string, b: unknown, n: number): Uint8Array {
  if (!(b instanceof Uint8Array)) {
    throw new TypeError(`Cannot encode release body: ${what} is not a Uint8Array`);
  }
  if (b.length !== n) {
    throw new RangeError(`Cannot encode release body: ${what} length ${b.length} is not ${n}`);
  }
  return b;
}

/**
 * Encodes a RELEASE body (subtype byte + fixed-size fields).
 *
 * @example
 * ```ts
 * import { encodeReleaseBody } from "./release.ts";
 * encodeReleaseBody({ type: "confirm", mac: new Uint8Array(32) }).length; // 33
 * ```
 */
export function encodeReleaseBody(body: ReleaseBody): Uint8Array {
  switch (body.type) {
    case "request": {
      const out = new Uint8Array(RELEASE_BODY_BYTES.request);
      out[0] = ReleaseSubtype.REQUEST;
      out.set(field("nonce", body.nonce, RELEASE_NONCE_BYTES), 1);
      out.set(field("MAC", body.mac, RELEASE_MAC_BYTES), 1 + RELEASE_NONCE_BYTES);
      return out;
    }
    case "challenge": {
      const out = new Uint8Array(RELEASE_BODY_BYTES.challenge);
      out[0] = ReleaseSubtype.CHALLENGE;
      out.set(field("random", body.random, RELEASE_RANDOM_BYTES), 1);
      out.set(field("nonce", body.nonce, RELEASE_NONCE_BYTES), 1 + RELEASE_RANDOM_BYTES);
      return out;
    }
    case "confirm": {
      const out = new Uint8Array(RELEASE_BODY_BYTES.confirm);
      out[0] = ReleaseSubtype.CONFIRM;
      out.set(field("MAC", body.mac, RELEASE_MAC_BYTES), 1);
      return out;
    }
    case "notice": {
      const r = body.reason;
      if (!Number.isInteger(r) || r < 0 || r > 255) {
        throw new RangeError(`Cannot encode release body: reason ${r} is not a u8`);
      }
      const out = new Uint8Array(RELEASE_BODY_BYTES.notice);
      out[0] = ReleaseSubtype.NOTICE;
      out[1] = r;
      out.set(field("MAC", body.mac, RELEASE_MAC_BYTES), 2);
      return out;
    }
    default:
      throw new TypeError(
        `Cannot encode release body: unknown type "${String((body as { type: unknown }).type)}"`,
      );
  }
}

/**
 * Decodes a RELEASE body. Throws `ProtocolError` `MALFORMED` for an empty
 * body, an unknown subtype or a length other than that subtype's.
 *
 * @example
 * ```ts
 * import { decodeReleaseBody } from "./release.ts";
 * decodeReleaseBody(new Uint8Array(33).fill(3, 0, 1)).type; // "confirm"
 * ```
 */
export function decodeReleaseBody(bytes: Uint8Array): ReleaseBody {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot decode release body: not a Uint8Array");
  }
  if (bytes.length === 0) throw new ProtocolError("MALFORMED", "Cannot decode release body: empty");
  const t = bytes[0]!;
  const want = t === ReleaseSubtype.REQUEST
    ? RELEASE_BODY_BYTES.request
    : t === ReleaseSubtype.CHALLENGE
    ? RELEASE_BODY_BYTES.challenge
    : t === ReleaseSubtype.CONFIRM
    ? RELEASE_BODY_BYTES.confirm
    : t === ReleaseSubtype.NOTICE
    ? RELEASE_BODY_BYTES.notice
    : undefined;
  if (want === undefined) {
    throw new ProtocolError("MALFORMED", `Cannot decode release body: unknown subtype ${t}`);
  }
  if (bytes.length !== want) {
    throw new ProtocolError(
      "MALFORMED",
      `Cannot decode release body: subtype ${t} length ${bytes.length} is not ${want}`,
    );
  }
  switch (t) {
    case ReleaseSubtype.REQUEST:
      return {
        type: "request",
        nonce: bytes.subarray(1, 1 + RELEASE_NONCE_BYTES),
        mac: bytes.subarray(1 + RELEASE_NONCE_BYTES),
      };
    case ReleaseSubtype.CHALLENGE:
      return {
        type: "challenge",
        random: bytes.subarray(1, 1 + RELEASE_RANDOM_BYTES),
        nonce: bytes.subarray(1 + RELEASE_RANDOM_BYTES),
      };
    case ReleaseSubtype.CONFIRM:
      return { type: "confirm", mac: bytes.subarray(1) };
    default:
      return { type: "notice", reason: bytes[1]!, mac: bytes.subarray(2) };
  }
}

/**
 * The release key of a session: `HKDF-Expand-Label(resumption_secret,
 * "release", session_id, 32)`. Both sides derive it from the handshake
 * result; it is never sent.
 *
 * @example
 * ```ts
 * import { deriveReleaseKey } from "./release.ts";
 * deriveReleaseKey(new Uint8Array(32), new Uint8Array(16)).length; // 32
 * ```
 */
export function deriveReleaseKey(resumptionSecret: Uint8Array, sessionId: Uint8Array): Uint8Array {
  if (!(resumptionSecret instanceof Uint8Array) || !(sessionId instanceof Uint8Array)) {
    throw new TypeError("Cannot derive release key: inputs must be Uint8Arrays");
  }
  if (resumptionSecret.length !== 32) {
    throw new RangeError(
      `Cannot derive release key: resumption secret length ${resumptionSecret.length} is not 32`,
    );
  }
  return hkdfExpandLabel(resumptionSecret, RELEASE_LABELS.key, sessionId, RELEASE_KEY_BYTES);
}

/** `n + 1 mod 2^128`, big-endian (a new array). */
export function incrementNonce(nonce: Uint8Array): Uint8Array {
  const out = nonce.slice();
  for (let i = out.length - 1; i >= 0; i--) {
    out[i] = (out[i]! + 1) & 0xff;
    if (out[i] !== 0) break;
  }
  return out;
}

const enc = new TextEncoder();
const ROLE_BYTE = { client: 1, server: 2 } as const;

function mac(key: Uint8Array, label: string, ...parts: Uint8Array[]): Uint8Array {
  const h = hmac.create(sha256, key);
  h.update(enc.encode(label));
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Where a `ReleaseState` is. */
export type ReleaseStep = "idle" | "requested" | "challenged" | "released";

/** What `ReleaseState.consume` asks the caller to do. */
export interface ReleaseAction {
  /** A RELEASE body to send. */
  reply?: Uint8Array;
  /**
   * The session is released: send `reply` if any, then close the connection
   * and forget the session (it can never be resumed).
   */
  released?: boolean;
  /** The reason byte of a NOTICE that released the session. */
  reason?: number;
  /** The body was refused (malformed, bad MAC, out of order); nothing was released. */
  error?: string;
}

/**
 * One side's release of one session. Either side may `request()`; if both
 * do at once, the server's request wins (the server ignores the client's;
 * the client abandons its own and answers). `notice()` releases at once.
 * Never throws for peer input: refusals come back as `error`.
 *
 * @example
 * ```ts
 * import { ReleaseReason, ReleaseState } from "./release.ts";
 * const key = new Uint8Array(32).fill(1);
 * const server = new ReleaseState(key, "server"), client = new ReleaseState(key, "client");
 * const r = client.consume(server.notice(ReleaseReason.SHUTDOWN));
 * console.log(r.released, r.reason, server.state); // true 2 "released"
 * ```
 */
export class ReleaseState {
  readonly #key: Uint8Array;
  readonly #role: "client" | "server";
  readonly #random: RandomSource;
  #step: ReleaseStep = "idle";
  /** Our request's nonce (requested), or the peer's (challenged). */
  #nonce: Uint8Array | undefined;
  /** Our challenge's random string (challenged). */
  #challenge: Uint8Array | undefined;

  /** Copies `key` (32 bytes); the caller wipes its own copy. */
  constructor(key: Uint8Array, role: "client" | "server", random: RandomSource = randomBytes) {
    if (!(key instanceof Uint8Array)) {
      throw new TypeError("Cannot create release state: key is not a Uint8Array");
    }
    if (key.length !== RELEASE_KEY_BYTES) {
      throw new RangeError(
        `Cannot create release state: key length ${key.length} is not ${RELEASE_KEY_BYTES}`,
      );
    }
    if (role !== "client" && role !== "server") {
      throw new TypeError(`Cannot create release state: unknown role "${String(role)}"`);
    }
    this.#key = key.slice();
    this.#role = role;
    this.#random = random;
  }

  /** The current step. */
  get state(): ReleaseStep {
    return this.#step;
  }

  /** Whether the session is released (completed, or a NOTICE sent or accepted). */
  get released(): boolean {
    return this.#step === "released";
  }

  /**
   * Step 1: returns a REQUEST body. Throws `ProtocolError` `BAD_STATE`
   * unless idle.
   */
  request(): Uint8Array {
    if (this.#step !== "idle") {
      throw new ProtocolError("BAD_STATE", `Cannot request release in state "${this.#step}"`);
    }
    const nonce = this.#draw(RELEASE_NONCE_BYTES);
    this.#nonce = nonce;
    this.#step = "requested";
    return encodeReleaseBody({
      type: "request",
      nonce,
      mac: mac(this.#key, RELEASE_LABELS.request, Uint8Array.of(ROLE_BYTE[this.#role]), nonce),
    });
  }

  /**
   * Returns a NOTICE body (one-way exception release) and
   * releases this side at once: send it best-effort, then close. Throws
   * `ProtocolError` `BAD_STATE` once released.
   */
  notice(reason: number = ReleaseReason.UNSPECIFIED): Uint8Array {
    if (this.#step === "released") {
      throw new ProtocolError("BAD_STATE", "Cannot send release notice: already released");
    }
    if (!Number.isInteger(reason) || reason < 0 || reason > 255) {
      throw new RangeError(`Cannot send release notice: reason ${reason} is not a u8`);
    }
    const body = encodeReleaseBody({
      type: "notice",
      reason,
      mac: mac(
        this.#key,
        RELEASE_LABELS.notice,
        Uint8Array.of(ROLE_BYTE[this.#role], reason),
      ),
    });
    this.#finish();
    return body;
  }

  /** Consumes a RELEASE body from the peer. */
  consume(body: Uint8Array): ReleaseAction {
    if (this.#step === "released") {
      return { error: "Cannot consume release body: session already released" };
    }
    let msg: ReleaseBody;
    try {
      msg = decodeReleaseBody(body);
    } catch (e) {
      return { error: e instanceof Error ? e.message : String(e) };
    }
    const peerRole = Uint8Array.of(ROLE_BYTE[this.#role === "client" ? "server" : "client"]);
    switch (msg.type) {
      case "request": {
        const want = mac(this.#key, RELEASE_LABELS.request, peerRole, msg.nonce);
        if (!ctEqual(msg.mac, want)) {
          return { error: "Cannot accept release request: MAC does not match" };
        }
        if (this.#step === "challenged") {
          return { error: "Cannot accept release request: a challenge is already outstanding" };
        }
        if (this.#step === "requested") {
          // Simultaneous requests: the server's wins.
          if (this.#role === "server") return {};
          wipe(this.#nonce);
        }
        const random = this.#draw(RELEASE_RANDOM_BYTES);
        this.#nonce = msg.nonce.slice();
        this.#challenge = random;
        this.#step = "challenged";
        return {
          reply: encodeReleaseBody({
            type: "challenge",
            random,
            nonce: incrementNonce(msg.nonce),
          }),
        };
      }
      case "challenge": {
        const nonce = this.#nonce;
        if (this.#step !== "requested" || nonce === undefined) {
          return { error: `Cannot accept release challenge in state "${this.#step}"` };
        }
        if (!ctEqual(msg.nonce, incrementNonce(nonce))) {
          return { error: "Cannot accept release challenge: nonce does not match the request" };
        }
        const confirm = mac(this.#key, RELEASE_LABELS.confirm, nonce, msg.random);
        this.#finish();
        return { reply: encodeReleaseBody({ type: "confirm", mac: confirm }), released: true };
      }
      case "confirm": {
        const nonce = this.#nonce, random = this.#challenge;
        if (this.#step !== "challenged" || nonce === undefined || random === undefined) {
          return { error: `Cannot accept release confirm in state "${this.#step}"` };
        }
        const ok = ctEqual(msg.mac, mac(this.#key, RELEASE_LABELS.confirm, nonce, random));
        if (!ok) {
          // One attempt per challenge: a new release must start over.
          wipe(this.#nonce, this.#challenge);
          this.#nonce = this.#challenge = undefined;
          this.#step = "idle";
          return { error: "Cannot accept release confirm: MAC does not match" };
        }
        this.#finish();
        return { released: true };
      }
      case "notice": {
        const want = mac(
          this.#key,
          RELEASE_LABELS.notice,
          Uint8Array.of(peerRole[0]!, msg.reason),
        );
        if (!ctEqual(msg.mac, want)) {
          return { error: "Cannot accept release notice: MAC does not match" };
        }
        this.#finish();
        return { released: true, reason: msg.reason };
      }
    }
  }

  #draw(n: number): Uint8Array {
    const b = this.#random(n);
    if (!(b instanceof Uint8Array) || b.length !== n) {
      throw new RangeError(`Cannot draw release randomness: source did not return ${n} bytes`);
    }
    return b;
  }

  #finish(): void {
    this.#step = "released";
    wipe(this.#key, this.#nonce, this.#challenge);
    this.#nonce = this.#challenge = undefined;
  }
}
