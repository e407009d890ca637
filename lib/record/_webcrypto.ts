/**
 * The `webcrypto` backend: Web Crypto AES-GCM (native, runs off the main
 * thread, so several calls in flight use more cores; asynchronous) and
 * `@noble/ciphers` ChaCha20-Poly1305 (RFC 8439 section 2.8, synchronous).
 *
 * Web Crypto copies its inputs when called (WebCrypto spec, "get a copy of
 * the bytes held by"), and ChaCha runs synchronously, so nonce, AAD and
 * input may be reused as soon as a call returns.
 *
 * @module
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { wipe } from "../crypto/mod.ts";
import type { AsyncCipherKey, CipherKey, CryptoBackend, SyncCipherKey } from "./_backend.ts";
import { checkKey, checkOpen, checkSeal, decryptFailed } from "./_checks.ts";
import type { AeadId } from "./_types.ts";

/** Web Crypto's typings want ArrayBuffer-backed views; ours always are or Web Crypto copies. */
function bs(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b as Uint8Array<ArrayBuffer>;
}

function wiped(): TypeError {
  return new TypeError("Cannot use record key: it has been wiped");
}

/** ChaCha20-Poly1305 through `@noble/ciphers`, keeping (owning) the raw key. */
export class NobleChaChaKey implements SyncCipherKey {
  readonly sync = true;
  /** The key bytes, zeroed by `wipe` (tests look). */
  readonly raw: Uint8Array;
  #wiped = false;

  constructor(raw: Uint8Array) {
    this.raw = raw;
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  sealTo(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    if (this.#wiped) throw wiped();
    checkSeal(nonce, aad, plaintext, out);
    chacha20poly1305(this.raw, nonce, aad).encrypt(plaintext, out);
  }

  openTo(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): void {
    if (this.#wiped) throw wiped();
    checkOpen(nonce, aad, sealed, out);
    try {
      chacha20poly1305(this.raw, nonce, aad).decrypt(sealed, out);
    } catch (e) {
      out.fill(0); // as OpenSSL's: no partial output survives a failed open
      throw decryptFailed(e);
    }
  }

  wipe(): void {
    this.#wiped = true;
    wipe(this.raw);
  }
}

function bytesOf(b: ArrayBuffer): Uint8Array {
  return new Uint8Array(b);
}

function rethrowDecryptFailed(e: unknown): never {
  throw decryptFailed(e);
}

/** AES-GCM through Web Crypto: a non-extractable `CryptoKey`. */
export class WebCryptoAesKey implements AsyncCipherKey {
  readonly sync = false;
  #key: CryptoKey | undefined;

  constructor(key: CryptoKey) {
    this.#key = key;
  }

  get wiped(): boolean {
    return this.#key === undefined;
  }

  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
    const key = this.#key;
    if (key === undefined) return Promise.reject(wiped());
    try {
      // The same checks as the synchronous keys (Web Crypto would take any nonce length).
      checkSeal(nonce, aad, plaintext, undefined);
    } catch (e) {
      return Promise.reject(e);
    }
    return crypto.subtle.encrypt(
      { name: "AES-GCM", iv: bs(nonce), additionalData: bs(aad) },
      key,
      bs(plaintext),
    ).then(bytesOf);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Promise<Uint8Array> {
    const key = this.#key;
    if (key === undefined) return Promise.reject(wiped());
    try {
      checkOpen(nonce, aad, sealed, undefined);
    } catch (e) {
      return Promise.reject(e);
    }
    return crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bs(nonce), additionalData: bs(aad) },
      key,
      bs(sealed),
    ).then(bytesOf, rethrowDecryptFailed);
  }

  /** Drops the `CryptoKey` (non-extractable: the garbage collector frees it; calls in flight hold it). */
  wipe(): void {
    this.#key = undefined;
  }
}

/**
 * Imports `raw` (checked against the suite's key length): for AES it is
 * copied into a non-extractable Web Crypto key and zeroed; for ChaCha the
 * key keeps (owns) it.
 */
function importKey(aead: AeadId, raw: Uint8Array): CipherKey | Promise<CipherKey> {
  checkKey(aead, raw);
  if (aead === "chacha20-poly1305") return new NobleChaChaKey(raw);
  const p = crypto.subtle.importKey("raw", bs(raw), "AES-GCM", false, ["encrypt", "decrypt"]);
  wipe(raw); // importKey has copied the bytes already.
  return p.then((k) => new WebCryptoAesKey(k));
}

/** The `webcrypto` backend. */
export const WEBCRYPTO_BACKEND: CryptoBackend = Object.freeze({
  name: "webcrypto",
  detail: "Web Crypto AES-GCM, @noble/ciphers ChaCha20-Poly1305",
  synchronous: false,
  importKey,
});
