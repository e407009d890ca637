/**
 * The session layer's own wire formats around `lib/mux` frames
 * (docs/PROTOCOL.md part 6 (sessions over links), sections 2 and 3):
 *
 * ```
 * RESUME frame   = 0F | 00000000 | 000009 | received u64 | flags u8    (flags bit 0: STATE_LOST)
 * REKEY payload  = link_id u32 ‖ REKEY body (lib/session/rekey.ts)
 * link_id        = first 4 bytes (big-endian) of the link's handshake transcript hash
 * RENEW payload  = a JWT's compact form, 1..2048 bytes of printable ASCII (0x21..0x7E)
 * ```
 *
 * The RESUME frame is the first and only frame of the first record each
 * side sends on a resumed link; it is never given to the mux. Vectors:
 * `tests/vectors/session_frames_v1.json`.
 *
 * @example
 * ```ts
 * import { decodeResumeFrame, encodeResumeFrame } from "./frames.ts";
 * const frame = encodeResumeFrame({ received: 7n, stateLost: false });
 * console.log(frame.length, decodeResumeFrame(frame)); // 17 { received: 7n, stateLost: false }
 * ```
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { FRAME_HEADER_BYTES, MAX_RENEW_BYTES } from "../mux/frame.ts";
import { Reader, Writer } from "../wire/bytes.ts";

/** Frame type of RESUME (part 6 section 2); the mux never sees it. */
export const FRAME_RESUME = 15;
/** Bytes of a RESUME frame's payload: received u64 ‖ flags u8. */
export const RESUME_PAYLOAD_BYTES = 9;
/** Bytes of a whole RESUME frame (header and payload). */
export const RESUME_FRAME_BYTES: number = FRAME_HEADER_BYTES + RESUME_PAYLOAD_BYTES;
/** Flag bits of a RESUME frame. */
export const ResumeFlag = {
  /** The sender holds no state for this session (a server that accepted another server's ticket). */
  STATE_LOST: 1,
} as const;
/** Bytes of the link id in front of a REKEY body. */
export const REKEY_LINK_ID_BYTES = 4;

/** What a RESUME frame says. */
export interface ResumeState {
  /** The sender's count of counted payloads received in this session (mux `resumeState().received`). */
  received: bigint;
  /** The sender holds no state for this session. */
  stateLost: boolean;
}

/**
 * Encodes a RESUME frame (17 bytes). Throws `RangeError` for a count
 * outside u64.
 *
 * @example
 * ```ts
 * import { encodeResumeFrame } from "./frames.ts";
 * encodeResumeFrame({ received: 0n, stateLost: true }); // 0f 00000000 000009 0000000000000000 01
 * ```
 */
export function encodeResumeFrame(state: ResumeState): Uint8Array {
  const { received, stateLost } = state;
  if (typeof received !== "bigint" || received < 0n || received > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`Cannot encode RESUME frame: received ${received} is not a u64`);
  }
  return new Writer(RESUME_FRAME_BYTES)
    .u8(FRAME_RESUME).u32(0).u24(RESUME_PAYLOAD_BYTES)
    .u64(received)
    .u8(stateLost ? ResumeFlag.STATE_LOST : 0)
    .finish();
}

/**
 * Decodes the first record's payload on a resumed link, which must be
 * exactly one RESUME frame. Throws `ProtocolError`: `MALFORMED` for another
 * frame, unknown flags or trailing bytes, `TRUNCATED` for a short one.
 *
 * @example
 * ```ts
 * import { decodeResumeFrame, encodeResumeFrame } from "./frames.ts";
 * decodeResumeFrame(encodeResumeFrame({ received: 3n, stateLost: true })); // { received: 3n, stateLost: true }
 * ```
 */
export function decodeResumeFrame(payload: Uint8Array): ResumeState {
  const r = new Reader(payload, "RESUME frame");
  if (r.u8() !== FRAME_RESUME || r.u32() !== 0 || r.u24() !== RESUME_PAYLOAD_BYTES) {
    throw notResume();
  }
  const received = r.u64();
  const flags = r.u8();
  r.expectEmpty();
  if ((flags & ~ResumeFlag.STATE_LOST) !== 0) throw notResume();
  return { received, stateLost: (flags & ResumeFlag.STATE_LOST) !== 0 };
}

function notResume(): ProtocolError {
  return new ProtocolError("MALFORMED", "Cannot resume: the first record is not a RESUME frame");
}

/**
 * A link's id for REKEY payloads: the first 4 bytes (big-endian) of its
 * handshake transcript hash. Throws `RangeError` for fewer than 4 bytes.
 *
 * @example
 * ```ts
 * import { linkIdOf } from "./frames.ts";
 * linkIdOf(new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x01])); // 0xdeadbeef
 * ```
 */
export function linkIdOf(transcriptHash: Uint8Array): number {
  if (!(transcriptHash instanceof Uint8Array) || transcriptHash.length < REKEY_LINK_ID_BYTES) {
    throw new RangeError(
      `Cannot derive link id: transcript hash has ${transcriptHash?.length} bytes, needs ${REKEY_LINK_ID_BYTES}`,
    );
  }
  return new DataView(transcriptHash.buffer, transcriptHash.byteOffset, 4).getUint32(0);
}

/**
 * A REKEY frame's payload: `linkId` u32 ‖ `body`. Throws `RangeError` for
 * a link id that is not a u32.
 *
 * @example
 * ```ts
 * import { encodeRekeyPayload } from "./frames.ts";
 * encodeRekeyPayload(1, new Uint8Array([9])); // Uint8Array [0, 0, 0, 1, 9]
 * ```
 */
export function encodeRekeyPayload(linkId: number, body: Uint8Array): Uint8Array {
  if (!Number.isInteger(linkId) || linkId < 0 || linkId > 0xffff_ffff) {
    throw new RangeError(`Cannot encode REKEY payload: link id ${linkId} is not a u32`);
  }
  const out = new Uint8Array(REKEY_LINK_ID_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, linkId);
  out.set(body, REKEY_LINK_ID_BYTES);
  return out;
}

/**
 * Splits a REKEY frame's payload into its link id and body (a view), or
 * returns `undefined` when it is shorter than a link id (the frame is
 * ignored, like a stale one).
 *
 * @example
 * ```ts
 * import { decodeRekeyPayload } from "./frames.ts";
 * decodeRekeyPayload(new Uint8Array([0, 0, 0, 1, 9])); // { linkId: 1, body: Uint8Array [9] }
 * decodeRekeyPayload(new Uint8Array(3)); // undefined
 * ```
 */
export function decodeRekeyPayload(
  payload: Uint8Array,
): { linkId: number; body: Uint8Array } | undefined {
  if (payload.length < REKEY_LINK_ID_BYTES) return undefined;
  const linkId = new DataView(payload.buffer, payload.byteOffset, REKEY_LINK_ID_BYTES).getUint32(0);
  return { linkId, body: payload.subarray(REKEY_LINK_ID_BYTES) };
}

const PRINTABLE = /^[\x21-\x7e]+$/;

/**
 * A RENEW frame's payload (docs/PROTOCOL.md part 2 section 14.7): the
 * fresh JWT's bytes. Throws `RangeError` for a token that is not 1..2048
 * characters of printable ASCII (no JWT is anything else).
 *
 * @example
 * ```ts
 * import { encodeRenewPayload } from "./frames.ts";
 * encodeRenewPayload("e30.e30.c2ln").length; // 11
 * ```
 */
export function encodeRenewPayload(token: string): Uint8Array {
  if (typeof token !== "string" || token.length > MAX_RENEW_BYTES || !PRINTABLE.test(token)) {
    throw new RangeError(
      `Cannot encode RENEW payload: the token is not 1..${MAX_RENEW_BYTES} printable ASCII characters`,
    );
  }
  return new TextEncoder().encode(token);
}

/**
 * The JWT in a RENEW frame's payload. Throws `ProtocolError` `MALFORMED`
 * when it is not 1..2048 bytes of printable ASCII.
 *
 * @example
 * ```ts
 * import { decodeRenewPayload, encodeRenewPayload } from "./frames.ts";
 * decodeRenewPayload(encodeRenewPayload("e30.e30.c2ln")); // "e30.e30.c2ln"
 * ```
 */
export function decodeRenewPayload(payload: Uint8Array): string {
  const ok = payload.length >= 1 && payload.length <= MAX_RENEW_BYTES &&
    payload.every((b) => b >= 0x21 && b <= 0x7e);
  if (!ok) {
    throw new ProtocolError(
      "MALFORMED",
      `Cannot decode RENEW payload: ${payload.length} bytes, not 1..${MAX_RENEW_BYTES} of printable ASCII`,
    );
  }
  return new TextDecoder().decode(payload);
}
