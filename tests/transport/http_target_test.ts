import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  expectedSha256,
  patternBytes,
  pngImage,
  rawHttpRequest,
  startHttpTarget,
  toHex,
} from "../support/http_target.ts";
import { test } from "../support/deadline.ts";

const td = new TextDecoder();

test("startHttpTarget() serves /hello and /page over fetch", async () => {
  await using target = await startHttpTarget();
  assert.match(target.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(await (await fetch(`${target.url}/hello`)).text(), "hello from target\n");
  const page = await (await fetch(`${target.url}/page`)).text();
  assert.deepEqual([...page.matchAll(/src="(\/img\/\d\.png)"/g)].map((m) => m[1]), [
    "/img/1.png",
    "/img/2.png",
    "/img/3.png",
    "/img/4.png",
    "/img/5.png",
  ]);
  assert.equal((await fetch(`${target.url}/nope`)).status, 404);
  assert.deepEqual(target.requests.map((r) => r.path), ["/hello", "/page", "/nope"]);
});

test("startHttpTarget() /bytes/N streams the pattern with a known SHA-256", async () => {
  await using target = await startHttpTarget();
  for (const n of [0, 1, 5, 65536, 65537, 1_000_003]) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
    const res = await rawHttpRequest(conn, { path: `/bytes/${n}` });
    conn.close();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(n));
    assert.equal(res.body.length, n);
    assert.equal(toHex(sha256(res.body)), expectedSha256(n));
  }
  assert.equal(
    expectedSha256(0),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.deepEqual(patternBytes(5, 10), patternBytes(0, 15).subarray(5));
  assert.deepEqual(patternBytes(3, 9), patternBytes(0, 12).subarray(3));
});

test("startHttpTarget() /echo returns the POST body (chunked)", async () => {
  await using target = await startHttpTarget();
  const body = patternBytes(0, 200_000);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
  const res = await rawHttpRequest(conn, { method: "POST", path: "/echo", body });
  conn.close();
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, body);
});

test("startHttpTarget() images are valid PNGs", async () => {
  await using target = await startHttpTarget();
  for (let k = 1; k <= 5; k++) {
    const res = await fetch(`${target.url}/img/${k}.png`);
    assert.equal(res.headers.get("content-type"), "image/png");
    const png = new Uint8Array(await res.arrayBuffer());
    assert.deepEqual(png, pngImage(k));
    assert.deepEqual(
      png.subarray(0, 8),
      Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    );
    // Walk the chunks; decompress IDAT with the platform's zlib and check the size.
    const view = new DataView(png.buffer, png.byteOffset);
    let o = 8;
    const types: string[] = [];
    let idat = new Uint8Array(0);
    while (o < png.length) {
      const len = view.getUint32(o);
      const type = td.decode(png.subarray(o + 4, o + 8));
      types.push(type);
      if (type === "IDAT") idat = png.slice(o + 8, o + 8 + len);
      o += 12 + len;
    }
    assert.deepEqual(types, ["IHDR", "IDAT", "IEND"]);
    const raw = new Uint8Array(
      await new Response(new Blob([idat]).stream().pipeThrough(new DecompressionStream("deflate")))
        .arrayBuffer(),
    );
    assert.equal(raw.length, 8 * (1 + 8 * 3));
  }
});

test("startHttpTarget() /slow waits, and close() does not wait for it", async () => {
  const target = await startHttpTarget();
  const t0 = performance.now();
  assert.equal(await (await fetch(`${target.url}/slow?ms=150`)).text(), "slow\n");
  assert.ok(performance.now() - t0 >= 140);
  const pending = fetch(`${target.url}/slow?ms=30000`).then((r) => r.text()).catch(() => "aborted");
  await new Promise((r) => setTimeout(r, 50));
  const t1 = performance.now();
  await target.close();
  assert.ok(performance.now() - t1 < 5000);
  await pending;
});

test("startHttpTarget() listens on ::1", async () => {
  await using target = await startHttpTarget({ hostname: "::1" });
  assert.match(target.url, /^http:\/\/\[::1\]:\d+$/);
  assert.equal(await (await fetch(`${target.url}/hello`)).text(), "hello from target\n");
});
