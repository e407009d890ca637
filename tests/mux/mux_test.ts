import assert from "node:assert/strict";
import { assertProtocolError, assertThrowsWith } from "../support/assert.ts";
import {
  FrameType,
  INITIAL_SESSION_WINDOW,
  INITIAL_STREAM_WINDOW,
  MAX_WINDOW,
  MIN_PULL_BYTES,
  Mux,
  type MuxEvent,
  ResetReason,
} from "../../lib/mux/mod.ts";
import {
  concatAll,
  drainFrames,
  openStream,
  pair,
  pattern,
  pump,
  rawFrame,
  REPLY_OK,
  REQUEST,
} from "./_helpers.ts";

function types(evs: MuxEvent[]): string[] {
  return evs.map((e) => e.type);
}

/** A server that has accepted stream 1 (no WINDOW_UPDATE traffic needed: minimum windows). */
function serverWithStream1(opts: { streamWindow?: number; sessionWindow?: number } = {}): Mux {
  const server = new Mux({ role: "server", ...opts });
  const evs = server.receive(rawFrame(FrameType.OPEN, 1, REQUEST), 0);
  assert.deepEqual(types(evs), ["open"]);
  server.reply(1, REPLY_OK);
  drainFrames(server);
  return server;
}

// ---- opening and replying ---------------------------------------------------

Deno.test("Mux carries the raw SOCKS5 request in OPEN and the raw reply in REPLY", () => {
  const { client, server } = pair();
  const id = client.open(REQUEST);
  assert.equal(id, 1);
  assert.equal(client.open(REQUEST), 3);
  const evs = pump(client, server);
  const opens = evs.filter((e) => e.type === "open");
  assert.deepEqual(opens.map((e) => e.type === "open" && [e.id, [...e.request]]), [
    [1, [...REQUEST]],
    [3, [...REQUEST]],
  ]);
  server.reply(1, REPLY_OK);
  const back = pump(server, client);
  const reply = back.find((e) => e.type === "reply");
  assert.ok(reply?.type === "reply");
  assert.equal(reply.id, 1);
  assert.deepEqual([...reply.reply], [...REPLY_OK]);
  assert.equal(client.streamCount, 2);
  assert.equal(server.streamCount, 2);
});

Deno.test("Mux.open() copies the request, so the caller may reuse its buffer", () => {
  const { client, server } = pair();
  const req = REQUEST.slice();
  client.open(req);
  req.fill(0);
  const ev = pump(client, server).find((e) => e.type === "open");
  assert.ok(ev?.type === "open");
  assert.deepEqual([...ev.request], [...REQUEST]);
});

Deno.test("Mux.open() throws ProtocolError LIMIT past maxStreams", () => {
  const client = new Mux({ role: "client", maxStreams: 2 });
  client.open(REQUEST);
  client.open(REQUEST);
  assertProtocolError(
    () => client.open(REQUEST),
    "LIMIT",
    /^Cannot open stream: limit of 2 streams reached$/,
  );
});

Deno.test("Mux refuses roles' wrong calls loudly", () => {
  const { client, server } = pair();
  assertThrowsWith(
    () => server.open(REQUEST),
    TypeError,
    "Cannot open stream: only the client opens streams",
  );
  assertThrowsWith(
    () => client.reply(1, REPLY_OK),
    TypeError,
    "Cannot reply: only the server replies",
  );
  assertThrowsWith(
    () => client.open(new Uint8Array(0)),
    RangeError,
    "Cannot open stream: length 0 is not in [1, 512]",
  );
  assertThrowsWith(
    () => client.open(new Uint8Array(513)),
    RangeError,
    "Cannot open stream: length 513 is not in [1, 512]",
  );
  assertThrowsWith(
    () => new Mux({ role: "client", streamWindow: 1000 }),
    RangeError,
    "Cannot create mux: streamWindow 1000 is not an integer in [65536, 1073741824]",
  );
  assertThrowsWith(
    () => new Mux({ role: "client", sessionWindow: MAX_WINDOW + 1 }),
    RangeError,
    "Cannot create mux: sessionWindow 1073741825 is not an integer in [1048576, 1073741824]",
  );
  assertThrowsWith(
    () => client.pull(MIN_PULL_BYTES - 1),
    RangeError,
    "Cannot pull: maxBytes 519 is below the minimum 520",
  );
});

Deno.test("Mux server answers an OPEN past its limit with RESET LIMIT, not a crash", () => {
  const { client, server } = pair({ maxStreams: 10 }, { maxStreams: 2 });
  const ids = [client.open(REQUEST), client.open(REQUEST), client.open(REQUEST)];
  const sevs = pump(client, server);
  assert.equal(sevs.filter((e) => e.type === "open").length, 2);
  assert.equal(server.streamCount, 2);
  // the client keeps sending on the refused stream before it learns: ignored, credit returned
  assert.equal(client.send(ids[2]!, pattern(1000, 1)), 1000);
  assert.deepEqual(pump(client, server), []);
  const cevs = pump(server, client);
  const reset = cevs.find((e) => e.type === "reset");
  assert.ok(reset?.type === "reset");
  assert.equal(reset.id, ids[2]);
  assert.equal(reset.reason, ResetReason.LIMIT);
  assert.match(reset.message, /limit of 2 streams/);
  assert.ok(cevs.some((e) => e.type === "closed" && e.id === ids[2]));
  assert.equal(client.streamCount, 2);
});

// ---- data, FIN and half-close -------------------------------------------------

Deno.test("Mux delivers data both ways and closes only after both FINs", () => {
  const { client, server } = pair();
  const id = openStream(client, server);
  const up = pattern(300_000, 1);
  assert.equal(client.send(id, up), 300_000);
  client.finish(id);
  const got: Uint8Array[] = [];
  let fin = false;
  for (const ev of pump(client, server)) {
    if (ev.type === "data") {
      got.push(ev.data);
      server.consumed(id, ev.data.length);
    }
    if (ev.type === "fin") fin = true;
    assert.notEqual(ev.type, "closed");
  }
  assert.ok(fin);
  assert.deepEqual(concatAll(got), up);
  // half-closed: the server still sends
  assert.equal(server.send(id, pattern(10, 2)), 10);
  let cevs = pump(server, client);
  assert.deepEqual(types(cevs), ["data"]);
  assert.equal(server.streamCount, 1);
  server.finish(id);
  assert.equal(server.streamCount, 0, "freed as soon as its FIN is queued");
  assert.deepEqual(server.takeEvents(), [{ type: "closed", id }]);
  cevs = pump(server, client);
  assert.deepEqual(types(cevs), ["fin", "closed"]);
  assert.equal(client.streamCount, 0);
});

Deno.test("Mux orders FIN after the stream's queued DATA, across records", () => {
  const { client, server } = pair();
  const id = openStream(client, server);
  client.send(id, pattern(600_000, 3).subarray(0, 60_000));
  client.finish(id);
  const frames = drainFrames(client, 20_000);
  const mine = frames.filter((f) => f.streamId === id);
  assert.equal(mine.at(-1)!.type, FrameType.FIN);
  assert.ok(mine.slice(0, -1).every((f) => f.type === FrameType.DATA));
  assert.equal(mine.slice(0, -1).reduce((n, f) => n + f.payload.length, 0), 60_000);
});

Deno.test("Mux.send() after finish() throws; on the server before reply() too", () => {
  const { client, server } = pair();
  const id = client.open(REQUEST);
  pump(client, server);
  assert.throws(() => server.send(id, new Uint8Array(1)), /reply\(\) must come first/);
  assert.equal(server.credit(id), 0);
  client.finish(id);
  assert.throws(() => client.send(id, new Uint8Array(1)), /finish\(\) was already called/);
  assert.equal(client.credit(id), 0);
});

Deno.test("Mux client may send before the REPLY (up to the initial window)", () => {
  const { client, server } = pair();
  const id = client.open(REQUEST);
  assert.equal(client.credit(id), INITIAL_STREAM_WINDOW);
  assert.equal(client.send(id, pattern(100, 4)), 100);
  const evs = pump(client, server);
  assert.deepEqual(types(evs), ["open", "data"]);
});

Deno.test("Mux accepts a zero-length DATA and ignores PADDING", () => {
  const server = serverWithStream1();
  const rec = concatAll([
    rawFrame(FrameType.PADDING, 0, new Uint8Array(100)),
    rawFrame(FrameType.DATA, 1),
    rawFrame(FrameType.DATA, 1, [7]),
  ]);
  const evs = server.receive(rec, 0);
  assert.deepEqual(types(evs), ["data"]);
});

Deno.test("Mux answers PING with PONG and reports the round-trip time", () => {
  const { client, server } = pair();
  drainFrames(client);
  drainFrames(server);
  client.ping(1000);
  assert.deepEqual(pump(client, server, 1010), []);
  const evs = pump(server, client, 1042);
  assert.deepEqual(evs, [{ type: "pong", rttMs: 42 }]);
  // an unsolicited PONG is ignored
  assert.deepEqual(client.receive(rawFrame(FrameType.PONG, 0, new Uint8Array(8)), 2000), []);
});

Deno.test("Mux keeps at most one PONG pending however many PINGs arrive", () => {
  const server = new Mux({ role: "server" });
  drainFrames(server);
  const ping = rawFrame(FrameType.PING, 0, new Uint8Array(8));
  for (let i = 0; i < 1000; i++) server.receive(ping, 0);
  assert.equal(server.pendingBytes, 16);
});

// ---- reset ------------------------------------------------------------------

Deno.test("Mux.reset() drops queued data, frees at once and the peer sees reset then closed", () => {
  const { client, server } = pair();
  const id = openStream(client, server);
  client.send(id, pattern(50_000, 5));
  assert.ok(client.pendingBytes >= 50_000);
  const creditBefore = client.stats().sendCredit;
  client.reset(id, ResetReason.CANCEL, "bye");
  assert.equal(client.streamCount, 0);
  assert.equal(client.stats().queuedBytes, 0);
  assert.equal(
    client.stats().sendCredit,
    creditBefore + 50_000,
    "dropped bytes return session credit",
  );
  assert.deepEqual(client.takeEvents(), [{ type: "closed", id }]);
  const frames = drainFrames(client);
  assert.deepEqual(frames.map((f) => f.type), [FrameType.RESET]);
  // peer side
  client.reset(id, 0); // no-op now
  const evs = server.receive(
    rawFrame(FrameType.RESET, id, [ResetReason.CANCEL, ...new TextEncoder().encode("bye")]),
    0,
  );
  assert.deepEqual(evs, [
    { type: "reset", id, reason: ResetReason.CANCEL, message: "bye" },
    { type: "closed", id },
  ]);
  assert.equal(server.streamCount, 0);
});

Deno.test("Mux ignores late frames for a closed stream but returns their session credit", () => {
  const server = serverWithStream1({ sessionWindow: INITIAL_SESSION_WINDOW });
  server.reset(1, ResetReason.CANCEL);
  assert.deepEqual(server.takeEvents(), [{ type: "closed", id: 1 }]);
  drainFrames(server);
  const late = concatAll([
    rawFrame(FrameType.DATA, 1, new Uint8Array(600_000)),
    rawFrame(FrameType.WINDOW_UPDATE, 1, [0, 0, 1, 0]),
    rawFrame(FrameType.FIN, 1),
    rawFrame(FrameType.RESET, 1, [0]),
  ]);
  assert.deepEqual(server.receive(late, 0), []);
  // more than half the session window came in late: it goes straight back
  assert.deepEqual(drainFrames(server).map((f) => [f.type, f.streamId, [...f.payload]]), [
    [FrameType.WINDOW_UPDATE, 0, [0, 9, 0x27, 0xc0]],
  ]);
  assert.equal(server.stats().recvWindow, INITIAL_SESSION_WINDOW);
  // but the session window is still enforced for late DATA
  const big = rawFrame(FrameType.DATA, 1, new Uint8Array(INITIAL_SESSION_WINDOW + 1));
  assertProtocolError(() => server.receive(big, 0), "LIMIT", /flow control violation/);
});

Deno.test("Mux.reset() truncates a long message to 256 UTF-8 bytes at a character boundary", () => {
  const { client, server } = pair();
  const id = openStream(client, server);
  client.reset(id, ResetReason.INTERNAL, "é".repeat(200));
  const evs = pump(client, server);
  const r = evs.find((e) => e.type === "reset");
  assert.ok(r?.type === "reset");
  assert.equal(r.message, "é".repeat(128));
  assertThrowsWith(
    () => client.reset(1, 256),
    RangeError,
    "Cannot reset stream 1: reason 256 is not a u8",
  );
});

Deno.test("Mux.reset() forgets unconsumed data: later consumed() calls are ignored", () => {
  const server = serverWithStream1({ sessionWindow: INITIAL_SESSION_WINDOW });
  server.receive(rawFrame(FrameType.DATA, 1, new Uint8Array(300_000)), 0);
  server.reset(1, ResetReason.CANCEL);
  server.consumed(1, 300_000); // ignored: counting it again would reach half the window
  assert.deepEqual(drainFrames(server).map((f) => f.type), [FrameType.RESET]);
  assert.equal(server.stats().recvWindow, INITIAL_SESSION_WINDOW - 300_000);
});

// ---- flow control -----------------------------------------------------------

Deno.test("Mux detects DATA beyond the stream window as a FLOW_CONTROL violation", () => {
  const server = serverWithStream1({ streamWindow: INITIAL_STREAM_WINDOW });
  server.receive(rawFrame(FrameType.DATA, 1, new Uint8Array(INITIAL_STREAM_WINDOW - 10)), 0);
  assertProtocolError(
    () => server.receive(rawFrame(FrameType.DATA, 1, new Uint8Array(11)), 0),
    "LIMIT",
    /^Cannot accept DATA on stream 1: flow control violation, 11 bytes exceed the stream window 10$/,
  );
});

Deno.test("Mux detects DATA beyond the session window as a FLOW_CONTROL violation", () => {
  const server = new Mux({
    role: "server",
    streamWindow: 1 << 20,
    sessionWindow: INITIAL_SESSION_WINDOW,
  });
  server.receive(
    concatAll([rawFrame(FrameType.OPEN, 1, REQUEST), rawFrame(FrameType.OPEN, 3, REQUEST)]),
    0,
  );
  // The larger stream window is granted with the REPLY.
  server.reply(1, REPLY_OK);
  server.reply(3, REPLY_OK);
  server.receive(rawFrame(FrameType.DATA, 1, new Uint8Array(900_000)), 0);
  assertProtocolError(
    () => server.receive(rawFrame(FrameType.DATA, 3, new Uint8Array(200_000)), 0),
    "LIMIT",
    /stream 3: flow control violation, 200000 bytes exceed the session window 148576$/,
  );
});

Deno.test("Mux detects a WINDOW_UPDATE that overflows the maximum window", () => {
  const { client, server } = pair();
  const id = openStream(client, server);
  assertProtocolError(
    () => client.receive(rawFrame(FrameType.WINDOW_UPDATE, id, [0x40, 0, 0, 0]), 0),
    "LIMIT",
    /WINDOW_UPDATE on stream 1: flow control violation/,
  );
  assertProtocolError(
    () => client.receive(rawFrame(FrameType.WINDOW_UPDATE, 0, [0x40, 0, 0, 0]), 0),
    "LIMIT",
    /WINDOW_UPDATE on stream 0: flow control violation/,
  );
});

Deno.test("Mux sender never exceeds the peer's windows and resumes on writable", () => {
  const opts = { streamWindow: INITIAL_STREAM_WINDOW, sessionWindow: INITIAL_SESSION_WINDOW };
  const { client, server } = pair(opts, opts);
  const id = openStream(client, server);
  const data = pattern(200_000, 6);
  const took = client.send(id, data);
  assert.equal(took, INITIAL_STREAM_WINDOW);
  assert.equal(client.credit(id), 0);
  assert.equal(client.send(id, data.subarray(took)), 0);
  const evs = pump(client, server);
  const delivered = evs.reduce((n, e) => n + (e.type === "data" ? e.data.length : 0), 0);
  assert.equal(delivered, INITIAL_STREAM_WINDOW);
  // nothing comes back until the app consumes
  assert.deepEqual(pump(server, client), []);
  server.consumed(id, 10_000); // below half a window: no update yet
  assert.equal(server.pendingBytes, 0);
  server.consumed(id, INITIAL_STREAM_WINDOW - 10_000);
  const back = pump(server, client);
  assert.deepEqual(back, [{ type: "writable", id }]);
  assert.equal(client.credit(id), INITIAL_STREAM_WINDOW);
});

Deno.test("Mux.consumed() refuses more bytes than were delivered", () => {
  const server = serverWithStream1();
  server.receive(rawFrame(FrameType.DATA, 1, new Uint8Array(10)), 0);
  assertThrowsWith(
    () => server.consumed(1, 11),
    RangeError,
    "Cannot consume 11 bytes on stream 1: only 10 were delivered",
  );
  assertThrowsWith(
    () => server.consumed(1, -1),
    RangeError,
    "Cannot consume on stream 1: -1 is not a byte count",
  );
  server.consumed(1, 10);
});

Deno.test("Mux raises windows above the initial ones with WINDOW_UPDATEs sent at once", () => {
  const { client, server } = pair({ streamWindow: 4 << 20, sessionWindow: 32 << 20 });
  const id = client.open(REQUEST);
  const frames = drainFrames(client);
  assert.deepEqual(frames.map((f) => [f.type, f.streamId]), [
    [FrameType.WINDOW_UPDATE, 0],
    [FrameType.OPEN, id],
    [FrameType.WINDOW_UPDATE, id],
  ]);
  void server;
});

Deno.test("Mux keeps the rest of a closed stream's data owed until consumed", () => {
  const { client, server } = pair();
  const id = openStream(client, server);
  client.send(id, pattern(5000, 8));
  client.finish(id);
  pump(client, server); // data + fin, not consumed yet
  server.finish(id);
  assert.equal(server.streamCount, 0);
  assert.equal(server.stats().owedStreams, 1);
  assertThrowsWith(
    () => server.consumed(id, 5001),
    RangeError,
    "Cannot consume 5001 bytes on stream 1: only 5000 were delivered",
  );
  server.consumed(id, 4000);
  server.consumed(id, 1000);
  assert.equal(server.stats().owedStreams, 0);
  server.consumed(id, 1); // nothing owed any more: ignored
});

Deno.test("Mux starts a new stream's idle time at open(), even before anything was received", () => {
  const client = new Mux({ role: "client" });
  const id = client.open(REQUEST, 10_000_000);
  assert.deepEqual(client.idleStreams(10_000_250, 300_000), []);
  assert.deepEqual(client.idleStreams(10_300_000, 300_000), [id]);
});
