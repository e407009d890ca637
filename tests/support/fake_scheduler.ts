/**
 * A clock and timers that tests move by hand (the `Scheduler` of
 * `lib/tunnel/scheduler.ts`): nothing fires until `advance()`, which fires
 * every timer due in time order, each at its own time, and lets the event
 * loop run after each so the I/O a timer starts (records over an in-memory
 * pipe, Web Crypto) can progress. Minutes of session time pass in
 * milliseconds of real time.
 *
 * @module
 */
import type { Scheduler, TimerId } from "../../lib/tunnel/scheduler.ts";

interface Timer {
  at: number;
  id: number;
  fn: () => void;
}

/** Lets the event loop run: `turns` real macrotask turns (promises, pipe reads, Web Crypto). */
export async function settle(turns = 2): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setTimeout(r, 0));
}

/**
 * Waits, in real time, until `cond()` holds; fails after `deadlineMs` saying
 * what it waited for.
 */
export async function until(what: string, cond: () => boolean, deadlineMs = 5_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * A scheduler whose time moves only when told.
 *
 * @example
 * ```ts ignore
 * const clock = new FakeScheduler();
 * const session = new Session({ ...options, scheduler: clock });
 * await clock.advance(15_000); // every timer due in those 15 s has fired
 * ```
 */
export class FakeScheduler implements Scheduler {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Timer>();

  /** Starts the clock at `start` (ms). */
  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), id, fn });
    return id;
  }

  clearTimeout(id: TimerId | undefined): void {
    if (typeof id === "number") this.#timers.delete(id);
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves the clock `ms` forward, firing each timer due on the way at its
   * own time (earliest first, then in the order set) and letting the event
   * loop run after each; timers set meanwhile fire too if due.
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers.values()) {
        if (
          t.at <= end &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))
        ) {
          next = t;
        }
      }
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await settle(1);
    }
    this.#now = end;
    await settle(1);
  }
}
