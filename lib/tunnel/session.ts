/**
 * The I/O engine of a NitroSocks session, shared by client and server.
 *
 * A session is the logical tunnel: the mux, its streams and their local
 * sockets. It runs over one *link* at a time (a connection with its record
 * sealer and opener). When a link breaks without a release — a reset, a
 * stall, a record that fails authentication — the session keeps its streams
 * and waits for a new link (the client reconnects and resumes); the mux
 * resends what the peer did not receive, so no stream notices more than a
 * pause.
 *
 * This module is the facade that wires the parts together, each with one
 * responsibility:
 *
 * - `_link_reader.ts`: a link's read loop (records → payloads, several
 *   opened at once, handed over in order);
 * - `_link_writer.ts`: a link's write loop (mux → sealed records, several
 *   in flight, batched writes);
 * - `_streams.ts`: the stream table and the local socket pumps, with
 *   backpressure from the mux credit windows and resend buffer;
 * - `_timers.ts`: keepalive, dead link, stream idle, resume grace, re-key
 *   due, delayed ACK and the open, release and flush timeouts, on an
 *   injected {@linkcode Scheduler};
 * - `lib/session/controller.ts`: the pure decisions of resumption, re-key
 *   and release, which this module carries out.
 *
 * The protocol state lives in the pure modules (`lib/record`, `lib/mux`,
 * `lib/session`); the tunnel only moves bytes and keeps timers.
 *
 * @module
 */
import { type Mux, type MuxEvent, ResetReason } from "../mux/mod.ts";
import type { RecordOpener, RecordSealer } from "../record/mod.ts";
import {
  encodeRenewPayload,
  type Released,
  ReleaseReason,
  SessionController,
} from "../session/mod.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import { ProtocolError } from "../errors.ts";
import { describeError, type EventSink, type Logger, NO_EVENTS } from "../observe/mod.ts";
import type { LinkState } from "./_link_state.ts";
import { type LinkFailure, LinkReader, type ReaderHost } from "./_link_reader.ts";
import { LinkWriter, type WriterHost } from "./_link_writer.ts";
import { type StreamCtx, type StreamHost, StreamTable } from "./_streams.ts";
import type { UserMeter } from "./pace.ts";
import { SessionTimers, type TimerHost } from "./_timers.ts";
import { realScheduler, type Scheduler, type TimerId } from "./scheduler.ts";

/** The RESUME frame's type and a link's REKEY id live with their codecs in `lib/session`. */
export { FRAME_RESUME, linkIdOf } from "../session/mod.ts";
export { realScheduler, type Scheduler, type TimerId } from "./scheduler.ts";

/** Why a session ended. */
export interface SessionEnd {
  reason: string;
  /** True when a side ended it on purpose (release, shutdown), not a failure. */
  graceful: boolean;
  error?: unknown;
}

/** Why a link ended. */
export interface LinkEnd {
  reason: string;
  /** A record failed authentication on this link: whoever carried it tampered. */
  tampered: boolean;
  error?: unknown;
}

/** A new connection to run the session over, after its handshake. */
export interface LinkParams {
  conn: ByteStream;
  sealer: RecordSealer;
  opener: RecordOpener;
  /** Bytes already read from `conn` after the handshake. */
  initial?: Uint8Array;
  /** The handshake resumed this session: exchange RESUME state first. */
  resumed?: boolean;
  /** Server: a resumed session this process holds no state for (another server's ticket). */
  stateLost?: boolean;
  /** For logs: where the link goes. */
  label?: string;
  /**
   * Names this link in REKEY frames; both sides must agree. Taken from the
   * handshake's transcript (so a link one side never completed cannot shift
   * the numbering); a local counter when absent (tests).
   */
  linkId?: number;
}

/** Options for {@linkcode Session.notifyAndClose}. */
export interface NotifyOptions {
  /**
   * Wait this long at most (ms) for the peer to close the link first: a
   * connection closed while the peer's last frames are still unread is
   * reset, and a reset can discard the NOTICE before the peer reads it.
   */
  lingerMs?: number;
  /**
   * Reset every stream before the NOTICE, dropping their queued data, so
   * nothing more flows (a revocation or a used-up quota).
   */
  resetStreams?: boolean;
}

/** Options for {@link Session}. */
export interface SessionOptions {
  role: "client" | "server";
  mux: Mux;
  log: Logger;
  /** Where the session reports stream closes, link losses, re-keys, releases and byte counts. */
  events?: EventSink;
  /** The session's local number in events. */
  sessionNo?: number;
  /** The user the session belongs to, in events. */
  user?: string;
  /** Server: the peer opened stream `id` with a raw SOCKS5 request. */
  onOpen?: (id: number, request: Uint8Array) => void;
  /** Server: the client sent a RENEW frame (a fresh JWT; lib/session `decodeRenewPayload`). */
  onRenew?: (payload: Uint8Array) => void;
  /** A link broke without a release; the session waits for `attachLink`. */
  onLinkDown?: (end: LinkEnd) => void;
  /** Broken links may be replaced (the handshake said the session is resumable). */
  resumable?: boolean;
  /** A session without a link for this long ends (ms). Default 5 min. */
  graceMs?: number;
  /** Makes a fresh mux when the peer lost this session's state. */
  createMux?: () => Mux;
  /** Key for the release exchange's MACs (lib/session deriveReleaseKey). */
  releaseKey?: Uint8Array;
  /** Full re-key with fresh DH after this many bytes or ms since the last (either side's policy). */
  rekey?: { bytes: number; ms: number };
  /**
   * Send a PING when nothing was sent or received for a time drawn in
   * [keepaliveMs/2, keepaliveMs] (ms). Default 15 s.
   */
  keepaliveMs?: number;
  /**
   * Cover traffic: after a quiet time of this mean (ms, exponential) send a
   * PADDING frame of 0..1024 bytes. Default 0: none.
   */
  coverMs?: number;
  /** Uniform draws in [0, 1) for the keepalive and cover timing (tests); default the CSPRNG. */
  jitter?: () => number;
  /** A link silent this long is dead (ms). Default 45 s. */
  deadAfterMs?: number;
  /**
   * End the session (a release, after a `tunnel_idle` event) once no stream
   * has been open for this long (ms): the server's `limits.idle_timeout`.
   * Default: never. An open stream is never cut for being idle.
   */
  tunnelIdleMs?: number;
  /** Server: the user's bandwidth buckets and quota budget (lib/tunnel/pace.ts); none: unlimited. */
  meter?: UserMeter;
  /** The clock; default the scheduler's (`Date.now` for the real one). */
  now?: () => number;
  /** Timers and clock (tests pass a fake they advance by hand). Default: the real ones. */
  scheduler?: Scheduler;
}

/** Counters a session keeps for stats and tests. */
export interface SessionStats {
  bytesIn: number;
  bytesOut: number;
  recordsIn: number;
  recordsOut: number;
  streams: number;
  rttMs: number | undefined;
  links: number;
  rekeys: number;
}

const TAMPER_CODES = new Set(["DECRYPT_FAILED", "TOO_LARGE", "MALFORMED", "TRUNCATED"]);

/** Where a link failed: the reader's places, the writer's, or sending our RESUME. */
type FailedIn = LinkFailure | "write" | "resume";

/** Everything the parts ask of their session, in one object made once per session. */
type Host = ReaderHost<Link> & WriterHost & StreamHost & TimerHost<Link>;

/** One link of this session: its state, its reader and its writer. */
class Link implements LinkState {
  readonly seq: number;
  readonly conn: ByteStream;
  readonly sealer: RecordSealer;
  readonly opener: RecordOpener;
  readonly label: string;
  alive = true;
  ready: boolean;
  awaitResume: boolean;
  readonly stateLost: boolean;
  lastRecv: number;
  lastSend: number;
  readonly reader: LinkReader<Link>;
  readonly writer: LinkWriter;
  readonly endResolve: (e: LinkEnd) => void;
  /** Resolves when this link ends. */
  ended: Promise<LinkEnd> | undefined;

  constructor(
    params: LinkParams,
    seq: number,
    now: number,
    host: Host,
    endResolve: (e: LinkEnd) => void,
  ) {
    this.seq = seq;
    this.conn = params.conn;
    this.sealer = params.sealer;
    this.opener = params.opener;
    this.label = params.label ?? "peer";
    this.ready = params.resumed !== true;
    this.awaitResume = params.resumed === true;
    this.stateLost = params.stateLost === true;
    this.lastRecv = this.lastSend = now;
    this.reader = new LinkReader(this, host);
    this.writer = new LinkWriter(this, host);
    this.endResolve = endResolve;
  }
}

/**
 * One session. Call `run()`, then `attachLink()` with each connection.
 *
 * @example
 * ```ts ignore
 * const session = new Session({ role: "client", mux, log, resumable: true });
 * session.run();
 * session.attachLink({ conn, sealer, opener, initial });
 * const { id, reply } = await session.open(rawSocksRequest, 10_000);
 * session.attach(id, localSocket);
 * ```
 */
export class Session {
  readonly #o: SessionOptions;
  #mux: Mux;
  readonly #scheduler: Scheduler;
  readonly #ctl: SessionController;
  readonly #host: Host;
  readonly #streams: StreamTable;
  readonly #timers: SessionTimers<Link>;
  #closed = false;
  #meter: UserMeter | undefined;
  /** The NOTICE-and-close in progress, once one was asked for. */
  #notifying: Promise<void> | undefined;
  #endResolve!: (e: SessionEnd) => void;
  readonly #ended: Promise<SessionEnd>;
  #link: Link | undefined;
  #linkSeq = 0;
  #linkDownSince: number;
  /** Resolves a release() waiting for the exchange to finish. */
  #releaseDone: (() => void) | undefined;
  /** The writer has records in flight. */
  #writing = false;
  readonly #events: EventSink;
  /** The session's number and user in events. */
  readonly #no: number;
  readonly #user: string;
  /** Tunnel bytes already reported in `bytes` events. */
  #reportedIn = 0;
  #reportedOut = 0;
  /** #flush() calls waiting for the writer to go idle. */
  #idleWaiters: (() => void)[] = [];
  /** When the last stream was opened (for the tunnel-idle timer). */
  #lastStreamOpened = -Infinity;
  readonly stats: SessionStats = {
    bytesIn: 0,
    bytesOut: 0,
    recordsIn: 0,
    recordsOut: 0,
    streams: 0,
    rttMs: undefined,
    links: 0,
    rekeys: 0,
  };

  constructor(opts: SessionOptions) {
    this.#o = opts;
    this.#mux = opts.mux;
    this.#events = opts.events ?? NO_EVENTS;
    this.#no = opts.sessionNo ?? 0;
    this.#user = opts.user ?? "";
    const base = opts.scheduler ?? realScheduler;
    const now = opts.now;
    this.#scheduler = now === undefined ? base : {
      now,
      setTimeout: (fn, ms) => base.setTimeout(fn, ms),
      clearTimeout: (id) => base.clearTimeout(id),
    };
    const t0 = this.#now();
    this.#linkDownSince = t0;
    this.#ctl = new SessionController({
      role: opts.role,
      now: t0,
      ...(opts.rekey === undefined ? {} : { rekey: opts.rekey }),
      ...(opts.releaseKey === undefined ? {} : { releaseKey: opts.releaseKey }),
    });
    this.#meter = opts.meter;
    this.#host = this.#makeHost();
    this.#streams = new StreamTable(this.#host);
    this.#timers = new SessionTimers(this.#host, this.#scheduler, {
      keepaliveMs: opts.keepaliveMs ?? 15_000,
      deadAfterMs: opts.deadAfterMs ?? 45_000,
      tunnelIdleMs: opts.tunnelIdleMs ?? Infinity,
      graceMs: opts.graceMs ?? 300_000,
      coverMs: opts.coverMs ?? 0,
      ...(opts.jitter === undefined ? {} : { random: opts.jitter }),
    });
    this.#ended = new Promise((r) => (this.#endResolve = r));
  }

  /** True once the session has ended. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** True while a link carries the session. */
  get connected(): boolean {
    return this.#link?.alive === true;
  }

  /** Resolves when the session ends. */
  get ended(): Promise<SessionEnd> {
    return this.#ended;
  }

  /** Number of live streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** The mux's counters (resend buffer, windows, streams). */
  muxStats(): ReturnType<Mux["stats"]> {
    return this.#mux.stats();
  }

  /** Starts the timers; resolves with why the session ended. */
  run(): Promise<SessionEnd> {
    this.#timers.start();
    return this.#ended;
  }

  /** Server: meters the session's streams with this from now on (undefined: unlimited). */
  setMeter(meter: UserMeter | undefined): void {
    this.#meter = meter;
  }

  /** Server: the user's meter as it is now (UDP associations police datagrams with it). */
  get meter(): UserMeter | undefined {
    return this.#meter;
  }

  /** Replaces the key of the release exchange (it changes with every resumption). */
  setReleaseKey(key: Uint8Array): void {
    this.#ctl.setReleaseKey(key);
  }

  /**
   * Runs the session over a new connection. A live link is dropped first.
   * Resolves when this link ends.
   */
  attachLink(params: LinkParams): Promise<LinkEnd> {
    if (this.#closed) {
      params.conn.close();
      return Promise.resolve({ reason: "session closed", tampered: false });
    }
    if (this.#link?.alive) {
      this.#linkFailed(this.#link, "replaced by a new connection", undefined, false);
    }
    let endResolve!: (e: LinkEnd) => void;
    const ended = new Promise<LinkEnd>((r) => (endResolve = r));
    const now = this.#now();
    const link = new Link(params, params.linkId ?? ++this.#linkSeq, now, this.#host, endResolve);
    link.ended = ended;
    this.#link = link;
    this.stats.links++;
    this.#ctl.linkUp(link.seq, now, this.stats.bytesOut + this.stats.bytesIn);
    (async () => {
      if (params.resumed === true) await this.#sendResumeState(link);
      link.reader.run(params.initial).catch((e) => this.#linkError(link, e, "read"));
      link.writer.run().catch((e) => this.#linkError(link, e, "write"));
    })().catch((e) => this.#linkError(link, e, "resume"));
    return ended;
  }

  /** Drops the current link on purpose (rotation, tests); a resumable session waits for the next. */
  dropLink(reason: string): void {
    const link = this.#link;
    if (link !== undefined && link.alive) this.#linkFailed(link, reason, undefined, false);
  }

  /**
   * Client: opens a stream carrying a raw SOCKS5 request and waits for the
   * server's raw SOCKS5 reply. Works while the link is down: the OPEN waits.
   */
  open(request: Uint8Array, timeoutMs: number): Promise<{ id: number; reply: Uint8Array }> {
    if (this.#closed) return Promise.reject(new Error("Tunnel is closed"));
    return new Promise((resolve, reject) => {
      const id = this.#openStream(request, timeoutMs, (out) => {
        if ("reply" in out) resolve({ id, reply: out.reply });
        else if ("timedOut" in out) {
          reject(new Deno.errors.TimedOut(`No reply from the server within ${timeoutMs / 1000} s`));
        } else reject(out.error);
      });
    });
  }

  /**
   * Client, fast open: opens a stream carrying a raw SOCKS5 request and
   * returns its id at once, so the caller can attach the local socket and
   * let the application's first bytes follow the OPEN without waiting a
   * round trip for the REPLY (optimistic data, docs/PROTOCOL.md part 5
   * section 3). `onFailure` hears a failure REPLY (the server resets the
   * stream right after it, which closes the local socket) or a missing one
   * (the stream is reset here after `timeoutMs`).
   */
  openFast(
    request: Uint8Array,
    timeoutMs: number,
    onFailure: (why: { reply: Uint8Array } | { timedOut: true }) => void,
  ): number {
    if (this.#closed) throw new Error("Tunnel is closed");
    return this.#openStream(request, timeoutMs, (out) => {
      if ("timedOut" in out || ("reply" in out && out.reply[1] !== 0)) onFailure(out);
    });
  }

  /**
   * Queues an OPEN and reports, once, how it ended: the REPLY, no REPLY
   * within `timeoutMs` (the stream is then reset), or the stream failing
   * first (reset by the peer, tunnel closed).
   */
  #openStream(
    request: Uint8Array,
    timeoutMs: number,
    done: (out: { reply: Uint8Array } | { timedOut: true } | { error: Error }) => void,
  ): number {
    const id = this.#mux.open(request, this.#now());
    const ctx = this.#newStream(id);
    this.#kick();
    const deadline = this.#timers.openTimeout(timeoutMs, () => {
      ctx.onReply = ctx.onFail = undefined;
      this.#streams.reset(ctx, ResetReason.CANCEL, "no reply in time");
      done({ timedOut: true });
    });
    ctx.onReply = (reply) => {
      this.#timers.cancelOpen(deadline);
      ctx.onReply = ctx.onFail = undefined;
      done({ reply });
    };
    ctx.onFail = (error) => {
      this.#timers.cancelOpen(deadline);
      ctx.onReply = ctx.onFail = undefined;
      done({ error });
    };
    return id;
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
    this.#streams.reset(ctx, reason, message);
  }

  /** True while stream `id` is open. */
  hasStream(id: number): boolean {
    return this.#streams.has(id);
  }

  /** The session's local number in events. */
  get no(): number {
    return this.#no;
  }

  /**
   * Makes stream `id` a UDP association (docs/PROTOCOL.md part 5 section
   * 12): `onDatagram` hears each DATAGRAM for it (a view into the record,
   * see the mux's "datagram" event), `onClose` once when the stream ends
   * (reset by either side, idle, or the session ended). False when the
   * stream is already gone (`onClose` is not called then).
   */
  bindAssociation(
    id: number,
    handlers: { onDatagram: (datagram: Uint8Array) => void; onClose: (reason: string) => void },
  ): boolean {
    const ctx = this.#streams.get(id);
    if (ctx === undefined || this.#closed) return false;
    ctx.onDatagram = handlers.onDatagram;
    ctx.onClose = handlers.onClose;
    return true;
  }

  /**
   * Queues a UDP datagram on association `id`: `address` (`ATYP ‖ addr ‖
   * port`) then `data`, both held as views until the writer pulls them. Never
   * waits: when the session's datagram queue is full the oldest queued
   * datagram is dropped (counted in muxStats().datagramsDropped). False when
   * the datagram was refused (stream gone, too large for a record).
   */
  sendDatagram(id: number, address: Uint8Array, data: Uint8Array): boolean {
    if (this.#closed) return false;
    const ok = this.#mux.sendDatagram(id, address, data);
    if (ok) this.#link?.writer.kick();
    return ok;
  }

  /** Ends stream `id` at once (RESET CANCEL to the peer), e.g. a UDP association whose owner left. */
  closeStream(id: number, message: string): void {
    const ctx = this.#streams.get(id);
    if (ctx !== undefined && !this.#closed) this.#streams.reset(ctx, ResetReason.CANCEL, message);
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
    this.#streams.attach(ctx, sock, early);
  }

  /**
   * Client: sends a fresh JWT for this session's login in a RENEW frame
   * (docs/PROTOCOL.md part 2 section 14.7). Throws `RangeError` for a token
   * a RENEW cannot carry, `TypeError` when the session is not resumable.
   */
  renew(token: string): void {
    if (this.#closed) return;
    this.#mux.sendRenew(encodeRenewPayload(token));
    this.#kick();
  }

  /**
   * Ends the session gracefully with seed 000's three-step release
   * (Release_Request → Release_Challenge → Release_Confirm); when the peer
   * does not answer within `timeoutMs`, sends a best-effort NOTICE (seed 001
   * 6.1/6.2) and closes. A released session can never be resumed.
   */
  async release(timeoutMs = 5_000): Promise<void> {
    if (this.#closed) return;
    const link = this.#link;
    const start = this.#ctl.startRelease(link !== undefined && link.alive && link.ready);
    if (start.type === "close") {
      this.#finish({ reason: start.reason, graceful: true });
      return;
    }
    const done = new Promise<void>((r) => (this.#releaseDone = r));
    this.#mux.sendRelease(start.body);
    this.#kick();
    let timer: TimerId | undefined;
    const timedOut = await Promise.race([
      done.then(() => false),
      new Promise<boolean>((r) => (timer = this.#timers.releaseTimeout(timeoutMs, () => r(true)))),
    ]);
    this.#timers.cancel(timer);
    if (this.#closed) return;
    if (timedOut) {
      const gaveUp = this.#ctl.releaseUnanswered();
      this.#emitRelease(gaveUp.released);
      this.#mux.sendRelease(gaveUp.body);
      this.#kick();
      await this.#flush(500);
      this.#finish({ reason: gaveUp.released.reason, graceful: true });
      return;
    }
    await this.#flush(500);
    this.#finish({ reason: "released", graceful: true });
  }

  /**
   * Tells the peer the session is over (NOTICE) and closes, e.g. on
   * shutdown; see {@linkcode NotifyOptions}.
   */
  notifyAndClose(
    reason: string,
    code: number = ReleaseReason.SHUTDOWN,
    options: NotifyOptions = {},
  ): Promise<void> {
    // One NOTICE per session: a second call (a reload during the linger) waits for the first.
    this.#notifying ??= this.#notifyAndClose(reason, code, options);
    return this.#notifying;
  }

  async #notifyAndClose(reason: string, code: number, options: NotifyOptions): Promise<void> {
    if (this.#closed) return;
    const lingerMs = options.lingerMs ?? 0;
    if (options.resetStreams) this.#streams.resetAll(ResetReason.CANCEL, reason);
    const link = this.#link;
    const notice = link?.alive && link.ready ? this.#ctl.notice(code) : undefined;
    if (notice !== undefined) {
      this.#emitRelease({ by: "us", reason, notice: code });
      this.#mux.sendRelease(notice);
      this.#kick();
      await this.#flush(500);
      if (lingerMs > 0 && link?.alive && link.ended !== undefined) {
        let timer: TimerId | undefined;
        await Promise.race([
          link.ended,
          new Promise<void>((r) => (timer = this.#timers.flushTimeout(lingerMs, r))),
        ]);
        this.#timers.cancel(timer);
      }
    }
    this.#finish({ reason, graceful: true });
  }

  /** Starts a full re-key with fresh X25519 now (either side may ask). */
  rekeyNow(): void {
    if (this.#closed || this.#link?.ready !== true) return;
    const init = this.#ctl.startRekey();
    if (init === undefined) return;
    this.#mux.sendRekey(init);
    this.#kick();
  }

  /** Ends the session and every stream at once. */
  close(reason = "closed", graceful = true): void {
    this.#finish({ reason, graceful });
  }

  // ---- the parts' view of the session ---------------------------------------

  #now(): number {
    return this.#scheduler.now();
  }

  #makeHost(): Host {
    // deno-lint-ignore no-this-alias
    const self = this;
    return {
      get closed() {
        return self.#closed;
      },
      get mux() {
        return self.#mux;
      },
      get meter() {
        return self.#meter;
      },
      get link() {
        return self.#link;
      },
      get linkDownSince() {
        return self.#linkDownSince;
      },
      stats: this.stats,
      log: this.#o.log,
      now: () => self.#now(),
      kick: () => self.#kick(),
      takeEvents: () => self.#takeEvents(),
      // reader
      onRecord: (link, payload) => self.#onRecord(link, payload),
      linkError: (link, e, where) => self.#linkError(link, e, where),
      linkClosed: (link, reason) => self.#linkFailed(link, reason, undefined, false),
      // writer
      pulled: (mux) => self.#streams.pulled(mux),
      writerBusy: () => {
        self.#writing = true;
      },
      writerIdle: () => {
        self.#writing = false;
        if (self.#mux.queuedMessages === 0) self.#wakeFlushes();
      },
      // streams
      streamClosed: (ctx, reason) => {
        self.#events.emit({
          type: "stream_close",
          session: self.#no,
          stream: ctx.id,
          bytesIn: ctx.bytesIn,
          bytesOut: ctx.bytesOut,
          reason,
        });
      },
      // timers
      graceExpired: (reason) => self.#finish({ reason, graceful: false }),
      linkDead: (link, reason) => self.#linkFailed(link, reason, undefined, false),
      ping: (now) => {
        self.#mux.ping(now);
        self.#kick();
      },
      cover: (bytes) => {
        self.#mux.cover(bytes);
        self.#kick();
      },
      rekeyCheck: (now) => {
        const init = self.#ctl.rekeyIfDue(now, self.stats.bytesOut + self.stats.bytesIn);
        if (init === undefined) return;
        self.#mux.sendRekey(init);
        self.#kick();
      },
      get openStreams() {
        return self.#streams.size;
      },
      get lastStreamOpened() {
        return self.#lastStreamOpened;
      },
      tunnelIdle: (idleMs) => {
        self.#events.emit({ type: "tunnel_idle", session: self.#no, user: self.#user, idleMs });
        self.release().catch((e) => self.#o.log.warn(`idle release: ${describeError(e)}`));
      },
      reportBytes: () => self.#reportBytes(),
      flushAck: () => {
        if (self.#link?.ready !== true) return;
        if (self.#mux.flushAck()) self.#kick();
      },
    };
  }

  #emitRelease(released: Released): void {
    this.#events.emit({ type: "release", session: this.#no, ...released });
  }

  /** A `bytes` event with the tunnel bytes since the last one; false when none moved. */
  #reportBytes(): boolean {
    const dIn = this.stats.bytesIn - this.#reportedIn;
    const dOut = this.stats.bytesOut - this.#reportedOut;
    if (dIn === 0 && dOut === 0) return false;
    this.#reportedIn = this.stats.bytesIn;
    this.#reportedOut = this.stats.bytesOut;
    this.#events.emit({ type: "bytes", session: this.#no, user: this.#user, in: dIn, out: dOut });
    return true;
  }

  #newStream(id: number): StreamCtx {
    const ctx = this.#streams.add(id);
    this.stats.streams++;
    this.#lastStreamOpened = this.#now();
    return ctx;
  }

  #kick(): void {
    this.#takeEvents();
    this.#link?.writer.kick();
  }

  /** Handles events the mux raised outside receive() (after finish, reset, pull). */
  #takeEvents(): void {
    if (this.#closed) return;
    for (const ev of this.#mux.takeEvents()) this.#onEvent(ev);
  }

  /** Waits (at most `ms`) until queued control messages and records are written. */
  async #flush(ms: number): Promise<void> {
    if (!this.#link?.alive || (this.#mux.queuedMessages === 0 && !this.#writing)) return;
    let timer: TimerId | undefined;
    await Promise.race([
      new Promise<void>((r) => this.#idleWaiters.push(r)),
      new Promise<void>((r) => (timer = this.#timers.flushTimeout(ms, r))),
    ]);
    this.#timers.cancel(timer);
  }

  /** The writer went idle, or the link or session ended: wake every #flush(). */
  #wakeFlushes(): void {
    const ws = this.#idleWaiters;
    if (ws.length === 0) return;
    this.#idleWaiters = [];
    for (const w of ws) w();
  }

  // ---- records and events ---------------------------------------------------

  /** An opened record's payload from the current or an earlier link, in order. */
  #onRecord(link: Link, payload: Uint8Array): void {
    if (link.awaitResume) {
      this.#onResumeState(link, payload);
      return;
    }
    const events = this.#mux.receive(payload, this.#now());
    for (const ev of events) this.#onEvent(ev);
    if (this.#mux.ackDue) this.#timers.ackDue();
    this.#kick();
  }

  #onEvent(ev: MuxEvent): void {
    switch (ev.type) {
      case "open": {
        const ctx = this.#newStream(ev.id);
        if (this.#o.onOpen === undefined) {
          this.#streams.reset(ctx, ResetReason.REFUSED, "peer may not open");
        } else {
          this.#o.onOpen(ev.id, ev.request);
        }
        return;
      }
      case "reply":
        this.#streams.get(ev.id)?.onReply?.(ev.reply);
        return;
      case "data":
        this.#streams.data(ev.id, ev.data);
        return;
      case "datagram":
        this.#streams.get(ev.id)?.onDatagram?.(ev.datagram);
        return;
      case "fin":
        this.#streams.fin(ev.id);
        return;
      case "reset":
        this.#streams.peerReset(ev.id, ev.reason, ev.message);
        return;
      case "writable":
        this.#streams.writable(ev.id);
        return;
      case "closed":
        this.#streams.closed(ev.id);
        return;
      case "pong":
        this.stats.rttMs = ev.rttMs;
        return;
      case "goaway":
        this.#o.log.info(`peer is going away (last stream ${ev.lastId})`);
        return;
      case "release":
        this.#onRelease(ev.body);
        return;
      case "rekey":
        this.#onRekey(ev.body);
        return;
      case "renew":
        if (this.#o.onRenew === undefined) this.#o.log.warn("ignoring a RENEW: not a JWT login");
        else this.#o.onRenew(ev.body);
        return;
    }
  }

  // ---- resumption, release, re-key: the controller decides ------------------

  async #sendResumeState(link: Link): Promise<void> {
    const received = link.stateLost ? 0n : this.#mux.resumeState().received;
    const rec = await link.sealer.seal(this.#ctl.resumeFrame(received, link.stateLost));
    await writeAll(link.conn, rec);
    link.lastSend = this.#now();
  }

  #onResumeState(link: Link, payload: Uint8Array): void {
    const decision = this.#ctl.onResume(payload, link.stateLost);
    link.awaitResume = false;
    if (decision.type === "fresh_mux") {
      this.#o.log.warn("the server no longer holds this session's streams: they are reset");
      this.#replaceMux();
    } else if (decision.type === "resend") {
      this.#mux.onPeerResumed(decision.received);
    }
    link.ready = true;
    this.#kick();
  }

  /** The peer lost our state: reset every stream and start a fresh mux. */
  #replaceMux(): void {
    const make = this.#o.createMux;
    if (make === undefined) {
      throw new ProtocolError("BAD_STATE", "Cannot resume: the peer lost the session");
    }
    this.#streams.dropAll(
      "Stream lost: the server no longer holds it",
      "lost: the server no longer holds it",
    );
    this.#mux = make();
  }

  #onRelease(body: Uint8Array): void {
    const decision = this.#ctl.onRelease(body);
    if (decision.refused !== undefined) {
      this.#o.log.warn(`release message refused: ${decision.refused}`);
      return;
    }
    if (decision.reply !== undefined) {
      this.#mux.sendRelease(decision.reply);
      this.#kick();
    }
    const released = decision.released;
    if (released === undefined) return;
    this.#emitRelease(released);
    if (released.by === "us") {
      const mine = this.#releaseDone;
      this.#releaseDone = undefined;
      mine?.();
      return;
    }
    this.#flush(500).then(() => this.#finish({ reason: released.reason, graceful: true }));
  }

  #onRekey(payload: Uint8Array): void {
    const link = this.#link;
    if (link === undefined || !link.alive) return;
    const decision = this.#ctl.onRekey(
      payload,
      this.#now(),
      this.stats.bytesOut + this.stats.bytesIn,
    );
    if (decision.type === "ignore") {
      if (decision.why === "stale_link") {
        this.#o.log.debug(`ignoring a re-key message from an earlier connection`);
      }
      return;
    }
    if (decision.type === "none") return;
    const { reply, mixin } = decision;
    if (reply !== undefined) {
      // The REPLY must leave under the old key: the writer re-keys the sealer
      // right after sealing the record that carries it.
      this.#mux.sendRekey(reply);
      link.writer.rekeyAfterReply(mixin.slice());
    } else {
      link.sealer.rekey(mixin);
    }
    link.opener.provideMixin(mixin);
    mixin.fill(0);
    this.stats.rekeys++;
    this.#events.emit({ type: "rekey", session: this.#no });
    this.#kick();
  }

  // ---- links and the end ----------------------------------------------------

  #linkError(link: Link, e: unknown, where: FailedIn): void {
    if (!link.alive || this.#closed) return;
    const tampered = e instanceof ProtocolError && TAMPER_CODES.has(e.code) && where === "record";
    const detail = e instanceof ProtocolError ? `${e.code}: ${e.message}` : describeError(e);
    if (where === "session") {
      // An authenticated peer broke the protocol: the session cannot continue.
      this.#finish({ reason: `session failed: ${detail}`, graceful: false, error: e });
      return;
    }
    this.#linkFailed(link, `${where} failed: ${detail}`, e, tampered);
  }

  #linkFailed(link: Link, reason: string, error: unknown, tampered: boolean): void {
    if (!link.alive) return;
    link.alive = false;
    this.#wakeFlushes();
    try {
      link.conn.close();
    } catch {
      // already closed
    }
    link.writer.stop();
    link.reader.stop();
    const end: LinkEnd = { reason, tampered, ...(error === undefined ? {} : { error }) };
    link.endResolve(end);
    if (this.#closed || this.#link !== link) return;
    this.#link = undefined;
    const released = this.#ctl.released;
    if (released !== undefined) {
      // The peer closing the link after a completed release is the expected end.
      this.#finish({ reason: released.reason, graceful: true });
      return;
    }
    if (this.#o.resumable !== true) {
      this.#finish({ reason, graceful: false, ...(error === undefined ? {} : { error }) });
      return;
    }
    this.#mux.connectionLost();
    this.#linkDownSince = this.#now();
    this.#events.emit({
      type: "link_down",
      session: this.#no,
      reason,
      tampered,
      peer: link.label,
    });
    this.#o.onLinkDown?.(end);
  }

  #finish(end: SessionEnd): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeFlushes();
    this.#timers.stop();
    this.#streams.dropAll(`Tunnel closed: ${end.reason}`, `tunnel closed: ${end.reason}`);
    const link = this.#link;
    this.#link = undefined;
    if (link !== undefined && link.alive) {
      link.alive = false;
      try {
        link.conn.close();
      } catch {
        // already closed
      }
      link.endResolve({ reason: end.reason, tampered: false });
      link.reader.stop();
      link.writer.stop();
    }
    this.#ctl.wipe();
    const r = this.#releaseDone;
    this.#releaseDone = undefined;
    r?.();
    this.#endResolve(end);
  }
}
