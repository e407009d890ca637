/**
 * Small helpers of the benchmark: percentiles, process CPU and memory,
 * rounding. Pure apart from `processCpuSeconds` and `processRssBytes`.
 *
 * @module
 */
import process from "node:process";

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
