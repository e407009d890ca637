/**
 * Record layer throughput on each crypto backend (Web Crypto + noble, and
 * OpenSSL through FFI when `--allow-ffi` is granted and it loads): seal and
 * open, each suite, 1/16/64/256 KiB payloads. Every iteration handles 16
 * records, either serially (each call awaited before the next) or all 16 in
 * flight at once, so the rows of a group compare directly and MB/s = 16 ×
 * size / time per iteration. A backend that seals synchronously also gets a
 * `sealInto` row: 16 records sealed straight into one reused buffer, no
 * promise (what the tunnel's writer could do).
 *
 *   deno bench --allow-ffi bench/record_bench.ts      # Deno.bench table (time per iteration)
 *   deno run --allow-ffi bench/record_bench.ts [ms]   # MB/s table (fastest of 5 batches)
 *
 * @module
 */
import {
  type AeadId,
  createRecordOpener,
  createRecordSealer,
  type CryptoBackend,
  describeCryptoBackend,
  type RecordOpener,
  type RecordSealer,
} from "../lib/record/mod.ts";
import { loadCryptoBackend } from "../lib/openssl/mod.ts";

const SUITES: readonly AeadId[] = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"];
const SIZES_KIB = [1, 16, 64, 256] as const;
const IN_FLIGHT = 16;
const SECRET = new Uint8Array(32).fill(42);

const BACKENDS: CryptoBackend[] = [loadCryptoBackend("webcrypto")];
{
  const auto = loadCryptoBackend("auto");
  if (auto.name === "openssl") BACKENDS.push(auto);
  else console.error(`record_bench: no openssl rows: ${auto.fallbackReason}`);
}

type Mode = "serial" | "in flight" | "sealInto";

interface Case {
  backend: CryptoBackend;
  suite: AeadId;
  kib: number;
  mode: Mode;
  payload: Uint8Array;
  sealer: RecordSealer;
  /** `IN_FLIGHT` consecutive records from seq 0, for a fresh opener. */
  recs: Uint8Array[];
  wire: Uint8Array;
  /** sealInto's reused output. */
  out: Uint8Array;
}

async function makeCase(
  backend: CryptoBackend,
  suite: AeadId,
  kib: number,
  mode: Mode,
): Promise<Case> {
  const payload = new Uint8Array(kib * 1024).fill(7);
  const sealer = await createRecordSealer(suite, SECRET, { backend });
  const first = await createRecordSealer(suite, SECRET, { backend });
  const recs = await Promise.all(Array.from({ length: IN_FLIGHT }, () => first.seal(payload)));
  const wire = new Uint8Array(recs.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of recs) {
    wire.set(r, o);
    o += r.length;
  }
  const out = new Uint8Array(mode === "sealInto" ? wire.length : 0);
  return { backend, suite, kib, mode, payload, sealer, recs, wire, out };
}

async function sealOnce(c: Case): Promise<void> {
  if (c.mode === "sealInto") {
    for (let i = 0, o = 0; i < IN_FLIGHT; i++) o += c.sealer.sealInto(c.payload, c.out, o);
    return;
  }
  if (c.mode === "serial") {
    for (let i = 0; i < IN_FLIGHT; i++) await c.sealer.seal(c.payload);
    return;
  }
  const ps: Promise<Uint8Array>[] = [];
  for (let i = 0; i < IN_FLIGHT; i++) ps.push(c.sealer.seal(c.payload));
  await Promise.all(ps);
}

async function openOnce(c: Case, opener: RecordOpener): Promise<void> {
  if (c.mode === "serial") {
    for (const r of c.recs) await opener.push(r)[0];
    return;
  }
  await Promise.all(opener.push(c.wire));
}

function newOpener(c: Case): Promise<RecordOpener> {
  return createRecordOpener(c.suite, SECRET, { backend: c.backend });
}

const cases: Case[] = [];
for (const backend of BACKENDS) {
  for (const suite of SUITES) {
    const into = (await createRecordSealer(suite, SECRET, { backend })).synchronous;
    for (const kib of SIZES_KIB) {
      const modes: Mode[] = into ? ["serial", "in flight", "sealInto"] : ["serial", "in flight"];
      for (const mode of modes) cases.push(await makeCase(backend, suite, kib, mode));
    }
  }
}

function label(c: Case): string {
  return `${c.kib} KiB x${IN_FLIGHT} ${c.mode}`;
}

for (const c of cases) {
  const group = `${c.suite} ${c.kib} KiB`;
  Deno.bench({
    name: `seal ${c.backend.name} ${c.suite} ${label(c)}`,
    group: `seal ${group}`,
    baseline: c.backend.name === "webcrypto" && c.mode === "serial",
    async fn() {
      await sealOnce(c);
    },
  });
  if (c.mode === "sealInto") continue;
  Deno.bench({
    name: `open ${c.backend.name} ${c.suite} ${label(c)}`,
    group: `open ${group}`,
    baseline: c.backend.name === "webcrypto" && c.mode === "serial",
    async fn(b) {
      const opener = await newOpener(c); // setup, not timed
      b.start();
      await openOnce(c, opener);
      b.end();
    },
  });
}

/**
 * Runs the operation repeatedly for about `ms` milliseconds in 5 batches;
 * returns MB/s of payload of the fastest batch (on a shared machine the
 * slower ones measure the neighbours).
 */
async function measure(c: Case, op: "seal" | "open", ms: number): Promise<number> {
  const bytes = IN_FLIGHT * c.payload.length;
  // Warm up, then time only the operation itself.
  for (let i = 0; i < 5; i++) {
    if (op === "seal") await sealOnce(c);
    else await openOnce(c, await newOpener(c));
  }
  let best = 0;
  for (let batch = 0; batch < 5; batch++) {
    let busy = 0;
    let iters = 0;
    while (busy < ms / 5) {
      if (op === "seal") {
        const t = performance.now();
        await sealOnce(c);
        busy += performance.now() - t;
      } else {
        const opener = await newOpener(c);
        const t = performance.now();
        await openOnce(c, opener);
        busy += performance.now() - t;
      }
      iters++;
    }
    best = Math.max(best, (iters * bytes) / (busy / 1000) / 1e6);
  }
  return best;
}

if (import.meta.main) {
  const ms = Number(Deno.args[0] ?? 400);
  for (const b of BACKENDS) console.log(`backend: ${describeCryptoBackend(b)}`);
  console.log("");
  console.log(
    `| backend | suite | op | size | serial MB/s | x${IN_FLIGHT} in flight MB/s | sealInto MB/s |`,
  );
  console.log("| --- | --- | --- | --- | ---: | ---: | ---: |");
  for (const backend of BACKENDS) {
    for (const suite of SUITES) {
      for (const op of ["seal", "open"] as const) {
        for (const kib of SIZES_KIB) {
          const find = (mode: Mode) =>
            cases.find((c) =>
              c.backend === backend && c.suite === suite && c.kib === kib && c.mode === mode
            );
          const cols: string[] = [];
          for (const mode of ["serial", "in flight", "sealInto"] as const) {
            const c = find(mode);
            cols.push(
              c === undefined || (mode === "sealInto" && op === "open")
                ? ""
                : (await measure(c, op, ms)).toFixed(0),
            );
          }
          console.log(`| ${backend.name} | ${suite} | ${op} | ${kib} KiB | ${cols.join(" | ")} |`);
        }
      }
    }
  }
}
