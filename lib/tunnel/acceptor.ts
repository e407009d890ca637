/**
 * The server's connection acceptor: the accept loop, and for each
 * connection the probe gate and handshake (through the shared driver,
 * `_drive.ts`), the hand-off of anything that is not a client to the
 * fallback web server, and the join of an authenticated connection to a new
 * session or to the live session it resumes.
 *
 * @module
 */
import type { ServerConfig, UserSource } from "../config/mod.ts";
import type { ServerHandshake } from "../handshake/mod.ts";
import { Mux } from "../mux/mod.ts";
import { createRecordOpener, createRecordSealer } from "../record/mod.ts";
import { deriveReleaseKey, ReleaseReason } from "../session/mod.ts";
import { tuneTcp } from "../transport/mod.ts";
import type { ByteStream } from "../transport/types.ts";
import { describeError, type EventSink, type Logger, type RefusalReason } from "../observe/mod.ts";
import { drive } from "./_drive.ts";
import { forwardToFallback } from "./fallback.ts";
import { TimedReader } from "./reader.ts";
import { linkIdOf, type LinkParams, Session } from "./session.ts";
import type { SessionTable } from "./session_table.ts";
import type { StreamOwner, StreamPolicy } from "./stream_policy.ts";
import type { UserLimits } from "./user_limits.ts";

/** How long a client may take to deliver its whole first message. */
const HELLO_DEADLINE_MS = 10_000;
/** A partial first message with no new bytes for this long goes to the fallback. */
const HELLO_IDLE_MS = 2_000;
/** The rest of the handshake must finish within this (counted from the start). */
const HANDSHAKE_DEADLINE_MS = 15_000;

/** An accepted connection: TLS (node:tls adapter) or plain TCP. */
export type ServerConn = ByteStream & { readonly remoteAddr: Deno.Addr };

/** What the acceptor accepts from. */
export interface ServerListener extends AsyncIterable<ServerConn> {
  readonly addr: Deno.Addr;
  close(): void;
}

/** The handshake's final step: an authenticated connection. */
type Authenticated = Extract<ReturnType<ServerHandshake["push"]>, { type: "done" }>;

/** Options for {@linkcode ConnectionAcceptor}. */
export interface AcceptorOptions {
  /** A fresh handshake for one connection; `log` takes its detail lines. */
  handshake: (log: (msg: string) => void) => ServerHandshake;
  table: SessionTable;
  policy: StreamPolicy;
  /** The users (per-user stream limits). */
  users: UserSource;
  settings: Pick<ServerConfig, "limits" | "session">;
  /** Per-user limits (tunnel caps, bandwidth); none when absent (tests). */
  limits?: UserLimits;
  /** Where probes go; undefined closes them. */
  fallback: { hostname: string; port: number } | undefined;
  log: Logger;
  events: EventSink;
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

/**
 * Accepts connections from a listener and serves each one.
 *
 * @example
 * ```ts ignore
 * const acceptor = new ConnectionAcceptor(options);
 * const done = acceptor.serve(listener);
 * listener.close();
 * acceptor.closeConnections();
 * await done;
 * ```
 */
export class ConnectionAcceptor {
  readonly #o: AcceptorOptions;
  readonly #open = new Set<ByteStream>();
  #connSeq = 0;

  constructor(options: AcceptorOptions) {
    this.#o = options;
  }

  /** Serves every connection `listener` accepts; resolves when the listener closes. */
  async serve(listener: ServerListener): Promise<void> {
    try {
      for await (const conn of listener) {
        this.#handle(conn).catch((e) => this.#o.log.error(`unexpected: ${describeError(e)}`));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.BadResource)) {
        this.#o.log.error(`accept failed: ${describeError(e)}`);
      }
    }
  }

  /** Closes every connection still open (handshakes, fallbacks, links). */
  closeConnections(): void {
    for (const c of this.#open) closeQuietly(c);
  }

  #refuse(conn: number, remote: string, reason: RefusalReason, detail: string): void {
    this.#o.events.emit({ type: "refusal", remote, reason, detail, conn });
  }

  async #handle(conn: ServerConn): Promise<void> {
    const no = ++this.#connSeq;
    const clog = this.#o.log.child(`conn ${no}`);
    const remote = (conn.remoteAddr as Deno.NetAddr).hostname;
    this.#open.add(conn);
    tuneTcp(conn);
    let joined = false;
    try {
      const reader = new TimedReader(conn);
      const hs = this.#o.handshake((m) => clog.info(m));
      const r = await drive(conn, reader, (c) => hs.push(c), {
        deadlineMs: HELLO_DEADLINE_MS,
        idleMs: HELLO_IDLE_MS,
        afterSend: { deadlineMs: HANDSHAKE_DEADLINE_MS },
      });
      if ("stop" in r) {
        if (r.stop === "error") throw r.error;
        if (!r.sent) {
          // Before the probe gate passed, nothing says this is a client.
          const how = r.stop === "closed" ? "closed" : "stalled";
          this.#refuse(no, remote, "probe", `${how} before a complete first message`);
          await forwardToFallback(conn, reader, hs.received(), this.#o.fallback, clog);
        } else if (r.stop === "closed") {
          this.#refuse(no, remote, "closed", "closed during the handshake");
        } else {
          this.#refuse(no, remote, "timeout", "the handshake did not finish in time");
        }
        return;
      }
      const step = r.step;
      if (step.type === "probe") {
        this.#refuse(no, remote, "probe", step.reason);
        await forwardToFallback(conn, reader, hs.received(), this.#o.fallback, clog);
        return;
      }
      if (step.type === "reject") {
        this.#refuse(no, remote, "auth_failed", step.reason);
        return;
      }
      joined = true;
      const end = await this.#join(conn, step, no, remote, clog);
      clog.info(`connection ended: ${end}`);
    } catch (e) {
      if (joined) clog.warn(`connection error: ${describeError(e)}`);
      else this.#refuse(no, remote, "error", describeError(e));
    } finally {
      this.#open.delete(conn);
      closeQuietly(conn);
    }
  }

  /**
   * Runs an authenticated connection as the link of a new session, or of the
   * live session it resumes. Resolves with why the link ended.
   */
  async #join(
    conn: ServerConn,
    step: Authenticated,
    connNo: number,
    remote: string,
    clog: Logger,
  ): Promise<string> {
    const { table, events } = this.#o;
    const secrets = step.secrets;
    const sealer = await createRecordSealer(secrets.aead, secrets.serverToClient);
    const opener = await createRecordOpener(secrets.aead, secrets.clientToServer);
    const releaseKey = deriveReleaseKey(secrets.resumptionSecret, secrets.sessionId);
    const link: LinkParams = {
      conn,
      sealer,
      opener,
      initial: step.rest,
      resumed: step.resumed,
      label: remote,
      linkId: linkIdOf(secrets.transcriptHash),
    };
    const login = {
      type: "login",
      user: step.userId,
      remote,
      kex: secrets.kex,
      aead: secrets.aead,
      resumed: step.resumed,
      conn: connNo,
    } as const;
    const live = step.resumed ? table.get(secrets.sessionId) : undefined;
    if (live !== undefined) {
      live.resumptionSecret = secrets.resumptionSecret;
      live.session.setReleaseKey(releaseKey);
      releaseKey.fill(0);
      events.emit({ ...login, session: live.no });
      events.emit({
        type: "resume",
        session: live.no,
        user: step.userId,
        via: remote,
        conn: connNo,
      });
      return (await live.session.attachLink(link)).reason;
    }
    // A resumption of a session this server does not hold starts it afresh.
    if (step.resumed) link.stateLost = true;
    const over = this.#o.limits?.admitTunnel(step.userId);
    const no = table.nextNo();
    events.emit({ ...login, session: no });
    const session = this.#newSession(step, no, releaseKey, clog.child(step.userId));
    releaseKey.fill(0);
    table.add(secrets.sessionId, {
      session,
      no,
      userId: step.userId,
      resumptionSecret: secrets.resumptionSecret,
    });
    events.emit({
      type: "session_start",
      session: no,
      user: step.userId,
      peer: remote,
      ...(step.resumed ? { restarted: true } : {}),
    });
    session.run().then((end) => {
      table.remove(secrets.sessionId, session);
      events.emit({
        type: "session_end",
        session: no,
        user: step.userId,
        reason: end.reason,
        graceful: end.graceful,
        bytesIn: session.stats.bytesIn,
        bytesOut: session.stats.bytesOut,
      });
    });
    const ended = session.attachLink(link);
    if (over !== undefined) {
      // Over a tunnel limit: the login was good, so say why (NOTICE LIMIT) and end it.
      events.emit({
        type: "limit",
        limit: over.limit,
        user: step.userId,
        session: no,
        detail: over.detail,
      });
      void session.notifyAndClose(over.detail, ReleaseReason.LIMIT, { lingerMs: 1_000 });
    }
    return (await ended).reason;
  }

  #newSession(step: Authenticated, no: number, releaseKey: Uint8Array, log: Logger): Session {
    const { limits, session: s } = this.#o.settings;
    const secrets = step.secrets;
    const user = this.#o.users.get(step.userId);
    const meter = this.#o.limits?.meter(step.userId);
    const makeMux = () =>
      new Mux({
        role: "server",
        // With UserLimits, the user's max_streams is counted over all their
        // tunnels (and follows reloads); the mux holds the per-tunnel cap.
        maxStreams: this.#o.limits === undefined
          ? Math.min(user?.maxStreams ?? Infinity, limits.maxStreamsPerTunnel)
          : limits.maxStreamsPerTunnel,
        streamWindow: limits.streamWindow,
        sessionWindow: limits.sessionWindow,
        resume: secrets.resumable,
        resendBufferBytes: s.resendBuffer,
      });
    const session: Session = new Session({
      role: "server",
      mux: makeMux(),
      createMux: makeMux,
      log,
      events: this.#o.events,
      sessionNo: no,
      user: step.userId,
      resumable: secrets.resumable,
      releaseKey,
      graceMs: s.resumeGraceS * 1000,
      keepaliveMs: s.keepaliveS * 1000,
      deadAfterMs: s.deadAfterS * 1000,
      streamIdleMs: limits.idleTimeoutS * 1000,
      ...(meter === undefined ? {} : { meter }),
      rekey: { bytes: s.rekeyBytes, ms: s.rekeyIntervalS * 1000 },
      onOpen: (sid, request) => {
        this.#o.policy.open(owner, sid, request).catch((e) =>
          log.warn(`stream ${sid}: ${describeError(e)}`)
        );
      },
    });
    const owner: StreamOwner = { session, no, user: step.userId };
    return session;
  }
}
