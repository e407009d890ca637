/**
 * A session's stream table: one entry per mux stream, joined to its local
 * socket. It pumps bytes both ways with backpressure from the mux credit
 * windows and resend buffer: the tunnel's data for a stream is written to
 * its socket in order (`#drain`), and the socket is read into the stream
 * while credit allows (`#pumpSock`), reusing read buffers once the mux has
 * pulled their bytes. A stream is freed once both directions are finished
 * locally, or when it is reset (by either side, a timer or a socket error).
 *
 * @module
 */
import { type Mux, ResetReason } from "../mux/mod.ts";
import { describeError, type Logger } from "../observe/mod.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import type { ByteBudget, UserMeter } from "./pace.ts";

/**
 * A local socket read starts at this size and grows (×4 per full read) up to
 * `STREAM_READ_MAX` while data keeps filling it, then shrinks back: an idle
 * stream's pending read holds only a small buffer.
 */
// 4 KiB: 14.2 KiB (server) / 14.6 KiB (client) per idle stream measured by
// bench/idle_streams.ts with 10,000 streams; 64 KiB cost ~62 KiB. (The nc
// test that once hung with 4 KiB was the test runner's own pipe deadlock.)
const STREAM_READ_MIN = 4 * 1024;
/** Largest local socket read: one full record payload. */
const STREAM_READ_MAX = 256 * 1024;
/**
 * A stream reads at most this far ahead of the write loop (the socket
 * buffers the rest), so only a few of its read buffers are in use at once...
 */
const STREAM_READ_AHEAD = 4 * STREAM_READ_MAX;
/** ...and it tracks that many (and two) for reuse once the mux has pulled their bytes. */
const STREAM_READ_REUSE = STREAM_READ_AHEAD / STREAM_READ_MAX + 2;

/** How often a stream whose user's quota budget is used up looks again (ms). */
const BUDGET_RECHECK_MS = 10;

/** One stream and its local socket. */
export interface StreamCtx {
  id: number;
  sock: ByteStream | undefined;
  /** Data from the tunnel waiting to be written to `sock`. */
  queue: Uint8Array[];
  writing: boolean;
  /** The peer sent FIN: close our socket's write side once `queue` drains. */
  finIn: boolean;
  sockWriteClosed: boolean;
  sockReadDone: boolean;
  onReply: ((reply: Uint8Array) => void) | undefined;
  onFail: ((e: Error) => void) | undefined;
  onWritable: (() => void) | undefined;
  /** A UDP association's datagram arrived (`ATYP ‖ addr ‖ port ‖ data`, see MuxEvent "datagram"). */
  onDatagram: ((datagram: Uint8Array) => void) | undefined;
  /** The stream left the table (a UDP association closes its sockets). */
  onClose: ((reason: string) => void) | undefined;
  /** Bytes written to the local socket. */
  bytesIn: number;
  /** Bytes read from the local socket. */
  bytesOut: number;
  /** Ends a bandwidth pause early (the stream is dropped). */
  unpause: (() => void) | undefined;
}

/** What the stream table needs from its session. */
export interface StreamHost {
  /** The session's mux (replaced when the peer lost the session). */
  readonly mux: Mux;
  /**
   * Server: the user's bandwidth buckets and quota budget (`pace.ts`);
   * undefined when the user has neither, and then metering costs nothing.
   */
  readonly meter: UserMeter | undefined;
  /** The session has ended. */
  readonly closed: boolean;
  readonly log: Logger;
  /** Queued something for the writer, or the mux may have raised events. */
  kick(): void;
  /** `ctx` left the table; `reason` says how it ended. */
  streamClosed(ctx: StreamCtx, reason: string): void;
}

/**
 * The streams of one session.
 *
 * @example
 * ```ts ignore
 * const table = new StreamTable(host);
 * const ctx = table.add(mux.open(request, now));
 * table.attach(ctx, localSocket, earlyBytes);
 * ```
 */
export class StreamTable {
  readonly #host: StreamHost;
  readonly #streams = new Map<number, StreamCtx>();
  /** Streams whose reads wait for the write loop to pull what they queued (#pumpSock). */
  readonly #readAhead = new Set<StreamCtx>();

  constructor(host: StreamHost) {
    this.#host = host;
  }

  /** Number of live streams. */
  get size(): number {
    return this.#streams.size;
  }

  /** True while stream `id` is open. */
  has(id: number): boolean {
    return this.#streams.has(id);
  }

  /** Stream `id`, if open. */
  get(id: number): StreamCtx | undefined {
    return this.#streams.get(id);
  }

  /** Adds stream `id` (not yet joined to a socket). */
  add(id: number): StreamCtx {
    const ctx: StreamCtx = {
      id,
      sock: undefined,
      queue: [],
      writing: false,
      finIn: false,
      sockWriteClosed: false,
      sockReadDone: false,
      onReply: undefined,
      onFail: undefined,
      onWritable: undefined,
      onDatagram: undefined,
      onClose: undefined,
      bytesIn: 0,
      bytesOut: 0,
      unpause: undefined,
    };
    this.#streams.set(id, ctx);
    return ctx;
  }

  /**
   * Joins `ctx` to a local socket: bytes flow both ways until both sides
   * finish; `early` is data the local side already sent.
   */
  attach(ctx: StreamCtx, sock: ByteStream, early: Uint8Array | undefined): void {
    ctx.sock = sock;
    this.#drain(ctx);
    this.#pumpSock(ctx, early).catch((e) => {
      this.#host.log.debug(`stream ${ctx.id}: local read failed: ${describeError(e)}`);
      this.reset(ctx, ResetReason.CANCEL, "local socket error");
    });
  }

  /** Data from the tunnel for stream `id`. */
  data(id: number, data: Uint8Array): void {
    const ctx = this.#streams.get(id);
    if (ctx === undefined) return;
    ctx.queue.push(data);
    this.#drain(ctx);
  }

  /** The peer finished sending on stream `id`. */
  fin(id: number): void {
    const ctx = this.#streams.get(id);
    if (ctx === undefined) return;
    ctx.finIn = true;
    this.#drain(ctx);
  }

  /** The peer reset stream `id`. */
  peerReset(id: number, reason: number, message: string): void {
    const ctx = this.#streams.get(id);
    if (ctx === undefined) return;
    const why = `reset by peer: ${message || `reason ${reason}`}`;
    ctx.onFail?.(new Error(`Stream ${why}`));
    this.drop(ctx, why);
  }

  /** Stream `id` has credit again. */
  writable(id: number): void {
    const ctx = this.#streams.get(id);
    const w = ctx?.onWritable;
    if (ctx !== undefined && w !== undefined) {
      ctx.onWritable = undefined;
      w();
    }
  }

  /** The mux closed stream `id` in both directions. */
  closed(id: number): void {
    const ctx = this.#streams.get(id);
    if (ctx !== undefined) this.#maybeRelease(ctx);
  }

  /** Resets `ctx` (sends RESET) and frees it. */
  reset(ctx: StreamCtx, reason: number, message: string): void {
    if (!this.#streams.has(ctx.id)) return;
    try {
      this.#host.mux.reset(ctx.id, reason, message);
    } catch (e) {
      this.#host.log.debug(`stream ${ctx.id}: reset failed: ${describeError(e)}`);
    }
    this.#host.kick();
    this.drop(ctx, message);
  }

  /** Frees `ctx` without telling the peer; `reason` is how it ended. */
  drop(ctx: StreamCtx, reason: string): void {
    if (!this.#streams.delete(ctx.id)) return;
    ctx.queue.length = 0;
    ctx.unpause?.();
    const w = ctx.onWritable;
    ctx.onWritable = undefined;
    w?.();
    ctx.onFail?.(new Error("Stream closed"));
    try {
      ctx.sock?.close();
    } catch {
      // already closed
    }
    const onClose = ctx.onClose;
    ctx.onClose = ctx.onDatagram = undefined;
    onClose?.(reason);
    this.#host.streamClosed(ctx, reason);
  }

  /** Resets every stream (RESET frames; their queued data is dropped) and frees it. */
  resetAll(reason: number, message: string): void {
    for (const ctx of [...this.#streams.values()]) this.reset(ctx, reason, message);
  }

  /** Fails and frees every stream (the session ended, or the peer lost them). */
  dropAll(failure: string, reason: string): void {
    for (const ctx of [...this.#streams.values()]) {
      ctx.onFail?.(new Error(failure));
      this.drop(ctx, reason);
    }
  }

  /** After pulls: streams waiting to read ahead go on once the mux made room (#pumpSock). */
  pulled(mux: Mux): void {
    if (this.#readAhead.size === 0) return;
    for (const ctx of this.#readAhead) {
      if (mux.queued(ctx.id) >= STREAM_READ_AHEAD) continue;
      this.#readAhead.delete(ctx);
      const w = ctx.onWritable;
      ctx.onWritable = undefined;
      w?.();
    }
  }

  /** Frees a stream once both directions are finished locally. */
  #maybeRelease(ctx: StreamCtx): void {
    if (ctx.sockReadDone && ctx.sockWriteClosed && ctx.queue.length === 0) {
      this.drop(ctx, "finished");
    }
  }

  /** Writes data received for a stream to its local socket, in order. */
  #drain(ctx: StreamCtx): void {
    if (ctx.writing || ctx.sock === undefined) return;
    ctx.writing = true;
    const sock = ctx.sock;
    (async () => {
      while (ctx.queue.length > 0) {
        const d = ctx.queue.shift()!;
        const m = this.#host.meter;
        if (m !== undefined) {
          const b = m.budget;
          if (b !== undefined) {
            if (!(await this.#awaitBudget(ctx, b))) return;
            if ((b.left -= d.length) <= 0) b.spent();
          }
          // Upload pacing: the write to the target (and so the credit the
          // peer gets back) waits until the user's bucket has paid for it.
          const wait = m.up === undefined ? 0 : m.up.take(d.length, performance.now());
          if (wait > 0) await this.#pause(ctx, wait);
          if (!this.#streams.has(ctx.id)) return;
        }
        await writeAll(sock, d);
        if (!this.#streams.has(ctx.id)) return;
        ctx.bytesIn += d.length;
        this.#host.mux.consumed(ctx.id, d.length);
        this.#host.kick();
      }
      if (ctx.finIn && !ctx.sockWriteClosed) {
        ctx.sockWriteClosed = true;
        await sock.closeWrite().catch(() => {});
        this.#maybeRelease(ctx);
      }
    })().then(
      () => {
        ctx.writing = false;
        // More may have arrived while the last write was finishing.
        if (ctx.queue.length > 0 || (ctx.finIn && !ctx.sockWriteClosed)) this.#drain(ctx);
      },
      (e) => {
        ctx.writing = false;
        this.#host.log.debug(`stream ${ctx.id}: local write failed: ${describeError(e)}`);
        this.reset(ctx, ResetReason.CANCEL, "local socket closed");
      },
    );
  }

  /** Reads a local socket into the stream while credit allows. */
  async #pumpSock(ctx: StreamCtx, early: Uint8Array | undefined): Promise<void> {
    const host = this.#host;
    const sock = ctx.sock!;
    if (early !== undefined && early.length > 0) {
      ctx.bytesOut += early.length;
      if (!(await this.#sendAll(ctx, early))) return;
    }
    let size = STREAM_READ_MIN;
    // The mux keeps views of sent bytes until pull() copies them, in order:
    // a read buffer is reused once the bytes pulled so far (`sent` minus
    // what is still queued) reach the end of its own. `held` lists buffers
    // read into, oldest first, each with `sent` after its bytes, and `free`
    // those whose bytes are all pulled. Both hold weak refs: a stream that
    // goes idle keeps no buffer alive but the one it reads into.
    const held: { ref: WeakRef<Uint8Array>; end: number }[] = [];
    const free: WeakRef<Uint8Array>[] = [];
    let sent = 0;
    // Paced: bytes read in this turn, not yet paid to the user's bucket.
    let turn = 0;
    while (!host.closed && this.#streams.has(ctx.id)) {
      while (host.mux.queued(ctx.id) >= STREAM_READ_AHEAD) {
        this.#readAhead.add(ctx);
        await new Promise<void>((r) => (ctx.onWritable = r));
        if (host.closed || !this.#streams.has(ctx.id)) return;
      }
      let credit = host.mux.credit(ctx.id);
      while (credit <= 0) {
        await new Promise<void>((r) => (ctx.onWritable = r));
        if (host.closed || !this.#streams.has(ctx.id)) return;
        credit = host.mux.credit(ctx.id);
      }
      const m = host.meter;
      let want = m?.down === undefined
        ? Math.min(size, credit)
        : Math.min(size, credit, Math.max(m.down.slice - turn, STREAM_READ_MIN));
      const b = m?.budget;
      if (b !== undefined) {
        // Quota: read no further than the last check left, then wait for the next one.
        if (!(await this.#awaitBudget(ctx, b))) return;
        want = Math.min(want, Math.max(b.left, STREAM_READ_MIN));
      }
      const pulled = sent - host.mux.queued(ctx.id);
      while (held.length > 0 && held[0]!.end <= pulled) free.push(held.shift()!.ref);
      let buf: Uint8Array | undefined;
      while (buf === undefined && free.length > 0) {
        const b = free.pop()!.deref();
        if (b?.length === size) buf = b;
      }
      buf ??= new Uint8Array(size);
      const n = await sock.read(want === size ? buf : buf.subarray(0, want));
      if (!this.#streams.has(ctx.id)) return;
      if (n === null) {
        if (turn > 0) host.meter?.down?.take(turn, performance.now());
        ctx.sockReadDone = true;
        host.mux.finish(ctx.id);
        host.kick();
        this.#maybeRelease(ctx);
        return;
      }
      const data = buf.subarray(0, n);
      sent += n;
      ctx.bytesOut += n;
      if (n === want) size = Math.min(size * 4, STREAM_READ_MAX);
      // A paced stream keeps its full slice: streams that take smaller turns
      // would get a smaller share of the user's rate.
      else if (n < size >> 2 && m?.down === undefined) size = STREAM_READ_MIN;
      if (held.length < STREAM_READ_REUSE && buf.length === size) {
        held.push({ ref: new WeakRef(buf), end: sent });
      }
      const took = host.mux.send(ctx.id, data);
      host.kick();
      if (took < n && !(await this.#sendAll(ctx, data.subarray(took)))) return;
      if (m !== undefined) {
        if (b !== undefined && (b.left -= n) <= 0) b.spent();
        // Download pacing: a turn is one slice (several reads when the target's
        // come short); then the stream pays the bucket and waits out the debt,
        // so every busy stream of the user moves the same bytes per turn.
        if (m.down !== undefined && (turn += n) >= m.down.slice) {
          const wait = m.down.take(turn, performance.now());
          turn = 0;
          if (wait > 0) await this.#pause(ctx, wait);
        }
      }
    }
  }

  /**
   * Waits while the user's quota budget is used up (a check is asked for
   * and decides: more budget, or the session ends). False when the stream
   * or the session ended meanwhile.
   */
  async #awaitBudget(ctx: StreamCtx, b: ByteBudget): Promise<boolean> {
    while (b.left <= 0) {
      b.spent();
      await this.#pause(ctx, BUDGET_RECHECK_MS);
      if (this.#host.closed || !this.#streams.has(ctx.id)) return false;
    }
    return true;
  }

  /** Waits `ms` for the user's bandwidth, or until the stream is dropped. */
  #pause(ctx: StreamCtx, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        ctx.unpause = undefined;
        resolve();
      }, ms);
      ctx.unpause = () => {
        ctx.unpause = undefined;
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * Queues all of `data` on the stream. The session window is shared by
   * every stream, so other streams may have used the credit seen before the
   * read: wait for the writable event the mux promises and send the rest.
   * False when the stream or the session ended meanwhile.
   */
  async #sendAll(ctx: StreamCtx, data: Uint8Array): Promise<boolean> {
    const host = this.#host;
    let off = 0;
    for (;;) {
      off += host.mux.send(ctx.id, off === 0 ? data : data.subarray(off));
      host.kick();
      if (off >= data.length) return true;
      // The mux promises a writable event only after credit() has said 0.
      if (host.mux.credit(ctx.id) > 0) continue;
      await new Promise<void>((r) => (ctx.onWritable = r));
      if (host.closed || !this.#streams.has(ctx.id)) return false;
    }
  }
}
