/**
 * The session layer: many SOCKS5 streams over one sequence of records, with
 * per-stream and per-session credit windows and a fair frame scheduler.
 * Pure (no I/O, no timers); the spec is docs/PROTOCOL.md part 5 (session frames).
 *
 * @example
 * ```ts
 * import { Mux } from "./mod.ts";
 * const client = new Mux({ role: "client" });
 * const server = new Mux({ role: "server" });
 * client.open(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
 * const events = server.receive(client.pull()!, 0);
 * events.find((e) => e.type === "open"); // { type: "open", id: 1, request: ... }
 * ```
 *
 * @module
 */
export {
  ACK_FRAME_BYTES,
  datagramAddressLength,
  decodeFrames,
  type DecodeOptions,
  encodeFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameType,
  frameTypeName,
  INITIAL_SESSION_WINDOW,
  INITIAL_STREAM_WINDOW,
  MAX_DATAGRAM_ADDRESS,
  MAX_DATAGRAM_DATA,
  MAX_DATAGRAM_PAYLOAD,
  MAX_FRAME_PAYLOAD,
  MAX_OPEN_PAYLOAD,
  MAX_RENEW_BYTES,
  MAX_RESET_MESSAGE_BYTES,
  MAX_SESSION_MESSAGE_BYTES,
  MAX_WINDOW,
  MIN_PULL_BYTES,
  ResetReason,
  resetReasonName,
} from "./frame.ts";
export {
  Mux,
  MUX_LIMITS,
  type MuxEvent,
  type MuxOptions,
  type MuxStats,
  type PullOptions,
} from "./mux.ts";
/** The byte writer `encodeFrame` writes into. */
export { Writer } from "../wire/bytes.ts";
