/**
 * SHA-256 and HMAC-SHA-256 through OpenSSL 3's `libcrypto` (FFI), as a
 * `HashBackend` for `lib/crypto`: the same bytes as `@noble/hashes`, about
 * three times faster for the handshake's short inputs (a third of the
 * server's handshake time was hashing on `@noble/hashes`; docs/PERFORMANCE.md).
 * Every length is checked here before a buffer reaches C; each output
 * buffer is allocated at the size OpenSSL writes and the size it reports is
 * checked.
 *
 * @module
 */
import type { HashBackend } from "../crypto/mod.ts";
import { openChecked, same } from "./_kat.ts";

const SYMBOLS = {
  ERR_clear_error: { parameters: [], result: "void" },
  EVP_sha256: { parameters: [], result: "pointer" },
  // (data, count, md, &size, type, engine)
  EVP_Digest: {
    parameters: ["buffer", "usize", "buffer", "buffer", "pointer", "pointer"],
    result: "i32",
  },
  // (evp_md, key, key_len, data, n, md, &md_len)
  HMAC: {
    parameters: ["pointer", "buffer", "i32", "buffer", "usize", "buffer", "buffer"],
    result: "pointer",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** SHA-256's output length. */
const DIGEST_BYTES = 32;
/** The longest HMAC key OpenSSL's `int key_len` takes. */
const MAX_KEY_BYTES = 0x7fff_ffff;
/**
 * Stands for an empty HMAC key: an empty buffer reaches C as NULL, which
 * OpenSSL reads as "keep the previous key". HMAC pads a key with zeros to
 * the block, so one zero byte is the same key as none (RFC 2104 section 2).
 */
const EMPTY_KEY = new Uint8Array(1);

class OpenSslHashes implements HashBackend {
  readonly name = "openssl";
  readonly #s: Lib;
  readonly #md: Deno.PointerObject;
  readonly #len = new Uint32Array(1);

  constructor(s: Lib, md: Deno.PointerObject) {
    this.#s = s;
    this.#md = md;
  }

  sha256(data: Uint8Array): Uint8Array {
    if (!(data instanceof Uint8Array)) throw new TypeError("Cannot hash: data is not a Uint8Array");
    const out = new Uint8Array(DIGEST_BYTES);
    this.#len[0] = 0;
    const ok = this.#s.EVP_Digest(data, BigInt(data.length), out, this.#len, this.#md, null);
    if (ok !== 1 || this.#len[0] !== DIGEST_BYTES) {
      this.#s.ERR_clear_error();
      throw new Error("Cannot hash with SHA-256: OpenSSL failed");
    }
    return out;
  }

  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    if (!(key instanceof Uint8Array) || !(data instanceof Uint8Array)) {
      throw new TypeError("Cannot compute HMAC: key and data must be Uint8Arrays");
    }
    if (key.length > MAX_KEY_BYTES) throw new RangeError("Cannot compute HMAC: key too long");
    const out = new Uint8Array(DIGEST_BYTES);
    this.#len[0] = 0;
    const k = key.length === 0 ? EMPTY_KEY : key;
    const r = this.#s.HMAC(this.#md, k, k.length, data, BigInt(data.length), out, this.#len);
    if (r === null || this.#len[0] !== DIGEST_BYTES) {
      this.#s.ERR_clear_error();
      throw new Error("Cannot compute HMAC-SHA-256: OpenSSL failed");
    }
    return out;
  }
}

/**
 * Known answers: SHA-256("abc") (FIPS 180-2 B.1), the empty string, and
 * RFC 4231 section 4.3 (test case 2) and 4.7 (test case 6, a key longer
 * than the block).
 */
function passesKnownAnswers(h: OpenSslHashes): boolean {
  const text = (s: string) => new TextEncoder().encode(s);
  return same(
    h.sha256(text("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  ) &&
    same(
      h.sha256(new Uint8Array(0)),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ) &&
    same(
      h.hmacSha256(text("Jefe"), text("what do ya want for nothing?")),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ) &&
    same(
      h.hmacSha256(
        new Uint8Array(131).fill(0xaa),
        text("Test Using Larger Than Block-Size Key - Hash Key First"),
      ),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    );
}

/**
 * The hash backend over the library `name` (already loaded by the record
 * backend), once it passes its known answers, or why not. Needs `--allow-ffi`.
 */
export function openHashes(name: string): HashBackend | string {
  return openChecked(name, SYMBOLS, "SHA-256/HMAC", (s) => {
    const md = s.EVP_sha256();
    if (md === null) throw new Error("EVP_sha256() returned NULL");
    return new OpenSslHashes(s, md);
  }, passesKnownAnswers);
}
