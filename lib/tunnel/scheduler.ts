/**
 * The clock and timers a session runs on, injected so tests can move time
 * by hand instead of waiting (`tests/support/fake_scheduler.ts`).
 *
 * @module
 */

/** A timer's id: opaque, whatever the scheduler's `setTimeout` returns. */
export type TimerId = unknown;

/** Clock and one-shot timers: `setTimeout`/`clearTimeout` and `Date.now` alike. */
export interface Scheduler {
  /** The time (ms since the epoch, or any monotonic origin a fake chooses). */
  now(): number;
  /** Calls `fn` once after `ms`; returns the id that cancels it. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer that has not fired (an unknown or fired id is ignored). */
  clearTimeout(id: TimerId | undefined): void;
}

/**
 * The real clock and timers (the default).
 *
 * @example
 * ```ts
 * import { realScheduler } from "./scheduler.ts";
 * const id = realScheduler.setTimeout(() => console.log("never"), 60_000);
 * realScheduler.clearTimeout(id);
 * ```
 */
export const realScheduler: Scheduler = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout> | undefined),
};
