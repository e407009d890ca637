/**
 * Per-stream state of the mux. Kept flat and small: an idle stream holds
 * numbers and null pointers only (no buffers until data is queued).
 *
 * @module
 */
import { INITIAL_STREAM_WINDOW } from "./frame.ts";

/** finish() was called. */
export const LOCAL_FIN = 1;
/** Our FIN is in the control queue or already pulled. */
export const FIN_QUEUED = 2;
/** The peer's FIN arrived. */
export const REMOTE_FIN = 4;
/** Server: reply() was called. Client: the REPLY arrived. */
export const REPLIED = 8;
/** In the DATA ready queue. */
export const IN_READY = 16;
/** credit() returned 0 or send() took less than offered: a writable event is owed. */
export const BLOCKED = 32;
/** Removed from the mux; any reference left in a queue is stale. */
export const FREED = 64;
/** A WINDOW_UPDATE entry for this stream waits in the control queue. */
export const WU_QUEUED = 128;
/** The last queued chunk is a view of `own` that small sends may extend. */
export const OWN_TAIL = 256;

/** State of one stream; fields are read and written by `Mux` only. */
export class Stream {
  readonly id: number;
  flags = 0;
  /** Bytes the peer still lets us queue on this stream. */
  sendCredit = INITIAL_STREAM_WINDOW;
  /** Bytes the peer may still send us on this stream. */
  recvWindow = INITIAL_STREAM_WINDOW;
  /** Delivered in data events, not yet reported by consumed(). */
  unconsumed = 0;
  /** Consumed, not yet returned to the peer in a WINDOW_UPDATE. */
  grant = 0;
  /** Increment carried by the queued WINDOW_UPDATE entry. */
  wuAmount = 0;
  /** DATA bytes queued, not yet pulled. */
  queued = 0;
  /** Bytes left in this stream's round-robin turn. */
  deficit = 0;
  /** Queued DATA as views; null while nothing is queued. */
  chunks: Uint8Array[] | null = null;
  /** Index of the first unsent chunk. */
  head = 0;
  /** Bytes of chunks[head] already pulled. */
  offset = 0;
  /** Mux-owned buffer that small sends are copied into; null while idle. */
  own: Uint8Array | null = null;
  ownUsed = 0;
  ownStart = 0;
  /** Clock value of the last frame sent or received. */
  lastActive: number;
  /** Neighbours in the mux's least-recently-active list. */
  prev: Stream | null = null;
  next: Stream | null = null;

  constructor(id: number, now: number) {
    this.id = id;
    this.lastActive = now;
  }
}
