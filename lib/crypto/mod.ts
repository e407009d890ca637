/**
 * Small shared crypto helpers over `@noble/*` and Web Crypto: random bytes,
 * constant-time comparison, HKDF with labels, zeroing, base64url.
 *
 * @module
 */
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";

const encoder = new TextEncoder();

/** Fresh random bytes from the platform CSPRNG. */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  // getRandomValues is limited to 65536 bytes per call.
  for (let o = 0; o < n; o += 65536) {
    crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  }
  return out;
}

/** A source of randomness; tests inject a deterministic one. */
export type RandomSource = (n: number) => Uint8Array;

/**
 * Compares two byte arrays in time that depends only on their lengths.
 *
 * @example
 * ```ts
 * import { ctEqual } from "./mod.ts";
 * ctEqual(new Uint8Array([1]), new Uint8Array([1])); // true
 * ```
 */
export function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

let wipeHook: ((buf: Uint8Array) => void) | undefined;

/**
 * Sets what `wipe` tells before zeroing a buffer (the curve backend's
 * `forget`, set by `setCurveBackend` in `keys.ts`), or nothing.
 */
export function setWipeHook(hook: ((buf: Uint8Array) => void) | undefined): void {
  wipeHook = hook;
}

/** Overwrites key material with zeros (and drops any native copy a backend keeps of it). */
export function wipe(...bufs: (Uint8Array | undefined)[]): void {
  for (const b of bufs) {
    if (b === undefined) continue;
    wipeHook?.(b);
    b.fill(0);
  }
}

/** SHA-256 of the input. */
export function hash(data: Uint8Array): Uint8Array {
  return sha256(data);
}

/** HKDF-Extract with SHA-256 (RFC 5869 section 2.2). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return extract(sha256, ikm, salt);
}

/**
 * HKDF-Expand with SHA-256 and a NitroSocks label: info =
 * "ns1 " + label || context (RFC 5869 section 2.3).
 */
export function hkdfExpandLabel(
  prk: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const l = encoder.encode(`ns1 ${label}`);
  const info = new Uint8Array(l.length + context.length);
  info.set(l);
  info.set(context, l.length);
  return expand(sha256, prk, info, length);
}

/** Encodes bytes as unpadded base64url. */
export function toBase64Url(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes unpadded (or padded) base64url; throws `TypeError` on bad input. */
export function fromBase64Url(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(s)) {
    throw new TypeError(`Cannot decode base64url: invalid character in "${s.slice(0, 8)}…"`);
  }
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const bin = atob(padded);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
