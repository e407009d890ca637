import assert from "node:assert/strict";
import { memoryPipe, writeAll } from "../../lib/transport/mod.ts";
import type { ByteStream } from "../../lib/transport/types.ts";
import { test } from "../support/deadline.ts";
import { assertRejectsWith, assertThrowsWith } from "../support/assert.ts";
import { concat } from "../../lib/wire/bytes.ts";

async function readAll(s: ByteStream, bufSize = 7): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(bufSize);
  for (;;) {
    const n = await s.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  return concat(parts);
}

/** Resolves to "pending" if `p` has not settled after a few turns of the event loop. */
async function state(p: Promise<unknown>): Promise<"pending" | "resolved" | "rejected"> {
  let s: "pending" | "resolved" | "rejected" = "pending";
  p.then(() => (s = "resolved"), () => (s = "rejected"));
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  return s;
}

test("memoryPipe() carries bytes both ways and copies what it is given", async () => {
  const [a, b] = memoryPipe();
  const msg = Uint8Array.of(1, 2, 3);
  assert.equal(await a.write(msg), 3);
  msg.fill(9);
  await writeAll(b, Uint8Array.of(4, 5));
  const buf = new Uint8Array(10);
  assert.equal(await b.read(buf), 3);
  assert.deepEqual(buf.subarray(0, 3), Uint8Array.of(1, 2, 3));
  assert.equal(await a.read(buf), 2);
  assert.deepEqual(buf.subarray(0, 2), Uint8Array.of(4, 5));
  assert.equal(await a.write(new Uint8Array(0)), 0);
  assert.equal(await a.read(new Uint8Array(0)), 0);
  a.close();
  b.close();
});

test("memoryPipe() write blocks while the peer's buffer is full", async () => {
  const [a, b] = memoryPipe(4);
  assert.equal(await a.write(Uint8Array.of(1, 2, 3, 4, 5, 6)), 4); // short write: only what fits
  const blocked = a.write(Uint8Array.of(5, 6));
  assert.equal(await state(blocked), "pending");
  const buf = new Uint8Array(3);
  assert.equal(await b.read(buf), 3);
  assert.equal(await blocked, 2); // room for 3, it had 2
  assert.deepEqual(
    await (async () => {
      await a.closeWrite();
      return readAll(b);
    })(),
    Uint8Array.of(4, 5, 6),
  );
  a.close();
  b.close();
});

test("memoryPipe() moves 1 MiB through a 1 KiB buffer intact", async () => {
  const [a, b] = memoryPipe(1024);
  const data = new Uint8Array(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;
  const [, got] = await Promise.all([
    writeAll(a, data).then(() => a.closeWrite()),
    readAll(b, 333),
  ]);
  assert.deepEqual(got, data);
  a.close();
  b.close();
});

test("memoryPipe() half-close: reader drains then sees null; the other way stays open", async () => {
  const [a, b] = memoryPipe();
  await writeAll(a, Uint8Array.of(7, 8));
  await a.closeWrite();
  await a.closeWrite(); // idempotent
  assert.deepEqual(await readAll(b), Uint8Array.of(7, 8));
  assert.equal(await b.read(new Uint8Array(1)), null);
  await assertRejectsWith(
    a.write(Uint8Array.of(1)),
    Deno.errors.BrokenPipe,
    "Cannot write to memory pipe: write side closed",
  );
  await writeAll(b, Uint8Array.of(9));
  await b.closeWrite();
  assert.deepEqual(await readAll(a), Uint8Array.of(9));
  a.close();
  b.close();
});

test("memoryPipe() pending read on the peer returns null when the writer closes", async () => {
  const [a, b] = memoryPipe();
  const pending = b.read(new Uint8Array(4));
  assert.equal(await state(pending), "pending");
  await a.closeWrite();
  assert.equal(await pending, null);
  a.close();
  b.close();
});

test("memoryPipe() close(): own pending write rejects, peer sees EOF and BrokenPipe", async () => {
  const [a, b] = memoryPipe(2);
  await a.write(Uint8Array.of(1, 2));
  const pendingWrite = a.write(Uint8Array.of(3));
  assert.equal(await state(pendingWrite), "pending");
  await b.write(Uint8Array.of(5, 6));
  const peerWrite = b.write(Uint8Array.of(7));
  assert.equal(await state(peerWrite), "pending");
  a.close();
  await assertRejectsWith(
    pendingWrite,
    Deno.errors.BadResource,
    "Cannot write to memory pipe: closed",
  );
  await assertRejectsWith(
    peerWrite,
    Deno.errors.BrokenPipe,
    "Cannot write to memory pipe: peer closed",
  );
  // The peer still drains what a wrote before closing, then reads EOF.
  assert.deepEqual(await readAll(b), Uint8Array.of(1, 2));
  await assertRejectsWith(
    b.write(Uint8Array.of(4)),
    Deno.errors.BrokenPipe,
    "Cannot write to memory pipe: peer closed",
  );
  // Like Deno.Conn, anything after close throws BadResource.
  await assertRejectsWith(
    a.read(new Uint8Array(1)),
    Deno.errors.BadResource,
    "Cannot read from memory pipe: closed",
  );
  await assertRejectsWith(
    a.write(Uint8Array.of(1)),
    Deno.errors.BadResource,
    "Cannot write to memory pipe: closed",
  );
  await assertRejectsWith(
    a.closeWrite(),
    Deno.errors.BadResource,
    "Cannot close memory pipe for writing: closed",
  );
  assertThrowsWith(
    () => a.close(),
    Deno.errors.BadResource,
    "Cannot close memory pipe: already closed",
  );
  b.close();
});

test("memoryPipe() close() resolves a read that was waiting for data with null", async () => {
  const [a, b] = memoryPipe();
  const pendingRead = a.read(new Uint8Array(4));
  assert.equal(await state(pendingRead), "pending");
  a.close();
  assert.equal(await pendingRead, null);
  b.close();
});

test("memoryPipe() refuses a non-positive capacity", () => {
  assertThrowsWith(
    () => memoryPipe(0),
    RangeError,
    "Cannot create memory pipe: capacity 0 is not a positive integer",
  );
  assertThrowsWith(
    () => memoryPipe(1.5),
    RangeError,
    "Cannot create memory pipe: capacity 1.5 is not a positive integer",
  );
});
