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
import type { PaddingMode } from "../handshake/mod.ts";

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
  /**
   * Shape the first `FIRST_FLIGHT_RECORDS` records like the first flight of
   * a page load: `client` like a browser's uploads (mostly small records),
   * `server` like a web server's answers (small records and whole 16 KiB
   * TLS records). Each such record is padded up to a size drawn from that
   * side's table (`FIRST_FLIGHT`) instead of the mode's padding (none when
   * the payload is already as large).
   */
  firstFlight?: "client" | "server";
}

/** A whole TLS record's plaintext (16384) less a record's header, `pad_len` and tag (21). */
const WHOLE_TLS_RECORD = 16363;

/** Records of a link shaped by `firstFlight`. */
export const FIRST_FLIGHT_RECORDS = 32;

/**
 * The sizes (payload + padding) `firstFlight` gives: per side, ranges
 * `[count, lo, hi]` whose counts add up to `FIRST_FLIGHT_RECORDS`. A link's
 * flight deals these ranges out in a random order (a shuffled deck, so each
 * flight has exactly these proportions) and each record's size is uniform
 * within its range. 16363 = a whole TLS record's 16384 bytes of plaintext
 * less a record's header, `pad_len` and tag (21). A model of Chromium
 * loading a page from nginx over HTTP/2 (docs/PROTOCOL.md part 3 (record
 * layer) section 8).
 */
export const FIRST_FLIGHT: Readonly<
  Record<"client" | "server", readonly (readonly [count: number, lo: number, hi: number])[]>
> = Object.freeze({
  client: [[22, 0, 40], [7, 40, 400], [3, 400, 2000]],
  server: [
    [8, 0, 40],
    [5, 40, 500],
    [3, 500, 6000],
    [4, 6000, WHOLE_TLS_RECORD],
    [12, WHOLE_TLS_RECORD, WHOLE_TLS_RECORD],
  ],
});

/**
 * The policy of a tunnel's sealer for the mode the handshake agreed
 * (docs/PROTOCOL.md part 2 (handshake) section 4.7): `none` (or no mode)
 * pads nothing and shapes nothing; `random` and `bucket` also shape the
 * link's first flight as `side` would send it.
 *
 * @example
 * ```ts
 * import { tunnelPadding } from "./_padding.ts";
 * tunnelPadding("random", "client"); // { mode: "random", firstFlight: "client" }
 * ```
 */
export function tunnelPadding(
  mode: PaddingMode | undefined,
  side: "client" | "server",
): PaddingPolicy {
  return mode === undefined || mode === "none" ? { mode: "none" } : { mode, firstFlight: side };
}

/** Computes each record's padding length from a policy and a random source. */
export class Padder {
  readonly #mode: PaddingPolicy["mode"];
  readonly #max: number;
  readonly #random: (n: number) => Uint8Array;
  #pool: Uint8Array = new Uint8Array(0);
  #poolPos = 0;
  /** The first flight's ranges still to deal, last first (empty: the flight is over). */
  readonly #deck: (readonly [number, number, number])[] = [];

  constructor(policy: PaddingPolicy, random: (n: number) => Uint8Array) {
    const { mode } = policy;
    if (mode !== "none" && mode !== "random" && mode !== "bucket") {
      throw new TypeError(`Cannot use padding policy: unknown mode "${String(mode)}"`);
    }
    const max = policy.max ?? (mode === "random" ? DEFAULT_RANDOM_PAD_MAX : MAX_PAD_LEN);
    if (!Number.isInteger(max) || max < 0 || max > MAX_PAD_LEN) {
      throw new RangeError(`Cannot use padding policy: max ${max} is not an integer in 0..65535`);
    }
    const ff = policy.firstFlight;
    if (ff !== undefined && ff !== "client" && ff !== "server") {
      throw new TypeError(`Cannot use padding policy: unknown first flight "${String(ff)}"`);
    }
    this.#mode = mode;
    this.#max = max;
    this.#random = random;
    if (ff !== undefined) {
      for (const r of FIRST_FLIGHT[ff]) for (let k = 0; k < r[0]; k++) this.#deck.push(r);
      // Fisher-Yates with unbiased draws.
      for (let k = this.#deck.length - 1; k > 0; k--) {
        const m = this.#uniform(k);
        [this.#deck[k], this.#deck[m]] = [this.#deck[m]!, this.#deck[k]!];
      }
    }
  }

  /** The most padding the next `padFor(n)` can return for a payload of `n` bytes. */
  maxFor(n: number): number {
    const own = this.#modeMax(n);
    if (this.#deck.length === 0) return own;
    return Math.max(own, Math.min(WHOLE_TLS_RECORD - n, MAX_RECORD_PAYLOAD - n, MAX_PAD_LEN));
  }

  /** Padding bytes for a payload of `n` bytes. */
  padFor(n: number): number {
    const range = this.#deck.pop();
    if (range === undefined) return this.#modePad(n);
    // The flight's size replaces the mode's: a small record stays small when its draw is small.
    const target = range[1] + this.#uniform(range[2] - range[1]);
    return Math.max(0, Math.min(target - n, MAX_RECORD_PAYLOAD - n, MAX_PAD_LEN));
  }

  #modeMax(n: number): number {
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

  #modePad(n: number): number {
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
