/**
 * Rate-limited log lines: a condition that repeats per datagram or per
 * retry (an association that cannot open, a server that is down) logs at
 * most one line per key and interval; the next line says how many were
 * held back meanwhile.
 *
 * @module
 */
import type { Logger } from "./log.ts";

/** Default interval between two lines of the same key. */
export const THROTTLE_INTERVAL_MS = 5_000;
/** Keys remembered at once; the oldest is forgotten first. */
const MAX_KEYS = 256;

/** Options of {@linkcode ThrottledLog}. */
export interface ThrottleOptions {
  /** At most one line per key this often (ms); default 5 s. */
  intervalMs?: number;
  /** The clock (ms), for tests; default `performance.now`. */
  now?: () => number;
}

/**
 * A logger front that lets one line per key through each interval.
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * import { ThrottledLog } from "./throttle.ts";
 * const lines: string[] = [];
 * const log = new ThrottledLog(createLogger("info", "x", (l) => lines.push(l)));
 * for (let i = 0; i < 100; i++) log.warn("open", "cannot open the association");
 * lines.length; // 1
 * ```
 */
export class ThrottledLog {
  readonly #log: Logger;
  readonly #interval: number;
  readonly #now: () => number;
  readonly #keys = new Map<string, { at: number; held: number }>();

  /** Lines go to `log`. */
  constructor(log: Logger, options: ThrottleOptions = {}) {
    this.#log = log;
    this.#interval = options.intervalMs ?? THROTTLE_INTERVAL_MS;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Logs `msg` at warn level unless a line of `key` went out within the interval. */
  warn(key: string, msg: string): void {
    const line = this.#take(key, msg);
    if (line !== undefined) this.#log.warn(line);
  }

  /** Logs `msg` at debug level unless a line of `key` went out within the interval. */
  debug(key: string, msg: string): void {
    const line = this.#take(key, msg);
    if (line !== undefined) this.#log.debug(line);
  }

  /** Logs `msg` at info level unless a line of `key` went out within the interval. */
  info(key: string, msg: string): void {
    const line = this.#take(key, msg);
    if (line !== undefined) this.#log.info(line);
  }

  #take(key: string, msg: string): string | undefined {
    const now = this.#now();
    const k = this.#keys.get(key);
    if (k !== undefined && now - k.at < this.#interval) {
      k.held++;
      return undefined;
    }
    const held = k?.held ?? 0;
    this.#keys.delete(key);
    if (this.#keys.size >= MAX_KEYS) this.#keys.delete(this.#keys.keys().next().value!);
    this.#keys.set(key, { at: now, held: 0 });
    return held === 0
      ? msg
      : `${msg} (${held} more like this in the last ${Math.round((now - k!.at) / 1000)} s)`;
  }
}
