/**
 * The I/O engine of an established tunnel, shared by client and server: it
 * owns the connection, runs the read loop (records → mux events) and the
 * write loop (mux frames → sealed records, several in flight, written in
 * order), and pumps bytes between mux streams and local sockets with
 * backpressure from the mux credit windows.
 *
 * The protocol state lives in the pure modules (`lib/record`, `lib/mux`);
 * this module only moves bytes and keeps timers.
 *
 * @module
 */
import { type Mux, type MuxEvent, ResetReason } from "../mux/mod.ts";
import type { RecordOpener, RecordSealer } from "../record/mod.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import { ProtocolError } from "../errors.ts";
import { describeError, type Logger } from "./log.ts";

/** Bytes read from the tunnel connection per read call. */
const TUNNEL_READ_BYTES = 256 * 1024;
/** Bytes read from a local socket per read call. */
const STREAM_READ_BYTES = 64 * 1024;
/** Records being opened at once before the read loop waits. */
const MAX_RX_INFLIGHT = 32;
/** Records being sealed at once before the write loop waits. */
const MAX_TX_INFLIGHT = 8;

/** Why a session ended. */
export interface SessionEnd {
  reason: string;
  /** True when the peer or the user ended it on purpose (not a broken link). */
  graceful: boolean;
  error?: unknown;
}

/** Options for {@link Session}. */
export interface SessionOptions {
  conn: ByteStream;
  sealer: RecordSealer;
  opener: RecordOpener;
  mux: Mux;
  log: Logger;
  /** Bytes already read from `conn` after the handshake. */
  initial?: Uint8Array;
  /** Server: the peer opened stream `id` with a raw SOCKS5 request. */
  onOpen?: (id: number, request: Uint8Array) => void;
  /** Send a PING when nothing was sent for this long (ms). Default 15 s. */
  keepaliveMs?: number;
  /** End the session when nothing arrived for this long (ms). Default 60 s. */
  deadAfterMs?: number;
  /** Reset a stream that moved no bytes for this long (ms). Default 5 min. */
  streamIdleMs?: number;
  now?: () => number;
}

interface StreamCtx {
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
}

/** Counters a session keeps for stats and tests. */
export interface SessionStats {
  bytesIn: number;
  bytesOut: number;
  recordsIn: number;
  recordsOut: number;
  streams: number;
  rttMs: number | undefined;
}

/**
 * One established tunnel. Create it after the handshake and call `run()`.
 *
 * @example
 * ```ts ignore
 * const session = new Session({ conn, sealer, opener, mux, log });
 * const end = session.run();
 * const { id, reply } = await session.open(rawSocksRequest, 10_000);
 * session.attach(id, localSocket);
 * ```
 */
export class Session {
  readonly #o: SessionOptions;
  readonly #mux: Mux;
  readonly #now: () => number;
  readonly #streams = new Map<number, StreamCtx>();
  #closed = false;
  #end: SessionEnd | undefined;
  #endResolve!: (e: SessionEnd) => void;
  readonly #ended: Promise<SessionEnd>;
  #wake: (() => void) | undefined;
  #dirty = false;
  #rxChain: Promise<void> = Promise.resolve();
  #rxInflight = 0;
  #rxSpace: (() => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastRecv: number;
  #lastSend: number;
  readonly stats: SessionStats = {
    bytesIn: 0,
    bytesOut: 0,
    recordsIn: 0,
    recordsOut: 0,
    streams: 0,
    rttMs: undefined,
  };

  constructor(opts: SessionOptions) {
    this.#o = opts;
    this.#mux = opts.mux;
    this.#now = opts.now ?? Date.now;
    this.#lastRecv = this.#lastSend = this.#now();
    this.#ended = new Promise((r) => (this.#endResolve = r));
  }

  /** True once the session has ended. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Resolves when the session ends. */
  get ended(): Promise<SessionEnd> {
    return this.#ended;
  }

  /** Number of live streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Starts the loops; resolves with why the session ended. */
  run(): Promise<SessionEnd> {
    const keepalive = this.#o.keepaliveMs ?? 15_000;
    const dead = this.#o.deadAfterMs ?? 60_000;
    const idle = this.#o.streamIdleMs ?? 300_000;
    const tick = Math.max(50, Math.min(keepalive, dead, idle) / 4);
    this.#timer = setInterval(() => this.#onTick(keepalive, dead, idle), tick);
    this.#readLoop().catch((e) => this.#fail(e, "read"));
    this.#writeLoop().catch((e) => this.#fail(e, "write"));
    return this.#ended;
  }

  /**
   * Client: opens a stream carrying a raw SOCKS5 request and waits for the
   * server's raw SOCKS5 reply.
   */
  open(request: Uint8Array, timeoutMs: number): Promise<{ id: number; reply: Uint8Array }> {
    if (this.#closed) return Promise.reject(new Error("Tunnel is closed"));
    const id = this.#mux.open(request);
    const ctx = this.#newStream(id);
    this.#kick();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ctx.onReply = ctx.onFail = undefined;
        this.#resetStream(ctx, ResetReason.CANCEL, "no reply in time");
        reject(new Deno.errors.TimedOut(`No reply from the server within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      ctx.onReply = (reply) => {
        clearTimeout(timer);
        ctx.onReply = ctx.onFail = undefined;
        resolve({ id, reply });
      };
      ctx.onFail = (e) => {
        clearTimeout(timer);
        ctx.onReply = ctx.onFail = undefined;
        reject(e);
      };
    });
  }

  /** Server: answers stream `id` with a raw SOCKS5 reply. */
  reply(id: number, reply: Uint8Array): void {
    if (this.#closed || !this.#streams.has(id)) return;
    this.#mux.reply(id, reply);
    this.#kick();
  }

  /** Server: answers with a failure reply and ends the stream. */
  refuse(id: number, reply: Uint8Array, reason: number, message: string): void {
    const ctx = this.#streams.get(id);
    if (this.#closed || ctx === undefined) return;
    this.#mux.reply(id, reply);
    this.#resetStream(ctx, reason, message);
  }

  /** True while stream `id` is open. */
  hasStream(id: number): boolean {
    return this.#streams.has(id);
  }

  /**
   * Joins stream `id` to a local socket: bytes flow both ways until both
   * sides finish; `early` is data the local side already sent.
   */
  attach(id: number, sock: ByteStream, early?: Uint8Array): void {
    const ctx = this.#streams.get(id);
    if (ctx === undefined || this.#closed) {
      sock.close();
      return;
    }
    ctx.sock = sock;
    this.#drain(ctx);
    this.#pumpSock(ctx, early).catch((e) => {
      this.#o.log.debug(`stream ${id}: local read failed: ${describeError(e)}`);
      this.#resetStream(ctx, ResetReason.CANCEL, "local socket error");
    });
  }

  /** Ends the session and every stream. */
  close(reason = "closed", graceful = true): void {
    this.#finish({ reason, graceful });
  }

  // ---- read side ----------------------------------------------------------

  async #readLoop(): Promise<void> {
    const initial = this.#o.initial;
    if (initial !== undefined && initial.length > 0) this.#onBytes(initial);
    const buf = new Uint8Array(TUNNEL_READ_BYTES);
    while (!this.#closed) {
      while (this.#rxInflight >= MAX_RX_INFLIGHT && !this.#closed) {
        await new Promise<void>((r) => (this.#rxSpace = r));
      }
      let n: number | null;
      try {
        n = await this.#o.conn.read(buf);
      } catch (e) {
        if (this.#closed) return;
        throw e;
      }
      if (n === null) {
        // Let records already read finish before declaring the end.
        await this.#rxChain;
        this.#finish({ reason: "connection closed by peer", graceful: false });
        return;
      }
      this.#lastRecv = this.#now();
      this.stats.bytesIn += n;
      this.#onBytes(buf.slice(0, n));
    }
  }

  #onBytes(chunk: Uint8Array): void {
    const records = this.#o.opener.push(chunk);
    for (const p of records) {
      p.catch(() => {}); // handled in order below; avoid an unhandled rejection meanwhile
      this.#rxInflight++;
      this.#rxChain = this.#rxChain.then(async () => {
        if (this.#closed) return;
        const payload = await p;
        this.#rxInflight--;
        if (this.#rxSpace !== undefined) {
          const r = this.#rxSpace;
          this.#rxSpace = undefined;
          r();
        }
        this.stats.recordsIn++;
        const events = this.#mux.receive(payload, this.#now());
        for (const ev of events) this.#onEvent(ev);
        this.#kick();
      });
    }
    this.#rxChain = this.#rxChain.catch((e) => this.#fail(e, "record"));
  }

  #onEvent(ev: MuxEvent): void {
    switch (ev.type) {
      case "open": {
        this.#newStream(ev.id);
        if (this.#o.onOpen === undefined) {
          this.#resetStream(this.#streams.get(ev.id)!, ResetReason.REFUSED, "peer may not open");
        } else {
          this.#o.onOpen(ev.id, ev.request);
        }
        return;
      }
      case "reply": {
        this.#streams.get(ev.id)?.onReply?.(ev.reply);
        return;
      }
      case "data": {
        const ctx = this.#streams.get(ev.id);
        if (ctx === undefined) return;
        ctx.queue.push(ev.data);
        this.#drain(ctx);
        return;
      }
      case "fin": {
        const ctx = this.#streams.get(ev.id);
        if (ctx === undefined) return;
        ctx.finIn = true;
        this.#drain(ctx);
        return;
      }
      case "reset": {
        const ctx = this.#streams.get(ev.id);
        if (ctx === undefined) return;
        ctx.onFail?.(new Error(`Stream reset by peer: ${ev.message || `reason ${ev.reason}`}`));
        this.#dropStream(ctx);
        return;
      }
      case "writable": {
        const ctx = this.#streams.get(ev.id);
        const w = ctx?.onWritable;
        if (ctx !== undefined && w !== undefined) {
          ctx.onWritable = undefined;
          w();
        }
        return;
      }
      case "closed": {
        const ctx = this.#streams.get(ev.id);
        if (ctx !== undefined) this.#maybeRelease(ctx);
        return;
      }
      case "pong": {
        this.stats.rttMs = ev.rttMs;
        return;
      }
      case "goaway": {
        this.#o.log.info(`peer is going away (last stream ${ev.lastId})`);
        return;
      }
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
        await writeAll(sock, d);
        if (!this.#streams.has(ctx.id)) return;
        this.#mux.consumed(ctx.id, d.length);
        this.#kick();
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
        this.#o.log.debug(`stream ${ctx.id}: local write failed: ${describeError(e)}`);
        this.#resetStream(ctx, ResetReason.CANCEL, "local socket closed");
      },
    );
  }

  // ---- write side ---------------------------------------------------------

  /** Reads a local socket into the stream while credit allows. */
  async #pumpSock(ctx: StreamCtx, early: Uint8Array | undefined): Promise<void> {
    const sock = ctx.sock!;
    if (early !== undefined && early.length > 0 && !(await this.#sendAll(ctx, early))) return;
    while (!this.#closed && this.#streams.has(ctx.id)) {
      let credit = this.#mux.credit(ctx.id);
      while (credit <= 0) {
        await new Promise<void>((r) => (ctx.onWritable = r));
        if (this.#closed || !this.#streams.has(ctx.id)) return;
        credit = this.#mux.credit(ctx.id);
      }
      const buf = new Uint8Array(Math.min(STREAM_READ_BYTES, credit));
      const n = await sock.read(buf);
      if (!this.#streams.has(ctx.id)) return;
      if (n === null) {
        ctx.sockReadDone = true;
        this.#mux.finish(ctx.id);
        this.#kick();
        this.#maybeRelease(ctx);
        return;
      }
      if (!(await this.#sendAll(ctx, buf.subarray(0, n)))) return;
    }
  }

  /**
   * Queues all of `data` on the stream. The session window is shared by
   * every stream, so other streams may have used the credit seen before the
   * read: wait for the writable event the mux promises and send the rest.
   * False when the stream or the session ended meanwhile.
   */
  async #sendAll(ctx: StreamCtx, data: Uint8Array): Promise<boolean> {
    let off = 0;
    for (;;) {
      off += this.#mux.send(ctx.id, off === 0 ? data : data.subarray(off));
      this.#kick();
      if (off >= data.length) return true;
      await new Promise<void>((r) => (ctx.onWritable = r));
      if (this.#closed || !this.#streams.has(ctx.id)) return false;
    }
  }

  #kick(): void {
    this.#dirty = true;
    this.#takeEvents();
    const w = this.#wake;
    if (w !== undefined) {
      this.#wake = undefined;
      w();
    }
  }

  /** Handles events the mux raised outside receive() (after finish, reset, pull). */
  #takeEvents(): void {
    if (this.#closed) return;
    for (const ev of this.#mux.takeEvents()) this.#onEvent(ev);
  }

  async #writeLoop(): Promise<void> {
    const conn = this.#o.conn;
    const inflight: Promise<Uint8Array>[] = [];
    while (!this.#closed) {
      this.#dirty = false;
      while (inflight.length < MAX_TX_INFLIGHT) {
        const payload = this.#mux.pull();
        this.#takeEvents();
        if (payload === null) break;
        const p = this.#o.sealer.seal(payload);
        p.catch(() => {});
        inflight.push(p);
      }
      if (inflight.length === 0) {
        if (!this.#dirty) await new Promise<void>((r) => (this.#wake = r));
        continue;
      }
      const rec = await inflight.shift()!;
      if (this.#closed) return;
      try {
        await writeAll(conn, rec);
      } catch (e) {
        if (this.#closed) return;
        throw e;
      }
      this.#lastSend = this.#now();
      this.stats.bytesOut += rec.length;
      this.stats.recordsOut++;
    }
  }

  // ---- stream bookkeeping ---------------------------------------------------

  #newStream(id: number): StreamCtx {
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
    };
    this.#streams.set(id, ctx);
    this.stats.streams++;
    return ctx;
  }

  /** Frees a stream once both directions are finished locally. */
  #maybeRelease(ctx: StreamCtx): void {
    if (ctx.sockReadDone && ctx.sockWriteClosed && ctx.queue.length === 0) {
      this.#dropStream(ctx);
    }
  }

  #resetStream(ctx: StreamCtx, reason: number, message: string): void {
    if (!this.#streams.has(ctx.id)) return;
    try {
      this.#mux.reset(ctx.id, reason, message);
    } catch (e) {
      this.#o.log.debug(`stream ${ctx.id}: reset failed: ${describeError(e)}`);
    }
    this.#kick();
    this.#dropStream(ctx);
  }

  #dropStream(ctx: StreamCtx): void {
    if (!this.#streams.delete(ctx.id)) return;
    ctx.queue.length = 0;
    const w = ctx.onWritable;
    ctx.onWritable = undefined;
    w?.();
    ctx.onFail?.(new Error("Stream closed"));
    try {
      ctx.sock?.close();
    } catch {
      // already closed
    }
  }

  #onTick(keepaliveMs: number, deadMs: number, idleMs: number): void {
    if (this.#closed) return;
    const now = this.#now();
    if (now - this.#lastRecv > deadMs) {
      this.#finish({
        reason: `peer silent for ${Math.round((now - this.#lastRecv) / 1000)} s`,
        graceful: false,
      });
      return;
    }
    if (now - this.#lastSend > keepaliveMs || now - this.#lastRecv > keepaliveMs) {
      this.#mux.ping(now);
      this.#kick();
    }
    for (const id of this.#mux.idleStreams(now, idleMs)) {
      const ctx = this.#streams.get(id);
      if (ctx !== undefined) this.#resetStream(ctx, ResetReason.IDLE, "idle timeout");
    }
  }

  #fail(e: unknown, where: string): void {
    if (this.#closed) return;
    const detail = e instanceof ProtocolError ? `${e.code}: ${e.message}` : describeError(e);
    this.#finish({ reason: `${where} failed: ${detail}`, graceful: false, error: e });
  }

  #finish(end: SessionEnd): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#end = end;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    for (const ctx of [...this.#streams.values()]) {
      ctx.onFail?.(new Error(`Tunnel closed: ${end.reason}`));
      this.#dropStream(ctx);
    }
    try {
      this.#o.conn.close();
    } catch {
      // already closed
    }
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    const s = this.#rxSpace;
    this.#rxSpace = undefined;
    s?.();
    this.#endResolve(end);
  }
}
