/**
 * `TunnelConn` over its in-process channels, with the test playing the
 * session's side (`side`): deadlines, half-close, resets and misuse, with
 * no kernel buffers in between, so timing is exact.
 */
import { strict as assert } from "node:assert";
import { createConn } from "../../lib/api/_conn.ts";
import { PeerSlowError } from "../../mod.ts";
import { step, test } from "../support/deadline.ts";
import { assertRejectsWith, assertThrowsWith } from "../support/assert.ts";

const addr = (port: number): Deno.NetAddr => ({ transport: "tcp", hostname: "127.0.0.1", port });
const bytes = (...b: number[]) => new Uint8Array(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pair(writeTimeoutMs?: number) {
  return createConn({
    localAddr: addr(0),
    remoteAddr: addr(80),
    ...(writeTimeoutMs === undefined ? {} : { writeTimeoutMs }),
  });
}

test("write() resolves once the session side has taken every byte, in order", async () => {
  await step("a write to be taken", async () => {
    const { conn, side } = pair();
    let done = false;
    const w = conn.write(bytes(1, 2, 3, 4, 5)).then((n) => {
      done = true;
      return n;
    });
    const buf = new Uint8Array(3);
    assert.equal(await side.read(buf), 3);
    assert.deepEqual(buf, bytes(1, 2, 3));
    await sleep(0);
    assert.equal(done, false, "write resolved before all of it was taken");
    assert.equal(await side.read(buf), 2);
    assert.deepEqual(buf.subarray(0, 2), bytes(4, 5));
    assert.equal(await w, 5);
    conn.close();
  });
});

test("write() past writeTimeoutMs fails with PeerSlowError; the rest is withdrawn, not sent", async () => {
  await step("a write deadline", async () => {
    const { conn, side } = pair(200);
    const buf = new Uint8Array(2);
    const t0 = performance.now();
    const w = conn.write(bytes(1, 2, 3, 4, 5)).then(() => assert.fail("write resolved"), (e) => e);
    assert.equal(await side.read(buf), 2); // the peer takes 2 bytes, then stops
    const e = await w;
    const took = performance.now() - t0;
    assert.ok(e instanceof PeerSlowError, `got ${e}`);
    assert.equal(e.operation, "write");
    assert.equal(e.bytesWritten, 2);
    assert.equal(e.bytesRead, 0);
    assert.ok(took >= 190 && took < 2_000, `failed after ${took} ms`);
    // The next write is what the session reads next: 3, 4, 5 were not sent.
    const w2 = conn.write(bytes(9));
    assert.equal(await side.read(buf), 1);
    assert.equal(buf[0], 9);
    assert.equal(await w2, 1);
    conn.close();
  });
});

test("writeTimeoutMs bounds each write, not the connection's lifetime", async () => {
  await step("slow but steady writes", async () => {
    const { conn, side } = pair(150);
    // The session takes one byte every 40 ms: each write waits ~40 ms, the
    // ten of them ~400 ms, well past the 150 ms deadline of any one write.
    const reader = (async () => {
      const b = new Uint8Array(1);
      for (let i = 0; i < 10; i++) {
        await sleep(40);
        assert.equal(await side.read(b), 1);
        assert.equal(b[0], i);
      }
    })();
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) assert.equal(await conn.write(bytes(i)), 1);
    assert.ok(performance.now() - t0 > 300, "the writes did not wait for the reader");
    await reader;
    conn.close();
  });
});

test("readFull() returns a full buffer across several chunks, null at a clean end", async () => {
  await step("readFull", async () => {
    const { conn, side } = pair();
    const writing = (async () => {
      await side.write(bytes(1, 2));
      await side.write(bytes(3));
      await side.write(bytes(4, 5, 6));
      await side.closeWrite();
    })();
    const buf = new Uint8Array(4);
    assert.equal(await conn.readFull(buf, { timeoutMs: 1_000 }), 4);
    assert.deepEqual(buf, bytes(1, 2, 3, 4));
    assert.equal(await conn.readFull(buf), 2, "a short count at the end of the stream");
    assert.deepEqual(buf.subarray(0, 2), bytes(5, 6));
    assert.equal(await conn.readFull(buf), null);
    await writing;
    conn.close();
  });
});

test("readFull() past timeoutMs keeps the bytes read and loses none after them", async () => {
  await step("a read deadline", async () => {
    const { conn, side } = pair();
    const w1 = side.write(bytes(1, 2, 3));
    const buf = new Uint8Array(6);
    const e = await conn.readFull(buf, { timeoutMs: 150 }).then(
      () => assert.fail("readFull resolved"),
      (e) => e,
    );
    assert.ok(e instanceof PeerSlowError, `got ${e}`);
    assert.equal(e.operation, "read");
    assert.equal(e.bytesRead, 3);
    assert.deepEqual(buf.subarray(0, 3), bytes(1, 2, 3));
    assert.equal(await w1, 3);
    // Bytes written after the deadline are all there for the next read.
    const w2 = side.write(bytes(4, 5, 6));
    assert.equal(await conn.readFull(buf.subarray(3), { timeoutMs: 1_000 }), 3);
    assert.deepEqual(buf, bytes(1, 2, 3, 4, 5, 6));
    await w2;
    // A deadline of 0 with nothing there fails at once, having read nothing.
    const e0 = await conn.readFull(buf, { timeoutMs: 0 }).catch((e) => e);
    assert.ok(e0 instanceof PeerSlowError && e0.bytesRead === 0);
    await assertRejectsWith(
      conn.readFull(buf, { timeoutMs: -1 }),
      RangeError,
      "Invalid timeoutMs: -1 is not a number of milliseconds (0 or more)",
    );
    conn.close();
  });
});

test("the session side closing without an end resets reads and writes", async () => {
  await step("a reset", async () => {
    const { conn, side } = pair();
    const reading = conn.read(new Uint8Array(4));
    side.close();
    await assertRejectsWith(
      reading,
      Deno.errors.ConnectionReset,
      "The tunnel connection to 127.0.0.1:80 was reset: the target or the tunnel closed it",
    );
    await assertRejectsWith(
      conn.write(bytes(1)),
      Deno.errors.ConnectionReset,
      "The tunnel connection to 127.0.0.1:80 was reset: the target or the tunnel closed it",
    );
    conn.close();
  });
  await step("a clean end, then close", async () => {
    const { conn, side } = pair();
    await side.closeWrite();
    side.close(); // the session releases the stream after both ends
    assert.equal(await conn.read(new Uint8Array(4)), null);
    conn.close();
  });
});

test("close() ends the session side's reads and fails its writes", async () => {
  await step("a close", async () => {
    const { conn, side } = pair();
    const pending = side.write(bytes(1, 2));
    const sideRead = side.read(new Uint8Array(4));
    conn.close();
    assert.equal(await sideRead, null, "the session reads end of stream (a FIN)");
    await assertRejectsWith(
      pending,
      Deno.errors.BrokenPipe,
      "Cannot deliver to the tunnel connection to 127.0.0.1:80: the application closed it",
    );
    await assertRejectsWith(
      conn.read(new Uint8Array(1)),
      Deno.errors.BadResource,
      "Cannot read from the tunnel connection to 127.0.0.1:80: it is closed",
    );
    await assertRejectsWith(
      conn.write(bytes(1)),
      Deno.errors.BadResource,
      "Cannot write to the tunnel connection to 127.0.0.1:80: it is closed",
    );
    assertThrowsWith(
      () => conn.close(),
      Deno.errors.BadResource,
      "Cannot close the tunnel connection to 127.0.0.1:80: it is closed",
    );
    conn[Symbol.dispose](); // idempotent
  });
});

test("a second read while one waits throws Busy", async () => {
  await step("busy", async () => {
    const { conn, side } = pair();
    const first = conn.read(new Uint8Array(1));
    await assertRejectsWith(
      conn.read(new Uint8Array(1)),
      Deno.errors.Busy,
      "Cannot read from tunnel connection to 127.0.0.1:80: another read is in progress",
    );
    await side.write(bytes(7));
    assert.equal(await first, 1);
    conn.close();
  });
});
