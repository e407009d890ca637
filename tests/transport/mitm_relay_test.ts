import assert from "node:assert/strict";
import { dial, listen } from "../../lib/transport/mod.ts";
import { createTlsFixture } from "../support/certs.ts";
import { containsBytes, startMitmRelay, startTcpRelay } from "../support/mitm_relay.ts";
import { test } from "../support/deadline.ts";
import { exchange as exchangeBytes } from "../support/io.ts";
import { echo, serveConnections, type Served } from "../support/serve.ts";
import type { Acceptor } from "../../lib/tunnel/listener.ts";

const te = new TextEncoder();
const fixture = await createTlsFixture(["localhost", "127.0.0.1"]);

/** TLS (or TCP) server that answers each read with "echo:" + the bytes. */
function startEchoServer(transport: "tls" | "tcp"): Served {
  const listener: Acceptor<Deno.Conn> = transport === "tls"
    ? listen({
      transport,
      hostname: "127.0.0.1",
      port: 0,
      certPem: fixture.server.certPem,
      keyPem: fixture.server.keyPem,
    })
    : listen({ transport, hostname: "127.0.0.1", port: 0 });
  return serveConnections(listener, (conn) => echo(conn, te.encode("echo:")));
}

/** Sends `text`, half-closes, and returns all the peer answered; closes `conn`. */
async function exchange(conn: Deno.Conn, text: string): Promise<string> {
  return new TextDecoder().decode(await exchangeBytes(conn, te.encode(text), { halfClose: true }));
}

test("startMitmRelay() intercepts TLS: a client trusting the forged CA is read in plaintext", async () => {
  const server = startEchoServer("tls");
  const relay = await startMitmRelay({
    upstream: {
      hostname: "127.0.0.1",
      port: server.port,
      caPem: fixture.ca.certPem,
      serverName: "localhost",
    },
    serverName: "localhost",
  });
  try {
    const conn = await dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: relay.port,
      serverName: "localhost",
      caPems: [relay.caPem],
    });
    assert.equal(await exchange(conn, "plaintext secret"), "echo:plaintext secret");
    assert.ok(containsBytes(relay.seenClientToServer(), te.encode("plaintext secret")));
    assert.ok(containsBytes(relay.seenServerToClient(), te.encode("echo:plaintext secret")));
    assert.equal(relay.connections(), 1);
    assert.notEqual(relay.caPem, fixture.ca.certPem);
  } finally {
    await relay.close();
    await server.close();
  }
});

test("startMitmRelay() is refused by a client that trusts only the real CA", async () => {
  const server = startEchoServer("tls");
  const relay = await startMitmRelay({
    upstream: {
      hostname: "127.0.0.1",
      port: server.port,
      caPem: fixture.ca.certPem,
      serverName: "localhost",
    },
  });
  try {
    await assert.rejects(
      dial({
        transport: "tls",
        hostname: "127.0.0.1",
        port: relay.port,
        caPems: [fixture.ca.certPem],
      }),
      /^InvalidData: TLS certificate not trusted by the profile's CA/,
    );
    assert.equal(relay.seenClientToServer().length, 0);
  } finally {
    await relay.close();
    await server.close();
  }
});

test("startMitmRelay() tamper flips bits before forwarding, after recording", async () => {
  const server = startEchoServer("tcp");
  const relay = await startMitmRelay({
    upstream: { hostname: "127.0.0.1", port: server.port, transport: "tcp" },
    tamper: (dir, chunk, offset) => {
      if (dir === "client_to_server" && offset === 0) chunk[0]! ^= 0x20;
      return chunk;
    },
  });
  try {
    const conn = await dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: relay.port,
      caPems: [relay.caPem],
    });
    assert.equal(await exchange(conn, "abc"), "echo:Abc");
    assert.deepEqual(relay.seenClientToServer(), te.encode("abc"));
  } finally {
    await relay.close();
    await server.close();
  }
});

test("startTcpRelay() sees only ciphertext of a TLS session", async () => {
  const server = startEchoServer("tls");
  const relay = startTcpRelay({ upstream: { hostname: "127.0.0.1", port: server.port } });
  try {
    const conn = await dial({
      transport: "tls",
      hostname: "127.0.0.1",
      port: relay.port,
      caPems: [fixture.ca.certPem],
    });
    assert.equal(await exchange(conn, "plaintext secret"), "echo:plaintext secret");
    const seen = relay.seenClientToServer();
    assert.equal(seen[0], 0x16); // TLS handshake record
    assert.ok(!containsBytes(seen, te.encode("plaintext secret")));
    assert.ok(!containsBytes(relay.seenServerToClient(), te.encode("echo:")));
  } finally {
    await relay.close();
    await server.close();
  }
});

test("startTcpRelay() records plain TCP and honours maxRecordBytes", async () => {
  const server = startEchoServer("tcp");
  await using relay = startTcpRelay({
    upstream: { hostname: "127.0.0.1", port: server.port },
    maxRecordBytes: 4,
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
    assert.equal(await exchange(conn, "hello"), "echo:hello");
    assert.deepEqual(relay.seenClientToServer(), te.encode("hell"));
  } finally {
    await server.close();
  }
});

test("containsBytes() finds a byte string", () => {
  assert.ok(containsBytes(Uint8Array.of(1, 2, 3), Uint8Array.of(2, 3)));
  assert.ok(!containsBytes(Uint8Array.of(1, 2, 3), Uint8Array.of(3, 4)));
  assert.ok(containsBytes(Uint8Array.of(), Uint8Array.of()));
});
