/**
 * The record layer's crypto backends: who runs the AEAD of each record.
 *
 * - `openssl`: the system's OpenSSL 3 `libcrypto` (`_openssl.ts` over the
 *   functions `lib/openssl/mod.ts` binds with FFI), synchronous for every
 *   suite.
 * - `webcrypto`: Web Crypto AES-GCM (asynchronous) and `@noble/ciphers`
 *   ChaCha20-Poly1305 (synchronous) (`_webcrypto.ts`).
 *
 * Both run behind one small key interface: a key is imported for one
 * direction ("seal" or "open") of one epoch and either seals and opens
 * synchronously into caller-owned buffers (`SyncCipherKey`) or returns
 * promises of new arrays (`AsyncCipherKey`, Web Crypto AES only).
 *
 * The choice is process-wide (`setCryptoBackend`, called once by the CLI
 * from the loaded config; `webcrypto` until then). Loading a library is
 * I/O and happens at the edge (`lib/openssl/mod.ts`), never here. Sealers
 * and openers may also be given a backend explicitly (tests, benchmarks).
 *
 * @module
 */
import { WEBCRYPTO_BACKEND } from "./_webcrypto.ts";
import type { AeadId } from "./_types.ts";

/** A backend by name. */
export type CryptoBackendName = "openssl" | "webcrypto";

/** What a key is imported for: an epoch's key seals in a sealer and opens in an opener. */
export type KeyUse = "seal" | "open";

/**
 * A key that seals and opens synchronously, into buffers the caller owns.
 * Every length and overlap is checked before any byte is touched.
 */
export interface SyncCipherKey {
  /** Discriminant: this key seals and opens synchronously. */
  readonly sync: true;
  /**
   * Writes `ciphertext ‖ tag` of `plaintext` into `out`, which must be
   * exactly `plaintext.length + 16` bytes and either start where
   * `plaintext` starts (in place) or not overlap it. `nonce` is 12 bytes.
   */
  sealTo(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /**
   * Writes the plaintext of `sealed = ciphertext ‖ tag` into `out`, which
   * must be exactly `sealed.length - 16` bytes, in place or not overlapping.
   * Throws `ProtocolError` `DECRYPT_FAILED` (with `out` zeroed) when the tag
   * does not verify, and `RangeError` for wrong lengths.
   */
  openTo(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): void;
  /** Releases and zeroes the key; any later use throws `TypeError`. */
  wipe(): void;
  /** Whether `wipe` was called. */
  readonly wiped: boolean;
}

/** A key whose operations run asynchronously and return new arrays (Web Crypto AES-GCM). */
export interface AsyncCipherKey {
  /** Discriminant: this key's operations return promises. */
  readonly sync: false;
  /** Resolves to a new `ciphertext ‖ tag`; inputs are copied before this returns. */
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  /** Resolves to a new plaintext or rejects with `DECRYPT_FAILED`; inputs are copied at once. */
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Promise<Uint8Array>;
  /** Drops the key; any later use throws `TypeError`. */
  wipe(): void;
  /** Whether `wipe` was called. */
  readonly wiped: boolean;
}

/** A key ready to use, in whichever form its backend gives. */
export type CipherKey = SyncCipherKey | AsyncCipherKey;

/**
 * One crypto backend.
 *
 * @example
 * ```ts
 * import { webCryptoBackend } from "./mod.ts";
 * console.log(webCryptoBackend.name, webCryptoBackend.synchronous); // webcrypto false
 * ```
 */
export interface CryptoBackend {
  /** Which backend this is. */
  readonly name: CryptoBackendName;
  /** What runs the AEADs, e.g. `libcrypto.so.3, OpenSSL 3.0.19 27 Jan 2026`. */
  readonly detail: string;
  /** Whether every suite seals and opens synchronously. */
  readonly synchronous: boolean;
  /**
   * Why `auto` did not choose `openssl` (`--allow-ffi` not granted, library
   * not found, ...); undefined otherwise.
   */
  readonly fallbackReason?: string;
  /**
   * Imports a raw key of the suite's length for one direction. Takes
   * ownership of `raw`: it is zeroed, or kept and zeroed by `wipe`.
   */
  importKey(aead: AeadId, raw: Uint8Array, use: KeyUse): CipherKey | Promise<CipherKey>;
}

let current: CryptoBackend = WEBCRYPTO_BACKEND;

/**
 * Sets the process-wide backend every sealer and opener created afterwards
 * uses unless given one explicitly, and returns it. The CLI sets it once
 * from the config (`lib/openssl/mod.ts` `loadCryptoBackend` loads one).
 *
 * @example
 * ```ts
 * import { describeCryptoBackend, setCryptoBackend, webCryptoBackend } from "./mod.ts";
 * const b = setCryptoBackend(webCryptoBackend);
 * console.log(`crypto backend: ${describeCryptoBackend(b)}`);
 * ```
 */
export function setCryptoBackend(backend: CryptoBackend): CryptoBackend {
  if (
    typeof backend !== "object" || backend === null || typeof backend.importKey !== "function"
  ) {
    throw new TypeError("Cannot set crypto backend: not a CryptoBackend");
  }
  current = backend;
  return backend;
}

/**
 * The process-wide backend: the last one `setCryptoBackend` set, else
 * `webcrypto` (the record layer itself never loads a native library).
 *
 * @example
 * ```ts
 * import { cryptoBackend } from "./mod.ts";
 * console.log(["openssl", "webcrypto"].includes(cryptoBackend().name)); // true
 * ```
 */
export function cryptoBackend(): CryptoBackend {
  return current;
}

/**
 * One line naming a backend and what runs it, for start-up logs:
 * `openssl (libcrypto.so.3, OpenSSL 3.0.19 27 Jan 2026)`, or `webcrypto
 * (...; auto: --allow-ffi not granted)` when `auto` fell back.
 *
 * @example
 * ```ts
 * import { describeCryptoBackend, webCryptoBackend } from "./mod.ts";
 * console.log(describeCryptoBackend(webCryptoBackend));
 * // webcrypto (Web Crypto AES-GCM, @noble/ciphers ChaCha20-Poly1305)
 * ```
 */
export function describeCryptoBackend(backend: CryptoBackend = cryptoBackend()): string {
  const why = backend.fallbackReason === undefined ? "" : `; auto: ${backend.fallbackReason}`;
  return `${backend.name} (${backend.detail}${why})`;
}
