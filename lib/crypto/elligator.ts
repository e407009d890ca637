/**
 * Elligator 2 for Curve25519: X25519 public keys encoded as 32 bytes that
 * are indistinguishable from uniform random bytes, so the first bytes of a
 * NitroSocks Hello carry no curve-point pattern (obfs4 does the same).
 *
 * Map: Bernstein, Hamburg, Krasnova, Lange, "Elligator: elliptic-curve points
 * indistinguishable from uniform random strings" (2013), section 5, with the
 * non-square 2; it equals RFC 9380 section 6.7.1 `map_to_curve_elligator2`
 * for curve25519 (held equal to `@noble/curves` in the tests).
 *
 * Two details make the output uniform rather than merely "random-looking":
 * - a plain X25519 key lies in the prime-order subgroup, which a censor can
 *   test; the key pair here adds a random point of the 8-torsion subgroup to
 *   the public key. X25519 clamps every scalar to a multiple of 8, so the
 *   peer's DH result does not change.
 * - each curve u has two representatives (one per sign of y); one is picked at
 *   random, and the two unused top bits of the 254-bit representative are
 *   random too.
 *
 * @module
 */
import { ed25519, ED25519_TORSION_SUBGROUP } from "@noble/curves/ed25519.js";
import { invert, mod, pow } from "@noble/curves/abstract/modular.js";
import { randomBytes, type RandomSource, wipe } from "./mod.ts";

/** Bytes in an encoded representative. */
export const REPRESENTATIVE_BYTES = 32;

/** The field prime 2^255 - 19 (RFC 7748 section 4.1). */
const P = 2n ** 255n - 19n;
/** Montgomery coefficient A of Curve25519 (RFC 7748 section 4.1). */
const A = 486662n;
/** The non-square used by the map (RFC 9380 Z = 2 for curve25519). */
const Z = 2n;
/** Order of the Ed25519 base point (RFC 8032 section 5.1). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const HALF_P = (P - 1n) / 2n;
const LEGENDRE_EXP = (P - 1n) / 2n;
const SQRT_EXP = (P + 3n) / 8n;
const SQRT_M1 = pow(2n, (P - 1n) / 4n, P);
/** Representatives are < 2^254: the top two bits of byte 31 are free. */
const TOP_BITS_MASK = 0xc0;

function isSquare(x: bigint): boolean {
  return pow(x, LEGENDRE_EXP, P) !== P - 1n;
}

/** A square root mod P, or undefined (P = 5 mod 8, RFC 8032 section 5.1.3). */
function sqrt(x: bigint): bigint | undefined {
  const c = pow(x, SQRT_EXP, P);
  if (mod(c * c, P) === x) return c;
  const c2 = mod(c * SQRT_M1, P);
  if (mod(c2 * c2, P) === x) return c2;
  return undefined;
}

function fromLE(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

function toLE32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/**
 * Forward map: field element r to a Montgomery u (paper section 5.2):
 * v = -A / (1 + 2 r^2); u = v if v^3 + A v^2 + v is square, else -v - A.
 * 1 + 2 r^2 is never 0 because -1/2 is not a square mod P.
 */
function forward(r: bigint): bigint {
  const v = mod(-A * invert(mod(1n + Z * r * r, P), P), P);
  const gv = mod(v * v * v + A * v * v + v, P);
  return isSquare(gv) ? v : mod(-v - A, P);
}

/**
 * Inverse map for a u on the curve (paper section 5.3): a representative
 * exists iff u != -A and -2u(u + A) is a square. Branch 0 gives the r whose
 * forward map takes the "v = u" path, branch 1 the "u = -v - A" path.
 */
function inverse(u: bigint, branch: number): bigint | undefined {
  const uA = mod(u + A, P);
  if (u === 0n || uA === 0n) return undefined;
  const r2 = branch === 0
    ? mod(-uA * invert(mod(Z * u, P), P), P)
    : mod(-u * invert(mod(Z * uA, P), P), P);
  const r = sqrt(r2);
  if (r === undefined) return undefined;
  return r > HALF_P ? P - r : r;
}

/**
 * Decodes a 32-byte representative into the X25519 public key (u, little
 * endian) it stands for. Every 32-byte string decodes; the top two bits are
 * ignored.
 *
 * @example
 * ```ts
 * import { generateHiddenKeyPair, representativeToPublicKey } from "./elligator.ts";
 * const kp = generateHiddenKeyPair();
 * representativeToPublicKey(kp.representative); // equals kp.publicKey
 * ```
 */
export function representativeToPublicKey(representative: Uint8Array): Uint8Array {
  if (representative.length !== REPRESENTATIVE_BYTES) {
    throw new RangeError(
      `Cannot decode representative: length ${representative.length} is not ${REPRESENTATIVE_BYTES}`,
    );
  }
  const r = representative.slice();
  r[31]! &= ~TOP_BITS_MASK & 0xff;
  return toLE32(forward(fromLE(r)));
}

/** An X25519 key pair whose public key has a uniform random encoding. */
export interface HiddenKeyPair {
  /** X25519 private key (32 bytes, clamped on use). */
  privateKey: Uint8Array;
  /** X25519 public key u (32 bytes): the prime-order key plus a random torsion point. */
  publicKey: Uint8Array;
  /** The uniform 32-byte encoding of `publicKey`. */
  representative: Uint8Array;
}

let torsion: InstanceType<typeof ed25519.Point>[] | undefined;

/**
 * Makes an X25519 key pair whose public key has an Elligator 2
 * representative. About half of all keys have one, so this draws again
 * until one fits; each attempt takes 32 + 1 bytes from `random`
 * (seed, then a byte: bits 0-2 torsion point, bit 3 branch, bits 6-7 top bits).
 *
 * @example
 * ```ts
 * import { generateHiddenKeyPair } from "./elligator.ts";
 * const { privateKey, representative } = generateHiddenKeyPair();
 * representative.length; // 32
 * ```
 */
export function generateHiddenKeyPair(random: RandomSource = randomBytes): HiddenKeyPair {
  torsion ??= ED25519_TORSION_SUBGROUP.map((hex) => ed25519.Point.fromHex(hex));
  for (;;) {
    const seed = random(32);
    const tweak = random(1)[0]!;
    // RFC 7748 section 5 clamping; the Edwards base point has order L.
    const k = seed.slice();
    k[0]! &= 248;
    k[31]! &= 127;
    k[31]! |= 64;
    const scalar = mod(fromLE(k), L);
    wipe(k);
    if (scalar === 0n) continue;
    const point = ed25519.Point.BASE.multiply(scalar).add(torsion[tweak & 7]!);
    const { y } = point.toAffine();
    // Birational map to Montgomery: u = (1 + y) / (1 - y) (RFC 7748 section 4.1).
    const u = mod((1n + y) * invert(mod(1n - y, P), P), P);
    const r = inverse(u, (tweak >> 3) & 1);
    if (r === undefined) {
      wipe(seed);
      continue;
    }
    const representative = toLE32(r);
    representative[31]! |= tweak & TOP_BITS_MASK;
    return { privateKey: seed, publicKey: toLE32(u), representative };
  }
}
