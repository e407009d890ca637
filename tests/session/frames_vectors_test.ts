/**
 * tests/vectors/session_frames_v1.json: the RESUME frame, the link id and
 * the REKEY payload's link-id wrapper (docs/PROTOCOL.md part 6 (sessions
 * over links) sections 2 and 3), and the RENEW frame of an in-band JWT
 * renewal (part 2 section 14.7), checked against `lib/session/frames.ts`
 * and `lib/mux`.
 *
 * The reference below writes the bytes by hand from the layouts in the
 * spec, sharing no code with `lib/`. Regenerate with
 *   deno run --allow-read --allow-write=tests/vectors tests/session/frames_vectors_test.ts
 *   deno fmt tests/vectors/session_frames_v1.json
 *
 * @module
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import {
  decodeRekeyPayload,
  decodeRenewPayload,
  decodeResumeFrame,
  encodeRekeyPayload,
  encodeRenewPayload,
  encodeResumeFrame,
  linkIdOf,
} from "../../lib/session/mod.ts";
import { decodeFrames, encodeFrame, FrameType } from "../../lib/mux/mod.ts";
import { Writer } from "../../lib/wire/bytes.ts";
import { signJwt } from "../../lib/crypto/jwt.ts";

function hex(b: Uint8Array): string {
  return Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
}

function unhex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** Big-endian unsigned `n` as `bytes` bytes of hex. */
function be(n: bigint, bytes: number): string {
  return n.toString(16).padStart(2 * bytes, "0");
}

/** Section 2: type 0f, stream 0, length 9, received u64, flags u8. */
function refResume(received: bigint, flags: number): string {
  return "0f" + "00000000" + "000009" + be(received, 8) + be(BigInt(flags), 1);
}

/** A 32-byte transcript hash: bytes seed, seed + 1, ... (mod 256). */
function transcript(seed: number): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => (seed + i) & 0xff);
}

const RESUME_VALID = [
  { received: 0n, state_lost: false },
  { received: 1n, state_lost: false },
  { received: 0x0102030405060708n, state_lost: false },
  { received: 0xffff_ffff_ffff_ffffn, state_lost: false },
  { received: 0n, state_lost: true },
];

const RESUME_INVALID = [
  { why: "empty record", frame: "", code: "TRUNCATED" },
  {
    why: "another frame type (PING)",
    frame: "06" + "00000000" + "000008" + be(7n, 8),
    code: "MALFORMED",
  },
  {
    why: "stream id not 0",
    frame: "0f" + "00000001" + "000009" + be(0n, 8) + "00",
    code: "MALFORMED",
  },
  { why: "length 8", frame: "0f" + "00000000" + "000008" + be(0n, 8), code: "MALFORMED" },
  { why: "length 10", frame: "0f" + "00000000" + "00000a" + be(0n, 8) + "0000", code: "MALFORMED" },
  { why: "unknown flag bit 1", frame: refResume(5n, 2), code: "MALFORMED" },
  { why: "unknown flag bits with STATE_LOST", frame: refResume(0n, 0x81), code: "MALFORMED" },
  { why: "a trailing byte", frame: refResume(5n, 0) + "00", code: "MALFORMED" },
  {
    why: "a second frame behind it",
    frame: refResume(5n, 0) + "06000000000000080000000000000000",
    code: "MALFORMED",
  },
  { why: "payload cut short", frame: refResume(5n, 0).slice(0, 32), code: "TRUNCATED" },
  { why: "header only", frame: "0f" + "00000000" + "000009", code: "TRUNCATED" },
];

const LINK_IDS = [0x00, 0x7f, 0xde, 0xff].map((seed) => {
  const hash = transcript(seed);
  return {
    transcript_hash: hex(hash),
    // The first 4 bytes, big-endian (section 3).
    link_id: Number(BigInt("0x" + hex(hash.subarray(0, 4)))),
  };
});

const REKEY_BODY = "01" + "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13";
const REKEY_PAYLOADS = [
  { link_id: 0, body: REKEY_BODY },
  { link_id: 1, body: REKEY_BODY },
  { link_id: 0xdeadbeef, body: REKEY_BODY },
  { link_id: 0xffffffff, body: "02" + "00".repeat(32) },
  { link_id: 0x01020304, body: "" },
].map((v) => ({ ...v, payload: be(BigInt(v.link_id), 4) + v.body }));

/** Part 2 section 14.7: type 10, stream 0, length u24, the token's ASCII bytes. */
function refRenew(token: string): string {
  const bytes = new TextEncoder().encode(token);
  return "10" + "00000000" + be(BigInt(bytes.length), 3) + hex(bytes);
}

const RENEW_SECRET = "07".repeat(32);
const RENEW_TOKENS = [
  {
    why: "HS256, secret 07 × 32, sub alice, exp 2000000000",
    token: signJwt({ alg: "HS256", secret: unhex(RENEW_SECRET) }, { sub: "alice", exp: 2e9 }),
  },
  {
    why: "EdDSA, seed 09 × 32, sub alice, exp 2000003600, a routes claim",
    token: signJwt({ alg: "EdDSA", seed: unhex("09".repeat(32)) }, {
      sub: "alice",
      exp: 2000003600,
      routes: ["10.0.0.0/8:22", "!10.1.2.3"],
    }),
  },
  {
    why: "the longest payload (2048 bytes; not a JWT, the frame does not care)",
    token: "a".repeat(2048),
  },
].map((v) => ({ ...v, frame: refRenew(v.token) }));

const RENEW_INVALID = [
  { why: "empty", payload: "" },
  { why: "a space", payload: hex(new TextEncoder().encode("e30.e30 .sig")) },
  { why: "a newline at the end", payload: hex(new TextEncoder().encode("e30.e30.sig\n")) },
  { why: "DEL (0x7f)", payload: "7f" },
  { why: "a byte above ASCII", payload: "e30e" + "c3a9" },
  { why: "2049 bytes", payload: "61".repeat(2049) },
];

const doc = {
  description:
    "NitroSocks session frames (docs/PROTOCOL.md part 6 (sessions over links) sections 2 and 3). " +
    "'resume': RESUME frames (type 0f, stream 0, length 9, received u64, flags u8; bit 0 STATE_LOST); " +
    "'resume_invalid': first records on a resumed link that must be refused with ProtocolError 'code'. " +
    "'link_ids': link id = first 4 bytes (big-endian) of the transcript hash. " +
    "'rekey_payloads': REKEY frame payload = link_id u32 || body; " +
    "'rekey_payloads_short': payloads too short to carry a link id (ignored). " +
    "'renew': RENEW frames (docs/PROTOCOL.md part 2 section 14.7: type 10, stream 0, length u24, " +
    "a JWT's 1..2048 printable ASCII bytes) for the tokens shown ('renew_secret' is the HS256 " +
    "secret of the first); 'renew_invalid': RENEW payloads refused with ProtocolError MALFORMED.",
  resume: RESUME_VALID.map((v) => ({
    received: v.received.toString(),
    state_lost: v.state_lost,
    frame: refResume(v.received, v.state_lost ? 1 : 0),
  })),
  resume_invalid: RESUME_INVALID,
  link_ids: LINK_IDS,
  rekey_payloads: REKEY_PAYLOADS,
  rekey_payloads_short: ["", "00", "000000"],
  renew_secret: RENEW_SECRET,
  renew: RENEW_TOKENS,
  renew_invalid: RENEW_INVALID,
};

const path = new URL("../vectors/session_frames_v1.json", import.meta.url);

if (import.meta.main) {
  await Deno.writeTextFile(path, JSON.stringify(doc, null, 2) + "\n");
  console.log(`wrote ${path.pathname}`);
} else {
  const stored = JSON.parse(await Deno.readTextFile(path)) as typeof doc;

  Deno.test("session_frames_v1.json: the reference reproduces the stored file", () => {
    assert.deepEqual(stored, doc);
  });

  Deno.test("session_frames_v1.json: encodeResumeFrame() and decodeResumeFrame() match every frame", () => {
    assert.ok(stored.resume.length >= 5);
    for (const v of stored.resume) {
      const state = { received: BigInt(v.received), stateLost: v.state_lost };
      assert.equal(hex(encodeResumeFrame(state)), v.frame, v.received);
      assert.deepEqual(decodeResumeFrame(unhex(v.frame)), state);
    }
  });

  Deno.test("session_frames_v1.json: decodeResumeFrame() refuses every invalid frame with its code", () => {
    assert.ok(stored.resume_invalid.length >= 10);
    for (const v of stored.resume_invalid) {
      assert.throws(
        () => decodeResumeFrame(unhex(v.frame)),
        (e: unknown) => e instanceof ProtocolError && e.code === v.code,
        v.why,
      );
    }
  });

  Deno.test("session_frames_v1.json: linkIdOf() is the transcript hash's first 4 bytes", () => {
    for (const v of stored.link_ids) assert.equal(linkIdOf(unhex(v.transcript_hash)), v.link_id);
  });

  Deno.test("session_frames_v1.json: encodeRekeyPayload() and decodeRekeyPayload() match every payload", () => {
    for (const v of stored.rekey_payloads) {
      assert.equal(hex(encodeRekeyPayload(v.link_id, unhex(v.body))), v.payload);
      const got = decodeRekeyPayload(unhex(v.payload));
      assert.ok(got !== undefined);
      assert.equal(got.linkId, v.link_id);
      assert.equal(hex(got.body), v.body);
    }
    for (const p of stored.rekey_payloads_short) {
      assert.equal(decodeRekeyPayload(unhex(p)), undefined, `"${p}"`);
    }
  });

  Deno.test("session_frames_v1.json: RENEW frames encode and decode through lib/mux and lib/session", () => {
    assert.ok(stored.renew.length >= 3);
    for (const v of stored.renew) {
      const w = new Writer();
      encodeFrame(w, { type: FrameType.RENEW, streamId: 0, payload: encodeRenewPayload(v.token) });
      assert.equal(hex(w.finish()), v.frame, v.why);
      const [f, ...rest] = decodeFrames(unhex(v.frame), { resume: true });
      assert.equal(rest.length, 0);
      assert.equal(f!.type, FrameType.RENEW);
      assert.equal(decodeRenewPayload(f!.payload), v.token);
    }
    for (const v of stored.renew_invalid) {
      assert.throws(
        () => decodeRenewPayload(unhex(v.payload)),
        (e: unknown) => e instanceof ProtocolError && e.code === "MALFORMED",
        v.why,
      );
      const text = new TextDecoder().decode(unhex(v.payload));
      assert.throws(() => encodeRenewPayload(text), RangeError, v.why);
    }
  });
}

Deno.test("encodeResumeFrame() refuses a count outside u64", () => {
  for (const received of [-1n, 1n << 64n]) {
    assert.throws(() => encodeResumeFrame({ received, stateLost: false }), RangeError);
  }
});

Deno.test("encodeRekeyPayload() refuses a link id that is not a u32; linkIdOf() a short hash", () => {
  for (const id of [-1, 2 ** 32, 1.5, NaN]) {
    assert.throws(() => encodeRekeyPayload(id, new Uint8Array(1)), RangeError, String(id));
  }
  assert.throws(() => linkIdOf(new Uint8Array(3)), RangeError);
});

Deno.test("decodeRekeyPayload() reads the link id of a view inside a larger buffer", () => {
  const buf = unhex("ff" + "0a0b0c0d" + "01" + "ff");
  const got = decodeRekeyPayload(buf.subarray(1, 6));
  assert.equal(got?.linkId, 0x0a0b0c0d);
  assert.deepEqual(got?.body, Uint8Array.of(1));
});
