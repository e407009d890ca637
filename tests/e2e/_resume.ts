/**
 * Helpers for the resumption tests (`resume*_test.ts`): curl transfers
 * checked by SHA-256 without holding them in memory, a relay that can cut
 * the path and refuse new connections for a while, a probe that times how
 * long data stops flowing across a change of link, and a seeded PRNG so
 * "random" fault offsets are the same on every run.
 *
 * Exports:
 * - `curlDownload(socksPort, url, opts?)` → `{ code, sha256, stderr, ms }`
 * - `curlEcho(socksPort, url, file, opts?)` → the same for a POST of `file`
 *   to the target's `/echo`, hashing what comes back
 * - `writePatternFile(path, n)`: the target's `/bytes/n` content, on disk
 * - `startGateRelay(upstreamPort)` → `GateRelay` (`cut()`, `restore()`)
 * - `watchFlow(session)` → `FlowWatch`: gaps in received bytes across links
 * - `prng(seed)` → `() => number` in [0, 1)
 * - `median(xs)`
 *
 * @module
 */
import type { Session } from "../../lib/tunnel/session.ts";
import { patternBytes } from "../support/http_target.ts";
import { splice } from "../support/io.ts";
import { spawnWithDeadline } from "../support/process.ts";
import { serveConnections } from "../support/serve.ts";

/** What a checked curl transfer did. */
export interface CurlResult {
  code: number;
  /** Hex SHA-256 of the response body (empty when curl failed before sha256sum ran). */
  sha256: string;
  stderr: string;
  ms: number;
}

/** Options for the curl helpers. */
export interface CurlOptions {
  /** Kill curl and throw a `DeadlineError` after this long (default 120 s). */
  timeoutMs?: number;
  /** curl's `--limit-rate`, e.g. "4M": a transfer that is still running when the test acts. */
  limitRate?: string;
}

/**
 * Runs `curl ARGS | sha256sum` under `pipefail`, so curl's exit code is
 * kept; past the deadline both are killed and it throws a `DeadlineError`.
 */
async function curlHashed(args: string[], opts: CurlOptions): Promise<CurlResult> {
  const t0 = performance.now();
  const out = await spawnWithDeadline("bash", {
    args: ["-o", "pipefail", "-c", 'curl "$@" | sha256sum', "bash", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }, opts.timeoutMs ?? 120_000).output;
  return {
    code: out.code,
    sha256: new TextDecoder().decode(out.stdout).slice(0, 64),
    stderr: new TextDecoder().decode(out.stderr),
    ms: performance.now() - t0,
  };
}

function socksArgs(socksPort: number, opts: CurlOptions): string[] {
  const maxS = Math.ceil((opts.timeoutMs ?? 120_000) / 1000);
  return [
    "-sS",
    "--max-time",
    String(maxS),
    "--socks5-hostname",
    `127.0.0.1:${socksPort}`,
    ...(opts.limitRate === undefined ? [] : ["--limit-rate", opts.limitRate]),
  ];
}

/**
 * Downloads `url` through the SOCKS5 port with curl; returns the body's SHA-256.
 *
 * @example
 * ```ts ignore
 * const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
 * assert.equal(r.sha256, expectedSha256(n));
 * ```
 */
export function curlDownload(
  socksPort: number,
  url: string,
  opts: CurlOptions = {},
): Promise<CurlResult> {
  return curlHashed([...socksArgs(socksPort, opts), url], opts);
}

/**
 * Streams `file` to the target's `/echo` (POST, known length) through the
 * SOCKS5 port with curl; returns the SHA-256 of what was echoed back.
 *
 * @example
 * ```ts ignore
 * const r = await curlEcho(pair.socksPort, `${target.url}/echo`, file);
 * ```
 */
export function curlEcho(
  socksPort: number,
  url: string,
  file: string,
  opts: CurlOptions = {},
): Promise<CurlResult> {
  return curlHashed(
    [...socksArgs(socksPort, opts), "-X", "POST", "-H", "Expect:", "-T", file, url],
    opts,
  );
}

/**
 * Writes the first `n` bytes of the target's pattern (what `/bytes/n`
 * serves, so `expectedSha256(n)` is its hash) to `path`.
 *
 * @example
 * ```ts ignore
 * await writePatternFile(join(tmp, "up"), 64 << 20);
 * ```
 */
export async function writePatternFile(path: string, n: number): Promise<void> {
  const chunk = 1 << 20;
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let o = 0; o < n; o += chunk) {
    const b = patternBytes(o, Math.min(chunk, n - o));
    let w = 0;
    while (w < b.length) w += await f.write(b.subarray(w));
  }
}

/** A TCP relay whose path can be cut: open connections dropped, new ones closed at once. */
export interface GateRelay extends AsyncDisposable {
  port: number;
  /** Connections accepted so far (refused ones included). */
  readonly connections: number;
  /** Connections closed at once because the gate was cut. */
  readonly refused: number;
  /** Drops every open connection abruptly and refuses new ones until `restore()`. */
  cut(): void;
  /** Forwards new connections again. */
  restore(): void;
  close(): Promise<void>;
}

/**
 * Starts a gate relay on 127.0.0.1 (ephemeral port) toward `upstreamPort`.
 *
 * @example
 * ```ts ignore
 * const gate = startGateRelay(server.port);
 * gate.cut(); // the client's link breaks and every reconnect fails
 * gate.restore();
 * ```
 */
export function startGateRelay(upstreamPort: number): GateRelay {
  let refused = 0;
  let isCut = false;
  const served = serveConnections(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    async (client, track) => {
      if (isCut) {
        refused++;
        return; // closed at once
      }
      let server: Deno.Conn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: upstreamPort });
      } catch {
        return;
      }
      if (isCut) {
        server.close();
        return;
      }
      const untrack = track(server);
      await splice(client, server);
      untrack();
    },
  );
  return {
    port: served.port,
    get connections() {
      return served.accepted;
    },
    get refused() {
      return refused;
    },
    cut() {
      isCut = true;
      served.dropAll();
    },
    restore() {
      isCut = false;
    },
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
}

/** One stop of the received data around a change of link. */
export interface FlowGap {
  /** When the last bytes arrived before the stop (performance.now() ms). */
  stoppedAt: number;
  /** Milliseconds until data flowed again on a new link. */
  ms: number;
}

/** Watches a session's received bytes; see {@linkcode watchFlow}. */
export interface FlowWatch {
  /** Gaps that spanned a new link, in order. */
  readonly gaps: FlowGap[];
  stop(): void;
}

/**
 * Samples `session.stats` every `everyMs` (default 5 ms) and records, for
 * each new link, the time from the last bytes received before it to the
 * first `minBytes` (default 16 KiB) received after it: the pause a stream
 * saw. Stops by itself after `maxMs` (default 5 min).
 *
 * @example
 * ```ts ignore
 * const watch = watchFlow(await pair.client!.tunnel());
 * // … a download across a reset …
 * watch.stop();
 * console.log(watch.gaps.map((g) => g.ms));
 * ```
 */
export function watchFlow(
  session: Session,
  opts: { everyMs?: number; minBytes?: number; maxMs?: number } = {},
): FlowWatch {
  const minBytes = opts.minBytes ?? 16 * 1024;
  const gaps: FlowGap[] = [];
  let links = session.stats.links;
  let bytes = session.stats.bytesIn;
  let lastProgress = performance.now();
  /** Set while a new link has not yet carried `minBytes`: bytesIn when it was seen. */
  let pending: { from: number; stoppedAt: number } | undefined;
  const t0 = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - t0 > (opts.maxMs ?? 300_000)) {
      clearInterval(timer);
      return;
    }
    const s = session.stats;
    if (s.links !== links) {
      links = s.links;
      // Bytes seen in this sample may belong to either link: count from here.
      pending = { from: s.bytesIn, stoppedAt: pending?.stoppedAt ?? lastProgress };
      bytes = s.bytesIn;
      return;
    }
    if (s.bytesIn === bytes) return;
    bytes = s.bytesIn;
    if (pending === undefined) {
      lastProgress = now;
    } else if (s.bytesIn - pending.from >= minBytes) {
      gaps.push({ stoppedAt: pending.stoppedAt, ms: now - pending.stoppedAt });
      pending = undefined;
      lastProgress = now;
    }
  }, opts.everyMs ?? 5);
  return {
    gaps,
    stop: () => clearInterval(timer),
  };
}

/**
 * A small seeded PRNG (mulberry32), so the "random" offsets of a test are
 * the same on every run; values in [0, 1).
 *
 * @example
 * ```ts ignore
 * const rand = prng(42);
 * const at = Math.floor(rand() * 1000);
 * ```
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The median of `xs` (the mean of the middle two for an even count; NaN when empty).
 *
 * @example
 * ```ts ignore
 * median([3, 1, 2]); // 2
 * ```
 */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
