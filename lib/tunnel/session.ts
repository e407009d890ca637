/**
 * The I/O engine of a NitroSocks session, shared by client and server.
 *
 * A session is the logical tunnel: the mux, its streams and their local
 * sockets. It runs over one *link* at a time (a connection with its record
 * sealer and opener). When a link breaks without a release — a reset, a
 * stall, a record that fails authentication — the session keeps its streams
 * and waits for a new link (the client reconnects and resumes); the mux
 * resends what the peer did not receive, so no stream notices more than a
 * pause. Per link it runs the read loop (records → mux events) and the write
 * loop (mux frames → sealed records, several in flight, written in order),
 * and it pumps bytes between mux streams and local sockets with backpressure
 * from the mux credit windows and resend buffer.
 *
 * It also drives the session-control exchanges of `lib/session`: the
 * three-step release and the in-band re-key with fresh X25519.
 *
 * The protocol state lives in the pure modules (`lib/record`, `lib/mux`,
 * `lib/session`); this module only moves bytes and keeps timers.
 *
 * @module
 */
import { type Mux, type MuxEvent, ResetReason } from "../mux/mod.ts";
import {
  MAX_RECORD_BYTES,
  PAD_PREFIX_BYTES,
  type RecordOpener,
  type RecordSealer,
} from "../record/mod.ts";
import {
  decodeRekeyPayload,
  decodeResumeFrame,
  encodeRekeyPayload,
  encodeResumeFrame,
  RekeyState,
  ReleaseReason,
  ReleaseState,
} from "../session/mod.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import { ProtocolError } from "../errors.ts";
import { describeError, type EventSink, type Logger } from "../observe/mod.ts";

/** Most bytes read from the tunnel connection per read call (1 MiB: fewer, larger reads). */
const TUNNEL_READ_BYTES = 1024 * 1024;
/**
 * The read loop's one buffer, reused for every read: room for an incomplete
 * record (less than `MAX_RECORD_BYTES`) plus a read behind it.
 */
const TUNNEL_BUF_BYTES = MAX_RECORD_BYTES + TUNNEL_READ_BYTES;
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
/** Records being opened at once before the read loop waits. */
const MAX_RX_INFLIGHT = 32;
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
const EMPTY_BATCH = new Uint8Array(0);
/** Payloads are pulled with room for the record's pad_len prefix in front... */
const PULL_HEADROOM = { headroom: PAD_PREFIX_BYTES };
/** ...which the sealer fills in instead of copying the payload. */
const SEAL_IN_HEADROOM = { useHeadroom: true };
/** How often pending acknowledgements are flushed (ms). */
const ACK_FLUSH_MS = 25;

/** The RESUME frame's type and a link's REKEY id live with their codecs in `lib/session`. */
export { FRAME_RESUME, linkIdOf } from "../session/mod.ts";

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
  /** Full re-key with fresh DH after this many bytes or ms (server starts it). */
  rekey?: { bytes: number; ms: number };
  /** Send a PING when nothing was sent for this long (ms). Default 15 s. */
  keepaliveMs?: number;
  /** A link silent this long is dead (ms). Default 45 s. */
  deadAfterMs?: number;
  /** Reset a stream that moved no bytes for this long (ms). Default 5 min. */
  streamIdleMs?: number;
  now?: () => number;
}

/** Bytes of a record handed over in pieces. */
function partsLength(parts: Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
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

interface Link {
  seq: number;
  conn: ByteStream;
  sealer: RecordSealer;
  opener: RecordOpener;
  label: string;
  alive: boolean;
  /** RESUME state exchanged (or not needed): the writer may pull. */
  ready: boolean;
  awaitResume: boolean;
  stateLost: boolean;
  rxChain: Promise<void>;
  rxInflight: number;
  rxSpace: (() => void) | undefined;
  lastRecv: number;
  lastSend: number;
  /** Apply to the sealer right after sealing the record carrying our re-key REPLY. */
  sendMixin: Uint8Array | undefined;
  endResolve: (e: LinkEnd) => void;
  ended: Promise<LinkEnd>;
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
  readonly #now: () => number;
  readonly #streams = new Map<number, StreamCtx>();
  /** Streams whose reads wait for the write loop to pull what they queued (#pumpSock). */
  readonly #readAhead = new Set<StreamCtx>();
  #closed = false;
  /** Set once a release exchange (or NOTICE) completed: why the session ends. */
  #released: string | undefined;
  #endResolve!: (e: SessionEnd) => void;
  readonly #ended: Promise<SessionEnd>;
  #link: Link | undefined;
  #linkSeq = 0;
  #linkDownSince: number;
  #wake: (() => void) | undefined;
  #dirty = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #release: ReleaseState | undefined;
  #releaseKey: Uint8Array | undefined;
  #releaseDone: (() => void) | undefined;
  #rekey: RekeyState;
  #rekeyAt: number;
  #rekeyBytesAt = 0;
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
    this.#now = opts.now ?? Date.now;
    this.#linkDownSince = this.#now();
    this.#rekeyAt = this.#now();
    this.#rekey = new RekeyState(opts.role);
    this.#releaseKey = opts.releaseKey?.slice();
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
    if (this.#timer !== undefined) return this.#ended;
    const keepalive = this.#o.keepaliveMs ?? 15_000;
    const dead = this.#o.deadAfterMs ?? 45_000;
    const idle = this.#o.streamIdleMs ?? 300_000;
    const tick = Math.max(20, Math.min(keepalive, dead, idle, 1000) / 4);
    this.#timer = setInterval(() => this.#onTick(keepalive, dead, idle), tick);
    return this.#ended;
  }

  /** Replaces the key of the release exchange (it changes with every resumption). */
  setReleaseKey(key: Uint8Array): void {
    this.#releaseKey?.fill(0);
    this.#releaseKey = key.slice();
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
    const link: Link = {
      seq: params.linkId ?? ++this.#linkSeq,
      conn: params.conn,
      sealer: params.sealer,
      opener: params.opener,
      label: params.label ?? "peer",
      alive: true,
      ready: !(params.resumed === true),
      awaitResume: params.resumed === true,
      stateLost: params.stateLost === true,
      rxChain: Promise.resolve(),
      rxInflight: 0,
      rxSpace: undefined,
      lastRecv: now,
      lastSend: now,
      sendMixin: undefined,
      endResolve,
      ended,
    };
    this.#link = link;
    this.stats.links++;
    // A re-key in progress on the old link is abandoned: the resumption itself
    // derived fresh keys from a fresh DH.
    this.#rekey.wipe();
    this.#rekey = new RekeyState(this.#o.role);
    this.#rekeyAt = now;
    this.#rekeyBytesAt = this.stats.bytesOut + this.stats.bytesIn;
    (async () => {
      if (params.resumed === true) await this.#sendResumeState(link);
      this.#readLoop(link, params.initial).catch((e) => this.#linkError(link, e, "read"));
      this.#writeLoop(link).catch((e) => this.#linkError(link, e, "write"));
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
    const timer = setTimeout(() => {
      ctx.onReply = ctx.onFail = undefined;
      this.#resetStream(ctx, ResetReason.CANCEL, "no reply in time");
      done({ timedOut: true });
    }, timeoutMs);
    ctx.onReply = (reply) => {
      clearTimeout(timer);
      ctx.onReply = ctx.onFail = undefined;
      done({ reply });
    };
    ctx.onFail = (error) => {
      clearTimeout(timer);
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

  /**
   * Ends the session gracefully with seed 000's three-step release
   * (Release_Request → Release_Challenge → Release_Confirm); when the peer
   * does not answer within `timeoutMs`, sends a best-effort NOTICE (seed 001
   * 6.1/6.2) and closes. A released session can never be resumed.
   */
  async release(timeoutMs = 5_000): Promise<void> {
    if (this.#closed) return;
    const link = this.#link;
    if (this.#releaseKey === undefined || link === undefined || !link.alive || !link.ready) {
      this.#finish({ reason: "closed without a link to release over", graceful: true });
      return;
    }
    const rs = new ReleaseState(this.#releaseKey, this.#o.role);
    this.#release = rs;
    const done = new Promise<void>((r) => (this.#releaseDone = r));
    this.#mux.sendRelease(rs.request());
    this.#kick();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      done.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (this.#closed) return;
    if (timedOut) {
      this.#o.log.info("release not answered in time: sending a notice and closing");
      this.#mux.sendRelease(rs.notice(ReleaseReason.NO_RESPONSE));
      this.#kick();
      await this.#flush(500);
      this.#finish({ reason: "released (peer did not answer)", graceful: true });
      return;
    }
    await this.#flush(500);
    this.#finish({ reason: "released", graceful: true });
  }

  /** Tells the peer the session is over (NOTICE) and closes, e.g. on shutdown. */
  async notifyAndClose(reason: string, code: number = ReleaseReason.SHUTDOWN): Promise<void> {
    if (this.#closed) return;
    const link = this.#link;
    if (this.#releaseKey !== undefined && link?.alive && link.ready) {
      const rs = new ReleaseState(this.#releaseKey, this.#o.role);
      this.#mux.sendRelease(rs.notice(code));
      this.#kick();
      await this.#flush(500);
    }
    this.#finish({ reason, graceful: true });
  }

  /** Starts a full re-key with fresh X25519 now (either side may ask). */
  rekeyNow(): void {
    if (this.#closed || this.#rekey.pending || this.#link?.ready !== true) return;
    this.#mux.sendRekey(this.#wrapRekey(this.#rekey.start()));
    this.#kick();
  }

  /** Ends the session and every stream at once. */
  close(reason = "closed", graceful = true): void {
    this.#finish({ reason, graceful });
  }

  // ---- resumption ------------------------------------------------------------

  async #sendResumeState(link: Link): Promise<void> {
    const frame = encodeResumeFrame({
      received: link.stateLost ? 0n : this.#mux.resumeState().received,
      stateLost: link.stateLost,
    });
    const rec = await link.sealer.seal(frame);
    await writeAll(link.conn, rec);
    link.lastSend = this.#now();
  }

  #onResumeState(link: Link, payload: Uint8Array): void {
    const { received, stateLost: peerLost } = decodeResumeFrame(payload);
    link.awaitResume = false;
    if (link.stateLost) {
      // We started fresh for this session id: nothing to resend.
    } else if (peerLost) {
      this.#o.log.warn("the server no longer holds this session's streams: they are reset");
      this.#replaceMux();
    } else {
      this.#mux.onPeerResumed(received);
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
    for (const ctx of [...this.#streams.values()]) {
      ctx.onFail?.(new Error("Stream lost: the server no longer holds it"));
      this.#dropStream(ctx);
    }
    this.#mux = make();
  }

  // ---- read side ----------------------------------------------------------

  async #readLoop(link: Link, initial: Uint8Array | undefined): Promise<void> {
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
      start = this.#onBytes(link, buf.subarray(0, end));
    }
    while (link.alive && !this.#closed) {
      while (link.rxInflight >= MAX_RX_INFLIGHT && link.alive && !this.#closed) {
        await new Promise<void>((r) => (link.rxSpace = r));
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
        if (!link.alive || this.#closed) return;
        throw e;
      }
      if (!link.alive) return;
      if (n === null) {
        // Let records already read finish before declaring the end.
        await link.rxChain;
        const truncated = end > start || link.opener.buffered > 0;
        this.#linkFailed(
          link,
          truncated ? "connection closed in the middle of a record" : "connection closed by peer",
          undefined,
          false,
        );
        return;
      }
      link.lastRecv = this.#now();
      this.stats.bytesIn += n;
      end += n;
      start += this.#onBytes(link, buf.subarray(start, end));
    }
  }

  /** Opens the whole records at the start of `bytes`; returns the bytes they took. */
  #onBytes(link: Link, bytes: Uint8Array): number {
    let records: Promise<Uint8Array>[];
    let used: number;
    try {
      ({ records, used } = link.opener.pushWhole(bytes));
    } catch (e) {
      this.#linkError(link, e, "record");
      return bytes.length;
    }
    for (const p of records) {
      p.catch(() => {}); // handled in order below; avoid an unhandled rejection meanwhile
      link.rxInflight++;
      link.rxChain = link.rxChain.then(async () => {
        if (this.#closed || !link.alive) return;
        let payload: Uint8Array;
        try {
          payload = await p;
        } catch (e) {
          // The record failed authentication (or framing): whoever carried it tampered.
          this.#linkError(link, e, "record");
          return;
        }
        link.rxInflight--;
        if (link.rxSpace !== undefined) {
          const r = link.rxSpace;
          link.rxSpace = undefined;
          r();
        }
        if (!link.alive) return;
        this.stats.recordsIn++;
        if (link.awaitResume) {
          this.#onResumeState(link, payload);
          return;
        }
        const events = this.#mux.receive(payload, this.#now());
        for (const ev of events) this.#onEvent(ev);
        if (this.#ackTimer === undefined && this.#mux.ackDue) this.#armAck();
        this.#kick();
      });
    }
    // Anything else thrown here comes from an authenticated peer's frames.
    link.rxChain = link.rxChain.catch((e) => this.#linkError(link, e, "session"));
    return used;
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
      case "release": {
        this.#onRelease(ev.body);
        return;
      }
      case "rekey": {
        this.#onRekey(ev.body);
        return;
      }
    }
  }

  #onRelease(body: Uint8Array): void {
    if (this.#releaseKey === undefined) return;
    this.#release ??= new ReleaseState(this.#releaseKey, this.#o.role);
    const action = this.#release.consume(body);
    if (action.error !== undefined) {
      this.#o.log.warn(`release message refused: ${action.error}`);
      return;
    }
    if (action.reply !== undefined) {
      this.#mux.sendRelease(action.reply);
      this.#kick();
    }
    if (action.released === true) {
      const mine = this.#releaseDone;
      if (mine !== undefined) {
        this.#released = "released";
        this.#releaseDone = undefined;
        mine();
        return;
      }
      const why = action.reason === undefined
        ? "released by peer"
        : `peer ended the session (notice ${action.reason})`;
      this.#released = why;
      this.#flush(500).then(() => this.#finish({ reason: why, graceful: true }));
    }
  }

  /** REKEY frame payload: link number u32 ‖ lib/session body (a resent stale one is ignored). */
  #wrapRekey(body: Uint8Array): Uint8Array {
    return encodeRekeyPayload(this.#link?.seq ?? 0, body);
  }

  #onRekey(payload: Uint8Array): void {
    const link = this.#link;
    if (link === undefined || !link.alive) return;
    const rk = decodeRekeyPayload(payload);
    if (rk === undefined) return;
    if (rk.linkId !== link.seq) {
      this.#o.log.debug(`ignoring a re-key message from an earlier connection`);
      return;
    }
    const action = this.#rekey.consume(rk.body);
    if (action.mixin === undefined) return;
    if (action.reply !== undefined) {
      // The REPLY must leave under the old key: the writer re-keys the sealer
      // right after sealing the record that carries it.
      this.#mux.sendRekey(this.#wrapRekey(action.reply));
      link.sendMixin = action.mixin.slice();
    } else {
      link.sealer.rekey(action.mixin);
    }
    link.opener.provideMixin(action.mixin);
    action.mixin.fill(0);
    this.stats.rekeys++;
    this.#rekeyAt = this.#now();
    this.#rekeyBytesAt = this.stats.bytesOut + this.stats.bytesIn;
    this.#o.log.debug("re-keyed with fresh X25519");
    this.#kick();
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
    while (!this.#closed && this.#streams.has(ctx.id)) {
      while (this.#mux.queued(ctx.id) >= STREAM_READ_AHEAD) {
        this.#readAhead.add(ctx);
        await new Promise<void>((r) => (ctx.onWritable = r));
        if (this.#closed || !this.#streams.has(ctx.id)) return;
      }
      let credit = this.#mux.credit(ctx.id);
      while (credit <= 0) {
        await new Promise<void>((r) => (ctx.onWritable = r));
        if (this.#closed || !this.#streams.has(ctx.id)) return;
        credit = this.#mux.credit(ctx.id);
      }
      const want = Math.min(size, credit);
      const pulled = sent - this.#mux.queued(ctx.id);
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
        ctx.sockReadDone = true;
        this.#mux.finish(ctx.id);
        this.#kick();
        this.#maybeRelease(ctx);
        return;
      }
      const data = buf.subarray(0, n);
      sent += n;
      if (n === want) size = Math.min(size * 4, STREAM_READ_MAX);
      else if (n < size >> 2) size = STREAM_READ_MIN;
      if (held.length < STREAM_READ_REUSE && buf.length === size) {
        held.push({ ref: new WeakRef(buf), end: sent });
      }
      const took = this.#mux.send(ctx.id, data);
      this.#kick();
      if (took < n && !(await this.#sendAll(ctx, data.subarray(took)))) return;
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
      // The mux promises a writable event only after credit() has said 0.
      if (this.#mux.credit(ctx.id) > 0) continue;
      await new Promise<void>((r) => (ctx.onWritable = r));
      if (this.#closed || !this.#streams.has(ctx.id)) return false;
    }
  }

  /**
   * An ACK is owed: it rides in the next payload we send anyway, or goes on
   * its own after ACK_FLUSH_MS (like TCP's delayed ACK), so a request and
   * its answer do not cost an ACK-only record each way.
   */
  #armAck(): void {
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.#closed || this.#link?.ready !== true) return;
      if (this.#mux.flushAck()) this.#kick();
    }, ACK_FLUSH_MS);
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

  /** Waits (at most `ms`) until queued control messages and records are written. */
  async #flush(ms: number): Promise<void> {
    if (!this.#link?.alive || (this.#mux.queuedMessages === 0 && !this.#writing)) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((r) => this.#idleWaiters.push(r)),
      new Promise<void>((r) => (timer = setTimeout(r, ms))),
    ]);
    clearTimeout(timer);
  }

  /** The writer went idle, or the link or session ended: wake every #flush(). */
  #wakeFlushes(): void {
    const ws = this.#idleWaiters;
    if (ws.length === 0) return;
    this.#idleWaiters = [];
    for (const w of ws) w();
  }

  #writing = false;
  #idleWaiters: (() => void)[] = [];

  async #writeLoop(link: Link): Promise<void> {
    // Seals in call order; `rec` (header, then ciphertext) is set when the seal resolves.
    const inflight: { p: Promise<Uint8Array[]>; rec: Uint8Array[] | undefined }[] = [];
    // Records are joined into this buffer for each write, reused once the write is done.
    let batch = EMPTY_BATCH;
    while (!this.#closed && link.alive) {
      this.#dirty = false;
      const mux = this.#mux;
      while (link.ready && inflight.length < MAX_TX_INFLIGHT) {
        // Data still arriving while earlier records are sealed waits to fill a larger record.
        if (
          inflight.length > 0 && mux.pendingBytes < TX_COALESCE_BYTES && mux.queuedMessages === 0
        ) {
          break;
        }
        // The payload leaves room for pad_len in front, so the sealer need not copy it.
        const payload = mux.pull(undefined, PULL_HEADROOM);
        this.#takeEvents();
        if (payload === null) break;
        const entry = {
          p: link.sealer.sealParts(payload, SEAL_IN_HEADROOM),
          rec: undefined as Uint8Array[] | undefined,
        };
        entry.p.then((r) => (entry.rec = r), () => {});
        inflight.push(entry);
        // Our re-key REPLY is in the record just sealed once no control message waits.
        if (link.sendMixin !== undefined && mux.queuedMessages === 0) {
          link.sealer.rekey(link.sendMixin);
          link.sendMixin.fill(0);
          link.sendMixin = undefined;
        }
      }
      // Streams waiting to read ahead go on once pulls made room (#pumpSock).
      for (const ctx of this.#readAhead) {
        if (mux.queued(ctx.id) >= STREAM_READ_AHEAD) continue;
        this.#readAhead.delete(ctx);
        const w = ctx.onWritable;
        ctx.onWritable = undefined;
        w?.();
      }
      if (inflight.length === 0) {
        this.#writing = false;
        if (mux.queuedMessages === 0) this.#wakeFlushes();
        if (!this.#dirty) {
          batch = EMPTY_BATCH; // an idle link holds no batch buffer
          await new Promise<void>((r) => (this.#wake = r));
        }
        continue;
      }
      this.#writing = true;
      const head = await inflight[0]!.p;
      if (this.#closed || !link.alive) return;
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
        if (this.#closed || !link.alive) return;
        throw e;
      }
      link.lastSend = this.#now();
      this.stats.bytesOut += bytes;
      this.stats.recordsOut += count;
    }
  }

  // ---- links -----------------------------------------------------------------

  #linkError(link: Link, e: unknown, where: string): void {
    if (!link.alive || this.#closed) return;
    const tampered = e instanceof ProtocolError && TAMPER_CODES.has(e.code) && where === "record";
    if (where === "session") {
      // An authenticated peer broke the protocol: the session cannot continue.
      const detail = e instanceof ProtocolError ? `${e.code}: ${e.message}` : describeError(e);
      this.#finish({ reason: `session failed: ${detail}`, graceful: false, error: e });
      return;
    }
    const detail = e instanceof ProtocolError ? `${e.code}: ${e.message}` : describeError(e);
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
    link.sendMixin?.fill(0);
    const s = link.rxSpace;
    link.rxSpace = undefined;
    s?.();
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    const end: LinkEnd = { reason, tampered, ...(error === undefined ? {} : { error }) };
    link.endResolve(end);
    if (this.#closed || this.#link !== link) return;
    this.#link = undefined;
    if (this.#released !== undefined) {
      // The peer closing the link after a completed release is the expected end.
      this.#finish({ reason: this.#released, graceful: true });
      return;
    }
    if (this.#o.resumable !== true) {
      this.#finish({ reason, graceful: false, ...(error === undefined ? {} : { error }) });
      return;
    }
    this.#mux.connectionLost();
    this.#linkDownSince = this.#now();
    this.#o.log.info(
      `link to ${link.label} down: ${reason}${tampered ? " (tampering detected)" : ""}`,
    );
    this.#o.onLinkDown?.(end);
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
    const link = this.#link;
    if (link === undefined || !link.alive) {
      const grace = this.#o.graceMs ?? 300_000;
      if (now - this.#linkDownSince > grace) {
        this.#finish({
          reason: `no connection for ${Math.round(grace / 1000)} s`,
          graceful: false,
        });
      }
      return;
    }
    if (now - link.lastRecv > deadMs) {
      this.#linkFailed(
        link,
        `peer silent for ${((now - link.lastRecv) / 1000).toFixed(1)} s`,
        undefined,
        false,
      );
      return;
    }
    if (!link.ready) return;
    if (now - link.lastSend > keepaliveMs || now - link.lastRecv > keepaliveMs) {
      this.#mux.ping(now);
      this.#kick();
    }
    const rk = this.#o.rekey;
    if (
      rk !== undefined && this.#o.role === "server" && !this.#rekey.pending &&
      (now - this.#rekeyAt >= rk.ms ||
        this.stats.bytesOut + this.stats.bytesIn - this.#rekeyBytesAt >= rk.bytes)
    ) {
      this.rekeyNow();
      this.#rekeyAt = now;
    }
    for (const id of this.#mux.idleStreams(now, idleMs)) {
      const ctx = this.#streams.get(id);
      if (ctx !== undefined) this.#resetStream(ctx, ResetReason.IDLE, "idle timeout");
    }
  }

  #finish(end: SessionEnd): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeFlushes();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    for (const ctx of [...this.#streams.values()]) {
      ctx.onFail?.(new Error(`Tunnel closed: ${end.reason}`));
      this.#dropStream(ctx);
    }
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
      const s = link.rxSpace;
      link.rxSpace = undefined;
      s?.();
    }
    this.#rekey.wipe();
    this.#releaseKey?.fill(0);
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    const r = this.#releaseDone;
    this.#releaseDone = undefined;
    r?.();
    this.#endResolve(end);
  }
}
