/**
 * Padding policies (docs/PROTOCOL.md part 3 (record layer) section "Padding"). Padding
 * is the sender's choice; a receiver only reads `pad_len`.
 *
 * @module
 */
import {
  BUCKET_STEP,
  DEFAULT_RANDOM_PAD_MAX,
  MAX_PAD_LEN,
  MAX_RECORD_PAYLOAD,
  MIN_BUCKET,
  RANDOM_PAD_BELOW,
} from "./_limits.ts";

/**
 * How much padding each record gets.
 *
 * - `none`: no padding beyond the 2-byte `pad_len` prefix (which is 0).
 * - `random`: a payload shorter than 4096 bytes gets a uniformly random
 *   0..`max` padding bytes (default `max` 255); longer payloads none.
 * - `bucket`: payload + padding is rounded up to a bucket: the next power of
 *   two from 64 up to 16384 bytes, then the next multiple of 16384; `max`
 *   (default 65535) caps the padding of one record.
 *
 * In every mode payload + padding never exceeds `MAX_RECORD_PAYLOAD`.
 */
export interface PaddingPolicy {
  /** How records are padded. */
  mode: "none" | "random" | "bucket";
  /** Most padding bytes per record ("random" mode). */
  max?: number;
}

/** Computes each record's padding length from a policy and a random source. */
export class Padder {
  readonly #mode: PaddingPolicy["mode"];
  readonly #max: number;
  readonly #random: (n: number) => Uint8Array;
  #pool: Uint8Array = new Uint8Array(0);
  #poolPos = 0;

  constructor(policy: PaddingPolicy, random: (n: number) => Uint8Array) {
    const { mode } = policy;
    if (mode !== "none" && mode !== "random" && mode !== "bucket") {
      throw new TypeError(`Cannot use padding policy: unknown mode "${String(mode)}"`);
    }
    const max = policy.max ?? (mode === "random" ? DEFAULT_RANDOM_PAD_MAX : MAX_PAD_LEN);
    if (!Number.isInteger(max) || max < 0 || max > MAX_PAD_LEN) {
      throw new RangeError(`Cannot use padding policy: max ${max} is not an integer in 0..65535`);
    }
    this.#mode = mode;
    this.#max = max;
    this.#random = random;
  }

  /** The most padding `padFor(n)` can return for a payload of `n` bytes. */
  maxFor(n: number): number {
    switch (this.#mode) {
      case "none":
        return 0;
      case "random":
        if (n >= RANDOM_PAD_BELOW || this.#max === 0) return 0;
        return Math.max(0, Math.min(this.#max, MAX_RECORD_PAYLOAD - n));
      case "bucket":
        return Math.min(bucketFor(n) - n, this.#max);
    }
  }

  /** Padding bytes for a payload of `n` bytes. */
  padFor(n: number): number {
    switch (this.#mode) {
      case "none":
        return 0;
      case "random":
        if (n >= RANDOM_PAD_BELOW || this.#max === 0) return 0;
        return Math.min(this.#uniform(this.#max), MAX_RECORD_PAYLOAD - n);
      case "bucket":
        return Math.min(bucketFor(n) - n, this.#max);
    }
  }

  /**
   * Uniform integer in 0..max from 16-bit draws, by rejection (no modulo
   * bias). Randomness is drawn 128 bytes at a time.
   */
  #uniform(max: number): number {
    const range = max + 1;
    const limit = 65536 - (65536 % range);
    for (;;) {
      if (this.#poolPos + 2 > this.#pool.length) {
        this.#pool = this.#random(128);
        this.#poolPos = 0;
        if (this.#pool.length < 2) {
          throw new RangeError(
            `Cannot pad record: random source returned ${this.#pool.length} bytes`,
          );
        }
      }
      const v = (this.#pool[this.#poolPos]! << 8) | this.#pool[this.#poolPos + 1]!;
      this.#poolPos += 2;
      if (v < limit) return v % range;
    }
  }
}

/** The bucket payload + padding is rounded up to (section "Padding"). */
export function bucketFor(n: number): number {
  if (n <= MIN_BUCKET) return MIN_BUCKET;
  if (n <= BUCKET_STEP) return 2 ** (32 - Math.clz32(n - 1));
  return Math.min(Math.ceil(n / BUCKET_STEP) * BUCKET_STEP, MAX_RECORD_PAYLOAD);
}
