/**
 * X25519 (RFC 7748) and Ed25519 (RFC 8032) key operations over
 * `@noble/curves`, with length checks and one error type for bad peer keys.
 *
 * A faster implementation of the operations a server's handshake spends its
 * time in (X25519, the X25519 public key, Ed25519 signing) may be set
 * process-wide with `setCurveBackend` (the CLI sets OpenSSL's from
 * `lib/openssl` when the record backend is `openssl`). These operations are
 * deterministic, so both give the same bytes; the checks here run first
 * either way. Ed25519 verification stays on `@noble/curves` (its strict
 * RFC 8032 decoding is part of the protocol).
 *
 * @module
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { ProtocolError } from "../errors.ts";
import {
  type HashBackend,
  randomBytes,
  type RandomSource,
  setHashBackend,
  setWipeHook,
} from "./mod.ts";

/** Bytes in an X25519 private or public key (RFC 7748 section 5). */
export const X25519_KEY_BYTES = 32;
/** Bytes in an Ed25519 seed (the RFC 8032 private key). */
export const ED25519_SEED_BYTES = 32;
/** Bytes in an Ed25519 public key (RFC 8032 section 5.1.5). */
export const ED25519_PUBLIC_BYTES = 32;
/** Bytes in an Ed25519 signature (RFC 8032 section 5.1.6). */
export const ED25519_SIGNATURE_BYTES = 64;

/**
 * Native curve operations with the same results as `@noble/curves`. Inputs
 * are already checked (lengths, types) when these are called.
 */
export interface CurveBackend {
  /** Who computes them, for logs (e.g. `openssl`). */
  readonly name: string;
  /** X25519(privateKey, publicKey), or undefined when the result is all zero. */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined;
  /** X25519(privateKey, 9). */
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /** The RFC 8032 Ed25519 signature of `message` with the 32-byte `seed`. */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /**
   * Drops anything kept for this private key buffer (a backend may keep a
   * native key object per buffer); `wipe` calls it before zeroing.
   */
  forget?(privateKey: Uint8Array): void;
  /** SHA-256 and HMAC-SHA-256 from the same native library, set with the curves. */
  readonly hashes?: HashBackend;
}

let curves: CurveBackend | undefined;

/**
 * Sets (or, with undefined, clears) the process-wide curve backend used by
 * `x25519SharedSecret`, `x25519PublicKey` and `ed25519Sign` instead of
 * `@noble/curves` (and its `hashes`, if any, behind `hash`, HMAC and HKDF in
 * `mod.ts`, instead of `@noble/hashes`); returns the previous one.
 *
 * @example
 * ```ts
 * import { curveBackend, setCurveBackend } from "./keys.ts";
 * setCurveBackend(undefined); // @noble/curves
 * console.log(curveBackend()); // undefined
 * ```
 */
export function setCurveBackend(backend: CurveBackend | undefined): CurveBackend | undefined {
  const prev = curves;
  curves = backend;
  setWipeHook(backend?.forget === undefined ? undefined : (b) => backend.forget!(b));
  setHashBackend(backend?.hashes);
  return prev;
}

/**
 * The curve backend set by `setCurveBackend`, or undefined for `@noble/curves`.
 *
 * @example
 * ```ts
 * import { curveBackend } from "./keys.ts";
 * console.log(curveBackend()?.name ?? "noble");
 * ```
 */
export function curveBackend(): CurveBackend | undefined {
  return curves;
}

function checkBytes(what: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array)) throw new TypeError(`Cannot use ${what}: not a Uint8Array`);
  if (b.length !== n) {
    throw new RangeError(`Cannot use ${what}: length ${b.length} is not ${n}`);
  }
}

/**
 * A fresh X25519 private key (32 random bytes; clamping happens on use).
 *
 * @example
 * ```ts
 * import { generateX25519PrivateKey } from "./keys.ts";
 * generateX25519PrivateKey().length; // 32
 * ```
 */
export function generateX25519PrivateKey(random: RandomSource = randomBytes): Uint8Array {
  const k = random(X25519_KEY_BYTES);
  checkBytes("random X25519 key", k, X25519_KEY_BYTES);
  return k;
}

/**
 * The X25519 public key of a private key: X25519(k, 9) (RFC 7748 section 6.1).
 *
 * @example
 * ```ts
 * import { generateX25519PrivateKey, x25519PublicKey } from "./keys.ts";
 * x25519PublicKey(generateX25519PrivateKey()).length; // 32
 * ```
 */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  checkBytes("X25519 private key", privateKey, X25519_KEY_BYTES);
  return curves !== undefined
    ? curves.x25519PublicKey(privateKey)
    : x25519.getPublicKey(privateKey);
}

/**
 * X25519(privateKey, publicKey) (RFC 7748 section 5). Throws `ProtocolError`
 * `MALFORMED` when the result is all zero (a low-order peer key, section 6.1).
 *
 * @example
 * ```ts
 * import { generateX25519PrivateKey, x25519PublicKey, x25519SharedSecret } from "./keys.ts";
 * const a = generateX25519PrivateKey(), b = generateX25519PrivateKey();
 * const s1 = x25519SharedSecret(a, x25519PublicKey(b));
 * const s2 = x25519SharedSecret(b, x25519PublicKey(a)); // same bytes as s1
 * ```
 */
export function x25519SharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkBytes("X25519 private key", privateKey, X25519_KEY_BYTES);
  checkBytes("X25519 public key", publicKey, X25519_KEY_BYTES);
  if (curves !== undefined) {
    const s = curves.x25519(privateKey, publicKey);
    if (s === undefined || s.every((b) => b === 0)) {
      throw new ProtocolError("MALFORMED", "Cannot compute X25519: peer key has low order");
    }
    return s;
  }
  try {
    return x25519.getSharedSecret(privateKey, publicKey);
  } catch (e) {
    throw new ProtocolError("MALFORMED", "Cannot compute X25519: peer key has low order", {
      cause: e,
    });
  }
}

/**
 * The Ed25519 public key of a 32-byte seed (RFC 8032 section 5.1.5).
 *
 * @example
 * ```ts
 * import { ed25519PublicKey } from "./keys.ts";
 * ed25519PublicKey(new Uint8Array(32)).length; // 32
 * ```
 */
export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  checkBytes("Ed25519 seed", seed, ED25519_SEED_BYTES);
  return ed25519.getPublicKey(seed);
}

/**
 * An Ed25519 signature (deterministic, RFC 8032 section 5.1.6).
 *
 * @example
 * ```ts
 * import { ed25519Sign } from "./keys.ts";
 * ed25519Sign(new Uint8Array(32), new Uint8Array([1, 2])).length; // 64
 * ```
 */
export function ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  checkBytes("Ed25519 seed", seed, ED25519_SEED_BYTES);
  if (!(message instanceof Uint8Array)) {
    throw new TypeError("Cannot sign with Ed25519: message is not a Uint8Array");
  }
  return curves !== undefined ? curves.ed25519Sign(seed, message) : ed25519.sign(message, seed);
}

/**
 * Checks an Ed25519 signature (RFC 8032 section 5.1.7); never throws for bad
 * input, only returns false.
 *
 * @example
 * ```ts
 * import { ed25519PublicKey, ed25519Sign, ed25519Verify } from "./keys.ts";
 * const seed = new Uint8Array(32), msg = new Uint8Array([7]);
 * ed25519Verify(ed25519PublicKey(seed), msg, ed25519Sign(seed, msg)); // true
 * ```
 */
export function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== ED25519_PUBLIC_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) {
    return false;
  }
  try {
    // Strict RFC 8032 decoding (zip215: false): one valid encoding per signature.
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}
