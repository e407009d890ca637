/**
 * The `openssl` backend: AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305
 * from the system's OpenSSL 3 `libcrypto` through `Deno.dlopen` (needs
 * `--allow-ffi`), synchronously, one `EVP_CIPHER_CTX` per key and
 * direction (OpenSSL manual EVP_EncryptInit(3), "AEAD INTERFACE"):
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
 * TypeScript before the call (`_checks.ts`: nonce 12, output exactly input
 * ± 16, in place or disjoint, lengths below 2^30 so the C `int`s are
 * exact); OpenSSL is given the view's own start and a length within it,
 * the tag goes through a 16-byte scratch buffer, and `Final` writes into a
 * 32-byte scratch (`EVP_MAX_BLOCK_LENGTH`), never into caller memory. Tag
 * comparison is OpenSSL's, in constant time. A freed context is never
 * used: wiped keys refuse every call, and a key dropped without `wipe` is
 * freed by a `FinalizationRegistry`.
 *
 * The library is looked up by the usual names for the OS (or an explicit
 * one), must report major version 3 or later, and must pass a known-answer
 * self-test of each suite before it is used.
 *
 * @module
 */
import { wipe } from "../crypto/mod.ts";
import type { KeyUse, SyncCipherKey } from "./_backend.ts";
import { checkKey, checkOpen, checkSeal, decryptFailed } from "./_checks.ts";
import { AEAD_TAG_BYTES } from "./_limits.ts";
import type { AeadId } from "./_types.ts";

/** `EVP_CTRL_AEAD_GET_TAG` (openssl/evp.h; same value as `EVP_CTRL_GCM_GET_TAG`). */
const EVP_CTRL_AEAD_GET_TAG = 0x10;
/** `EVP_CTRL_AEAD_SET_TAG` (openssl/evp.h; same value as `EVP_CTRL_GCM_SET_TAG`). */
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** `OPENSSL_VERSION` selector of `OpenSSL_version` (openssl/crypto.h). */
const OPENSSL_VERSION = 0;
/** `EVP_MAX_BLOCK_LENGTH` (openssl/evp.h): the most a `Final` call may write. */
const EVP_MAX_BLOCK_LENGTH = 32;

const SYMBOLS = {
  // `unsigned long`: 64-bit on Linux and macOS, 32-bit on Windows; the value fits in 32 bits.
  OpenSSL_version_num: { parameters: [], result: "u32" },
  OpenSSL_version: { parameters: ["i32"], result: "pointer" },
  ERR_clear_error: { parameters: [], result: "void" },
  EVP_aes_128_gcm: { parameters: [], result: "pointer" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  // (ctx, cipher, engine, key, iv)
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  // (ctx, out, &outl, in, inl)
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  // (ctx, out, &outl)
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // (ctx, type, arg, ptr)
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// Scratch shared by every call (all calls are synchronous): `int` out-lengths, the tag, Final's output.
const OUTL = new Int32Array(1);
const TAG = new Uint8Array(AEAD_TAG_BYTES);
const FINAL = new Uint8Array(EVP_MAX_BLOCK_LENGTH);

function wiped(): TypeError {
  return new TypeError("Cannot use record key: it has been wiped");
}

/** An OpenSSL 3 `libcrypto` that loaded and passed its self-test. */
export interface LoadedLibcrypto {
  /** The name or path it was loaded by. */
  readonly library: string;
  /** `OpenSSL_version(OPENSSL_VERSION)`, e.g. `OpenSSL 3.0.19 27 Jan 2026`. */
  readonly version: string;
  /** A key for one direction: one `EVP_CIPHER_CTX` initialised with it (`raw` is zeroed). */
  importKey(aead: AeadId, raw: Uint8Array, use: KeyUse): OpenSslKey;
}

/** An AEAD key held in one `EVP_CIPHER_CTX`, for sealing or for opening. */
export class OpenSslKey implements SyncCipherKey {
  readonly sync = true;
  readonly #s: Symbols;
  readonly #registry: FinalizationRegistry<Deno.PointerObject>;
  readonly #use: KeyUse;
  #ctx: Deno.PointerObject | null;

  constructor(lib: Libcrypto, aead: AeadId, raw: Uint8Array, use: KeyUse) {
    checkKey(aead, raw);
    if (use !== "seal" && use !== "open") {
      throw new TypeError(`Cannot import key: use "${String(use)}" is not "seal" or "open"`);
    }
    const s = lib.symbols;
    this.#s = s;
    this.#registry = lib.registry;
    this.#use = use;
    const ctx = s.EVP_CIPHER_CTX_new();
    if (ctx === null) {
      wipe(raw);
      throw new Error("Cannot import key: EVP_CIPHER_CTX_new failed");
    }
    const init = use === "seal" ? s.EVP_EncryptInit_ex : s.EVP_DecryptInit_ex;
    const ok = init(ctx, lib.cipher(aead), null, raw, null) === 1;
    wipe(raw);
    if (!ok) {
      s.ERR_clear_error();
      s.EVP_CIPHER_CTX_free(ctx);
      throw new Error(`Cannot import ${aead} key: OpenSSL refused it`);
    }
    this.#ctx = ctx;
    lib.registry.register(this, ctx, this);
  }

  get wiped(): boolean {
    return this.#ctx === null;
  }

  #live(use: KeyUse): Deno.PointerObject {
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
    const s = this.#s;
    const n = plaintext.length;
    let ok = s.EVP_EncryptInit_ex(ctx, null, null, null, nonce) === 1;
    if (ok && aad.length > 0) ok = s.EVP_EncryptUpdate(ctx, null, OUTL, aad, aad.length) === 1;
    // An empty view might reach C as NULL, which means "AAD" to Update: never pass one.
    if (ok && n > 0) {
      ok = s.EVP_EncryptUpdate(ctx, out, OUTL, plaintext, n) === 1 && OUTL[0] === n;
    }
    if (ok) ok = s.EVP_EncryptFinal_ex(ctx, FINAL, OUTL) === 1 && OUTL[0] === 0;
    if (ok) ok = s.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_BYTES, TAG) === 1;
    if (!ok) {
      s.ERR_clear_error();
      out.fill(0);
      throw new Error("Cannot seal: OpenSSL failed");
    }
    out.set(TAG, n);
  }

  openTo(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): void {
    const ctx = this.#live("open");
    checkOpen(nonce, aad, sealed, out);
    const s = this.#s;
    const n = sealed.length - AEAD_TAG_BYTES;
    for (let i = 0; i < AEAD_TAG_BYTES; i++) TAG[i] = sealed[n + i]!;
    let ok = s.EVP_DecryptInit_ex(ctx, null, null, null, nonce) === 1 &&
      s.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_BYTES, TAG) === 1;
    if (ok && aad.length > 0) ok = s.EVP_DecryptUpdate(ctx, null, OUTL, aad, aad.length) === 1;
    // `sealed` reaches C as its start; only its first n bytes (not the tag) are read.
    if (ok && n > 0) ok = s.EVP_DecryptUpdate(ctx, out, OUTL, sealed, n) === 1 && OUTL[0] === n;
    if (ok) ok = s.EVP_DecryptFinal_ex(ctx, FINAL, OUTL) === 1 && OUTL[0] === 0;
    if (!ok) {
      s.ERR_clear_error();
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
    this.#s.EVP_CIPHER_CTX_free(ctx);
  }
}

/** One opened library: its symbols, ciphers and the finaliser of its contexts. */
class Libcrypto implements LoadedLibcrypto {
  readonly library: string;
  readonly version: string;
  readonly symbols: Symbols;
  readonly registry: FinalizationRegistry<Deno.PointerObject>;
  readonly #ciphers: Record<AeadId, Deno.PointerObject>;

  constructor(
    library: string,
    version: string,
    symbols: Symbols,
    ciphers: Record<AeadId, Deno.PointerObject>,
  ) {
    this.library = library;
    this.version = version;
    this.symbols = symbols;
    this.#ciphers = ciphers;
    this.registry = new FinalizationRegistry((ctx) => symbols.EVP_CIPHER_CTX_free(ctx));
  }

  cipher(aead: AeadId): Deno.PointerObject {
    const c = this.#ciphers[aead];
    if (c === undefined) throw new TypeError(`Cannot import key: unknown AEAD "${String(aead)}"`);
    return c;
  }

  importKey(aead: AeadId, raw: Uint8Array, use: KeyUse): OpenSslKey {
    return new OpenSslKey(this, aead, raw, use);
  }
}

/**
 * The names tried, in order, when no library is configured: the system
 * loader's names for OpenSSL 3, then the usual install places.
 */
export function libcryptoCandidates(os: typeof Deno.build.os = Deno.build.os): string[] {
  switch (os) {
    case "darwin":
      // Never the bare "libcrypto.dylib": macOS aborts a process that loads its private LibreSSL.
      return [
        "libcrypto.3.dylib",
        "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
        "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
        "/opt/local/lib/libcrypto.3.dylib",
      ];
    case "windows":
      return [
        "libcrypto-3-x64.dll",
        "libcrypto-3-arm64.dll",
        "libcrypto-3.dll",
        "C:\\Program Files\\OpenSSL-Win64\\bin\\libcrypto-3-x64.dll",
        "C:\\Program Files\\OpenSSL\\bin\\libcrypto-3-x64.dll",
      ];
    default:
      return [
        "libcrypto.so.3",
        "libcrypto.so",
        "/usr/local/lib64/libcrypto.so.3",
        "/usr/local/lib/libcrypto.so.3",
        "/usr/local/ssl/lib64/libcrypto.so.3",
        "/usr/local/ssl/lib/libcrypto.so.3",
        "/home/linuxbrew/.linuxbrew/opt/openssl@3/lib/libcrypto.so.3",
      ];
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

/** Seals and opens each suite's known answer (twice, so a re-used context is tested); false on any mismatch. */
function selfTest(lib: Libcrypto): string | undefined {
  for (const aead of Object.keys(SELF_TEST) as AeadId[]) {
    const want = unhex(SELF_TEST[aead]);
    const key = () => new Uint8Array(aead === "aes-128-gcm" ? 16 : 32).map((_, i) => i);
    const nonce = new Uint8Array(12).map((_, i) => 0xa0 + i);
    const aad = new Uint8Array([1, 2, 3]);
    const pt = new Uint8Array(20).map((_, i) => i * 3);
    const sealer = lib.importKey(aead, key(), "seal");
    const opener = lib.importKey(aead, key(), "open");
    try {
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
      sealer.wipe();
      opener.wipe();
    }
  }
  return undefined;
}

/** What `loadLibcrypto` found: a library, or why there is none. */
export type LibcryptoResult = { ok: true; lib: LoadedLibcrypto } | { ok: false; reason: string };

const loaded = new Map<string, Libcrypto>();

function ffiGranted(path: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
  } catch {
    return false;
  }
}

/** Opens one candidate; a `Libcrypto`, or why not. */
function open(name: string): Libcrypto | string {
  const cached = loaded.get(name);
  if (cached !== undefined) return cached;
  let dl: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    dl = Deno.dlopen(name, SYMBOLS);
  } catch (e) {
    return `${name}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
  }
  const s = dl.symbols;
  const num = s.OpenSSL_version_num() >>> 0;
  const vp = s.OpenSSL_version(OPENSSL_VERSION);
  const version = vp === null ? `0x${num.toString(16)}` : Deno.UnsafePointerView.getCString(vp);
  if (num >>> 28 < 3) {
    dl.close();
    return `${name}: ${version} is older than OpenSSL 3`;
  }
  const a128 = s.EVP_aes_128_gcm(), a256 = s.EVP_aes_256_gcm(), cc = s.EVP_chacha20_poly1305();
  if (a128 === null || a256 === null || cc === null) {
    dl.close();
    return `${name}: ${version} lacks AES-GCM or ChaCha20-Poly1305`;
  }
  const lib = new Libcrypto(name, version, s, {
    "aes-128-gcm": a128,
    "aes-256-gcm": a256,
    "chacha20-poly1305": cc,
  });
  const failed = selfTest(lib);
  if (failed !== undefined) {
    // Contexts may still await the finaliser: the library stays open.
    return `${name}: ${version} failed its ${failed} self-test`;
  }
  loaded.set(name, lib);
  return lib;
}

/**
 * Finds and opens OpenSSL 3's `libcrypto`: `library` if given, else the
 * first of `libcryptoCandidates()` that `--allow-ffi` covers, that loads,
 * is version 3 or later and passes the self-test. Never prompts for
 * permission and never throws: says why when there is no library.
 *
 * @example
 * ```ts ignore
 * import { loadLibcrypto } from "./_openssl.ts";
 * const r = loadLibcrypto();
 * console.log(r.ok ? r.lib.version : r.reason);
 * ```
 */
export function loadLibcrypto(library?: string): LibcryptoResult {
  const names = library === undefined ? libcryptoCandidates() : [library];
  const permitted = names.filter(ffiGranted);
  if (permitted.length === 0) {
    return {
      ok: false,
      reason: library === undefined
        ? "--allow-ffi is not granted (grant it to use the system's OpenSSL)"
        : `--allow-ffi is not granted for "${library}" (grant it to use the system's OpenSSL)`,
    };
  }
  const tried: string[] = [];
  for (const name of permitted) {
    const r = open(name);
    if (typeof r !== "string") return { ok: true, lib: r };
    tried.push(r);
  }
  return {
    ok: false,
    reason: library === undefined
      ? `no usable OpenSSL 3 libcrypto found (tried ${tried.join("; ")})`
      : `cannot use "${library}" (${tried.join("; ")})`,
  };
}
