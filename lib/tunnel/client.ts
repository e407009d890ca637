/**
 * The NitroSocks client: local SOCKS5 (and optional HTTP CONNECT) listeners
 * whose requests ride one authenticated session to the server. The session
 * outlives its connections: when a connection breaks, stalls or fails
 * authentication, the client reconnects (with backoff and jitter, on the
 * healthiest endpoint), resumes the session with a fresh key exchange, and
 * every stream continues where it stopped.
 *
 * @module
 */
import type { ClientConfig, Endpoint } from "../config/mod.ts";
import {
  type ClientCredentials,
  ClientHandshake,
  type ClientResume,
  type SessionSecrets,
} from "../handshake/mod.ts";
import { createRecordOpener, createRecordSealer } from "../record/mod.ts";
import { Mux } from "../mux/mod.ts";
import { deriveReleaseKey } from "../session/mod.ts";
import { ProtocolError } from "../errors.ts";
import { dial } from "../transport/mod.ts";
import { writeAll } from "../transport/types.ts";
import { encodeReply, Reply, replyName } from "../socks5/mod.ts";
import { type Connector, type FrontEnd, type Opened, serveSocks } from "./dial.ts";
import { serveHttpConnect } from "./http_connect.ts";
import { describeError, type Logger } from "../observe/mod.ts";
import { TimedReader } from "./reader.ts";
import { type LinkEnd, linkIdOf, type LinkParams, Session } from "./session.ts";

/** The whole handshake must finish within this. */
const HANDSHAKE_DEADLINE_MS = 15_000;
/** A stream's OPEN must be answered within this. */
const OPEN_TIMEOUT_MS = 30_000;
/** What a fast open tells the application at once (bound address unknown yet: 0.0.0.0:0). */
const FAST_OPEN_REPLY = encodeReply(Reply.SUCCEEDED);
/** Reconnect backoff: first delay, cap, and how long to keep trying. */
const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 5_000;
const RECONNECT_GIVE_UP_MS = 5 * 60_000;
/** An endpoint whose records failed authentication is avoided this long. */
const TAMPER_PENALTY_MS = 10 * 60_000;

/** Raised when the tunnel cannot be established; the message says what to do. */
export class TunnelError extends Error {
  /** "session_gone": the server no longer holds the session we tried to resume. */
  readonly kind: "session_gone" | undefined;
  constructor(message: string, options?: ErrorOptions & { kind?: "session_gone" }) {
    super(message, options);
    this.name = "TunnelError";
    this.kind = options?.kind;
  }
}

/**
 * Turns a handshake failure into a message that says what to check. The
 * server's real reason is only in its own log; the client can tell apart:
 * a server that is not the pinned one, a server that answered as a web site
 * (it did not accept our first message: wrong server key, clock off, or not
 * NitroSocks), and a login refused after our credentials.
 */
function explainFailure(e: unknown, where: string): TunnelError {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof ProtocolError && e.code === "AUTH_FAILED") {
    switch (e.authFailure) {
      case "decoy":
        return new TunnelError(
          `The server at ${where} answered as a web server, so it did not accept our first message: ` +
            `the profile's server key may be out of date, this machine's clock may be off by minutes, ` +
            `or the address is not a NitroSocks server`,
          { cause: e },
        );
      case "resume_refused":
        return new TunnelError(`The server at ${where} no longer has this session`, {
          cause: e,
          kind: "session_gone",
        });
      case "login_refused":
        return new TunnelError(
          `The server at ${where} refused the login: check the profile's user id, key, token and TOTP ` +
            `secret (ask the server's admin for a fresh profile) and this machine's clock`,
          { cause: e },
        );
      default:
        return new TunnelError(
          `The server at ${where} is not the server in your profile: its identity does not match the pinned ` +
            `key (a different server or an interceptor is answering); no credentials were sent`,
          { cause: e },
        );
    }
  }
  if (e instanceof ProtocolError && e.code === "CLOSED") {
    return new TunnelError(
      `The server at ${where} closed the connection without completing the handshake: it may not be a ` +
        `NitroSocks server, or it may be overloaded (${msg})`,
      { cause: e },
    );
  }
  return new TunnelError(
    `The server at ${where} did not answer as a NitroSocks server (${msg}): the profile's server key may ` +
      `be out of date or the address may be wrong`,
    { cause: e },
  );
}

/** Options beyond the profile. */
export interface ClientOptions {
  log: Logger;
  /** Dial this address instead of the profile's (TLS name and key stay). */
  server?: { host: string; port: number };
  /** Trust this CA PEM for TLS instead of the profile's. */
  caPem?: string;
  /** Listen for SOCKS5 here instead of the profile's address. */
  socks?: { host: string; port: number };
  /** Do not open the tunnel until the first request. */
  lazy?: boolean;
}

/** A running client. */
export interface ClientHandle {
  socksAddr: { hostname: string; port: number };
  httpAddr: { hostname: string; port: number } | undefined;
  /** The current session, opened if needed. */
  tunnel(): Promise<Session>;
  /** How many times a broken connection was resumed. */
  readonly resumptions: number;
  /** Drops the current connection on purpose (tests, rotation): the session resumes. */
  dropConnection(reason?: string): void;
  /** Releases the session gracefully (three-step release) and stops. */
  close(): Promise<void>;
}

/** A new authenticated connection, before it is joined to a session. */
export interface NewLink {
  link: LinkParams;
  secrets: SessionSecrets;
}

/**
 * Dials one endpoint and runs the handshake (a full login, or a resumption
 * when `resume` is given). Throws `TunnelError` saying what to check.
 */
export async function connectLink(
  config: ClientConfig,
  endpoint: Endpoint,
  resume?: ClientResume,
): Promise<NewLink> {
  const where = `${endpoint.server.host}:${endpoint.server.port}`;
  let conn;
  try {
    conn = await dial({
      transport: endpoint.transport,
      hostname: endpoint.server.host,
      port: endpoint.server.port,
      serverName: endpoint.serverName,
      ...(endpoint.caPem === undefined ? {} : { caPems: [endpoint.caPem] }),
      timeoutMs: config.limits.connectTimeoutS * 1000,
    });
  } catch (e) {
    const msg = describeError(e);
    throw new TunnelError(
      /TLS|certificate/i.test(msg)
        ? `Cannot reach the server at ${where}: ${msg}: check the profile's ca and server_name, or pass ` +
          `an inspecting proxy's CA with --ca`
        : `Cannot reach the server at ${where}: ${msg}: check that the NitroSocks server is running and ` +
          `that the profile's server address and port are right`,
      { cause: e },
    );
  }
  try {
    const credentials: ClientCredentials = {
      userId: config.user,
      clientKey: config.key,
      token: config.token,
    };
    if (config.totpSecret !== undefined) credentials.totpSecret = config.totpSecret;
    const hs = new ClientHandshake({
      serverPublicKey: config.serverKey,
      credentials,
      kex: config.kex,
      aead: config.aead,
      now: Date.now,
      ...(resume === undefined ? {} : { resume }),
    });
    await writeAll(conn, hs.hello());
    const reader = new TimedReader(conn);
    const deadline = Date.now() + HANDSHAKE_DEADLINE_MS;
    // A connection silent for dead_after is dead, during the handshake as after it.
    const silentMs = config.session.deadAfterS * 1000;
    while (true) {
      const left = deadline - Date.now();
      const bySilence = left > silentMs;
      let chunk: Uint8Array | null | "timeout";
      try {
        chunk = left > 0 ? await reader.next(bySilence ? silentMs : left) : "timeout";
      } catch {
        // A TLS connection cut without close_notify is an end of stream here.
        chunk = null;
      }
      if (chunk === "timeout" && bySilence) {
        throw new TunnelError(
          `The server at ${where} sent nothing for ${silentMs / 1000} s (session.dead_after) ` +
            `during the handshake: the connection stalled`,
        );
      }
      if (chunk === "timeout") {
        throw new TunnelError(
          `The server at ${where} did not complete the handshake within ${
            HANDSHAKE_DEADLINE_MS / 1000
          } s: ` +
            `check that it runs NitroSocks and that the profile's server key is current`,
        );
      }
      if (chunk === null) throw explainFailure(hs.closed(), where);
      let step;
      try {
        step = hs.push(chunk);
      } catch (e) {
        throw explainFailure(e, where);
      }
      if (step.type === "need_more") continue;
      if (step.type === "send") {
        await writeAll(conn, step.bytes);
        continue;
      }
      await writeAll(conn, step.send);
      const secrets = step.secrets;
      const sealer = await createRecordSealer(secrets.aead, secrets.clientToServer);
      const opener = await createRecordOpener(secrets.aead, secrets.serverToClient);
      return {
        link: {
          conn,
          sealer,
          opener,
          initial: step.rest,
          resumed: secrets.resumed,
          label: where,
          linkId: linkIdOf(secrets.transcriptHash),
        },
        secrets,
      };
    }
  } catch (e) {
    try {
      conn.close();
    } catch {
      // already closed
    }
    throw e;
  }
}

/** An endpoint and what the client has seen of it. */
interface PathState {
  endpoint: Endpoint;
  failures: number;
  avoidUntil: number;
  connectMs: number;
}

function where(p: PathState): string {
  return `${p.endpoint.server.host}:${p.endpoint.server.port}`;
}

/** Healthiest first: not avoided, fewest recent failures, fastest connect. */
function byHealth(paths: PathState[], now: number): PathState[] {
  return [...paths].sort((a, b) =>
    Number(a.avoidUntil > now) - Number(b.avoidUntil > now) || a.failures - b.failures ||
    a.connectMs - b.connectMs
  );
}

/**
 * Starts the client: listeners up at once, the session opened on start
 * (unless `lazy`), resumed after any connection failure.
 *
 * @example
 * ```ts ignore
 * const client = await startClient(await loadClientConfig("alice.yml"), { log });
 * console.log(client.socksAddr.port);
 * ```
 */
export async function startClient(
  config: ClientConfig,
  opts: ClientOptions,
): Promise<ClientHandle> {
  const log = opts.log;
  const caPem = opts.caPem ?? config.caPem;
  const first: Endpoint = {
    server: opts.server ?? config.server,
    serverName: config.serverName,
    transport: config.transport,
    ...(caPem === undefined ? {} : { caPem }),
  };
  const paths: PathState[] = [first, ...config.endpoints].map((endpoint) => ({
    endpoint,
    failures: 0,
    avoidUntil: 0,
    connectMs: 0,
  }));
  let current: Session | undefined;
  let currentPath: PathState | undefined;
  let resume: ClientResume | undefined;
  /**
   * The credentials `resume` replaced. The server adopts new ones only when
   * our Finish reaches it: if the connection broke just after we sent it,
   * the server still expects these.
   */
  let previousResume: ClientResume | undefined;
  let connecting: Promise<Session> | undefined;
  let closed = false;
  let resumptions = 0;
  let rotateTimer: ReturnType<typeof setTimeout> | undefined;

  /** Tries every endpoint, healthiest first; returns the first link that logs in. */
  async function connectAny(
    withResume: ClientResume | undefined,
  ): Promise<{ link: NewLink; path: PathState }> {
    let lastError: unknown;
    for (const path of byHealth(paths, Date.now())) {
      const t0 = performance.now();
      try {
        const link = await connectLink(config, path.endpoint, withResume);
        path.connectMs = performance.now() - t0;
        path.failures = 0;
        return { link, path };
      } catch (e) {
        path.failures++;
        lastError = e;
        if (e instanceof TunnelError && e.kind === "session_gone") throw e;
        if (paths.length > 1) log.warn(`endpoint ${where(path)}: ${describeError(e)}`);
      }
    }
    throw lastError;
  }

  function remember(secrets: SessionSecrets): void {
    previousResume = resume;
    resume = {
      sessionId: secrets.sessionId,
      resumptionSecret: secrets.resumptionSecret,
      ...(secrets.ticket === undefined ? {} : { ticket: secrets.ticket }),
    };
  }

  function scheduleRotation(session: Session): void {
    if (rotateTimer !== undefined) clearTimeout(rotateTimer);
    const s = config.session.rotateS;
    if (s <= 0) return;
    const ms = s * 1000 * (0.5 + Math.random());
    rotateTimer = setTimeout(() => {
      if (current === session && !session.isClosed) {
        log.info("rotating to a fresh connection");
        session.dropLink("connection lifetime rotation");
      }
    }, ms);
  }

  async function reconnect(session: Session, end: LinkEnd): Promise<void> {
    if (end.tampered && currentPath !== undefined) {
      currentPath.avoidUntil = Date.now() + TAMPER_PENALTY_MS;
      log.warn(`endpoint ${where(currentPath)} tampered with the tunnel: avoiding it`);
    }
    const start = Date.now();
    let delay = BACKOFF_FIRST_MS;
    while (!closed && !session.isClosed && current === session) {
      try {
        const { link, path } = await connectAny(resume);
        if (closed || session.isClosed) {
          link.link.conn.close();
          return;
        }
        remember(link.secrets);
        currentPath = path;
        session.setReleaseKey(
          deriveReleaseKey(link.secrets.resumptionSecret, link.secrets.sessionId),
        );
        session.attachLink(link.link);
        resumptions++;
        log.info(`session resumed via ${where(path)} after ${Date.now() - start} ms`);
        scheduleRotation(session);
        return;
      } catch (e) {
        if (e instanceof TunnelError && e.kind === "session_gone") {
          if (previousResume !== undefined) {
            log.info("the server refused the latest resumption secret: trying the one before it");
            resume = previousResume;
            previousResume = undefined;
            continue;
          }
          log.warn(
            `${describeError(e)}: its streams are lost; the next request opens a new session`,
          );
          session.close("server no longer has the session", false);
          return;
        }
        if (Date.now() - start > RECONNECT_GIVE_UP_MS) {
          log.error(
            `giving up resuming after ${RECONNECT_GIVE_UP_MS / 60_000} min: ${describeError(e)}`,
          );
          session.close("could not reconnect", false);
          return;
        }
        log.warn(`reconnect failed: ${describeError(e)}; retrying in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      }
    }
  }

  function tunnel(): Promise<Session> {
    if (closed) return Promise.reject(new TunnelError("Client is shutting down"));
    if (current !== undefined && !current.isClosed) return Promise.resolve(current);
    if (connecting !== undefined) return connecting;
    connecting = (async () => {
      try {
        const { link, path } = await connectAny(undefined);
        const secrets = link.secrets;
        resume = undefined; // a new session: nothing of the last one to fall back to
        remember(secrets);
        currentPath = path;
        log.info(
          `tunnel up to ${where(path)} as "${config.user}" (${secrets.kex}, ${secrets.aead})`,
        );
        const createMux = () =>
          new Mux({
            role: "client",
            maxStreams: config.limits.maxStreams,
            streamWindow: config.limits.streamWindow,
            sessionWindow: config.limits.sessionWindow,
            resume: secrets.resumable,
            resendBufferBytes: config.session.resendBuffer,
          });
        const session: Session = new Session({
          role: "client",
          mux: createMux(),
          log,
          createMux,
          resumable: secrets.resumable,
          releaseKey: deriveReleaseKey(secrets.resumptionSecret, secrets.sessionId),
          keepaliveMs: config.session.keepaliveS * 1000,
          deadAfterMs: config.session.deadAfterS * 1000,
          graceMs: RECONNECT_GIVE_UP_MS + HANDSHAKE_DEADLINE_MS,
          rekey: { bytes: config.session.rekeyBytes, ms: config.session.rekeyIntervalS * 1000 },
          onLinkDown: (end) => {
            log.warn(`connection lost: ${end.reason}; resuming`);
            reconnect(session, end).catch((e) => log.error(`reconnect: ${describeError(e)}`));
          },
        });
        current = session;
        session.attachLink(link.link);
        session.run().then((end) => {
          log[end.graceful ? "info" : "warn"](`session ended: ${end.reason}`);
          if (current === session) current = undefined;
        });
        scheduleRotation(session);
        return session;
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  }

  const fastOpen = config.socks5.fastOpen;
  const connector: Connector = {
    async open(req, raw): Promise<Opened> {
      const session = await tunnel();
      if (fastOpen && req.command === "connect") {
        // Success at once: the application's first bytes ride right behind
        // the OPEN, saving a round trip. A target the server cannot reach
        // shows as a closed connection; the log says why.
        const target = `${req.host}:${req.port}`;
        const id = session.openFast(raw, OPEN_TIMEOUT_MS, (why) => {
          log.info(
            "timedOut" in why
              ? `${target}: no answer from the server within ${OPEN_TIMEOUT_MS / 1000} s`
              : `${target}: ${replyName(why.reply[1] ?? Reply.GENERAL_FAILURE)}`,
          );
        });
        return { reply: FAST_OPEN_REPLY, attach: (sock, early) => session.attach(id, sock, early) };
      }
      const { id, reply } = await session.open(raw, OPEN_TIMEOUT_MS);
      return { reply, attach: (sock, early) => session.attach(id, sock, early) };
    },
  };

  const socksListen = opts.socks ?? config.socks5.listen;
  const fronts: FrontEnd[] = [];
  const socksAuth = config.socks5.users === undefined ? {} : { users: config.socks5.users };
  const socks = serveSocks(socksListen, { auth: socksAuth, connector, log: log.child("socks5") });
  fronts.push(socks);
  let http: FrontEnd | undefined;
  if (config.httpConnect !== undefined) {
    http = serveHttpConnect(config.httpConnect.listen, {
      connector,
      log: log.child("http"),
      ...(config.socks5.users === undefined ? {} : { users: config.socks5.users }),
    });
    fronts.push(http);
  }
  if (!opts.lazy) {
    await tunnel().catch((e) => log.warn(`${describeError(e)}; will retry on the first request`));
  }
  return {
    socksAddr: socks.addr,
    httpAddr: http?.addr,
    tunnel,
    get resumptions() {
      return resumptions;
    },
    dropConnection(reason = "dropped on request") {
      current?.dropLink(reason);
    },
    async close() {
      closed = true;
      if (rotateTimer !== undefined) clearTimeout(rotateTimer);
      await Promise.all(fronts.map((f) => f.close()));
      const s = current;
      current = undefined;
      if (s !== undefined) await s.release(3_000);
    },
  };
}
