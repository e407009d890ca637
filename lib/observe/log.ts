/**
 * A small levelled logger writing one line per event to stderr. Callers pass
 * facts, never key material.
 *
 * @module
 */

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Where log lines go. */
export interface Logger {
  /** Detail for debugging. */
  debug(msg: string): void;
  /** What happened, in normal operation. */
  info(msg: string): void;
  /** Something went wrong and was handled. */
  warn(msg: string): void;
  /** Something went wrong and was not handled. */
  error(msg: string): void;
  /** A logger whose lines carry a prefix, e.g. "tunnel 3". */
  child(prefix: string): Logger;
}

/**
 * Creates a logger that drops lines below `level`.
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * const log = createLogger("warn", "server");
 * log.info("not shown");
 * ```
 */
export function createLogger(
  level: LogLevel,
  prefix = "",
  sink: (line: string) => void = (l) => console.error(l),
): Logger {
  const min = ORDER[level];
  const emit = (lvl: LogLevel, msg: string) => {
    if (ORDER[lvl] < min) return;
    const ts = new Date().toISOString();
    sink(`${ts} ${lvl.padEnd(5)} ${prefix ? `[${prefix}] ` : ""}${msg}`);
  };
  return {
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    child: (p) => createLogger(level, prefix ? `${prefix} ${p}` : p, sink),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = createLogger("error", "", () => {});

/** A short description of an error for logs. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
