/**
 * Timing shaped so that it is not a constant an observer can match
 * (docs/PROTOCOL.md part 6 section 7): when a keepalive PING goes out, how
 * long a quiet link waits before cover traffic and how big it is, and how
 * long a rotated connection lives. Each function turns uniform draws in
 * [0, 1) into the value; `uniform` draws them from the platform CSPRNG
 * (an observer who could predict them could predict the timing).
 *
 * @module
 */

/** A uniform number in [0, 1) from the platform CSPRNG (32 random bits). */
export function uniform(): number {
  const b = new Uint32Array(1);
  crypto.getRandomValues(b);
  return b[0]! / 2 ** 32;
}

/**
 * How long a link is quiet before the next keepalive PING: uniform in
 * [keepalive/2, keepalive], drawn anew after each PING, so PINGs never come
 * at a fixed period and never later than `session.keepalive`.
 *
 * @example
 * ```ts
 * import { keepaliveAfter } from "./_shaping.ts";
 * keepaliveAfter(15_000, 0.5); // 11250
 * ```
 */
export function keepaliveAfter(keepaliveMs: number, u: number): number {
  return keepaliveMs * (0.5 + 0.5 * u);
}

/** Cover gaps are cut to this many times their mean (the exponential's tail). */
export const COVER_GAP_MAX_FACTOR = 5;
/** Cover gaps are at least their mean divided by this. */
export const COVER_GAP_MIN_DIVISOR = 10;

/**
 * How long a quiet link waits before sending cover traffic: exponential with
 * mean `meanMs` (a Poisson process, like requests of an idle page's
 * scripts), cut to [mean/10, 5·mean].
 *
 * @example
 * ```ts
 * import { coverGap } from "./_shaping.ts";
 * Math.round(coverGap(10_000, 1 - Math.exp(-1))); // 10000: the mean
 * ```
 */
export function coverGap(meanMs: number, u: number): number {
  const g = -meanMs * Math.log(1 - u);
  return Math.min(meanMs * COVER_GAP_MAX_FACTOR, Math.max(meanMs / COVER_GAP_MIN_DIVISOR, g));
}

/** Most bytes of one cover PADDING frame's body. */
export const COVER_MAX_BYTES = 1024;

/**
 * Bytes of one cover PADDING frame's body: uniform in 0..1024 (small, like
 * the requests and answers of an idle page), before the record's own padding.
 *
 * @example
 * ```ts
 * import { coverBytes } from "./_shaping.ts";
 * coverBytes(0.5); // 512
 * ```
 */
export function coverBytes(u: number): number {
  return Math.floor(u * (COVER_MAX_BYTES + 1));
}

/** σ of the log-normal connection lifetime (of ln of the lifetime). */
export const LIFETIME_SIGMA = 0.5;
/** Lifetimes are cut to [median/3, 3·median]. */
export const LIFETIME_SPREAD = 3;

/**
 * A rotated connection's lifetime: log-normal with median `medianMs` and
 * σ = 0.5 (half of them between 0.71 and 1.40 times the median, a long
 * tail above, like the lifetimes of a browser's connections rather than a
 * flat ±50 %), cut to [median/3, 3·median]. `u1`, `u2`: two uniform draws
 * (Box–Muller).
 *
 * @example
 * ```ts
 * import { rotationLifetime } from "./_shaping.ts";
 * rotationLifetime(60_000, 0.5, 0.25); // 60000: z = 0, the median
 * ```
 */
export function rotationLifetime(medianMs: number, u1: number, u2: number): number {
  const z = Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
  const ms = medianMs * Math.exp(LIFETIME_SIGMA * z);
  return Math.min(medianMs * LIFETIME_SPREAD, Math.max(medianMs / LIFETIME_SPREAD, ms));
}
