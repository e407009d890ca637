/**
 * `nitrosocks bench`: measures a tunnel the way a user feels it —
 * handshake time, new-stream latency, bulk throughput each way, many
 * streams at once, CPU and memory — against a direct connection to the
 * same target. By default everything runs in this process on loopback: a
 * server and client with throwaway keys (as `nitrosocks demo` makes them)
 * and a small TCP target (`_target.ts`). With a client profile it measures
 * a real server through that profile instead.
 *
 * Every phase is bounded by a byte or count cap and by `durationS`.
 *
 * @example
 * ```ts ignore
 * import { formatReport, runBench } from "./mod.ts";
 * const report = await runBench({ bytes: 64 << 20, streams: 8, latencyCount: 50, durationS: 10 });
 * console.log(formatReport(report));
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { loadClientConfig, loadServerConfig, loadUsers } from "../config/mod.ts";
import type { ClientConfig, PaddingName } from "../config/mod.ts";
import { addUser, initServerDir } from "../provision/mod.ts";
import { type ClientHandle, startClient } from "../tunnel/client.ts";
import { type ServerHandle, startServer } from "../tunnel/server.ts";
import { silentLogger } from "../observe/mod.ts";
import { writeAll } from "../transport/types.ts";
import { connectVia, readFull, startBenchTarget, targetRequest } from "./_target.ts";
import { percentile, processCpuSeconds, processRssBytes, round } from "./_stats.ts";

export { percentile } from "./_stats.ts";
export { startBenchTarget } from "./_target.ts";

/** Options of {@linkcode runBench}. */
export interface BenchOptions {
  /** Client profile of a real server; undefined runs a local pair. */
  profile?: string;
  /** Target the server dials; default a target started here on 127.0.0.1. */
  target?: { host: string; port: number };
  /** Local pair transport; default "tls". */
  transport?: "tls" | "tcp";
  /** Local pair record padding (`padding:` of both sides); default the configs' default. */
  padding?: PaddingName;
  /** Bytes per bulk transfer (each direction, and in total for the parallel phase). */
  bytes: number;
  /** Streams of the parallel phase. */
  streams: number;
  /** New streams opened one after another for the latency phase. */
  latencyCount: number;
  /** Most seconds any phase may take. */
  durationS: number;
  /** Handshakes to time (each a fresh tunnel). Default 3. */
  handshakes?: number;
  /** Skip the direct (no proxy) runs. */
  noDirect?: boolean;
  /** Progress lines (stderr in the CLI). */
  progress?: (line: string) => void;
  /** The record crypto backend this process runs on, as reported (e.g. "openssl (OpenSSL 3.0.19)"). */
  cryptoBackend?: string;
}

/** Latency of new streams. */
export interface LatencyResult {
  n: number;
  failed: number;
  medianMs: number;
  p99Ms: number;
  /** Tunnel only: record bytes on the tunnel's connection per new stream, both ways. */
  wireBytesPerStream?: number;
}

/** One transfer phase. */
export interface TransferResult {
  bytes: number;
  seconds: number;
  MBps: number;
  failed: number;
  /** True when the duration cap cut the phase short. */
  capped: boolean;
  /** CPU seconds this process used per GiB moved in the phase. */
  cpuSecondsPerGiB: number;
  /**
   * Tunnel only: record bytes on the tunnel's connection (both ways: data,
   * acknowledgements, padding) over the bytes moved, less 1, in percent.
   */
  wireOverheadPct?: number;
}

/**
 * New streams opened before the latency phase, so that it measures a
 * connection past its start: 20 short streams take about 60 records each
 * way, past the 32 a connection's first flight shapes
 * (docs/PROTOCOL.md part 3 section 8).
 */
export const WARMUP_STREAMS = 20;

/** A measured path: through the tunnel or direct. */
export interface PathResult {
  /**
   * The `WARMUP_STREAMS` new streams at the connection's start (tunnel: its
   * record bytes both ways then, the first flight included).
   */
  warmup: LatencyResult;
  latency: LatencyResult;
  download: TransferResult;
  upload: TransferResult;
  parallel: TransferResult;
}

/** What {@linkcode runBench} returns (and `--json` prints). */
export interface BenchReport {
  version: 1;
  mode: "local-pair" | "profile";
  transport: string;
  /** The profile's first AEAD and key exchange (what a NitroSocks server picks when it offers them). */
  aead: string;
  kex: string;
  /** The record crypto backend of this process (the local pair's both sides, or the profile's client). */
  cryptoBackend: string;
  /** The record padding the client asked for (its profile's `padding:`). */
  padding: string;
  settings: { bytes: number; streams: number; latencyCount: number; durationS: number };
  handshakeMs: { n: number; medianMs: number; maxMs: number };
  tunnel: PathResult;
  direct: PathResult | undefined;
  /**
   * Process figures. For the local pair the server, client, target and
   * load all run in this process: `proxyCpuSecondsPerGiB` is the tunnel's
   * download CPU minus the direct download's, i.e. what the tunnel adds.
   */
  process: {
    rssStartBytes: number;
    rssPeakBytes: number;
    proxyCpuSecondsPerGiB: number | undefined;
  };
}

const GIB = 2 ** 30;

interface Env {
  socks: { hostname: string; port: number } | undefined;
  host: string;
  port: number;
  deadline: () => number;
  rss: () => void;
  /** Record bytes the tunnel's session moved so far, both ways; undefined when direct. */
  wire?: () => number;
}

/** Opens a new stream, sends one byte through an echo and waits for it back. */
async function latencyPhase(env: Env, count: number): Promise<LatencyResult> {
  const times: number[] = [];
  let failed = 0;
  const one = new Uint8Array([1]);
  const back = new Uint8Array(1);
  const stop = env.deadline();
  const w0 = env.wire?.();
  for (let i = 0; i < count && performance.now() < stop; i++) {
    const t0 = performance.now();
    let conn: Deno.TcpConn | undefined;
    try {
      conn = await connectVia(env.socks, env.host, env.port);
      await writeAll(conn, targetRequest("E", 0));
      await writeAll(conn, one);
      if (!(await readFull(conn, back))) throw new Error("echo closed");
      times.push(performance.now() - t0);
    } catch {
      failed++;
    } finally {
      try {
        conn?.close();
      } catch {
        // already closed
      }
    }
  }
  const wire = w0 === undefined || times.length === 0 ? undefined : env.wire!() - w0;
  return {
    n: times.length,
    failed,
    medianMs: round(percentile(times, 50), 3),
    p99Ms: round(percentile(times, 99), 3),
    ...(wire === undefined ? {} : { wireBytesPerStream: Math.round(wire / times.length) }),
  };
}

/** Downloads `bytes` on one stream until done or `stop` (ms, performance.now). */
async function download(env: Env, bytes: number, stop: number): Promise<number> {
  const conn = await connectVia(env.socks, env.host, env.port);
  try {
    await writeAll(conn, targetRequest("D", bytes));
    const buf = new Uint8Array(256 * 1024);
    let got = 0;
    while (got < bytes && performance.now() < stop) {
      const n = await conn.read(buf);
      if (n === null) break;
      got += n;
    }
    return got;
  } finally {
    conn.close();
  }
}

async function upload(env: Env, bytes: number, stop: number): Promise<number> {
  const conn = await connectVia(env.socks, env.host, env.port);
  try {
    await writeAll(conn, targetRequest("U", bytes));
    const buf = new Uint8Array(256 * 1024);
    let sent = 0;
    while (sent < bytes && performance.now() < stop) {
      const n = Math.min(buf.length, bytes - sent);
      await writeAll(conn, n === buf.length ? buf : buf.subarray(0, n));
      sent += n;
    }
    if (sent === bytes) await readFull(conn, new Uint8Array(1));
    return sent;
  } finally {
    conn.close();
  }
}

async function transferPhase(
  env: Env,
  streams: number,
  total: number,
  fn: (env: Env, bytes: number, stop: number) => Promise<number>,
): Promise<TransferResult> {
  const per = Math.max(1, Math.floor(total / streams));
  const c0 = processCpuSeconds();
  const w0 = env.wire?.();
  const t0 = performance.now();
  const stop = env.deadline();
  let failed = 0;
  const done = await Promise.all(
    Array.from({ length: streams }, () =>
      fn(env, per, stop).catch(() => {
        failed++;
        return 0;
      })),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = processCpuSeconds() - c0;
  env.rss();
  const bytes = done.reduce((a, b) => a + b, 0);
  const wire = w0 === undefined || bytes === 0 ? undefined : env.wire!() - w0;
  return {
    bytes,
    seconds: round(seconds, 3),
    MBps: round(bytes / seconds / 1e6, 1),
    failed,
    capped: bytes < per * streams && failed === 0,
    cpuSecondsPerGiB: bytes > 0 ? round(cpu / (bytes / GIB), 2) : NaN,
    ...(wire === undefined ? {} : { wireOverheadPct: round((wire / bytes - 1) * 100, 2) }),
  };
}

async function measurePath(env: Env, o: BenchOptions, label: string): Promise<PathResult> {
  const say = o.progress ?? (() => {});
  say(`${label}: ${WARMUP_STREAMS} new streams to warm up…`);
  const warmup = await latencyPhase(env, WARMUP_STREAMS);
  say(`${label}: latency of ${o.latencyCount} new streams…`);
  const latency = await latencyPhase(env, o.latencyCount);
  say(`${label}: latency median ${latency.medianMs} ms, p99 ${latency.p99Ms} ms`);
  say(`${label}: download ${fmtBytes(o.bytes)}…`);
  const dl = await transferPhase(env, 1, o.bytes, download);
  say(`${label}: download ${dl.MBps} MB/s`);
  say(`${label}: upload ${fmtBytes(o.bytes)}…`);
  const ul = await transferPhase(env, 1, o.bytes, upload);
  say(`${label}: upload ${ul.MBps} MB/s`);
  say(`${label}: ${o.streams} parallel downloads, ${fmtBytes(o.bytes)} in total…`);
  const par = await transferPhase(env, o.streams, o.bytes, download);
  say(`${label}: parallel ${par.MBps} MB/s${par.failed ? ` (${par.failed} failed)` : ""}`);
  return { warmup, latency, download: dl, upload: ul, parallel: par };
}

/** Formats a byte count the way the table shows it. */
export function fmtBytes(n: number): string {
  if (n >= GIB && n % GIB === 0) return `${n / GIB} GiB`;
  if (n >= 1 << 20) return `${round(n / (1 << 20), 1)} MiB`;
  if (n >= 1024) return `${round(n / 1024, 1)} KiB`;
  return `${n} B`;
}

interface LocalPair {
  server: ServerHandle;
  config: ClientConfig;
  serverAddr: { host: string; port: number };
  caPem: string | undefined;
  close(): Promise<void>;
}

async function startLocalPair(
  transport: "tls" | "tcp",
  padding: PaddingName | undefined,
): Promise<LocalPair> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-bench-" });
  let server: ServerHandle | undefined;
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
    const yml = join(dir, "server.yml");
    // init's server.yml names the default (padding: random): --padding replaces that line, and
    // is added to the profile, which has none.
    const withPadding = (text: string) =>
      padding === undefined
        ? text
        : /^padding: /m.test(text)
        ? text.replace(/^padding: \w+$/m, `padding: ${padding}`)
        : `${text.trimEnd()}\npadding: ${padding}\n`;
    const text = await Deno.readTextFile(yml);
    await Deno.writeTextFile(
      yml,
      withPadding(transport === "tcp" ? text.replace(/^transport: tls$/m, "transport: tcp") : text),
    );
    const serverConfig = await loadServerConfig(yml);
    const { users } = await loadUsers(serverConfig.usersFile);
    server = await startServer({ ...serverConfig, users, log: silentLogger });
    const out = join(dir, "bench.yml");
    await addUser("bench", {
      dir,
      out,
      server: `127.0.0.1:${server.addr.port}`,
      // Loopback is in egress.block: the bench user names it, as a real user would.
      routes: ["127.0.0.1:*", "[::1]:*"],
    });
    server.setUsers((await loadUsers(serverConfig.usersFile)).users);
    await Deno.writeTextFile(out, withPadding(await Deno.readTextFile(out)), { mode: 0o600 });
    const config = await loadClientConfig(out);
    const caPem = transport === "tls"
      ? await Deno.readTextFile(join(dir, "tls", "ca.crt"))
      : undefined;
    const srv = server;
    return {
      server: srv,
      config,
      serverAddr: { host: "127.0.0.1", port: srv.addr.port },
      caPem,
      async close() {
        await srv.close();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await server?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * Runs the benchmark and returns its report. Throws when the tunnel cannot
 * be established; failures of single streams are counted, not thrown.
 */
export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const say = o.progress ?? (() => {});
  const rssStart = processRssBytes();
  let rssPeak = rssStart;
  const rss = () => (rssPeak = Math.max(rssPeak, processRssBytes()));
  const target = o.target === undefined ? startBenchTarget() : undefined;
  const host = o.target?.host ?? "127.0.0.1";
  const port = o.target?.port ?? target!.port;
  let pair: LocalPair | undefined;
  let client: ClientHandle | undefined;
  try {
    let config: ClientConfig;
    let server: { host: string; port: number } | undefined;
    let caPem: string | undefined;
    if (o.profile === undefined) {
      say(`starting a local server and client (${o.transport ?? "tls"}, throwaway keys)…`);
      pair = await startLocalPair(o.transport ?? "tls", o.padding);
      config = pair.config;
      server = pair.serverAddr;
      caPem = pair.caPem;
    } else {
      config = await loadClientConfig(o.profile);
    }
    const opts = {
      log: silentLogger,
      ...(server === undefined ? {} : { server }),
      ...(caPem === undefined ? {} : { caPem }),
    };
    // Handshake: a fresh client per tunnel; the last one stays for the measurements.
    const hs: number[] = [];
    const kex = config.kex[0] ?? "";
    const aead = config.aead[0] ?? "";
    const handshakes = o.handshakes ?? 3;
    for (let i = 0; i < handshakes; i++) {
      const c = await startClient({
        profile: config,
        ...opts,
        socks: { host: "127.0.0.1", port: 0 },
        lazy: true,
      });
      const t0 = performance.now();
      try {
        await c.tunnel();
      } catch (e) {
        await c.close();
        throw e;
      }
      hs.push(performance.now() - t0);
      if (i < handshakes - 1) await c.close();
      else client = c;
    }
    say(`handshake median ${round(percentile(hs, 50), 1)} ms (${kex}, ${aead})`);
    const deadline = () => performance.now() + o.durationS * 1000;
    const session = await client!.tunnel();
    const wire = () => session.stats.bytesIn + session.stats.bytesOut;
    const tunnel = await measurePath(
      { socks: client!.socksAddr, host, port, deadline, rss, wire },
      o,
      "tunnel",
    );
    const direct = o.noDirect
      ? undefined
      : await measurePath({ socks: undefined, host, port, deadline, rss }, o, "direct");
    const proxyCpu = o.profile !== undefined || direct === undefined
      ? undefined
      : round(tunnel.download.cpuSecondsPerGiB - direct.download.cpuSecondsPerGiB, 2);
    return {
      version: 1,
      mode: o.profile === undefined ? "local-pair" : "profile",
      transport: config.transport,
      aead,
      kex,
      cryptoBackend: o.cryptoBackend ?? "unknown",
      padding: config.padding,
      settings: {
        bytes: o.bytes,
        streams: o.streams,
        latencyCount: o.latencyCount,
        durationS: o.durationS,
      },
      handshakeMs: {
        n: hs.length,
        medianMs: round(percentile(hs, 50), 2),
        maxMs: round(Math.max(...hs), 2),
      },
      tunnel,
      direct,
      process: { rssStartBytes: rssStart, rssPeakBytes: rssPeak, proxyCpuSecondsPerGiB: proxyCpu },
    };
  } finally {
    await client?.close();
    await pair?.close();
    await target?.close();
  }
}

/** The short table printed at the end. */
export function formatReport(r: BenchReport): string {
  const d = r.direct;
  const rows: [string, string, string, string][] = [
    ["metric", "tunnel", "direct", "tunnel/direct"],
  ];
  const ratio = (a: number, b: number | undefined) =>
    b === undefined || !(b > 0) ? "" : `${round(a / b, 2)}×`;
  const add = (name: string, t: number, dv: number | undefined, unit: string) =>
    rows.push([name, `${t} ${unit}`, dv === undefined ? "" : `${dv} ${unit}`, ratio(t, dv)]);
  add("new stream, median", r.tunnel.latency.medianMs, d?.latency.medianMs, "ms");
  add("new stream, p99", r.tunnel.latency.p99Ms, d?.latency.p99Ms, "ms");
  add("download", r.tunnel.download.MBps, d?.download.MBps, "MB/s");
  add("upload", r.tunnel.upload.MBps, d?.upload.MBps, "MB/s");
  add(`${r.settings.streams} parallel`, r.tunnel.parallel.MBps, d?.parallel.MBps, "MB/s");
  const width = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((c, i) => c.padEnd(width[i]!)).join("  ").trimEnd());
  lines.splice(1, 0, width.map((w) => "-".repeat(w)).join("  "));
  const mib = (b: number) => `${round(b / (1 << 20), 1)} MiB`;
  lines.push(
    "",
    `handshake: median ${r.handshakeMs.medianMs} ms of ${r.handshakeMs.n} (${r.kex}, ${r.aead}, ${r.transport})`,
    `crypto backend: ${r.cryptoBackend}`,
    `padding: ${r.padding}; on the tunnel's connection (records both ways): ` +
      `${r.tunnel.warmup.wireBytesPerStream ?? "?"} B per new stream for the first ` +
      `${r.tunnel.warmup.n}, then ${r.tunnel.latency.wireBytesPerStream ?? "?"} B; bytes moved + ` +
      [r.tunnel.download, r.tunnel.upload, r.tunnel.parallel]
        .map((p) => `${p.wireOverheadPct ?? "?"} %`).join(" / ") +
      " (download / upload / parallel)",
    `memory: RSS ${mib(r.process.rssStartBytes)} at start, ${mib(r.process.rssPeakBytes)} peak` +
      (r.mode === "local-pair" ? " (server, client and target in this process)" : ""),
  );
  if (
    r.process.proxyCpuSecondsPerGiB !== undefined &&
    Number.isFinite(r.process.proxyCpuSecondsPerGiB)
  ) {
    lines.push(
      `CPU: ${r.process.proxyCpuSecondsPerGiB} s/GiB for client + server together (download, over direct)`,
    );
  }
  const failures = [r.tunnel, ...(d ? [d] : [])].reduce(
    (n, p) => n + p.latency.failed + p.download.failed + p.upload.failed + p.parallel.failed,
    0,
  );
  if (failures > 0) lines.push(`failures: ${failures} streams failed (see --json)`);
  return lines.join("\n");
}
