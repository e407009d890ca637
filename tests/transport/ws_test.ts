import assert from "node:assert/strict";
import {
  acceptProxyV2,
  dialWs,
  getTransport,
  type TransportConn,
  type TransportListener,
  writeAll,
  WsConn,
} from "../../lib/transport/mod.ts";
import {
  closePayload,
  encodeFrame,
  FrameDecoder,
  Opcode,
  parseHttpHead,
  PROXY_V2_SIGNATURE,
  upgradeResponse,
} from "../../lib/fronting/mod.ts";
import { createTlsFixture } from "../support/certs.ts";
import { test, withDeadline } from "../support/deadline.ts";
import { closeQuietly, readToEnd } from "../support/io.ts";
import { echo, serveConnections } from "../support/serve.ts";

const fixture = await createTlsFixture(["localhost", "127.0.0.1"]);
const MS = 10_000;
const te = new TextEncoder();

async function readExactly(conn: { read(p: Uint8Array): Promise<number | null> }, n: number) {
  const all = new Uint8Array(n);
  let o = 0;
  while (o < n) {
    const r = await conn.read(all.subarray(o));
    if (r === null) throw new Error(`ended after ${o} of ${n} bytes`);
    o += r;
  }
  return all;
}

async function sha256(b: Uint8Array): Promise<string> {
  return Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", b.slice())),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");
}

/** The first accepted connection of `listener`. */
async function firstConn(listener: TransportListener): Promise<TransportConn> {
  for await (const c of listener) return c;
  throw new Error("listener closed");
}

for (const name of ["ws", "wss"]) {
  test(`the ${name} transport carries 2 MiB both ways exactly (SHA-256), frames split at 64 KiB`, async () => {
    const t = getTransport(name);
    const listener = await t.listen({
      hostname: "127.0.0.1",
      port: 0,
      path: "/assets/socket",
      certPem: fixture.server.certPem,
      keyPem: fixture.server.keyPem,
    });
    const served = serveConnections(listener, (c) => echo(c));
    try {
      const conn = await withDeadline(
        t.dial({
          hostname: "127.0.0.1",
          port: listener.addr.port,
          serverName: "localhost",
          path: "/assets/socket",
          caPems: [fixture.ca.certPem],
          timeoutMs: 5_000,
        }),
        MS,
        `${name} dial and upgrade`,
      );
      try {
        const payload = crypto.getRandomValues(new Uint8Array(65536)).slice();
        const big = new Uint8Array(2 * 1024 * 1024);
        for (let o = 0; o < big.length; o += payload.length) big.set(payload, o);
        big[12345] = big[12345]! ^ 0xff;
        const writing = writeAll(conn, big).then(() => conn.closeWrite());
        const back = await withDeadline(readToEnd(conn), MS, `${name} echo of 2 MiB`);
        await writing;
        assert.equal(back.length, big.length);
        assert.equal(await sha256(back), await sha256(big));
      } finally {
        conn.close();
      }
    } finally {
      await withDeadline(served.close(), MS, "accept loop to end");
    }
  });
}

test("the ws listener refuses other paths, plain requests, garbage and silence to the fallback, bytes intact", async () => {
  const listener = await getTransport("ws").listen({ hostname: "127.0.0.1", port: 0, path: "/ws" });
  try {
    const cases: [string, Uint8Array, RegExp][] = [
      ["another path", te.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), /not a WebSocket upgrade/],
      [
        "an upgrade at another path",
        te.encode(
          "GET /wss HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ),
        /not a WebSocket upgrade/,
      ],
      [
        "a TLS ClientHello",
        new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]),
        /not an HTTP request/,
      ],
      ["a half request, then close", te.encode("GET /ws HTTP/1.1\r\nHo"), /closed before/],
    ];
    for (const [what, bytes, reason] of cases) {
      const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      await writeAll(raw, bytes);
      if (/close/.test(what)) await raw.closeWrite();
      const conn = await withDeadline(firstConn(listener), MS, `${what}: accepted`);
      try {
        assert.match(conn.refused ?? "", reason, what);
        assert.ok(!(conn instanceof WsConn), what);
        const got = await withDeadline(readExactly(conn, bytes.length), MS, `${what}: bytes`);
        assert.deepEqual(got, bytes, what);
      } finally {
        conn.close();
        raw.close();
      }
    }
  } finally {
    listener.close();
  }
});

test("a stalled request is refused at the upgrade deadline, bytes intact (a late read included)", async () => {
  const { upgradeAccepted } = await import("../../lib/transport/ws.ts");
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const accepted = await l.accept();
  try {
    await writeAll(raw, te.encode("GET /ws HTTP/1.1\r\n"));
    const conn = await withDeadline(
      upgradeAccepted(accepted, { path: "/ws", deadlineMs: 300 }),
      MS,
      "upgradeAccepted to give up",
    );
    assert.match(conn.refused ?? "", /no complete HTTP request in time/);
    await writeAll(raw, te.encode("Host: late\r\n\r\n"));
    const got = await withDeadline(readExactly(conn, 32), MS, "every byte");
    assert.equal(new TextDecoder().decode(got), "GET /ws HTTP/1.1\r\nHost: late\r\n\r\n");
  } finally {
    accepted.close();
    raw.close();
  }
});

test("dialWs() masks each frame with a fresh key, answers a ping, and reads the server's Close as the end", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dialing = dialWs({ hostname: "127.0.0.1", port: l.addr.port, path: "/p", secure: false });
  const server = await l.accept();
  try {
    const buf = new Uint8Array(4096);
    let have = 0;
    let head;
    for (;;) {
      have += (await server.read(buf.subarray(have)))!;
      const r = parseHttpHead(buf.subarray(0, have));
      if (r.type === "head") {
        head = r.head;
        break;
      }
    }
    assert.equal(head.start.join(" "), "GET /p HTTP/1.1");
    assert.equal(head.headers.get("host"), `127.0.0.1:${l.addr.port}`);
    await writeAll(server, te.encode(upgradeResponse(head.headers.get("sec-websocket-key")!)));
    const conn = await withDeadline(dialing, MS, "dial");
    await writeAll(conn, te.encode("one"));
    await writeAll(conn, te.encode("two"));
    // Two raw frames: masked, different keys, payload unmasks to what was written.
    const raw = await readExactly(server, 2 * (2 + 4 + 3));
    const f1 = raw.subarray(0, 9), f2 = raw.subarray(9);
    for (const f of [f1, f2]) assert.equal(f[0], 0x82), assert.equal(f[1], 0x83);
    assert.notDeepEqual(f1.subarray(2, 6), f2.subarray(2, 6));
    const d = new FrameDecoder({ role: "server" });
    const e1 = d.next(raw.slice(), 0);
    assert.ok(e1.type === "data" && new TextDecoder().decode(e1.bytes) === "one");
    // A ping between data frames is answered with a masked pong of the same payload.
    await writeAll(server, encodeFrame(Opcode.PING, te.encode("hi")));
    await writeAll(server, encodeFrame(Opcode.BINARY, te.encode("data")));
    assert.equal(new TextDecoder().decode(await readExactly(conn, 4)), "data");
    const pong = await readExactly(server, 2 + 4 + 2);
    const e2 = new FrameDecoder({ role: "server" }).next(pong, 0);
    assert.ok(e2.type === "pong" && new TextDecoder().decode(e2.payload) === "hi");
    // The server's Close ends the stream and is answered with a Close.
    await writeAll(server, encodeFrame(Opcode.CLOSE, closePayload(1000)));
    assert.equal(await conn.read(new Uint8Array(10)), null);
    const close = await readExactly(server, 2 + 4 + 2);
    const e3 = new FrameDecoder({ role: "server" }).next(close, 0);
    assert.ok(e3.type === "close" && e3.code === 1000);
    await assert.rejects(conn.write(te.encode("x")), /the Close was sent/);
    conn.close();
  } finally {
    server.close();
  }
});

test("dialWs() says what answered instead of an upgrade", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dialing = dialWs({
    hostname: "127.0.0.1",
    port: l.addr.port,
    path: "/tunnel",
    secure: false,
  });
  const server = await l.accept();
  try {
    await server.read(new Uint8Array(4096));
    await writeAll(server, te.encode("HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\n"));
    await assert.rejects(
      dialing,
      (e: unknown) =>
        e instanceof Deno.errors.InvalidData &&
        /answered HTTP 404 Not Found at \/tunnel instead of a WebSocket upgrade/.test(e.message),
    );
  } finally {
    server.close();
  }
});

test("a WsConn refuses a protocol violation with a Close 1002 and an error", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const accepted = await l.accept();
  const conn = new WsConn(accepted, { role: "server" });
  try {
    await writeAll(client, encodeFrame(Opcode.BINARY, te.encode("unmasked")));
    await assert.rejects(
      conn.read(new Uint8Array(64)),
      /WebSocket protocol error: unmasked client frame/,
    );
    const close = await readExactly(client, 4);
    assert.deepEqual(close, new Uint8Array([0x88, 0x02, 0x03, 0xea]));
  } finally {
    conn.close();
    client.close();
  }
});

function proxyHeader(src: [number, number, number, number], port: number): Uint8Array {
  return new Uint8Array([
    ...PROXY_V2_SIGNATURE,
    0x21,
    0x11,
    0,
    12,
    ...src,
    127,
    0,
    0,
    1,
    port >> 8,
    port & 0xff,
    0x20,
    0xfb,
  ]);
}

test("with proxy_protocol the tcp listener takes the client address from the header; garbage is refused", async () => {
  const listener = await getTransport("tcp").listen({
    hostname: "127.0.0.1",
    port: 0,
    proxyProtocol: true,
  });
  try {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await writeAll(
      raw,
      new Uint8Array([...proxyHeader([203, 0, 113, 9], 40000), ...te.encode("hello")]),
    );
    const conn = await withDeadline(firstConn(listener), MS, "accepted");
    assert.equal(conn.refused, undefined);
    assert.deepEqual(conn.remoteAddr, { transport: "tcp", hostname: "203.0.113.9", port: 40000 });
    assert.equal(new TextDecoder().decode(await readExactly(conn, 5)), "hello");
    conn.close();
    raw.close();
    const raw2 = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await writeAll(raw2, te.encode("GET / HTTP/1.1\r\n\r\n"));
    const conn2 = await withDeadline(firstConn(listener), MS, "accepted");
    assert.match(conn2.refused ?? "", /PROXY v2: no PROXY v2 signature/);
    assert.equal((conn2.remoteAddr as Deno.NetAddr).hostname, "127.0.0.1");
    assert.equal(new TextDecoder().decode(await readExactly(conn2, 18)), "GET / HTTP/1.1\r\n\r\n");
    conn2.close();
    raw2.close();
  } finally {
    listener.close();
  }
});

test("with proxy_protocol the tls listener reads the header before TLS", async () => {
  const listener = await getTransport("tls").listen({
    hostname: "127.0.0.1",
    port: 0,
    certPem: fixture.server.certPem,
    keyPem: fixture.server.keyPem,
    proxyProtocol: true,
  });
  try {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await writeAll(raw, proxyHeader([198, 51, 100, 7], 50000));
    const tls = await Deno.startTls(raw, { hostname: "localhost", caCerts: [fixture.ca.certPem] });
    const accepting = firstConn(listener);
    await writeAll(tls, te.encode("ping"));
    const conn = await withDeadline(accepting, MS, "accepted after TLS");
    assert.deepEqual(conn.remoteAddr, { transport: "tcp", hostname: "198.51.100.7", port: 50000 });
    assert.equal(new TextDecoder().decode(await readExactly(conn, 4)), "ping");
    await writeAll(conn, te.encode("pong"));
    assert.equal(new TextDecoder().decode(await readExactly(tls, 4)), "pong");
    conn.close();
    tls.close();
    // Without the header (a ClientHello straight away): refused, the bytes readable as sent.
    const raw2 = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const hello = new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00]);
    await writeAll(raw2, hello);
    const refused = await withDeadline(firstConn(listener), MS, "refused");
    assert.match(refused.refused ?? "", /^PROXY v2: no PROXY v2 signature$/);
    assert.deepEqual(await readExactly(refused, hello.length), hello);
    refused.close();
    raw2.close();
  } finally {
    listener.close();
  }
});

test("acceptProxyV2() refuses a header that stops short at its deadline", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const accepted = await l.accept();
  try {
    await writeAll(raw, PROXY_V2_SIGNATURE);
    const conn = await withDeadline(acceptProxyV2(accepted, 200), MS, "give up");
    assert.match(conn.refused ?? "", /no complete header in time/);
    assert.deepEqual(await readExactly(conn, 12), PROXY_V2_SIGNATURE);
  } finally {
    closeQuietly(accepted);
    raw.close();
  }
});

test("a WsConn never interleaves frames: concurrent writes and a pong come out as whole frames", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const accepted = await l.accept();
  const conn = new WsConn(raw, { role: "client" });
  try {
    const parts = [200_000, 70_000, 5].map((n, i) => new Uint8Array(n).fill(i + 1));
    await writeAll(accepted, encodeFrame(Opcode.PING, te.encode("p")));
    // The ping is read (and its pong queued) while the writes are in flight.
    const reading = conn.read(new Uint8Array(10));
    const writes = parts.map((p) => writeAll(conn, p));
    const total = parts.reduce((n, p) => n + p.length, 0);
    const d = new FrameDecoder({ role: "server" });
    const got: number[] = [];
    let pongs = 0;
    const buf = new Uint8Array(65536);
    while (got.length < total || pongs === 0) {
      const n = await withDeadline(accepted.read(buf), MS, "frames");
      if (n === null) throw new Error("ended early");
      let o = 0;
      for (;;) {
        const e = d.next(buf.subarray(0, n), o);
        if (e.type === "more") break;
        assert.ok(e.type === "data" || e.type === "pong", JSON.stringify(e));
        if (e.type === "data") got.push(...e.bytes);
        else pongs++;
        o = e.end;
      }
    }
    await Promise.all(writes);
    assert.equal(pongs, 1);
    // Concurrent writers' frames may alternate (as on any socket); each frame is whole.
    for (const [i, p] of parts.entries()) {
      assert.equal(got.filter((b) => b === i + 1).length, p.length, `part ${i}`);
    }
    await writeAll(accepted, encodeFrame(Opcode.CLOSE, closePayload(1000)));
    assert.equal(await withDeadline(reading, MS, "the Close"), null);
  } finally {
    conn.close();
    accepted.close();
  }
});

test("with proxy_protocol the ws listener reads the header, then the upgrade; no header is refused before HTTP", async () => {
  const listener = await getTransport("ws").listen({
    hostname: "127.0.0.1",
    port: 0,
    path: "/ws",
    proxyProtocol: true,
  });
  try {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await writeAll(raw, proxyHeader([192, 0, 2, 44], 61000));
    const dialing = (async () => {
      // The client side of the upgrade over the same socket, by hand.
      await writeAll(
        raw,
        te.encode(
          "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ),
      );
    })();
    const conn = await withDeadline(firstConn(listener), MS, "upgraded");
    await dialing;
    assert.ok(conn instanceof WsConn);
    assert.deepEqual(conn.remoteAddr, { transport: "tcp", hostname: "192.0.2.44", port: 61000 });
    const answer = new TextDecoder().decode(await readExactly(raw, 129));
    assert.match(answer, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    conn.close();
    raw.close();
    const raw2 = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const upgrade = te.encode("GET /ws HTTP/1.1\r\n\r\n");
    await writeAll(raw2, upgrade);
    const refused = await withDeadline(firstConn(listener), MS, "refused");
    assert.match(refused.refused ?? "", /^PROXY v2: /);
    assert.deepEqual(await readExactly(refused, upgrade.length), upgrade);
    refused.close();
    raw2.close();
  } finally {
    listener.close();
  }
});
