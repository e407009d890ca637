/**
 * Session resumption (40-session.md section 11): after a lost connection
 * both sides say what they received and the missing payloads are resent,
 * unchanged and in order, so no stream notices.
 */
import assert from "node:assert/strict";
import { assertProtocolError, assertThrowsWith } from "../support/assert.ts";
import {
  decodeFrames,
  FrameType,
  INITIAL_SESSION_WINDOW,
  INITIAL_STREAM_WINDOW,
  Mux,
  type MuxEvent,
  type MuxOptions,
} from "../../lib/mux/mod.ts";
import { concatAll, pattern, REPLY_OK, REQUEST } from "./_helpers.ts";

const QUIET = {
  resume: true,
  streamWindow: INITIAL_STREAM_WINDOW,
  sessionWindow: INITIAL_SESSION_WINDOW,
} as const;

/** A resumable client and server with stream 1 open and replied. */
function connected(opts: Partial<MuxOptions> = QUIET): { client: Mux; server: Mux } {
  const client = new Mux({ ...opts, resume: true, role: "client" });
  const server = new Mux({ ...opts, resume: true, role: "server" });
  client.open(REQUEST);
  for (let r = client.pull(); r !== null; r = client.pull()) server.receive(r, 0);
  server.reply(1, REPLY_OK);
  for (let r = server.pull(); r !== null; r = server.pull()) client.receive(r, 0);
  return { client, server };
}

/** Both sides lose the connection and resume with each other's resumeState(). */
function reconnect(a: Mux, b: Mux): void {
  a.connectionLost();
  b.connectionLost();
  const ra = a.resumeState().received;
  const rb = b.resumeState().received;
  a.onPeerResumed(rb);
  b.onPeerResumed(ra);
}

/** Pulls everything from `from` into `to`; returns the data bytes `to` saw per stream. */
function deliver(
  from: Mux,
  to: Mux,
  sink: Map<number, Uint8Array[]> = new Map(),
): Map<number, Uint8Array[]> {
  for (let r = from.pull(); r !== null; r = from.pull()) collect(to.receive(r, 0), to, sink);
  return sink;
}

function collect(evs: MuxEvent[], at: Mux, sink: Map<number, Uint8Array[]>): void {
  for (const ev of evs) {
    if (ev.type !== "data") continue;
    const list = sink.get(ev.id) ?? [];
    list.push(ev.data.slice());
    sink.set(ev.id, list);
    at.consumed(ev.id, ev.data.length);
  }
}

Deno.test("Mux resends the payloads the peer missed, unchanged and in order, before anything new", () => {
  const { client, server } = connected();
  const data = pattern(30_000, 3);
  const sink = new Map<number, Uint8Array[]>();
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) {
    client.send(1, data.subarray(i * 10_000, (i + 1) * 10_000));
    sent.push(client.pull(4096 + 600)!);
  }
  while (true) {
    const r = client.pull();
    if (r === null) break;
    sent.push(r);
  }
  const copies = sent.map((p) => p.slice());
  collect(server.receive(sent[0]!, 0), server, sink); // the rest is lost with the connection
  client.send(1, pattern(500, 4)); // queued while the connection is down
  reconnect(client, server);
  assert.equal(client.stats().unackedPayloads, sent.length - 1);
  for (let i = 1; i < sent.length; i++) {
    const again = client.pull()!;
    assert.equal(again, sent[i], `payload ${i + 1} is the same array`);
    assert.deepEqual(again, copies[i]);
    collect(server.receive(again, 0), server, sink);
  }
  deliver(client, server, sink);
  assert.deepEqual(concatAll(sink.get(1)!), concatAll([data, pattern(500, 4)]));
});

Deno.test("Mux.onPeerResumed() forgets what the peer had and rejects impossible counts", () => {
  const { client, server } = connected();
  const payloads: Uint8Array[] = [];
  for (let i = 0; i < 4; i++) {
    client.send(1, new Uint8Array([i]));
    payloads.push(client.pull()!);
  }
  const acked = client.stats().unackedPayloads; // the OPEN was acknowledged by the REPLY's ACK
  assert.equal(acked, 4);
  server.receive(payloads[0]!, 0);
  server.flushAck();
  client.receive(server.pull()!, 0); // ACK: the client's OPEN and first DATA
  assert.equal(client.stats().unackedPayloads, 3);

  assertThrowsWith(
    () => client.onPeerResumed(2n),
    TypeError,
    "Cannot resume session: connectionLost() must come first",
  );
  client.connectionLost();
  assertThrowsWith(
    () => client.onPeerResumed(2 as unknown as bigint),
    TypeError,
    "Cannot resume session: peer received 2 is not a bigint",
  );
  assertProtocolError(
    () => client.onPeerResumed(6n),
    "BAD_STATE",
    /^Cannot resume session: peer received 6 payloads, only 5 were sent$/,
  );
  assertProtocolError(
    () => client.onPeerResumed(1n),
    "BAD_STATE",
    /^Cannot resume session: peer received 1 payloads, below the 2 it acknowledged$/,
  );
  assertProtocolError(() => client.onPeerResumed(-1n), "BAD_STATE", /below the 2/);
  assert.equal(client.pull(), null, "still lost after a refused resume");
  client.onPeerResumed(4n);
  assert.equal(client.stats().unackedPayloads, 1);
  assert.equal(client.pull(), payloads[3]);
  assert.equal(client.pull(), null);
});

Deno.test("Mux refuses receive() and returns null from pull() while the connection is lost", () => {
  const { client, server } = connected();
  client.send(1, new Uint8Array(10));
  client.connectionLost();
  client.connectionLost(); // idempotent
  assert.equal(client.pull(), null);
  assert.ok(client.pendingBytes > 0);
  server.send(1, new Uint8Array(10));
  const r = server.pull()!;
  assertThrowsWith(
    () => client.receive(r, 0),
    TypeError,
    "Cannot receive: the connection is lost until onPeerResumed()",
  );
  assert.equal(client.resumeState().received, 1n, "the REPLY payload only");
});

Deno.test("Mux resends a lost WINDOW_UPDATE exactly once and never one the peer processed", () => {
  for (const lostBeforeProcessed of [true, false]) {
    const { client, server } = connected({ ...QUIET, streamWindow: 128 << 10 });
    assert.equal(server.credit(1), 128 << 10);
    server.send(1, new Uint8Array(100 << 10));
    deliver(server, client, new Map()); // the client consumes all of it: a stream WINDOW_UPDATE is due
    assert.equal(server.credit(1), 28 << 10);
    const wu = client.pull()!;
    assert.ok(decodeFrames(wu, { resume: true }).some((f) => f.type === FrameType.WINDOW_UPDATE));
    if (!lostBeforeProcessed) server.receive(wu, 0); // processed, but its ACK is lost
    reconnect(client, server);
    deliver(client, server);
    deliver(server, client);
    assert.equal(server.credit(1), 128 << 10, lostBeforeProcessed ? "resent once" : "not resent");
  }
});

Deno.test("Mux ignores the stale ACK inside a payload resent after a resume", () => {
  const { client, server } = connected();
  client.send(1, new Uint8Array(5));
  server.receive(client.pull()!, 0);
  server.send(1, new Uint8Array(7));
  const lost = server.pull()!; // carries ACK 2, never arrives
  assert.deepEqual(decodeFrames(lost, { resume: true }).map((f) => f.type), [
    FrameType.ACK,
    FrameType.DATA,
  ]);
  reconnect(client, server);
  assert.equal(client.stats().unackedPayloads, 0, "the resume acknowledged the client's payloads");
  assert.equal(server.pull(), lost);
  const evs = client.receive(lost, 0);
  assert.deepEqual(evs.map((e) => e.type), ["data"]);
  assert.equal(server.flushAck(), false, "the resume exchange acknowledged everything");
});

Deno.test("Mux survives a second cut in the middle of a resend", () => {
  const { client, server } = connected({ ...QUIET, maxRecordPayload: 1024 });
  const data = pattern(20_000, 9);
  client.send(1, data);
  const first: Uint8Array[] = [];
  for (let r = client.pull(); r !== null; r = client.pull()) first.push(r);
  const sink = new Map<number, Uint8Array[]>();
  collect(server.receive(first[0]!, 0), server, sink);
  reconnect(client, server);
  collect(server.receive(client.pull()!, 0), server, sink); // one resent payload arrives
  client.pull(); // the next is lost again
  reconnect(client, server);
  assert.equal(client.pull(), first[2]);
  collect(server.receive(first[2]!, 0), server, sink);
  deliver(client, server, sink);
  assert.deepEqual(concatAll(sink.get(1)!), data);
});

Deno.test("Mux keeps memory bounded while the peer is away: credit and the resend buffer refuse sends", () => {
  const limit = 256 << 10;
  const opts = {
    resume: true,
    resendBufferBytes: limit,
    streamWindow: 4 << 20,
    sessionWindow: 4 << 20,
  };
  const client = new Mux({ ...opts, role: "client" });
  const server = new Mux({ ...opts, role: "server" });
  const ids = [client.open(REQUEST), client.open(REQUEST), client.open(REQUEST)];
  deliver(client, server);
  for (const id of ids) server.reply(id, REPLY_OK);
  deliver(server, client);
  const sink = new Map<number, Uint8Array[]>();
  const credit = client.stats().sendCredit;
  assert.equal(credit, 4 << 20);
  const chunk = pattern(64 << 10, 5);
  let accepted = 0;
  // connected at first: the client writes into a connection whose peer has gone quiet
  for (let round = 0; round < 200; round++) {
    if (round === 20) client.connectionLost();
    for (const id of ids) accepted += client.send(id, chunk);
    client.pull();
    const st = client.stats();
    assert.ok(st.unackedBytes <= limit, `unacked ${st.unackedBytes}`);
    assert.ok(
      st.unackedBytes + st.queuedBytes <= credit + 1024,
      "nothing beyond the peer's credit",
    );
  }
  assert.equal(accepted, credit, "sends are refused once the credit is spent");
  for (const id of ids) assert.equal(client.send(id, chunk), 0);
  server.connectionLost();
  const rc = client.resumeState().received;
  client.onPeerResumed(server.resumeState().received);
  server.onPeerResumed(rc);
  for (let round = 0; round < 1000 && client.pendingBytes + server.pendingBytes > 0; round++) {
    deliver(client, server, sink);
    server.flushAck();
    deliver(server, client);
  }
  let total = 0;
  for (const id of ids) total += concatAll(sink.get(id)!).length;
  assert.equal(total, accepted);
});
