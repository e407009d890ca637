/**
 * Small helpers of the benchmark: sizes, percentiles, process CPU and
 * memory. Pure apart from `processCpuSeconds` and `processRssBytes`.
 *
 * @module
 */
import process from "node:process";

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
};

/**
 * Parses a byte count: `65536`, `64KiB`, `256MiB`, `1GiB`, `100MB`
 * (case-insensitive). Undefined when malformed.
 *
 * @example
 * ```ts
 * import { parseSize } from "./_stats.ts";
 * parseSize("256MiB"); // 268435456
 * ```
 */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (m === null) return undefined;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const v = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(v) ? v : undefined;
}

/**
 * The nearest-rank percentile `p` (0..100) of `values`; NaN when empty.
 *
 * @example
 * ```ts
 * import { percentile } from "./_stats.ts";
 * percentile([3, 1, 2], 50); // 2
 * ```
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** CPU seconds (user + system, all threads) this process has used. */
export function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Resident memory of this process in bytes. */
export function processRssBytes(): number {
  return Deno.memoryUsage().rss;
}

/** Rounds to `digits` decimals (for JSON output). */
export function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
