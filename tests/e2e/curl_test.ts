/**
 * curl through a real client and server: bulk download and upload with
 * checksums, 200 concurrent streams, a small request's latency during a
 * bulk transfer, and the HTTP CONNECT front.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { expectedSha256, patternBytes, startHttpTarget, toHex } from "../support/http_target.ts";
import { firstMismatch, run, startPair, text } from "./_harness.ts";
import { test } from "../support/deadline.ts";

const MiB = 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  const r = await run("sha256sum", [path], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  return text(r).slice(0, 64);
}

function socksArgs(port: number): string[] {
  return ["-sS", "--max-time", "120", "--socks5-hostname", `127.0.0.1:${port}`];
}

test.slow("curl downloads 100 MiB through the tunnel with the same SHA-256", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-curl-" });
  try {
    const n = 100 * MiB;
    const out = join(tmp, "body");
    const r = await run("curl", [
      ...socksArgs(pair.socksPort),
      "-o",
      out,
      "-w",
      "%{http_code} %{size_download} %{time_total}",
      `${target.url}/bytes/${n}`,
    ], { timeoutMs: 150_000 });
    assert.equal(r.code, 0, r.stderr);
    const [status, size, seconds] = text(r).split(" ");
    assert.equal(status, "200");
    assert.equal(Number(size), n);
    assert.equal(await sha256File(out), expectedSha256(n));
    assert.ok(pair.serverStreams() >= 1, "the request went through the server");
    console.log(
      `100 MiB download: ${Number(seconds).toFixed(2)} s, ${
        (n / 1e6 / Number(seconds)).toFixed(0)
      } MB/s`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("curl uploads 32 MiB through the tunnel and gets the same bytes back", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-curl-" });
  try {
    const n = 32 * MiB;
    const src = join(tmp, "upload");
    await Deno.writeFile(src, patternBytes(0, n));
    const out = join(tmp, "echoed");
    const r = await run("curl", [
      ...socksArgs(pair.socksPort),
      "-H",
      "Expect:",
      "-H",
      "Content-Type: application/octet-stream",
      "--data-binary",
      `@${src}`,
      "-o",
      out,
      "-w",
      "%{http_code} %{size_upload} %{size_download} %{time_total}",
      `${target.url}/echo`,
    ], { timeoutMs: 150_000 });
    assert.equal(r.code, 0, r.stderr);
    const [status, up, down, seconds] = text(r).split(" ");
    assert.equal(status, "200");
    assert.equal(Number(up), n);
    assert.equal(Number(down), n);
    assert.equal(await sha256File(out), expectedSha256(n));
    console.log(`32 MiB upload + echo: ${Number(seconds).toFixed(2)} s`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("curl runs 200 concurrent streams through one tunnel, every body intact", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-curl-" });
  try {
    const count = 200;
    const sizes = Array.from({ length: count }, (_, i) => 1 + ((i * 7919) % 200_000));
    const config = sizes.map((n, i) =>
      `url = "${target.url}/bytes/${n}"\noutput = "${join(tmp, `f${i}`)}"\n`
    ).join("");
    const cfg = join(tmp, "curl.cfg");
    await Deno.writeTextFile(cfg, config);
    const t0 = performance.now();
    const r = await run("curl", [
      ...socksArgs(pair.socksPort),
      "--fail",
      "--parallel",
      "--parallel-immediate",
      "--parallel-max",
      String(count),
      "-K",
      cfg,
    ], { timeoutMs: 120_000 });
    const ms = performance.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    for (let i = 0; i < count; i++) {
      const got = await Deno.readFile(join(tmp, `f${i}`));
      assert.equal(got.length, sizes[i], `body ${i} length`);
      assert.equal(firstMismatch(got, patternBytes(0, sizes[i]!)), -1, `body ${i} content`);
    }
    const bytesPaths = target.requests.filter((q) => q.path.startsWith("/bytes/"));
    assert.equal(bytesPaths.length, count);
    assert.ok(pair.serverStreams() >= count, `server carried ${pair.serverStreams()} streams`);
    const total = sizes.reduce((a, b) => a + b, 0);
    console.log(`200 parallel streams (${(total / MiB).toFixed(1)} MiB): ${ms.toFixed(0)} ms`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test.slow("a small request completes quickly while a bulk download fills the tunnel", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const n = 256 * MiB;
  let bulkDoneAt = 0;
  const bulk = run("curl", [
    ...socksArgs(pair.socksPort),
    "-o",
    "/dev/null",
    "-w",
    "%{size_download}",
    `${target.url}/bytes/${n}`,
  ], { timeoutMs: 150_000 }).then((r) => {
    bulkDoneAt = performance.now();
    return r;
  });
  // Wait until the target is serving the bulk body (bounded).
  for (let i = 0; i < 200 && !target.requests.some((q) => q.path === `/bytes/${n}`); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 150));
  const latencies: number[] = [];
  let smallDoneAt = 0;
  for (let i = 0; i < 3; i++) {
    const r = await run("curl", [
      ...socksArgs(pair.socksPort),
      "-w",
      "\n%{time_total}",
      `${target.url}/hello`,
    ], { timeoutMs: 60_000 });
    smallDoneAt = performance.now();
    assert.equal(r.code, 0, r.stderr);
    const out = text(r);
    const cut = out.lastIndexOf("\n");
    assert.equal(out.slice(0, cut), "hello from target\n");
    latencies.push(Number(out.slice(cut + 1)) * 1000);
  }
  const b = await bulk;
  assert.equal(b.code, 0, b.stderr);
  assert.equal(Number(text(b)), n);
  assert.ok(smallDoneAt < bulkDoneAt, "the small requests finished before the bulk one");
  console.log(
    `small request latency during a ${n / MiB} MiB download: ${
      latencies.map((l) => l.toFixed(0)).join(", ")
    } ms`,
  );
});

test("curl -p -x through the client's HTTP CONNECT port", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ httpConnect: true });
  assert.ok(pair.httpPort !== undefined, "HTTP CONNECT port is up");
  const n = 1 * MiB + 17;
  const r = await run("curl", [
    "-sS",
    "--max-time",
    "60",
    "-p",
    "-x",
    `http://127.0.0.1:${pair.httpPort}`,
    `${target.url}/bytes/${n}`,
  ], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", r.stdout));
  assert.equal(toHex(digest), expectedSha256(n));
  assert.ok(pair.serverStreams() >= 1, "the request went through the server");
});
