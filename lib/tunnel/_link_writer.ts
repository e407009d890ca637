/**
 * A session's link writer: the write loop of one link. It pulls record
 * payloads from the mux, seals several at once (up to `MAX_TX_INFLIGHT`),
 * and writes the sealed records in order, joining those ready together
 * into one write. While records are being sealed it waits for more data
 * before sealing a small one, so flowing data leaves in large records.
 *
 * It also applies our side of a re-key answered with a REPLY: the sealer
 * changes keys right after sealing the record that carries the REPLY.
 *
 * @module
 */
import type { Mux } from "../mux/mod.ts";
import { MAX_RECORD_BYTES, MAX_RECORD_PAYLOAD, PAD_PREFIX_BYTES } from "../record/mod.ts";
import { writeAll } from "../transport/types.ts";
import type { LinkState } from "./_link_state.ts";

/** Records being sealed at once before the write loop waits. */
const MAX_TX_INFLIGHT = 8;
/**
 * While a record is being sealed, the write loop waits for at least this
 * much pending data before sealing another one, so flowing data leaves in
 * large records (fewer AEAD calls and writes); with nothing in flight it
 * seals at once, so a lone small write is never held back.
 */
const TX_COALESCE_BYTES = 64 * 1024;
/**
 * Sealed records ready together are joined into one write up to this size
 * (1 MiB: four full records; each write costs about as much as a record).
 */
const TX_BATCH_BYTES = 1024 * 1024;
/** The batch buffer's largest size: a batch may end with one whole record past `TX_BATCH_BYTES`. */
const TX_BATCH_MAX = TX_BATCH_BYTES + MAX_RECORD_BYTES;
/** An idle link keeps its batch buffer up to this size (synchronous sealing). */
const TX_IDLE_BATCH_BYTES = 64 * 1024;
/**
 * Largest record payload the synchronous write loop pulls (the mux's own
 * maximum: 256 KiB).
 */
const TX_RECORD_PAYLOAD = MAX_RECORD_PAYLOAD;
const EMPTY_BATCH = new Uint8Array(0);
/** Payloads are pulled with room for the record's pad_len prefix in front... */
const PULL_HEADROOM = { headroom: PAD_PREFIX_BYTES };
/** ...which the sealer fills in instead of copying the payload. */
const SEAL_IN_HEADROOM = { useHeadroom: true };

/** What the writer needs from its session. */
export interface WriterHost {
  /** The session has ended. */
  readonly closed: boolean;
  /** The session's mux (replaced when the peer lost the session). */
  readonly mux: Mux;
  /** Counters: tunnel bytes written, records sealed and written. */
  readonly stats: { bytesOut: number; recordsOut: number };
  now(): number;
  /** Handles events the mux raised outside receive() (after a pull). */
  takeEvents(): void;
  /** The mux gave up payloads: streams waiting to read ahead may go on. */
  pulled(mux: Mux): void;
  /** Records are in flight. */
  writerBusy(): void;
  /** Nothing is in flight: wake those waiting for queued messages to leave. */
  writerIdle(): void;
}

/** Bytes of a record handed over in pieces. */
function partsLength(parts: Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/**
 * Writes one link until it ends.
 *
 * @example
 * ```ts ignore
 * const writer = new LinkWriter(link, host);
 * writer.run().catch((e) => host.linkError(link, e, "write"));
 * writer.kick(); // something was queued
 * ```
 */
export class LinkWriter {
  readonly #link: LinkState;
  readonly #host: WriterHost;
  /** Something was queued since the loop last looked. */
  #dirty = false;
  /** Wakes the loop waiting for work. */
  #wake: (() => void) | undefined;
  /** Apply to the sealer right after sealing the record carrying our re-key REPLY. */
  #sendMixin: Uint8Array | undefined;

  constructor(link: LinkState, host: WriterHost) {
    this.#link = link;
    this.#host = host;
  }

  /** Something was queued: pull again. */
  kick(): void {
    this.#dirty = true;
    const w = this.#wake;
    if (w !== undefined) {
      this.#wake = undefined;
      w();
    }
  }

  /**
   * Re-keys the sealer with `mixin` (taken over, wiped once used) right
   * after the record carrying the queued REKEY REPLY is sealed.
   */
  rekeyAfterReply(mixin: Uint8Array): void {
    this.#sendMixin?.fill(0);
    this.#sendMixin = mixin;
  }

  /** The link ended: drop a pending mixin and wake the loop so it sees it. */
  stop(): void {
    this.#sendMixin?.fill(0);
    this.#sendMixin = undefined;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** The write loop. */
  run(): Promise<void> {
    return this.#link.sealer.synchronous ? this.#runSync() : this.#runAsync();
  }

  /**
   * The write loop for a sealer that seals synchronously (OpenSSL, or
   * ChaCha20-Poly1305 on Web Crypto): records are sealed straight into the
   * batch buffer, one after another, until it holds `TX_BATCH_BYTES` or
   * nothing is left, and the batch goes out in one write. No promise per
   * record, no copy behind the AEAD; data that arrives during the write
   * fills the next batch, so flowing data still leaves in large writes.
   */
  async #runSync(): Promise<void> {
    const link = this.#link;
    const host = this.#host;
    const sealer = link.sealer;
    let batch: Uint8Array = EMPTY_BATCH;
    // A large batch buffer set aside while the link idles, until the GC wants it.
    let spare: WeakRef<Uint8Array> | undefined;
    while (!host.closed && link.alive) {
      this.#dirty = false;
      const mux = host.mux;
      let bytes = 0;
      let count = 0;
      while (link.ready && bytes < TX_BATCH_BYTES) {
        const payload = mux.pull(TX_RECORD_PAYLOAD, PULL_HEADROOM);
        host.takeEvents();
        if (payload === null) break;
        const need = bytes + sealer.maxSealedLength(payload.length);
        if (batch.length < need) {
          // Small sizes while traffic is light; past them, the largest batch at once.
          const kept = spare?.deref();
          spare = undefined;
          const grown = kept !== undefined && kept.length >= need
            ? kept
            : new Uint8Array(need <= TX_IDLE_BATCH_BYTES ? TX_IDLE_BATCH_BYTES : TX_BATCH_MAX);
          grown.set(batch.subarray(0, bytes));
          batch = grown;
        }
        // The AEAD reads the payload where it lies and writes the record into the batch.
        bytes += sealer.sealInto(payload, batch, bytes, SEAL_IN_HEADROOM);
        count++;
        // Our re-key REPLY is in the record just sealed once no control message waits.
        if (this.#sendMixin !== undefined && mux.queuedMessages === 0) {
          sealer.rekey(this.#sendMixin);
          this.#sendMixin.fill(0);
          this.#sendMixin = undefined;
        }
      }
      // Streams waiting to read ahead go on once pulls made room.
      host.pulled(mux);
      if (count === 0) {
        host.writerIdle();
        if (!this.#dirty) {
          // An idle link keeps a small batch buffer (the next short request
          // reuses it) and only a weak reference to a large one: the next
          // burst takes it back unless the GC has freed it meanwhile.
          if (batch.length > TX_IDLE_BATCH_BYTES) {
            spare = new WeakRef(batch);
            batch = EMPTY_BATCH;
          }
          await new Promise<void>((r) => (this.#wake = r));
        }
        continue;
      }
      host.writerBusy();
      try {
        await writeAll(link.conn, batch.subarray(0, bytes));
      } catch (e) {
        if (host.closed || !link.alive) return;
        throw e;
      }
      link.lastSend = host.now();
      host.stats.bytesOut += bytes;
      host.stats.recordsOut += count;
    }
  }

  /** The write loop for a sealer that seals asynchronously (Web Crypto AES-GCM). */
  async #runAsync(): Promise<void> {
    const link = this.#link;
    const host = this.#host;
    // Seals in call order; `rec` (header, then ciphertext) is set when the seal resolves.
    const inflight: { p: Promise<Uint8Array[]>; rec: Uint8Array[] | undefined }[] = [];
    // Records are joined into this buffer for each write, reused once the write is done.
    let batch = EMPTY_BATCH;
    while (!host.closed && link.alive) {
      this.#dirty = false;
      const mux = host.mux;
      while (link.ready && inflight.length < MAX_TX_INFLIGHT) {
        // Data still arriving while earlier records are sealed waits to fill a larger record.
        if (
          inflight.length > 0 && mux.pendingBytes < TX_COALESCE_BYTES && mux.queuedMessages === 0
        ) {
          break;
        }
        // The payload leaves room for pad_len in front, so the sealer need not copy it.
        const payload = mux.pull(undefined, PULL_HEADROOM);
        host.takeEvents();
        if (payload === null) break;
        const entry = {
          p: link.sealer.sealParts(payload, SEAL_IN_HEADROOM),
          rec: undefined as Uint8Array[] | undefined,
        };
        entry.p.then((r) => (entry.rec = r), () => {});
        inflight.push(entry);
        // Our re-key REPLY is in the record just sealed once no control message waits.
        if (this.#sendMixin !== undefined && mux.queuedMessages === 0) {
          link.sealer.rekey(this.#sendMixin);
          this.#sendMixin.fill(0);
          this.#sendMixin = undefined;
        }
      }
      // Streams waiting to read ahead go on once pulls made room.
      host.pulled(mux);
      if (inflight.length === 0) {
        host.writerIdle();
        if (!this.#dirty) {
          batch = EMPTY_BATCH; // an idle link holds no batch buffer
          await new Promise<void>((r) => (this.#wake = r));
        }
        continue;
      }
      host.writerBusy();
      const head = await inflight[0]!.p;
      if (host.closed || !link.alive) return;
      // Small records already sealed behind the head go out in the same write.
      let count = 1;
      let bytes = partsLength(head);
      while (count < inflight.length) {
        const r = inflight[count]!.rec;
        if (r === undefined) break;
        const len = partsLength(r);
        if (bytes + len > TX_BATCH_BYTES) break;
        bytes += len;
        count++;
      }
      if (batch.length < bytes) {
        batch = new Uint8Array(Math.max(bytes, Math.min(2 * batch.length, TX_BATCH_BYTES)));
      }
      for (let i = 0, o = 0; i < count; i++) {
        for (const part of i === 0 ? head : inflight[i]!.rec!) {
          batch.set(part, o);
          o += part.length;
        }
      }
      inflight.splice(0, count);
      try {
        await writeAll(link.conn, batch.subarray(0, bytes));
      } catch (e) {
        if (host.closed || !link.alive) return;
        throw e;
      }
      link.lastSend = host.now();
      host.stats.bytesOut += bytes;
      host.stats.recordsOut += count;
    }
  }
}
