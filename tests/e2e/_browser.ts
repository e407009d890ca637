/**
 * Headless Chromium through a pair's SOCKS5 port, kept on loopback:
 * `<-loopback>` removes its implicit proxy bypass for 127.0.0.1, its own
 * resolver answers nothing, background services are off, and the tunnel
 * user may only reach loopback anyway. Used by browser_test.ts and
 * fronts_test.ts.
 *
 * Exports: `hasChromium()`, `chromiumFlags(profile)`, `loadPage(host, start?)`.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { startHttpTarget } from "../support/http_target.ts";
import { type Pair, run, startPair, text } from "./_harness.ts";

/** Whether `chromium --version` runs. */
export async function hasChromium(): Promise<boolean> {
  try {
    return (await run("chromium", ["--version"], { timeoutMs: 30_000 })).code === 0;
  } catch {
    return false;
  }
}

/**
 * Headless Chromium's flags for a run with its profile in `profile`: no
 * sandbox or GPU, no QUIC, no background services, nothing but what the
 * test asks for.
 */
export function chromiumFlags(profile: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--metrics-recording-only",
    `--user-data-dir=${join(profile, "data")}`,
  ];
}

/** Chromium's proxy flags for a pair: by default its SOCKS5 port, without the loopback bypass. */
export type ProxyFlags = (pair: Pair) => string[];

const SOCKS_FLAGS: ProxyFlags = (pair) => [
  `--proxy-server=socks5://127.0.0.1:${pair.socksPort}`,
  "--proxy-bypass-list=<-loopback>",
];

/**
 * Loads the target's `/page` at `host` in headless Chromium through the
 * SOCKS5 port of the pair `start` makes (default: a plain pair), or as
 * `proxy` tells it (e.g. a PAC file), and checks that the page and its five
 * images came through the server.
 */
export async function loadPage(
  host: string,
  start: () => Promise<Pair> = () => startPair(),
  proxy: ProxyFlags = SOCKS_FLAGS,
): Promise<void> {
  await using target = await startHttpTarget({
    hostname: host === "localhost" ? "127.0.0.1" : host,
  });
  await using pair = await start();
  const profile = await Deno.makeTempDir({ prefix: "nitrosocks-chromium-" });
  try {
    const r = await run("chromium", [
      ...chromiumFlags(profile),
      ...proxy(pair),
      "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
      "--virtual-time-budget=10000",
      "--dump-dom",
      `http://${host}:${target.port}/page`,
    ], {
      timeoutMs: 90_000,
      env: {
        HOME: profile,
        XDG_CONFIG_HOME: join(profile, "config"),
        XDG_CACHE_HOME: join(profile, "cache"),
      },
    });
    assert.equal(r.code, 0, r.stderr.slice(-4000));
    const dom = text(r);
    assert.match(
      dom,
      /<h1>Test page<\/h1>/,
      r.stderr.split("\n").filter((l) => !/dbus/.test(l)).join("\n").slice(-3000),
    );
    assert.equal(dom.match(/<img /g)?.length, 5, dom);

    // The target served the page and every image, and the NitroSocks
    // server is who dialed it.
    const paths = target.requests.map((q) => q.path);
    assert.ok(paths.includes("/page"), paths.join(" "));
    for (let k = 1; k <= 5; k++) {
      assert.equal(paths.filter((p) => p === `/img/${k}.png`).length, 1, `image ${k}: ${paths}`);
    }
    const dialed = pair.serverEvents.of(
      "stream_open",
      (e) => e.target === `${host}:${target.port}`,
    );
    assert.ok(dialed.length >= 1, "the server dialed the target for the browser");
    assert.ok(pair.serverStreams() >= dialed.length);
    const sent = [...pair.server.sessions].reduce((n, s) => n + s.stats.bytesOut, 0);
    assert.ok(sent > 1000, `the server sent the page and images through the tunnel (${sent} B)`);
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
}
