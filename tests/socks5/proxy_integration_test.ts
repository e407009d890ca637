/**
 * The pure SOCKS5/HTTP CONNECT cores driven over real loopback sockets by
 * the reference direct proxy, with an independent client.
 */
import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import { Reply } from "../../lib/socks5/mod.ts";
import { writeAll } from "../../lib/transport/mod.ts";
import { startDirectProxy } from "../support/direct_proxy.ts";
import { expectedSha256, rawHttpRequest, startHttpTarget, toHex } from "../support/http_target.ts";
import {
  httpConnect,
  HttpConnectError,
  readExact,
  socksConnect,
  SocksReplyError,
} from "../support/socks_client.ts";
import { test } from "../support/deadline.ts";

const te = new TextEncoder();
const td = new TextDecoder();

function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

test("SOCKS5 CONNECT to 127.0.0.1, ::1 and localhost carries 1 MB intact", async () => {
  await using target4 = await startHttpTarget();
  await using target6 = await startHttpTarget({ hostname: "::1" });
  await using proxy = startDirectProxy({ mode: "socks5" });
  for (
    const [host, port] of [["127.0.0.1", target4.port], ["::1", target6.port], [
      "localhost",
      target4.port,
    ]] as const
  ) {
    const conn = await socksConnect(proxy.port, host, port);
    const res = await rawHttpRequest(conn, { path: "/bytes/1000000" });
    conn.close();
    assert.equal(res.status, 200, host);
    assert.equal(toHex(sha256(res.body)), expectedSha256(1_000_000), host);
  }
  assert.deepEqual(proxy.requests.map((r) => [r.addressType, r.host]), [
    ["ipv4", "127.0.0.1"],
    ["ipv6", "::1"],
    ["domain", "localhost"],
  ]);
  assert.deepEqual(proxy.outcomes, [0, 0, 0]);
});

test("SOCKS5 with RFC 1929 users: right password passes, wrong one gets 01 01", async () => {
  await using target = await startHttpTarget();
  await using proxy = startDirectProxy({
    mode: "socks5",
    auth: { users: new Map([["alice", "pw"]]) },
  });
  const conn = await socksConnect(proxy.port, "127.0.0.1", target.port, {
    username: "alice",
    password: "pw",
  });
  assert.equal(
    td.decode((await rawHttpRequest(conn, { path: "/hello" })).body),
    "hello from target\n",
  );
  conn.close();
  await assert.rejects(
    socksConnect(proxy.port, "127.0.0.1", target.port, { username: "alice", password: "nope" }),
    (e: unknown) => e instanceof SocksReplyError && e.reply === 0x101,
  );
  await assert.rejects(
    socksConnect(proxy.port, "127.0.0.1", target.port),
    (e: unknown) => e instanceof SocksReplyError && e.reply === 0xff,
  );
});

test("SOCKS5 replies 5 for a refused port, 2 for a refused route, 7 for BIND", async () => {
  await using proxy = startDirectProxy({ mode: "socks5", allow: (r) => r.port !== 9 });
  await assert.rejects(
    socksConnect(proxy.port, "127.0.0.1", closedPort()),
    (e: unknown) => e instanceof SocksReplyError && e.reply === Reply.CONNECTION_REFUSED,
  );
  await assert.rejects(
    socksConnect(proxy.port, "127.0.0.1", 9),
    (e: unknown) => e instanceof SocksReplyError && e.reply === Reply.NOT_ALLOWED,
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  await writeAll(conn, Uint8Array.of(5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80));
  assert.deepEqual(await readExact(conn, 12), Uint8Array.of(5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0));
  assert.equal(await conn.read(new Uint8Array(1)), null);
  conn.close();
});

test("SOCKS5 pipelined greeting, request and HTTP request in one write", async () => {
  await using target = await startHttpTarget();
  await using proxy = startDirectProxy({ mode: "socks5" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  const http = te.encode("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  await writeAll(
    conn,
    Uint8Array.of(5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, target.port >> 8, target.port & 0xff, ...http),
  );
  const head = await readExact(conn, 12);
  assert.deepEqual(head.subarray(0, 5), Uint8Array.of(5, 0, 5, 0, 0));
  let text = "";
  const buf = new Uint8Array(4096);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    text += td.decode(buf.subarray(0, n));
  }
  conn.close();
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(text.endsWith("\r\n\r\nhello from target\n"));
});

test("HTTP CONNECT: 200 and tunnel, 502 refused, 407 without credentials, 405 for GET", async () => {
  await using target = await startHttpTarget();
  await using proxy = startDirectProxy({ mode: "http" });
  const conn = await httpConnect(proxy.port, "127.0.0.1", target.port);
  const res = await rawHttpRequest(conn, { path: "/bytes/70000" });
  conn.close();
  assert.equal(toHex(sha256(res.body)), expectedSha256(70000));
  await assert.rejects(
    httpConnect(proxy.port, "127.0.0.1", closedPort()),
    (e: unknown) =>
      e instanceof HttpConnectError && e.status === 502 && /Connection: close/.test(e.head),
  );
  const v6 = await httpConnect(proxy.port, "::1", closedPort()).catch((e: HttpConnectError) =>
    e.status
  );
  assert.equal(v6, 502);
  await using authed = startDirectProxy({ mode: "http", auth: { users: new Map([["u", "p"]]) } });
  await assert.rejects(
    httpConnect(authed.port, "127.0.0.1", target.port),
    (e: unknown) => e instanceof HttpConnectError && e.status === 407,
  );
  (await httpConnect(authed.port, "127.0.0.1", target.port, { username: "u", password: "p" }))
    .close();
  const get = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  const r = await rawHttpRequest(get, { path: `http://127.0.0.1:${target.port}/hello` });
  get.close();
  assert.equal(r.status, 405);
  assert.equal(r.headers.get("allow"), "CONNECT");
});
