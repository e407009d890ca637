/**
 * Small helpers the public API functions share: the `log` option and
 * abort signals.
 *
 * @module
 */
import { createLogger, type Logger, type LogLevel, silentLogger } from "../observe/mod.ts";

const LEVELS: readonly string[] = ["debug", "info", "warn", "error"];

/**
 * The logger for a `log` option: a level logs to stderr under `prefix`, a
 * `Logger` is used as it is, and nothing means silence (events still flow).
 *
 * @example
 * ```ts ignore
 * const log = resolveLog("warn", "client");
 * ```
 */
export function resolveLog(option: LogLevel | Logger | undefined, prefix: string): Logger {
  if (option === undefined) return silentLogger;
  if (typeof option === "string") {
    if (!LEVELS.includes(option)) {
      throw new TypeError(
        `Invalid log level "${option}": expected "debug", "info", "warn" or "error"`,
      );
    }
    return createLogger(option, prefix);
  }
  return option;
}

/**
 * `p`, or its signal's reason as soon as `signal` aborts (`p` itself goes
 * on: the caller cleans up what it yields).
 *
 * @example
 * ```ts ignore
 * const session = await abortable(client.session(), options.signal);
 * ```
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
