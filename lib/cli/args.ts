/**
 * Command-line parsing shared by every subcommand: `node:util` parseArgs in
 * strict mode behind one small function, so an unknown flag is a usage error
 * (exit 2) with the command's help text.
 *
 * @module
 */
import { parseArgs as nodeParseArgs } from "node:util";

/** A usage mistake: print the message and the command's usage, exit 2. */
export class UsageError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One flag's definition. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}

/** Parsed flags and positional arguments. */
export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/**
 * Parses `args` against `flags`; `--help`/`-h` is always accepted.
 * Throws `UsageError` for an unknown flag or a missing flag value.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./args.ts";
 * const { values, positionals } = parseFlags(["dir", "--force"], { force: { type: "boolean" } });
 * console.log(values.force, positionals[0]); // true "dir"
 * ```
 */
export function parseFlags(args: string[], flags: Record<string, FlagSpec>): ParsedArgs {
  try {
    const { values, positionals } = nodeParseArgs({
      args,
      options: { ...flags, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedArgs["values"], positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message.replace(/\. To specify.*$/s, "") : String(e);
    throw new UsageError(msg);
  }
}

/** Reads a string flag, or undefined. */
export function stringFlag(p: ParsedArgs, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === "string" ? v : undefined;
}

/** Reads a boolean flag (false when absent). */
export function boolFlag(p: ParsedArgs, name: string): boolean {
  return p.values[name] === true;
}

/**
 * Splits "HOST:PORT" (IPv6 as "[::1]:PORT"); throws `UsageError` with the
 * value quoted when it is not one.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./args.ts";
 * parseHostPort("[::1]:1080"); // { host: "::1", port: 1080 }
 * ```
 */
export function parseHostPort(value: string, what = "address"): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 0 || port > 65535) {
    throw new UsageError(
      `Invalid ${what} "${value}": expected HOST:PORT, e.g. 127.0.0.1:1080 or [::1]:1080`,
    );
  }
  return { host: (m[1] ?? m[2])!, port };
}

/** Formats host and port back, bracketing IPv6. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The log levels a `--log-level` flag takes. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/**
 * Reads `--log-level`, or `fallback` when absent; throws `UsageError` for
 * any other value.
 *
 * @example
 * ```ts
 * import { logLevelFlag, parseFlags } from "./args.ts";
 * logLevelFlag(parseFlags(["--log-level", "warn"], { "log-level": { type: "string" } }), "info"); // "warn"
 * ```
 */
export function logLevelFlag<F extends string | undefined>(
  p: ParsedArgs,
  fallback: F,
): (typeof LOG_LEVELS)[number] | F {
  const v = stringFlag(p, "log-level");
  if (v === undefined) return fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new UsageError(`Invalid --log-level "${v}": expected debug, info, warn or error`);
  }
  return v as (typeof LOG_LEVELS)[number];
}
