/**
 * One direction of the tunnel's data path without sockets, as
 * `lib/tunnel/session.ts` drives it: a stream's bytes are read into a
 * buffer, queued with `mux.send`, pulled into record payloads, sealed (up
 * to 8 in flight), joined into writes, pushed into the peer's opener and
 * delivered by its mux, whose ACKs and window updates flow back. Resumption
 * is on (payloads are kept until ACKed), AES-256-GCM, no padding.
 *
 * Two layouts of the same path run in alternation, so they share the
 * machine's conditions:
 *
 * - `copying`: round 1's layout, `pull()` + `seal()` (the sealer copies the
 *   payload into the record and the ciphertext back behind the header), a
 *   new read buffer whenever the mux still holds the last one, a new joined
 *   buffer per batch of up to 64 KiB, and 1 MiB receive slabs (256 KiB
 *   reads) that are never reused;
 * - `zero-copy`: `pull(…, { headroom: 2 })` + `sealParts(…, { useHeadroom })`,
 *   read buffers reused once the mux has pulled their bytes, one reused
 *   batch buffer (writes of up to 1 MiB), one reused receive buffer (1 MiB
 *   reads) that records are opened from in place (`pushWhole`).
 *
 * Reported: MB/s (payload bytes over wall time, one process doing both
 * sides) and CPU seconds per GiB of the whole process (every thread: main,
 * V8 GC helpers, the Web Crypto pool), from `process.cpuUsage()`.
 *
 *   deno run bench/datapath_bench.ts [MiB per run, 1024] [rounds, 3] [copying | zero-copy]
 *
 * @module
 */
import process from "node:process";
import { Mux } from "../lib/mux/mod.ts";
import {
  createRecordOpener,
  createRecordSealer,
  MAX_RECORD_BYTES,
  PAD_PREFIX_BYTES,
  type RecordOpener,
  type RecordSealer,
} from "../lib/record/mod.ts";

const REQUEST = new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
const REPLY = new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
const READ_BYTES = 256 * 1024;
const SLAB_BYTES = 1024 * 1024;
const MAX_TX_INFLIGHT = 8;
const TX_COALESCE_BYTES = 64 * 1024;
/** Round 1 joined sealed records into writes of up to 64 KiB and read 256 KiB; round 2 1 MiB each. */
const TX_BATCH_BYTES = { "copying": 64 * 1024, "zero-copy": 1024 * 1024 } as const;
const TUNNEL_READ_BYTES = { "copying": 256 * 1024, "zero-copy": 1024 * 1024 } as const;
const WINDOWS = { streamWindow: 8 << 20, sessionWindow: 64 << 20, resume: true } as const;

type Layout = "copying" | "zero-copy";
const PULL_OPTIONS = { headroom: PAD_PREFIX_BYTES };

/** User + system CPU time of this process (all threads), in seconds. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Side {
  sender: Mux;
  receiver: Mux;
  sealer: RecordSealer;
  opener: RecordOpener;
  id: number;
}

async function connect(): Promise<Side> {
  const secret = new Uint8Array(32).fill(3);
  const sender = new Mux({ role: "server", ...WINDOWS });
  const receiver = new Mux({ role: "client", ...WINDOWS });
  const id = receiver.open(REQUEST);
  for (let r = receiver.pull(); r !== null; r = receiver.pull()) {
    for (const ev of sender.receive(r, 0)) if (ev.type === "open") sender.reply(ev.id, REPLY);
  }
  for (let r = sender.pull(); r !== null; r = sender.pull()) receiver.receive(r, 0);
  for (let r = receiver.pull(); r !== null; r = receiver.pull()) sender.receive(r, 0);
  return {
    sender,
    receiver,
    id,
    sealer: await createRecordSealer("aes-256-gcm", secret),
    opener: await createRecordOpener("aes-256-gcm", secret),
  };
}

/** Moves `total` bytes one way; returns payload bytes delivered. */
async function run(layout: Layout, total: number): Promise<number> {
  const { sender, receiver, sealer, opener, id } = await connect();
  const zero = layout === "zero-copy";
  const source = new Uint8Array(READ_BYTES).fill(0x5a); // what a socket read would copy in
  let readBuf: Uint8Array = new Uint8Array(0);
  const held: { buf: Uint8Array; end: number }[] = [];
  const free: Uint8Array[] = [];
  let batch = new Uint8Array(0);
  const txBatch = TX_BATCH_BYTES[layout];
  const rxRead = TUNNEL_READ_BYTES[layout];
  let rbuf = new Uint8Array(zero ? MAX_RECORD_BYTES + rxRead : SLAB_BYTES);
  let roff = 0; // copying: where the next read goes in the slab
  let start = 0; // zero-copy: the incomplete record is at [start, roff)
  let sent = 0;
  let delivered = 0;
  const inflight: { p: Promise<Uint8Array[]>; rec: Uint8Array[] | undefined }[] = [];

  while (delivered < total) {
    // The local socket: read while the mux gives credit and has little queued.
    while (sent < total && sender.credit(id) > 0 && sender.pendingBytes < 2 * READ_BYTES) {
      const want = Math.min(READ_BYTES, sender.credit(id), total - sent);
      const queued = sender.queued(id);
      if (zero) {
        // As #pumpSock: reuse a buffer once the mux has pulled all of its bytes.
        while (held.length > 0 && held[0]!.end <= sent - queued) free.push(held.shift()!.buf);
        readBuf = free.pop() ?? new Uint8Array(READ_BYTES);
        if (held.length < 4) held.push({ buf: readBuf, end: sent + want });
      } else if (queued > 0 || readBuf.length !== READ_BYTES) {
        readBuf = new Uint8Array(READ_BYTES);
      }
      readBuf.set(want === READ_BYTES ? source : source.subarray(0, want));
      let off = 0;
      while (off < want) off += sender.send(id, readBuf.subarray(off, want));
      sent += want;
    }
    // The write loop: seal up to 8 records, coalescing while earlier ones are sealed.
    while (inflight.length < MAX_TX_INFLIGHT) {
      if (inflight.length > 0 && sender.pendingBytes < TX_COALESCE_BYTES) break;
      const payload = zero ? sender.pull(undefined, PULL_OPTIONS) : sender.pull();
      if (payload === null) break;
      const entry = {
        p: zero
          ? sealer.sealParts(payload, { useHeadroom: true })
          : sealer.seal(payload).then((r) => [r]),
        rec: undefined as Uint8Array[] | undefined,
      };
      entry.p.then((r) => (entry.rec = r));
      inflight.push(entry);
    }
    if (inflight.length === 0) throw new Error("Data path stalled");
    const head = await inflight[0]!.p;
    let count = 1;
    let bytes = head.reduce((n, p) => n + p.length, 0);
    while (count < inflight.length) {
      const r = inflight[count]!.rec;
      if (r === undefined) break;
      const len = r.reduce((n, p) => n + p.length, 0);
      if (bytes + len > txBatch) break;
      bytes += len;
      count++;
    }
    let out: Uint8Array;
    if (zero) {
      if (batch.length < bytes) batch = new Uint8Array(Math.max(bytes, txBatch));
      out = batch.subarray(0, bytes);
    } else {
      out = count === 1 ? head[0]! : new Uint8Array(bytes);
    }
    if (!zero && count === 1) {
      // The record as sealed is written as it is.
    } else {
      for (let i = 0, o = 0; i < count; i++) {
        for (const part of i === 0 ? head : inflight[i]!.rec!) {
          out.set(part, o);
          o += part.length;
        }
      }
    }
    inflight.splice(0, count);

    // The peer's read loop: the socket read copies into its buffer, then records open in order.
    for (let o = 0; o < out.length;) {
      if (zero) {
        if (start === roff) {
          start = roff = 0;
        } else if (rbuf.length - roff < rxRead) {
          rbuf.copyWithin(0, start, roff);
          roff -= start;
          start = 0;
        }
      } else if (rbuf.length - roff < 64 * 1024) {
        rbuf = new Uint8Array(SLAB_BYTES);
        roff = 0;
      }
      const n = Math.min(rxRead, out.length - o, rbuf.length - roff);
      rbuf.set(out.subarray(o, o + n), roff);
      let records: Promise<Uint8Array>[];
      if (zero) {
        const r = opener.pushWhole(rbuf.subarray(start, roff + n));
        records = r.records;
        start += r.used;
      } else {
        records = opener.push(rbuf.subarray(roff, roff + n));
      }
      roff += n;
      o += n;
      for (const p of records) {
        for (const ev of receiver.receive(await p, 0)) {
          if (ev.type === "data") {
            delivered += ev.data.length;
            receiver.consumed(ev.id, ev.data.length);
          }
        }
      }
    }
    // ACKs and window updates flow back (not sealed: a few bytes per 128 KiB).
    receiver.flushAck();
    for (let r = receiver.pull(); r !== null; r = receiver.pull()) {
      for (const ev of sender.receive(r, 0)) {
        if (ev.type !== "writable" && ev.type !== "pong") throw new Error(`Unexpected ${ev.type}`);
      }
    }
  }
  for (const e of inflight) await e.p;
  return delivered;
}

if (import.meta.main) {
  const mib = Number(Deno.args[0] ?? 1024);
  const rounds = Number(Deno.args[1] ?? 3);
  const only = Deno.args[2] as Layout | undefined; // one layout, e.g. for --cpu-prof
  const total = mib * 1024 * 1024;
  await run("copying", 16 << 20); // warm up both
  await run("zero-copy", 16 << 20);
  const rows: Record<Layout, { mbps: number[]; cpu: number[] }> = {
    "copying": { mbps: [], cpu: [] },
    "zero-copy": { mbps: [], cpu: [] },
  };
  for (let r = 0; r < rounds; r++) {
    for (const layout of ["copying", "zero-copy"] as const) {
      if (only !== undefined && layout !== only) continue;
      const c0 = cpuSeconds();
      const t0 = performance.now();
      const n = await run(layout, total);
      const s = (performance.now() - t0) / 1000;
      const cpu = (cpuSeconds() - c0) / (n / 2 ** 30);
      rows[layout].mbps.push(n / s / 1e6);
      rows[layout].cpu.push(cpu);
      console.log(
        `${layout.padEnd(9)} ${(n / s / 1e6).toFixed(0)} MB/s  ${cpu.toFixed(2)} CPU s/GiB`,
      );
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  for (const [k, v] of Object.entries(rows)) {
    if (v.cpu.length === 0) continue;
    console.log(
      `median ${k.padEnd(9)} ${median(v.mbps).toFixed(0)} MB/s  ${
        median(v.cpu).toFixed(2)
      } CPU s/GiB (${rounds} runs of ${mib} MiB)`,
    );
  }
}
