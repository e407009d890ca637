/**
 * DATAGRAM frames (docs/PROTOCOL.md part 5 section 12): the codec against
 * tests/vectors/datagram_v1.json, and the mux rules: never counted, kept or
 * resent, never credited, a payload of their own, a bounded queue that
 * drops the oldest first, and a fair share next to stream data.
 */
import { strict as assert } from "node:assert";
import { assertProtocolError } from "../support/assert.ts";
import {
  decodeFrames,
  encodeFrame,
  type Frame,
  FrameType,
  Mux,
  type MuxEvent,
  Writer,
} from "../../lib/mux/mod.ts";
import { decodeUdpAddress } from "../../lib/socks5/mod.ts";
import { openStream, pair, pattern, pump, REPLY_OK } from "./_helpers.ts";

interface Vectors {
  valid: {
    why: string;
    stream: number;
    frame: string;
    address_type: string;
    host: string;
    port: number;
    data: string;
  }[];
  invalid: { why: string; frame: string; code: string }[];
  mixed_invalid: { why: string; record: string; code: string }[];
  not_counted: { why: string; record: string }[];
}

const V: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/datagram_v1.json", import.meta.url)),
);

function hex(s: string): Uint8Array {
  return new Uint8Array(s.match(/../g)?.map((b) => parseInt(b, 16)) ?? []);
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const ADDR = new Uint8Array([1, 127, 0, 0, 1, 0, 53]);
/** A UDP ASSOCIATE request (RFC 1928 section 4, CMD 3, 0.0.0.0:0). */
const ASSOCIATE = new Uint8Array([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]);

function datagrams(evs: MuxEvent[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const e of evs) if (e.type === "datagram") out.push(e.datagram);
  return out;
}

/** A client and server with association stream 1 open both ways. */
function associated(opts: { resume?: boolean; datagramQueueBytes?: number } = {}) {
  const { client, server } = pair(opts, opts);
  const id = client.open(ASSOCIATE);
  for (const ev of pump(client, server)) if (ev.type === "open") server.reply(ev.id, REPLY_OK);
  pump(server, client);
  return { client, server, id };
}

Deno.test("DATAGRAM vectors: valid frames decode to their address and data, and encode back", () => {
  for (const v of V.valid) {
    const frames = decodeFrames(hex(v.frame));
    assert.equal(frames.length, 1, v.why);
    const f = frames[0]!;
    assert.equal(f.type, FrameType.DATAGRAM, v.why);
    assert.equal(f.streamId, v.stream, v.why);
    const alen = f.payload.length - v.data.length / 2;
    assert.deepEqual(decodeUdpAddress(f.payload.subarray(0, alen)), {
      addressType: v.address_type,
      host: v.host,
      port: v.port,
    }, v.why);
    assert.equal(toHex(f.payload.subarray(alen)), v.data, v.why);
    const w = new Writer();
    encodeFrame(w, f);
    assert.equal(toHex(w.finish()), v.frame, v.why);
  }
});

Deno.test("DATAGRAM vectors: malformed frames are refused with their code", () => {
  for (const v of V.invalid) {
    assertProtocolError(() => decodeFrames(hex(v.frame)), v.code, /./);
  }
});

Deno.test("DATAGRAM vectors: a record mixing DATAGRAM with a counted frame is refused", () => {
  for (const v of V.mixed_invalid) {
    const { client } = associated();
    assertProtocolError(() => client.receive(hex(v.record), 0), v.code, /share a record/);
  }
});

Deno.test("DATAGRAM vectors: records of datagrams, ACK and PADDING are accepted and not counted", () => {
  for (const v of V.not_counted) {
    const { client } = associated({ resume: true });
    const before = client.resumeState();
    const evs = client.receive(hex(v.record), 0);
    assert.equal(datagrams(evs).length, 1, v.why);
    client.connectionLost();
    assert.deepEqual(client.resumeState(), before, v.why);
  }
});

Deno.test("Mux.sendDatagram() goes out in a payload of its own, uncounted, and arrives with its address", () => {
  const { client, server, id } = associated({ resume: true });
  assert.equal(client.sendDatagram(id, ADDR, new Uint8Array([104, 105])), true);
  const sent = server.stats();
  const kept = client.stats().unackedPayloads;
  const r = client.pull()!;
  const frames = decodeFrames(r, { resume: true });
  assert.deepEqual(frames.map((f: Frame) => f.type).filter((t) => t !== FrameType.ACK), [
    FrameType.DATAGRAM,
  ]);
  const evs = server.receive(r, 0);
  const [d] = datagrams(evs);
  assert.deepEqual(d, new Uint8Array([...ADDR, 104, 105]));
  // The 3 bytes before the datagram are the frame's length: free for the receiver.
  assert.ok(d!.byteOffset >= 3);
  assert.equal(server.stats().datagramsReceived, sent.datagramsReceived + 1);
  assert.equal(client.stats().unackedPayloads, kept); // the datagram's payload is not kept
  assert.equal(client.stats().datagramsSent, 1);
});

Deno.test("Mux: datagrams pulled before a lost connection are never resent after resuming", () => {
  const { client, server, id } = associated({ resume: true });
  // Everything so far acknowledged, so only the datagrams are in flight.
  server.flushAck();
  pump(server, client);
  for (let i = 0; i < 5; i++) client.sendDatagram(id, ADDR, pattern(100, i));
  const lost = client.pull();
  assert.notEqual(lost, null);
  assert.equal(client.stats().unackedPayloads, 0);
  client.connectionLost();
  server.connectionLost();
  client.onPeerResumed(server.resumeState().received);
  server.onPeerResumed(client.resumeState().received);
  assert.equal(client.pull(), null);
  // The association itself goes on.
  client.sendDatagram(id, ADDR, pattern(10, 9));
  assert.deepEqual(datagrams(pump(client, server)), [new Uint8Array([...ADDR, ...pattern(10, 9)])]);
});

Deno.test("Mux: datagrams spend no credit and pass a stream with none left", () => {
  const { client, server, id } = associated();
  const s = openStream(client, server);
  // Fill the stream's credit without the server consuming anything.
  while (client.credit(s) > 0) client.send(s, pattern(Math.min(client.credit(s), 65536), 1));
  pump(client, server);
  assert.equal(client.credit(s), 0);
  const before = client.stats().sendCredit;
  client.sendDatagram(id, ADDR, pattern(1400, 2));
  assert.equal(client.stats().sendCredit, before);
  assert.equal(datagrams(pump(client, server)).length, 1);
});

Deno.test("Mux: a full datagram queue drops the oldest first and counts it", () => {
  const { client, server, id } = associated({ datagramQueueBytes: 4096 });
  // Each frame is 8 + 7 + 1000 = 1015 bytes: four fit in 4 KiB.
  for (let i = 0; i < 10; i++) client.sendDatagram(id, ADDR, pattern(1000, i));
  const st = client.stats();
  assert.equal(st.datagramsQueued, 4);
  assert.equal(st.datagramsDropped, 6);
  assert.ok(st.datagramQueueBytes <= 4096);
  const got = datagrams(pump(client, server)).map((d) => d[7]);
  assert.deepEqual(got, [6, 7, 8, 9].map((i) => pattern(1000, i)[0]));
});

Deno.test("Mux: the datagram queue holds at most 1024 datagrams, whatever their size", () => {
  const { client, id } = associated();
  for (let i = 0; i < 5000; i++) client.sendDatagram(id, ADDR, new Uint8Array(1));
  assert.equal(client.stats().datagramsQueued, 1024);
  assert.equal(client.stats().datagramsDropped, 5000 - 1024);
});

Deno.test("Mux.sendDatagram() refuses a closed stream, a bad address and a frame too large for a record", () => {
  const { client, server, id } = associated();
  assert.equal(client.sendDatagram(id, ADDR.subarray(0, 5), new Uint8Array(1)), false);
  assert.equal(client.sendDatagram(id, ADDR, new Uint8Array(65536)), false);
  const small = new Mux({ role: "client", maxRecordPayload: 1024 });
  const sid = small.open(ASSOCIATE);
  assert.equal(small.sendDatagram(sid, ADDR, new Uint8Array(1024)), false);
  assert.equal(small.sendDatagram(sid, ADDR, new Uint8Array(900)), true);
  client.reset(id, 0);
  assert.equal(client.sendDatagram(id, ADDR, new Uint8Array(1)), false);
  assert.equal(client.stats().datagramsDropped, 3);
  pump(client, server);
});

Deno.test("Mux: datagrams queued for a stream reset before the pull are dropped, not sent", () => {
  const { client, server, id } = associated();
  client.sendDatagram(id, ADDR, new Uint8Array(3));
  client.reset(id, 0);
  const evs = pump(client, server);
  assert.equal(datagrams(evs).length, 0);
  assert.equal(client.stats().datagramsDropped, 1);
  assert.equal(client.stats().datagramsQueued, 0);
});

Deno.test("Mux: datagram payloads and stream payloads take turns while both wait", () => {
  const { client, server, id } = associated();
  const s = openStream(client, server);
  client.send(s, pattern(600_000, 3));
  for (let i = 0; i < 2000; i++) client.sendDatagram(id, ADDR, pattern(500, i));
  const kinds: string[] = [];
  // Records of 16 KiB: about 30 datagrams each, so the queue lasts many records.
  for (let r = client.pull(16384); r !== null && kinds.length < 6; r = client.pull(16384)) {
    const types = new Set(decodeFrames(r).map((f) => f.type));
    kinds.push(types.has(FrameType.DATAGRAM) ? "datagrams" : "stream");
  }
  assert.deepEqual(kinds, ["datagrams", "stream", "datagrams", "stream", "datagrams", "stream"]);
});

Deno.test("Mux: a DATAGRAM before the REPLY, or for a stream never opened, breaks the protocol", () => {
  const client = new Mux({ role: "client" });
  const id = client.open(ASSOCIATE);
  client.pull();
  const w = new Writer();
  encodeFrame(w, { type: FrameType.DATAGRAM, streamId: id, payload: ADDR });
  const rec = w.finish();
  assertProtocolError(() => client.receive(rec, 0), "BAD_STATE", /DATAGRAM before REPLY/);
  const server = new Mux({ role: "server" });
  assertProtocolError(() => server.receive(rec, 0), "BAD_STATE", /never opened/);
});
