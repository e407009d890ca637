/**
 * Small shared crypto helpers over `@noble/*` and Web Crypto: random bytes,
 * constant-time comparison, HKDF with labels, zeroing, base64url.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
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

/**
 * Native SHA-256 and HMAC-SHA-256 with the same results as `@noble/hashes`
 * (the OpenSSL curve backend carries one; `setCurveBackend` in `keys.ts`
 * sets it with the curves).
 */
export interface HashBackend {
  /** Who computes them, for logs (e.g. `openssl`). */
  readonly name: string;
  /** SHA-256(data). */
  sha256(data: Uint8Array): Uint8Array;
  /** HMAC-SHA-256(key, data) (RFC 2104). */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
}

let hashes: HashBackend | undefined;

/**
 * Sets (or, with undefined, clears) the process-wide SHA-256 / HMAC backend
 * behind `hash`, `hmacSha256` and the HKDF functions; returns the previous one.
 */
export function setHashBackend(backend: HashBackend | undefined): HashBackend | undefined {
  const prev = hashes;
  hashes = backend;
  return prev;
}

/** The hash backend in use, or undefined for `@noble/hashes`. */
export function hashBackend(): HashBackend | undefined {
  return hashes;
}

/** SHA-256 of the input. */
export function hash(data: Uint8Array): Uint8Array {
  return hashes !== undefined ? hashes.sha256(data) : sha256(data);
}

/** HMAC-SHA-256 (RFC 2104) of `data` under `key`. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hashes !== undefined ? hashes.hmacSha256(key, data) : hmac(sha256, key, data);
}

/**
 * HKDF-Extract with SHA-256 (RFC 5869 section 2.2): HMAC(salt, ikm). An
 * empty salt is the same key as HashLen zeros, as the RFC asks.
 */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt, ikm);
}

/** The longest HKDF-Expand output with SHA-256 (RFC 5869 section 2.3: 255 × HashLen). */
export const HKDF_MAX_BYTES = 255 * 32;

/**
 * HKDF-Expand with SHA-256 (RFC 5869 section 2.3): T(i) = HMAC(prk,
 * T(i-1) ‖ info ‖ i), the first `length` bytes of T(1) ‖ T(2) ‖ …. The PRK
 * must be at least 32 bytes (the RFC's HashLen), as `@noble/hashes` asks.
 */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > HKDF_MAX_BYTES) {
    throw new RangeError(`Cannot expand HKDF: length ${length} is not 0…${HKDF_MAX_BYTES}`);
  }
  if (prk.length < 32) throw new RangeError("Cannot expand HKDF: the PRK is shorter than 32 bytes");
  const out = new Uint8Array(length);
  const input = new Uint8Array(32 + info.length + 1);
  let t: Uint8Array | undefined;
  for (let i = 1, o = 0; o < length; i++, o += 32) {
    // T(1) has no T(0) before info; later blocks start with the previous T.
    const start = t === undefined ? 32 : 0;
    if (t !== undefined) input.set(t);
    input.set(info, 32);
    input[32 + info.length] = i;
    wipe(t);
    t = hmacSha256(prk, input.subarray(start));
    out.set(t.subarray(0, Math.min(32, length - o)), o);
  }
  wipe(t, input);
  return out;
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
  return hkdfExpand(prk, info, length);
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
