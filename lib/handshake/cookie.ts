/**
 * Cookies under load (docs/PROTOCOL.md part 2 section 15; WireGuard's
 * mac1/mac2 and cookie reply are the model). Every Hello carries two MACs
 * right after its representative:
 *
 * ```
 * mac1 = HMAC-SHA256(H("ns1 mac1" ‖ server_public_key), repr ‖ masked_len)[0..16]
 * mac2 = HMAC-SHA256(cookie, repr ‖ masked_len ‖ mac1)[0..16]     (with a cookie)
 *      = HMAC-SHA256(client ephemeral private key, "ns1 mac2 filler")[0..16]   (without)
 * ```
 *
 * mac1 shows the sender knows the server's public key, checked with one
 * HMAC before any public-key work: a first message without it is a probe at
 * once. Under load the server also wants mac2 under a cookie bound to the
 * sender's address; without it the answer is a cookie reply (no public-key
 * work either), and the client connects again with the cookie:
 *
 * ```
 * cookie       = HMAC-SHA256(secret, source)[0..16]   secret: 32 random bytes, new every 2 min
 * cookie reply = nonce (24) ‖ XChaCha20-Poly1305(H("ns1 cookie" ‖ server_public_key), nonce,
 *                                                 cookie, aad = mac1)          (56 bytes)
 * ```
 *
 * @module
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ctEqual, hash, hmacSha256, randomBytes, type RandomSource } from "../crypto/mod.ts";

/** Bytes of each of mac1 and mac2. */
export const COOKIE_MAC_BYTES = 16;
/** Bytes of a cookie. */
export const COOKIE_BYTES = 16;
/** Bytes of a cookie reply: nonce, sealed cookie, tag. */
export const COOKIE_REPLY_BYTES: number = 24 + COOKIE_BYTES + 16;
/** How long one cookie secret is used; cookies of the one before are still accepted. */
export const COOKIE_SECRET_MS = 120_000;

const enc = new TextEncoder();
const MAC2_FILLER = enc.encode("ns1 mac2 filler");

function labelled(label: string, serverPublicKey: Uint8Array): Uint8Array {
  const l = enc.encode(label);
  const b = new Uint8Array(l.length + serverPublicKey.length);
  b.set(l);
  b.set(serverPublicKey, l.length);
  return hash(b);
}

function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return hmacSha256(key, data).subarray(0, COOKIE_MAC_BYTES);
}

/**
 * The keys both sides derive from the server's public key.
 *
 * @example
 * ```ts
 * import { cookieKeys } from "./cookie.ts";
 * const k = cookieKeys(new Uint8Array(64));
 * k.mac1.length; // 32
 * ```
 */
export function cookieKeys(serverPublicKey: Uint8Array): { mac1: Uint8Array; reply: Uint8Array } {
  return {
    mac1: labelled("ns1 mac1", serverPublicKey),
    reply: labelled("ns1 cookie", serverPublicKey),
  };
}

/**
 * mac1 over the Hello's representative and masked length.
 *
 * @example
 * ```ts
 * import { cookieKeys, helloMac1 } from "./cookie.ts";
 * helloMac1(cookieKeys(new Uint8Array(64)).mac1, new Uint8Array(32), new Uint8Array(2)).length; // 16
 * ```
 */
export function helloMac1(
  mac1Key: Uint8Array,
  repr: Uint8Array,
  maskedLen: Uint8Array,
): Uint8Array {
  return mac(mac1Key, repr, maskedLen);
}

/**
 * mac2: under `cookie`, or, without one, the filler only the client can make
 * (uniform to anyone else, like a real mac2).
 *
 * @example
 * ```ts
 * import { helloMac2 } from "./cookie.ts";
 * const filler = helloMac2({ ephemeralPrivate: new Uint8Array(32) }, new Uint8Array(32), new Uint8Array(2), new Uint8Array(16));
 * filler.length; // 16
 * ```
 */
export function helloMac2(
  key: { cookie: Uint8Array } | { ephemeralPrivate: Uint8Array },
  repr: Uint8Array,
  maskedLen: Uint8Array,
  mac1: Uint8Array,
): Uint8Array {
  return "cookie" in key
    ? mac(key.cookie, repr, maskedLen, mac1)
    : mac(key.ephemeralPrivate, MAC2_FILLER);
}

/**
 * Seals `cookie` for the client whose Hello carried `mac1`.
 *
 * @example
 * ```ts
 * import { COOKIE_REPLY_BYTES, openCookieReply, sealCookieReply } from "./cookie.ts";
 * const key = new Uint8Array(32), mac1 = new Uint8Array(16), cookie = new Uint8Array(16).fill(7);
 * const reply = sealCookieReply(key, cookie, mac1, new Uint8Array(24));
 * reply.length === COOKIE_REPLY_BYTES; // true
 * openCookieReply(key, reply, mac1); // the cookie
 * ```
 */
export function sealCookieReply(
  replyKey: Uint8Array,
  cookie: Uint8Array,
  mac1: Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(COOKIE_REPLY_BYTES);
  out.set(nonce);
  out.set(xchacha20poly1305(replyKey, nonce, mac1).encrypt(cookie), nonce.length);
  return out;
}

/** The cookie in a cookie reply to the Hello that carried `mac1`, or undefined if it is not one. */
export function openCookieReply(
  replyKey: Uint8Array,
  reply: Uint8Array,
  mac1: Uint8Array,
): Uint8Array | undefined {
  if (reply.length !== COOKIE_REPLY_BYTES) return undefined;
  try {
    return xchacha20poly1305(replyKey, reply.subarray(0, 24), mac1).decrypt(reply.subarray(24));
  } catch {
    return undefined;
  }
}

/** Options for {@linkcode CookieJar}. */
export interface CookieJarOptions {
  /** Clock (ms), for the secret's rotation; default `Date.now`. */
  now?: () => number;
  /** Where secrets and reply nonces come from; default the platform CSPRNG. */
  random?: RandomSource;
}

/**
 * The server's cookies: a secret renewed every {@linkcode COOKIE_SECRET_MS},
 * cookies bound to a source, mac2 checks (the current and the previous
 * secret), and cookie replies.
 *
 * @example
 * ```ts
 * import { CookieJar } from "./cookie.ts";
 * const jar = new CookieJar(new Uint8Array(64));
 * const cookie = jar.cookieFor("192.0.2.7");
 * cookie.length; // 16
 * ```
 */
export class CookieJar {
  readonly #keys: { mac1: Uint8Array; reply: Uint8Array };
  readonly #now: () => number;
  readonly #random: RandomSource;
  #secret: Uint8Array;
  #previous: Uint8Array | undefined;
  #since: number;

  /** A jar for the server with `serverPublicKey`, with a fresh secret. */
  constructor(serverPublicKey: Uint8Array, options: CookieJarOptions = {}) {
    this.#keys = cookieKeys(serverPublicKey);
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? randomBytes;
    this.#secret = this.#random(32);
    this.#since = this.#now();
  }

  #rotate(): void {
    const now = this.#now();
    if (now - this.#since < COOKIE_SECRET_MS) return;
    // Two periods or more: the previous secret is too old to keep.
    this.#previous = now - this.#since < 2 * COOKIE_SECRET_MS ? this.#secret : undefined;
    this.#secret = this.#random(32);
    this.#since = now;
  }

  /** The cookie for `source` (an address, or the key it is counted under). */
  cookieFor(source: string): Uint8Array {
    this.#rotate();
    return mac(this.#secret, enc.encode(source));
  }

  /** True when `mac2` was made with a current or previous cookie of `source`. */
  checkMac2(
    source: string,
    repr: Uint8Array,
    maskedLen: Uint8Array,
    mac1: Uint8Array,
    mac2: Uint8Array,
  ): boolean {
    this.#rotate();
    const src = enc.encode(source);
    for (const s of [this.#secret, this.#previous]) {
      if (s === undefined) continue;
      if (ctEqual(mac(mac(s, src), repr, maskedLen, mac1), mac2)) return true;
    }
    return false;
  }

  /** A cookie reply for `source`'s Hello that carried `mac1`. */
  reply(source: string, mac1: Uint8Array): Uint8Array {
    return sealCookieReply(this.#keys.reply, this.cookieFor(source), mac1, this.#random(24));
  }
}
