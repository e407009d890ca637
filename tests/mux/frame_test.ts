import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../../lib/errors.ts";
import { assertProtocolError, assertThrowsWith } from "../support/assert.ts";
import { Writer } from "../../lib/wire/bytes.ts";
import {
  decodeFrames,
  encodeFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_OPEN_PAYLOAD,
  MAX_RESET_MESSAGE_BYTES,
  resetReasonName,
} from "../../lib/mux/mod.ts";
import { concatAll, rawFrame } from "./_helpers.ts";

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const sid = fc.integer({ min: 1, max: 0xffffffff });
const nonZero4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).filter((b) =>
  b.some((x) => x !== 0)
);

/** Any well-formed frame. */
const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant<number>(FrameType.OPEN),
    streamId: sid,
    payload: bytes(1, MAX_OPEN_PAYLOAD),
  }),
  fc.record({
    type: fc.constant<number>(FrameType.REPLY),
    streamId: sid,
    payload: bytes(1, MAX_OPEN_PAYLOAD),
  }),
  fc.record({ type: fc.constant<number>(FrameType.DATA), streamId: sid, payload: bytes(0, 3000) }),
  fc.record({ type: fc.constant<number>(FrameType.FIN), streamId: sid, payload: bytes(0, 0) }),
  fc.record({
    type: fc.constant<number>(FrameType.RESET),
    streamId: sid,
    payload: bytes(1, 1 + MAX_RESET_MESSAGE_BYTES),
  }),
  fc.record({
    type: fc.constant<number>(FrameType.WINDOW_UPDATE),
    streamId: fc.integer({ min: 0, max: 0xffffffff }),
    payload: nonZero4,
  }),
  fc.record({
    type: fc.constant<number>(FrameType.PING),
    streamId: fc.constant(0),
    payload: bytes(8, 8),
  }),
  fc.record({
    type: fc.constant<number>(FrameType.PONG),
    streamId: fc.constant(0),
    payload: bytes(8, 8),
  }),
  fc.record({
    type: fc.constant<number>(FrameType.PADDING),
    streamId: fc.constant(0),
    payload: bytes(0, 500),
  }),
  fc.record({
    type: fc.constant<number>(FrameType.GOAWAY),
    streamId: fc.constant(0),
    payload: bytes(4, 4),
  }),
);

Deno.test("decodeFrames() inverts encodeFrame() for any sequence of frames", () => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 20, size: "max" }), (frames) => {
      const w = new Writer();
      for (const f of frames) encodeFrame(w, f);
      const record = w.finish();
      assert.equal(
        record.length,
        frames.reduce((n, f) => n + FRAME_HEADER_BYTES + f.payload.length, 0),
      );
      const back = decodeFrames(record);
      assert.equal(back.length, frames.length);
      for (let i = 0; i < frames.length; i++) {
        assert.equal(back[i]!.type, frames[i]!.type);
        assert.equal(back[i]!.streamId, frames[i]!.streamId);
        assert.deepEqual(back[i]!.payload, frames[i]!.payload);
        // views, not copies
        assert.equal(back[i]!.payload.buffer, record.buffer);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("decodeFrames() throws only ProtocolError on arbitrary bytes", () => {
  fc.assert(
    fc.property(bytes(0, 200), (b) => {
      try {
        decodeFrames(b);
      } catch (e) {
        assert.ok(e instanceof ProtocolError, `unexpected ${String(e)}`);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("decodeFrames() throws only ProtocolError on mutated valid records", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { minLength: 1, maxLength: 5 }),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.nat(),
      (frames, at, value, cut) => {
        const w = new Writer();
        for (const f of frames) encodeFrame(w, f);
        const record = w.finish().slice();
        record[at % record.length] = value;
        for (const r of [record, record.subarray(0, cut % (record.length + 1))]) {
          try {
            decodeFrames(r);
          } catch (e) {
            assert.ok(e instanceof ProtocolError, `unexpected ${String(e)}`);
          }
        }
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("decodeFrames() accepts an empty record", () => {
  assert.deepEqual(decodeFrames(new Uint8Array(0)), []);
});

Deno.test("decodeFrames() rejects a truncated header", () => {
  const ok = rawFrame(FrameType.FIN, 1);
  assertProtocolError(
    () => decodeFrames(concatAll([ok, new Uint8Array([3, 0, 0, 0, 1])])),
    "TRUNCATED",
    /^Cannot decode frame at offset 8: truncated header, 5 of 8 bytes$/,
  );
});

Deno.test("decodeFrames() rejects a length beyond the record", () => {
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.DATA, 1, [1, 2, 3], 4)),
    "TRUNCATED",
    /^Cannot decode DATA frame at offset 0: length 4 exceeds the 3 bytes left in the record$/,
  );
});

Deno.test("decodeFrames() rejects unknown and reserved types", () => {
  for (const t of [0, 11, 13, 15, 99, 255]) {
    assertProtocolError(
      () => decodeFrames(rawFrame(t, 1)),
      "UNSUPPORTED",
      new RegExp(`^Cannot decode frame at offset 0: unknown type ${t}$`),
    );
  }
});

Deno.test("decodeFrames() rejects frames on the wrong kind of stream id", () => {
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.DATA, 0, [1])),
    "MALFORMED",
    /stream id 0 is the session/,
  );
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.OPEN, 0, [5])),
    "MALFORMED",
    /stream id 0 is the session/,
  );
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.FIN, 0)),
    "MALFORMED",
    /stream id 0 is the session/,
  );
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.RESET, 0, [0])),
    "MALFORMED",
    /stream id 0/,
  );
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.PING, 3, new Uint8Array(8))),
    "MALFORMED",
    /^Cannot decode PING frame at offset 0: stream id 3 must be 0$/,
  );
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.PADDING, 1)),
    "MALFORMED",
    /stream id 1 must be 0/,
  );
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.GOAWAY, 5, [0, 0, 0, 0])),
    "MALFORMED",
    /must be 0/,
  );
});

Deno.test("decodeFrames() rejects wrong payload lengths per type", () => {
  const cases: [number, number, number, RegExp][] = [
    [FrameType.WINDOW_UPDATE, 1, 3, /WINDOW_UPDATE frame at offset 0: length 3 must be 4/],
    [FrameType.PING, 0, 7, /PING frame at offset 0: length 7 must be 8/],
    [FrameType.PONG, 0, 9, /PONG frame at offset 0: length 9 must be 8/],
    [FrameType.GOAWAY, 0, 5, /GOAWAY frame at offset 0: length 5 must be 4/],
    [FrameType.FIN, 1, 1, /FIN frame at offset 0: length 1 must be 0/],
    [FrameType.OPEN, 1, 0, /OPEN frame at offset 0: empty payload/],
    [FrameType.REPLY, 1, 0, /REPLY frame at offset 0: empty payload/],
    [FrameType.OPEN, 1, MAX_OPEN_PAYLOAD + 1, /length 513 exceeds maximum 512/],
    [FrameType.RESET, 1, 0, /RESET frame at offset 0: missing reason/],
    [FrameType.RESET, 1, 258, /length 258 exceeds maximum 257/],
  ];
  for (const [type, id, len, re] of cases) {
    assertProtocolError(
      () => decodeFrames(rawFrame(type, id, new Uint8Array(len).fill(1))),
      "MALFORMED",
      re,
    );
  }
  assertProtocolError(
    () => decodeFrames(rawFrame(FrameType.WINDOW_UPDATE, 0, [0, 0, 0, 0])),
    "MALFORMED",
    /increment 0 is not allowed/,
  );
});

Deno.test("encodeFrame() refuses frames decodeFrames() would reject", () => {
  const w = new Writer();
  const z = new Uint8Array(0);
  assertThrowsWith(
    () => encodeFrame(w, { type: 11, streamId: 1, payload: z }),
    RangeError,
    "Cannot encode ACK frame: stream id 1 must be 0",
  );
  assertThrowsWith(
    () => encodeFrame(w, { type: FrameType.DATA, streamId: -1, payload: z }),
    RangeError,
    "Cannot encode frame: stream id -1 is not a u32",
  );
  assertThrowsWith(
    () => encodeFrame(w, { type: FrameType.DATA, streamId: 2 ** 32, payload: z }),
    RangeError,
    "Cannot encode frame: stream id 4294967296 is not a u32",
  );
  assert.throws(
    () => encodeFrame(w, { type: FrameType.DATA, streamId: 0, payload: z }),
    /stream id 0 is the session/,
  );
  assert.throws(
    () => encodeFrame(w, { type: FrameType.PING, streamId: 0, payload: z }),
    /length 0 must be 8/,
  );
  assert.throws(
    () => encodeFrame(w, { type: FrameType.DATA, streamId: 1, payload: new Uint8Array(0x1000000) }),
    /length 16777216 exceeds maximum 16777215/,
  );
  assert.equal(w.length, 0);
});

Deno.test("encodeFrame() writes the section 6 header: type u8, stream id u32, length u24", () => {
  const w = new Writer();
  encodeFrame(w, { type: FrameType.DATA, streamId: 0x01020304, payload: new Uint8Array([9, 8]) });
  assert.deepEqual([...w.finish()], [3, 1, 2, 3, 4, 0, 0, 2, 9, 8]);
});

Deno.test("resetReasonName() names known reasons and numbers unknown ones", () => {
  assert.equal(resetReasonName(5), "FLOW_CONTROL");
  assert.equal(resetReasonName(200), "reason 200");
});
