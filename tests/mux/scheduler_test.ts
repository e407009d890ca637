import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import {
  decodeFrames,
  FrameType,
  INITIAL_SESSION_WINDOW,
  Mux,
  ResetReason,
} from "../../lib/mux/mod.ts";
import { drainFrames, openStream, pair, pattern, pump, rawFrame, REQUEST } from "./_helpers.ts";

Deno.test("Mux scheduler: a 100-byte stream is not starved by 50 MiB queued on another", () => {
  const big = { streamWindow: 64 << 20, sessionWindow: 128 << 20 };
  const { client, server } = pair(big, big);
  const bulk = openStream(client, server);
  const small = openStream(client, server);
  const fifty = new Uint8Array(50 << 20);
  assert.equal(client.send(bulk, fifty), 50 << 20);
  for (let i = 0; i < 3; i++) client.pull(); // the bulk stream is mid-flight
  assert.equal(client.send(small, pattern(100, 1)), 100);
  const seen: number[] = [];
  for (let pulls = 1; pulls <= 2; pulls++) {
    const rec = client.pull()!;
    assert.ok(rec.length <= 256 << 10);
    for (const f of decodeFrames(rec)) if (f.streamId === small) seen.push(f.payload.length);
    if (seen.length > 0) break;
  }
  assert.deepEqual(seen, [100]);
});

Deno.test("Mux scheduler: DATA is shared round-robin by quantum between busy streams", () => {
  const big = { streamWindow: 4 << 20, sessionWindow: 16 << 20, quantum: 4096 };
  const { client, server } = pair(big, big);
  const a = openStream(client, server);
  const b = openStream(client, server);
  const c = openStream(client, server);
  client.send(a, new Uint8Array(1 << 20));
  client.send(b, new Uint8Array(1 << 20));
  client.send(c, new Uint8Array(300));
  const frames = decodeFrames(client.pull()!);
  const per = new Map<number, number>();
  for (const f of frames) per.set(f.streamId, (per.get(f.streamId) ?? 0) + f.payload.length);
  assert.equal(per.get(c), 300);
  assert.ok(Math.abs(per.get(a)! - per.get(b)!) <= 4096, `a ${per.get(a)} b ${per.get(b)}`);
  // in order a, b, c, a, b, a, b ...
  assert.deepEqual(frames.slice(0, 3).map((f) => f.streamId), [a, b, c]);
});

Deno.test("Mux scheduler: a lone stream fills records without a header per quantum", () => {
  const big = { streamWindow: 4 << 20, sessionWindow: 16 << 20 };
  const { client, server } = pair(big, big);
  const a = openStream(client, server);
  client.send(a, new Uint8Array(1 << 20));
  const frames = decodeFrames(client.pull()!);
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.payload.length, (256 << 10) - 8);
});

Deno.test("Mux scheduler: control frames go first and pull() honours maxBytes", () => {
  const { client, server } = pair();
  const a = openStream(client, server);
  client.send(a, new Uint8Array(5000));
  client.ping(1);
  const id = client.open(REQUEST);
  const rec = client.pull(1000)!;
  assert.ok(rec.length <= 1000);
  const frames = decodeFrames(rec);
  assert.deepEqual(frames.slice(0, 2).map((f) => f.type), [FrameType.PING, FrameType.OPEN]);
  assert.equal(frames[2]!.type, FrameType.WINDOW_UPDATE);
  assert.equal(frames[2]!.streamId, id);
  assert.equal(frames[3]!.type, FrameType.DATA);
  assert.equal(rec.length, 1000, "DATA is split to fill the record");
});

Deno.test("Mux: small sends are coalesced, large ones kept as views until pulled", () => {
  const { client, server } = pair();
  const a = openStream(client, server);
  for (let i = 0; i < 5000; i++) assert.equal(client.send(a, new Uint8Array([i & 0xff])), 1);
  const big = pattern(10_000, 2);
  client.send(a, big);
  big[0] = 0xee; // not copied: the change is visible until pulled (documented ownership)
  assert.equal(client.queued(a), 15_000);
  const got: number[] = [];
  for (const f of drainFrames(client)) if (f.type === FrameType.DATA) got.push(...f.payload);
  assert.equal(got.length, 15_000);
  for (let i = 0; i < 5000; i++) assert.equal(got[i], i & 0xff);
  assert.equal(got[5000], 0xee);
  assert.equal(client.queued(a), 0);
});

Deno.test("Mux emits writable when session credit returns to a blocked stream", () => {
  const opts = { streamWindow: 1 << 20, sessionWindow: INITIAL_SESSION_WINDOW };
  const { client, server } = pair(opts, opts);
  const a = openStream(client, server);
  const b = openStream(client, server);
  assert.equal(client.send(a, new Uint8Array(700_000)), 700_000);
  assert.equal(client.send(b, new Uint8Array(700_000)), INITIAL_SESSION_WINDOW - 700_000);
  assert.equal(client.credit(b), 0);
  assert.equal(client.credit(a), 0);
  for (const ev of pump(client, server)) {
    if (ev.type === "data") server.consumed(ev.id, ev.data.length);
  }
  const evs = pump(server, client).filter((e) => e.type === "writable").map((e) =>
    e.type === "writable" && e.id
  );
  assert.deepEqual(evs.sort(), [a, b].sort());
  assert.ok(client.credit(b) > 0);
});

Deno.test("Mux.idleStreams() lists streams without traffic, least recent first", () => {
  const { client, server } = pair();
  const a = client.open(REQUEST);
  const b = client.open(REQUEST);
  pump(client, server, 0);
  for (const id of [a, b]) server.reply(id, new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
  pump(server, client, 1000);
  // b hears from the server at 5000, a does not
  server.send(b, new Uint8Array(1));
  pump(server, client, 5000);
  assert.deepEqual(client.idleStreams(6000, 5000), [a]);
  assert.deepEqual(client.idleStreams(12_000, 5000), [a, b]);
  assert.deepEqual(client.idleStreams(12_000, 60_000), []);
});

Deno.test("Mux GOAWAY: no new streams either way; crossing OPENs are refused GOING_AWAY", () => {
  const { client, server } = pair();
  const a = openStream(client, server);
  const late = client.open(REQUEST); // crosses the GOAWAY on the wire
  server.goaway();
  const evs = pump(server, client);
  assert.deepEqual(evs, [{ type: "goaway", lastId: a }]);
  assert.throws(
    () => client.open(REQUEST),
    (e: unknown) => e instanceof ProtocolError && e.code === "CLOSED",
  );
  assert.deepEqual(pump(client, server), []);
  const back = pump(server, client);
  assert.deepEqual(back, [
    { type: "reset", id: late, reason: ResetReason.GOING_AWAY, message: "going away" },
    { type: "closed", id: late },
  ]);
  // the stream opened before GOAWAY still works
  assert.equal(client.send(a, new Uint8Array(3)), 3);
  assert.equal(pump(client, server).length, 1);
});

Deno.test("Mux cuts off a peer that floods OPENs past the limit without reading", () => {
  const server = new Mux({ role: "server", maxStreams: 1 });
  let id = 1;
  assert.throws(
    () => {
      for (let i = 0; i < 10_000; i++, id += 2) {
        server.receive(
          rawFrame(FrameType.OPEN, id, REQUEST),
          0,
        );
      }
    },
    (e: unknown) =>
      e instanceof ProtocolError && e.code === "LIMIT" && /peer is not reading/.test(e.message),
  );
  assert.equal((id - 1) / 2, 1 + 4096, "one accepted, 4096 refusals queued, then cut off");
});
