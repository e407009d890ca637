/**
 * X25519 (RFC 7748) and Ed25519 (RFC 8032) key operations over
 * `@noble/curves`, with length checks and one error type for bad peer keys.
 *
 * @module
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { ProtocolError } from "../errors.ts";
import { randomBytes, type RandomSource } from "./mod.ts";

/** Bytes in an X25519 private or public key (RFC 7748 section 5). */
export const X25519_KEY_BYTES = 32;
/** Bytes in an Ed25519 seed (the RFC 8032 private key). */
export const ED25519_SEED_BYTES = 32;
/** Bytes in an Ed25519 public key (RFC 8032 section 5.1.5). */
export const ED25519_PUBLIC_BYTES = 32;
/** Bytes in an Ed25519 signature (RFC 8032 section 5.1.6). */
export const ED25519_SIGNATURE_BYTES = 64;

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
  return x25519.getPublicKey(privateKey);
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
  return ed25519.sign(message, seed);
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
