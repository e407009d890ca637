/**
 * The AEAD calls of the record layer over a backend's `CipherKey`
 * (`_backend.ts`): the record nonce, sealing a record in place or into a
 * new body, and opening one.
 *
 * With a synchronous key (`openssl`, and ChaCha20-Poly1305 on `webcrypto`)
 * the work is done before these return, into the caller's buffer where one
 * is given. With Web Crypto AES-GCM it runs asynchronously; Web Crypto
 * copies its inputs when called, so in every case nonce, AAD and input may
 * be reused as soon as the call returns: the record layer computes each
 * nonce into one scratch buffer when it calls at once, and copies what it
 * needs (nonce, header, body) when it must wait for a key.
 *
 * @module
 */
import { type CipherKey, type CryptoBackend, cryptoBackend } from "./_backend.ts";
import { decryptFailed } from "./_checks.ts";
import { AEAD_TAG_BYTES } from "./_limits.ts";
import type { AeadId } from "./_types.ts";

export type { CipherKey } from "./_backend.ts";

/** Writes `iv XOR (seq as 12-byte big-endian)` into `out` (section "Nonce"). */
export function recordNonce(iv: Uint8Array, seq: number, out: Uint8Array): Uint8Array {
  out.set(iv);
  const hi = Math.floor(seq / 0x100000000) >>> 0;
  const lo = seq >>> 0;
  out[4]! ^= hi >>> 24;
  out[5]! ^= hi >>> 16;
  out[6]! ^= hi >>> 8;
  out[7]! ^= hi;
  out[8]! ^= lo >>> 24;
  out[9]! ^= lo >>> 16;
  out[10]! ^= lo >>> 8;
  out[11]! ^= lo;
  return out;
}

/**
 * Seals `buf = aad(aadLen) ‖ plaintext ‖ 16 spare bytes` in place; resolves
 * to `buf` holding `aad ‖ ciphertext ‖ tag` (already sealed when `key` is
 * synchronous).
 */
export function sealInPlace(
  key: CipherKey,
  nonce: Uint8Array,
  buf: Uint8Array,
  aadLen: number,
): Promise<Uint8Array> {
  const aad = buf.subarray(0, aadLen);
  const body = buf.subarray(aadLen);
  const plaintext = body.subarray(0, body.length - AEAD_TAG_BYTES);
  if (key.sync) {
    try {
      key.sealTo(nonce, aad, plaintext, body);
      return Promise.resolve(buf);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return key.seal(nonce, aad, plaintext).then((ct) => {
    buf.set(ct, aadLen);
    return buf;
  });
}

/**
 * Seals `inner` into a new `ciphertext ‖ tag`. `inner`, `aad` and `nonce`
 * are only read, and only before this returns.
 */
export function sealBody(
  key: CipherKey,
  nonce: Uint8Array,
  aad: Uint8Array,
  inner: Uint8Array,
): Promise<Uint8Array> {
  if (!key.sync) return key.seal(nonce, aad, inner);
  try {
    const out = new Uint8Array(inner.length + AEAD_TAG_BYTES);
    key.sealTo(nonce, aad, inner, out);
    return Promise.resolve(out);
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Opens `ct = ciphertext ‖ tag` with a synchronous key; returns the
 * plaintext or throws `ProtocolError` `DECRYPT_FAILED`. With `inPlace`, it
 * decrypts into `ct` itself (the caller owns it); otherwise into a new
 * array, and `ct` is only read.
 */
export function openRecordBodySync(
  key: CipherKey & { sync: true },
  nonce: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
  inPlace: boolean,
): Uint8Array {
  if (ct.length < AEAD_TAG_BYTES) throw decryptFailed();
  const n = ct.length - AEAD_TAG_BYTES;
  const out = inPlace ? ct.subarray(0, n) : new Uint8Array(n);
  key.openTo(nonce, aad, ct, out);
  return out;
}

/**
 * Opens `ct = ciphertext ‖ tag`; resolves to the plaintext or rejects with
 * `ProtocolError` `DECRYPT_FAILED`. `inPlace` as for `openRecordBodySync`
 * (Web Crypto always returns a new buffer).
 */
export function openRecordBody(
  key: CipherKey,
  nonce: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
  inPlace: boolean,
): Promise<Uint8Array> {
  if (ct.length < AEAD_TAG_BYTES) return Promise.reject(decryptFailed());
  if (!key.sync) return key.open(nonce, aad, ct);
  try {
    return Promise.resolve(openRecordBodySync(key, nonce, aad, ct, inPlace));
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Seals `plaintext` into a new `ciphertext ‖ tag` with an explicit 12-byte
 * nonce, through the same code path as records. For test vectors.
 */
export async function aeadSeal(
  aead: AeadId,
  rawKey: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  backend: CryptoBackend = cryptoBackend(),
): Promise<Uint8Array> {
  const key = await backend.importKey(aead, rawKey.slice(), "seal");
  try {
    const buf = new Uint8Array(aad.length + plaintext.length + AEAD_TAG_BYTES);
    buf.set(aad);
    buf.set(plaintext, aad.length);
    return (await sealInPlace(key, nonce, buf, aad.length)).slice(aad.length);
  } finally {
    key.wipe();
  }
}

/** Opens `ciphertext ‖ tag`; rejects with `DECRYPT_FAILED` on any mismatch. For test vectors. */
export async function aeadOpen(
  aead: AeadId,
  rawKey: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
  backend: CryptoBackend = cryptoBackend(),
): Promise<Uint8Array> {
  const key = await backend.importKey(aead, rawKey.slice(), "open");
  try {
    return await openRecordBody(key, nonce, aad, ct, false);
  } finally {
    key.wipe();
  }
}
