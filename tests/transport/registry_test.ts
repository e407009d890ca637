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

const fixture = await createTlsFixture(["localhost", "127.0.0.1"]);
const DEADLINE_MS = 10_000;

/** Rejects after `ms` naming what was awaited, so a hang fails with a reason. */
async function within<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Accepts connections and echoes each one; resolves when the listener closes. */
function echo(listener: TransportListener): Promise<void> {
  return (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(4096);
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            await writeAll(conn, buf.subarray(0, n));
          }
          await conn.closeWrite();
        } catch {
          // the test closed it
        } finally {
          conn.close();
        }
      })();
    }
  })();
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

Deno.test("the registry has tls and tcp built in, and names them when asked for another", () => {
  assert.deepEqual(transportNames().slice(0, 2), ["tls", "tcp"]);
  assert.throws(
    () => getTransport("carrier-pigeon"),
    (e: unknown) =>
      e instanceof TypeError && /Unknown transport "carrier-pigeon": expected one of tls, tcp/
        .test(e.message),
  );
});

Deno.test("registerTransport() refuses a second registration of a name and a bad name", () => {
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
  Deno.test(`the ${name} transport listens and dials on loopback: exact bytes both ways`, async () => {
    const t = getTransport(name);
    const listener = await within(
      t.listen({
        hostname: "127.0.0.1",
        port: 0,
        certPem: fixture.server.certPem,
        keyPem: fixture.server.keyPem,
      }),
      `${name} listen`,
    );
    const served = echo(listener);
    try {
      assert.ok(listener.addr.port > 0);
      const conn = await within(
        t.dial({
          hostname: "127.0.0.1",
          port: listener.addr.port,
          caPems: [fixture.ca.certPem],
          timeoutMs: 5_000,
        }),
        `${name} dial`,
      );
      try {
        const payload = crypto.getRandomValues(new Uint8Array(50_000));
        const back = await within(roundTrip(conn, payload), `${name} echo of 50,000 bytes`);
        assert.ok(sameBytes(back, payload), "the echo differs from what was sent");
        assert.equal((conn.remoteAddr as Deno.NetAddr).port, listener.addr.port);
      } finally {
        conn.close();
      }
    } finally {
      listener.close();
      await within(served, `${name} accept loop to end`);
    }
  });
}

Deno.test("the tls transport refuses to listen without a certificate", async () => {
  await assert.rejects(
    getTransport("tls").listen({ hostname: "127.0.0.1", port: 0 }),
    (e: unknown) => e instanceof TypeError && /certPem and keyPem are required/.test(e.message),
  );
});

Deno.test("a registered transport is found by name and used as it is", async () => {
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
  const served = echo(listener);
  try {
    const conn = await within(
      t.dial({ hostname: "127.0.0.1", port: listener.addr.port }),
      "counting-tcp dial",
    );
    try {
      const back = await within(roundTrip(conn, new Uint8Array([1, 2, 3])), "echo of 3 bytes");
      assert.deepEqual(back, new Uint8Array([1, 2, 3]));
    } finally {
      conn.close();
    }
    assert.equal(dials, 1);
    assert.ok(transportNames().includes("counting-tcp"));
  } finally {
    listener.close();
    await within(served, "accept loop to end");
  }
});
