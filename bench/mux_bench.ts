/**
 * Session layer throughput: frame codec, and a client → server pull/receive
 * loop with the receiver consuming everything (no I/O, no crypto).
 *
 * MB/s = bytes per iteration (in the bench name) / time per iteration.
 * Run: `deno bench bench/mux_bench.ts`
 *
 * @module
 */
import { Writer } from "../lib/wire/bytes.ts";
import { decodeFrames, encodeFrame, type Frame, FrameType, Mux } from "../lib/mux/mod.ts";

const REQUEST = new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
const REPLY = new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
const MIB = 1 << 20;

function dataFrames(size: number, count: number): Frame[] {
  const payload = new Uint8Array(size);
  return Array.from(
    { length: count },
    (_, i) => ({ type: FrameType.DATA, streamId: 2 * i + 1, payload }),
  );
}

for (const [size, count] of [[16 << 10, 16], [1024, 200], [64, 2000]] as const) {
  const frames = dataFrames(size, count);
  const w0 = new Writer(count * (size + 8));
  for (const f of frames) encodeFrame(w0, f);
  const record = w0.finish().slice();
  const label = `${count} x ${size} B = ${((count * size) / MIB).toFixed(2)} MiB`;
  Deno.bench({
    name: `encodeFrame ${label}`,
    group: `codec ${size}`,
    fn() {
      const w = new Writer(record.length);
      for (const f of frames) encodeFrame(w, f);
      w.finish();
    },
  });
  Deno.bench({
    name: `decodeFrames ${label}`,
    group: `codec ${size}`,
    fn() {
      decodeFrames(record);
    },
  });
}

/** A connected pair with `streams` open streams on the client. */
function connected(streams: number): { client: Mux; server: Mux; ids: number[] } {
  const opts = { maxStreams: streams, streamWindow: 16 * MIB, sessionWindow: 64 * MIB };
  const client = new Mux({ role: "client", ...opts });
  const server = new Mux({ role: "server", ...opts });
  const ids: number[] = [];
  for (let i = 0; i < streams; i++) ids.push(client.open(REQUEST));
  for (let r = client.pull(); r !== null; r = client.pull()) {
    for (const ev of server.receive(r, 0)) if (ev.type === "open") server.reply(ev.id, REPLY);
  }
  for (let r = server.pull(); r !== null; r = server.pull()) client.receive(r, 0);
  return { client, server, ids };
}

/** Moves `total` bytes split over the given streams through pull/receive/consumed. */
function transfer(pairs: ReturnType<typeof connected>, total: number, chunk: Uint8Array): void {
  const { client, server, ids } = pairs;
  let left = total;
  while (left > 0) {
    let progressed = false;
    for (const id of ids) {
      if (left <= 0) break;
      const n = client.send(id, left < chunk.length ? chunk.subarray(0, left) : chunk);
      left -= n;
      if (n > 0) progressed = true;
    }
    for (let r = client.pull(); r !== null; r = client.pull()) {
      for (const ev of server.receive(r, 0)) {
        if (ev.type === "data") server.consumed(ev.id, ev.data.length);
      }
    }
    for (let r = server.pull(); r !== null; r = server.pull()) client.receive(r, 0);
    if (!progressed && client.pendingBytes === 0) throw new Error("stalled");
  }
}

const TOTAL = 64 * MIB;
const one = connected(1);
const many = connected(100);
const chunk64k = new Uint8Array(64 << 10);
const chunk1k = new Uint8Array(1024);

Deno.bench({
  name: "pull/receive 64 MiB, 1 stream, 64 KiB sends",
  group: "loop",
  baseline: true,
  fn() {
    transfer(one, TOTAL, chunk64k);
  },
});
Deno.bench({
  name: "pull/receive 64 MiB, 100 streams, 64 KiB sends",
  group: "loop",
  fn() {
    transfer(many, TOTAL, chunk64k);
  },
});
Deno.bench({
  name: "pull/receive 16 MiB, 100 streams, 1 KiB sends",
  group: "loop",
  fn() {
    transfer(many, 16 * MIB, chunk1k);
  },
});
