/**
 * The session multiplexer (docs/PROTOCOL.md part 5 (session frames)): stream state,
 * credit windows and the frame scheduler. Pure: bytes and a clock value in,
 * events and record payloads out; no I/O, no timers, no awaits.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { Deque } from "./_deque.ts";
import { Ledger } from "./_ledger.ts";
import {
  BLOCKED,
  FIN_QUEUED,
  FREED,
  IN_READY,
  LOCAL_FIN,
  OWN_TAIL,
  REMOTE_FIN,
  REPLIED,
  Stream,
  WU_QUEUED,
} from "./_stream.ts";
import {
  ACK_FRAME_BYTES,
  datagramAddressLength,
  decodeFrames,
  type DecodeOptions,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameType,
  frameTypeName,
  INITIAL_SESSION_WINDOW,
  INITIAL_STREAM_WINDOW,
  MAX_DATAGRAM_DATA,
  MAX_FRAME_PAYLOAD,
  MAX_OPEN_PAYLOAD,
  MAX_RENEW_BYTES,
  MAX_RESET_MESSAGE_BYTES,
  MAX_SESSION_MESSAGE_BYTES,
  MAX_WINDOW,
  MIN_PULL_BYTES,
  ResetReason,
} from "./frame.ts";

/** Options of a {@linkcode Mux}. */
export interface MuxOptions {
  /** The client opens streams (odd ids); the server accepts them. */
  role: "client" | "server";
  /** Most streams open at once, both ways, 1 to 1 000 000 (default 1024). */
  maxStreams?: number;
  /** Receive window per stream, 64 KiB to 1 GiB (default 1 MiB). */
  streamWindow?: number;
  /** Receive window for the whole session, 1 MiB to 1 GiB (default 16 MiB). */
  sessionWindow?: number;
  /** Largest record payload pull() returns (default 256 KiB). */
  maxRecordPayload?: number;
  /** DATA bytes a stream may send per round-robin turn, at least 256 (default 16 KiB). */
  quantum?: number;
  /**
   * Session resumption (40-session.md section 11): number the record
   * payloads, keep them until the peer ACKs them and resend them after a
   * reconnection; accept ACK, RELEASE and REKEY. Both peers must agree (the
   * handshake negotiates it). Default false: the version 1 behaviour.
   */
  resume?: boolean;
  /** With resume: bytes of unacknowledged payloads kept for resending, 256 KiB to 1 GiB (default 8 MiB). */
  resendBufferBytes?: number;
  /** With resume: ACK at the latest after this many counted payloads, 1 to 65536 (default 16). */
  ackPayloads?: number;
  /** With resume: ACK at the latest after this many bytes of counted payloads, 1 KiB to 1 GiB (default 128 KiB). */
  ackBytes?: number;
  /**
   * DATAGRAM frames (section 12) queued and not yet pulled, in bytes with
   * headers, 4 KiB to 64 MiB (default 256 KiB); past it, or past 1024
   * datagrams, the oldest queued datagram is dropped (`datagramsDropped`).
   */
  datagramQueueBytes?: number;
}

/** Options of {@linkcode Mux.pull}. */
export interface PullOptions {
  /**
   * Bytes left free in front of the payload, 0 to 16 (default 0): the
   * payload is then a view that starts `headroom` bytes into its own
   * buffer, and those bytes belong to the caller, who may write into them
   * (the tunnel puts the record's `pad_len` prefix there, so sealing needs
   * no copy). They are not part of the payload; a kept payload returned
   * again after a resume has them too.
   */
  headroom?: number;
}

/** Most `headroom` a pull() may ask for. */
const MAX_HEADROOM = 16;

/**
 * What the mux tells the tunnel. Byte fields are views into the record
 * payload given to receive(): do not reuse that buffer while holding them.
 */
export type MuxEvent =
  | { type: "open"; id: number; request: Uint8Array }
  | { type: "reply"; id: number; reply: Uint8Array }
  | { type: "data"; id: number; data: Uint8Array }
  | { type: "fin"; id: number }
  | { type: "reset"; id: number; reason: number; message: string }
  | { type: "writable"; id: number }
  | { type: "closed"; id: number }
  | { type: "pong"; rttMs: number }
  | { type: "goaway"; lastId: number }
  /** A RELEASE frame's body (resume only); `id` is 0, the session. */
  | { type: "release"; id: 0; body: Uint8Array }
  /** A REKEY frame's body (resume only); `id` is 0, the session. */
  | { type: "rekey"; id: 0; body: Uint8Array }
  /** A RENEW frame's body, a fresh JWT (resume only, server side); `id` is 0, the session. */
  | { type: "renew"; id: 0; body: Uint8Array }
  /**
   * A DATAGRAM frame's payload (`ATYP ‖ addr ‖ port ‖ data`) on stream `id`.
   * The 3 bytes in front of it in its buffer held the frame's length and are
   * no longer read: the receiver may overwrite them (the SOCKS5 UDP header
   * `RSV RSV FRAG` then fits in front without a copy).
   */
  | { type: "datagram"; id: number; datagram: Uint8Array };

/** A snapshot of the mux's counters, for logs and tests. */
export interface MuxStats {
  /** Streams open. */
  streams: number;
  /** DATA bytes queued and not yet pulled. */
  queuedBytes: number;
  /** Bytes of control frames (headers included) waiting to be pulled. */
  controlBytes: number;
  /** Session credit the peer still grants us. */
  sendCredit: number;
  /** Session bytes the peer may still send us. */
  recvWindow: number;
  /** Streams waiting for a writable event. */
  blockedStreams: number;
  /** Closed streams whose delivered data the app has not consumed yet. */
  owedStreams: number;
  /** Events waiting for takeEvents() or the next receive(). */
  pendingEvents: number;
  /** Resume: bytes of sent payloads kept until the peer ACKs them (0 without resume). */
  unackedBytes: number;
  /** Resume: payloads kept until the peer ACKs them (0 without resume). */
  unackedPayloads: number;
  /** Resume: bytes of kept payloads that pull() must return again after a resume. */
  resendBytes: number;
  /** DATAGRAM frames queued and not yet pulled. */
  datagramsQueued: number;
  /** Bytes of those frames, headers included (at most `datagramQueueBytes`). */
  datagramQueueBytes: number;
  /** DATAGRAM frames pulled (sent), in this session. */
  datagramsSent: number;
  /** DATAGRAM frames received for an open stream. */
  datagramsReceived: number;
  /** Datagrams dropped before sending: oldest first when the queue was full, too large, or their stream gone. */
  datagramsDropped: number;
}

/** A datagram waiting to be pulled: its frame is `DATAGRAM ‖ id ‖ len ‖ address ‖ data`. */
interface QueuedDatagram {
  s: Stream;
  address: Uint8Array;
  data: Uint8Array;
}

/** A control frame waiting in the queue; WINDOW_UPDATE amounts are read when pulled. */
interface Ctl {
  type: number;
  id: number;
  /** null for WINDOW_UPDATE: the increment lives in the stream (or session) until pulled. */
  payload: Uint8Array | null;
  stream: Stream | null;
  /** Sent because of a peer's frame, not an app call: counted against MAX_INDUCED. */
  induced: boolean;
}

/** A frame laid out for the record being built. */
interface Planned {
  type: number;
  id: number;
  len: number;
  parts: Uint8Array[];
}

/**
 * The bounds of the mux options that configuration sets. lib/config imports
 * them, so every value `server.yml` or a profile accepts is one a mux takes.
 */
export const MUX_LIMITS: {
  readonly streamWindow: { readonly min: number; readonly max: number };
  readonly sessionWindow: { readonly min: number; readonly max: number };
  readonly maxStreams: { readonly min: number; readonly max: number };
  readonly resendBufferBytes: { readonly min: number; readonly max: number };
} = Object.freeze({
  /** A receiver grants at least the initial window; WINDOW_UPDATEs only raise it. */
  streamWindow: Object.freeze({ min: INITIAL_STREAM_WINDOW, max: MAX_WINDOW }),
  sessionWindow: Object.freeze({ min: INITIAL_SESSION_WINDOW, max: MAX_WINDOW }),
  maxStreams: Object.freeze({ min: 1, max: 1_000_000 }),
  /** One default record at least: a smaller buffer would stall on every record. */
  resendBufferBytes: Object.freeze({ min: 256 << 10, max: MAX_WINDOW }),
});

const DEFAULT_MAX_STREAMS = 1024;
const DEFAULT_STREAM_WINDOW = 1 << 20;
const DEFAULT_SESSION_WINDOW = 16 << 20;
const DEFAULT_MAX_RECORD_PAYLOAD = 256 << 10;
const DEFAULT_QUANTUM = 16 << 10;
/** A smaller turn would spend more on frame headers than on data. */
const MIN_QUANTUM = 256;
/** Sends shorter than this are copied into a per-stream buffer, so tiny writes do not pile up as views. */
const COALESCE_BYTES = 1024;
/** Size of that per-stream buffer; allocated on a small send, dropped when the queue drains. */
const OWN_BYTES = 4096;
/** Unanswered PINGs remembered for RTT; older ones are forgotten. */
const MAX_PINGS = 4;
/** Largest body of a cover PADDING frame (`cover`). */
const MAX_COVER_BYTES = 16384;
/** RESETs for refused OPENs waiting to be pulled; more means the peer floods without reading. */
const MAX_INDUCED = 4096;
const MAX_STREAM_ID = 0xffffffff;
/**
 * 8 MiB of unacknowledged payloads: with ACKs every 128 KiB the sender has
 * 64 ACK intervals in flight, enough for 8 MiB per round trip (~670 Mbit/s
 * at 100 ms) before the buffer, not the window, limits a session.
 */
const DEFAULT_RESEND_BUFFER_BYTES = 8 << 20;
/**
 * ACK after 16 counted payloads: bounds how many small payloads (keystrokes)
 * the peer buffers between timer flushes, for one 16-byte frame per 16 records.
 */
const DEFAULT_ACK_PAYLOADS = 16;
/**
 * ACK after 128 KiB: half the smallest resend buffer a peer may choose, so a
 * peer never fills its buffer waiting for our timer, whatever size it picked;
 * costs at most one 16-byte ACK per 128 KiB received (0.01 %).
 */
const DEFAULT_ACK_BYTES = 128 << 10;
/**
 * 256 KiB of queued datagrams: about 200 ms at 10 Mbit/s. Datagram traffic
 * (DNS, QUIC, voice) would rather lose a packet than wait behind a long
 * queue, and the bound holds memory per session whatever the application
 * sends.
 */
const DEFAULT_DATAGRAM_QUEUE_BYTES = 256 << 10;
const MIN_DATAGRAM_QUEUE_BYTES = 4 << 10;
const MAX_DATAGRAM_QUEUE_BYTES = 64 << 20;
/** Most datagrams queued at once, whatever their size (bounds the entries, not only bytes). */
const MAX_QUEUED_DATAGRAMS = 1024;
/** RELEASE and REKEY messages queued and not yet pulled; lib/session sends a handful per session. */
const MAX_QUEUED_MESSAGES = 16;
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function ctlSize(c: Ctl): number {
  return FRAME_HEADER_BYTES + (c.payload === null ? 4 : c.payload.length);
}

function u32(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function u32At(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function u32Bytes(v: number): Uint8Array {
  return new Uint8Array([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}

/** Writes a frame header (type u8 ‖ stream_id u32 ‖ length u24) at `o`; returns the offset after it. */
function putFrameHeader(b: Uint8Array, o: number, type: number, id: number, len: number): number {
  b[o] = type;
  b[o + 1] = id >>> 24;
  b[o + 2] = id >>> 16;
  b[o + 3] = id >>> 8;
  b[o + 4] = id;
  b[o + 5] = len >>> 16;
  b[o + 6] = len >>> 8;
  b[o + 7] = len;
  return o + FRAME_HEADER_BYTES;
}

/** Writes an ACK frame (0B ‖ 00000000 ‖ 000008 ‖ received u64) at `o`; returns the offset after it. */
function putAck(b: Uint8Array, o: number, received: number): number {
  o = putFrameHeader(b, o, FrameType.ACK, 0, 8);
  const hi = Math.floor(received / 2 ** 32);
  const lo = received >>> 0;
  b[o] = hi >>> 24;
  b[o + 1] = hi >>> 16;
  b[o + 2] = hi >>> 8;
  b[o + 3] = hi;
  b[o + 4] = lo >>> 24;
  b[o + 5] = lo >>> 16;
  b[o + 6] = lo >>> 8;
  b[o + 7] = lo;
  return o + 8;
}

function intOption(
  name: string,
  v: number | undefined,
  dflt: number,
  min: number,
  max: number,
): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`Cannot create mux: ${name} ${v} is not an integer in [${min}, ${max}]`);
  }
  return v;
}

/** RESET payload: reason u8 ‖ UTF-8 message cut to 256 bytes at a character boundary. */
function resetPayload(reason: number, message: string): Uint8Array {
  let text = encoder.encode(message);
  if (text.length > MAX_RESET_MESSAGE_BYTES) {
    let n = MAX_RESET_MESSAGE_BYTES;
    while (n > 0 && (text[n]! & 0xc0) === 0x80) n--;
    text = text.subarray(0, n);
  }
  const out = new Uint8Array(1 + text.length);
  out[0] = reason;
  out.set(text, 1);
  return out;
}

function checkOpenPayload(what: string, b: Uint8Array): void {
  if (!(b instanceof Uint8Array)) {
    throw new TypeError(`Cannot ${what}: payload is not a Uint8Array`);
  }
  if (b.length === 0 || b.length > MAX_OPEN_PAYLOAD) {
    throw new RangeError(`Cannot ${what}: length ${b.length} is not in [1, ${MAX_OPEN_PAYLOAD}]`);
  }
}

function flowError(id: number, len: number, window: number, which: string): ProtocolError {
  return new ProtocolError(
    "LIMIT",
    `Cannot accept DATA on stream ${id}: flow control violation, ${len} bytes exceed the ${which} window ${window}`,
  );
}

/**
 * One session's streams over one sequence of records. The tunnel feeds it
 * decrypted record payloads with receive(), sends what pull() returns, and
 * moves stream bytes with send()/consumed().
 *
 * Buffer ownership: send() keeps a view of `data` (sends of 1 KiB or more)
 * until pull() copies those bytes into the record it returns; do not modify
 * or reuse that buffer until then (queued(id) === 0, or the stream is gone).
 * Sends under 1 KiB are copied into a small mux-owned buffer at once.
 *
 * Resumption (option `resume`, section 11): every payload pull() returns
 * that holds a frame other than ACK or PADDING is numbered and kept (the
 * same array: do not modify it) until the peer's ACK covers it. When the
 * connection breaks, call connectionLost(); on the new connection send
 * resumeState() to the peer and pass the peer's to onPeerResumed(): pull()
 * then returns the payloads the peer missed, unchanged and in order, before
 * anything new. Call flushAck() on a short timer and when reads go idle.
 *
 * @example
 * ```ts
 * import { Mux } from "./mux.ts";
 * const client = new Mux({ role: "client" });
 * const server = new Mux({ role: "server" });
 * const id = client.open(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
 * for (let r = client.pull(); r !== null; r = client.pull()) {
 *   for (const ev of server.receive(r, 0)) if (ev.type === "open") server.reply(ev.id, new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
 * }
 * for (let r = server.pull(); r !== null; r = server.pull()) client.receive(r, 0);
 * client.send(id, new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n")); // 18
 * ```
 */
export class Mux {
  readonly #client: boolean;
  readonly #maxStreams: number;
  readonly #streamWindow: number;
  readonly #sessionWindow: number;
  readonly #maxRecord: number;
  readonly #quantum: number;

  readonly #streams = new Map<number, Stream>();
  /** Client: the id open() hands out next. */
  #nextId = 1;
  /** Server: the highest stream id the client has opened. */
  #peerMaxId = 0;

  /** Session credit the peer grants us (decremented when data is queued). */
  #sendCredit = INITIAL_SESSION_WINDOW;
  /** Session bytes the peer may still send. */
  #recvWindow = INITIAL_SESSION_WINDOW;
  /** Session bytes consumed and not yet returned in a WINDOW_UPDATE. */
  #recvGrant = 0;
  #sessionWu = 0;
  #sessionWuQueued = false;

  readonly #control = new Deque<Ctl>();
  #controlBytes = 0;
  #induced = 0;
  readonly #ready = new Deque<Stream>();
  readonly #blocked = new Set<Stream>();
  #queued = 0;
  /** Gracefully closed streams whose delivered bytes are not yet consumed. */
  readonly #owed = new Map<number, number>();
  #events: MuxEvent[] = [];

  /** Least recently active first; the tail is the most recent. */
  #lruHead: Stream | null = null;
  #lruTail: Stream | null = null;
  #now = 0;

  readonly #pings: number[] = [];
  #pingQueued = false;
  /** Body bytes of the cover PADDING frame waiting for a quiet pull; -1: none. */
  #cover = -1;
  #pong: Ctl | null = null;
  #goawaySent = false;
  #goawayReceived = false;

  /** Resumption state; null without the `resume` option. */
  readonly #ledger: Ledger | null;
  readonly #decodeOptions: DecodeOptions;
  /** RELEASE and REKEY frames queued and not yet pulled. */
  #messages = 0;

  readonly #dgLimit: number;
  readonly #datagrams = new Deque<QueuedDatagram>();
  /** Bytes of the queued DATAGRAM frames, headers included. */
  #dgBytes = 0;
  /** The last payload pulled held datagrams: streams go next if they have anything. */
  #dgLast = false;
  #dgSent = 0;
  #dgReceived = 0;
  #dgDropped = 0;

  /** A mux with no streams; throws `RangeError` for an option out of range. */
  constructor(opts: MuxOptions) {
    if (opts.role !== "client" && opts.role !== "server") {
      throw new TypeError(
        `Cannot create mux: role "${String(opts.role)}" is not "client" or "server"`,
      );
    }
    this.#client = opts.role === "client";
    const L = MUX_LIMITS;
    this.#maxStreams = intOption(
      "maxStreams",
      opts.maxStreams,
      DEFAULT_MAX_STREAMS,
      L.maxStreams.min,
      L.maxStreams.max,
    );
    this.#streamWindow = intOption(
      "streamWindow",
      opts.streamWindow,
      DEFAULT_STREAM_WINDOW,
      L.streamWindow.min,
      L.streamWindow.max,
    );
    this.#sessionWindow = intOption(
      "sessionWindow",
      opts.sessionWindow,
      DEFAULT_SESSION_WINDOW,
      L.sessionWindow.min,
      L.sessionWindow.max,
    );
    this.#maxRecord = intOption(
      "maxRecordPayload",
      opts.maxRecordPayload,
      DEFAULT_MAX_RECORD_PAYLOAD,
      MIN_PULL_BYTES,
      FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD,
    );
    this.#quantum = intOption(
      "quantum",
      opts.quantum,
      DEFAULT_QUANTUM,
      MIN_QUANTUM,
      MAX_FRAME_PAYLOAD,
    );
    const resendBytes = intOption(
      "resendBufferBytes",
      opts.resendBufferBytes,
      DEFAULT_RESEND_BUFFER_BYTES,
      L.resendBufferBytes.min,
      L.resendBufferBytes.max,
    );
    const ackPayloads = intOption("ackPayloads", opts.ackPayloads, DEFAULT_ACK_PAYLOADS, 1, 65536);
    const ackBytes = intOption("ackBytes", opts.ackBytes, DEFAULT_ACK_BYTES, 1024, MAX_WINDOW);
    const resume = opts.resume ?? false;
    if (typeof resume !== "boolean") {
      throw new TypeError(`Cannot create mux: resume ${String(resume)} is not a boolean`);
    }
    this.#dgLimit = intOption(
      "datagramQueueBytes",
      opts.datagramQueueBytes,
      DEFAULT_DATAGRAM_QUEUE_BYTES,
      MIN_DATAGRAM_QUEUE_BYTES,
      MAX_DATAGRAM_QUEUE_BYTES,
    );
    this.#ledger = resume ? new Ledger(resendBytes, ackPayloads, ackBytes) : null;
    this.#decodeOptions = { resume };
    if (this.#sessionWindow > INITIAL_SESSION_WINDOW) {
      this.#queueSessionWu(this.#sessionWindow - INITIAL_SESSION_WINDOW);
    }
  }

  /**
   * Bytes waiting to be pulled: control frames with headers, plus DATA
   * payload, plus DATAGRAM frames, plus (resume) payloads owed again and an
   * ACK owed. pull() may still return null: connection lost, or resend
   * buffer full.
   */
  get pendingBytes(): number {
    const l = this.#ledger;
    const own = this.#controlBytes + this.#queued + this.#dgBytes;
    if (l === null) return own;
    return own + l.resendBytes + (l.ackForced ? ACK_FRAME_BYTES : 0);
  }

  /**
   * RELEASE and REKEY frames queued by sendRelease()/sendRekey() and not yet
   * pulled: it drops to 0 in the pull() whose payload carries the last one,
   * so the tunnel can seal that record before it re-keys its sealer.
   */
  get queuedMessages(): number {
    return this.#messages;
  }

  /** Streams open. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * Client: opens a stream whose OPEN frame carries `request` (the raw
   * SOCKS5 request, copied) and returns its id. `nowMs` (the clock of
   * receive()) starts the stream's idle time; without it, the last time the
   * mux was given. Throws `ProtocolError`
   * `LIMIT` past maxStreams, `CLOSED` after GOAWAY either way.
   */
  open(request: Uint8Array, nowMs?: number): number {
    if (!this.#client) throw new TypeError("Cannot open stream: only the client opens streams");
    // The stream's idle clock starts now, even before anything was received.
    if (nowMs !== undefined && nowMs > this.#now) this.#now = nowMs;
    checkOpenPayload("open stream", request);
    if (this.#goawaySent || this.#goawayReceived) {
      throw new ProtocolError(
        "CLOSED",
        `Cannot open stream: GOAWAY was ${this.#goawaySent ? "sent" : "received"}`,
      );
    }
    if (this.#streams.size >= this.#maxStreams) {
      throw new ProtocolError(
        "LIMIT",
        `Cannot open stream: limit of ${this.#maxStreams} streams reached`,
      );
    }
    if (this.#nextId > MAX_STREAM_ID) {
      throw new ProtocolError("LIMIT", "Cannot open stream: stream ids are exhausted");
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const s = this.#add(id);
    this.#pushCtl({
      type: FrameType.OPEN,
      id,
      payload: request.slice(),
      stream: null,
      induced: false,
    });
    if (this.#streamWindow > INITIAL_STREAM_WINDOW) {
      this.#queueStreamWu(s, this.#streamWindow - INITIAL_STREAM_WINDOW);
    }
    return id;
  }

  /** Server: answers stream `id` with `reply` (the raw SOCKS5 reply, copied). No-op if the stream is gone. */
  reply(id: number, reply: Uint8Array): void {
    if (this.#client) throw new TypeError("Cannot reply: only the server replies");
    checkOpenPayload(`reply on stream ${id}`, reply);
    const s = this.#streams.get(id);
    if (s === undefined) return;
    if (s.flags & REPLIED) {
      throw new TypeError(`Cannot reply on stream ${id}: reply() was already called`);
    }
    s.flags |= REPLIED;
    this.#pushCtl({
      type: FrameType.REPLY,
      id,
      payload: reply.slice(),
      stream: null,
      induced: false,
    });
    // The larger window goes with the REPLY (one record, not two; a refused
    // stream needs none).
    if (this.#streamWindow > INITIAL_STREAM_WINDOW && reply[1] === 0) {
      this.#queueStreamWu(s, this.#streamWindow - INITIAL_STREAM_WINDOW);
    }
    this.#touch(s);
  }

  /**
   * Bytes send() would accept now: the smaller of the stream's and the
   * session's credit. 0 for a finished or gone stream, or on the server
   * before reply(). A 0 for an open stream promises a writable event.
   */
  credit(id: number): number {
    const s = this.#streams.get(id);
    if (s === undefined || s.flags & LOCAL_FIN) return 0;
    if (!this.#client && !(s.flags & REPLIED)) return 0;
    const c = Math.min(s.sendCredit, this.#sendCredit);
    if (c <= 0) this.#block(s);
    return c;
  }

  /**
   * Queues up to credit(id) bytes of `data` as DATA and returns how many it
   * took; when fewer than offered, a writable event follows once credit is
   * back. Returns 0 if the stream is gone (a reset or closed event says why).
   * See the class notes on buffer ownership.
   */
  send(id: number, data: Uint8Array): number {
    const s = this.#streams.get(id);
    if (s === undefined) return 0;
    if (s.flags & LOCAL_FIN) {
      throw new TypeError(`Cannot send on stream ${id}: finish() was already called`);
    }
    if (!this.#client && !(s.flags & REPLIED)) {
      throw new TypeError(`Cannot send on stream ${id}: reply() must come first`);
    }
    const len = data.length;
    if (len === 0) return 0;
    const n = Math.min(len, s.sendCredit, this.#sendCredit);
    if (n < len) this.#block(s);
    if (n <= 0) return 0;
    s.sendCredit -= n;
    this.#sendCredit -= n;
    s.queued += n;
    this.#queued += n;
    this.#enqueueData(s, n === len ? data : data.subarray(0, n));
    if (!(s.flags & IN_READY)) {
      s.flags |= IN_READY;
      s.deficit = this.#quantum;
      this.#ready.push(s);
    }
    this.#touch(s);
    return n;
  }

  /** DATA bytes of stream `id` still queued (0 when gone): its send() buffers are free at 0. */
  queued(id: number): number {
    return this.#streams.get(id)?.queued ?? 0;
  }

  /** Ends our direction of stream `id`: FIN goes after its queued DATA. Idempotent; no-op if gone. */
  finish(id: number): void {
    const s = this.#streams.get(id);
    if (s === undefined || s.flags & LOCAL_FIN) return;
    if (!this.#client && !(s.flags & REPLIED)) {
      throw new TypeError(`Cannot finish stream ${id}: reply() must come first (or reset it)`);
    }
    s.flags |= LOCAL_FIN;
    this.#unblock(s);
    this.#touch(s);
    if (s.queued === 0) this.#queueFin(s);
  }

  /**
   * Aborts stream `id`: drops its queued DATA, queues RESET (`reason` u8,
   * `message` cut to 256 UTF-8 bytes) and frees it at once; a closed event
   * follows. Received data not yet consumed is forgotten (later consumed()
   * calls for the stream are ignored). No-op if the stream is gone.
   */
  reset(id: number, reason: number, message = ""): void {
    if (!Number.isInteger(reason) || reason < 0 || reason > 255) {
      throw new RangeError(`Cannot reset stream ${id}: reason ${reason} is not a u8`);
    }
    const s = this.#streams.get(id);
    if (s === undefined) return;
    this.#pushCtl({
      type: FrameType.RESET,
      id,
      payload: resetPayload(reason, message),
      stream: null,
      induced: false,
    });
    this.#free(s, true, this.#events);
    this.#events.push({ type: "closed", id });
  }

  /**
   * The app has written `n` more received bytes of stream `id` out. Returns
   * credit to the peer in WINDOW_UPDATEs once half a window is consumed.
   * Still required after fin/closed; ignored after a reset.
   */
  consumed(id: number, n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`Cannot consume on stream ${id}: ${n} is not a byte count`);
    }
    if (n === 0) return;
    const s = this.#streams.get(id);
    if (s === undefined) {
      const owed = this.#owed.get(id);
      if (owed === undefined) return;
      if (n > owed) {
        throw new RangeError(
          `Cannot consume ${n} bytes on stream ${id}: only ${owed} were delivered`,
        );
      }
      if (n === owed) this.#owed.delete(id);
      else this.#owed.set(id, owed - n);
      this.#creditSession(n);
      return;
    }
    if (n > s.unconsumed) {
      throw new RangeError(
        `Cannot consume ${n} bytes on stream ${id}: only ${s.unconsumed} were delivered`,
      );
    }
    s.unconsumed -= n;
    if (!(s.flags & REMOTE_FIN)) {
      s.grant += n;
      if (s.grant >= this.#streamWindow / 2) {
        this.#queueStreamWu(s, s.grant);
        s.grant = 0;
      }
    }
    this.#creditSession(n);
  }

  /** Queues a PING stamped with `nowMs`; its PONG yields a pong event. No-op while one is still queued. */
  ping(nowMs: number): void {
    this.#now = nowMs;
    if (this.#pingQueued) return;
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setFloat64(0, nowMs);
    if (this.#pings.length >= MAX_PINGS) this.#pings.shift();
    this.#pings.push(nowMs);
    this.#pingQueued = true;
    this.#pushCtl({ type: FrameType.PING, id: 0, payload, stream: null, induced: false });
  }

  /**
   * Queues cover traffic for a quiet link: the next `pull` that finds
   * nothing else to send returns a payload of one PADDING frame with a body
   * of `bytes` zero bytes (0..16384). The peer ignores it; like an ACK-only
   * payload it is neither numbered nor kept, so never resent. A later call
   * replaces a cover payload still waiting.
   */
  cover(bytes: number): void {
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_COVER_BYTES) {
      throw new RangeError(
        `Cannot queue cover traffic: ${bytes} bytes is not an integer in 0..${MAX_COVER_BYTES}`,
      );
    }
    this.#cover = bytes;
  }

  /**
   * Queues GOAWAY: no new streams from now on. Server: later OPENs are
   * answered with RESET GOING_AWAY; lastId is the highest stream it took.
   * Client: lastId is 0 and open() throws. Idempotent.
   */
  goaway(): void {
    if (this.#goawaySent) return;
    this.#goawaySent = true;
    const lastId = this.#client ? 0 : this.#peerMaxId;
    this.#pushCtl({
      type: FrameType.GOAWAY,
      id: 0,
      payload: u32Bytes(lastId),
      stream: null,
      induced: false,
    });
  }

  /**
   * Resume: queues a RELEASE frame carrying `body` (copied, at most 256
   * bytes, built by lib/session) with control priority; the peer gets a
   * release event. Throws `TypeError` without the resume option,
   * `ProtocolError` `LIMIT` when 16 messages are still unsent.
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client", resume: true });
   * const server = new Mux({ role: "server", resume: true });
   * client.sendRelease(new Uint8Array([1, 2, 3]));
   * server.receive(client.pull()!, 0); // [{ type: "release", id: 0, body: Uint8Array [1, 2, 3] }]
   * ```
   */
  sendRelease(body: Uint8Array): void {
    this.#queueMessage(FrameType.RELEASE, body);
  }

  /**
   * Resume: queues a REKEY frame carrying `body` (copied, at most 256
   * bytes, built by lib/session) with control priority; the peer gets a
   * rekey event. Like every frame it may reach the peer on a later
   * connection than the one it was pulled for. Throws like sendRelease().
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client", resume: true });
   * const server = new Mux({ role: "server", resume: true });
   * client.sendRekey(new Uint8Array(32));
   * server.receive(client.pull()!, 0); // [{ type: "rekey", id: 0, body: Uint8Array(32) }]
   * ```
   */
  sendRekey(body: Uint8Array): void {
    this.#queueMessage(FrameType.REKEY, body);
  }

  /**
   * Resume, client only: queues a RENEW frame carrying `token` (a fresh
   * JWT's bytes, copied, 1..2048) with control priority; the server gets a
   * renew event. Throws like sendRelease(), and `TypeError` on a server or
   * for a frame larger than this mux's records (`maxRecordPayload`).
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client", resume: true });
   * const server = new Mux({ role: "server", resume: true });
   * client.sendRenew(new TextEncoder().encode("e30.e30.sig"));
   * server.receive(client.pull()!, 0); // [{ type: "renew", id: 0, body: Uint8Array(11) }]
   * ```
   */
  sendRenew(token: Uint8Array): void {
    if (!this.#client) throw new TypeError("Cannot send RENEW: only a client renews its login");
    if (FRAME_HEADER_BYTES + token.length > this.#maxRecord) {
      throw new TypeError(
        `Cannot send RENEW: a ${token.length}-byte token does not fit records of ${this.#maxRecord} bytes`,
      );
    }
    this.#queueMessage(FrameType.RENEW, token);
  }

  /**
   * Resume: true when a counted payload arrived since the last ACK was
   * pulled; the tunnel calls flushAck() a little later unless one rode
   * along meanwhile. False without resume.
   */
  get ackDue(): boolean {
    return this.#ledger?.ackDue ?? false;
  }

  /**
   * Resume: owes the peer an ACK if a counted payload arrived since the
   * last one; the next pull() carries it, on its own if nothing else is
   * pending. Returns true when an ACK is owed (the tunnel should pull).
   * The tunnel calls this shortly after an ACK becomes due (ackDue); ACKs
   * also go out after every 16 counted payloads or 128 KiB received, and
   * ride along in any payload pulled anyway.
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client", resume: true });
   * const server = new Mux({ role: "server", resume: true });
   * client.open(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
   * server.receive(client.pull()!, 0);
   * server.flushAck(); // true: the next server.pull() carries ACK 1
   * ```
   */
  flushAck(): boolean {
    return this.#resumeLedger("flush ACK").flush();
  }

  /**
   * Resume: what to tell the peer when resuming, the number of counted
   * payloads received in this session. Read it after connectionLost():
   * receive() is refused from then on, so it cannot change until the
   * session is resumed.
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client", resume: true });
   * client.connectionLost();
   * client.resumeState(); // { received: 0n }
   * ```
   */
  resumeState(): { received: bigint } {
    return { received: BigInt(this.#resumeLedger("read resume state").received) };
  }

  /**
   * Resume: the connection is gone. pull() returns null and receive()
   * throws until onPeerResumed(); the app may keep sending within its
   * credit. Call it once every record read from the old connection has been
   * received or abandoned. Idempotent.
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client", resume: true });
   * client.open(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
   * client.connectionLost();
   * client.pull(); // null
   * ```
   */
  connectionLost(): void {
    this.#resumeLedger("mark connection lost").markLost();
  }

  /**
   * Resume: the peer resumed the session on a new connection and says it
   * has processed `peerReceived` of our counted payloads. Drops the kept
   * payloads it covers; pull() then returns the rest again, unchanged and
   * in order, before anything new. Throws `TypeError` unless
   * connectionLost() came first, `ProtocolError` `BAD_STATE` when
   * `peerReceived` is beyond what we sent or below what the peer already
   * acknowledged (the session must then be torn down).
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client", resume: true });
   * client.open(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
   * const sent = client.pull()!;
   * client.connectionLost();
   * client.onPeerResumed(0n);
   * client.pull() === sent; // true: the same payload again
   * ```
   */
  onPeerResumed(peerReceived: bigint): void {
    const l = this.#resumeLedger("resume session");
    if (typeof peerReceived !== "bigint") {
      throw new TypeError(`Cannot resume session: peer received ${peerReceived} is not a bigint`);
    }
    if (!l.lost) {
      throw new TypeError("Cannot resume session: connectionLost() must come first");
    }
    l.onResume(peerReceived);
  }

  /**
   * Handles one decrypted record payload. Returns the events it caused,
   * after any raised since the last call (see takeEvents()). Throws
   * `ProtocolError` when the peer broke the protocol; the session is then
   * unusable and must be torn down. With resume, throws `TypeError`
   * between connectionLost() and onPeerResumed().
   */
  receive(recordPayload: Uint8Array, nowMs: number): MuxEvent[] {
    const l = this.#ledger;
    if (l !== null && l.lost) {
      throw new TypeError("Cannot receive: the connection is lost until onPeerResumed()");
    }
    const frames = decodeFrames(recordPayload, this.#decodeOptions);
    this.#now = nowMs;
    const ev = this.#events;
    this.#events = [];
    let counted = false;
    let datagrams = false;
    for (const f of frames) {
      if (f.type === FrameType.DATAGRAM) datagrams = true;
      else if (f.type !== FrameType.ACK && f.type !== FrameType.PADDING) counted = true;
    }
    if (datagrams && counted) {
      // Such a payload would be kept and resent with its datagrams (section 12.3).
      this.#events = ev;
      throw new ProtocolError(
        "MALFORMED",
        "Cannot accept record: DATAGRAM frames share a record only with ACK and PADDING",
      );
    }
    for (const f of frames) this.#onFrame(f, ev);
    if (l !== null && counted) l.onCounted(recordPayload.length);
    return ev;
  }

  /**
   * Events raised outside receive(): closed (after finish(), reset() or a
   * pull() that sent a last FIN) and writable (after a reset returned
   * session credit). receive() returns them too; this is for a tunnel that
   * wants them without waiting for the next record.
   */
  takeEvents(): MuxEvent[] {
    const ev = this.#events;
    this.#events = [];
    return ev;
  }

  /**
   * The next record payload, at most `maxBytes` (capped at
   * maxRecordPayload, at least 520): control frames first in the order they
   * were queued, then DATA round-robin, `quantum` bytes per stream per turn,
   * each stream's FIN right after its last DATA. null when nothing is pending.
   * The result is a new array the caller owns.
   *
   * With resume (section 11): null while the connection is lost; after a
   * resume, first the kept payloads the peer missed, the same arrays,
   * whole (they may exceed `maxBytes`, never maxRecordPayload); null for
   * new payloads while the resend buffer is full, until ACKs free it; an
   * owed ACK rides in the payload or goes on its own. Kept payloads must
   * not be modified.
   *
   * With `options.headroom`, the payload starts that many bytes into a
   * buffer of its own, and the caller may write into those bytes (see
   * {@linkcode PullOptions}); a kept payload pulled with less headroom is
   * returned as a copy that has it.
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client" });
   * client.open(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
   * const p = client.pull(undefined, { headroom: 2 })!;
   * p.byteOffset; // 2: bytes 0 and 1 of p.buffer are the caller's
   * ```
   */
  pull(maxBytes?: number, options?: PullOptions): Uint8Array | null {
    let space = maxBytes === undefined ? this.#maxRecord : Math.min(maxBytes, this.#maxRecord);
    if (!(space >= MIN_PULL_BYTES)) {
      throw new RangeError(
        `Cannot pull: maxBytes ${maxBytes} is below the minimum ${MIN_PULL_BYTES}`,
      );
    }
    const headroom = options?.headroom ?? 0;
    if (!Number.isInteger(headroom) || headroom < 0 || headroom > MAX_HEADROOM) {
      throw new RangeError(
        `Cannot pull: headroom ${headroom} is not an integer in [0, ${MAX_HEADROOM}]`,
      );
    }
    const l = this.#ledger;
    if (this.#cover >= 0 && this.#idle(l)) return this.#coverOnly(space, headroom);
    if (this.#datagrams.length > 0 && (l === null || (!l.lost && !l.resending))) {
      // Datagram payloads and stream payloads take turns while both wait.
      const streams = this.#controlBytes > 0 || this.#queued > 0;
      if (!this.#dgLast || !streams || (l !== null && l.free() < MIN_PULL_BYTES)) {
        const out = this.#buildDatagrams(space, headroom);
        if (out !== null) {
          this.#dgLast = true;
          return out;
        }
      }
    }
    this.#dgLast = false;
    if (l === null) return this.#build(space, false, headroom);
    if (l.lost) return null;
    if (l.resending) {
      if (l.ackForced) return this.#ackOnly(l, headroom);
      const kept = l.resend()!;
      if (kept.byteOffset >= headroom) return kept;
      const copy = new Uint8Array(headroom + kept.length);
      copy.set(kept, headroom);
      return copy.subarray(headroom);
    }
    // Stall new payloads when the buffer could not keep them; ACKs never stall.
    const free = l.free();
    if ((this.#controlBytes === 0 && this.#queued === 0) || free < MIN_PULL_BYTES) {
      return l.ackForced ? this.#ackOnly(l, headroom) : null;
    }
    space = Math.min(space, free);
    let ack = l.ackForced;
    if (!ack && l.ackDue) {
      // Piggyback, unless it would keep the next control frame out of this record.
      const head = this.#control.peek();
      ack = head === undefined || ctlSize(head) <= space - ACK_FRAME_BYTES;
    }
    const out = this.#build(ack ? space - ACK_FRAME_BYTES : space, ack, headroom);
    if (out === null) return ack ? this.#ackOnly(l, headroom) : null;
    if (ack) l.ackPulled();
    l.sent(out);
    return out;
  }

  /**
   * A payload of DATAGRAM frames (and an owed ACK first): neither numbered
   * nor kept, so never resent (section 12.3). Datagrams whose stream is gone
   * are dropped here. null when none was left to send.
   */
  #buildDatagrams(space: number, headroom: number): Uint8Array | null {
    const l = this.#ledger;
    const ack = l !== null && l.ackDue;
    if (ack) space -= ACK_FRAME_BYTES;
    const q = this.#datagrams;
    let total = 0;
    let count = 0;
    // Pass 1: how many fit; datagrams of closed streams are dropped on the way.
    for (let i = 0; i < q.length; i++) {
      const d = q.at(i)!;
      const size = FRAME_HEADER_BYTES + d.address.length + d.data.length;
      if (total + size > space) break;
      total += size;
      count++;
    }
    if (count === 0) return null;
    const buf = new Uint8Array(headroom + (ack ? ACK_FRAME_BYTES : 0) + total);
    let o = ack ? putAck(buf, headroom, l.received) : headroom;
    let dropped = 0;
    for (let i = 0; i < count; i++) {
      const d = q.shift()!;
      const len = d.address.length + d.data.length;
      this.#dgBytes -= FRAME_HEADER_BYTES + len;
      if (d.s.flags & FREED) {
        dropped++;
        continue;
      }
      o = putFrameHeader(buf, o, FrameType.DATAGRAM, d.s.id, len);
      buf.set(d.address, o);
      buf.set(d.data, o + d.address.length);
      o += len;
    }
    this.#dgDropped += dropped;
    this.#dgSent += count - dropped;
    if (ack) l.ackPulled();
    if (dropped === count && !ack) {
      return this.#datagrams.length > 0 ? this.#buildDatagrams(space, headroom) : null;
    }
    return buf.subarray(headroom, o);
  }

  /** Nothing to send but what `cover` asked for (and the connection is up). */
  #idle(l: Ledger | null): boolean {
    return this.#controlBytes === 0 && this.#queued === 0 && this.#datagrams.length === 0 &&
      (l === null || (!l.lost && !l.resending && !l.ackForced));
  }

  /** A cover payload: one PADDING frame, neither numbered nor kept (the peer does not count it). */
  #coverOnly(space: number, headroom: number): Uint8Array {
    const n = Math.min(this.#cover, space - FRAME_HEADER_BYTES);
    this.#cover = -1;
    const buf = new Uint8Array(headroom + FRAME_HEADER_BYTES + n);
    putFrameHeader(buf, headroom, FrameType.PADDING, 0, n);
    return buf.subarray(headroom);
  }

  /** An ACK-only payload: neither numbered nor kept, so ACKs are never ACKed. */
  #ackOnly(l: Ledger, headroom: number): Uint8Array {
    const buf = new Uint8Array(headroom + ACK_FRAME_BYTES);
    putAck(buf, headroom, l.received);
    l.ackPulled();
    return buf.subarray(headroom);
  }

  /**
   * Builds a payload of at most `space` bytes (plus an ACK frame first when
   * `ack`) from the control queue and the DATA ready queue, `headroom`
   * bytes into a new buffer; null when no frame was planned.
   */
  #build(space: number, ack: boolean, headroom: number): Uint8Array | null {
    if (this.#controlBytes === 0 && this.#queued === 0) return null;
    const plan: Planned[] = [];
    let total = 0;
    const control = this.#control;
    while (control.length > 0) {
      const c = control.peek()!;
      const size = ctlSize(c);
      if (size > space) break;
      control.shift();
      this.#controlBytes -= size;
      space -= size;
      total += size;
      plan.push(this.#materialize(c));
    }
    // DATA only once every control frame is out: an OPEN or REPLY must precede its stream's DATA.
    const ready = this.#ready;
    while (control.length === 0 && space > FRAME_HEADER_BYTES && ready.length > 0) {
      const s = ready.peek()!;
      if (s.queued === 0) {
        ready.shift(); // drained or freed since it was queued
        s.flags &= ~IN_READY;
        continue;
      }
      const sole = ready.length === 1;
      if (!sole && s.deficit <= 0) {
        ready.shift();
        s.deficit = this.#quantum;
        ready.push(s);
        continue;
      }
      let n = Math.min(s.queued, space - FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD);
      if (!sole) {
        n = Math.min(n, s.deficit);
        s.deficit -= n;
      }
      plan.push({ type: FrameType.DATA, id: s.id, len: n, parts: this.#take(s, n) });
      space -= FRAME_HEADER_BYTES + n;
      total += FRAME_HEADER_BYTES + n;
      if (s.queued > 0) continue;
      ready.shift();
      s.flags &= ~IN_READY;
      if ((s.flags & (LOCAL_FIN | FIN_QUEUED)) !== LOCAL_FIN) continue;
      if (space >= FRAME_HEADER_BYTES) {
        s.flags |= FIN_QUEUED;
        plan.push({ type: FrameType.FIN, id: s.id, len: 0, parts: [] });
        space -= FRAME_HEADER_BYTES;
        total += FRAME_HEADER_BYTES;
        if (s.flags & REMOTE_FIN) this.#close(s, this.#events);
      } else {
        this.#queueFin(s);
      }
    }
    if (plan.length === 0) return null;
    // One copy of every byte, straight into the payload's own buffer.
    const buf = new Uint8Array(headroom + (ack ? ACK_FRAME_BYTES : 0) + total);
    let o = ack ? putAck(buf, headroom, this.#ledger!.received) : headroom;
    for (const p of plan) {
      o = putFrameHeader(buf, o, p.type, p.id, p.len);
      for (const part of p.parts) {
        buf.set(part, o);
        o += part.length;
      }
    }
    return buf.subarray(headroom);
  }

  /**
   * Queues a UDP datagram on stream `id` (an association, section 12): a
   * DATAGRAM frame `address ‖ data`, where `address` is `ATYP ‖ addr ‖
   * port`. It spends no credit and is never kept for resending; it goes out
   * in a payload of datagrams only, so it never waits behind stream data
   * nor stream data behind it. When the queue is full the oldest queued
   * datagram is dropped. Returns false (and counts a drop) when the frame
   * could never fit one record or the stream is not open. The mux keeps
   * views of both arrays until pull() copies them.
   *
   * @example
   * ```ts
   * import { Mux } from "./mux.ts";
   * const client = new Mux({ role: "client" });
   * const id = client.open(new Uint8Array([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
   * client.sendDatagram(id, new Uint8Array([1, 127, 0, 0, 1, 0, 53]), new Uint8Array(12)); // true
   * ```
   */
  sendDatagram(id: number, address: Uint8Array, data: Uint8Array): boolean {
    const s = this.#streams.get(id);
    const len = address.length + data.length;
    const size = FRAME_HEADER_BYTES + len;
    if (
      s === undefined || data.length > MAX_DATAGRAM_DATA ||
      size > this.#maxRecord - ACK_FRAME_BYTES ||
      datagramAddressLength(address) !== address.length
    ) {
      this.#dgDropped++;
      return false;
    }
    const q = this.#datagrams;
    q.push({ s, address, data });
    this.#dgBytes += size;
    while (this.#dgBytes > this.#dgLimit || q.length > MAX_QUEUED_DATAGRAMS) {
      const old = q.shift()!;
      this.#dgBytes -= FRAME_HEADER_BYTES + old.address.length + old.data.length;
      this.#dgDropped++;
    }
    this.#touch(s);
    return true;
  }

  /** Ids of streams with no frame sent or received for `idleMs` (the tunnel resets them with IDLE). */
  idleStreams(nowMs: number, idleMs: number): number[] {
    if (nowMs > this.#now) this.#now = nowMs;
    const out: number[] = [];
    for (let s = this.#lruHead; s !== null && nowMs - s.lastActive >= idleMs; s = s.next) {
      out.push(s.id);
    }
    return out;
  }

  /** Counters for logs and tests. */
  stats(): MuxStats {
    const l = this.#ledger;
    return {
      streams: this.#streams.size,
      queuedBytes: this.#queued,
      controlBytes: this.#controlBytes,
      sendCredit: this.#sendCredit,
      recvWindow: this.#recvWindow,
      blockedStreams: this.#blocked.size,
      owedStreams: this.#owed.size,
      pendingEvents: this.#events.length,
      unackedBytes: l === null ? 0 : l.unackedBytes,
      unackedPayloads: l === null ? 0 : l.unackedPayloads,
      resendBytes: l === null ? 0 : l.resendBytes,
      datagramsQueued: this.#datagrams.length,
      datagramQueueBytes: this.#dgBytes,
      datagramsSent: this.#dgSent,
      datagramsReceived: this.#dgReceived,
      datagramsDropped: this.#dgDropped,
    };
  }

  // ---- receiving --------------------------------------------------------

  #onFrame(f: Frame, ev: MuxEvent[]): void {
    switch (f.type) {
      case FrameType.PADDING:
        return;
      case FrameType.PING:
        this.#onPing(f.payload);
        return;
      case FrameType.PONG:
        this.#onPong(f.payload, ev);
        return;
      case FrameType.GOAWAY:
        this.#goawayReceived = true;
        ev.push({ type: "goaway", lastId: u32(f.payload) });
        return;
      case FrameType.WINDOW_UPDATE:
        this.#onWindowUpdate(f, ev);
        return;
      case FrameType.ACK: // decodeFrames() returns section 11 types only with resume on
        this.#ledger!.onAck(u32At(f.payload, 0), u32At(f.payload, 4));
        return;
      case FrameType.RELEASE:
        ev.push({ type: "release", id: 0, body: f.payload });
        return;
      case FrameType.REKEY:
        ev.push({ type: "rekey", id: 0, body: f.payload });
        return;
      case FrameType.RENEW:
        if (this.#client) {
          throw new ProtocolError(
            "BAD_STATE",
            "Cannot accept RENEW: only a client renews its login",
          );
        }
        ev.push({ type: "renew", id: 0, body: f.payload });
        return;
      case FrameType.OPEN:
        this.#onOpen(f, ev);
        return;
      case FrameType.REPLY:
        if (!this.#client) {
          throw new ProtocolError(
            "BAD_STATE",
            `Cannot accept REPLY on stream ${f.streamId}: only the server replies`,
          );
        }
    }
    const s = this.#lookup(f);
    if (s === undefined) {
      // A late frame for a stream closed or refused here: ignore it, but
      // DATA still used session credit, which goes straight back.
      if (f.type === FrameType.DATA) this.#lateData(f.streamId, f.payload.length);
      return;
    }
    const id = s.id;
    switch (f.type) {
      case FrameType.REPLY:
        if (s.flags & REPLIED) throw this.#stateError(f, "duplicate REPLY");
        s.flags |= REPLIED;
        this.#touch(s);
        ev.push({ type: "reply", id, reply: f.payload });
        return;
      case FrameType.DATA: {
        if (this.#client && !(s.flags & REPLIED)) throw this.#stateError(f, "DATA before REPLY");
        if (s.flags & REMOTE_FIN) throw this.#stateError(f, "DATA after FIN");
        const len = f.payload.length;
        if (len > s.recvWindow) throw flowError(id, len, s.recvWindow, "stream");
        if (len > this.#recvWindow) throw flowError(id, len, this.#recvWindow, "session");
        s.recvWindow -= len;
        this.#recvWindow -= len;
        this.#touch(s);
        if (len > 0) {
          s.unconsumed += len;
          ev.push({ type: "data", id, data: f.payload });
        }
        return;
      }
      case FrameType.DATAGRAM:
        if (this.#client && !(s.flags & REPLIED)) {
          throw this.#stateError(f, "DATAGRAM before REPLY");
        }
        this.#touch(s);
        this.#dgReceived++;
        ev.push({ type: "datagram", id, datagram: f.payload });
        return;
      case FrameType.FIN:
        if (this.#client && !(s.flags & REPLIED)) throw this.#stateError(f, "FIN before REPLY");
        if (s.flags & REMOTE_FIN) throw this.#stateError(f, "duplicate FIN");
        s.flags |= REMOTE_FIN;
        s.grant = 0;
        this.#touch(s);
        ev.push({ type: "fin", id });
        if (s.flags & FIN_QUEUED) this.#close(s, ev);
        return;
      default: { // RESET
        const reason = f.payload[0]!;
        const message = decoder.decode(f.payload.subarray(1));
        this.#free(s, true, ev);
        ev.push({ type: "reset", id, reason, message });
        ev.push({ type: "closed", id });
      }
    }
  }

  /** The stream a frame names; undefined for a closed one (late frame); throws for one never opened. */
  #lookup(f: Frame): Stream | undefined {
    const id = f.streamId;
    const s = this.#streams.get(id);
    if (s !== undefined) return s;
    if ((id & 1) === 0) {
      throw new ProtocolError(
        "MALFORMED",
        `Cannot accept ${
          frameTypeName(f.type)
        } on stream ${id}: stream ids are odd (client-opened)`,
      );
    }
    if (this.#client ? id < this.#nextId : id <= this.#peerMaxId) return undefined;
    throw this.#stateError(f, "the stream was never opened");
  }

  #stateError(f: Frame, why: string): ProtocolError {
    return new ProtocolError(
      "BAD_STATE",
      `Cannot accept ${frameTypeName(f.type)} on stream ${f.streamId}: ${why}`,
    );
  }

  #onOpen(f: Frame, ev: MuxEvent[]): void {
    const id = f.streamId;
    if (this.#client) {
      throw new ProtocolError(
        "BAD_STATE",
        `Cannot accept OPEN on stream ${id}: the client does not accept streams`,
      );
    }
    if ((id & 1) === 0) {
      throw new ProtocolError(
        "MALFORMED",
        `Cannot accept OPEN on stream ${id}: client stream ids are odd`,
      );
    }
    if (id <= this.#peerMaxId) {
      throw new ProtocolError(
        "BAD_STATE",
        `Cannot accept OPEN on stream ${id}: stream ids must increase, last was ${this.#peerMaxId}`,
      );
    }
    this.#peerMaxId = id;
    if (this.#goawaySent) return this.#refuse(id, ResetReason.GOING_AWAY, "going away");
    if (this.#streams.size >= this.#maxStreams) {
      return this.#refuse(id, ResetReason.LIMIT, `limit of ${this.#maxStreams} streams reached`);
    }
    this.#add(id);
    ev.push({ type: "open", id, request: f.payload });
  }

  /** Answers an OPEN we will not take with RESET; bounded so a flooding peer that does not read is cut off. */
  #refuse(id: number, reason: number, message: string): void {
    if (this.#induced >= MAX_INDUCED) {
      throw new ProtocolError(
        "LIMIT",
        `Cannot accept OPEN on stream ${id}: ${MAX_INDUCED} refusals are still unsent (peer is not reading)`,
      );
    }
    this.#induced++;
    this.#pushCtl({
      type: FrameType.RESET,
      id,
      payload: resetPayload(reason, message),
      stream: null,
      induced: true,
    });
  }

  #onWindowUpdate(f: Frame, ev: MuxEvent[]): void {
    const inc = u32(f.payload);
    if (f.streamId === 0) {
      if (this.#sendCredit + inc > MAX_WINDOW) {
        throw new ProtocolError(
          "LIMIT",
          `Cannot accept WINDOW_UPDATE on stream 0: flow control violation, credit ${this.#sendCredit} + ${inc} exceeds ${MAX_WINDOW}`,
        );
      }
      this.#sendCredit += inc;
      if (this.#blocked.size > 0) this.#wake(ev);
      return;
    }
    const s = this.#lookup(f);
    if (s === undefined) return;
    if (s.sendCredit + inc > MAX_WINDOW) {
      throw new ProtocolError(
        "LIMIT",
        `Cannot accept WINDOW_UPDATE on stream ${s.id}: flow control violation, credit ${s.sendCredit} + ${inc} exceeds ${MAX_WINDOW}`,
      );
    }
    s.sendCredit += inc;
    this.#touch(s);
    if (s.flags & BLOCKED && this.#sendCredit > 0) {
      this.#unblock(s);
      ev.push({ type: "writable", id: s.id });
    }
  }

  #onPing(payload: Uint8Array): void {
    const copy = payload.slice();
    if (this.#pong !== null) {
      this.#pong.payload = copy; // one PONG pending at most: answer the newest PING
      return;
    }
    this.#pong = { type: FrameType.PONG, id: 0, payload: copy, stream: null, induced: false };
    this.#pushCtl(this.#pong);
  }

  #onPong(payload: Uint8Array, ev: MuxEvent[]): void {
    const sent = new DataView(payload.buffer, payload.byteOffset, 8).getFloat64(0);
    const i = this.#pings.indexOf(sent);
    if (i < 0) return; // unsolicited or forgotten: ignore
    this.#pings.splice(i, 1);
    ev.push({ type: "pong", rttMs: this.#now - sent });
  }

  #lateData(id: number, len: number): void {
    if (len > this.#recvWindow) throw flowError(id, len, this.#recvWindow, "session");
    this.#recvWindow -= len;
    this.#creditSession(len);
  }

  // ---- credit -------------------------------------------------------------

  #creditSession(n: number): void {
    this.#recvGrant += n;
    if (this.#recvGrant >= this.#sessionWindow / 2) {
      this.#queueSessionWu(this.#recvGrant);
      this.#recvGrant = 0;
    }
  }

  #queueSessionWu(inc: number): void {
    this.#recvWindow += inc;
    if (this.#sessionWuQueued) {
      this.#sessionWu += inc;
      return;
    }
    this.#sessionWu = inc;
    this.#sessionWuQueued = true;
    this.#pushCtl({
      type: FrameType.WINDOW_UPDATE,
      id: 0,
      payload: null,
      stream: null,
      induced: false,
    });
  }

  #queueStreamWu(s: Stream, inc: number): void {
    s.recvWindow += inc;
    if (s.flags & WU_QUEUED) {
      s.wuAmount += inc;
      return;
    }
    s.wuAmount = inc;
    s.flags |= WU_QUEUED;
    this.#pushCtl({
      type: FrameType.WINDOW_UPDATE,
      id: s.id,
      payload: null,
      stream: s,
      induced: false,
    });
  }

  #block(s: Stream): void {
    if (s.flags & BLOCKED) return;
    s.flags |= BLOCKED;
    this.#blocked.add(s);
  }

  #unblock(s: Stream): void {
    if (!(s.flags & BLOCKED)) return;
    s.flags &= ~BLOCKED;
    this.#blocked.delete(s);
  }

  /** Session credit came back: every blocked stream that can send now gets a writable event. */
  #wake(ev: MuxEvent[]): void {
    if (this.#sendCredit <= 0) return;
    for (const s of this.#blocked) {
      if (s.sendCredit > 0) {
        this.#unblock(s);
        ev.push({ type: "writable", id: s.id });
      }
    }
  }

  // ---- sending ------------------------------------------------------------

  #resumeLedger(what: string): Ledger {
    if (this.#ledger === null) {
      throw new TypeError(`Cannot ${what}: the mux was created without the resume option`);
    }
    return this.#ledger;
  }

  #queueMessage(type: number, body: Uint8Array): void {
    const what = `send ${frameTypeName(type)}`;
    this.#resumeLedger(what);
    if (!(body instanceof Uint8Array)) {
      throw new TypeError(`Cannot ${what}: body is not a Uint8Array`);
    }
    const max = type === FrameType.RENEW ? MAX_RENEW_BYTES : MAX_SESSION_MESSAGE_BYTES;
    if (body.length > max) {
      throw new RangeError(`Cannot ${what}: length ${body.length} exceeds maximum ${max}`);
    }
    if (type === FrameType.RENEW && body.length === 0) {
      throw new RangeError(`Cannot ${what}: the token is empty`);
    }
    if (this.#messages >= MAX_QUEUED_MESSAGES) {
      throw new ProtocolError(
        "LIMIT",
        `Cannot ${what}: ${MAX_QUEUED_MESSAGES} session messages are still unsent`,
      );
    }
    this.#messages++;
    this.#pushCtl({ type, id: 0, payload: body.slice(), stream: null, induced: false });
  }

  #pushCtl(c: Ctl): void {
    this.#control.push(c);
    this.#controlBytes += ctlSize(c);
  }

  #queueFin(s: Stream): void {
    s.flags |= FIN_QUEUED;
    this.#pushCtl({ type: FrameType.FIN, id: s.id, payload: EMPTY, stream: null, induced: false });
    if (s.flags & REMOTE_FIN) this.#close(s, this.#events);
  }

  /** Turns a control entry into a frame; WINDOW_UPDATE increments are read now, so they coalesce while queued. */
  #materialize(c: Ctl): Planned {
    let payload = c.payload;
    if (payload === null) {
      const s = c.stream;
      let inc: number;
      if (s === null) {
        inc = this.#sessionWu;
        this.#sessionWu = 0;
        this.#sessionWuQueued = false;
      } else {
        inc = s.wuAmount;
        s.wuAmount = 0;
        s.flags &= ~WU_QUEUED;
      }
      payload = u32Bytes(inc);
    } else if (c === this.#pong) {
      this.#pong = null;
    } else if (c.type === FrameType.PING) {
      this.#pingQueued = false;
    } else if (
      c.type === FrameType.RELEASE || c.type === FrameType.REKEY || c.type === FrameType.RENEW
    ) {
      this.#messages--;
    }
    if (c.induced) this.#induced--;
    return { type: c.type, id: c.id, len: payload.length, parts: [payload] };
  }

  /** Stores a send: views for large pieces, copies into `own` for small ones. */
  #enqueueData(s: Stream, v: Uint8Array): void {
    if (s.chunks === null) {
      s.chunks = [];
      s.head = 0;
      s.offset = 0;
    }
    const len = v.length;
    if (len >= COALESCE_BYTES) {
      s.chunks.push(v);
      s.flags &= ~OWN_TAIL;
      return;
    }
    let own = s.own;
    if (own !== null && s.flags & OWN_TAIL && s.ownUsed + len <= own.length) {
      own.set(v, s.ownUsed);
      s.ownUsed += len;
      s.chunks[s.chunks.length - 1] = own.subarray(s.ownStart, s.ownUsed);
      return;
    }
    if (own === null || s.ownUsed + len > own.length) {
      own = s.own = new Uint8Array(OWN_BYTES);
      s.ownUsed = 0;
    }
    own.set(v, s.ownUsed);
    s.ownStart = s.ownUsed;
    s.ownUsed += len;
    s.chunks.push(own.subarray(s.ownStart, s.ownUsed));
    s.flags |= OWN_TAIL;
  }

  /** Removes the next `n` queued bytes of `s` as views. */
  #take(s: Stream, n: number): Uint8Array[] {
    const chunks = s.chunks!;
    const parts: Uint8Array[] = [];
    let need = n;
    while (need > 0) {
      const c = chunks[s.head]!;
      const avail = c.length - s.offset;
      if (avail <= need) {
        parts.push(s.offset === 0 ? c : c.subarray(s.offset));
        chunks[s.head] = EMPTY;
        s.head++;
        s.offset = 0;
        need -= avail;
      } else {
        parts.push(c.subarray(s.offset, s.offset + need));
        s.offset += need;
        need = 0;
      }
    }
    s.queued -= n;
    this.#queued -= n;
    if (s.queued === 0) {
      s.chunks = null;
      s.head = 0;
      s.own = null;
      s.ownUsed = 0;
      s.flags &= ~OWN_TAIL;
    } else if (s.head >= 64 && s.head * 2 >= chunks.length) {
      chunks.splice(0, s.head);
      s.head = 0;
    }
    return parts;
  }

  // ---- stream table -------------------------------------------------------

  #add(id: number): Stream {
    const s = new Stream(id, this.#now);
    this.#streams.set(id, s);
    s.prev = this.#lruTail;
    if (this.#lruTail === null) this.#lruHead = s;
    else this.#lruTail.next = s;
    this.#lruTail = s;
    return s;
  }

  /** Marks `s` active now: it moves to the tail of the idle list. */
  #touch(s: Stream): void {
    s.lastActive = this.#now;
    if (this.#lruTail === s) return;
    this.#unlink(s);
    s.prev = this.#lruTail;
    if (this.#lruTail === null) this.#lruHead = s;
    else this.#lruTail.next = s;
    this.#lruTail = s;
  }

  #unlink(s: Stream): void {
    if (s.prev === null) this.#lruHead = s.next;
    else s.prev.next = s.next;
    if (s.next === null) this.#lruTail = s.prev;
    else s.next.prev = s.prev;
    s.prev = s.next = null;
  }

  /** Both FINs are out: free the stream. */
  #close(s: Stream, ev: MuxEvent[]): void {
    this.#free(s, false, ev);
    ev.push({ type: "closed", id: s.id });
  }

  /**
   * Forgets `s`. On abort (RESET either way) its queued DATA is dropped and
   * the session credit it held returns; its unconsumed received bytes go
   * back to the session at once. On a graceful close those bytes stay owed
   * until consumed() reports them.
   */
  #free(s: Stream, abort: boolean, ev: MuxEvent[]): void {
    this.#streams.delete(s.id);
    this.#unlink(s);
    this.#unblock(s);
    s.flags |= FREED;
    const dropped = s.queued;
    if (dropped > 0) {
      this.#queued -= dropped;
      this.#sendCredit += dropped;
      s.queued = 0;
    }
    s.chunks = null;
    s.own = null;
    if (s.unconsumed > 0) {
      if (abort) this.#creditSession(s.unconsumed);
      else this.#owed.set(s.id, s.unconsumed);
      s.unconsumed = 0;
    }
    if (dropped > 0 && this.#blocked.size > 0) this.#wake(ev);
  }
}
