import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../../lib/errors.ts";
import { assertProtocolError, assertThrowsWith } from "../support/assert.ts";
import { FrameType, Mux } from "../../lib/mux/mod.ts";
import { concatAll, drainFrames, rawFrame, REPLY_OK, REQUEST } from "./_helpers.ts";

function server(): Mux {
  return new Mux({ role: "server" });
}

/** A client with stream 1 open and replied. */
function clientWithReply(): Mux {
  const c = new Mux({ role: "client" });
  c.open(REQUEST);
  drainFrames(c);
  c.receive(rawFrame(FrameType.REPLY, 1, REPLY_OK), 0);
  return c;
}

Deno.test("Mux.receive() rejects an even stream id from the client", () => {
  assertProtocolError(
    () => server().receive(rawFrame(FrameType.OPEN, 2, REQUEST), 0),
    "MALFORMED",
    /^Cannot accept OPEN on stream 2: client stream ids are odd$/,
  );
  const s = server();
  s.receive(rawFrame(FrameType.OPEN, 1, REQUEST), 0);
  assertProtocolError(
    () => s.receive(rawFrame(FrameType.DATA, 4, [1]), 0),
    "MALFORMED",
    /^Cannot accept DATA on stream 4: stream ids are odd \(client-opened\)$/,
  );
});

Deno.test("Mux.receive() rejects stream ids that do not increase", () => {
  const s = server();
  s.receive(rawFrame(FrameType.OPEN, 5, REQUEST), 0);
  assertProtocolError(
    () => s.receive(rawFrame(FrameType.OPEN, 3, REQUEST), 0),
    "BAD_STATE",
    /^Cannot accept OPEN on stream 3: stream ids must increase, last was 5$/,
  );
  assertProtocolError(
    () => s.receive(rawFrame(FrameType.OPEN, 5, REQUEST), 0),
    "BAD_STATE",
    /must increase/,
  );
});

Deno.test("Mux.receive() rejects frames for a stream that was never opened", () => {
  for (
    const [type, payload] of [
      [FrameType.DATA, [1]],
      [FrameType.FIN, []],
      [FrameType.RESET, [0]],
      [FrameType.WINDOW_UPDATE, [0, 0, 0, 1]],
    ] as const
  ) {
    assertProtocolError(
      () => server().receive(rawFrame(type, 7, [...payload]), 0),
      "BAD_STATE",
      /on stream 7: the stream was never opened$/,
    );
  }
  const c = clientWithReply();
  assertProtocolError(
    () => c.receive(rawFrame(FrameType.DATA, 3, [1]), 0),
    "BAD_STATE",
    /never opened/,
  );
});

Deno.test("Mux.receive() rejects OPEN at the client and REPLY at the server", () => {
  assertProtocolError(
    () => new Mux({ role: "client" }).receive(rawFrame(FrameType.OPEN, 1, REQUEST), 0),
    "BAD_STATE",
    /^Cannot accept OPEN on stream 1: the client does not accept streams$/,
  );
  const s = server();
  s.receive(rawFrame(FrameType.OPEN, 1, REQUEST), 0);
  assertProtocolError(
    () => s.receive(rawFrame(FrameType.REPLY, 1, REPLY_OK), 0),
    "BAD_STATE",
    /^Cannot accept REPLY on stream 1: only the server replies$/,
  );
});

Deno.test("Mux.receive() rejects DATA or FIN before REPLY, and a second REPLY", () => {
  const c = new Mux({ role: "client" });
  c.open(REQUEST);
  assertProtocolError(
    () => c.receive(rawFrame(FrameType.DATA, 1, [1]), 0),
    "BAD_STATE",
    /^Cannot accept DATA on stream 1: DATA before REPLY$/,
  );
  assertProtocolError(
    () => c.receive(rawFrame(FrameType.FIN, 1), 0),
    "BAD_STATE",
    /FIN before REPLY/,
  );
  c.receive(rawFrame(FrameType.REPLY, 1, REPLY_OK), 0);
  assertProtocolError(
    () => c.receive(rawFrame(FrameType.REPLY, 1, REPLY_OK), 0),
    "BAD_STATE",
    /duplicate REPLY/,
  );
});

Deno.test("Mux.receive() rejects DATA after FIN and a second FIN", () => {
  const c = clientWithReply();
  c.receive(rawFrame(FrameType.FIN, 1), 0);
  assertProtocolError(
    () => c.receive(rawFrame(FrameType.DATA, 1, [1]), 0),
    "BAD_STATE",
    /^Cannot accept DATA on stream 1: DATA after FIN$/,
  );
  assertProtocolError(() => c.receive(rawFrame(FrameType.FIN, 1), 0), "BAD_STATE", /duplicate FIN/);
});

Deno.test("Mux.receive() reports malformed records from the codec", () => {
  assertProtocolError(
    () => server().receive(new Uint8Array([1, 0, 0]), 0),
    "TRUNCATED",
    /truncated header/,
  );
  assertProtocolError(
    () => server().receive(rawFrame(16, 0, new Uint8Array(4)), 0),
    "UNSUPPORTED",
    /unknown type 16/,
  );
  assertProtocolError(
    () => server().receive(rawFrame(FrameType.OPEN, 1, REQUEST, 200), 0),
    "TRUNCATED",
    /length 200 exceeds/,
  );
});

Deno.test("Mux.receive() processes nothing from a record with a bad frame at the end", () => {
  const s = server();
  const rec = concatAll([rawFrame(FrameType.OPEN, 1, REQUEST), new Uint8Array([3, 0])]);
  assertThrowsWith(
    () => s.receive(rec, 0),
    ProtocolError,
    "Cannot decode frame at offset 18: truncated header, 2 of 8 bytes",
  );
  assert.equal(s.streamCount, 0);
});

Deno.test("Mux.receive() throws nothing but ProtocolError on random frames in any state", () => {
  const id = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant(0xffffffff));
  const shaped = (type: number, min: number, max: number) =>
    fc.record({
      type: fc.constant(type),
      id,
      payload: fc.uint8Array({ minLength: min, maxLength: max }),
    });
  // mostly well-shaped frames, so the state machine (not just the codec) is exercised
  const frameArb = fc.oneof(
    shaped(FrameType.OPEN, 1, 12),
    shaped(FrameType.REPLY, 1, 12),
    shaped(FrameType.DATA, 0, 80),
    shaped(FrameType.FIN, 0, 0),
    shaped(FrameType.RESET, 1, 12),
    shaped(FrameType.WINDOW_UPDATE, 4, 4),
    shaped(FrameType.PING, 8, 8),
    shaped(FrameType.PONG, 8, 8),
    shaped(FrameType.PADDING, 0, 8),
    shaped(FrameType.GOAWAY, 4, 4),
    fc.record({
      type: fc.integer({ min: 0, max: 255 }),
      id,
      payload: fc.uint8Array({ maxLength: 80 }),
    }),
  );
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(fc.array(frameArb, { maxLength: 6 }), { maxLength: 12 }),
      (isClient, recs) => {
        const m = new Mux({ role: isClient ? "client" : "server", maxStreams: 3 });
        if (isClient) {
          m.open(REQUEST);
          m.open(REQUEST);
        }
        for (const frames of recs) {
          const rec = concatAll(frames.map((f) => rawFrame(f.type, f.id, f.payload)));
          try {
            for (const ev of m.receive(rec, 0)) {
              if (ev.type === "open") m.reply(ev.id, REPLY_OK);
              if (ev.type === "data") m.consumed(ev.id, ev.data.length);
            }
          } catch (e) {
            assert.ok(e instanceof ProtocolError, `unexpected ${String(e)}`);
            return;
          }
          drainFrames(m, 600);
        }
      },
    ),
    { numRuns: 3000 },
  );
});
