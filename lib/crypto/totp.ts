/**
 * One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238), the optional
 * third factor in a NitroSocks Response (docs/PROTOCOL.md part 2, the Response).
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";

/** Hash used inside the HMAC (RFC 6238 section 1.2 allows all three). */
export type OtpAlgorithm = "sha1" | "sha256" | "sha512";

/** Options shared by `hotp`, `totp` and `verifyTotp`. */
export interface OtpOptions {
  /** Code length, 6 to 10 digits; default 6 (RFC 4226 section 5.3). */
  digits?: number;
  /** HMAC hash; default `"sha1"` (what authenticator apps use). */
  algorithm?: OtpAlgorithm;
}

/** Options for TOTP. */
export interface TotpOptions extends OtpOptions {
  /** Time step X in seconds; default 30 (RFC 6238 section 4.1). */
  periodSeconds?: number;
  /** T0 in seconds; default 0 (the Unix epoch). */
  epochSeconds?: number;
}

/** Default code length. */
export const TOTP_DIGITS = 6;
/** Default time step in seconds. */
export const TOTP_PERIOD_SECONDS = 30;
/** Steps accepted either side of the current one when verifying (RFC 6238 section 5.2). */
export const TOTP_WINDOW_STEPS = 1;

const HASHES = { sha1, sha256, sha512 } as const;

/**
 * HOTP(K, C) = Truncate(HMAC(K, C)) mod 10^digits (RFC 4226 section 5.3),
 * zero-padded to `digits` characters.
 *
 * @example
 * ```ts
 * import { hotp } from "./totp.ts";
 * hotp(new TextEncoder().encode("12345678901234567890"), 0); // "755224"
 * ```
 */
export function hotp(
  secret: Uint8Array,
  counter: number | bigint,
  options: OtpOptions = {},
): string {
  const digits = options.digits ?? TOTP_DIGITS;
  if (!Number.isInteger(digits) || digits < 6 || digits > 10) {
    throw new RangeError(`Cannot compute HOTP: digits ${digits} is not between 6 and 10`);
  }
  const c = BigInt(counter);
  if (c < 0n || c >= 2n ** 64n) {
    throw new RangeError(`Cannot compute HOTP: counter ${c} is outside 0..2^64-1`);
  }
  const msg = new Uint8Array(8);
  new DataView(msg.buffer).setBigUint64(0, c);
  const mac = hmac(HASHES[options.algorithm ?? "sha1"], secret, msg);
  // Dynamic truncation (RFC 4226 section 5.4).
  const offset = mac[mac.length - 1]! & 0x0f;
  const bin = ((mac[offset]! & 0x7f) * 2 ** 24) + (mac[offset + 1]! << 16) +
    (mac[offset + 2]! << 8) + mac[offset + 3]!;
  return (BigInt(bin) % 10n ** BigInt(digits)).toString().padStart(digits, "0");
}

function step(timeMs: number, options: TotpOptions): bigint {
  const period = options.periodSeconds ?? TOTP_PERIOD_SECONDS;
  if (!(period > 0)) throw new RangeError(`Cannot compute TOTP: period ${period} is not positive`);
  const t = Math.floor((timeMs / 1000 - (options.epochSeconds ?? 0)) / period);
  if (!Number.isSafeInteger(t) || t < 0) {
    throw new RangeError(`Cannot compute TOTP: time ${timeMs} ms is before the epoch`);
  }
  return BigInt(t);
}

/**
 * TOTP = HOTP(K, floor((now - T0) / X)) (RFC 6238 section 4.2).
 *
 * @example
 * ```ts
 * import { totp } from "./totp.ts";
 * const secret = new TextEncoder().encode("12345678901234567890");
 * totp(secret, 59_000, { digits: 8 }); // "94287082"
 * ```
 */
export function totp(secret: Uint8Array, timeMs: number, options: TotpOptions = {}): string {
  return hotp(secret, step(timeMs, options), options);
}

/**
 * Checks a TOTP code against the steps `now - window .. now + window`
 * (default ±1, RFC 6238 section 5.2). Every candidate is computed and
 * compared without an early exit, so the time taken does not say which
 * step matched.
 *
 * @example
 * ```ts
 * import { totp, verifyTotp } from "./totp.ts";
 * const secret = new Uint8Array(20).fill(7);
 * verifyTotp(secret, totp(secret, 1_000_000), 1_020_000); // true (next step)
 * ```
 */
export function verifyTotp(
  secret: Uint8Array,
  code: string,
  nowMs: number,
  options: TotpOptions & { window?: number } = {},
): boolean {
  const window = options.window ?? TOTP_WINDOW_STEPS;
  const digits = options.digits ?? TOTP_DIGITS;
  const now = step(nowMs, options);
  let match = 0;
  for (let d = -window; d <= window; d++) {
    const s = now + BigInt(d);
    if (s < 0n) continue;
    const expected = hotp(secret, s, options);
    let diff = code.length ^ expected.length;
    for (let i = 0; i < digits; i++) diff |= (code.charCodeAt(i) | 0) ^ expected.charCodeAt(i);
    match |= diff === 0 ? 1 : 0;
  }
  return match === 1;
}
