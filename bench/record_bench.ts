/**
 * Record layer throughput: seal and open, each suite, 1/16/64/256 KiB
 * payloads. Every iteration handles 16 records, either serially (each call
 * awaited before the next) or all 16 in flight at once, so the two rows of a
 * group compare directly and MB/s = 16 × size / time per iteration.
 *
 *   deno bench bench/record_bench.ts      # Deno.bench table (time per iteration)
 *   deno run bench/record_bench.ts        # MB/s table (payload bytes per second)
 *
 * @module
 */
import {
  type AeadId,
  createRecordOpener,
  createRecordSealer,
  type RecordOpener,
  type RecordSealer,
} from "../lib/record/mod.ts";

const SUITES: readonly AeadId[] = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"];
const SIZES_KIB = [1, 16, 64, 256] as const;
const IN_FLIGHT = 16;
const SECRET = new Uint8Array(32).fill(42);

interface Case {
  suite: AeadId;
  kib: number;
  inFlight: boolean;
  payload: Uint8Array;
  sealer: RecordSealer;
  /** `IN_FLIGHT` consecutive records from seq 0, for a fresh opener. */
  recs: Uint8Array[];
  wire: Uint8Array;
}

async function makeCase(suite: AeadId, kib: number, inFlight: boolean): Promise<Case> {
  const payload = new Uint8Array(kib * 1024).fill(7);
  const sealer = await createRecordSealer(suite, SECRET);
  const first = await createRecordSealer(suite, SECRET);
  const recs = await Promise.all(Array.from({ length: IN_FLIGHT }, () => first.seal(payload)));
  const wire = new Uint8Array(recs.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of recs) {
    wire.set(r, o);
    o += r.length;
  }
  return { suite, kib, inFlight, payload, sealer, recs, wire };
}

async function sealOnce(c: Case): Promise<void> {
  if (!c.inFlight) {
    for (let i = 0; i < IN_FLIGHT; i++) await c.sealer.seal(c.payload);
    return;
  }
  const ps: Promise<Uint8Array>[] = [];
  for (let i = 0; i < IN_FLIGHT; i++) ps.push(c.sealer.seal(c.payload));
  await Promise.all(ps);
}

async function openOnce(c: Case, opener: RecordOpener): Promise<void> {
  if (!c.inFlight) {
    for (const r of c.recs) await opener.push(r)[0];
    return;
  }
  await Promise.all(opener.push(c.wire));
}

const cases: Case[] = [];
for (const suite of SUITES) {
  for (const kib of SIZES_KIB) {
    for (const inFlight of [false, true]) cases.push(await makeCase(suite, kib, inFlight));
  }
}

function label(c: Case): string {
  return `${c.kib} KiB x${IN_FLIGHT} ${c.inFlight ? "in flight" : "serial"}`;
}

for (const c of cases) {
  const group = `${c.suite} ${c.kib} KiB`;
  Deno.bench({
    name: `seal ${c.suite} ${label(c)}`,
    group: `seal ${group}`,
    baseline: !c.inFlight,
    async fn() {
      await sealOnce(c);
    },
  });
  Deno.bench({
    name: `open ${c.suite} ${label(c)}`,
    group: `open ${group}`,
    baseline: !c.inFlight,
    async fn(b) {
      const opener = await createRecordOpener(c.suite, SECRET); // setup, not timed
      b.start();
      await openOnce(c, opener);
      b.end();
    },
  });
}

/** Runs `fn` repeatedly for about `ms` milliseconds; returns MB/s of payload. */
async function measure(c: Case, op: "seal" | "open", ms: number): Promise<number> {
  const bytes = IN_FLIGHT * c.payload.length;
  let busy = 0;
  let iters = 0;
  // Warm up, then time only the operation itself.
  for (let i = 0; i < 5; i++) {
    if (op === "seal") await sealOnce(c);
    else await openOnce(c, await createRecordOpener(c.suite, SECRET));
  }
  while (busy < ms) {
    if (op === "seal") {
      const t = performance.now();
      await sealOnce(c);
      busy += performance.now() - t;
    } else {
      const opener = await createRecordOpener(c.suite, SECRET);
      const t = performance.now();
      await openOnce(c, opener);
      busy += performance.now() - t;
    }
    iters++;
  }
  return (iters * bytes) / (busy / 1000) / 1e6;
}

if (import.meta.main) {
  const ms = Number(Deno.args[0] ?? 400);
  console.log(`| suite | op | size | serial MB/s | x${IN_FLIGHT} in flight MB/s |`);
  console.log("| --- | --- | --- | ---: | ---: |");
  for (const suite of SUITES) {
    for (const op of ["seal", "open"] as const) {
      for (const kib of SIZES_KIB) {
        const serial = cases.find((c) => c.suite === suite && c.kib === kib && !c.inFlight)!;
        const flight = cases.find((c) => c.suite === suite && c.kib === kib && c.inFlight)!;
        const a = await measure(serial, op, ms);
        const b = await measure(flight, op, ms);
        console.log(`| ${suite} | ${op} | ${kib} KiB | ${a.toFixed(0)} | ${b.toFixed(0)} |`);
      }
    }
  }
}
