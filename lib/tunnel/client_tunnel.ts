/**
 * The client's session manager, without any listener: it opens the session
 * on demand over the healthiest endpoint ({@linkcode PathSelector}), keeps
 * it alive across broken links ({@linkcode Reconnector}), moves it to a
 * fresh connection now and then (`session.rotate`), and releases it on
 * close. Local front ends (`client.ts`) and the library API build on it.
 *
 * @module
 */
import type { ClientConfig, Endpoint } from "../config/mod.ts";
import { Mux } from "../mux/mod.ts";
import { deriveReleaseKey, ReleaseReason } from "../session/mod.ts";
import { describeError, EventHub, logEvents, type Logger } from "../observe/mod.ts";
import { connectLink, HANDSHAKE_DEADLINE_MS, TunnelError } from "./link.ts";
import { PathSelector, where } from "./path_selector.ts";
import { RECONNECT_GIVE_UP_MS, Reconnector, sleep } from "./reconnector.ts";
import { FailureLog } from "./failure_log.ts";
import { JwtRenewer } from "./jwt_session.ts";
import { type LinkEnd, Session } from "./session.ts";
import { rotationLifetime, uniform } from "./_shaping.ts";

/**
 * After the server said it is shutting down (NOTICE 2): the first wait
 * before dialing it again and the cap of the doubling waits (ms). Requests
 * meanwhile wait for that reconnection (up to `limits.connect_timeout`)
 * instead of each dialing a server that is not there.
 */
export const SERVER_STOPPED_BACKOFF = { firstMs: 1_000, maxMs: 30_000 } as const;

/** Options for {@linkcode ClientTunnel}. */
export interface ClientTunnelOptions {
  /** The parsed profile. */
  profile: ClientConfig;
  log: Logger;
  /** Where the tunnel reports events; created when absent. Its events are logged to `log`. */
  events?: EventHub;
  /** Dial this instead of the profile's address (TLS name and key stay). */
  server?: { host: string; port: number };
  /** Trust this CA PEM for TLS instead of the profile's. */
  caPem?: string;
  /** Waits after a shutdown notice (ms); default {@linkcode SERVER_STOPPED_BACKOFF}. */
  serverStoppedBackoff?: { firstMs: number; maxMs: number };
}

/**
 * One client session to the server, opened (and re-opened) as needed.
 *
 * @example
 * ```ts ignore
 * const tunnel = new ClientTunnel({ profile: await loadClientConfig("alice.yml"), log });
 * const session = await tunnel.session();
 * const { id, reply } = await session.open(encodeRequest(request), 30_000);
 * await tunnel.close();
 * ```
 */
export class ClientTunnel {
  /** Sessions, resumptions, path changes, lost links, failed connects. */
  readonly events: EventHub;
  readonly #profile: ClientConfig;
  readonly #log: Logger;
  readonly #paths: PathSelector;
  readonly #reconnector: Reconnector;
  readonly #stop = new AbortController();
  readonly #stopLogging: () => void;
  #current: Session | undefined;
  #sessionSeq = 0;
  #connecting: Promise<Session> | undefined;
  #closed = false;
  #resumptions = 0;
  #rotateTimer: ReturnType<typeof setTimeout> | undefined;
  /** The session the server ended with a shutdown notice, if it did. */
  #stoppedSession = 0;
  /** Reconnecting in the background after a shutdown notice. */
  #waiting: Promise<Session> | undefined;
  readonly #stoppedBackoff: { firstMs: number; maxMs: number };
  readonly #stopWatching: () => void;

  constructor(options: ClientTunnelOptions) {
    const { profile, log } = options;
    this.#profile = profile;
    this.#log = log;
    this.events = options.events ?? new EventHub();
    this.#stopLogging = logEvents(this.events, log, "client");
    this.#stoppedBackoff = options.serverStoppedBackoff ?? SERVER_STOPPED_BACKOFF;
    this.#stopWatching = this.events.subscribe((e) => {
      if (e.type === "release" && e.by === "peer" && e.notice === ReleaseReason.SHUTDOWN) {
        this.#stoppedSession = e.session;
      }
    });
    const caPem = options.caPem ?? profile.caPem;
    const first: Endpoint = {
      server: options.server ?? profile.server,
      serverName: profile.serverName,
      transport: profile.transport,
      ...(profile.path === undefined ? {} : { path: profile.path }),
      ...(caPem === undefined ? {} : { caPem }),
    };
    this.#paths = new PathSelector([first, ...profile.endpoints], { events: this.events });
    this.#reconnector = new Reconnector({
      paths: this.#paths,
      connect: (endpoint, resume) => connectLink(profile, endpoint, resume),
      log,
      events: this.events,
      signal: this.#stop.signal,
    });
  }

  /** How many times a broken connection was resumed. */
  get resumptions(): number {
    return this.#resumptions;
  }

  /** The current session, opened (or re-opened) as needed. */
  session(): Promise<Session> {
    if (this.#closed) return Promise.reject(new TunnelError("Client is shutting down"));
    if (this.#current !== undefined && !this.#current.isClosed) {
      return Promise.resolve(this.#current);
    }
    if (this.#waiting !== undefined) return this.#awaitServer(this.#waiting);
    this.#connecting ??= this.#open().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  /** Drops the current connection on purpose (tests, rotation): the session resumes. */
  dropConnection(reason = "dropped on request"): void {
    this.#current?.dropLink(reason);
  }

  /** Releases the session (three-step release) and stops reconnecting. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    this.#stopWatching();
    if (this.#rotateTimer !== undefined) clearTimeout(this.#rotateTimer);
    const s = this.#current;
    this.#current = undefined;
    if (s !== undefined) await s.release(3_000);
    this.#stopLogging();
  }

  async #open(): Promise<Session> {
    const profile = this.#profile;
    const { value: link, path } = await this.#paths.connect((e) => connectLink(profile, e));
    const secrets = link.secrets;
    if (this.#closed) {
      link.link.conn.close();
      throw new TunnelError("Client is shutting down");
    }
    const no = ++this.#sessionSeq;
    this.#reconnector.start(secrets, no);
    this.#paths.use(path, no, "new session");
    const createMux = () =>
      new Mux({
        role: "client",
        maxStreams: profile.limits.maxStreams,
        streamWindow: profile.limits.streamWindow,
        sessionWindow: profile.limits.sessionWindow,
        resume: secrets.resumable,
        resendBufferBytes: profile.session.resendBuffer,
      });
    const session: Session = new Session({
      role: "client",
      mux: createMux(),
      log: this.#log,
      events: this.events,
      sessionNo: no,
      user: profile.user,
      createMux,
      resumable: secrets.resumable,
      releaseKey: deriveReleaseKey(secrets.resumptionSecret, secrets.sessionId),
      keepaliveMs: profile.session.keepaliveS * 1000,
      coverMs: profile.session.coverTrafficS * 1000,
      deadAfterMs: profile.session.deadAfterS * 1000,
      graceMs: RECONNECT_GIVE_UP_MS + HANDSHAKE_DEADLINE_MS,
      rekey: { bytes: profile.session.rekeyBytes, ms: profile.session.rekeyIntervalS * 1000 },
      onLinkDown: (end) => this.#linkDown(session, no, end),
    });
    this.#current = session;
    this.events.emit({
      type: "session_start",
      session: no,
      user: profile.user,
      peer: where(path),
      kex: secrets.kex,
      aead: secrets.aead,
    });
    session.attachLink(link.link);
    const renewer = this.#renewer(session, link.jwt, secrets.resumable);
    session.run().then((end) => {
      renewer?.stop();
      this.events.emit({
        type: "session_end",
        session: no,
        user: profile.user,
        reason: end.reason,
        graceful: end.graceful,
        bytesIn: session.stats.bytesIn,
        bytesOut: session.stats.bytesOut,
      });
      if (this.#current === session) this.#current = undefined;
      if (this.#stoppedSession === no && !this.#closed) this.#waitForServer();
    });
    this.#scheduleRotation(session);
    return session;
  }

  /**
   * For a JWT login whose profile reads the token from `jwt_file`: sends a
   * fresh token from the file shortly before the login's expires, so the
   * server keeps the session (jwt_session.ts). An inline `jwt` cannot be
   * renewed; neither can a session without resumption (no RENEW frame).
   */
  #renewer(
    session: Session,
    token: string | undefined,
    resumable: boolean,
  ): JwtRenewer | undefined {
    const jwt = this.#profile.jwt;
    if (token === undefined || jwt === undefined || !("file" in jwt) || !resumable) {
      return undefined;
    }
    return new JwtRenewer({
      file: jwt.file,
      token,
      send: (t) => session.renew(t),
      log: this.#log,
    });
  }

  /**
   * The server said it is shutting down: dial it again only with doubling
   * waits, in the background, with rate-limited warnings, until it is back.
   */
  #waitForServer(): void {
    const { firstMs, maxMs } = this.#stoppedBackoff;
    this.#log.info(
      `the server is shutting down (it said so): reconnecting in about ${firstMs / 1000} s, ` +
        `then with waits doubling up to ${maxMs / 1000} s`,
    );
    const failures = new FailureLog(this.#log);
    const waiting = (async () => {
      let delay = firstMs;
      for (;;) {
        await sleep(delay * (0.5 + Math.random()), this.#stop.signal);
        if (this.#closed) throw new TunnelError("Client is shutting down");
        try {
          const session = await this.#open();
          failures.recovered("the server is back");
          return session;
        } catch (e) {
          failures.failed(`the server is still down: ${describeError(e)}`);
          delay = Math.min(delay * 2, maxMs);
        }
      }
    })();
    this.#waiting = waiting;
    waiting.catch(() => {}).finally(() => {
      if (this.#waiting === waiting) this.#waiting = undefined;
    });
  }

  /** A request while the server is away: wait for it, up to the profile's connect timeout. */
  #awaitServer(waiting: Promise<Session>): Promise<Session> {
    const ms = this.#profile.limits.connectTimeoutS * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() =>
        reject(
          new TunnelError(
            `the server said it was shutting down and is not back after ${ms / 1000} s more; ` +
              "the client keeps reconnecting with backoff",
          ),
        ), ms);
    });
    return Promise.race([waiting, timeout]).finally(() => clearTimeout(timer));
  }

  /** The session reported `link_down` itself (it has our events); here: avoid and resume. */
  #linkDown(session: Session, no: number, end: LinkEnd): void {
    if (end.tampered) this.#paths.avoidCurrent();
    this.#resume(session, no, end).catch((e) => this.#log.error(`reconnect: ${describeError(e)}`));
  }

  async #resume(session: Session, no: number, end: LinkEnd): Promise<void> {
    const resumed = await this.#reconnector.reconnect(
      session,
      () => !this.#closed && this.#current === session,
    );
    if (resumed === undefined) return;
    const { link, path, afterMs } = resumed;
    this.#paths.use(
      path,
      no,
      end.tampered ? "the last endpoint tampered with the tunnel" : end.reason,
    );
    session.setReleaseKey(deriveReleaseKey(link.secrets.resumptionSecret, link.secrets.sessionId));
    session.attachLink(link.link);
    this.#resumptions++;
    this.events.emit({
      type: "resume",
      session: no,
      user: this.#profile.user,
      via: where(path),
      afterMs,
    });
    this.#scheduleRotation(session);
  }

  #scheduleRotation(session: Session): void {
    if (this.#rotateTimer !== undefined) clearTimeout(this.#rotateTimer);
    const s = this.#profile.session.rotateS;
    if (s <= 0) return;
    const ms = rotationLifetime(s * 1000, uniform(), uniform());
    this.#rotateTimer = setTimeout(() => {
      if (this.#current === session && !session.isClosed) {
        this.#log.info("rotating to a fresh connection");
        session.dropLink("connection lifetime rotation");
      }
    }, ms);
  }
}
