/**
 * The `openssl` backend's AEAD: AES-128-GCM, AES-256-GCM and
 * ChaCha20-Poly1305 over OpenSSL 3's EVP interface, synchronously, one
 * `EVP_CIPHER_CTX` per key and direction (OpenSSL manual
 * EVP_EncryptInit(3), "AEAD INTERFACE"). The library itself is opened at
 * the edge (`lib/openssl/mod.ts`, `Deno.dlopen`) and handed in as an
 * `EvpAeadApi`; this file holds everything that decides what reaches C.
 *
 * ```
 * import: EVP_CIPHER_CTX_new; EVP_{En,De}cryptInit_ex(ctx, cipher, NULL, key, NULL)
 * seal:   EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce)      new nonce, same key
 *         EVP_EncryptUpdate(ctx, NULL, &n, aad, aad_len)        AAD
 *         EVP_EncryptUpdate(ctx, out, &n, in, in_len)           n == in_len
 *         EVP_EncryptFinal_ex(ctx, scratch, &n)                 n == 0
 *         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag)
 * open:   EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce)
 *         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag)
 *         EVP_DecryptUpdate(ctx, NULL, &n, aad, aad_len)
 *         EVP_DecryptUpdate(ctx, out, &n, in, in_len)
 *         EVP_DecryptFinal_ex(ctx, scratch, &n)                 1 iff the tag verifies
 * wipe:   EVP_CIPHER_CTX_free(ctx)                              cleanses the key schedule
 * ```
 *
 * Safety: every buffer is a `Uint8Array` whose length was checked in
 * TypeScript before the call (`_checks.ts`: key length, nonce 12, output
 * exactly input ± 16, in place or disjoint, lengths below 2^30 so the C
 * `int`s are exact); OpenSSL is given a view's own start and a length
 * within it, the tag goes through a 16-byte scratch buffer, `Final` writes
 * into a 32-byte scratch (`EVP_MAX_BLOCK_LENGTH`), never into caller
 * memory, and no empty view is passed (it could reach C as NULL, which
 * `Update` reads as "AAD"). Tag comparison is OpenSSL's, in constant time.
 * A freed context is never used: wiped keys refuse every call, and a key
 * dropped without `wipe` is freed by a `FinalizationRegistry`.
 *
 * @module
 */
import { wipe } from "../crypto/mod.ts";
import type { CryptoBackend, KeyUse, SyncCipherKey } from "./_backend.ts";
import { checkKey, checkOpen, checkSeal, decryptFailed } from "./_checks.ts";
import { AEAD_TAG_BYTES } from "./_limits.ts";
import type { AeadId } from "./_types.ts";

/** `EVP_CTRL_AEAD_GET_TAG` (openssl/evp.h; same value as `EVP_CTRL_GCM_GET_TAG`). */
const EVP_CTRL_AEAD_GET_TAG = 0x10;
/** `EVP_CTRL_AEAD_SET_TAG` (openssl/evp.h; same value as `EVP_CTRL_GCM_SET_TAG`). */
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** `EVP_MAX_BLOCK_LENGTH` (openssl/evp.h): the most a `Final` call may write. */
const EVP_MAX_BLOCK_LENGTH = 32;

/**
 * The libcrypto functions this backend calls (openssl/evp.h,
 * openssl/err.h), as `Deno.dlopen` binds them: pointers (`EVP_CIPHER_CTX *`,
 * `const EVP_CIPHER *`) are opaque values of type `P`, `buffer` arguments
 * are typed arrays (their first byte is what C sees), `int *`
 * out-parameters are one-element `Int32Array`s.
 */
export interface EvpAeadApi<P> {
  /** `void ERR_clear_error(void)`: forgets the thread's queued errors after a failure. */
  ERR_clear_error(): void;
  /** `EVP_CIPHER_CTX *EVP_CIPHER_CTX_new(void)`. */
  EVP_CIPHER_CTX_new(): P | null;
  /** `void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX *ctx)`: cleanses and frees. */
  EVP_CIPHER_CTX_free(ctx: P): void;
  /** `int EVP_EncryptInit_ex(ctx, cipher, impl, key, iv)`: 1 on success. */
  EVP_EncryptInit_ex(
    ctx: P,
    cipher: P | null,
    engine: null,
    key: Uint8Array | null,
    iv: Uint8Array | null,
  ): number;
  /** `int EVP_DecryptInit_ex(ctx, cipher, impl, key, iv)`: 1 on success. */
  EVP_DecryptInit_ex(
    ctx: P,
    cipher: P | null,
    engine: null,
    key: Uint8Array | null,
    iv: Uint8Array | null,
  ): number;
  /** `int EVP_EncryptUpdate(ctx, out, &outl, in, inl)`: `out` NULL means `in` is AAD. */
  EVP_EncryptUpdate(
    ctx: P,
    out: Uint8Array | null,
    outl: Int32Array,
    input: Uint8Array,
    inl: number,
  ): number;
  /** `int EVP_DecryptUpdate(ctx, out, &outl, in, inl)`: `out` NULL means `in` is AAD. */
  EVP_DecryptUpdate(
    ctx: P,
    out: Uint8Array | null,
    outl: Int32Array,
    input: Uint8Array,
    inl: number,
  ): number;
  /** `int EVP_EncryptFinal_ex(ctx, out, &outl)`: computes the tag. */
  EVP_EncryptFinal_ex(ctx: P, out: Uint8Array, outl: Int32Array): number;
  /** `int EVP_DecryptFinal_ex(ctx, out, &outl)`: 1 iff the tag set before verifies. */
  EVP_DecryptFinal_ex(ctx: P, out: Uint8Array, outl: Int32Array): number;
  /** `int EVP_CIPHER_CTX_ctrl(ctx, type, arg, ptr)`: gets or sets the tag here. */
  EVP_CIPHER_CTX_ctrl(ctx: P, type: number, arg: number, ptr: Uint8Array): number;
}

/** An opened OpenSSL 3 libcrypto: what it is, its functions and its three ciphers. */
export interface Libcrypto<P> {
  /** The name or path it was loaded by. */
  library: string;
  /** `OpenSSL_version(OPENSSL_VERSION)`, e.g. `OpenSSL 3.0.19 27 Jan 2026`. */
  version: string;
  /** The bound functions. */
  api: EvpAeadApi<P>;
  /** `EVP_aes_128_gcm()`, `EVP_aes_256_gcm()`, `EVP_chacha20_poly1305()`. */
  ciphers: Readonly<Record<AeadId, P>>;
}

// Scratch shared by every call (all calls are synchronous): `int` out-lengths, the tag, Final's output.
const OUTL = new Int32Array(1);
const TAG = new Uint8Array(AEAD_TAG_BYTES);
const FINAL = new Uint8Array(EVP_MAX_BLOCK_LENGTH);

function wiped(): TypeError {
  return new TypeError("Cannot use record key: it has been wiped");
}

/** One library's API with the finaliser of its contexts. */
interface Bound<P> {
  api: EvpAeadApi<P>;
  ciphers: Readonly<Record<AeadId, P>>;
  registry: FinalizationRegistry<P>;
}

/** An AEAD key held in one `EVP_CIPHER_CTX`, for sealing or for opening. */
export class OpenSslKey<P = unknown> implements SyncCipherKey {
  readonly sync = true;
  readonly #api: EvpAeadApi<P>;
  readonly #registry: FinalizationRegistry<P>;
  readonly #use: KeyUse;
  #ctx: P | null;

  /** Initialises a context with `raw` (checked against the suite), then zeroes `raw`. */
  constructor(lib: Bound<P>, aead: AeadId, raw: Uint8Array, use: KeyUse) {
    checkKey(aead, raw);
    if (use !== "seal" && use !== "open") {
      throw new TypeError(`Cannot import key: use "${String(use)}" is not "seal" or "open"`);
    }
    const api = lib.api;
    this.#api = api;
    this.#registry = lib.registry;
    this.#use = use;
    const ctx = api.EVP_CIPHER_CTX_new();
    if (ctx === null) {
      wipe(raw);
      throw new Error("Cannot import key: EVP_CIPHER_CTX_new failed");
    }
    const cipher = lib.ciphers[aead];
    const ok = use === "seal"
      ? api.EVP_EncryptInit_ex(ctx, cipher, null, raw, null) === 1
      : api.EVP_DecryptInit_ex(ctx, cipher, null, raw, null) === 1;
    wipe(raw);
    if (!ok) {
      api.ERR_clear_error();
      api.EVP_CIPHER_CTX_free(ctx);
      throw new Error(`Cannot import ${aead} key: OpenSSL refused it`);
    }
    this.#ctx = ctx;
    lib.registry.register(this, ctx, this);
  }

  get wiped(): boolean {
    return this.#ctx === null;
  }

  #live(use: KeyUse): P {
    const ctx = this.#ctx;
    if (ctx === null) throw wiped();
    if (use !== this.#use) {
      throw new TypeError(`Cannot ${use} with a key imported to ${this.#use}`);
    }
    return ctx;
  }

  sealTo(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    const ctx = this.#live("seal");
    checkSeal(nonce, aad, plaintext, out);
    const api = this.#api;
    const n = plaintext.length;
    let ok = api.EVP_EncryptInit_ex(ctx, null, null, null, nonce) === 1;
    if (ok && aad.length > 0) ok = api.EVP_EncryptUpdate(ctx, null, OUTL, aad, aad.length) === 1;
    if (ok && n > 0) {
      ok = api.EVP_EncryptUpdate(ctx, out, OUTL, plaintext, n) === 1 && OUTL[0] === n;
    }
    if (ok) ok = api.EVP_EncryptFinal_ex(ctx, FINAL, OUTL) === 1 && OUTL[0] === 0;
    if (ok) ok = api.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_BYTES, TAG) === 1;
    if (!ok) {
      api.ERR_clear_error();
      out.fill(0);
      throw new Error("Cannot seal: OpenSSL failed");
    }
    out.set(TAG, n);
  }

  openTo(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): void {
    const ctx = this.#live("open");
    checkOpen(nonce, aad, sealed, out);
    const api = this.#api;
    const n = sealed.length - AEAD_TAG_BYTES;
    for (let i = 0; i < AEAD_TAG_BYTES; i++) TAG[i] = sealed[n + i]!;
    let ok = api.EVP_DecryptInit_ex(ctx, null, null, null, nonce) === 1 &&
      api.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_BYTES, TAG) === 1;
    if (ok && aad.length > 0) ok = api.EVP_DecryptUpdate(ctx, null, OUTL, aad, aad.length) === 1;
    // `sealed` reaches C as its start; only its first n bytes (not the tag) are read.
    if (ok && n > 0) ok = api.EVP_DecryptUpdate(ctx, out, OUTL, sealed, n) === 1 && OUTL[0] === n;
    if (ok) ok = api.EVP_DecryptFinal_ex(ctx, FINAL, OUTL) === 1 && OUTL[0] === 0;
    if (!ok) {
      api.ERR_clear_error();
      out.fill(0); // unauthenticated plaintext
      throw decryptFailed();
    }
  }

  /** Frees the context (OpenSSL cleanses its key schedule). */
  wipe(): void {
    const ctx = this.#ctx;
    if (ctx === null) return;
    this.#ctx = null;
    this.#registry.unregister(this);
    this.#api.EVP_CIPHER_CTX_free(ctx);
  }
}

function unhex(h: string): Uint8Array {
  return Uint8Array.from(h.match(/../g)!, (b) => parseInt(b, 16));
}

/**
 * Known answers (key = 00 01 .. 1f, nonce = a0 .. ab, aad = 01 02 03,
 * plaintext = 00 03 06 .. 39), computed with `@noble/ciphers`.
 */
const SELF_TEST: Readonly<Record<AeadId, string>> = {
  "aes-128-gcm": "aa853eb27286211f9263ab2162359a4d63dd15312a417c0a22a8ce358b2f2b3772e531e2",
  "aes-256-gcm": "e61b7a2449c410aa7a7e99f2235deaf3409f6f29d4669d4bb3e97394509c43a30f865198",
  "chacha20-poly1305": "0ca87e5641e9d0b8b814ed35d8ddd7d6ad6de58671868449928c8b93d50231b40b00ed40",
};

/**
 * Seals and opens each suite's known answer twice (so a reused context is
 * tested too) and checks a forged tag fails; returns the first suite that
 * misbehaves.
 */
function selfTest<P>(lib: Bound<P>): AeadId | undefined {
  for (const aead of Object.keys(SELF_TEST) as AeadId[]) {
    const want = unhex(SELF_TEST[aead]);
    const key = () => new Uint8Array(aead === "aes-128-gcm" ? 16 : 32).map((_, i) => i);
    const nonce = new Uint8Array(12).map((_, i) => 0xa0 + i);
    const aad = new Uint8Array([1, 2, 3]);
    const pt = new Uint8Array(20).map((_, i) => i * 3);
    let sealer: OpenSslKey<P> | undefined;
    let opener: OpenSslKey<P> | undefined;
    try {
      sealer = new OpenSslKey(lib, aead, key(), "seal");
      opener = new OpenSslKey(lib, aead, key(), "open");
      for (let round = 0; round < 2; round++) {
        const out = new Uint8Array(pt.length + AEAD_TAG_BYTES);
        sealer.sealTo(nonce, aad, pt, out);
        if (out.some((b, i) => b !== want[i])) return aead;
        const back = new Uint8Array(pt.length);
        opener.openTo(nonce, aad, out, back);
        if (back.some((b, i) => b !== pt[i])) return aead;
        out[out.length - 1]! ^= 1;
        try {
          opener.openTo(nonce, aad, out, back);
          return aead; // a forged tag verified
        } catch {
          // expected
        }
      }
    } catch {
      return aead;
    } finally {
      sealer?.wipe();
      opener?.wipe();
    }
  }
  return undefined;
}

/** The `openssl` backend over one library. */
class OpenSslBackend<P> implements CryptoBackend {
  readonly name = "openssl";
  readonly synchronous = true;
  readonly detail: string;
  readonly #lib: Bound<P>;

  constructor(lib: Bound<P>, detail: string) {
    this.#lib = lib;
    this.detail = detail;
  }

  importKey(aead: AeadId, raw: Uint8Array, use: KeyUse): OpenSslKey<P> {
    return new OpenSslKey(this.#lib, aead, raw, use);
  }
}

/**
 * The `openssl` backend over an opened libcrypto, once each suite has
 * passed a known-answer self-test; throws `Error` naming the suite that
 * failed.
 *
 * @example
 * ```ts ignore
 * import { createOpenSslBackend } from "./mod.ts";
 * const backend = createOpenSslBackend(libcrypto); // from lib/openssl/mod.ts
 * ```
 */
export function createOpenSslBackend<P>(lib: Libcrypto<P>): CryptoBackend {
  const api = lib.api;
  const bound: Bound<P> = {
    api,
    ciphers: lib.ciphers,
    registry: new FinalizationRegistry<P>((ctx) => api.EVP_CIPHER_CTX_free(ctx)),
  };
  const failed = selfTest(bound);
  if (failed !== undefined) {
    throw new Error(`Cannot use ${lib.library}: ${lib.version} failed its ${failed} self-test`);
  }
  return new OpenSslBackend(bound, `${lib.library}, ${lib.version}`);
}
