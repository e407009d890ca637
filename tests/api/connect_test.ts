/**
 * The public API end to end: `listen()` from a server directory on disk,
 * `connect()` with alice's profile over real TLS on loopback, and
 * `tunnel.dial()` connections to loopback targets.
 */
import { strict as assert } from "node:assert";
import {
  connect,
  EventHub,
  PeerSlowError,
  Reply,
  Socks5Error,
  type TunnelConn,
  TunnelError,
} from "../../mod.ts";
import { EventLog } from "../../lib/observe/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { freePort, startEchoServer } from "../e2e/_harness.ts";
import { readToEnd, serveOnce, startServer, writeAll } from "./_setup.ts";
import { step, test } from "../support/deadline.ts";
import { assertRejectsWith, assertThrowsWith } from "../support/assert.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

test("dial() carries exact bytes both ways over TLS and ends with the target's end", async () => {
  await using setup = await startServer();
  await using echo = startEchoServer();
  await step("1 MiB each way through the tunnel", async () => {
    await using tunnel = await connect(setup.profilePath);
    using conn = await tunnel.dial({ hostname: "127.0.0.1", port: echo.port });
    assert.deepEqual(conn.remoteAddr, { transport: "tcp", hostname: "127.0.0.1", port: echo.port });
    assert.equal(conn.localAddr.transport, "tcp");
    const sent = randomBytes(1024 * 1024);
    const writing = (async () => {
      // Odd sizes, so chunks and records do not line up.
      for (let o = 0; o < sent.length; o += 40_000) {
        await conn.write(sent.subarray(o, Math.min(o + 40_000, sent.length)));
      }
      await conn.closeWrite();
    })();
    const got = await readToEnd(conn);
    await writing;
    assert.equal(got.length, sent.length);
    assert.ok(got.every((b, i) => b === sent[i]), "the echoed bytes differ");
    assert.equal(await conn.read(new Uint8Array(8)), null, "end of stream stays end of stream");
  });
});

test("closeWrite() half-closes: the target reads end of stream and can still answer", async () => {
  await using setup = await startServer();
  await using target = serveOnce(async (c) => {
    const got = await readToEnd(c); // until our closeWrite
    await writeAll(c, enc.encode(`got ${got.length} bytes`));
    await c.closeWrite();
  });
  await step("a reply after a half-close", async () => {
    await using tunnel = await connect(setup.profilePath);
    using conn = await tunnel.dial({ hostname: "127.0.0.1", port: target.port });
    await conn.write(enc.encode("hello, target"));
    await conn.closeWrite();
    await assertRejectsWith(
      conn.write(enc.encode("more")),
      Deno.errors.BrokenPipe,
      "Cannot write to tunnel connection to 127.0.0.1:",
    );
    assert.equal(dec.decode(await readToEnd(conn)), "got 13 bytes");
    await target.done;
  });
});

test("readable and writable carry the same bytes as read and write", async () => {
  await using setup = await startServer();
  await using echo = startEchoServer();
  await step("an echo through the web streams", async () => {
    await using tunnel = await connect(setup.profilePath);
    using conn = await tunnel.dial({ hostname: "127.0.0.1", port: echo.port });
    const sent = randomBytes(300_000);
    const chunks = [0, 1, 2, 3, 4, 5].map((i) => sent.subarray(i * 50_000, (i + 1) * 50_000));
    const writing = ReadableStream.from(chunks).pipeTo(conn.writable); // closes: half-close
    const got = new Uint8Array(await new Response(conn.readable).arrayBuffer());
    await writing;
    assert.equal(got.length, sent.length);
    assert.ok(got.every((b, i) => b === sent[i]), "the echoed bytes differ");
  });
});

test("dial() to a target the routes do not allow rejects with Socks5Error NOT_ALLOWED", async () => {
  await using setup = await startServer();
  await step("a refused dial", async () => {
    await using tunnel = await connect(setup.profilePath);
    // Outside alice's loopback routes: refused by the server without dialing.
    const e = await tunnel.dial({ hostname: "192.0.2.1", port: 80 }).then(
      () => assert.fail("dial succeeded"),
      (e: unknown) => e,
    );
    assert.ok(e instanceof Socks5Error, `got ${e}`);
    assert.equal(e.reply, Reply.NOT_ALLOWED);
    assert.match(e.message, /192\.0\.2\.1:80.*not allowed/);
  });
});

test("dial() to a closed port rejects with Socks5Error CONNECTION_REFUSED", async () => {
  await using setup = await startServer();
  await step("a refused dial", async () => {
    await using tunnel = await connect(setup.profilePath);
    const port = freePort();
    const e = await tunnel.dial({ hostname: "127.0.0.1", port }).then(
      () => assert.fail("dial succeeded"),
      (e: unknown) => e,
    );
    assert.ok(e instanceof Socks5Error, `got ${e}`);
    assert.equal(e.reply, Reply.CONNECTION_REFUSED);
    // The tunnel is still good for the next dial.
    await using echo = startEchoServer();
    using conn = await tunnel.dial({ hostname: "127.0.0.1", port: echo.port });
    await conn.write(enc.encode("ok"));
    const buf = new Uint8Array(2);
    assert.equal(await conn.readFull(buf, { timeoutMs: 10_000 }), 2);
    assert.equal(dec.decode(buf), "ok");
  });
});

test("dial() refuses a port out of range, a host that is not one, and an unknown transport", async () => {
  await using setup = await startServer();
  await step("bad dials", async () => {
    await using tunnel = await connect(setup.profilePath);
    await assertRejectsWith(
      tunnel.dial({ hostname: "127.0.0.1", port: 53, transport: "sctp" as "udp" }),
      TypeError,
      'Cannot dial 127.0.0.1:53: transport "sctp" is not "tcp" or "udp"',
    );
    await assertRejectsWith(
      tunnel.dial({ hostname: "127.0.0.1", port: 0, transport: "udp" }),
      RangeError,
      "Cannot dial 127.0.0.1:0: port 0 is not in 1-65535",
    );
    await assertRejectsWith(
      tunnel.dial({ hostname: "127.0.0.1", port: 0 }),
      RangeError,
      "Cannot dial 127.0.0.1:0: port 0 is not in 1-65535",
    );
    await assertRejectsWith(
      tunnel.dial({ hostname: "no such host!", port: 80 }),
      TypeError,
      'Cannot dial no such host!:80: "no such host!" is not a host name or IP address',
    );
  });
});

test("readFull() past its deadline throws PeerSlowError with the bytes that arrived intact", async () => {
  await using setup = await startServer();
  let sendRest!: () => void;
  const rest = new Promise<void>((r) => (sendRest = r));
  await using target = serveOnce(async (c) => {
    await writeAll(c, enc.encode("abcd"));
    await rest; // stalls: a slow peer
    await writeAll(c, enc.encode("efghij"));
    await c.closeWrite();
    await readToEnd(c);
  });
  await step("a slow peer", async () => {
    await using tunnel = await connect(setup.profilePath);
    using conn = await tunnel.dial({ hostname: "127.0.0.1", port: target.port });
    const buf = new Uint8Array(10);
    const t0 = performance.now();
    const e = await conn.readFull(buf, { timeoutMs: 400 }).then(
      () => assert.fail("readFull returned"),
      (e: unknown) => e,
    );
    const took = performance.now() - t0;
    assert.ok(e instanceof PeerSlowError, `got ${e}`);
    assert.ok(e instanceof Deno.errors.TimedOut);
    assert.equal(e.operation, "read");
    assert.equal(e.bytesRead, 4);
    assert.equal(dec.decode(buf.subarray(0, 4)), "abcd");
    assert.ok(took >= 350 && took < 5_000, `deadline after ${took} ms`);
    // Nothing was lost: the rest continues right after the bytes that arrived.
    sendRest();
    assert.equal(await conn.readFull(buf.subarray(4), { timeoutMs: 10_000 }), 6);
    assert.equal(dec.decode(buf), "abcdefghij");
    assert.equal(await conn.read(buf), null);
  });
});

test("write() fails with PeerSlowError once the target stops reading and credit runs out", async () => {
  // The smallest windows the mux allows: the server takes at most 64 KiB
  // for a target that is not reading.
  await using setup = await startServer({
    editServer: (t) =>
      t.replace(/stream_window: .*/, "stream_window: 64KiB")
        .replace(/session_window: .*/, "session_window: 1MiB"),
  });
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  await using target = serveOnce(() => stopped); // accepts, never reads
  await step("a write to stall", async () => {
    await using tunnel = await connect(setup.profilePath);
    using conn = await tunnel.dial({
      hostname: "127.0.0.1",
      port: target.port,
      writeTimeoutMs: 500,
    });
    const chunk = randomBytes(64 * 1024);
    let written = 0;
    let error: unknown;
    // The kernel's loopback buffers take a few MiB before the target's
    // socket is full; 256 MiB is far beyond that.
    while (written < 256 * 1024 * 1024) {
      try {
        written += await conn.write(chunk);
      } catch (e) {
        error = e;
        break;
      }
    }
    stop();
    assert.ok(error instanceof PeerSlowError, `no PeerSlowError after ${written} bytes: ${error}`);
    assert.equal(error.operation, "write");
    assert.ok(error.bytesWritten < chunk.length, `bytesWritten ${error.bytesWritten}`);
    assert.match(error.message, /stopped reading/);
  });
});

test("aborting the signal closes the tunnel and resets its connections", async () => {
  await using setup = await startServer();
  await using echo = startEchoServer();
  await step("an abort to close the tunnel", async () => {
    const controller = new AbortController();
    const tunnel = await connect(setup.profilePath, { signal: controller.signal });
    const ended = tunnel.events.next("session_end", { timeoutMs: 10_000 });
    const conn = await tunnel.dial({ hostname: "127.0.0.1", port: echo.port });
    const reading = conn.read(new Uint8Array(16));
    controller.abort();
    assert.equal(tunnel.closed, true);
    const end = await ended;
    assert.equal(end.graceful, true);
    await assertRejectsWith(
      reading,
      Deno.errors.ConnectionReset,
      "was reset: the target or the tunnel closed it",
    );
    await assertRejectsWith(
      tunnel.dial({ hostname: "127.0.0.1", port: echo.port }),
      Deno.errors.BadResource,
      "Cannot dial 127.0.0.1:",
    );
    conn.close();
    await tunnel.close();
  });
});

test("connect() with an aborted signal rejects with its reason and dials nothing", async () => {
  await using setup = await startServer();
  const controller = new AbortController();
  const reason = new Error("not now");
  controller.abort(reason);
  await step("connect() to refuse", async () => {
    await assert.rejects(
      connect(setup.profilePath, { signal: controller.signal }),
      (e) => e === reason,
    );
  });
});

test("aborting while connect() waits for the server rejects at once with the reason", async () => {
  await using setup = await startServer();
  // A server that accepts and says nothing: the handshake cannot finish.
  using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await step("connect() to give up on abort", async () => {
    const controller = new AbortController();
    const reason = new Error("user gave up");
    const connecting = connect(setup.profilePath, {
      signal: controller.signal,
      server: { hostname: "127.0.0.1", port: silent.addr.port },
    });
    const accepted = await silent.accept();
    const t0 = performance.now();
    controller.abort(reason);
    await assert.rejects(connecting, (e) => e === reason);
    assert.ok(performance.now() - t0 < 1_000, "connect() did not reject at once");
    // The client gives up its attempt in the background: end it and wait
    // until it has closed its side, so nothing outlives the test.
    await accepted.closeWrite();
    const buf = new Uint8Array(4096);
    while ((await accepted.read(buf).catch(() => null)) !== null);
    accepted.close();
  });
});

test("await using closes the tunnel; its connections then read a reset", async () => {
  await using setup = await startServer();
  await using echo = startEchoServer();
  await step("the tunnel to close at the end of its block", async () => {
    let conn: TunnelConn;
    let closed: () => boolean;
    {
      await using tunnel = await connect(setup.profilePath);
      closed = () => tunnel.closed;
      conn = await tunnel.dial({ hostname: "127.0.0.1", port: echo.port });
      await conn.write(enc.encode("x"));
      assert.equal(await conn.readFull(new Uint8Array(1), { timeoutMs: 10_000 }), 1);
    }
    assert.equal(closed(), true);
    await assertRejectsWith(
      conn.read(new Uint8Array(1)),
      Deno.errors.ConnectionReset,
      "was reset: the target or the tunnel closed it",
    );
    conn.close();
    assertThrowsWith(
      () => conn.close(),
      Deno.errors.BadResource,
      "Cannot close the tunnel connection to 127.0.0.1:",
    );
  });
});

test("tunnel.events reports the session's start and end", async () => {
  await using setup = await startServer();
  await step("session events", async () => {
    const events = new EventHub();
    const log = new EventLog(events);
    const tunnel = await connect(setup.profilePath, { events });
    assert.equal(tunnel.events, events);
    const [start] = log.of("session_start");
    assert.ok(start !== undefined, "no session_start before connect() resolved");
    assert.equal(start.user, "alice");
    assert.equal(start.peer, `127.0.0.1:${setup.server.addr.port}`);
    assert.equal(log.of("session_end").length, 0);
    const ended = events.next("session_end", { timeoutMs: 10_000 });
    await tunnel.close();
    const end = await ended;
    assert.equal(end.session, start.session);
    assert.equal(end.graceful, true);
    assert.ok(end.bytesOut > 0 && end.bytesIn > 0, "the session moved no bytes");
    log.close();
  });
});

test("connect() to a server that is not running rejects saying what to check", async () => {
  await using setup = await startServer();
  const port = freePort();
  await step("connect() to fail", async () => {
    await assertRejectsWith(
      connect(setup.profilePath, { server: { hostname: "127.0.0.1", port } }),
      TunnelError,
      /Cannot reach the server at 127\.0\.0\.1:\d+/,
    );
  });
});

test("the profile's limits.connect_timeout bounds connecting to the server (TCP and TLS)", async () => {
  // A server that accepts TCP and never answers the TLS ClientHello.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })().catch(() => {});
  const port = (silent.addr as Deno.NetAddr).port;
  try {
    for (const [value, shown] of [["300ms", "300 ms"], ["1500ms", "1.5 s"]] as const) {
      await using setup = await startServer({
        profileYaml: `limits:\n  connect_timeout: ${value}\n`,
      });
      await step(`connect() to give up after ${value}`, async () => {
        await assert.rejects(
          connect(setup.profilePath, { server: { hostname: "127.0.0.1", port } }),
          new RegExp(
            `Cannot reach the server at 127\\.0\\.0\\.1:${port}: timed out after ${shown}`,
          ),
        );
      });
    }
  } finally {
    silent.close();
    await accepting;
    for (const c of held) c.close();
  }
});
