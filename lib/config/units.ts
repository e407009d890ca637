/**
 * The one parser of sizes ("64KiB", "10MB", "100Mbit") and durations
 * ("30s", "1h30m"), shared by configuration files and command-line flags.
 *
 * @module
 */

const PREFIX: Record<string, number> = {
  "": 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  ki: 1024,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** Configuration files: "B" or "bit" after any prefix, prefixes as written in SI and IEC. */
const STRICT_SIZE = /^(\d+(?:\.\d+)?)\s*(?:([kKMGT]i?)?(B|bit))?$/;
/** Command lines: any case, "B" optional ("64k", "256mib"); "b" is bytes, "bit" bits. */
const LOOSE_SIZE = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?))?(b|bit)?$/i;

/** Options for {@link parseSize}. */
export interface ParseSizeOptions {
  /**
   * Also accept sizes as typed on a command line: units in any case and
   * without the "B" ("64k", "256mib", "1G"); "b" still means bytes. Off
   * for configuration files, where "1mb" is refused as ambiguous.
   */
  loose?: boolean;
}

/**
 * Parses a byte count: a number, optionally followed by a unit — B, kB
 * (1000), KiB (1024), MB, MiB, GB, GiB, TB, TiB, or bits (kbit, Mbit,
 * Gbit, ...). Fractions are allowed and rounded down to whole bytes.
 * Undefined when malformed.
 *
 * @example
 * ```ts
 * import { parseSize } from "./units.ts";
 * parseSize("64KiB"); // 65536
 * parseSize("100Mbit"); // 12500000
 * parseSize("256mib"); // undefined
 * parseSize("256mib", { loose: true }); // 268435456
 * ```
 */
export function parseSize(text: string, options?: ParseSizeOptions): number | undefined {
  const s = text.trim();
  if (options?.loose) {
    const m = LOOSE_SIZE.exec(s);
    if (m === null) return undefined;
    const prefix = m[2] === undefined ? "" : m[2].toUpperCase() + (m[3] === "" ? "" : "i");
    return bytes(m[1]!, prefix, m[4]?.toLowerCase() === "bit");
  }
  const m = STRICT_SIZE.exec(s);
  if (m === null) return undefined;
  return bytes(m[1]!, m[2] ?? "", m[3] === "bit");
}

function bytes(number: string, prefix: string, bits: boolean): number | undefined {
  const n = Number(number) * PREFIX[prefix]! / (bits ? 8 : 1);
  return Number.isFinite(n) ? Math.floor(n) : undefined;
}

const DURATION_UNIT: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses "30s", "5m", "1h30m", "250ms", "2d" to seconds; undefined when
 * malformed (a bare number has no unit and is refused).
 *
 * @example
 * ```ts
 * import { parseDuration } from "./units.ts";
 * parseDuration("1h30m"); // 5400
 * parseDuration("250ms"); // 0.25
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    total += Number(m[1]) * DURATION_UNIT[m[2]!]!;
  }
  return total;
}

/** A byte quota over a period, as `parseQuota` returns it. */
export interface Quota {
  /** Bytes allowed per period (both directions together). */
  bytes: number;
  /** The period in seconds. */
  periodS: number;
}

/**
 * Parses a quota "SIZE/PERIOD" such as "50GB/30d" or "1GiB/1h" (a size as
 * {@linkcode parseSize} reads it, a duration as {@linkcode parseDuration});
 * undefined when malformed.
 *
 * @example
 * ```ts
 * import { parseQuota } from "./units.ts";
 * parseQuota("50GB/30d"); // { bytes: 50_000_000_000, periodS: 2_592_000 }
 * ```
 */
export function parseQuota(text: string, options?: ParseSizeOptions): Quota | undefined {
  const slash = text.lastIndexOf("/");
  if (slash < 0) return undefined;
  const bytes = parseSize(text.slice(0, slash), options);
  const periodS = parseDuration(text.slice(slash + 1));
  if (bytes === undefined || periodS === undefined || periodS <= 0) return undefined;
  return { bytes, periodS };
}
