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
import type {
  CookieJar,
  HelloMacs,
  HelloSeen,
  JwtVerifier,
  ServerHandshake,
} from "../handshake/mod.ts";
import { Mux } from "../mux/mod.ts";
import { createRecordOpener, createRecordSealer, tunnelPadding } from "../record/mod.ts";
import { deriveReleaseKey, ReleaseReason } from "../session/mod.ts";
import { tuneTcp } from "../transport/mod.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import type { ClientCertificate } from "../transport/mod.ts";
import { describeError, type EventSink, type Logger, type RefusalReason } from "../observe/mod.ts";
import { drive } from "./_drive.ts";
import type { Decoy } from "./decoy.ts";
import { forwardToFallback } from "./fallback.ts";
import { BackendPrefaceFilter, H2_SERVER_PREFACE } from "../handshake/mod.ts";
import {
  type LockoutSettings,
  LoginGuard,
  PerIpLimiter,
  PreLoginTable,
  sourceKey,
} from "./login_guard.ts";
import { EarlyGate } from "./_gate.ts";
import { JwtLifetime } from "./jwt_session.ts";
import { TimedReader } from "./reader.ts";
import { linkIdOf, type LinkParams, Session } from "./session.ts";
import type { SessionTable } from "./session_table.ts";
import type { StreamOwner, StreamPolicy } from "./stream_policy.ts";
import type { UserLimits } from "./user_limits.ts";
import type { FleetTunnels } from "./fleet_tunnels.ts";

/** How long a client may take to deliver its whole first message. */
export const HELLO_DEADLINE_MS = 10_000;
/**
 * The read buffer of a connection before its login (a Hello is at most 1597
 * bytes, a Response 2649): what each idle pre-login connection holds.
 */
export const PRE_LOGIN_READ_BYTES = 4096;
/** A partial first message with no new bytes for this long goes to the fallback. */
const HELLO_IDLE_MS = 2_000;

/**
 * An accepted connection: TLS (node:tls adapter), plain TCP or WebSocket.
 * `refused`: the transport's own check failed (see `TransportConn`); such a
 * connection goes to the fallback without a handshake.
 */
export type ServerConn = ByteStream & {
  readonly remoteAddr: Deno.Addr;
  readonly refused?: string;
  /** TLS with `tls.client_ca`: the client's certificate, as checked by the listener. */
  readonly clientCertificate?: ClientCertificate;
  /** When the transport accepted it, if it checked the connection first (see `TransportConn`). */
  readonly acceptedAt?: number;
  /** What the transport's own check read and holds (a refused connection's first bytes). */
  takeBuffered?(): Uint8Array;
};

/** What the acceptor accepts from. */
export interface ServerListener extends AsyncIterable<ServerConn> {
  readonly addr: Deno.Addr;
  close(): void;
}

/** The handshake's final step: an authenticated connection. */
type Authenticated = Extract<ReturnType<ServerHandshake["push"]>, { type: "done" }>;

/** Options for {@linkcode ConnectionAcceptor}. */
export interface AcceptorOptions {
  /**
   * A fresh handshake for one connection; `log` takes its detail lines,
   * `allowLogin` is its lockout hook (`ServerHandshakeOptions.allowLogin`).
   */
  handshake: (
    log: (msg: string) => void,
    allowLogin: (userId: string) => string | undefined,
    cookie: (hello: HelloMacs) => Uint8Array | undefined,
  ) => ServerHandshake;
  /** The cookies Hellos must carry under load (`limits.cookie_after`; PROTOCOL.md part 2 section 15). */
  cookies?: CookieJar;
  table: SessionTable;
  policy: StreamPolicy;
  /** The users (per-user stream limits). */
  users: UserSource;
  settings: Pick<ServerConfig, "limits" | "session"> & { auth?: ServerConfig["auth"] };
  /**
   * `tls.client_ca` is set: a connection without a client certificate the CA
   * signed is a probe, and a login must be by the user the certificate names.
   */
  clientCertificates?: boolean;
  /**
   * A user's current JWT keys and checks, for in-band renewals of JWT
   * sessions (none: every renewal is refused).
   */
  jwtVerifier?: (user: string) => JwtVerifier | undefined;
  /** Per-user limits (tunnel caps, bandwidth); none when absent (tests). */
  limits?: UserLimits;
  /**
   * A fleet's replay cache: asked for every Hello this server's own replay
   * guard accepted, before the ServerHello goes out; a reason makes the
   * connection a probe (the Hello was seen by another server, or the shared
   * store could not say).
   */
  claimHello?: (hello: HelloSeen) => Promise<string | undefined>;
  /** The failed-login lockout (made here when absent); a fleet shares it with `onFailedLogin`. */
  guard?: LoginGuard;
  /** Told of every failed login the lockout counts (a fleet counts it fleet-wide too). */
  onFailedLogin?: (remote: string, user: string | undefined) => void;
  /** A fleet's tunnel leases (`max_tunnels` over every server). */
  fleetTunnels?: FleetTunnels | undefined;
  /** Where probes go when there is no `decoy`; undefined closes them. */
  fallback: { hostname: string; port: number } | undefined;
  /** The built-in decoy site that takes probes (`fallback.mode: decoy`). */
  decoy?: Decoy;
  /**
   * The transport delivers the client's first write in one read (TLS: one
   * record, which the client's Hello always fits). Then a first read that
   * is not a whole Hello is a probe at once, as a web server would answer
   * it at once. False for plain TCP, which may split a Hello.
   */
  wholeFirstRead?: boolean;
  log: Logger;
  events: EventSink;
}

/** `auth.lockout` of server.yml, or a lockout that never locks when there is none. */
export function lockoutSettings(auth: ServerConfig["auth"] | undefined): LockoutSettings {
  return auth?.lockout ?? { failures: 0, windowS: 1, durationS: 1 };
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
  readonly #guard: LoginGuard;
  readonly #perIp: PerIpLimiter;
  readonly #preLogin: PreLoginTable;
  /** Connections in the handshake now (accepted, not yet logged in, refused or at the fallback). */
  #handshaking = 0;
  #connSeq = 0;

  constructor(options: AcceptorOptions) {
    this.#o = options;
    this.#guard = options.guard ?? new LoginGuard(lockoutSettings(options.settings.auth));
    this.#perIp = new PerIpLimiter(options.settings.limits.perIp);
    this.#preLogin = new PreLoginTable(options.settings.limits.preLogin);
  }

  /** Connections not logged in yet, how many were evicted and refused (`limits.pre_login`). */
  get preLogin(): { open: number; evicted: number; refused: number } {
    return {
      open: this.#preLogin.size,
      evicted: this.#preLogin.evictions,
      refused: this.#preLogin.refusals,
    };
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

  #refuse(
    conn: number,
    remote: string,
    reason: RefusalReason,
    detail: string,
    user?: string,
  ): void {
    this.#o.events.emit({
      type: "refusal",
      remote,
      reason,
      detail,
      conn,
      ...(user === undefined ? {} : { user }),
    });
  }

  /**
   * The login hook for a connection from `remote`: a reason to refuse while
   * the source or user is locked out, or when the TLS client certificate
   * names another user.
   */
  #lockout(remote: string, user: string, cert: ClientCertificate | undefined): string | undefined {
    if (this.#o.clientCertificates && cert?.commonName !== user) {
      return `the TLS client certificate names ${JSON.stringify(cert?.commonName ?? "")}, ` +
        "not this user (tls.client_ca)";
    }
    const lock = this.#guard.check(remote, user);
    if (lock === undefined) return undefined;
    const what = lock.by === "source" ? `source ${remote}` : `user ${JSON.stringify(user)}`;
    return `${what} is locked out until ${new Date(lock.until).toISOString()} (auth.lockout)`;
  }

  /**
   * Section 15: while more than `limits.cookie_after` handshakes are in
   * progress (this one included), a Hello whose mac2 is not made with the
   * cookie of its source gets a cookie reply instead of the handshake.
   */
  #cookieReply(remote: string, hello: HelloMacs): Uint8Array | undefined {
    const jar = this.#o.cookies;
    if (jar === undefined || this.#handshaking <= this.#o.settings.limits.cookieAfter) {
      return undefined;
    }
    const source = sourceKey(remote);
    if (jar.checkMac2(source, hello.repr, hello.maskedLen, hello.mac1, hello.mac2)) {
      return undefined;
    }
    return jar.reply(source, hello.mac1);
  }

  /** Counts a failed login; a lock it starts is a `limit` event (one audit line). */
  #failed(remote: string, user: string | undefined): void {
    this.#o.onFailedLogin?.(remote, user);
    const { failures, windowS } = this.#o.settings.auth!.lockout;
    for (const lock of this.#guard.failed(remote, user)) {
      const what = lock.by === "source" ? `source ${remote}` : `user ${JSON.stringify(user)}`;
      this.#o.events.emit({
        type: "limit",
        limit: "auth.lockout",
        ...(lock.by === "user" && user !== undefined ? { user } : {}),
        detail: `${what} locked out until ${
          new Date(lock.until).toISOString()
        } after ${failures} failed logins in ${windowS} s`,
      });
    }
  }

  async #handle(conn: ServerConn): Promise<void> {
    const no = ++this.#connSeq;
    const clog = this.#o.log.child(`conn ${no}`);
    const remote = (conn.remoteAddr as Deno.NetAddr).hostname;
    this.#open.add(conn);
    tuneTcp(conn);
    // Counted until it logs in; evicted (closed) if it is the oldest when a cap is reached.
    // One refusal per connection: a probe evicted while the fallback answers it was reported
    // as a probe, and the close an eviction causes is not reported again.
    let refused = false;
    const refuse = (reason: RefusalReason, detail: string, user?: string) => {
      if (!refused) this.#refuse(no, remote, reason, detail, user);
      refused = true;
    };
    const preLogin = this.#preLogin.admit(remote, (why) => {
      if (refused) clog.debug(`evicted: ${why}`);
      refuse("evicted", why);
      closeQuietly(conn);
    });
    if (preLogin.refused !== undefined) {
      // The table is full and nothing in it may be evicted: closed before reading a byte.
      refuse("full", preLogin.refused);
      this.#open.delete(conn);
      closeQuietly(conn);
      return;
    }
    let joined = false;
    // A web server's timers run from its accept, before the transport's own check (the upgrade).
    const startedAt = conn.acceptedAt ?? Date.now();
    const reader = new TimedReader(conn, PRE_LOGIN_READ_BYTES);
    const alpn = (conn as { alpnProtocol?: string | null }).alpnProtocol ?? null;
    // TLS chose h2: a web server speaks first, with its SETTINGS; so does this one, before it
    // knows what the peer is (docs/PROTOCOL.md part 2 section 6.2.2). A client drops them.
    const prefaceSent = alpn === "h2";
    if (prefaceSent) {
      try {
        await writeAll(conn, H2_SERVER_PREFACE);
      } catch (e) {
        refuse("closed", `closed before the handshake: ${describeError(e)}`);
        preLogin.done();
        this.#open.delete(conn);
        closeQuietly(conn);
        return;
      }
    }
    // A probe goes to the decoy (on this connection) or the upstream web server, which
    // over h2 must not send a second preface.
    const toFallback = (received: Uint8Array) => {
      if (this.#o.decoy !== undefined) {
        return this.#o.decoy.serve(conn, reader, received, {
          startedAt,
          alpn,
          prefaceSent,
          log: clog,
        });
      }
      const filter = prefaceSent ? new BackendPrefaceFilter() : undefined;
      return forwardToFallback(
        conn,
        reader,
        received,
        this.#o.fallback,
        clog,
        undefined,
        filter === undefined ? undefined : (chunk) => filter.push(chunk),
      );
    };
    const over = this.#perIp.admit(remote);
    const noCert = this.#o.clientCertificates && conn.clientCertificate?.authorized !== true;
    if (over !== undefined || noCert) {
      // Over limits.per_ip, or no client certificate: no handshake at all, as a probe.
      try {
        if (over !== undefined) refuse("rate_limited", over);
        else refuse("probe", "no TLS client certificate signed by tls.client_ca");
        await toFallback(conn.takeBuffered?.() ?? new Uint8Array(0));
      } catch (e) {
        clog.debug(`fallback for a connection refused before the handshake: ${describeError(e)}`);
      } finally {
        if (over === undefined) this.#perIp.release(remote);
        preLogin.done();
        this.#open.delete(conn);
        closeQuietly(conn);
      }
      return;
    }
    try {
      if (conn.refused !== undefined) {
        // The transport's own check failed (no WebSocket upgrade at the path, no PROXY header).
        refuse("probe", conn.refused);
        await toFallback(conn.takeBuffered?.() ?? new Uint8Array(0));
        return;
      }
      const hs = this.#o.handshake(
        (m) => clog.info(m),
        (user) => this.#lockout(remote, user, conn.clientCertificate),
        (hello) => this.#cookieReply(remote, hello),
      );
      // The gate decides as early as the bytes allow (_gate.ts).
      const gate = new EarlyGate(hs, this.#o.wholeFirstRead === true);
      const decoyHeaderMs = this.#o.decoy?.headerTimeoutMs;
      const handshakeMs = this.#o.settings.limits.handshakeTimeoutS * 1000;
      this.#handshaking++;
      const r = await drive(conn, reader, (c) => gate.push(c), {
        deadlineMs: Math.min(HELLO_DEADLINE_MS, decoyHeaderMs ?? Infinity, handshakeMs),
        idleMs: HELLO_IDLE_MS,
        afterSend: { deadlineMs: handshakeMs },
        beforeSend: async (step) => {
          const claim = this.#o.claimHello;
          if (step.type !== "send" || step.hello === undefined || claim === undefined) return;
          const why = await claim(step.hello);
          return why === undefined ? undefined : { type: "probe" as const, reason: why };
        },
      }).finally(() => this.#handshaking--);
      if ("stop" in r) {
        if (r.stop === "error") throw r.error;
        if (!r.sent) {
          // Before the probe gate passed, nothing says this is a client.
          const how = r.stop === "closed" ? "closed" : "stalled";
          refuse("probe", `${how} before a complete first message`);
          await toFallback(gate.received());
        } else if (r.stop === "closed") {
          refuse("closed", "closed during the handshake");
        } else {
          refuse(
            "timeout",
            `the handshake did not finish within ${this.#o.settings.limits.handshakeTimeoutS} s ` +
              "(limits.handshake_timeout)",
          );
        }
        return;
      }
      const step = r.step;
      if (step.type === "cookie") {
        // Under load: the cookie reply, then close; the client comes back with the cookie.
        refuse("cookie", `${this.#handshaking + 1} handshakes in progress (limits.cookie_after)`);
        await writeAll(conn, step.bytes);
        return;
      }
      if (step.type === "probe") {
        refuse("probe", step.reason);
        await toFallback(gate.received());
        return;
      }
      if (step.type === "reject") {
        if (step.failed !== undefined && this.#o.settings.auth !== undefined) {
          this.#failed(remote, step.failed === "user" ? step.user : undefined);
        }
        refuse("auth_failed", step.reason, step.user);
        return;
      }
      if (!step.resumed) this.#guard.succeeded(step.userId);
      joined = true;
      preLogin.done();
      const end = await this.#join(conn, step, no, remote, clog);
      clog.info(`connection ended: ${end}`);
    } catch (e) {
      if (joined) clog.warn(`connection error: ${describeError(e)}`);
      else refuse("error", describeError(e));
    } finally {
      preLogin.done();
      this.#perIp.release(remote);
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
    const sealer = await createRecordSealer(
      secrets.aead,
      secrets.serverToClient,
      { padding: tunnelPadding(secrets.recordPadding, "server") },
    );
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
      const ended = live.session.attachLink(link);
      this.#o.fleetTunnels?.resumed(live.no);
      return (await ended).reason;
    }
    // A resumption of a session this server does not hold starts it afresh.
    if (step.resumed) link.stateLost = true;
    const replaced: number[] = [];
    const no = table.nextNo();
    const over = this.#o.limits?.admitTunnel(step.userId, (n) => replaced.push(n)) ??
      await this.#o.fleetTunnels?.admit(step.userId, no, secrets.sessionId, replaced);
    events.emit({ ...login, session: no });
    const { session, expiry } = this.#newSession(step, no, releaseKey, clog.child(step.userId));
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
      expiry?.cancel();
      table.remove(secrets.sessionId, session);
      this.#o.fleetTunnels?.ended(no);
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

  /**
   * The session of a new login; for a JWT login also its end at the
   * token's expiry, moved by in-band renewals (jwt_session.ts).
   */
  #newSession(
    step: Authenticated,
    no: number,
    releaseKey: Uint8Array,
    log: Logger,
  ): { session: Session; expiry: JwtLifetime | undefined } {
    const { limits, session: s } = this.#o.settings;
    const secrets = step.secrets;
    const jwt = step.jwt;
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
      coverMs: s.coverTrafficS * 1000,
      deadAfterMs: s.deadAfterS * 1000,
      tunnelIdleMs: limits.idleTimeoutS * 1000,
      ...(meter === undefined ? {} : { meter }),
      rekey: { bytes: s.rekeyBytes, ms: s.rekeyIntervalS * 1000 },
      onOpen: (sid, request) => {
        this.#o.policy.open(owner, sid, request).catch((e) =>
          log.warn(`stream ${sid}: ${describeError(e)}`)
        );
      },
      ...(jwt === undefined ? {} : { onRenew: (payload) => expiry?.renew(payload) }),
    });
    // A JWT login lasts as long as its token (or the last one renewed in-band).
    const expiry = jwt === undefined ? undefined : new JwtLifetime({
      session: no,
      user: step.userId,
      claims: jwt,
      verifier: () => this.#o.jwtVerifier?.(step.userId),
      end: () =>
        void session.notifyAndClose("the login's JWT expired", ReleaseReason.REVOKED)
          .catch(() => {}),
      events: this.#o.events,
    });
    // Frozen, so its compiled rules are cached (routeSet, lib/config/routes.ts).
    const routes = jwt?.routes === undefined ? undefined : Object.freeze([...jwt.routes]);
    const owner: StreamOwner = {
      session,
      no,
      user: step.userId,
      ...(routes === undefined ? {} : { routes }),
    };
    return { session, expiry };
  }
}
