/**
 * `tunnel.dial({ transport: "udp" })`: datagrams through a real server to a
 * UDP echo, exact both ways; what the user's routes refuse never arrives;
 * the bounded receive queue, timeouts and the errors of a closed
 * connection.
 */
import { strict as assert } from "node:assert";
import {
  connect,
  DATAGRAM_QUEUE_MAX,
  type DialOptions,
  type TunnelDatagramConn,
} from "../../mod.ts";
import { EventLog } from "../../lib/observe/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { startUdpEcho } from "../support/udp_echo.ts";
import { startServer } from "./_setup.ts";
import { step, test, waitFor } from "../support/deadline.ts";
import { assertRejectsWith, assertThrowsWith } from "../support/assert.ts";

test("dial() with transport udp carries 300 datagrams of up to 1400 bytes exactly, both ways", async () => {
  await using setup = await startServer({ transport: "tcp" });
  await using echo = startUdpEcho();
  await step("datagrams through the tunnel", async () => {
    await using tunnel = await connect(setup.profilePath);
    const events = new EventLog(setup.server.events);
    using conn: TunnelDatagramConn = await tunnel.dial({
      hostname: "127.0.0.1",
      port: echo.port,
      transport: "udp",
    });
    assert.deepEqual(conn.remoteAddr, { transport: "udp", hostname: "127.0.0.1", port: echo.port });
    for (let i = 0; i < 300; i += 10) {
      const sent = Array.from({ length: 10 }, (_, k) => randomBytes(1 + ((i + k) * 131) % 1400));
      for (const d of sent) assert.equal(await conn.send(d), d.length);
      const got = [];
      for (let k = 0; k < 10; k++) got.push(await conn.receive({ timeoutMs: 10_000 }));
      assert.deepEqual(got, sent);
    }
    assert.equal(echo.received, 300);
    assert.equal(conn.dropped, 0);
    conn.close();
    // Closing ends the association on the server too.
    const [closed] = await events.waitFor("udp_close");
    assert.equal(closed!.out, 300);
    assert.equal(closed!.in, 300);
    events.close();
  });
});

test("a udp dial: the routes refuse a port, timeouts, the receive queue's bound, and a closed connection", async () => {
  await using allowed = startUdpEcho();
  await using refused = startUdpEcho();
  await using setup = await startServer({
    transport: "tcp",
    routes: ["tcp:127.0.0.1", `udp:127.0.0.1:${allowed.port}`],
  });
  await step("refusals and bounds", async () => {
    await using tunnel = await connect(setup.profilePath);
    using no = await tunnel.dial({ hostname: "127.0.0.1", port: refused.port, transport: "udp" });
    await no.send(new TextEncoder().encode("never"));
    await assertRejectsWith(
      no.receive({ timeoutMs: 300 }),
      Deno.errors.TimedOut,
      `Cannot receive from 127.0.0.1:${refused.port}: no datagram within 300 ms`,
    );
    assert.equal(refused.received, 0);

    using yes = await tunnel.dial({ hostname: "127.0.0.1", port: allowed.port, transport: "udp" });
    // More echoes than the queue holds, none received: the oldest go first.
    const n = DATAGRAM_QUEUE_MAX + 20;
    for (let i = 0; i < n; i += 23) {
      // In steps the echo server keeps up with (its socket would drop a burst).
      for (let k = i; k < Math.min(i + 23, n); k++) {
        await yes.send(new TextEncoder().encode(`d${k}`));
      }
      await waitFor(
        "the echo server to receive them",
        () => allowed.received >= Math.min(i + 23, n),
        10_000,
      );
    }
    await waitFor("every echo to come back", () => yes.dropped === 20, 10_000);
    // The newest DATAGRAM_QUEUE_MAX, in the order sent.
    for (let i = 20; i < n; i++) {
      assert.equal(new TextDecoder().decode(await yes.receive()), `d${i}`);
    }
    await assertRejectsWith(
      yes.send(new Uint8Array(65_536)),
      RangeError,
      `Cannot send to 127.0.0.1:${allowed.port}: 65536 bytes exceed the UDP maximum 65535`,
    );
    const waiting = yes.receive();
    await assertRejectsWith(
      yes.receive(),
      Deno.errors.Busy,
      `Cannot receive from 127.0.0.1:${allowed.port}: another receive is in progress`,
    );
    yes.close();
    await assertRejectsWith(waiting, Deno.errors.BadResource, /it is closed/);
    await assertRejectsWith(yes.send(new Uint8Array(1)), Deno.errors.BadResource, /it is closed/);
    assertThrowsWith(() => yes.close(), Deno.errors.BadResource, /it is closed/);
  });
});

test("a udp dial ends with its tunnel: receive rejects with ConnectionReset, iteration stops", async () => {
  await using echo = startUdpEcho();
  await using setup = await startServer({ transport: "tcp" });
  const tunnel = await connect(setup.profilePath);
  const conn = await tunnel.dial({ hostname: "127.0.0.1", port: echo.port, transport: "udp" });
  await conn.send(new TextEncoder().encode("one"));
  const got: string[] = [];
  const reading = (async () => {
    for await (const d of conn) got.push(new TextDecoder().decode(d));
  })();
  await waitFor("the echo", () => got.length === 1, 10_000);
  await tunnel.close();
  await step("the iteration to end with the tunnel", reading);
  assert.deepEqual(got, ["one"]);
  await assertRejectsWith(conn.receive(), Deno.errors.ConnectionReset, /ended/);
  conn.close();
});

test("dial() with a transport known only at run time gives the matching kind of connection", async () => {
  await using setup = await startServer({ transport: "tcp" });
  await using echo = startUdpEcho();
  await step("a dial from a DialOptions value", async () => {
    await using tunnel = await connect(setup.profilePath);
    const options: DialOptions = { hostname: "127.0.0.1", port: echo.port, transport: "udp" };
    using conn = await tunnel.dial(options);
    assert.ok("receive" in conn && !("readFull" in conn));
    await conn.send(new TextEncoder().encode("any"));
    assert.equal(new TextDecoder().decode(await conn.receive({ timeoutMs: 10_000 })), "any");
  });
});
