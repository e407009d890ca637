import assert from "node:assert/strict";
import {
  getTransport,
  registerTransport,
  type Transport,
  type TransportConn,
  type TransportListener,
  transportNames,
  writeAll,
} from "../../lib/transport/mod.ts";
import { createTlsFixture } from "../support/certs.ts";
import { test, withDeadline } from "../support/deadline.ts";
import { echo, serveConnections, type Served } from "../support/serve.ts";

const fixture = await createTlsFixture(["localhost", "127.0.0.1"]);
const DEADLINE_MS = 10_000;

/** Accepts connections and echoes each one until closed. */
function echoServer(listener: TransportListener): Served {
  return serveConnections(listener, (conn) => echo(conn));
}

/** Writes `bytes` and reads the same number back (no half-close: TLS servers close on it). */
async function roundTrip(conn: TransportConn, bytes: Uint8Array): Promise<Uint8Array> {
  const writing = writeAll(conn, bytes);
  const all = new Uint8Array(bytes.length);
  let o = 0;
  while (o < all.length) {
    const n = await conn.read(all.subarray(o));
    if (n === null) throw new Error(`connection ended after ${o} of ${all.length} bytes`);
    o += n;
  }
  await writing;
  return all;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

test("the registry has tls and tcp built in, and names them when asked for another", () => {
  assert.deepEqual(transportNames().slice(0, 2), ["tls", "tcp"]);
  assert.throws(
    () => getTransport("carrier-pigeon"),
    (e: unknown) =>
      e instanceof TypeError && /Unknown transport "carrier-pigeon": expected one of tls, tcp/
        .test(e.message),
  );
});

test("registerTransport() refuses a second registration of a name and a bad name", () => {
  assert.throws(
    () => registerTransport({ ...getTransport("tcp") }),
    (e: unknown) => e instanceof TypeError && /"tcp": already registered/.test(e.message),
  );
  assert.throws(
    () => registerTransport({ ...getTransport("tcp"), name: "Not A Name" }),
    (e: unknown) => e instanceof TypeError && /not a lower-case name/.test(e.message),
  );
});

for (const name of ["tls", "tcp"]) {
  test(`the ${name} transport listens and dials on loopback: exact bytes both ways`, async () => {
    const t = getTransport(name);
    const listener = await withDeadline(
      t.listen({
        hostname: "127.0.0.1",
        port: 0,
        certPem: fixture.server.certPem,
        keyPem: fixture.server.keyPem,
      }),
      DEADLINE_MS,
      `${name} listen`,
    );
    const served = echoServer(listener);
    try {
      assert.ok(listener.addr.port > 0);
      const conn = await withDeadline(
        t.dial({
          hostname: "127.0.0.1",
          port: listener.addr.port,
          caPems: [fixture.ca.certPem],
          timeoutMs: 5_000,
        }),
        DEADLINE_MS,
        `${name} dial`,
      );
      try {
        const payload = crypto.getRandomValues(new Uint8Array(50_000));
        const back = await withDeadline(
          roundTrip(conn, payload),
          DEADLINE_MS,
          `${name} echo of 50,000 bytes`,
        );
        assert.ok(sameBytes(back, payload), "the echo differs from what was sent");
        assert.equal((conn.remoteAddr as Deno.NetAddr).port, listener.addr.port);
      } finally {
        conn.close();
      }
    } finally {
      await withDeadline(served.close(), DEADLINE_MS, `${name} accept loop to end`);
    }
  });
}

test("the tls transport refuses to listen without a certificate", async () => {
  await assert.rejects(
    getTransport("tls").listen({ hostname: "127.0.0.1", port: 0 }),
    (e: unknown) => e instanceof TypeError && /certPem and keyPem are required/.test(e.message),
  );
});

test("a registered transport is found by name and used as it is", async () => {
  const tcp = getTransport("tcp");
  let dials = 0;
  const counting: Transport = {
    name: "counting-tcp",
    summary: "TCP that counts its dials (test)",
    listen: (o) => tcp.listen(o),
    dial: (o) => {
      dials++;
      return tcp.dial(o);
    },
  };
  registerTransport(counting);
  const t = getTransport("counting-tcp");
  const listener = await t.listen({ hostname: "127.0.0.1", port: 0 });
  const served = echoServer(listener);
  try {
    const conn = await withDeadline(
      t.dial({ hostname: "127.0.0.1", port: listener.addr.port }),
      DEADLINE_MS,
      "counting-tcp dial",
    );
    try {
      const back = await withDeadline(
        roundTrip(conn, new Uint8Array([1, 2, 3])),
        DEADLINE_MS,
        "echo of 3 bytes",
      );
      assert.deepEqual(back, new Uint8Array([1, 2, 3]));
    } finally {
      conn.close();
    }
    assert.equal(dials, 1);
    assert.ok(transportNames().includes("counting-tcp"));
  } finally {
    await withDeadline(served.close(), DEADLINE_MS, "accept loop to end");
  }
});
