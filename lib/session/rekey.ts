/**
 * DH re-key exchange (docs/PROTOCOL.md part 4 (re-key and release) section 2): a pure
 * state machine that produces the 32-byte mixin the record layer folds into
 * both directions' keys (`sealer.rekey`, `opener.provideMixin`), giving
 * post-compromise security: an attacker who learned the traffic secrets
 * but does not rewrite the exchange loses the keys after it.
 *
 * ```
 * body  = subtype u8 ‖ x25519_public (32)        subtype 1 INIT, 2 REPLY
 * prk   = HKDF-Extract(salt = "ns1 rekey", ikm = X25519(own_eph, peer_eph))
 * mixin = HKDF-Expand-Label(prk, "rekey mixin", init_public ‖ reply_public, 32)
 * ```
 *
 * The bodies travel in the session layer's REKEY frames, inside records, so
 * the record AEAD authenticates them; this module never does I/O.
 *
 * @example
 * ```ts
 * import { RekeyState } from "./rekey.ts";
 * const server = new RekeyState("server"), client = new RekeyState("client");
 * const init = server.start(); // send in a REKEY frame
 * const { reply, mixin: m1 } = client.consume(init); // client: seal REPLY, then re-key
 * const { mixin: m2 } = server.consume(reply!); // server: re-key
 * console.log(m1!.every((b, i) => b === m2![i])); // true
 * ```
 *
 * @module
 */
import {
  hkdfExpandLabel,
  hkdfExtract,
  randomBytes,
  type RandomSource,
  wipe,
} from "../crypto/mod.ts";
import {
  generateX25519PrivateKey,
  X25519_KEY_BYTES,
  x25519PublicKey,
  x25519SharedSecret,
} from "../crypto/keys.ts";
import { ProtocolError } from "../errors.ts";
import { REKEY_MIXIN_BYTES } from "../record/mod.ts";

export { REKEY_MIXIN_BYTES };

/** Subtype byte of a REKEY body. */
export const RekeySubtype = {
  /** Starts an exchange: the initiator's ephemeral public key. */
  INIT: 1,
  /** Answers an INIT: the responder's ephemeral public key. */
  REPLY: 2,
} as const;

/** Bytes of every REKEY body: subtype + X25519 public key. */
export const REKEY_BODY_BYTES = 1 + X25519_KEY_BYTES;
/** Salt of the mixin's HKDF-Extract (ASCII). */
export const REKEY_SALT = "ns1 rekey";
/** Label of the mixin's HKDF-Expand-Label (`"ns1 "` is prefixed). */
export const REKEY_MIXIN_LABEL = "rekey mixin";

/** Default policy: re-key after 4 GiB of traffic (both directions together). */
export const DEFAULT_REKEY_BYTES = 2 ** 32;
/** Default policy: re-key after 60 minutes. */
export const DEFAULT_REKEY_MS = 60 * 60 * 1000;

/** A decoded REKEY body. */
export interface RekeyBody {
  type: "init" | "reply";
  /** The sender's ephemeral X25519 public key (32 bytes). */
  publicKey: Uint8Array;
}

/**
 * Encodes a REKEY body: subtype ‖ public key (33 bytes).
 *
 * @example
 * ```ts
 * import { encodeRekeyBody } from "./rekey.ts";
 * encodeRekeyBody({ type: "init", publicKey: new Uint8Array(32) }).length; // 33
 * ```
 */
export function encodeRekeyBody(body: RekeyBody): Uint8Array {
  const k = body.publicKey;
  if (!(k instanceof Uint8Array)) {
    throw new TypeError("Cannot encode rekey body: public key is not a Uint8Array");
  }
  if (k.length !== X25519_KEY_BYTES) {
    throw new RangeError(
      `Cannot encode rekey body: public key length ${k.length} is not ${X25519_KEY_BYTES}`,
    );
  }
  if (body.type !== "init" && body.type !== "reply") {
    throw new TypeError(`Cannot encode rekey body: unknown type "${String(body.type)}"`);
  }
  const out = new Uint8Array(REKEY_BODY_BYTES);
  out[0] = body.type === "init" ? RekeySubtype.INIT : RekeySubtype.REPLY;
  out.set(k, 1);
  return out;
}

/**
 * Decodes a REKEY body. Throws `ProtocolError` `MALFORMED` unless it is
 * exactly 33 bytes with a known subtype. The key is a view, not a copy.
 *
 * @example
 * ```ts
 * import { decodeRekeyBody } from "./rekey.ts";
 * const body = new Uint8Array(33);
 * body[0] = 2;
 * decodeRekeyBody(body).type; // "reply"
 * ```
 */
export function decodeRekeyBody(bytes: Uint8Array): RekeyBody {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot decode rekey body: not a Uint8Array");
  }
  if (bytes.length !== REKEY_BODY_BYTES) {
    throw new ProtocolError(
      "MALFORMED",
      `Cannot decode rekey body: length ${bytes.length} is not ${REKEY_BODY_BYTES}`,
    );
  }
  const t = bytes[0]!;
  if (t !== RekeySubtype.INIT && t !== RekeySubtype.REPLY) {
    throw new ProtocolError("MALFORMED", `Cannot decode rekey body: unknown subtype ${t}`);
  }
  return { type: t === RekeySubtype.INIT ? "init" : "reply", publicKey: bytes.subarray(1) };
}

/**
 * The mixin of one exchange (section 2.2): HKDF over the X25519 result,
 * bound to both public keys in the order initiator, responder.
 *
 * @example
 * ```ts
 * import { rekeyMixin } from "./rekey.ts";
 * rekeyMixin(new Uint8Array(32).fill(1), new Uint8Array(32), new Uint8Array(32)).length; // 32
 * ```
 */
export function rekeyMixin(
  dh: Uint8Array,
  initPublic: Uint8Array,
  replyPublic: Uint8Array,
): Uint8Array {
  const prk = hkdfExtract(new TextEncoder().encode(REKEY_SALT), dh);
  const ctx = new Uint8Array(2 * X25519_KEY_BYTES);
  ctx.set(initPublic);
  ctx.set(replyPublic, X25519_KEY_BYTES);
  const mixin = hkdfExpandLabel(prk, REKEY_MIXIN_LABEL, ctx, REKEY_MIXIN_BYTES);
  wipe(prk);
  return mixin;
}

/** What `RekeyState.consume` asks the caller to do. */
export interface RekeyAction {
  /**
   * A REPLY body to send in a REKEY frame. Seal the record carrying it
   * before calling `sealer.rekey(mixin)`.
   */
  reply?: Uint8Array;
  /**
   * The exchange finished: call `sealer.rekey(mixin)` (after sealing
   * `reply`, if any) and `opener.provideMixin(mixin)`, then wipe it.
   */
  mixin?: Uint8Array;
}

/**
 * One side's re-key exchanges over a session's life. Either side may start
 * one; when both start at once the server's INIT wins: the server ignores
 * the client's INIT and the client abandons its own and answers the
 * server's (section 2.3). Ephemeral private keys are zeroed as soon as the
 * DH result is computed or the exchange is abandoned.
 *
 * @example
 * ```ts
 * import { RekeyState } from "./rekey.ts";
 * const client = new RekeyState("client"), server = new RekeyState("server");
 * const ci = client.start(), si = server.start(); // simultaneous
 * console.log(server.consume(ci)); // {}: the server's INIT wins
 * const { reply, mixin } = client.consume(si);
 * console.log(client.pending, reply!.length, server.consume(reply!).mixin!.length, mixin!.length); // false 33 32 32
 * ```
 */
export class RekeyState {
  readonly #role: "client" | "server";
  readonly #random: RandomSource;
  /** Our INIT's ephemeral private key and public key while waiting for REPLY. */
  #priv: Uint8Array | undefined;
  #pub: Uint8Array | undefined;

  constructor(role: "client" | "server", random: RandomSource = randomBytes) {
    if (role !== "client" && role !== "server") {
      throw new TypeError(`Cannot create rekey state: unknown role "${String(role)}"`);
    }
    this.#role = role;
    this.#random = random;
  }

  /** Whether our INIT waits for the peer's REPLY. */
  get pending(): boolean {
    return this.#priv !== undefined;
  }

  /**
   * Starts an exchange: returns the INIT body to send. Throws
   * `ProtocolError` `BAD_STATE` while an earlier INIT is pending.
   */
  start(): Uint8Array {
    if (this.#priv !== undefined) {
      throw new ProtocolError("BAD_STATE", "Cannot start rekey: an exchange is already pending");
    }
    const priv = generateX25519PrivateKey(this.#random);
    this.#pub = x25519PublicKey(priv);
    this.#priv = priv;
    return encodeRekeyBody({ type: "init", publicKey: this.#pub });
  }

  /**
   * Consumes a REKEY body from the peer. Throws `ProtocolError` for a
   * malformed body, a low-order key (`MALFORMED`) or a REPLY without our
   * INIT (`BAD_STATE`); the connection is then dead, since the two sides'
   * keys may no longer agree.
   */
  consume(body: Uint8Array): RekeyAction {
    const msg = decodeRekeyBody(body);
    if (msg.type === "reply") {
      const priv = this.#priv, pub = this.#pub;
      if (priv === undefined || pub === undefined) {
        throw new ProtocolError("BAD_STATE", "Cannot consume rekey reply: no exchange is pending");
      }
      this.#priv = this.#pub = undefined;
      try {
        const dh = x25519SharedSecret(priv, msg.publicKey);
        const mixin = rekeyMixin(dh, pub, msg.publicKey);
        wipe(dh);
        return { mixin };
      } finally {
        wipe(priv);
      }
    }
    if (this.#priv !== undefined) {
      // Simultaneous INITs: the server's wins.
      if (this.#role === "server") return {};
      wipe(this.#priv);
      this.#priv = this.#pub = undefined;
    }
    const priv = generateX25519PrivateKey(this.#random);
    try {
      const pub = x25519PublicKey(priv);
      const dh = x25519SharedSecret(priv, msg.publicKey);
      const mixin = rekeyMixin(dh, msg.publicKey, pub);
      wipe(dh);
      return { reply: encodeRekeyBody({ type: "reply", publicKey: pub }), mixin };
    } finally {
      wipe(priv);
    }
  }

  /** Zeroes a pending ephemeral key (session end). */
  wipe(): void {
    wipe(this.#priv);
    this.#priv = this.#pub = undefined;
  }
}

/** When to start a re-key (`rekeyDue`); each value must be positive. */
export interface RekeyPolicy {
  /** Bytes since the last re-key (default 4 GiB). */
  bytes?: number;
  /** Milliseconds since the last re-key (default 60 minutes). */
  ms?: number;
}

/**
 * Whether a re-key is due: `bytesSinceRekey >= bytes` or
 * `msSinceRekey >= ms` (counted by the caller from the session start or the
 * last completed exchange).
 *
 * @example
 * ```ts
 * import { rekeyDue } from "./rekey.ts";
 * rekeyDue({ bytesSinceRekey: 2 ** 32, msSinceRekey: 0 }); // true
 * rekeyDue({ bytesSinceRekey: 10, msSinceRekey: 1000 }, { ms: 60_000 }); // false
 * ```
 */
export function rekeyDue(
  counters: { bytesSinceRekey: number; msSinceRekey: number },
  policy: RekeyPolicy = {},
): boolean {
  const bytes = positive("bytes", policy.bytes, DEFAULT_REKEY_BYTES);
  const ms = positive("ms", policy.ms, DEFAULT_REKEY_MS);
  return counters.bytesSinceRekey >= bytes || counters.msSinceRekey >= ms;
}

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || Number.isNaN(v) || v <= 0) {
    throw new RangeError(`Cannot use rekey policy: ${name} ${v} is not a positive number`);
  }
  return v;
}
