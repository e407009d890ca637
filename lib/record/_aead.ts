/**
 * The one AEAD wrapper the record layer uses: Web Crypto AES-GCM (native,
 * runs off the main thread, so several calls in flight use more cores) and
 * `@noble/ciphers` ChaCha20-Poly1305 (RFC 8439 section 2.8, synchronous).
 *
 * `sealInPlace` lays out `aad ‖ plaintext ‖ 16 spare bytes` in one buffer
 * and gives the same buffer back as `aad ‖ ciphertext ‖ tag`; `sealBody`
 * returns `ciphertext ‖ tag` as a new array, for a writer that joins the
 * header and the ciphertext itself. Web Crypto copies its inputs when called
 * (WebCrypto spec, "get a copy of the bytes held by"), and ChaCha runs
 * synchronously, so nonce, AAD and input may be reused as soon as
 * `sealInPlace`/`sealBody`/`openRecordBody` return: the record layer
 * computes each nonce into one scratch buffer when it calls at once, and
 * copies what it needs (nonce, header, body) when it must wait for a key.
 *
 * @module
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ProtocolError } from "../errors.ts";
import { wipe } from "../crypto/mod.ts";
import { AEAD_TAG_BYTES } from "./_limits.ts";
import { AEAD_KEY_BYTES, type AeadId } from "./_types.ts";

/** Web Crypto's typings want ArrayBuffer-backed views; ours always are or Web Crypto copies. */
function bs(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b as Uint8Array<ArrayBuffer>;
}

/** A key ready to use: a Web Crypto key for AES-GCM, raw bytes for ChaCha20-Poly1305. */
export type CipherKey = CryptoKey | Uint8Array;

/**
 * Makes a `CipherKey` from raw key bytes. For AES the raw bytes are copied
 * into a non-extractable Web Crypto key and then zeroed; for ChaCha the key
 * keeps (owns) `raw`.
 */
export function importCipherKey(aead: AeadId, raw: Uint8Array): CipherKey | Promise<CipherKey> {
  if (raw.length !== AEAD_KEY_BYTES[aead]) {
    throw new RangeError(
      `Cannot import ${aead} key: length ${raw.length} is not ${AEAD_KEY_BYTES[aead]}`,
    );
  }
  if (aead === "chacha20-poly1305") return raw;
  const p = crypto.subtle.importKey("raw", bs(raw), "AES-GCM", false, ["encrypt", "decrypt"]);
  wipe(raw); // importKey has copied the bytes already.
  return p;
}

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

function decryptFailed(cause?: unknown): ProtocolError {
  return new ProtocolError("DECRYPT_FAILED", "Cannot open record: authentication failed", {
    cause,
  });
}

/**
 * Seals `buf = aad(aadLen) ‖ plaintext ‖ 16 spare bytes` in place; resolves
 * to `buf` holding `aad ‖ ciphertext ‖ tag`.
 */
export function sealInPlace(
  key: CipherKey,
  nonce: Uint8Array,
  buf: Uint8Array,
  aadLen: number,
): Promise<Uint8Array> {
  const aad = buf.subarray(0, aadLen);
  const body = buf.subarray(aadLen);
  if (key instanceof Uint8Array) {
    try {
      chacha20poly1305(key, nonce, aad).encrypt(
        body.subarray(0, body.length - AEAD_TAG_BYTES),
        body,
      );
      return Promise.resolve(buf);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return crypto.subtle.encrypt(
    { name: "AES-GCM", iv: bs(nonce), additionalData: bs(aad) },
    key,
    bs(body.subarray(0, body.length - AEAD_TAG_BYTES)),
  ).then((ct) => {
    buf.set(new Uint8Array(ct), aadLen);
    return buf;
  });
}

/**
 * Seals `inner` into a new `ciphertext ‖ tag`. `inner`, `aad` and `nonce`
 * are only read, and only before this returns (Web Crypto copies them when
 * called; ChaCha runs synchronously), so the caller may reuse them at once.
 */
export function sealBody(
  key: CipherKey,
  nonce: Uint8Array,
  aad: Uint8Array,
  inner: Uint8Array,
): Promise<Uint8Array> {
  if (key instanceof Uint8Array) {
    try {
      return Promise.resolve(chacha20poly1305(key, nonce, aad).encrypt(inner));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return crypto.subtle.encrypt(
    { name: "AES-GCM", iv: bs(nonce), additionalData: bs(aad) },
    key,
    bs(inner),
  ).then(bytesOf);
}

function bytesOf(b: ArrayBuffer): Uint8Array {
  return new Uint8Array(b);
}

/**
 * Opens `ct = ciphertext ‖ tag` with `nonce` and `aad`; resolves to the
 * plaintext or rejects with `ProtocolError` `DECRYPT_FAILED`. With
 * `inPlace`, ChaCha decrypts into `ct` itself (the caller owns it); AES
 * always returns a new buffer.
 */
export function openRecordBody(
  key: CipherKey,
  nonce: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
  inPlace: boolean,
): Promise<Uint8Array> {
  if (ct.length < AEAD_TAG_BYTES) return Promise.reject(decryptFailed());
  if (key instanceof Uint8Array) {
    try {
      const out = inPlace ? ct.subarray(0, ct.length - AEAD_TAG_BYTES) : undefined;
      return Promise.resolve(chacha20poly1305(key, nonce, aad).decrypt(ct, out));
    } catch (e) {
      return Promise.reject(decryptFailed(e));
    }
  }
  return crypto.subtle.decrypt(
    { name: "AES-GCM", iv: bs(nonce), additionalData: bs(aad) },
    key,
    bs(ct),
  )
    .then(bytesOf, rethrowDecryptFailed);
}

function rethrowDecryptFailed(e: unknown): never {
  throw decryptFailed(e);
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
): Promise<Uint8Array> {
  const key = await importCipherKey(aead, rawKey.slice());
  const buf = new Uint8Array(aad.length + plaintext.length + AEAD_TAG_BYTES);
  buf.set(aad);
  buf.set(plaintext, aad.length);
  return (await sealInPlace(key, nonce, buf, aad.length)).slice(aad.length);
}

/** Opens `ciphertext ‖ tag`; rejects with `DECRYPT_FAILED` on any mismatch. For test vectors. */
export async function aeadOpen(
  aead: AeadId,
  rawKey: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
): Promise<Uint8Array> {
  const key = await importCipherKey(aead, rawKey.slice());
  return await openRecordBody(key, nonce, aad, ct, false);
}
