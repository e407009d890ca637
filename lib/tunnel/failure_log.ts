/**
 * Rate-limited reports of a repeated failure (the server down, a reconnect
 * that keeps failing): attempts 1, 2, 4, 8, … are logged, the rest only
 * counted, and the recovery says how many failed since when. A client that
 * waits an hour for its server writes a dozen lines, not seven hundred.
 *
 * @module
 */
import type { Logger } from "../observe/mod.ts";

/**
 * Counts failures of one kind and logs the powers of two.
 *
 * @example
 * ```ts ignore
 * const failures = new FailureLog(log);
 * failures.failed("reconnect failed: connection refused"); // logged (attempt 1)
 * failures.failed("reconnect failed: connection refused"); // logged (attempt 2)
 * failures.failed("reconnect failed: connection refused"); // counted only
 * failures.recovered("reconnected"); // "reconnected: 3 attempts failed since …"
 * ```
 */
export class FailureLog {
  readonly #log: Logger;
  readonly #now: () => number;
  #count = 0;
  #since = 0;

  constructor(log: Logger, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /** Failures since the last recovery. */
  get count(): number {
    return this.#count;
  }

  /** One more failure: logged at warn level when the count is a power of two. */
  failed(message: string): void {
    if (this.#count === 0) this.#since = this.#now();
    this.#count++;
    const n = this.#count;
    if ((n & (n - 1)) === 0) {
      this.#log.warn(
        n === 1 ? message : `${message} (attempt ${n}; the next report is at attempt ${2 * n})`,
      );
    }
  }

  /** Success: says how many attempts failed since when (if any), and starts over. */
  recovered(what: string): void {
    if (this.#count > 0) {
      const n = this.#count;
      this.#log.info(
        `${what}: ${n} attempt${n === 1 ? "" : "s"} failed since ${
          new Date(this.#since).toISOString()
        }`,
      );
    }
    this.#count = 0;
  }
}
