/**
 * The record layer's crypto backends: who runs the AEAD of each record.
 *
 * - `openssl`: the system's OpenSSL 3 `libcrypto` through `Deno.dlopen`
 *   (`_openssl.ts`), synchronous for every suite; needs `--allow-ffi`.
 * - `webcrypto`: Web Crypto AES-GCM (asynchronous) and `@noble/ciphers`
 *   ChaCha20-Poly1305 (synchronous) (`_webcrypto.ts`).
 * - `auto`: `openssl` when `--allow-ffi` is granted and the library loads
 *   and passes its self-test, else `webcrypto`, silently.
 *
 * Both run behind one small key interface: a key is imported for one
 * direction ("seal" or "open") of one epoch and either seals and opens
 * synchronously into caller-owned buffers (`SyncCipherKey`) or returns
 * promises of new arrays (`AsyncCipherKey`, Web Crypto AES only).
 *
 * The choice is process-wide (`setCryptoBackend`, called once by the CLI
 * from the loaded config); until it is made, the first record layer created
 * resolves `auto`. Sealers and openers may also be given a backend
 * explicitly (tests, benchmarks).
 *
 * @module
 */
import { type LoadedLibcrypto, loadLibcrypto } from "./_openssl.ts";
import { WEBCRYPTO_BACKEND } from "./_webcrypto.ts";
import type { AeadId } from "./_types.ts";

/** A backend by name. */
export type CryptoBackendName = "openssl" | "webcrypto";
/** A configured choice: a backend by name, or `auto`. */
export type CryptoBackendChoice = "auto" | CryptoBackendName;
/** Every `CryptoBackendChoice`, for config schemas. */
export const CRYPTO_BACKEND_CHOICES: readonly CryptoBackendChoice[] = [
  "auto",
  "openssl",
  "webcrypto",
];

/** What a key is imported for: an epoch's key seals in a sealer and opens in an opener. */
export type KeyUse = "seal" | "open";

/**
 * A key that seals and opens synchronously, into buffers the caller owns.
 * Every length and overlap is checked before any byte is touched.
 */
export interface SyncCipherKey {
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
 * import { loadCryptoBackend } from "./mod.ts";
 * const b = loadCryptoBackend("webcrypto");
 * console.log(b.name, b.synchronous); // webcrypto false
 * ```
 */
export interface CryptoBackend {
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

/** Options of `loadCryptoBackend` and `setCryptoBackend`. */
export interface CryptoBackendOptions {
  /**
   * The OpenSSL 3 `libcrypto` to load (a path, or a bare name the system
   * loader searches) instead of the usual names. Used by `openssl` and `auto`.
   */
  library?: string;
}

function isChoice(x: unknown): x is CryptoBackendChoice {
  return x === "auto" || x === "openssl" || x === "webcrypto";
}

/** The `openssl` backend over one loaded library. */
class OpenSslBackend implements CryptoBackend {
  readonly name = "openssl";
  readonly synchronous = true;
  readonly detail: string;
  readonly #lib: LoadedLibcrypto;

  constructor(lib: LoadedLibcrypto) {
    this.#lib = lib;
    this.detail = `${lib.library}, ${lib.version}`;
  }

  importKey(aead: AeadId, raw: Uint8Array, use: KeyUse): CipherKey {
    return this.#lib.importKey(aead, raw, use);
  }
}

/** `webcrypto`, with the reason `auto` fell back to it. */
function fallback(reason: string): CryptoBackend {
  return {
    name: WEBCRYPTO_BACKEND.name,
    detail: WEBCRYPTO_BACKEND.detail,
    synchronous: WEBCRYPTO_BACKEND.synchronous,
    fallbackReason: reason,
    importKey: (aead, raw, use) => WEBCRYPTO_BACKEND.importKey(aead, raw, use),
  };
}

/**
 * Loads a backend without touching the process-wide choice. `openssl`
 * throws an `Error` saying why it cannot load (`--allow-ffi` not granted,
 * no OpenSSL 3 library found, self-test failed); `auto` never throws and
 * records that reason in `fallbackReason`.
 *
 * @example
 * ```ts
 * import { describeCryptoBackend, loadCryptoBackend } from "./mod.ts";
 * const b = loadCryptoBackend("auto");
 * console.log(describeCryptoBackend(b)); // e.g. "openssl (libcrypto.so.3, OpenSSL 3.0.19 27 Jan 2026)"
 * ```
 */
export function loadCryptoBackend(
  choice: CryptoBackendChoice,
  options: CryptoBackendOptions = {},
): CryptoBackend {
  if (!isChoice(choice)) {
    throw new TypeError(
      `Cannot load crypto backend: unknown backend "${
        String(choice)
      }" (expected auto, openssl or webcrypto)`,
    );
  }
  if (choice === "webcrypto") return WEBCRYPTO_BACKEND;
  const r = loadLibcrypto(options.library);
  if (r.ok) return new OpenSslBackend(r.lib);
  if (choice === "auto") return fallback(r.reason);
  throw new Error(`Cannot use crypto backend openssl: ${r.reason}`);
}

let current: CryptoBackend | undefined;

/**
 * Sets the process-wide backend every sealer and opener created afterwards
 * uses (unless given one explicitly), and returns it. Throws like
 * `loadCryptoBackend` (the previous choice then stays).
 *
 * @example
 * ```ts
 * import { describeCryptoBackend, setCryptoBackend } from "./mod.ts";
 * const b = setCryptoBackend("webcrypto");
 * console.log(`crypto backend: ${describeCryptoBackend(b)}`);
 * ```
 */
export function setCryptoBackend(
  choice: CryptoBackendChoice,
  options: CryptoBackendOptions = {},
): CryptoBackend {
  const b = loadCryptoBackend(choice, options);
  current = b;
  return b;
}

/**
 * The process-wide backend: the one `setCryptoBackend` chose, or `auto`
 * resolved on first use.
 *
 * @example
 * ```ts
 * import { cryptoBackend } from "./mod.ts";
 * console.log(["openssl", "webcrypto"].includes(cryptoBackend().name)); // true
 * ```
 */
export function cryptoBackend(): CryptoBackend {
  current ??= loadCryptoBackend("auto");
  return current;
}

/**
 * One line naming a backend and what runs it, for start-up logs:
 * `openssl (libcrypto.so.3, OpenSSL 3.0.19 27 Jan 2026)`, or `webcrypto
 * (...; auto: --allow-ffi not granted)` when `auto` fell back.
 *
 * @example
 * ```ts
 * import { describeCryptoBackend, loadCryptoBackend } from "./mod.ts";
 * console.log(describeCryptoBackend(loadCryptoBackend("webcrypto")));
 * // webcrypto (Web Crypto AES-GCM, @noble/ciphers ChaCha20-Poly1305)
 * ```
 */
export function describeCryptoBackend(backend: CryptoBackend = cryptoBackend()): string {
  const why = backend.fallbackReason === undefined ? "" : `; auto: ${backend.fallbackReason}`;
  return `${backend.name} (${backend.detail}${why})`;
}
