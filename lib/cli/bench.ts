/**
 * `nitrosocks bench`: the benchmark users run. Argument parsing lives here
 * (`parseBenchArgs`, tested on its own); the measuring is `lib/bench`.
 *
 * @module
 */
import { type BenchOptions, formatReport, runBench } from "../bench/mod.ts";
import {
  type CryptoSettings,
  loadClientConfig,
  PADDING_NAMES,
  type PaddingName,
  parseSize,
} from "../config/mod.ts";
import { describeCryptoBackend } from "../record/mod.ts";
import { useCryptoBackend } from "./crypto.ts";
import { boolFlag, parseFlags, parseHostPort, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";

/** Caps: a benchmark never runs unbounded. */
export const BENCH_LIMITS = {
  maxBytes: 16 * 2 ** 30,
  maxStreams: 1024,
  maxLatencyCount: 10_000,
  maxDurationS: 300,
} as const;

const usage = `Usage: nitrosocks bench [--config PROFILE] [options]

Measures a NitroSocks tunnel: handshake time, new-stream latency (median,
p99), bulk download and upload, many parallel streams, CPU and memory, each
next to a direct connection to the same target. Progress goes to stderr, a
short table (or JSON with --json) to stdout.

Without --config it starts a server and a client in this process on
loopback, with throwaway keys, plus a small TCP target (nothing leaves the
machine). With --config it measures the real server of that client profile;
the server must be able to reach the target (--target, default a target
started here on 127.0.0.1, so only a server on this machine reaches it).

Options:
  --config PROFILE    client profile (client.yml) of the server to measure
  --target HOST:PORT  a 'nitrosocks bench' target the server can reach
  --transport T       local pair only: tls (default) or tcp
  --padding MODE      local pair only: record padding of both sides, none,
                      random (the default) or bucket; with --config the
                      profile's padding: key decides
  --crypto B          local pair only: record crypto backend, auto (default),
                      openssl or webcrypto; with --config the profile's
                      crypto: section decides
  --bytes SIZE        bytes per bulk transfer, e.g. 256MiB (default 256MiB, at most 16GiB)
  --streams N         parallel streams (default 32, at most 1024)
  --latency-count N   new streams for the latency test (default 200, at most 10000)
  --duration S        most seconds per phase (default 20, at most 300)
  --no-direct         skip the direct (no proxy) comparison
  --json              print the report as JSON
  -h, --help          show this help

Exit status: 0 done, 1 the tunnel failed, 2 bad usage.`;

function intFlag(
  p: ReturnType<typeof parseFlags>,
  name: string,
  dflt: number,
  max: number,
): number {
  const v = stringFlag(p, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) {
    throw new UsageError(`Invalid --${name} "${v}": expected an integer from 1 to ${max}`);
  }
  return Number(v);
}

/** Parsed command line of `nitrosocks bench`. */
export interface BenchArgs {
  options: BenchOptions;
  json: boolean;
  /** `--crypto` of the local pair (undefined with --config: the profile's `crypto:` decides). */
  crypto: CryptoSettings["backend"] | undefined;
}

/**
 * Parses `nitrosocks bench` arguments. Throws `UsageError` for an unknown
 * flag, a stray argument or a value out of range.
 *
 * @example
 * ```ts
 * import { parseBenchArgs } from "./bench.ts";
 * parseBenchArgs(["--bytes", "64MiB", "--json"]).options.bytes; // 67108864
 * ```
 */
export function parseBenchArgs(args: string[]): BenchArgs {
  const p = parseFlags(args, {
    config: { type: "string" },
    target: { type: "string" },
    transport: { type: "string" },
    padding: { type: "string" },
    crypto: { type: "string" },
    bytes: { type: "string" },
    streams: { type: "string" },
    "latency-count": { type: "string" },
    duration: { type: "string" },
    "no-direct": { type: "boolean" },
    json: { type: "boolean" },
  });
  if (p.positionals.length > 0) throw new UsageError(`Unexpected argument "${p.positionals[0]}"`);
  const bytesText = stringFlag(p, "bytes");
  let bytes = 256 * 2 ** 20;
  if (bytesText !== undefined) {
    const b = parseSize(bytesText, { loose: true });
    if (b === undefined || b < 1 || b > BENCH_LIMITS.maxBytes) {
      throw new UsageError(`Invalid --bytes "${bytesText}": expected a size from 1 to 16GiB`);
    }
    bytes = b;
  }
  const transport = stringFlag(p, "transport") ?? "tls";
  if (transport !== "tls" && transport !== "tcp") {
    throw new UsageError(`Invalid --transport "${transport}": expected tls or tcp`);
  }
  const config = stringFlag(p, "config");
  if (config !== undefined && stringFlag(p, "transport") !== undefined) {
    throw new UsageError("--transport applies to the local pair only, not with --config");
  }
  const padding = stringFlag(p, "padding");
  if (padding !== undefined && !(PADDING_NAMES as readonly string[]).includes(padding)) {
    throw new UsageError(`Invalid --padding "${padding}": expected ${PADDING_NAMES.join(", ")}`);
  }
  if (config !== undefined && padding !== undefined) {
    throw new UsageError(
      "--padding applies to the local pair only; with --config the profile's padding: key decides",
    );
  }
  const crypto = stringFlag(p, "crypto");
  if (crypto !== undefined && crypto !== "auto" && crypto !== "openssl" && crypto !== "webcrypto") {
    throw new UsageError(`Invalid --crypto "${crypto}": expected auto, openssl or webcrypto`);
  }
  if (config !== undefined && crypto !== undefined) {
    throw new UsageError(
      "--crypto applies to the local pair only; with --config the profile's crypto: section decides",
    );
  }
  const targetText = stringFlag(p, "target");
  const options: BenchOptions = {
    transport,
    bytes,
    streams: intFlag(p, "streams", 32, BENCH_LIMITS.maxStreams),
    latencyCount: intFlag(p, "latency-count", 200, BENCH_LIMITS.maxLatencyCount),
    durationS: intFlag(p, "duration", 20, BENCH_LIMITS.maxDurationS),
    noDirect: boolFlag(p, "no-direct"),
  };
  if (config !== undefined) options.profile = config;
  if (padding !== undefined) options.padding = padding as PaddingName;
  if (targetText !== undefined) options.target = parseHostPort(targetText, "target");
  return { options, json: boolFlag(p, "json"), crypto };
}

export const benchCommand: Command = {
  name: "bench",
  summary: "measure a tunnel: latency, throughput, CPU, memory (local pair or a profile)",
  usage,
  async run(args) {
    const { options, json, crypto } = parseBenchArgs(args);
    // This process's records: the local pair's both sides run on --crypto (default auto), the
    // client of --config on its profile's crypto: section, as `nitrosocks client` would.
    const settings: CryptoSettings = options.profile === undefined
      ? { backend: crypto ?? "auto" }
      : (await loadClientConfig(options.profile)).crypto;
    options.cryptoBackend = describeCryptoBackend(useCryptoBackend(settings));
    console.error(`bench: crypto backend: ${options.cryptoBackend}`);
    const tty = Deno.stderr.isTerminal();
    options.progress = (line) => {
      const text = `bench: ${line}`;
      if (tty) Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${text}`));
      else console.error(text);
    };
    const report = await runBench(options);
    if (tty) Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
    console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
    return 0;
  },
};
