/**
 * The client's SOCKS5 port is also an HTTP proxy (a mixed port, sniffed
 * from the first byte): curl with `-x http://` through CONNECT (`-p`) and
 * with absolute-form requests, the same SOCKS5 users as Basic
 * proxy credentials, and SOCKS5 still served on the same port.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { expectedSha256, startHttpTarget, toHex } from "../support/http_target.ts";
import { run, startPair } from "./_harness.ts";
import { test } from "../support/deadline.ts";

async function sha256(b: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>)));
}

test("curl -p -x http:// on the SOCKS5 port: CONNECT through the tunnel, SOCKS5 still served", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const n = 1024 * 1024 + 17;
  const r = await run("curl", [
    "-sS",
    "--max-time",
    "60",
    "-p",
    "-x",
    `http://127.0.0.1:${pair.socksPort}`,
    `${target.url}/bytes/${n}`,
  ], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await sha256(r.stdout), expectedSha256(n));
  const socks = await run("curl", [
    "-sS",
    "--max-time",
    "60",
    "--socks5-hostname",
    `127.0.0.1:${pair.socksPort}`,
    `${target.url}/bytes/1000`,
  ], { timeoutMs: 90_000 });
  assert.equal(socks.code, 0, socks.stderr);
  assert.equal(await sha256(socks.stdout), expectedSha256(1000));
  assert.equal(pair.serverEvents.of("stream_open").length, 2);
});

test("the mixed port asks for the SOCKS5 users' credentials over HTTP too", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ socksUsers: { carol: "pa55word" } });
  const args = (user: string[]) => [
    "-sS",
    "--max-time",
    "60",
    "-p",
    "-x",
    `http://127.0.0.1:${pair.socksPort}`,
    ...user,
    "-o",
    "/dev/null",
    "-w",
    "%{http_connect}",
    `${target.url}/bytes/10`,
  ];
  const none = await run("curl", args([]), { timeoutMs: 90_000 });
  assert.equal(new TextDecoder().decode(none.stdout), "407");
  const ok = await run("curl", args(["-U", "carol:pa55word"]), { timeoutMs: 90_000 });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(new TextDecoder().decode(ok.stdout), "200");
});
