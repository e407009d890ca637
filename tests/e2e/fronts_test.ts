/**
 * Behind a front: a real nginx terminating TLS and proxying `ws.path` as a
 * WebSocket to the server's plain-HTTP ws listener (other paths served by
 * nginx itself), and a real HAProxy in TCP mode sending PROXY v2. curl
 * through the tunnel, exact bytes, Chromium through nginx, resumption
 * across `nginx -s reload`, the real client address behind HAProxy.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { expectedSha256, startHttpTarget } from "../support/http_target.ts";
import { hasProgram, type Nginx, startHaproxy, startNginx } from "../support/fronts.ts";
import { test, withDeadline } from "../support/deadline.ts";
import { run, startPair, text } from "./_harness.ts";
import { hasChromium, loadPage } from "./_browser.ts";
import { curlDownload } from "./_resume.ts";

const MiB = 1024 * 1024;
const WS_PATH = "/nitro/ws";
const INDEX = "<!DOCTYPE html><title>front page</title><p>served by nginx itself</p>\n";
const haveNginx = await hasProgram("nginx");
const haveHaproxy = await hasProgram("haproxy");

/** A pair whose server serves `ws` on loopback, behind nginx doing TLS with the server's certificate. */
function pairBehindNginx(opts: { serverSession?: Record<string, string> } = {}) {
  let nginx: Nginx | undefined;
  return startPair({
    transport: "ws",
    wsPath: WS_PATH,
    ...(opts.serverSession === undefined ? {} : { serverSession: opts.serverSession }),
    via: async (s) => {
      nginx = await startNginx({
        certPem: await Deno.readTextFile(join(s.dir, "tls", "server.crt")),
        keyPem: await Deno.readTextFile(join(s.dir, "tls", "server.key")),
        wsPath: WS_PATH,
        upstreamPort: s.port,
        indexHtml: INDEX,
      });
      return nginx;
    },
    url: (_s, via) => `wss://localhost:${via!.port}${WS_PATH}`,
  }).then((pair) => ({ pair, nginx: nginx! }));
}

test.slow(
  "through nginx (TLS, ws.path proxied with Upgrade): curl gets exact bytes; nginx serves other paths; the ws port's other requests get the decoy",
  {
    ignore: !haveNginx,
  },
  async () => {
    await using target = await startHttpTarget();
    const { pair, nginx } = await pairBehindNginx();
    await using _pair = pair;
    assert.equal(pair.profile.transport, "wss");
    assert.equal(pair.profile.path, WS_PATH);
    assert.deepEqual(pair.profile.server, { host: "localhost", port: nginx.port });
    const n = 32 * MiB;
    const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.sha256, expectedSha256(n));
    const small = await run("curl", [
      "-sS",
      "--max-time",
      "30",
      "--socks5-hostname",
      `127.0.0.1:${pair.socksPort}`,
      `${target.url}/hello`,
    ]);
    assert.equal(text(small), "hello from target\n");
    // The login came through nginx: the server saw a WebSocket from nginx on loopback.
    const logins = pair.serverEvents.of("login");
    assert.equal(logins.length, 1);
    assert.equal(logins[0]!.remote, "127.0.0.1");
    assert.ok(pair.serverStreams() >= 2);
    // Another path on nginx's port: nginx's own page, no tunnel involved.
    const front = await run("curl", [
      "-sS",
      "--max-time",
      "10",
      "--cacert",
      join(pair.dir, "tls", "ca.crt"),
      "--resolve",
      `localhost:${nginx.port}:127.0.0.1`,
      `https://localhost:${nginx.port}/`,
    ]);
    assert.equal(front.code, 0, front.stderr);
    assert.equal(text(front), INDEX);
    // The server's own ws port answers anything but the upgrade with the fallback (the decoy).
    const direct = await run("curl", [
      "-sS",
      "--max-time",
      "10",
      "-i",
      `http://127.0.0.1:${pair.serverPort}/`,
    ]);
    assert.match(text(direct), /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text(direct), /Welcome to nginx!/);
    const refusals = pair.serverEvents.of("refusal");
    assert.deepEqual(refusals.map((e) => [e.reason, e.detail]), [[
      "probe",
      "not a WebSocket upgrade at ws.path",
    ]]);
  },
);

test.slow(
  "through nginx: the session survives nginx -s reload (the link drops and resumes) with the download intact",
  {
    ignore: !haveNginx,
  },
  async () => {
    await using target = await startHttpTarget();
    const { pair, nginx } = await pairBehindNginx();
    await using _pair = pair;
    const n = 24 * MiB;
    // A rate-limited download that is still running when nginx reloads.
    const download = curlDownload(pair.socksPort, `${target.url}/bytes/${n}`, {
      timeoutMs: 120_000,
      limitRate: "4M",
    });
    await pair.serverEvents.waitFor("stream_open", { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1_000));
    await nginx.reload();
    // worker_shutdown_timeout 1s: the old worker drops the WebSocket; the client resumes through the new one.
    const resumed = await pair.serverEvents.waitFor("resume", { timeoutMs: 30_000 });
    assert.equal(resumed[0]!.user, "alice");
    const r = await withDeadline(download, 150_000, "the download across the reload");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.sha256, expectedSha256(n));
    assert.equal(pair.serverEvents.of("session_start").length, 1, "one session throughout");
    assert.ok(pair.clientEvents.of("link_down").length >= 1, "the link dropped");
    assert.equal(pair.serverEvents.of("login").length, 2, "a login and a resumption");
  },
);

test.slow(
  "behind HAProxy (TCP mode, send-proxy-v2) with proxy_protocol: the server sees the real client address; a connection without the header is a probe",
  {
    ignore: !haveHaproxy,
  },
  async () => {
    await using target = await startHttpTarget();
    await using pair = await startPair({
      serverYaml: "proxy_protocol: true",
      // The client reaches HAProxy over ::1; HAProxy reaches the server over 127.0.0.1.
      via: (s) => startHaproxy({ hostname: "::1", upstreamPort: s.port }),
      url: (_s, via) => `tls://[::1]:${via!.port}`,
    });
    const n = 8 * MiB;
    const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.sha256, expectedSha256(n));
    // Logins, sessions and logs carry the address from the header, not HAProxy's.
    assert.deepEqual(pair.serverEvents.of("login").map((e) => e.remote), ["::1"]);
    assert.deepEqual(pair.serverEvents.of("session_start").map((e) => e.peer), ["::1"]);
    assert.ok(pair.logs.grep(/\[server.*::1/).length > 0, "the log names the client's address");
    // Straight to the server, bypassing HAProxy: no header, so a probe for the fallback.
    const direct = await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort });
    try {
      await direct.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      const refusal = await pair.serverEvents.waitFor("refusal", { timeoutMs: 10_000 });
      assert.equal(refusal[0]!.reason, "probe");
      assert.match(refusal[0]!.detail, /^PROXY v2: no PROXY v2 signature$/);
      assert.equal(refusal[0]!.remote, "127.0.0.1");
    } finally {
      direct.close();
    }
    assert.equal(pair.serverEvents.of("login").length, 1);
  },
);

test.slow("headless Chromium loads a page and its images through nginx and the ws transport", {
  ignore: !haveNginx || !await hasChromium(),
}, () => loadPage("127.0.0.1", () => pairBehindNginx().then(({ pair }) => pair)));

test("transport wss without a front: the server's own TLS, exact bytes, and its other paths get the decoy over TLS", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ transport: "wss" });
  assert.equal(pair.profile.transport, "wss");
  assert.equal(pair.profile.path, WS_PATH);
  const n = 4 * MiB;
  const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.sha256, expectedSha256(n));
  const page = await run("curl", [
    "-sS",
    "--max-time",
    "10",
    "--cacert",
    join(pair.dir, "tls", "ca.crt"),
    "--resolve",
    `localhost:${pair.serverPort}:127.0.0.1`,
    `https://localhost:${pair.serverPort}${WS_PATH}`,
  ]);
  assert.equal(page.code, 0, page.stderr);
  assert.match(text(page), /404 Not Found/, "a plain GET of the path is the decoy's");
  // curl chose HTTP/2: no WebSocket client does (they ask http/1.1 only), so the decoy at once.
  assert.deepEqual(
    pair.serverEvents.of("refusal").map((e) => e.detail),
    ["an HTTP/2 (ALPN h2) visitor"],
  );
  const http1 = await run("curl", [
    "-sS",
    "--http1.1",
    "--max-time",
    "10",
    "--cacert",
    join(pair.dir, "tls", "ca.crt"),
    "--resolve",
    `localhost:${pair.serverPort}:127.0.0.1`,
    `https://localhost:${pair.serverPort}${WS_PATH}`,
  ]);
  assert.equal(http1.code, 0, http1.stderr);
  assert.match(text(http1), /404 Not Found/, "a plain HTTP/1.1 GET of the path is the decoy's");
  assert.equal(
    pair.serverEvents.of("refusal").at(-1)?.detail,
    "not a WebSocket upgrade at ws.path",
  );
});
