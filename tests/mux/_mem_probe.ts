/**
 * Measures the heap held per idle stream by a client and a server mux.
 * Run with `--v8-flags=--expose-gc`; prints JSON. Used by scale_test.ts.
 *
 * @module
 */
import { Mux } from "../../lib/mux/mod.ts";

const N = Number(Deno.args[0] ?? 10_000);
const REQUEST = new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
const REPLY = new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

function heap(): number {
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed;
}

const client = new Mux({ role: "client", maxStreams: N });
const server = new Mux({ role: "server", maxStreams: N });
const records: Uint8Array[] = [];

const c0 = heap();
for (let i = 0; i < N; i++) client.open(REQUEST);
for (let r = client.pull(); r !== null; r = client.pull()) records.push(r);
const c1 = heap();

const s0 = heap();
for (const r of records.splice(0)) {
  for (const ev of server.receive(r, 0)) if (ev.type === "open") server.reply(ev.id, REPLY);
}
for (let r = server.pull(); r !== null; r = server.pull()) records.push(r);
const s1 = heap();
for (const r of records.splice(0)) client.receive(r, 0);
const c2 = heap();

console.log(JSON.stringify({
  streams: [client.streamCount, server.streamCount],
  // the server's growth happened between s0 and s1: leave it out
  clientBytesPerStream: Math.round((c1 - c0 + (c2 - s1)) / N),
  serverBytesPerStream: Math.round((s1 - s0) / N),
}));
