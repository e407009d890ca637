/** Padding policies: sizes on the wire, uniformity, bounds. */
import assert from "node:assert/strict";
import {
  createRecordOpener,
  createRecordSealer,
  FIRST_FLIGHT,
  FIRST_FLIGHT_RECORDS,
  MAX_RECORD_PAYLOAD,
  tunnelPadding,
} from "../../lib/record/mod.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import { bucketFor, Padder } from "../../lib/record/_padding.ts";
import { pattern, secretOf, u16Source } from "./_helpers.ts";

const OVERHEAD = 3 + 2 + 16;

/** A seeded byte source (SHA-256 in counter mode). */
function drbgBytes(seed: number): (n: number) => Uint8Array {
  let ctr = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32) {
      out.set(sha256(new Uint8Array([seed, ctr >> 8, ctr++ & 0xff])).subarray(0, n - o), o);
    }
    return out;
  };
}

Deno.test("padding 'none' adds only the 2-byte prefix", async () => {
  const sealer = await createRecordSealer("aes-256-gcm", secretOf(1), {
    padding: { mode: "none" },
  });
  for (const n of [0, 1, 100, 5000]) {
    assert.equal((await sealer.seal(new Uint8Array(n))).length, n + OVERHEAD);
  }
});

Deno.test("padding 'random' pads short payloads by 0..max and long ones not at all", async () => {
  const sealer = await createRecordSealer("chacha20-poly1305", secretOf(2), {
    padding: { mode: "random", max: 31 },
  });
  const opener = await createRecordOpener("chacha20-poly1305", secretOf(2));
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const rec = await sealer.seal(pattern(10, i));
    const pad = rec.length - 10 - OVERHEAD;
    assert.ok(pad >= 0 && pad <= 31, `pad ${pad}`);
    seen.add(pad);
    assert.deepEqual(await opener.push(rec)[0], pattern(10, i));
  }
  assert.equal(seen.size, 32); // every value 0..31 occurs
  assert.equal((await sealer.seal(new Uint8Array(4096))).length, 4096 + OVERHEAD);
  assert.equal((await sealer.seal(new Uint8Array(4095))).length <= 4095 + 31 + OVERHEAD, true);
});

Deno.test("padding 'random' rejects biased draws instead of reducing them modulo max + 1", () => {
  // max 999: range 1000, draws >= 65000 are rejected.
  const p = new Padder({ mode: "random", max: 999 }, u16Source([65535, 65000, 1005, 7]));
  assert.equal(p.padFor(1), 5);
  assert.equal(p.padFor(1), 7);
  // The default max is 255.
  const d = new Padder({ mode: "random" }, u16Source([0x1234]));
  assert.equal(d.padFor(1), 0x34);
});

Deno.test("bucketFor() rounds to powers of two from 64 to 16 KiB, then multiples of 16 KiB", () => {
  const cases: [number, number][] = [
    [0, 64],
    [1, 64],
    [64, 64],
    [65, 128],
    [1000, 1024],
    [1024, 1024],
    [1025, 2048],
    [16384, 16384],
    [16385, 32768],
    [40000, 49152],
    [250000, 262144],
    [262144, 262144],
  ];
  for (const [n, b] of cases) assert.equal(bucketFor(n), b, `n ${n}`);
});

Deno.test("padding 'bucket' makes records bucket-sized and honours max", async () => {
  const sealer = await createRecordSealer("aes-128-gcm", secretOf(3), {
    padding: { mode: "bucket" },
  });
  const opener = await createRecordOpener("aes-128-gcm", secretOf(3));
  for (const n of [0, 5, 64, 700, 9000, 20000, MAX_RECORD_PAYLOAD]) {
    const rec = await sealer.seal(pattern(n));
    assert.equal(rec.length, bucketFor(n) + OVERHEAD, `n ${n}`);
    assert.deepEqual(await opener.push(rec)[0], pattern(n));
  }
  const capped = await createRecordSealer("aes-128-gcm", secretOf(4), {
    padding: { mode: "bucket", max: 10 },
  });
  assert.equal((await capped.seal(new Uint8Array(100))).length, 110 + OVERHEAD);
});

Deno.test("firstFlight: the first 32 records take exactly the table's ranges, in a shuffled order; then the mode", async () => {
  for (const side of ["client", "server"] as const) {
    const sealer = await createRecordSealer("aes-256-gcm", secretOf(5), {
      padding: { mode: "random", max: 7, firstFlight: side },
    });
    const opener = await createRecordOpener("aes-256-gcm", secretOf(5));
    const sizes: number[] = [];
    for (let i = 0; i < FIRST_FLIGHT_RECORDS; i++) {
      const rec = await sealer.seal(pattern(20, i));
      assert.deepEqual(await opener.push(rec)[0], pattern(20, i));
      // payload + padding: the target, or the payload when the target is smaller.
      sizes.push(rec.length - OVERHEAD);
    }
    // Each range got its count (a 20-byte payload fills targets below 20 by itself).
    for (const [count, lo, hi] of FIRST_FLIGHT[side]) {
      const inRange = sizes.filter((n) => n >= Math.max(lo, 20) && n <= Math.max(hi, 20));
      assert.ok(inRange.length >= count, `${side} [${lo}, ${hi}]: ${inRange.length} < ${count}`);
    }
    assert.equal(
      FIRST_FLIGHT[side].reduce((n, [count]) => n + count, 0),
      FIRST_FLIGHT_RECORDS,
    );
    // After the flight: the mode's own padding (random, 0..7).
    for (let i = 0; i < 50; i++) {
      const pad = (await sealer.seal(pattern(20, i))).length - OVERHEAD - 20;
      assert.ok(pad >= 0 && pad <= 7, `after the flight: pad ${pad}`);
    }
  }
});

Deno.test("firstFlight: two flights deal the same sizes in different orders", () => {
  const flight = (seed: number) => {
    const p = new Padder({ mode: "none", firstFlight: "server" }, drbgBytes(seed));
    return Array.from({ length: FIRST_FLIGHT_RECORDS }, () => {
      const max = p.maxFor(0);
      const pad = p.padFor(0);
      assert.ok(pad <= max, `padFor ${pad} > maxFor ${max}`);
      return pad;
    });
  };
  const a = flight(1), b = flight(2);
  assert.notDeepEqual(a, b);
  // Whole TLS records (16363 + 21 = 16384 bytes of TLS plaintext): 12 in every server flight.
  assert.equal(a.filter((n) => n === 16363).length, 12);
  assert.equal(b.filter((n) => n === 16363).length, 12);
});

Deno.test("tunnelPadding: none shapes nothing, the others shape the side's first flight", () => {
  assert.deepEqual(tunnelPadding(undefined, "client"), { mode: "none" });
  assert.deepEqual(tunnelPadding("none", "server"), { mode: "none" });
  assert.deepEqual(tunnelPadding("bucket", "server"), { mode: "bucket", firstFlight: "server" });
});
