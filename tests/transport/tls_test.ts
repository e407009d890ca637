import assert from "node:assert/strict";
import { dial, dialTls, listen, writeAll } from "../../lib/transport/mod.ts";
import { replyForError } from "../../lib/socks5/mod.ts";
import { createCa, createTlsFixture, issueCert } from "../support/certs.ts";
import { test } from "../support/deadline.ts";
import { readToEnd } from "../support/io.ts";
import { echo, serveConnections, type Served } from "../support/serve.ts";
import { assertRejectsWith } from "../support/assert.ts";

const fixture = await createTlsFixture(["localhost", "127.0.0.1", "::1", "nitro.test"]);

/** A TLS echo server; returns the listener and the ALPN each accepted conn negotiated. */
function startEcho(
  opts: { certPem?: string; keyPem?: string; alpn?: string[]; hostname?: string } = {},
) {
  const listener = listen({
    transport: "tls",
    hostname: opts.hostname ?? "127.0.0.1",
    port: 0,
    certPem: opts.certPem ?? fixture.server.certPem,
    keyPem: opts.keyPem ?? fixture.server.keyPem,
    ...(opts.alpn ? { alpn: opts.alpn } : {}),
  });
  const alpns: (string | null)[] = [];
  const served = serveConnections(listener, async (conn) => {
    try {
      alpns.push((await conn.handshake()).alpnProtocol);
    } catch {
      return; // the client rejected us
    }
    await echo(conn);
  });
  return { port: served.port, alpns, close: served.close };
}

async function roundTrip(conn: Deno.Conn, text: string): Promise<string> {
  await writeAll(conn, new TextEncoder().encode(text));
  await conn.closeWrite();
  return new TextDecoder().decode(await readToEnd(conn));
}

/** A TCP server that accepts and never answers, holding each connection until its peer closes. */
function startSilentServer(): Served {
  return serveConnections(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (c) => {
    await readToEnd(c, { endOnError: true });
  });
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    const v = await p;
    (v as { close?: () => void }).close?.();
  } catch (e) {
    assert.ok(e instanceof Error);
    return e;
  }
  assert.fail("expected a rejection");
}

test("dial() TLS to listen() TLS on 127.0.0.1 verifies the CA and negotiates h2", async () => {
  const echo = startEcho();
  try {
    const conn = await dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: echo.port,
      caPems: [fixture.ca.certPem],
    });
    assert.equal((await conn.handshake()).alpnProtocol, "h2");
    assert.equal(await roundTrip(conn, "hello over tls"), "hello over tls");
    conn.close();
    assert.deepEqual(echo.alpns, ["h2"]);
  } finally {
    await echo.close();
  }
});

test("dial() TLS offers the requested ALPN only; server picks http/1.1", async () => {
  const echo = startEcho();
  try {
    const conn = await dialTls({
      hostname: "127.0.0.1",
      port: echo.port,
      caPems: [fixture.ca.certPem],
      alpn: ["http/1.1"],
    });
    assert.equal((await conn.handshake()).alpnProtocol, "http/1.1");
    conn.close();
  } finally {
    await echo.close();
  }
});

test("dial() TLS over IPv6 loopback with a separate server name", async () => {
  const echo = startEcho({ hostname: "::1" });
  try {
    const conn = await dial({
      transport: "tls",
      hostname: "::1",
      port: echo.port,
      serverName: "nitro.test",
      caPems: [fixture.ca.certPem],
    });
    assert.equal(await roundTrip(conn, "v6"), "v6");
    conn.close();
  } finally {
    await echo.close();
  }
});

test("dial() TLS refuses a certificate from another CA with a clear message", async () => {
  const echo = startEcho();
  const other = await createCa();
  try {
    const e = await rejection(
      dial({ transport: "tls", hostname: "127.0.0.1", port: echo.port, caPems: [other.certPem] }),
    );
    assert.ok(e instanceof Deno.errors.InvalidData);
    assert.match(
      e.message,
      /^TLS certificate not trusted by the profile's CA: 127\.0\.0\.1:\d+ presented/,
    );
    assert.ok(e.cause instanceof Error);
    assert.equal(replyForError(e), 1);
    const noCa = await rejection(
      dial({ transport: "tls", hostname: "127.0.0.1", port: echo.port }),
    );
    assert.match(noCa.message, /^TLS certificate not trusted by the system's root CAs/);
  } finally {
    await echo.close();
  }
});

test("dial() TLS refuses a certificate for another name", async () => {
  const echo = startEcho();
  try {
    const e = await rejection(dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: echo.port,
      serverName: "cdn.example",
      caPems: [fixture.ca.certPem],
    }));
    assert.match(e.message, /^TLS certificate not valid for server name "cdn\.example": /);
  } finally {
    await echo.close();
  }
});

test("dial() TLS refuses an expired certificate", async () => {
  const expired = await issueCert(fixture.ca, {
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    expired: true,
  });
  const echo = startEcho(expired);
  try {
    const e = await rejection(
      dial({
        transport: "tls",
        hostname: "127.0.0.1",
        port: echo.port,
        caPems: [fixture.ca.certPem],
      }),
    );
    assert.match(e.message, /^TLS certificate expired: /);
  } finally {
    await echo.close();
  }
});

test("dial() reports a refused port for TCP and TLS", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  for (const transport of ["tcp", "tls"] as const) {
    const e = await rejection(
      dial({ transport, hostname: "127.0.0.1", port, caPems: [fixture.ca.certPem] }),
    );
    assert.ok(e instanceof Deno.errors.ConnectionRefused, transport);
    assert.equal(e.message, `connection refused by 127.0.0.1:${port}`);
    assert.equal(replyForError(e), 5);
  }
  const v6 = await rejection(dial({ transport: "tcp", hostname: "::1", port }));
  assert.equal(v6.message, `connection refused by [::1]:${port}`);
});

test("dial() TLS times out when the server never answers the handshake", async () => {
  const silent = startSilentServer();
  try {
    const t0 = performance.now();
    const e = await rejection(dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: silent.port,
      caPems: [fixture.ca.certPem],
      timeoutMs: 300,
    }));
    assert.ok(performance.now() - t0 < 3000);
    assert.ok(e instanceof Deno.errors.TimedOut);
    assert.equal(e.message, `timed out after 300 ms connecting to 127.0.0.1:${silent.port}`);
    assert.equal(replyForError(e), 4);
    const e2 = await rejection(dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: silent.port,
      timeoutMs: 1000,
    }));
    assert.match(e2.message, /^timed out after 1 s connecting to /);
  } finally {
    await silent.close();
  }
});

test("dial() rejects with the caller's abort reason", async () => {
  const silent = startSilentServer();
  try {
    const ac = new AbortController();
    const p = dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: silent.port,
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(new Error("shutting down")), 50);
    assert.equal((await rejection(p)).message, "shutting down");
    const pre = AbortSignal.abort(new Error("already"));
    assert.equal(
      (await rejection(dial({ transport: "tcp", hostname: "127.0.0.1", port: 1, signal: pre })))
        .message,
      "already",
    );
  } finally {
    await silent.close();
  }
});

test("dial() TLS to a plain TCP server explains the failed handshake", async () => {
  const plain = serveConnections(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (c) => {
    await c.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n")).catch(() => {});
  });
  try {
    const e = await rejection(
      dial({ transport: "tls", hostname: "127.0.0.1", port: plain.port }),
    );
    assert.ok(e instanceof Deno.errors.InvalidData, String(e));
    assert.match(
      e.message,
      /^127\.0\.0\.1:\d+ does not speak TLS: it answered the TLS handshake with something else \(a plain TCP, HTTP or other service on that port\)$/,
    );
  } finally {
    await plain.close();
  }
});

test("listen() explains a busy port and requires TLS material", () => {
  using first = listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
  const port = first.addr.port;
  assert.throws(
    () => listen({ transport: "tcp", hostname: "127.0.0.1", port }),
    (e: unknown) =>
      e instanceof Deno.errors.AddrInUse &&
      e.message === `Cannot listen on 127.0.0.1:${port}: address already in use`,
  );
  assert.throws(
    () =>
      listen({ transport: "tls", hostname: "127.0.0.1", port: 0, certPem: fixture.server.certPem }),
    /certPem and keyPem are required/,
  );
  assert.throws(
    () =>
      listen({
        transport: "tls",
        hostname: "127.0.0.1",
        port: 0,
        certPem: "garbage",
        keyPem: "garbage",
      }),
    /^.*Cannot listen with TLS on 127\.0\.0\.1:0: /,
  );
});

test("dial() validates its timeout", async () => {
  await assertRejectsWith(
    dial({ transport: "tcp", hostname: "127.0.0.1", port: 1, timeoutMs: 0 }),
    RangeError,
    "Cannot dial: timeout 0 ms is not a positive number",
  );
});
