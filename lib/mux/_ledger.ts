/**
 * Session resumption bookkeeping (docs/PROTOCOL.md part 5 (session frames) section 11):
 * numbers the counted payloads we send and keeps them until the peer's ACK
 * covers them, counts the ones we receive and decides when to ACK them.
 * Used by `Mux` only; pure, like the mux.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { Deque } from "./_deque.ts";

/**
 * Heap a buffered payload costs beyond its bytes (typed array, backing store
 * header, queue slot), charged against the buffer limit so that a stream of
 * tiny payloads cannot pile up entries under a byte limit.
 */
export const RESEND_ENTRY_OVERHEAD = 128;

/** Sender and receiver state of one session's resumption; fields are driven by `Mux`. */
export class Ledger {
  readonly #limit: number;
  readonly #ackPayloads: number;
  readonly #ackBytes: number;

  // ---- sending --------------------------------------------------------------
  /** Counted payloads sent and not acknowledged, oldest first: entry i is number #acked + 1 + i. */
  readonly #buf = new Deque<Uint8Array>();
  /** Highest payload number the peer has acknowledged (ACK or resume). */
  #acked = 0;
  /**
   * Index in #buf of the next payload to resend; #buf.length when none is
   * owed. Invariant: #acked + #cursor = payloads sent on this connection or
   * acknowledged before it, the most an ACK may cover.
   */
  #cursor = 0;
  /** Payload bytes in #buf. */
  #bytes = 0;
  /** Payload bytes in #buf at or after #cursor. */
  #resendBytes = 0;
  /** connectionLost() was called and onPeerResumed() not yet. */
  #lost = false;

  // ---- receiving ------------------------------------------------------------
  /** Counted payloads received this session, across connections. */
  #received = 0;
  /** #received when the last ACK was pulled, or when the peer learned it in a resume. */
  #ackSent = 0;
  /** An ACK must go out even on its own (flushAck() or a threshold was reached). */
  #ackForced = false;
  /** Bytes of counted payloads received since #ackSent was set. */
  #bytesSinceAck = 0;

  constructor(limit: number, ackPayloads: number, ackBytes: number) {
    this.#limit = limit;
    this.#ackPayloads = ackPayloads;
    this.#ackBytes = ackBytes;
  }

  /** True between connectionLost() and onPeerResumed(). */
  get lost(): boolean {
    return this.#lost;
  }

  /** The connection is gone: nothing is sent or received until onResume(). */
  markLost(): void {
    this.#lost = true;
  }

  /** Counted payloads received so far. */
  get received(): number {
    return this.#received;
  }

  /** Buffered payloads (sent, or owed a resend, and not acknowledged). */
  get unackedPayloads(): number {
    return this.#buf.length;
  }

  /** Bytes of buffered payloads. */
  get unackedBytes(): number {
    return this.#bytes;
  }

  /** Bytes of buffered payloads that pull() owes the peer again. */
  get resendBytes(): number {
    return this.#resendBytes;
  }

  /** True when an ACK must be pulled even with nothing else to send. */
  get ackForced(): boolean {
    return this.#ackForced;
  }

  /** True when something arrived since the last ACK: worth piggybacking one. */
  get ackDue(): boolean {
    return this.#received > this.#ackSent;
  }

  /** Room for one more payload, after its entry overhead; may be negative. */
  free(): number {
    return this.#limit - this.#bytes - RESEND_ENTRY_OVERHEAD * (this.#buf.length + 1);
  }

  /** The next buffered payload owed to the peer after a resume, unchanged; undefined when none. */
  resend(): Uint8Array | undefined {
    const p = this.#buf.at(this.#cursor);
    if (p === undefined) return undefined;
    this.#cursor++;
    this.#resendBytes -= p.length;
    return p;
  }

  /** True while buffered payloads wait to be resent. */
  get resending(): boolean {
    return this.#cursor < this.#buf.length;
  }

  /** A new counted payload was pulled: it takes the next number and stays until acknowledged. */
  sent(payload: Uint8Array): void {
    this.#buf.push(payload);
    this.#cursor = this.#buf.length;
    this.#bytes += payload.length;
  }

  /** An ACK frame carrying `received` was pulled. */
  ackPulled(): void {
    this.#ackSent = this.#received;
    this.#ackForced = false;
    this.#bytesSinceAck = 0;
  }

  /** The peer's ACK (`received` = hi · 2^32 + lo) says how many of our counted payloads it processed. */
  onAck(hi: number, lo: number): void {
    const max = this.#acked + this.#cursor;
    const value = hi * 2 ** 32 + lo; // inexact only above 2^53, far beyond any `max`
    if (value > max) {
      throw new ProtocolError(
        "BAD_STATE",
        `Cannot accept ACK: ${u64Text(hi, lo)} payloads acknowledged, only ${max} were sent`,
      );
    }
    // Lower values are legitimate: an ACK inside a payload resent after a resume is stale.
    if (value > this.#acked) this.#drop(value - this.#acked);
  }

  /** A counted payload of `len` bytes was processed; may force an ACK. */
  onCounted(len: number): void {
    this.#received++;
    this.#bytesSinceAck += len;
    if (
      this.#received - this.#ackSent >= this.#ackPayloads || this.#bytesSinceAck >= this.#ackBytes
    ) {
      this.#ackForced = true;
    }
  }

  /** flushAck(): force an ACK if anything arrived since the last one. True if one is now owed. */
  flush(): boolean {
    if (this.#received > this.#ackSent) this.#ackForced = true;
    return this.#ackForced;
  }

  /**
   * The peer resumed the session having processed `peer` of our counted
   * payloads: forget those, owe the rest again from the oldest. Our own
   * resumeState() went to the peer in the same exchange, so it acknowledged
   * everything we have received.
   */
  onResume(peer: bigint): void {
    const max = this.#acked + this.#cursor;
    if (peer < BigInt(this.#acked)) {
      throw new ProtocolError(
        "BAD_STATE",
        `Cannot resume session: peer received ${peer} payloads, below the ${this.#acked} it acknowledged`,
      );
    }
    if (peer > BigInt(max)) {
      throw new ProtocolError(
        "BAD_STATE",
        `Cannot resume session: peer received ${peer} payloads, only ${max} were sent`,
      );
    }
    this.#drop(Number(peer) - this.#acked);
    this.#cursor = 0;
    this.#resendBytes = this.#bytes;
    this.#ackSent = this.#received;
    this.#ackForced = false;
    this.#bytesSinceAck = 0;
    this.#lost = false;
  }

  /** Forgets the `n` oldest buffered payloads; they were all sent on this connection. */
  #drop(n: number): void {
    for (let i = 0; i < n; i++) this.#bytes -= this.#buf.shift()!.length;
    this.#acked += n;
    this.#cursor -= n;
  }
}

function u64Text(hi: number, lo: number): string {
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}
