/**
 * Session resumption, acknowledgements (40-session.md section 11): the
 * ACK, RELEASE and REKEY codec, which payloads count, when ACKs go out, and
 * the bounded resend buffer.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { assertProtocolError, assertThrowsWith } from "../support/assert.ts";
import {
  ACK_FRAME_BYTES,
  decodeFrames,
  encodeFrame,
  type Frame,
  FrameType,
  INITIAL_SESSION_WINDOW,
  INITIAL_STREAM_WINDOW,
  MAX_RENEW_BYTES,
  MAX_SESSION_MESSAGE_BYTES,
  MIN_PULL_BYTES,
  Mux,
  type MuxOptions,
} from "../../lib/mux/mod.ts";
import { Writer } from "../../lib/wire/bytes.ts";
import { concatAll, rawFrame, REPLY_OK, REQUEST } from "./_helpers.ts";

const RESUME = { resume: true } as const;
/** Windows at their protocol minimum: a mux then queues no WINDOW_UPDATE of its own. */
const QUIET = {
  resume: true,
  streamWindow: INITIAL_STREAM_WINDOW,
  sessionWindow: INITIAL_SESSION_WINDOW,
} as const;

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}

function ackFrame(v: bigint): Uint8Array {
  return rawFrame(FrameType.ACK, 0, u64(v));
}

/** The `received` values of the ACK frames in a payload. */
function acks(payload: Uint8Array): bigint[] {
  return decodeFrames(payload, RESUME)
    .filter((f) => f.type === FrameType.ACK)
    .map((f) => new DataView(f.payload.buffer, f.payload.byteOffset, 8).getBigUint64(0));
}

function typesOf(payload: Uint8Array): number[] {
  return decodeFrames(payload, RESUME).map((f) => f.type);
}

function pair(opts: Partial<MuxOptions> = RESUME): { client: Mux; server: Mux } {
  return {
    client: new Mux({ ...opts, role: "client" }),
    server: new Mux({ ...opts, role: "server" }),
  };
}

// ---- codec ----------------------------------------------------------------------------------

Deno.test("encodeFrame() lays out ACK as 0B ‖ stream 0 ‖ length 8 ‖ received u64", () => {
  const w = new Writer();
  encodeFrame(w, { type: FrameType.ACK, streamId: 0, payload: u64(0x0102030405060708n) });
  assert.deepEqual([...w.finish()], [11, 0, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(ACK_FRAME_BYTES, 16);
});

Deno.test("decodeFrames() inverts encodeFrame() for ACK, RELEASE and REKEY with resume on", () => {
  const sessionFrame: fc.Arbitrary<Frame> = fc.oneof(
    fc.record({
      type: fc.constant<number>(FrameType.ACK),
      streamId: fc.constant(0),
      payload: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    }),
    fc.record({
      type: fc.constantFrom<number>(FrameType.RELEASE, FrameType.REKEY, FrameType.PADDING),
      streamId: fc.constant(0),
      payload: fc.uint8Array({ maxLength: MAX_SESSION_MESSAGE_BYTES }),
    }),
    fc.record({
      type: fc.constant<number>(FrameType.DATA),
      streamId: fc.integer({ min: 1, max: 0xffffffff }),
      payload: fc.uint8Array({ maxLength: 100 }),
    }),
  );
  fc.assert(
    fc.property(fc.array(sessionFrame, { maxLength: 8 }), (frames) => {
      const w = new Writer();
      for (const f of frames) encodeFrame(w, f);
      const back = decodeFrames(w.finish(), RESUME);
      assert.deepEqual(
        back.map((f) => [f.type, f.streamId, [...f.payload]]),
        frames.map((f) => [f.type, f.streamId, [...f.payload]]),
      );
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeFrames() treats ACK, RELEASE and REKEY as unknown without resume, and 15 always", () => {
  for (const t of [FrameType.ACK, FrameType.RELEASE, FrameType.REKEY, FrameType.RENEW]) {
    assertProtocolError(
      () => decodeFrames(rawFrame(t, 0, new Uint8Array(8))),
      "UNSUPPORTED",
      new RegExp(`^Cannot decode frame at offset 0: unknown type ${t}$`),
    );
  }
  // 12 is DATAGRAM (section 12), known with or without resume: on stream 0 it is malformed.
  assertProtocolError(
    () => decodeFrames(rawFrame(12, 0), RESUME),
    "MALFORMED",
    /DATAGRAM frame at offset 0: stream id 0 is the session$/,
  );
  assertProtocolError(
    () => decodeFrames(rawFrame(15, 0), RESUME),
    "UNSUPPORTED",
    /unknown type 15$/,
  );
});

Deno.test("decodeFrames() rejects malformed ACK, RELEASE and REKEY frames", () => {
  const cases: [Uint8Array, RegExp][] = [
    [
      rawFrame(FrameType.ACK, 0, new Uint8Array(7)),
      /^Cannot decode ACK frame at offset 0: length 7 must be 8$/,
    ],
    [rawFrame(FrameType.ACK, 0, new Uint8Array(9)), /length 9 must be 8/],
    [
      rawFrame(FrameType.ACK, 1, new Uint8Array(8)),
      /^Cannot decode ACK frame at offset 0: stream id 1 must be 0$/,
    ],
    [
      rawFrame(FrameType.RELEASE, 0, new Uint8Array(257)),
      /^Cannot decode RELEASE frame at offset 0: length 257 exceeds maximum 256$/,
    ],
    [
      rawFrame(FrameType.REKEY, 3, new Uint8Array(1)),
      /^Cannot decode REKEY frame at offset 0: stream id 3 must be 0$/,
    ],
    [
      rawFrame(FrameType.RENEW, 1, new Uint8Array(5)),
      /^Cannot decode RENEW frame at offset 0: stream id 1 must be 0$/,
    ],
    [
      rawFrame(FrameType.RENEW, 0, new Uint8Array(0)),
      /^Cannot decode RENEW frame at offset 0: length 0 is outside 1\.\.2048$/,
    ],
    [
      rawFrame(FrameType.RENEW, 0, new Uint8Array(MAX_RENEW_BYTES + 1)),
      /^Cannot decode RENEW frame at offset 0: length 2049 is outside 1\.\.2048$/,
    ],
  ];
  for (const [record, message] of cases) {
    assertProtocolError(() => decodeFrames(record, RESUME), "MALFORMED", message);
  }
});

Deno.test("encodeFrame() refuses malformed ACK, RELEASE and REKEY frames", () => {
  const w = new Writer();
  const bad: [Frame, string][] = [
    [
      { type: FrameType.ACK, streamId: 0, payload: new Uint8Array(4) },
      "ACK frame: length 4 must be 8",
    ],
    [
      { type: FrameType.ACK, streamId: 5, payload: new Uint8Array(8) },
      "ACK frame: stream id 5 must be 0",
    ],
    [
      { type: FrameType.REKEY, streamId: 0, payload: new Uint8Array(257) },
      "REKEY frame: length 257 exceeds maximum 256",
    ],
    [
      { type: FrameType.RENEW, streamId: 0, payload: new Uint8Array(2049) },
      "RENEW frame: length 2049 is outside 1..2048",
    ],
    [{ type: 17, streamId: 0, payload: new Uint8Array(0) }, "frame: unknown type 17"],
    [
      { type: FrameType.DATAGRAM, streamId: 1, payload: new Uint8Array([1, 127, 0, 0, 1]) },
      "DATAGRAM frame: no valid address",
    ],
  ];
  for (const [f, why] of bad) {
    assertThrowsWith(() => encodeFrame(w, f), RangeError, `Cannot encode ${why}`);
  }
  assert.equal(w.length, 0);
});

Deno.test("Mux without resume refuses ACK frames and the resume API", () => {
  const server = new Mux({ role: "server" });
  assertProtocolError(() => server.receive(ackFrame(0n), 0), "UNSUPPORTED", /unknown type 11/);
  assertThrowsWith(
    () => server.flushAck(),
    TypeError,
    "Cannot flush ACK: the mux was created without the resume option",
  );
  assertThrowsWith(
    () => server.sendRekey(new Uint8Array(1)),
    TypeError,
    "Cannot send REKEY: the mux was created without the resume option",
  );
  assertThrowsWith(
    () => server.connectionLost(),
    TypeError,
    "Cannot mark connection lost: the mux was created without the resume option",
  );
  assertThrowsWith(
    () => server.resumeState(),
    TypeError,
    "Cannot read resume state: the mux was created without the resume option",
  );
  assertThrowsWith(
    () => server.onPeerResumed(0n),
    TypeError,
    "Cannot resume session: the mux was created without the resume option",
  );
  const st = server.stats();
  assert.deepEqual([st.unackedBytes, st.unackedPayloads, st.resendBytes], [0, 0, 0]);
});

Deno.test("Mux refuses bad resume options", () => {
  assertThrowsWith(
    () => new Mux({ role: "client", resume: true, resendBufferBytes: (256 << 10) - 1 }),
    RangeError,
    "Cannot create mux: resendBufferBytes 262143 is not an integer in [262144, 1073741824]",
  );
  assertThrowsWith(
    () => new Mux({ role: "client", resume: true, ackPayloads: 0 }),
    RangeError,
    "Cannot create mux: ackPayloads 0 is not an integer in [1, 65536]",
  );
  assertThrowsWith(
    () => new Mux({ role: "client", resume: true, ackBytes: 100 }),
    RangeError,
    "Cannot create mux: ackBytes 100 is not an integer in [1024, 1073741824]",
  );
  assertThrowsWith(
    () => new Mux({ role: "client", resume: "yes" as unknown as boolean }),
    TypeError,
    "Cannot create mux: resume yes is not a boolean",
  );
});

// ---- counting ---------------------------------------------------------------------------------

Deno.test("Mux counts payloads with a frame other than ACK or PADDING, and keeps each until ACKed", () => {
  const { client, server } = pair(QUIET);
  client.open(REQUEST);
  const p1 = client.pull()!;
  assert.deepEqual(client.stats().unackedPayloads, 1);
  assert.equal(client.stats().unackedBytes, p1.length);
  server.receive(p1, 0);
  assert.equal(server.resumeState().received, 1n);
  // padding-only and empty payloads (cover traffic) do not count
  server.receive(rawFrame(FrameType.PADDING, 0, new Uint8Array(100)), 0);
  server.receive(new Uint8Array(0), 0);
  assert.equal(server.resumeState().received, 1n);
  // a payload with PADDING and something else counts
  server.receive(
    concatAll([
      rawFrame(FrameType.PADDING, 0, [1]),
      rawFrame(FrameType.PING, 0, new Uint8Array(8)),
    ]),
    0,
  );
  assert.equal(server.resumeState().received, 2n);
});

Deno.test("Mux ACK-only payloads are neither numbered nor kept nor counted: no ACK ping-pong", () => {
  const { client, server } = pair(QUIET);
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  assert.equal(
    server.pull(),
    null,
    "nothing owed: an ACK alone waits for flushAck() or a threshold",
  );
  assert.equal(server.flushAck(), true);
  const ack = server.pull()!;
  assert.equal(ack.length, ACK_FRAME_BYTES);
  assert.deepEqual(acks(ack), [1n]);
  assert.equal(server.stats().unackedPayloads, 0);
  assert.equal(server.pull(), null);
  assert.equal(server.flushAck(), false, "nothing arrived since the last ACK");

  client.receive(ack, 0);
  assert.equal(client.stats().unackedPayloads, 0, "the OPEN was acknowledged");
  assert.equal(client.stats().unackedBytes, 0);
  assert.equal(client.resumeState().received, 0n, "an ACK-only payload is not counted");
  assert.equal(client.flushAck(), false);
  assert.equal(client.pull(), null);
});

Deno.test("Mux piggybacks an ACK on a payload it pulls anyway", () => {
  const { client, server } = pair(RESUME); // default windows: the server has WINDOW_UPDATEs to send
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  server.reply(1, REPLY_OK);
  const p = server.pull()!;
  assert.deepEqual(acks(p), [1n]);
  assert.equal(typesOf(p)[0], FrameType.ACK);
  assert.ok(typesOf(p).includes(FrameType.REPLY));
  assert.equal(server.stats().unackedPayloads, 1, "the payload counts: it holds more than the ACK");
  assert.equal(server.flushAck(), false, "the piggybacked ACK was the ACK");
  client.receive(p, 0);
  assert.equal(client.stats().unackedPayloads, 0);
  assert.equal(client.resumeState().received, 1n);
});

Deno.test("Mux ACKs on its own after ackPayloads counted payloads", () => {
  const { client, server } = pair({ ...QUIET, ackPayloads: 16 });
  for (let i = 1; i <= 16; i++) {
    client.open(REQUEST);
    server.receive(client.pull()!, 0);
    if (i < 16) assert.equal(server.pull(), null, `no ACK after ${i} payloads`);
  }
  assert.equal(server.pendingBytes, ACK_FRAME_BYTES);
  assert.deepEqual(acks(server.pull()!), [16n]);
  assert.equal(server.pull(), null);
});

Deno.test("Mux ACKs on its own after ackBytes of counted payloads", () => {
  const { client, server } = pair({ ...QUIET, ackBytes: 1024 });
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  server.reply(1, REPLY_OK);
  client.receive(server.pull()!, 0);
  client.send(1, new Uint8Array(600));
  server.receive(client.pull()!, 0); // 608 bytes since the ACK the REPLY carried
  assert.equal(server.pull(), null);
  client.send(1, new Uint8Array(600));
  server.receive(client.pull()!, 0); // 1216
  const ack = server.pull()!;
  assert.deepEqual(acks(ack), [3n]);
  client.receive(ack, 0);
  assert.equal(client.stats().unackedPayloads, 0);
});

Deno.test("Mux piggyback never keeps a full-size control frame out of a small record", () => {
  const { client, server } = pair(QUIET);
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  const bigReply = new Uint8Array(512).fill(5);
  server.reply(1, bigReply);
  const p = server.pull(MIN_PULL_BYTES)!;
  assert.deepEqual(typesOf(p), [FrameType.REPLY], "the ACK did not fit beside the REPLY");
  assert.equal(server.pull(MIN_PULL_BYTES), null, "a due ACK alone waits for flushAck()");
  // a forced ACK that does not fit goes alone first
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  server.reply(3, bigReply);
  server.flushAck();
  assert.deepEqual(typesOf(server.pull(MIN_PULL_BYTES)!), [FrameType.ACK]);
  assert.deepEqual(typesOf(server.pull(MIN_PULL_BYTES)!), [FrameType.REPLY]);
});

Deno.test("Mux.receive() rejects an ACK beyond what was sent and ignores a stale one", () => {
  const { client, server } = pair(QUIET);
  client.open(REQUEST);
  client.open(REQUEST);
  server.receive(client.pull()!, 0); // both OPENs in one payload
  assertProtocolError(
    () => client.receive(ackFrame(2n), 0),
    "BAD_STATE",
    /^Cannot accept ACK: 2 payloads acknowledged, only 1 were sent$/,
  );
  assertProtocolError(
    () => new Mux({ ...QUIET, role: "client" }).receive(ackFrame(0xffffffffffffffffn), 0),
    "BAD_STATE",
    /18446744073709551615 payloads acknowledged, only 0 were sent/,
  );
  client.receive(ackFrame(1n), 0);
  assert.equal(client.stats().unackedPayloads, 0);
  client.receive(ackFrame(0n), 0); // stale: it may ride in a payload resent after a resume
  client.receive(ackFrame(1n), 0);
  assert.equal(client.stats().unackedPayloads, 0);
});

// ---- RELEASE and REKEY ------------------------------------------------------------------------

Deno.test("Mux carries RELEASE and REKEY bodies as counted control frames", () => {
  const { client, server } = pair(QUIET);
  client.open(REQUEST);
  client.sendRekey(new Uint8Array([1, 2, 3]));
  client.sendRelease(new Uint8Array(0));
  assert.equal(client.queuedMessages, 2);
  const p = client.pull()!;
  assert.equal(client.queuedMessages, 0, "the payload just pulled carries them");
  assert.deepEqual(typesOf(p), [FrameType.OPEN, FrameType.REKEY, FrameType.RELEASE]);
  const evs = server.receive(p, 0);
  assert.deepEqual(
    evs.map((e) =>
      e.type === "rekey" || e.type === "release" ? [e.type, e.id, [...e.body]] : [e.type]
    ),
    [["open"], ["rekey", 0, [1, 2, 3]], ["release", 0, []]],
  );
  assert.equal(server.resumeState().received, 1n);
  assert.equal(client.stats().unackedPayloads, 1);
});

Deno.test("Mux refuses oversized or too many queued RELEASE and REKEY messages", () => {
  const client = new Mux({ ...QUIET, role: "client" });
  const body = new Uint8Array([9]);
  assertThrowsWith(
    () => client.sendRekey(new Uint8Array(MAX_SESSION_MESSAGE_BYTES + 1)),
    RangeError,
    "Cannot send REKEY: length 257 exceeds maximum 256",
  );
  assertThrowsWith(
    () => client.sendRelease("x" as unknown as Uint8Array),
    TypeError,
    "Cannot send RELEASE: body is not a Uint8Array",
  );
  client.sendRelease(new Uint8Array(MAX_SESSION_MESSAGE_BYTES));
  for (let i = 1; i < 16; i++) client.sendRekey(body);
  assertProtocolError(
    () => client.sendRekey(body),
    "LIMIT",
    /16 session messages are still unsent/,
  );
  client.pull();
  client.sendRekey(body); // room again once pulled
});

Deno.test("Mux carries a RENEW token from client to server only, as a counted control frame", () => {
  const { client, server } = pair(QUIET);
  const token = new TextEncoder().encode("e30.eyJleHAiOjF9.c2ln");
  client.sendRenew(token);
  client.sendRenew(new Uint8Array(MAX_RENEW_BYTES));
  assert.equal(client.queuedMessages, 2);
  const p = client.pull()!;
  assert.deepEqual(typesOf(p), [FrameType.RENEW, FrameType.RENEW]);
  const evs = server.receive(p, 0);
  assert.deepEqual(
    evs.map((e) => (e.type === "renew" ? [e.type, e.id, e.body.length] : [e.type])),
    [["renew", 0, token.length], ["renew", 0, MAX_RENEW_BYTES]],
  );
  assert.equal(server.resumeState().received, 1n, "counted, so kept and resent on resumption");
  assertThrowsWith(() => server.sendRenew(token), TypeError, "only a client renews its login");
  assertProtocolError(
    () => client.receive(rawFrame(FrameType.RENEW, 0, token), 0),
    "BAD_STATE",
    /^Cannot accept RENEW: only a client renews its login$/,
  );
  assertThrowsWith(() => client.sendRenew(new Uint8Array(0)), RangeError, "the token is empty");
  assertThrowsWith(
    () => client.sendRenew(new Uint8Array(MAX_RENEW_BYTES + 1)),
    RangeError,
    "Cannot send RENEW: length 2049 exceeds maximum 2048",
  );
  const small = new Mux({ ...QUIET, role: "client", maxRecordPayload: MIN_PULL_BYTES });
  assertThrowsWith(
    () => small.sendRenew(new Uint8Array(1000)),
    TypeError,
    "does not fit records of 520 bytes",
  );
  assertThrowsWith(
    () => new Mux({ role: "client" }).sendRenew(token),
    TypeError,
    "created without the resume option",
  );
});

// ---- the resend buffer ------------------------------------------------------------------------

Deno.test("Mux stalls new payloads while the resend buffer is full, until an ACK frees it", () => {
  const limit = 256 << 10;
  const big = {
    ...RESUME,
    resendBufferBytes: limit,
    streamWindow: 8 << 20,
    sessionWindow: 8 << 20,
  };
  const { client, server } = pair(big);
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  server.reply(1, REPLY_OK);
  client.receive(server.pull()!, 0);
  assert.equal(client.send(1, new Uint8Array(2 << 20)), 2 << 20);
  const inFlight: Uint8Array[] = [];
  for (let r = client.pull(); r !== null; r = client.pull()) {
    inFlight.push(r);
    assert.ok(client.stats().unackedBytes <= limit);
  }
  assert.ok(client.stats().queuedBytes > 0, "data is still queued: the buffer stalled it");
  assert.ok(client.pendingBytes > 0);
  assert.equal(client.pull(), null);
  // the peer's ACK frees the buffer
  for (const r of inFlight) server.receive(r, 0);
  server.flushAck();
  client.receive(server.pull()!, 0);
  assert.equal(client.stats().unackedBytes, 0);
  assert.notEqual(client.pull(), null);
});

Deno.test("Mux sends ACKs while its own resend buffer is full", () => {
  const limit = 256 << 10;
  const big = {
    ...RESUME,
    resendBufferBytes: limit,
    streamWindow: 8 << 20,
    sessionWindow: 8 << 20,
  };
  const { client, server } = pair(big);
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  server.reply(1, REPLY_OK);
  client.receive(server.pull()!, 0);
  client.send(1, new Uint8Array(1 << 20));
  while (client.pull() !== null); // into the void: the client is stalled now
  server.send(1, new Uint8Array(1000));
  client.receive(server.pull()!, 0);
  assert.equal(client.flushAck(), true);
  const ack = client.pull()!;
  assert.deepEqual(typesOf(ack), [FrameType.ACK], "an ACK-only payload gets through the stall");
  assert.equal(client.pull(), null);
});

Deno.test("Mux charges each kept payload an overhead, so tiny payloads cannot pile up", () => {
  const limit = 256 << 10;
  const { client, server } = pair({ ...QUIET, resendBufferBytes: limit, ackPayloads: 65536 });
  client.open(REQUEST);
  server.receive(client.pull()!, 0);
  server.reply(1, REPLY_OK);
  client.receive(server.pull()!, 0);
  let pulled = 0;
  for (let i = 0; i < 10_000; i++) {
    if (client.send(1, new Uint8Array([i & 0xff])) === 0) break;
    if (client.pull() === null) break;
    pulled++;
  }
  const st = client.stats();
  assert.ok(pulled < 10_000, "stalled before 10,000 one-byte payloads");
  assert.ok(st.unackedPayloads * 128 + st.unackedBytes <= limit);
});

Deno.test("Mux.cover() sends one PADDING frame when nothing else waits, neither kept nor counted", () => {
  const { client, server } = pair(QUIET);
  client.open(REQUEST);
  client.cover(300);
  // The OPEN goes first; the cover payload waits for a pull with nothing else to send.
  const open = client.pull()!;
  assert.deepEqual(typesOf(open), [FrameType.OPEN]);
  server.receive(open, 0);
  const cover = client.pull()!;
  assert.deepEqual(typesOf(cover), [FrameType.PADDING]);
  assert.equal(cover.length, 8 + 300, "frame header and the body asked for");
  assert.equal(client.pull(), null, "one cover payload per call");
  assert.equal(client.stats().unackedPayloads, 1, "the OPEN is kept; the cover payload is not");
  assert.deepEqual(server.receive(cover, 0), []);
  assert.equal(server.resumeState().received, 1n, "the peer does not count it");
  // A later call replaces one still waiting; out of range is refused.
  client.cover(10);
  client.cover(20);
  assert.equal(client.pull()!.length, 8 + 20);
  assertThrowsWith(
    () => client.cover(16385),
    RangeError,
    "Cannot queue cover traffic: 16385 bytes is not an integer in 0..16384",
  );
});
