/**
 * The PAC file on the client's mixed port: served at /proxy.pac without
 * proxy credentials, pointing at the port it was fetched from, and used by
 * headless Chromium (`--proxy-pac-url`) to load a page through the tunnel.
 *
 * Chromium never applies a PAC file's answer to loopback URLs (its
 * implicit bypass rules, which `<-loopback>` lifts only for fixed proxy
 * settings), so the page is served on this machine's own non-loopback
 * address, which alice's routes name.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { test } from "../support/deadline.ts";
import { hasChromium, loadPage } from "./_browser.ts";
import { LOOPBACK_ROUTES, run, startPair, text } from "./_harness.ts";

const chromium = await hasChromium();

/** An IPv4 address of this machine outside loopback, or undefined. */
const ownAddress = Deno.networkInterfaces().find((i) =>
  i.family === "IPv4" && !i.address.startsWith("127.")
)?.address;

test.slow({
  name: "headless Chromium with --proxy-pac-url loads a page and its images through the tunnel",
  ignore: !chromium || ownAddress === undefined,
  fn: () =>
    loadPage(
      ownAddress!,
      () => startPair({ routes: [...LOOPBACK_ROUTES, `${ownAddress}:*`] }),
      (pair) => [`--proxy-pac-url=http://127.0.0.1:${pair.socksPort}/proxy.pac`],
    ),
});

test("GET /proxy.pac on the mixed port needs no proxy credentials and names the port it came in on", async () => {
  await using pair = await startPair({ socksUsers: { carol: "pa55word" } });
  const url = `http://127.0.0.1:${pair.socksPort}/proxy.pac`;
  const r = await run("curl", ["-sS", "-i", "--max-time", "30", url], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const [head, body] = text(r).split("\r\n\r\n");
  assert.match(head!, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head!, /\r\nContent-Type: application\/x-ns-proxy-autoconfig\r\n/);
  // With SOCKS5 users, browsers (which send no SOCKS5 credentials) get the HTTP proxy only.
  const find = new Function(`${body}; return FindProxyForURL("http://a.test/", "a.test");`);
  assert.equal(find(), `PROXY 127.0.0.1:${pair.socksPort}`);
  // Anything else on the port still asks for credentials, and nothing went to the server.
  const other = await run("curl", [
    "-sS",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "-x",
    url,
    "http://a.test/",
  ], {
    timeoutMs: 60_000,
  });
  assert.equal(text(other), "407");
  assert.equal(pair.serverStreams(), 0);
});
