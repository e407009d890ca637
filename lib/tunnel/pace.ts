/**
 * Bandwidth pacing: a token bucket per user and direction, shared by all
 * of the user's tunnels and streams. A stream takes tokens for the bytes it
 * has just moved and waits out any debt before it moves more, so the rate
 * is enforced by delaying reads from the target (download) and writes to
 * it, with the mux credit returned only after them (upload); nothing is ever
 * dropped. Every stream waits for the whole debt ahead of it, and a
 * downloading stream moves one slice per turn, so the user's busy streams
 * share the rate about equally. UDP datagrams, which have no flow control
 * to delay, are policed by the same buckets instead (`admit`): one that
 * finds its bucket in debt is dropped.
 *
 * The bucket is pure arithmetic over a clock passed in; the waiting is the
 * stream table's (`_streams.ts`).
 *
 * @module
 */

/** The burst a bucket allows: this many milliseconds' worth of the rate. */
export const PACE_BURST_MS = 100;
/** At least this many bytes per burst and per slice (so low rates still move records). */
const PACE_MIN_SLICE = 4 * 1024;

/**
 * A token bucket in bytes per second that may go into debt: `take(n)`
 * always succeeds and says how long to wait before taking again.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./pace.ts";
 * const b = new TokenBucket(1_000_000, 0);
 * b.take(100_000, 0); // 0: within the burst
 * b.take(100_000, 0); // 100: 100 ms of debt to wait out
 * ```
 */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;

  /** A full bucket of `rate` bytes per second at time `now` (ms). */
  constructor(rate: number, now: number) {
    this.#rate = rate;
    this.#burst = burstOf(rate);
    this.#tokens = this.#burst;
    this.#last = now;
  }

  /** Bytes per second. */
  get rate(): number {
    return this.#rate;
  }

  /** The most a stream should move in one turn. */
  get slice(): number {
    return this.#burst;
  }

  /** Changes the rate from `now` on (a reload); the debt so far is kept. */
  setRate(rate: number, now: number): void {
    this.#refill(now);
    this.#rate = rate;
    this.#burst = burstOf(rate);
    this.#tokens = Math.min(this.#tokens, this.#burst);
  }

  /**
   * For a datagram, which cannot wait: takes `n` bytes at `now` (ms) and
   * returns true while the bucket is not in debt, else takes nothing and
   * returns false (drop it, as a router's policer would). Streams and
   * datagrams share the bucket: a datagram goes whenever the streams have
   * paid their debt, and its bytes are debt they wait out in turn.
   */
  admit(n: number, now: number): boolean {
    this.#refill(now);
    if (this.#tokens <= 0) return false;
    this.#tokens -= n;
    return true;
  }

  /** Takes `n` bytes at `now` (ms); returns the ms to wait before moving more (0: none). */
  take(n: number, now: number): number {
    this.#refill(now);
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens * 1000 / this.#rate);
  }

  #refill(now: number): void {
    const dt = now - this.#last;
    if (dt > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + dt * this.#rate / 1000);
      this.#last = now;
    }
  }
}

function burstOf(rate: number): number {
  return Math.max(PACE_MIN_SLICE, Math.floor(rate * PACE_BURST_MS / 1000));
}

/**
 * One user's buckets, from the server's point of view: `down` paces what
 * the server reads from targets (the user's download), `up` what it writes
 * to them (the user's upload).
 */
export interface UserPace {
  readonly down: TokenBucket;
  readonly up: TokenBucket;
}

/**
 * Bytes a user may still move before their quota must be checked: the
 * streams subtract what they move and call `spent()` once `left` reaches 0.
 */
export interface ByteBudget {
  left: number;
  spent(): void;
}

/**
 * What a server session's streams consult per chunk for a limited user:
 * the bandwidth buckets and the quota budget, each absent when the user
 * has no such limit. A session of a user with neither has no meter at all.
 */
export interface UserMeter {
  down: TokenBucket | undefined;
  up: TokenBucket | undefined;
  budget: ByteBudget | undefined;
}

/**
 * The buckets of every user with a `bandwidth`, kept across reloads so a
 * user's live streams keep sharing the same ones.
 *
 * @example
 * ```ts
 * import { Pacers } from "./pace.ts";
 * const pacers = new Pacers(Date.now);
 * const pace = pacers.update("alice", 1_000_000); // a UserPace
 * pacers.update("alice", undefined); // undefined: unlimited now
 * ```
 */
export class Pacers {
  readonly #now: () => number;
  readonly #byUser = new Map<string, UserPace>();

  constructor(now: () => number) {
    this.#now = now;
  }

  /** The pace for `user` at `rate` bytes/s (undefined: unlimited, forgotten). */
  update(user: string, rate: number | undefined): UserPace | undefined {
    if (rate === undefined) {
      this.#byUser.delete(user);
      return undefined;
    }
    const now = this.#now();
    let p = this.#byUser.get(user);
    if (p === undefined) {
      p = { down: new TokenBucket(rate, now), up: new TokenBucket(rate, now) };
      this.#byUser.set(user, p);
    } else if (p.down.rate !== rate) {
      p.down.setRate(rate, now);
      p.up.setRate(rate, now);
    }
    return p;
  }

  /** Forgets every user not in `keep`. */
  retain(keep: (user: string) => boolean): void {
    for (const u of [...this.#byUser.keys()]) if (!keep(u)) this.#byUser.delete(u);
  }
}
