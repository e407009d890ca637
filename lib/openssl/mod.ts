/**
 * Loading the record layer's crypto backend, at the edge: finds the
 * system's OpenSSL 3 `libcrypto`, binds the EVP functions the `openssl`
 * backend calls with `Deno.dlopen` (needs `--allow-ffi`) and hands them to
 * `createOpenSslBackend` in `lib/record` (which decides, with every bound
 * checked, what reaches C). `auto` uses OpenSSL when `--allow-ffi` is
 * granted and the library loads, is version 3 or later and passes its
 * self-test, else Web Crypto, and says why.
 *
 * Permission is queried first (`Deno.permissions.querySync`), so loading
 * never prompts and never throws a permission error.
 *
 * @example
 * ```ts
 * import { loadCryptoBackend } from "./mod.ts";
 * import { describeCryptoBackend, setCryptoBackend } from "../record/mod.ts";
import type { CurveBackend } from "../crypto/keys.ts";
import { openCurves } from "./_curves.ts";
 * const backend = setCryptoBackend(loadCryptoBackend("auto"));
 * console.log(`crypto backend: ${describeCryptoBackend(backend)}`);
 * ```
 *
 * @module
 */
import {
  createOpenSslBackend,
  type CryptoBackend,
  type EvpAeadApi,
  type Libcrypto,
  webCryptoBackend,
} from "../record/mod.ts";
import type { CurveBackend } from "../crypto/keys.ts";
import { openCurves } from "./_curves.ts";

/** A configured choice (`crypto.backend`): a backend by name, or `auto`. */
export type CryptoBackendChoice = "auto" | "openssl" | "webcrypto";

/** Options of {@link loadCryptoBackend}. */
export interface CryptoBackendOptions {
  /**
   * The OpenSSL 3 `libcrypto` to load (a path, or a bare name the system
   * loader searches) instead of {@link libcryptoCandidates}. Used by
   * `openssl` and `auto`.
   */
  library?: string;
}

/** `OPENSSL_VERSION` selector of `OpenSSL_version` (openssl/crypto.h). */
const OPENSSL_VERSION = 0;

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

/**
 * The names tried, in order, when no library is configured: the system
 * loader's names for OpenSSL 3, then the usual install places.
 *
 * @example
 * ```ts
 * import { libcryptoCandidates } from "./mod.ts";
 * console.log(libcryptoCandidates("linux")[0]); // libcrypto.so.3
 * ```
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

/** The `openssl` backend over the library loaded by each name, once loaded (loaded once a process). */
const loaded = new Map<string, CryptoBackend>();

function ffiGranted(path: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Opens one library and binds the EVP functions: the `Libcrypto` that
 * `createOpenSslBackend` takes, or why not (not found, not OpenSSL 3, no
 * AES-GCM or ChaCha20-Poly1305). Each call opens the library again; the
 * handle stays open for the life of the process (keys may outlive any
 * caller). Needs `--allow-ffi`.
 *
 * @example
 * ```ts ignore
 * import { openLibcrypto } from "./mod.ts";
 * const lib = openLibcrypto("libcrypto.so.3");
 * console.log(typeof lib === "string" ? lib : lib.version);
 * ```
 */
export function openLibcrypto(name: string): Libcrypto<Deno.PointerObject> | string {
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
  const api: EvpAeadApi<Deno.PointerObject> = s;
  return {
    library: name,
    version,
    api,
    ciphers: { "aes-128-gcm": a128, "aes-256-gcm": a256, "chacha20-poly1305": cc },
  };
}

/** The `openssl` backend over one candidate (opened once a process), or why not. */
function open(name: string): CryptoBackend | string {
  const cached = loaded.get(name);
  if (cached !== undefined) return cached;
  const lib = openLibcrypto(name);
  if (typeof lib === "string") return lib;
  let backend: CryptoBackend;
  try {
    backend = createOpenSslBackend(lib);
  } catch (e) {
    // Contexts of the self-test may still await their finaliser: the library stays open.
    return e instanceof Error ? e.message.replace(/^Cannot use /, "") : String(e);
  }
  loaded.set(name, backend);
  return backend;
}

/** What {@link loadLibcrypto} found: the `openssl` backend, or why there is none. */
export type LibcryptoResult = { ok: true; backend: CryptoBackend } | {
  ok: false;
  reason: string;
};

/**
 * Finds and opens OpenSSL 3's `libcrypto`: `library` if given, else the
 * first of {@link libcryptoCandidates} that `--allow-ffi` covers, that
 * loads, is version 3 or later and passes the self-test. Never prompts for
 * permission and never throws: says why when there is no library.
 *
 * @example
 * ```ts
 * import { loadLibcrypto } from "./mod.ts";
 * const r = loadLibcrypto();
 * console.log(r.ok ? r.backend.detail : r.reason);
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
    if (typeof r !== "string") return { ok: true, backend: r };
    tried.push(r);
  }
  return {
    ok: false,
    reason: library === undefined
      ? `no usable OpenSSL 3 libcrypto found (tried ${tried.join("; ")})`
      : `cannot use "${library}" (${tried.join("; ")})`,
  };
}

/**
 * Loads a backend (without touching the process-wide choice: pass the
 * result to `setCryptoBackend`). `openssl` throws an `Error` saying why it
 * cannot load (`--allow-ffi` not granted, no OpenSSL 3 library, failed
 * self-test); `auto` never throws and records that reason in the Web
 * Crypto backend's `fallbackReason`.
 *
 * @example
 * ```ts
 * import { loadCryptoBackend } from "./mod.ts";
 * import { describeCryptoBackend } from "../record/mod.ts";
 * console.log(describeCryptoBackend(loadCryptoBackend("auto")));
 * // e.g. "openssl (libcrypto.so.3, OpenSSL 3.0.19 27 Jan 2026)"
 * ```
 */
export function loadCryptoBackend(
  choice: CryptoBackendChoice,
  options: CryptoBackendOptions = {},
): CryptoBackend {
  if (choice !== "auto" && choice !== "openssl" && choice !== "webcrypto") {
    throw new TypeError(
      `Cannot load crypto backend: unknown backend "${
        String(choice)
      }" (expected auto, openssl or webcrypto)`,
    );
  }
  if (choice === "webcrypto") return webCryptoBackend;
  const r = loadLibcrypto(options.library);
  if (r.ok) return r.backend;
  if (choice === "openssl") throw new Error(`Cannot use crypto backend openssl: ${r.reason}`);
  const w = webCryptoBackend;
  return {
    name: w.name,
    detail: w.detail,
    synchronous: w.synchronous,
    fallbackReason: r.reason,
    importKey: (aead, raw, use) => w.importKey(aead, raw, use),
  };
}

/** The curve backend of each loaded library (or why there is none). */
const curvesLoaded = new Map<string, CurveBackend | string>();

/**
 * X25519 and Ed25519 signing through the same OpenSSL library as `backend`
 * (the one `loadCryptoBackend` returned), for `setCurveBackend` in
 * `lib/crypto/keys.ts`; undefined for any other backend, or when the
 * library fails the curves' known answers (then `@noble/curves` stays in
 * use, with the same results).
 *
 * @example
 * ```ts
 * import { loadCryptoBackend, loadCurveBackend } from "./mod.ts";
 * console.log(loadCurveBackend(loadCryptoBackend("webcrypto"))); // undefined
 * ```
 */
export function loadCurveBackend(backend: CryptoBackend): CurveBackend | undefined {
  if (backend.name !== "openssl") return undefined;
  for (const [name, b] of loaded) {
    if (b !== backend) continue;
    let c = curvesLoaded.get(name);
    if (c === undefined) {
      c = openCurves(name);
      curvesLoaded.set(name, c);
    }
    return typeof c === "string" ? undefined : c;
  }
  return undefined;
}
