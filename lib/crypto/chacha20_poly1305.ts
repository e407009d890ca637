/**
 * ChaCha20-Poly1305 AEAD (RFC 8439 section 2.8) with one error type for a
 * failed tag: the handshake's cipher for every sealed message.
 *
 * @module
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ProtocolError } from "../errors.ts";

/** Key bytes (RFC 8439 section 2.8). */
export const CHACHA_KEY_BYTES = 32;
/** Nonce bytes (RFC 8439 section 2.8). */
export const CHACHA_NONCE_BYTES = 12;
/** Poly1305 tag bytes (RFC 8439 section 2.5). */
export const CHACHA_TAG_BYTES = 16;

function check(key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== CHACHA_KEY_BYTES) {
    throw new RangeError(`Cannot use ChaCha20-Poly1305 key: length ${key.length} is not 32`);
  }
  if (nonce.length !== CHACHA_NONCE_BYTES) {
    throw new RangeError(`Cannot use ChaCha20-Poly1305 nonce: length ${nonce.length} is not 12`);
  }
}

/**
 * Encrypts and authenticates: returns ciphertext ‖ 16-byte tag.
 *
 * @example
 * ```ts
 * import { chachaSeal } from "./chacha20_poly1305.ts";
 * chachaSeal(new Uint8Array(32), new Uint8Array(12), new Uint8Array([1])).length; // 17
 * ```
 */
export function chachaSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): Uint8Array {
  check(key, nonce);
  return chacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

/**
 * Checks the tag and decrypts; throws `ProtocolError` `DECRYPT_FAILED` when
 * the tag, key, nonce or associated data do not match.
 *
 * @example
 * ```ts
 * import { chachaOpen, chachaSeal } from "./chacha20_poly1305.ts";
 * const k = new Uint8Array(32), n = new Uint8Array(12);
 * chachaOpen(k, n, chachaSeal(k, n, new Uint8Array([1]))); // Uint8Array [1]
 * ```
 */
export function chachaOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad?: Uint8Array,
): Uint8Array {
  check(key, nonce);
  if (sealed.length < CHACHA_TAG_BYTES) {
    throw new ProtocolError(
      "DECRYPT_FAILED",
      `Cannot open ChaCha20-Poly1305 message: length ${sealed.length} is shorter than the tag`,
    );
  }
  try {
    return chacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch (e) {
    throw new ProtocolError("DECRYPT_FAILED", "Cannot open ChaCha20-Poly1305 message: bad tag", {
      cause: e,
    });
  }
}
