/**
 * Argument checks every backend runs before an AEAD touches a byte: types,
 * key, nonce and tag lengths, output room and overlap. For the `openssl`
 * backend these are what keeps every pointer handed to C inside its buffer,
 * whatever a peer sends.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { AEAD_TAG_BYTES, NONCE_BYTES } from "./_limits.ts";
import { AEAD_KEY_BYTES, type AeadId } from "./_types.ts";

/**
 * Most bytes of AAD or plaintext one AEAD call takes (1 GiB): far above a
 * record (256 KiB), far below the C `int` the OpenSSL calls take.
 */
export const MAX_AEAD_INPUT = 2 ** 30;

/** The one error every failed open gives, whatever the cause. */
export function decryptFailed(cause?: unknown): ProtocolError {
  return new ProtocolError("DECRYPT_FAILED", "Cannot open record: authentication failed", {
    cause,
  });
}

function bytes(what: string, x: unknown): asserts x is Uint8Array {
  if (!(x instanceof Uint8Array)) {
    throw new TypeError(`Cannot use AEAD: ${what} is not a Uint8Array`);
  }
}

/** Throws unless `raw` is a `Uint8Array` of the suite's key length. */
export function checkKey(aead: AeadId, raw: unknown): asserts raw is Uint8Array {
  bytes("key", raw);
  const want = AEAD_KEY_BYTES[aead];
  if (want === undefined) throw new TypeError(`Cannot import key: unknown AEAD "${String(aead)}"`);
  if (raw.length !== want) {
    throw new RangeError(`Cannot import ${aead} key: length ${raw.length} is not ${want}`);
  }
}

function checkNonceAad(nonce: unknown, aad: unknown): void {
  bytes("nonce", nonce);
  bytes("AAD", aad);
  if (nonce.length !== NONCE_BYTES) {
    throw new RangeError(`Cannot use AEAD: nonce length ${nonce.length} is not ${NONCE_BYTES}`);
  }
  if (aad.length > MAX_AEAD_INPUT) {
    throw new RangeError(`Cannot use AEAD: AAD length ${aad.length} exceeds ${MAX_AEAD_INPUT}`);
  }
}

/**
 * Whether `out` may receive the transform of `input`: it starts where
 * `input` does (in place), or the two share no byte.
 */
export function disjointOrSame(input: Uint8Array, out: Uint8Array): boolean {
  if (input.buffer !== out.buffer) return true;
  const a = input.byteOffset, b = out.byteOffset;
  return a === b || a + input.length <= b || b + out.length <= a;
}

/**
 * Checks a seal of `plaintext` into `out` (`plaintext.length + 16` bytes);
 * without `out`, the inputs only (the AEAD allocates its output).
 */
export function checkSeal(
  nonce: unknown,
  aad: unknown,
  plaintext: unknown,
  out: unknown,
): asserts plaintext is Uint8Array {
  checkNonceAad(nonce, aad);
  bytes("plaintext", plaintext);
  if (plaintext.length > MAX_AEAD_INPUT) {
    throw new RangeError(
      `Cannot seal: plaintext length ${plaintext.length} exceeds ${MAX_AEAD_INPUT}`,
    );
  }
  if (out === undefined) return;
  bytes("output", out);
  if (out.length !== plaintext.length + AEAD_TAG_BYTES) {
    throw new RangeError(
      `Cannot seal: output length ${out.length} is not plaintext length ${plaintext.length} + ${AEAD_TAG_BYTES}`,
    );
  }
  if (!disjointOrSame(plaintext, out)) {
    throw new RangeError("Cannot seal: output overlaps the plaintext at another offset");
  }
}

/**
 * Checks an open of `sealed = ciphertext ‖ tag` into `out`
 * (`sealed.length - 16` bytes; without `out`, the inputs only). Input
 * shorter than a tag is an authentication failure (a peer's doing); a
 * wrong output is the caller's.
 */
export function checkOpen(
  nonce: unknown,
  aad: unknown,
  sealed: unknown,
  out: unknown,
): asserts sealed is Uint8Array {
  checkNonceAad(nonce, aad);
  bytes("ciphertext", sealed);
  if (sealed.length < AEAD_TAG_BYTES) throw decryptFailed();
  if (sealed.length > MAX_AEAD_INPUT + AEAD_TAG_BYTES) {
    throw new RangeError(
      `Cannot open: ciphertext length ${sealed.length} exceeds ${MAX_AEAD_INPUT + AEAD_TAG_BYTES}`,
    );
  }
  if (out === undefined) return;
  bytes("output", out);
  if (out.length !== sealed.length - AEAD_TAG_BYTES) {
    throw new RangeError(
      `Cannot open: output length ${out.length} is not ciphertext length ${sealed.length} - ${AEAD_TAG_BYTES}`,
    );
  }
  if (!disjointOrSame(sealed, out)) {
    throw new RangeError("Cannot open: output overlaps the ciphertext at another offset");
  }
}
