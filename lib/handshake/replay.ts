/**
 * A bounded cache of Hello nonces that refuses replays and stale hellos.
 *
 * @module
 */

/** Default replay window: hellos this much older or newer than now are stale. */
export const DEFAULT_REPLAY_WINDOW_MS = 120_000;
/** Default number of nonces remembered. */
export const DEFAULT_REPLAY_CAPACITY = 100_000;

/** Options for {@linkcode ReplayGuard}. */
export interface ReplayGuardOptions {
  /** Hellos with `|timestamp - now| > windowMs` are stale; default 120 000. */
  windowMs?: number;
  /** Most nonces remembered; default 100 000. */
  capacity?: number;
}

/** What {@linkcode ReplayGuard.check} decided. */
export type ReplayVerdict = "ok" | "replay" | "stale";

/**
 * Remembers each accepted Hello nonce until its timestamp leaves the window.
 * Memory is bounded: when full, the entry with the oldest timestamp is
 * evicted, and a floor is raised to that timestamp; a hello at or below the
 * floor is "stale", so an evicted (or expired) nonce is never accepted again.
 * The floor also means a server clock that jumps back refuses hellos until
 * it catches up, rather than forget what it saw.
 *
 * @example
 * ```ts
 * import { ReplayGuard } from "./replay.ts";
 * const g = new ReplayGuard();
 * const nonce = new Uint8Array(32).fill(1);
 * g.check(nonce, 1000, 1000); // "ok"
 * g.check(nonce, 1000, 1001); // "replay"
 * g.check(new Uint8Array(32), 0, 500_000); // "stale"
 * ```
 */
export class ReplayGuard {
  /** The window in milliseconds. */
  readonly windowMs: number;
  /** The most nonces remembered. */
  readonly capacity: number;
  #seen = new Map<string, number>();
  // Binary min-heap on timestamp, parallel arrays.
  #heapTs: number[] = [];
  #heapKey: string[] = [];
  #floor = -Infinity;

  /** An empty guard; `opts` sets the window and capacity. */
  constructor(opts: ReplayGuardOptions = {}) {
    const windowMs = opts.windowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    const capacity = opts.capacity ?? DEFAULT_REPLAY_CAPACITY;
    if (!(windowMs >= 0) || !Number.isFinite(windowMs)) {
      throw new RangeError(
        `Cannot create ReplayGuard: window ${windowMs} ms is not a finite number >= 0`,
      );
    }
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot create ReplayGuard: capacity ${capacity} is not an integer >= 1`,
      );
    }
    this.windowMs = windowMs;
    this.capacity = capacity;
  }

  /** Nonces currently remembered. */
  get size(): number {
    return this.#seen.size;
  }

  /** Hellos with a timestamp at or below this are stale (`-Infinity` at first). */
  get floorMs(): number {
    return this.#floor;
  }

  /**
   * Checks a Hello's nonce and timestamp, and remembers the nonce if "ok".
   * Call it only after the Hello's MAC is verified, so strangers cannot fill it.
   */
  check(nonce: Uint8Array, timestampMs: number, nowMs: number): ReplayVerdict {
    this.#expire(nowMs);
    if (!(Math.abs(timestampMs - nowMs) <= this.windowMs)) return "stale";
    if (timestampMs <= this.#floor) return "stale";
    const key = String.fromCharCode(...nonce);
    if (this.#seen.has(key)) return "replay";
    this.#seen.set(key, timestampMs);
    this.#push(timestampMs, key);
    if (this.#seen.size > this.capacity) this.#evictOldest();
    return "ok";
  }

  #expire(nowMs: number): void {
    const limit = nowMs - this.windowMs;
    while (this.#heapTs.length > 0 && this.#heapTs[0]! < limit) this.#evictOldest();
  }

  #evictOldest(): void {
    const ts = this.#heapTs[0]!;
    const key = this.#heapKey[0]!;
    this.#pop();
    this.#seen.delete(key);
    if (ts > this.#floor) this.#floor = ts;
  }

  #push(ts: number, key: string): void {
    const t = this.#heapTs, k = this.#heapKey;
    let i = t.length;
    t.push(ts);
    k.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (t[p]! <= ts) break;
      t[i] = t[p]!;
      k[i] = k[p]!;
      i = p;
    }
    t[i] = ts;
    k[i] = key;
  }

  #pop(): void {
    const t = this.#heapTs, k = this.#heapKey;
    const lastTs = t.pop()!;
    const lastKey = k.pop()!;
    const n = t.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const c = l + 1 < n && t[l + 1]! < t[l]! ? l + 1 : l;
      if (t[c]! >= lastTs) break;
      t[i] = t[c]!;
      k[i] = k[c]!;
      i = c;
    }
    t[i] = lastTs;
    k[i] = lastKey;
  }
}
