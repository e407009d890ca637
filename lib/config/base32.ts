/**
 * RFC 4648 base32 (the TOTP secret encoding used by authenticator apps).
 *
 * @module
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * Encodes bytes as unpadded upper-case base32 (RFC 4648 section 6).
 *
 * @example
 * ```ts
 * import { encodeBase32 } from "./base32.ts";
 * encodeBase32(new TextEncoder().encode("foobar")); // "MZXW6YTBOI"
 * ```
 */
export function encodeBase32(bytes: Uint8Array): string {
  let out = "";
  let buf = 0;
  let bits = 0;
  for (const b of bytes) {
    buf = (buf << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buf >>> bits) & 31];
    }
    buf &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buf << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes base32, ignoring case, spaces, dashes and trailing `=` padding;
 * returns undefined for any other character or leftover non-zero bits.
 *
 * @example
 * ```ts
 * import { decodeBase32 } from "./base32.ts";
 * decodeBase32("mzxw 6ytb oi"); // bytes of "foobar"
 * ```
 */
export function decodeBase32(text: string): Uint8Array | undefined {
  const s = text.replace(/[\s-]/g, "").replace(/=+$/, "").toUpperCase();
  const out = new Uint8Array(Math.floor((s.length * 5) / 8));
  let buf = 0;
  let bits = 0;
  let o = 0;
  for (const ch of s) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) return undefined;
    buf = ((buf << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (buf >>> bits) & 0xff;
    }
  }
  if (bits >= 5 || (buf & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}
