import assert from "node:assert/strict";
import { dial, dialTls, listen, writeAll } from "../../lib/transport/mod.ts";
import { replyForError } from "../../lib/socks5/mod.ts";
import { createCa, createTlsFixture, issueCert } from "../support/certs.ts";
import { test } from "../support/deadline.ts";

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
  const done = (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          alpns.push((await conn.handshake()).alpnProtocol);
          const buf = new Uint8Array(4096);
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            await writeAll(conn, buf.subarray(0, n));
          }
          await conn.closeWrite();
        } catch {
          // Client rejected us or went away.
        } finally {
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    alpns,
    async close() {
      listener.close();
      await done;
    },
  };
}

async function roundTrip(conn: Deno.Conn, text: string): Promise<string> {
  await writeAll(conn, new TextEncoder().encode(text));
  await conn.closeWrite();
  const chunks: number[] = [];
  const buf = new Uint8Array(1024);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(...buf.subarray(0, n));
  }
  return new TextDecoder().decode(Uint8Array.from(chunks));
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
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })().catch(() => {});
  try {
    const t0 = performance.now();
    const e = await rejection(dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: silent.addr.port,
      caPems: [fixture.ca.certPem],
      timeoutMs: 300,
    }));
    assert.ok(performance.now() - t0 < 3000);
    assert.ok(e instanceof Deno.errors.TimedOut);
    assert.equal(e.message, `timed out after 300 ms connecting to 127.0.0.1:${silent.addr.port}`);
    assert.equal(replyForError(e), 4);
    const e2 = await rejection(dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: silent.addr.port,
      timeoutMs: 1000,
    }));
    assert.match(e2.message, /^timed out after 1 s connecting to /);
  } finally {
    silent.close();
    for (const c of held) c.close();
    await accepting;
  }
});

test("dial() rejects with the caller's abort reason", async () => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })().catch(() => {});
  try {
    const ac = new AbortController();
    const p = dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: silent.addr.port,
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
    silent.close();
    for (const c of held) c.close();
    await accepting;
  }
});

test("dial() TLS to a plain TCP server explains the failed handshake", async () => {
  const plain = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const c of plain) {
      await c.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n")).catch(() => {});
      c.close();
    }
  })().catch(() => {});
  try {
    const e = await rejection(
      dial({ transport: "tls", hostname: "127.0.0.1", port: plain.addr.port }),
    );
    assert.match(e.message, /^TLS handshake with 127\.0\.0\.1:\d+ failed: /);
  } finally {
    plain.close();
    await serving;
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
  await assert.rejects(
    dial({ transport: "tcp", hostname: "127.0.0.1", port: 1, timeoutMs: 0 }),
    RangeError,
  );
});
