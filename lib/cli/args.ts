/**
 * Command-line parsing shared by every subcommand: `node:util` parseArgs in
 * strict mode behind one small function, so an unknown flag is a usage error
 * (exit 2) with the command's help text.
 *
 * @module
 */
import { parseArgs as nodeParseArgs } from "node:util";
import { ProvisionInputError } from "../provision/mod.ts";
import {
  type HostPort,
  invalidHostPortMessage,
  parseHostPort as parseWireHostPort,
} from "../wire/host_port.ts";

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
 * Parses "HOST:PORT" (IPv6 as "[::1]:PORT") with `parseHostPort` of
 * `lib/wire/host_port.ts`; throws `UsageError` with the value quoted when it
 * is not one.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./args.ts";
 * parseHostPort("[::1]:1080"); // { host: "::1", port: 1080 }
 * ```
 */
export function parseHostPort(value: string, what = "address"): HostPort {
  const hp = parseWireHostPort(value);
  if (hp === undefined) throw new UsageError(invalidHostPortMessage(value, what));
  return hp;
}

/**
 * Awaits `work`, turning a `ProvisionInputError` (a bad user name, address
 * or route given to `lib/provision`) into a `UsageError`, so the command
 * exits 2 with its usage.
 *
 * @example
 * ```ts
 * import { asUsageError, UsageError } from "./args.ts";
 * import { ProvisionInputError } from "../provision/mod.ts";
 * const failed = await asUsageError(Promise.reject(new ProvisionInputError("bad"))).catch((e) => e);
 * console.log(failed instanceof UsageError); // true
 * ```
 */
export async function asUsageError<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    if (e instanceof ProvisionInputError) throw new UsageError(e.message);
    throw e;
  }
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
