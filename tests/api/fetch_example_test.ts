/**
 * `examples/fetch.ts`, run as a user runs it (`deno run` with narrow
 * permissions), fetching pages through a real server on loopback.
 */
import { strict as assert } from "node:assert";
import { fileURLToPath } from "node:url";
import { patternBytes, startHttpTarget } from "../support/http_target.ts";
import { firstMismatch, run, text } from "../e2e/_harness.ts";
import { startServer } from "./_setup.ts";
import { test } from "../support/deadline.ts";

const EXAMPLE = fileURLToPath(new URL("../../examples/fetch.ts", import.meta.url));

function fetchExample(dir: string, profile: string, url: string) {
  return run(Deno.execPath(), [
    "run",
    "--quiet",
    "--allow-net=127.0.0.1",
    `--allow-read=${dir}`,
    "--allow-env=LOG_TOKENS,LOG_STREAM",
    EXAMPLE,
    "--profile",
    profile,
    url,
  ], { timeoutMs: 60_000 });
}

test("examples/fetch.ts writes the page's exact bytes to stdout", async () => {
  await using setup = await startServer();
  await using target = await startHttpTarget();
  const n = 300_000;
  const r = await fetchExample(setup.dir, setup.profilePath, `${target.url}/bytes/${n}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, n);
  assert.equal(firstMismatch(r.stdout, patternBytes(0, n)), -1);
  assert.deepEqual(target.requests.map((q) => q.path), [`/bytes/${n}`]);
});

test("examples/fetch.ts decodes a chunked body and fails on a 404", async () => {
  await using setup = await startServer();
  const parts = ["first part\n", "x".repeat(70_000), "\nlast part\n"];
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => {
      if (new URL(req.url).pathname !== "/chunked") return new Response("no\n", { status: 404 });
      // A body of unknown length: Deno sends it chunked.
      return new Response(ReadableStream.from(parts.map((p) => new TextEncoder().encode(p))));
    },
  );
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const ok = await fetchExample(setup.dir, setup.profilePath, `${base}/chunked`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(text(ok), parts.join(""));
    const missing = await fetchExample(setup.dir, setup.profilePath, `${base}/missing`);
    assert.equal(missing.code, 1);
    assert.equal(text(missing), "no\n");
    assert.match(missing.stderr, /HTTP status 404/);
  } finally {
    ac.abort();
    await server.finished;
  }
});

test("examples/fetch.ts explains a usage error with exit status 2", async () => {
  await using setup = await startServer();
  const r = await fetchExample(setup.dir, setup.profilePath, "https://127.0.0.1/");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Only http:\/\/ URLs are supported/);
});
