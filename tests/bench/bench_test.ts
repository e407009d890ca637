import assert from "node:assert/strict";
import { BENCH_LIMITS, benchCommand, parseBenchArgs } from "../../lib/cli/bench.ts";
import { UsageError } from "../../lib/cli/args.ts";
import { runCli } from "../../lib/cli/mod.ts";
import { formatReport, percentile, runBench } from "../../lib/bench/mod.ts";
import { parseSize } from "../../lib/config/mod.ts";
import { test } from "../support/deadline.ts";
import { assertThrowsWith } from "../support/assert.ts";
import { spawnWithDeadline } from "../support/process.ts";

test("parseBenchArgs() gives bounded defaults", () => {
  const { options, json } = parseBenchArgs([]);
  assert.equal(json, false);
  assert.equal(options.bytes, 256 * 2 ** 20);
  assert.equal(options.streams, 32);
  assert.equal(options.latencyCount, 200);
  assert.equal(options.durationS, 20);
  assert.equal(options.transport, "tls");
  assert.equal(options.profile, undefined);
});

test("parseBenchArgs() reads every flag", () => {
  const { options, json } = parseBenchArgs([
    "--config",
    "alice.yml",
    "--target",
    "10.0.0.1:9000",
    "--bytes",
    "64MiB",
    "--streams",
    "8",
    "--latency-count",
    "50",
    "--duration",
    "5",
    "--no-direct",
    "--json",
  ]);
  assert.equal(json, true);
  assert.equal(options.profile, "alice.yml");
  assert.deepEqual(options.target, { host: "10.0.0.1", port: 9000 });
  assert.equal(options.bytes, 64 * 2 ** 20);
  assert.equal(options.streams, 8);
  assert.equal(options.latencyCount, 50);
  assert.equal(options.durationS, 5);
  assert.equal(options.noDirect, true);
});

test("parseBenchArgs() reads --bytes in any case, with or without the B", () => {
  const table: [string, number][] = [
    ["65536", 65536],
    ["100b", 100],
    ["64k", 64_000],
    ["64kb", 64_000],
    ["64KiB", 65536],
    ["64kib", 65536],
    ["10m", 10_000_000],
    ["10MB", 10_000_000],
    ["256mib", 256 * 2 ** 20],
    ["1g", 1e9],
    ["1gb", 1e9],
    ["1GiB", 2 ** 30],
    ["16gib", 16 * 2 ** 30],
    ["800Mbit", 100_000_000],
  ];
  for (const [text, want] of table) {
    assert.equal(parseBenchArgs(["--bytes", text]).options.bytes, want, text);
  }
});

test("parseBenchArgs() refuses unknown flags and values past the caps", () => {
  const bad: [string[], string][] = [
    [["--bogus"], "Unknown option '--bogus'"],
    [["stray"], 'Unexpected argument "stray"'],
    [["--bytes", "lots"], 'Invalid --bytes "lots"'],
    [["--bytes", "17GiB"], 'Invalid --bytes "17GiB": expected a size from 1 to 16GiB'],
    [["--streams", "0"], 'Invalid --streams "0"'],
    [["--streams", String(BENCH_LIMITS.maxStreams + 1)], "expected an integer from 1 to 1024"],
    [["--latency-count", "1e3"], 'Invalid --latency-count "1e3"'],
    [["--duration", String(BENCH_LIMITS.maxDurationS + 1)], "expected an integer from 1 to 300"],
    [["--transport", "quic"], 'Invalid --transport "quic": expected tls or tcp'],
    [["--config", "a.yml", "--transport", "tcp"], "--transport applies to the local pair only"],
    [["--target", "nohost"], 'Invalid target "nohost": expected HOST:PORT'],
    [["--bytes", "0"], 'Invalid --bytes "0"'],
    [["--bytes", "12 parsecs"], 'Invalid --bytes "12 parsecs"'],
    [["--bytes", "1TiB"], 'Invalid --bytes "1TiB"'],
    [["--target", "::1:9000"], 'Invalid target "::1:9000"'],
    [["--target", "[example.com]:9000"], 'Invalid target "[example.com]:9000"'],
    [["--target", "127.0.0.1:65536"], 'Invalid target "127.0.0.1:65536"'],
  ];
  for (const [args, why] of bad) assertThrowsWith(() => parseBenchArgs(args), UsageError, why);
});

test("nitrosocks bench exits 2 on an unknown flag, with the bench usage", async () => {
  const err = console.error;
  const printed: string[] = [];
  console.error = (...a: unknown[]) => printed.push(a.join(" "));
  try {
    assert.equal(await runCli(["bench", "--bogus"]), 2);
  } finally {
    console.error = err;
  }
  // The bench command itself refused the flag (an unknown command also exits 2).
  const out = printed.join("\n");
  assert.match(out, /^nitrosocks bench: .*--bogus/);
  assert.ok(out.endsWith(benchCommand.usage), out);
  assert.match(benchCommand.usage, /--latency-count/);
});

test("parseSize() and percentile() follow their examples", () => {
  assert.equal(parseSize("1GiB"), 2 ** 30);
  assert.equal(parseSize("100MB"), 1e8);
  assert.equal(parseSize("65536"), 65536);
  assert.equal(parseSize("12 parsecs"), undefined);
  assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentile([5, 1, 4, 2, 3], 99), 5);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test({
  name: "runBench() measures a local pair and its report is plain JSON",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const report = await runBench({
      transport: "tcp",
      bytes: 2 << 20,
      streams: 4,
      latencyCount: 5,
      durationS: 20,
      handshakes: 1,
    });
    const back = JSON.parse(JSON.stringify(report));
    assert.equal(back.version, 1);
    assert.equal(back.mode, "local-pair");
    assert.equal(back.transport, "tcp");
    assert.equal(back.aead, "aes-256-gcm");
    for (const path of [back.tunnel, back.direct]) {
      assert.equal(path.latency.n, 5);
      assert.equal(path.latency.failed, 0);
      assert.ok(path.latency.medianMs > 0);
      assert.equal(path.download.bytes, 2 << 20);
      assert.equal(path.upload.bytes, 2 << 20);
      assert.equal(path.parallel.bytes, 2 << 20);
      assert.equal(path.parallel.failed, 0);
      assert.ok(path.download.MBps > 0);
    }
    assert.ok(back.handshakeMs.medianMs > 0);
    assert.ok(back.process.rssPeakBytes >= back.process.rssStartBytes);
    const table = formatReport(report);
    assert.match(table, /^metric\s+tunnel\s+direct\s+tunnel\/direct$/m);
    assert.match(table, /^4 parallel\s+\S+ MB\/s/m);
  },
});

test("parseBenchArgs() reads --crypto for the local pair and refuses it with --config", () => {
  assert.equal(parseBenchArgs([]).crypto, undefined);
  assert.equal(parseBenchArgs(["--crypto", "webcrypto"]).crypto, "webcrypto");
  assertThrowsWith(
    () => parseBenchArgs(["--crypto", "fast"]),
    UsageError,
    'Invalid --crypto "fast": expected auto, openssl or webcrypto',
  );
  assertThrowsWith(
    () => parseBenchArgs(["--config", "a.yml", "--crypto", "openssl"]),
    UsageError,
    "with --config the profile's crypto: section decides",
  );
});

/** `nitrosocks bench ARGS --json` as a process under the task's flags; its report and stderr. */
async function benchProcess(
  args: string[],
): Promise<{ report: Record<string, unknown>; err: string }> {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const flags = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi"];
  const p = spawnWithDeadline(
    Deno.execPath(),
    {
      args: ["run", ...flags, main, "bench", ...args, "--json"],
      stdout: "piped",
      stderr: "piped",
    },
    60_000,
    "a small local-pair bench",
  );
  const out = await p.output;
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, err);
  return { report: JSON.parse(new TextDecoder().decode(out.stdout)), err };
}

test.slow("nitrosocks bench --crypto runs the local pair on that backend and reports it", async () => {
  const small = ["--transport", "tcp", "--bytes", "1MiB", "--streams", "2", "--latency-count", "2"];
  for (const backend of ["webcrypto", "openssl"]) {
    const { report, err } = await benchProcess([...small, "--no-direct", "--crypto", backend]);
    assert.match(String(report.cryptoBackend), new RegExp(`^${backend} `), JSON.stringify(report));
    assert.match(err, new RegExp(`^bench: crypto backend: ${backend} `, "m"));
  }
});

test("parseBenchArgs() reads --padding for the local pair and refuses it with --config", () => {
  assert.equal(parseBenchArgs([]).options.padding, undefined);
  assert.equal(parseBenchArgs(["--padding", "bucket"]).options.padding, "bucket");
  assertThrowsWith(
    () => parseBenchArgs(["--padding", "lots"]),
    UsageError,
    'Invalid --padding "lots": expected none, random, bucket',
  );
  assertThrowsWith(
    () => parseBenchArgs(["--config", "a.yml", "--padding", "none"]),
    UsageError,
    "with --config the profile's padding: key decides",
  );
});

test.slow("nitrosocks bench --padding: the report's wire bytes per new stream grow none < random < bucket", async () => {
  const small = [
    "--transport",
    "tcp",
    "--bytes",
    "1MiB",
    "--streams",
    "2",
    "--latency-count",
    "40",
  ];
  const perStream: Record<string, number> = {};
  const atStart: Record<string, number> = {};
  for (const padding of ["none", "random", "bucket"]) {
    const { report } = await benchProcess([...small, "--no-direct", "--padding", padding]);
    assert.equal(report.padding, padding);
    const tunnel = report.tunnel as {
      warmup: { wireBytesPerStream: number };
      latency: { wireBytesPerStream: number };
      download: { wireOverheadPct: number };
    };
    perStream[padding] = tunnel.latency.wireBytesPerStream;
    atStart[padding] = tunnel.warmup.wireBytesPerStream;
    // Bulk records are 16 KiB and more: padding adds little to a download.
    assert.ok(tunnel.download.wireOverheadPct < 5, JSON.stringify(tunnel.download));
  }
  console.log(
    `record bytes per new stream: ${JSON.stringify(perStream)}, first 20 ${
      JSON.stringify(atStart)
    }`,
  );
  // The first flight (a connection's first 32 records each way) is shaped only with padding on.
  assert.ok(atStart.random! > 4 * atStart.none!, JSON.stringify(atStart));
  assert.ok(perStream.none! > 0);
  assert.ok(perStream.random! > perStream.none! + 200, JSON.stringify(perStream));
  assert.ok(perStream.bucket! > perStream.none!, JSON.stringify(perStream));
});
