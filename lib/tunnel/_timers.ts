/**
 * A session's timers, one named handler each, on an injected
 * {@linkcode Scheduler}:
 *
 * | handler         | when                                          | then (the session does it)        |
 * | --------------- | --------------------------------------------- | --------------------------------- |
 * | resume grace    | no link for `graceMs`                         | the session ends                  |
 * | dead link       | nothing received for `deadAfterMs`            | the link is dropped               |
 * | keepalive       | nothing sent or received for a drawn time     | a PING                            |
 * | cover traffic   | nothing sent for a drawn time (`coverMs` > 0) | a PADDING frame of drawn size     |
 * | re-key due      | every tick on a ready link                    | the controller may start a re-key |
 * | tunnel idle     | no stream open for `tunnelIdleMs` (ready link) | the session says so and ends      |
 * | bytes           | at most once a second                         | a `bytes` event if any moved      |
 * | delayed ACK     | `ACK_FLUSH_MS` after an ACK became due        | the ACK leaves on its own         |
 * | open timeout    | no REPLY to an OPEN in time (at a tick)       | the stream is reset               |
 * | release timeout | no answer to our release request in time      | a NOTICE, then close              |
 * | flush timeout   | queued messages not written in time           | close anyway                      |
 *
 * The keepalive waits a time drawn uniformly in [keepaliveMs/2, keepaliveMs]
 * anew after each PING, and cover traffic an exponential time of mean
 * `coverMs` (`_shaping.ts`), so neither comes at a fixed period.
 *
 * The periodic checks share one tick (a quarter of the shortest period, at
 * most 250 ms, at least 20 ms). Open timeouts are checked at that tick too
 * (so one fires up to a tick late), which saves a timer set and cleared per
 * stream opened; release and flush timeouts and the delayed ACK are
 * one-shot timers.
 *
 * @module
 */
import type { Scheduler, TimerId } from "./scheduler.ts";
import type { LinkState } from "./_link_state.ts";
import { coverBytes, coverGap, keepaliveAfter, uniform } from "./_shaping.ts";

/** How often pending acknowledgements are flushed (ms). */
export const ACK_FLUSH_MS = 25;
/** At most one `bytes` event per this many ms. */
export const BYTES_REPORT_MS = 1000;

/** The periods, in ms. */
export interface TimerSettings {
  keepaliveMs: number;
  deadAfterMs: number;
  /**
   * A session with no stream open for this long ends (the server's
   * `limits.idle_timeout`); Infinity: never. Open streams are never cut
   * for being idle: their liveness is the link's (keepalive, dead_after).
   */
  tunnelIdleMs: number;
  graceMs: number;
  /**
   * Cover traffic: a link that sent nothing for an exponential time of this
   * mean (ms) sends a PADDING frame; 0 or absent: none.
   */
  coverMs?: number;
  /** Uniform draws in [0, 1) for the keepalive and cover timing; default the CSPRNG. */
  random?: () => number;
}

/** An OPEN waiting for its REPLY: `fn` runs at the first tick at or after `at`. */
export interface OpenDeadline {
  /** When the OPEN times out (the scheduler's clock, ms). */
  readonly at: number;
  /** Resets the stream and tells whoever opened it. */
  readonly fn: () => void;
}

/** What the timers do to their session (`L`: the session's own link type). */
export interface TimerHost<L extends LinkState = LinkState> {
  /** The session has ended. */
  readonly closed: boolean;
  /** The link carrying the session, if one is up. */
  readonly link: L | undefined;
  /** When the session last lost its link (or started). */
  readonly linkDownSince: number;
  /** Resume grace: end the session. */
  graceExpired(reason: string): void;
  /** Dead link: drop it. */
  linkDead(link: L, reason: string): void;
  /** Keepalive: queue a PING. */
  ping(now: number): void;
  /** Cover traffic: queue a PADDING frame with a body of `bytes` bytes. */
  cover(bytes: number): void;
  /** Re-key due: start one if the controller says so. */
  rekeyCheck(now: number): void;
  /** Streams open now. */
  readonly openStreams: number;
  /** When the last stream was opened (either side). */
  readonly lastStreamOpened: number;
  /** Tunnel idle: no stream for `idleMs`; end the session. */
  tunnelIdle(idleMs: number): void;
  /** Bytes: report the tunnel bytes since the last report; false when none moved. */
  reportBytes(): boolean;
  /** Delayed ACK: send a pending ACK on its own. */
  flushAck(): void;
}

/**
 * One session's timers.
 *
 * @example
 * ```ts ignore
 * const timers = new SessionTimers(host, realScheduler, settings);
 * timers.start();
 * const open = timers.openTimeout(10_000, () => resetStream());
 * timers.cancelOpen(open);
 * timers.stop();
 * ```
 */
export class SessionTimers<L extends LinkState = LinkState> {
  readonly #host: TimerHost<L>;
  readonly #scheduler: Scheduler;
  readonly #s: TimerSettings;
  readonly #period: number;
  readonly #random: () => number;
  /** Quiet time before the next PING (drawn). */
  #keepaliveAfter: number;
  /** Quiet time before the next cover frame (drawn); Infinity: no cover traffic. */
  #coverAfter: number;
  #tickTimer: TimerId | undefined;
  #ackTimer: TimerId | undefined;
  #bytesAt = -Infinity;
  /** The last tick that saw a stream open (or the start). */
  #busyAt: number;
  #idleFired = false;
  #stopped = false;
  /** OPENs waiting for their REPLY. */
  readonly #opens = new Set<OpenDeadline>();

  constructor(host: TimerHost<L>, scheduler: Scheduler, settings: TimerSettings) {
    this.#host = host;
    this.#scheduler = scheduler;
    this.#s = settings;
    const { keepaliveMs, deadAfterMs, tunnelIdleMs } = settings;
    const coverMs = settings.coverMs ?? 0;
    this.#period = Math.max(
      20,
      Math.min(keepaliveMs, deadAfterMs, tunnelIdleMs, coverMs > 0 ? coverMs : Infinity, 1000) / 4,
    );
    this.#busyAt = scheduler.now();
    this.#random = settings.random ?? uniform;
    this.#keepaliveAfter = keepaliveAfter(keepaliveMs, this.#random());
    this.#coverAfter = coverMs > 0 ? coverGap(coverMs, this.#random()) : Infinity;
  }

  /** True once the periodic checks run. */
  get started(): boolean {
    return this.#tickTimer !== undefined;
  }

  /** Starts the periodic checks. */
  start(): void {
    if (this.#tickTimer !== undefined || this.#stopped) return;
    this.#tickTimer = this.#scheduler.setTimeout(this.#tick, this.#period);
  }

  /** Stops the periodic checks and the delayed ACK (the session ended). */
  stop(): void {
    this.#stopped = true;
    this.#scheduler.clearTimeout(this.#tickTimer);
    this.#scheduler.clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  /**
   * Open timeout: `fn` runs at the first tick `ms` or more from now unless
   * `cancelOpen` is called first. No timer of its own.
   */
  openTimeout(ms: number, fn: () => void): OpenDeadline {
    const d: OpenDeadline = { at: this.#scheduler.now() + ms, fn };
    this.#opens.add(d);
    return d;
  }

  /** The OPEN was answered (or failed): its timeout will not run. */
  cancelOpen(d: OpenDeadline): void {
    this.#opens.delete(d);
  }

  /** Release timeout: `fn` runs unless cancelled within `ms`. */
  releaseTimeout(ms: number, fn: () => void): TimerId {
    return this.#scheduler.setTimeout(fn, ms);
  }

  /** Flush timeout: `fn` runs unless cancelled within `ms`. */
  flushTimeout(ms: number, fn: () => void): TimerId {
    return this.#scheduler.setTimeout(fn, ms);
  }

  /** Cancels a one-shot timer. */
  cancel(id: TimerId | undefined): void {
    this.#scheduler.clearTimeout(id);
  }

  /**
   * An ACK is owed: it rides in the next payload we send anyway, or goes on
   * its own after ACK_FLUSH_MS (like TCP's delayed ACK), so a request and
   * its answer do not cost an ACK-only record each way.
   */
  ackDue(): void {
    if (this.#ackTimer !== undefined || this.#stopped) return;
    this.#ackTimer = this.#scheduler.setTimeout(this.#delayedAck, ACK_FLUSH_MS);
  }

  /** Delayed ACK. */
  readonly #delayedAck = (): void => {
    this.#ackTimer = undefined;
    if (this.#host.closed) return;
    this.#host.flushAck();
  };

  /** The periodic checks, in order; each may end the tick. */
  readonly #tick = (): void => {
    if (this.#stopped) return;
    this.#tickTimer = this.#scheduler.setTimeout(this.#tick, this.#period);
    const host = this.#host;
    if (host.closed) return;
    const now = this.#scheduler.now();
    this.#openTimeouts(now);
    if (host.closed) return;
    this.#bytes(now);
    const link = host.link;
    if (link === undefined || !link.alive) {
      this.#resumeGrace(now);
      return;
    }
    if (this.#deadLink(link, now)) return;
    if (!link.ready) return;
    this.#keepalive(link, now);
    this.#cover(link, now);
    this.#rekeyDue(now);
    this.#tunnelIdle(now);
  };

  /** Open timeouts: OPENs past their deadline without a REPLY. */
  #openTimeouts(now: number): void {
    if (this.#opens.size === 0) return;
    for (const d of this.#opens) {
      if (d.at > now) continue;
      this.#opens.delete(d);
      d.fn();
    }
  }

  /** Bytes: at most one report a second, and only when bytes moved. */
  #bytes(now: number): void {
    if (now - this.#bytesAt < BYTES_REPORT_MS) return;
    if (this.#host.reportBytes()) this.#bytesAt = now;
  }

  /** Resume grace: a session without a link for `graceMs` ends. */
  #resumeGrace(now: number): void {
    const grace = this.#s.graceMs;
    if (now - this.#host.linkDownSince > grace) {
      this.#host.graceExpired(`no connection for ${Math.round(grace / 1000)} s`);
    }
  }

  /** Dead link: one silent for `deadAfterMs` is dropped. */
  #deadLink(link: L, now: number): boolean {
    if (now - link.lastRecv <= this.#s.deadAfterMs) return false;
    this.#host.linkDead(link, `peer silent for ${((now - link.lastRecv) / 1000).toFixed(1)} s`);
    return true;
  }

  /** Keepalive: a PING when nothing was sent or received for the drawn time; then a new draw. */
  #keepalive(link: L, now: number): void {
    const ka = this.#keepaliveAfter;
    if (now - link.lastSend <= ka && now - link.lastRecv <= ka) return;
    this.#host.ping(now);
    this.#keepaliveAfter = keepaliveAfter(this.#s.keepaliveMs, this.#random());
  }

  /** Cover traffic: a PADDING frame when nothing was sent for the drawn time; then a new draw. */
  #cover(link: L, now: number): void {
    if (now - link.lastSend <= this.#coverAfter) return;
    this.#host.cover(coverBytes(this.#random()));
    this.#coverAfter = coverGap(this.#s.coverMs!, this.#random());
  }

  /** Re-key due: the controller decides (server, by bytes or time). */
  #rekeyDue(now: number): void {
    this.#host.rekeyCheck(now);
  }

  /**
   * Tunnel idle: a session whose last stream closed `tunnelIdleMs` ago (and
   * none opened since) ends, once. Data moves only on streams, so no stream
   * also means no traffic but keepalives.
   */
  #tunnelIdle(now: number): void {
    const host = this.#host;
    if (host.openStreams > 0) {
      this.#busyAt = now;
      return;
    }
    const since = Math.max(this.#busyAt, host.lastStreamOpened);
    if (this.#idleFired || now - since < this.#s.tunnelIdleMs) return;
    this.#idleFired = true;
    host.tunnelIdle(this.#s.tunnelIdleMs);
  }
}
