/**
 * Session frames (docs/PROTOCOL.md part 5 (session frames) section 2): the wire codec,
 * frame types, reset reasons and the protocol limits of the session layer.
 *
 * ```
 * frame = type u8 ‖ stream_id u32 ‖ length u24 ‖ payload (length bytes)
 * ```
 *
 * A record payload holds whole frames back to back; a frame never spans
 * two records. Decoding returns views into the record, never copies.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { Writer } from "../wire/bytes.ts";

/**
 * Frame types (section 2). `ACK`, `RELEASE`, `REKEY` and `RENEW` belong to session
 * resumption (section 11) and are known only to a decoder that enables it.
 * `DATAGRAM` (section 12) is always known. Every unknown type is a protocol error.
 *
 * @example
 * ```ts
 * import { FrameType } from "./frame.ts";
 * FrameType.DATA; // 3
 * ```
 */
export const FrameType = {
  OPEN: 1,
  REPLY: 2,
  DATA: 3,
  FIN: 4,
  RESET: 5,
  WINDOW_UPDATE: 6,
  PING: 7,
  PONG: 8,
  PADDING: 9,
  GOAWAY: 10,
  /** Resumption: `received u64`, the counted payloads the sender has processed (section 11.3). */
  ACK: 11,
  /**
   * A UDP datagram of an association (section 12): `ATYP ‖ addr ‖ port ‖ data`
   * on the association's stream; never counted, kept or resent, never credited.
   */
  DATAGRAM: 12,
  /** Resumption: an opaque graceful-release message built by `lib/session` (section 11.6). */
  RELEASE: 13,
  /** Resumption: an opaque re-key message built by `lib/session` (section 11.6). */
  REKEY: 14,
  /**
   * Resumption, client to server: a fresh JWT for the session's login
   * (section 11.6; 15 is the RESUME frame of lib/session, never a mux frame).
   */
  RENEW: 16,
} as const;

/**
 * Why a stream was reset: the first payload byte of a RESET frame
 * (section 6). 2, 3 and 4 keep the numbers of seed 002's error table
 * (PERMISSION_DENIED, RATE_LIMIT, PROTOCOL_ERROR). A receiver keeps
 * unknown values as numbers.
 *
 * @example
 * ```ts
 * import { ResetReason } from "./frame.ts";
 * ResetReason.REFUSED; // 1
 * ```
 */
export const ResetReason = {
  /** The sender no longer wants the stream (local app closed or timed out). */
  CANCEL: 0,
  /** The server could not connect to the target; the REPLY says why. */
  REFUSED: 1,
  /** The route is not allowed for this user (seed 002 0x02). */
  NOT_ALLOWED: 2,
  /** A stream or rate limit was reached (seed 002 0x03 and 0x06). */
  LIMIT: 3,
  /** The peer broke the protocol on this stream (seed 002 0x04). */
  PROTOCOL: 4,
  /** The peer sent more than its window on this stream. */
  FLOW_CONTROL: 5,
  /** No traffic for longer than the idle timeout. */
  IDLE: 6,
  /** The target connection failed or was reset (not a clean end of stream). */
  TARGET_CLOSED: 7,
  /** The stream arrived after GOAWAY and was not processed: safe to retry elsewhere. */
  GOING_AWAY: 8,
  /** An unexpected local failure (seed 002 0xFF). */
  INTERNAL: 9,
} as const;

/** One session frame; `payload` is a view, never a copy. */
export interface Frame {
  /** The frame type (`FrameType`). */
  type: number;
  /** The stream, 0 for the session itself. */
  streamId: number;
  /** The payload (a view into the decoded bytes). */
  payload: Uint8Array;
}

/** Bytes of the frame header: type u8 ‖ stream_id u32 ‖ length u24. */
export const FRAME_HEADER_BYTES = 8;
/** Largest payload the u24 length field can carry. */
export const MAX_FRAME_PAYLOAD = 0xffffff;
/** Largest OPEN or REPLY payload; a SOCKS5 request is at most 262 bytes. */
export const MAX_OPEN_PAYLOAD = 512;
/** Largest UTF-8 message in a RESET frame. */
export const MAX_RESET_MESSAGE_BYTES = 256;
/**
 * Every stream starts with this send credit in both directions; a receiver
 * that allows more says so with a WINDOW_UPDATE sent right after OPEN (client)
 * or on receiving OPEN (server). OPEN and REPLY thereby stay raw SOCKS5 bytes.
 */
export const INITIAL_STREAM_WINDOW = 65536;
/** The session starts with this credit; each side raises it at once with WINDOW_UPDATE on stream 0. */
export const INITIAL_SESSION_WINDOW = 1 << 20;
/** No window, stream or session, may exceed 1 GiB: a WINDOW_UPDATE that would is FLOW_CONTROL. */
export const MAX_WINDOW = 1 << 30;
/** Bytes of an ACK frame: header ‖ received u64 (section 11.3). */
export const ACK_FRAME_BYTES: number = FRAME_HEADER_BYTES + 8;
/** Largest RELEASE or REKEY body (section 11.6). */
export const MAX_SESSION_MESSAGE_BYTES = 256;
/** Largest RENEW body: the longest JWT a login accepts (lib/crypto/jwt.ts `JWT_MAX_BYTES`). */
export const MAX_RENEW_BYTES = 2048;
/** Largest address in a DATAGRAM: ATYP ‖ length 255 ‖ 255 domain bytes ‖ port u16. */
export const MAX_DATAGRAM_ADDRESS: number = 1 + 1 + 255 + 2;
/** Largest UDP payload a DATAGRAM carries (a UDP datagram's length field is a u16). */
export const MAX_DATAGRAM_DATA = 65535;
/** Largest DATAGRAM payload: its address and its data (section 12.2). */
export const MAX_DATAGRAM_PAYLOAD: number = MAX_DATAGRAM_ADDRESS + MAX_DATAGRAM_DATA;
/** pull() needs room for the largest control frame. */
export const MIN_PULL_BYTES: number = FRAME_HEADER_BYTES + MAX_OPEN_PAYLOAD;

const MAX_STREAM_ID = 0xffffffff;
const NAMES = [
  "",
  "OPEN",
  "REPLY",
  "DATA",
  "FIN",
  "RESET",
  "WINDOW_UPDATE",
  "PING",
  "PONG",
  "PADDING",
  "GOAWAY",
  "ACK",
  "DATAGRAM",
  "RELEASE",
  "REKEY",
  "",
  "RENEW",
];

/**
 * The name of a frame type, or `type N` for an unknown one.
 *
 * @example
 * ```ts
 * import { frameTypeName } from "./frame.ts";
 * frameTypeName(6); // "WINDOW_UPDATE"
 * ```
 */
export function frameTypeName(type: number): string {
  return NAMES[type] || `type ${type}`;
}

/**
 * The name of a reset reason, or `reason N` for an unknown one.
 *
 * @example
 * ```ts
 * import { resetReasonName } from "./frame.ts";
 * resetReasonName(6); // "IDLE"
 * ```
 */
export function resetReasonName(reason: number): string {
  for (const [k, v] of Object.entries(ResetReason)) if (v === reason) return k;
  return `reason ${reason}`;
}

/** Options of {@linkcode decodeFrames}. */
export interface DecodeOptions {
  /**
   * Accept the resumption types ACK, RELEASE, REKEY and RENEW (section 11). Off by
   * default: a session that did not negotiate resumption treats them as
   * unknown types.
   */
  resume?: boolean;
}

/** Types of section 11: stream 0 only, known only with resumption on. */
function isResumeType(type: number): boolean {
  return type === FrameType.ACK || type === FrameType.RELEASE || type === FrameType.REKEY ||
    type === FrameType.RENEW;
}

/** Stream 0 carries only these types; every other type needs a stream. */
function isSessionType(type: number): boolean {
  return (type >= FrameType.PING && type <= FrameType.GOAWAY) || isResumeType(type);
}

/**
 * Bytes of the address that starts a DATAGRAM payload (`ATYP ‖ addr ‖
 * port`, RFC 1928 section 5 without RSV), or -1 when the payload does not
 * start with a whole address of a known type (section 12.2).
 *
 * @example
 * ```ts
 * import { datagramAddressLength } from "./frame.ts";
 * datagramAddressLength(new Uint8Array([1, 127, 0, 0, 1, 0, 53, 0xab])); // 7
 * ```
 */
export function datagramAddressLength(payload: Uint8Array): number {
  let n: number;
  switch (payload[0]) {
    case 1:
      n = 1 + 4 + 2;
      break;
    case 4:
      n = 1 + 16 + 2;
      break;
    case 3:
      if (payload.length < 2 || payload[1] === 0) return -1;
      n = 2 + payload[1]! + 2;
      break;
    default:
      return -1;
  }
  return n <= payload.length ? n : -1;
}

/**
 * Checks the per-type rules of section 2.2 that need no session state:
 * which stream ids are allowed and how long the payload is. Returns an
 * error message, or undefined when the frame is well formed.
 */
function frameProblem(
  type: number,
  id: number,
  len: number,
  payload: Uint8Array,
): string | undefined {
  if (type === FrameType.WINDOW_UPDATE) {
    if (len !== 4) return `length ${len} must be 4`;
    if (payload[0] === 0 && payload[1] === 0 && payload[2] === 0 && payload[3] === 0) {
      return "increment 0 is not allowed";
    }
    return undefined;
  }
  if (isSessionType(type)) {
    if (id !== 0) return `stream id ${id} must be 0`;
    if ((type === FrameType.PING || type === FrameType.PONG) && len !== 8) {
      return `length ${len} must be 8`;
    }
    if (type === FrameType.GOAWAY && len !== 4) return `length ${len} must be 4`;
    if (type === FrameType.ACK && len !== 8) return `length ${len} must be 8`;
    if (
      (type === FrameType.RELEASE || type === FrameType.REKEY) && len > MAX_SESSION_MESSAGE_BYTES
    ) {
      return `length ${len} exceeds maximum ${MAX_SESSION_MESSAGE_BYTES}`;
    }
    if (type === FrameType.RENEW && (len === 0 || len > MAX_RENEW_BYTES)) {
      return `length ${len} is outside 1..${MAX_RENEW_BYTES}`;
    }
    return undefined;
  }
  if (id === 0) return "stream id 0 is the session";
  switch (type) {
    case FrameType.DATAGRAM:
      if (len > MAX_DATAGRAM_PAYLOAD) {
        return `length ${len} exceeds maximum ${MAX_DATAGRAM_PAYLOAD}`;
      }
      return datagramAddressLength(payload) < 0 ? "no valid address" : undefined;
    case FrameType.OPEN:
    case FrameType.REPLY:
      if (len === 0) return "empty payload";
      if (len > MAX_OPEN_PAYLOAD) return `length ${len} exceeds maximum ${MAX_OPEN_PAYLOAD}`;
      return undefined;
    case FrameType.FIN:
      return len === 0 ? undefined : `length ${len} must be 0`;
    case FrameType.RESET:
      if (len === 0) return "missing reason";
      if (len > 1 + MAX_RESET_MESSAGE_BYTES) {
        return `length ${len} exceeds maximum ${1 + MAX_RESET_MESSAGE_BYTES}`;
      }
      return undefined;
    default: // DATA
      return undefined;
  }
}

/**
 * Appends one frame to `w`. Throws `RangeError` for a frame this codec would
 * refuse to decode (unknown type, bad stream id, payload too long). The
 * resumption types are accepted: only the decoder needs to be told.
 *
 * @example
 * ```ts
 * import { Writer } from "../wire/bytes.ts";
 * import { encodeFrame, FrameType } from "./frame.ts";
 * const w = new Writer();
 * encodeFrame(w, { type: FrameType.FIN, streamId: 1, payload: new Uint8Array(0) });
 * w.finish(); // Uint8Array [4, 0, 0, 0, 1, 0, 0, 0]
 * ```
 */
export function encodeFrame(w: Writer, f: Frame): void {
  const len = f.payload.length;
  if (!Number.isInteger(f.type) || !isKnownType(f.type, true)) {
    throw new RangeError(`Cannot encode frame: unknown type ${f.type}`);
  }
  if (!Number.isInteger(f.streamId) || f.streamId < 0 || f.streamId > MAX_STREAM_ID) {
    throw new RangeError(`Cannot encode frame: stream id ${f.streamId} is not a u32`);
  }
  if (len > MAX_FRAME_PAYLOAD) {
    throw new RangeError(`Cannot encode frame: length ${len} exceeds maximum ${MAX_FRAME_PAYLOAD}`);
  }
  const problem = frameProblem(f.type, f.streamId, len, f.payload);
  if (problem !== undefined) {
    throw new RangeError(`Cannot encode ${frameTypeName(f.type)} frame: ${problem}`);
  }
  w.u8(f.type).u32(f.streamId).u24(len).bytes(f.payload);
}

function isKnownType(type: number, resume: boolean): boolean {
  return (type >= FrameType.OPEN && type <= FrameType.GOAWAY) || type === FrameType.DATAGRAM ||
    (resume && isResumeType(type));
}

/**
 * Splits a record payload into frames. Every frame must be whole and well
 * formed (known type, stream id and length allowed for its type); otherwise
 * throws `ProtocolError` (`TRUNCATED`, `UNSUPPORTED` or `MALFORMED`) and
 * returns nothing. Payloads are views into `recordPayload`. ACK, RELEASE,
 * REKEY and RENEW are unknown types unless `options.resume` is set.
 *
 * @example
 * ```ts
 * import { decodeFrames } from "./frame.ts";
 * const frames = decodeFrames(new Uint8Array([3, 0, 0, 0, 1, 0, 0, 2, 104, 105]));
 * frames[0]!.payload; // Uint8Array [104, 105], stream 1, DATA
 * ```
 */
export function decodeFrames(recordPayload: Uint8Array, options: DecodeOptions = {}): Frame[] {
  const b = recordPayload;
  const resume = options.resume === true;
  const out: Frame[] = [];
  let o = 0;
  while (o < b.length) {
    const left = b.length - o;
    if (left < FRAME_HEADER_BYTES) {
      throw new ProtocolError(
        "TRUNCATED",
        `Cannot decode frame at offset ${o}: truncated header, ${left} of ${FRAME_HEADER_BYTES} bytes`,
      );
    }
    const type = b[o]!;
    const id = ((b[o + 1]! << 24) | (b[o + 2]! << 16) | (b[o + 3]! << 8) | b[o + 4]!) >>> 0;
    const len = (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!;
    o += FRAME_HEADER_BYTES;
    if (!isKnownType(type, resume)) {
      throw new ProtocolError(
        "UNSUPPORTED",
        `Cannot decode frame at offset ${o - FRAME_HEADER_BYTES}: unknown type ${type}`,
      );
    }
    if (len > b.length - o) {
      throw new ProtocolError(
        "TRUNCATED",
        `Cannot decode ${NAMES[type]} frame at offset ${
          o - FRAME_HEADER_BYTES
        }: length ${len} exceeds the ${b.length - o} bytes left in the record`,
      );
    }
    const payload = b.subarray(o, o + len);
    const problem = frameProblem(type, id, len, payload);
    if (problem !== undefined) {
      throw new ProtocolError(
        "MALFORMED",
        `Cannot decode ${NAMES[type]} frame at offset ${o - FRAME_HEADER_BYTES}: ${problem}`,
      );
    }
    out.push({ type, streamId: id, payload });
    o += len;
  }
  return out;
}
