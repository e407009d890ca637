/**
 * A session's link reader: the read loop of one link. It reads the
 * connection into one reused buffer, hands the whole records in it to the
 * opener (several are opened at once, up to `MAX_RX_INFLIGHT`), and passes
 * their payloads to the session strictly in order. Records are opened in
 * place: an incomplete one stays in the buffer and the next read completes
 * it.
 *
 * @module
 */
import { MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from "../record/mod.ts";
import type { LinkState } from "./_link_state.ts";

/** Most bytes read from the tunnel connection per read call (1 MiB: fewer, larger reads). */
const TUNNEL_READ_BYTES = 1024 * 1024;
/**
 * The read loop's one buffer, reused for every read: room for an incomplete
 * record (less than `MAX_RECORD_BYTES`) plus a read behind it.
 */
const TUNNEL_BUF_BYTES = MAX_RECORD_BYTES + TUNNEL_READ_BYTES;
/** Records being opened at once before the read loop waits. */
const MAX_RX_INFLIGHT = 32;

/** Where a link failure was seen. */
export type LinkFailure =
  /** Reading the connection failed. */
  | "read"
  /** A record failed authentication or framing: whoever carried it tampered. */
  | "record"
  /** An authenticated record broke the session's rules: the session cannot go on. */
  | "session";

/** What the reader needs from its session (`L`: the session's own link type). */
export interface ReaderHost<L extends LinkState = LinkState> {
  /** The session has ended. */
  readonly closed: boolean;
  /** Counters: tunnel bytes read, records opened. */
  readonly stats: { bytesIn: number; recordsIn: number };
  now(): number;
  /** An opened record's payload, in order. A throw ends the session (`"session"`). */
  onRecord(link: L, payload: Uint8Array): void;
  /** The link (or, for `"session"`, the session) failed with `e`. */
  linkError(link: L, e: unknown, where: LinkFailure): void;
  /** The link ended without an error (the peer closed it). */
  linkClosed(link: L, reason: string): void;
}

/**
 * Reads one link until it ends.
 *
 * @example
 * ```ts ignore
 * const reader = new LinkReader(link, host);
 * reader.run(bytesAfterHandshake).catch((e) => host.linkError(link, e, "read"));
 * ```
 */
export class LinkReader<L extends LinkState = LinkState> {
  readonly #link: L;
  readonly #host: ReaderHost<L>;
  /** Records being opened, handled in order: each link of the chain waits for the one before. */
  #chain: Promise<void> = Promise.resolve();
  #inflight = 0;
  /** Wakes the read loop waiting for room among the records in flight. */
  #space: (() => void) | undefined;
  /** The session threw on a payload opened synchronously (set by `#deliver`). */
  #sinkFailed = false;

  constructor(link: L, host: ReaderHost<L>) {
    this.#link = link;
    this.#host = host;
  }

  /** The link ended: wake the read loop if it waits for records in flight. */
  stop(): void {
    const s = this.#space;
    this.#space = undefined;
    s?.();
  }

  /** The read loop; `initial` is what was read after the handshake. */
  async run(initial: Uint8Array | undefined): Promise<void> {
    const link = this.#link;
    const host = this.#host;
    // Records are opened straight from this buffer (the opener has read them
    // when pushWhole() returns); an incomplete one stays at [start, end) and
    // the next read completes it in place.
    const buf = new Uint8Array(
      Math.max(TUNNEL_BUF_BYTES, (initial?.length ?? 0) + TUNNEL_READ_BYTES),
    );
    let start = 0;
    let end = 0;
    if (initial !== undefined && initial.length > 0) {
      buf.set(initial);
      end = initial.length;
      start = this.#onBytes(buf.subarray(0, end));
    }
    while (link.alive && !host.closed) {
      while (this.#inflight >= MAX_RX_INFLIGHT && link.alive && !host.closed) {
        await new Promise<void>((r) => (this.#space = r));
      }
      if (!link.alive) return;
      if (start === end) {
        start = end = 0;
      } else if (buf.length - end < TUNNEL_READ_BYTES) {
        // Move the incomplete record (less than one record) to the front.
        buf.copyWithin(0, start, end);
        end -= start;
        start = 0;
      }
      let n: number | null;
      try {
        n = await link.conn.read(buf.subarray(end, end + TUNNEL_READ_BYTES));
      } catch (e) {
        if (!link.alive || host.closed) return;
        throw e;
      }
      if (!link.alive) return;
      if (n === null) {
        // Let records already read finish before declaring the end.
        await this.#chain;
        const truncated = end > start || link.opener.buffered > 0;
        host.linkClosed(
          link,
          truncated ? "connection closed in the middle of a record" : "connection closed by peer",
        );
        return;
      }
      link.lastRecv = host.now();
      host.stats.bytesIn += n;
      end += n;
      start += this.#onBytes(buf.subarray(start, end));
    }
  }

  /** Opens the whole records at the start of `bytes`; returns the bytes they took. */
  #onBytes(bytes: Uint8Array): number {
    if (this.#inflight > 0) return this.#onBytesAsync(bytes);
    // Nothing in flight: records the opener can open at once go straight to
    // the session, without a promise each.
    const link = this.#link;
    let used: number;
    this.#sinkFailed = false;
    try {
      used = link.opener.openWhole(bytes, this.#deliver);
    } catch (e) {
      this.#host.linkError(link, e, this.#sinkFailed ? "session" : "record");
      return bytes.length;
    }
    // It stopped before the end: an incomplete record, or one that must wait (a re-key epoch).
    if (bytes.length - used < RECORD_HEADER_BYTES || !link.alive || this.#host.closed) {
      return used;
    }
    return used + this.#onBytesAsync(bytes.subarray(used));
  }

  /** Hands an opened record's payload to the session (synchronous opening). */
  readonly #deliver = (payload: Uint8Array): void => {
    const host = this.#host;
    if (host.closed || !this.#link.alive) return;
    host.stats.recordsIn++;
    try {
      host.onRecord(this.#link, payload);
    } catch (e) {
      // Thrown from an authenticated peer's frames: the session cannot go on.
      this.#sinkFailed = true;
      throw e;
    }
  };

  /** Opens the whole records at the start of `bytes` through promises, in order. */
  #onBytesAsync(bytes: Uint8Array): number {
    const link = this.#link;
    const host = this.#host;
    let records: Promise<Uint8Array>[];
    let used: number;
    try {
      ({ records, used } = link.opener.pushWhole(bytes));
    } catch (e) {
      host.linkError(link, e, "record");
      return bytes.length;
    }
    for (const p of records) {
      p.catch(() => {}); // handled in order below; avoid an unhandled rejection meanwhile
      this.#inflight++;
      this.#chain = this.#chain.then(async () => {
        if (host.closed || !link.alive) return;
        let payload: Uint8Array;
        try {
          payload = await p;
        } catch (e) {
          // The record failed authentication (or framing): whoever carried it tampered.
          host.linkError(link, e, "record");
          return;
        }
        this.#inflight--;
        if (this.#space !== undefined) {
          const r = this.#space;
          this.#space = undefined;
          r();
        }
        if (!link.alive) return;
        host.stats.recordsIn++;
        host.onRecord(link, payload);
      });
    }
    // Anything else thrown here comes from an authenticated peer's frames.
    this.#chain = this.#chain.catch((e) => host.linkError(link, e, "session"));
    return used;
  }
}
