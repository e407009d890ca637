/**
 * X25519 and Ed25519 signing through OpenSSL 3's `libcrypto` (FFI), as a
 * `CurveBackend` for `lib/crypto`: the same bytes as `@noble/curves`
 * (RFC 7748 and RFC 8032 are deterministic), several times faster. Every
 * length is checked by the callers in `lib/crypto/keys.ts` before a buffer
 * reaches C; here, each output buffer is allocated at the size OpenSSL is
 * told, and the size it reports back is checked.
 *
 * @module
 */
import type { CurveBackend } from "../crypto/keys.ts";
import { ctEqual, type HashBackend } from "../crypto/mod.ts";
import { openHashes } from "./_hashes.ts";
import { openChecked, same, unhex } from "./_kat.ts";

/** `EVP_PKEY_X25519` (= `NID_X25519`, openssl/obj_mac.h). */
const EVP_PKEY_X25519 = 1034;
/** `EVP_PKEY_ED25519` (= `NID_ED25519`). */
const EVP_PKEY_ED25519 = 1087;

const SYMBOLS = {
  ERR_clear_error: { parameters: [], result: "void" },
  // (type, engine, key, keylen)
  EVP_PKEY_new_raw_private_key: {
    parameters: ["i32", "pointer", "buffer", "usize"],
    result: "pointer",
  },
  EVP_PKEY_new_raw_public_key: {
    parameters: ["i32", "pointer", "buffer", "usize"],
    result: "pointer",
  },
  // (pkey, out, &outlen)
  EVP_PKEY_get_raw_public_key: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  EVP_PKEY_CTX_new: { parameters: ["pointer", "pointer"], result: "pointer" },
  EVP_PKEY_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_PKEY_derive_init: { parameters: ["pointer"], result: "i32" },
  EVP_PKEY_derive_set_peer: { parameters: ["pointer", "pointer"], result: "i32" },
  // (ctx, out, &outlen)
  EVP_PKEY_derive: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_MD_CTX_new: { parameters: [], result: "pointer" },
  EVP_MD_CTX_free: { parameters: ["pointer"], result: "void" },
  // (ctx, &pctx, md, engine, pkey)
  EVP_DigestSignInit: {
    parameters: ["pointer", "pointer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  // (ctx, sig, &siglen, msg, msglen)
  EVP_DigestSign: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "usize"],
    result: "i32",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A `size_t` in and out of C (64-bit on every platform Deno runs on). */
const SIZE = new BigUint64Array(1);

/**
 * The most `EVP_PKEY`s held at once for callers' private keys; past it a key
 * is made and freed per use, as without the cache.
 */
export const MAX_HELD_KEYS = 64;

/** A private key's `EVP_PKEY`, held while the caller's buffer lives. */
interface Held {
  readonly type: number;
  readonly pkey: Deno.PointerObject;
  /** The bytes it was made from: a buffer changed in place is a new key. */
  readonly copy: Uint8Array;
}

class OpenSslCurves implements CurveBackend {
  readonly name = "openssl";
  /** SHA-256 and HMAC from the same library, when they pass their known answers. */
  hashes?: HashBackend;
  readonly #s: Lib;
  /**
   * Making an `EVP_PKEY` from raw private bytes costs a scalar multiplication
   * (OpenSSL derives the public key), a third of the server's curve work per
   * handshake. A key used again through the same buffer — the server's
   * static X25519 key and signing seed on every handshake, its ephemeral key
   * three times in one — reuses its `EVP_PKEY`. Entries are keyed by the
   * buffer object (weakly), checked against a copy of its bytes (constant
   * time) on every use, dropped by `forget` (which `wipe` calls) and freed
   * when the buffer is collected.
   */
  readonly #held = new WeakMap<Uint8Array, Held>();
  readonly #freed: FinalizationRegistry<Held>;
  /** Every held entry, so `dispose` can free them before the library closes. */
  readonly #all = new Set<Held>();

  constructor(s: Lib) {
    this.#s = s;
    this.#freed = new FinalizationRegistry((h) => this.#release(h));
  }

  #release(h: Held): void {
    if (!this.#all.delete(h)) return;
    this.#s.EVP_PKEY_free(h.pkey);
    h.copy.fill(0);
  }

  /** An `EVP_PKEY` from a raw 32-byte private key (OpenSSL derives its public key). */
  #make(type: number, raw: Uint8Array): Deno.PointerObject {
    const s = this.#s;
    const k = s.EVP_PKEY_new_raw_private_key(type, null, raw, BigInt(raw.length));
    if (k === null) {
      s.ERR_clear_error();
      throw new Error("Cannot use key: OpenSSL refused it");
    }
    return k;
  }

  /**
   * Runs `use` with the `EVP_PKEY` of `raw`: the held one when `raw` is the
   * same buffer with the same bytes, else a new one (held while there is room,
   * freed after `use` otherwise).
   */
  #with<T>(type: number, raw: Uint8Array, use: (k: Deno.PointerObject) => T): T {
    const h = this.#held.get(raw);
    if (h !== undefined && h.type === type && ctEqual(h.copy, raw)) return use(h.pkey);
    if (h !== undefined) this.forget(raw);
    const pkey = this.#make(type, raw);
    if (this.#all.size >= MAX_HELD_KEYS) {
      try {
        return use(pkey);
      } finally {
        this.#s.EVP_PKEY_free(pkey);
      }
    }
    const held: Held = { type, pkey, copy: raw.slice() };
    this.#held.set(raw, held);
    this.#freed.register(raw, held, held);
    this.#all.add(held);
    return use(pkey);
  }

  /** Drops (and frees) what is held for `raw`, if anything. */
  forget(raw: Uint8Array): void {
    const h = this.#held.get(raw);
    if (h === undefined) return;
    this.#held.delete(raw);
    this.#freed.unregister(h);
    this.#release(h);
  }

  /** How many private keys are held now (for tests). */
  get held(): number {
    return this.#all.size;
  }

  /** Frees everything held (before the library is closed). */
  dispose(): void {
    for (const h of [...this.#all]) {
      this.#freed.unregister(h);
      this.#release(h);
    }
  }

  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
    return this.#with(EVP_PKEY_X25519, privateKey, (mine) => this.#derive(mine, publicKey));
  }

  #derive(mine: Deno.PointerObject, publicKey: Uint8Array): Uint8Array | undefined {
    const s = this.#s;
    let peer: Deno.PointerObject | null = null;
    let ctx: Deno.PointerObject | null = null;
    try {
      // OpenSSL takes any 32 bytes as an X25519 public key; should it refuse one, so do we.
      peer = s.EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, null, publicKey, 32n);
      if (peer === null) {
        s.ERR_clear_error();
        return undefined;
      }
      ctx = s.EVP_PKEY_CTX_new(mine, null);
      const out = new Uint8Array(32);
      SIZE[0] = 32n;
      // OpenSSL refuses an all-zero result (a low-order peer key): undefined.
      const ok = ctx !== null && s.EVP_PKEY_derive_init(ctx) === 1 &&
        s.EVP_PKEY_derive_set_peer(ctx, peer) === 1 &&
        s.EVP_PKEY_derive(ctx, out, SIZE) === 1 && SIZE[0] === 32n;
      if (!ok) {
        s.ERR_clear_error();
        out.fill(0);
        return undefined;
      }
      return out;
    } finally {
      if (ctx !== null) s.EVP_PKEY_CTX_free(ctx);
      if (peer !== null) s.EVP_PKEY_free(peer);
    }
  }

  x25519PublicKey(privateKey: Uint8Array): Uint8Array {
    const s = this.#s;
    return this.#with(EVP_PKEY_X25519, privateKey, (k) => {
      const out = new Uint8Array(32);
      SIZE[0] = 32n;
      if (s.EVP_PKEY_get_raw_public_key(k, out, SIZE) !== 1 || SIZE[0] !== 32n) {
        s.ERR_clear_error();
        throw new Error("Cannot compute X25519 public key: OpenSSL failed");
      }
      return out;
    });
  }

  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    return this.#with(EVP_PKEY_ED25519, seed, (k) => this.#sign(k, message));
  }

  #sign(k: Deno.PointerObject, message: Uint8Array): Uint8Array {
    const s = this.#s;
    const md = s.EVP_MD_CTX_new();
    try {
      const sig = new Uint8Array(64);
      SIZE[0] = 64n;
      const ok = md !== null && s.EVP_DigestSignInit(md, null, null, null, k) === 1 &&
        s.EVP_DigestSign(md, sig, SIZE, message, BigInt(message.length)) === 1 &&
        SIZE[0] === 64n;
      if (!ok) {
        s.ERR_clear_error();
        throw new Error("Cannot sign with Ed25519: OpenSSL failed");
      }
      return sig;
    } finally {
      if (md !== null) s.EVP_MD_CTX_free(md);
    }
  }
}

/**
 * Known answers: RFC 7748 section 5.2's second X25519 test vector and
 * section 6.1's Alice public key, RFC 8032 section 7.1 TEST 2 (one-byte
 * message).
 */
const KAT = {
  x25519: {
    k: "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
    u: "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
    out: "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
  },
  x25519Public: {
    k: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    out: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  },
  ed25519: {
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    msg: "72",
    sig: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
};

/**
 * The curve backend over `name` (the library the record backend loaded),
 * once it passes its known answers, or why not. Needs `--allow-ffi`.
 */
export function openCurves(name: string): CurveBackend | string {
  const { x25519, x25519Public, ed25519 } = KAT;
  const c = openChecked(
    name,
    SYMBOLS,
    "X25519/Ed25519",
    (s) => new OpenSslCurves(s),
    (c) =>
      same(c.x25519(unhex(x25519.k), unhex(x25519.u)), x25519.out) &&
      same(c.x25519PublicKey(unhex(x25519Public.k)), x25519Public.out) &&
      same(c.ed25519Sign(unhex(ed25519.seed), unhex(ed25519.msg)), ed25519.sig) &&
      c.x25519(unhex(x25519.k), new Uint8Array(32)) === undefined,
    (c) => c.dispose(),
  );
  if (typeof c === "string") return c;
  // Without them (a library that fails their known answers), `@noble/hashes` stays in use.
  const hashes = openHashes(name);
  if (typeof hashes !== "string") c.hashes = hashes;
  return c;
}
