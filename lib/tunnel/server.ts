/**
 * The NitroSocks server: accepts TLS (or TCP) connections, runs the probe
 * gate and handshake, hands anything that is not a client to the fallback
 * web server, and serves each authenticated tunnel's streams by dialing
 * their targets under the user's route rules.
 *
 * @module
 */
import type { ServerConfig, UserEntry } from "../config/mod.ts";
import { loadUsers, matchRoute } from "../config/mod.ts";
import {
  decodeServerIdentity,
  decodeTicketKeys,
  ReplayGuard,
  type ResumableSession,
  ServerHandshake,
  TicketKeyring,
  type UserRecord,
} from "../handshake/mod.ts";
import { deriveReleaseKey, ReleaseReason } from "../session/mod.ts";
import { createRecordOpener, createRecordSealer } from "../record/mod.ts";
import { Mux, ResetReason } from "../mux/mod.ts";
import { decodeRequest, encodeReply, Reply, replyForError, Socks5Error } from "../socks5/mod.ts";
import { listen, tuneTcp } from "../transport/mod.ts";
import { listenNodeTls } from "../transport/node_tls.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import { forwardToFallback, startDecoy } from "./fallback.ts";
import { describeError, type Logger } from "../observe/mod.ts";
import { TimedReader } from "./reader.ts";
import { linkIdOf, type LinkParams, Session } from "./session.ts";
import { dialTarget, serveDirectSocks } from "./dial.ts";

/** How long a client may take to deliver its whole first message. */
const HELLO_DEADLINE_MS = 10_000;
/** A partial first message with no new bytes for this long goes to the fallback. */
const HELLO_IDLE_MS = 2_000;
/** The rest of the handshake must finish within this. */
const HANDSHAKE_DEADLINE_MS = 15_000;

/** An accepted connection: TLS (node:tls adapter) or plain TCP. */
type ServerConn = ByteStream & { readonly remoteAddr: Deno.Addr };

/** A running server. */
export interface ServerHandle {
  /** The address actually bound (port 0 resolves to the real port). */
  addr: { hostname: string; port: number };
  /** The direct SOCKS5 port, when enabled. */
  directAddr: { hostname: string; port: number } | undefined;
  /** Live tunnels. */
  readonly sessions: ReadonlySet<Session>;
  /** Re-reads users.yml; live sessions keep running. Throws ConfigError. */
  reloadUsers(): Promise<void>;
  /** Stops listening and ends every tunnel. */
  close(): Promise<void>;
  /** Resolves when the accept loop ends. */
  done: Promise<void>;
}

/** Options beyond the config file. */
export interface ServerOptions {
  log: Logger;
  /** Users to serve instead of reading `config.usersFile` (tests). */
  users?: Map<string, UserEntry>;
}

function toUserRecord(u: UserEntry): UserRecord {
  const r: UserRecord = { userId: u.name, publicKey: u.publicKey, token: u.token };
  if (u.totpSecret !== undefined) r.totpSecret = u.totpSecret;
  return r;
}

/**
 * Starts a server from a parsed configuration.
 *
 * @example
 * ```ts ignore
 * const server = await startServer(await loadServerConfig("server.yml"), { log });
 * await server.done;
 * ```
 */
export async function startServer(
  config: ServerConfig,
  opts: ServerOptions,
): Promise<ServerHandle> {
  const log = opts.log;
  const identity = decodeServerIdentity(config.identity);
  let users = opts.users ?? (await loadUsers(config.usersFile)).users;
  const replay = new ReplayGuard({
    windowMs: config.handshake.clockWindowS * 1000,
    capacity: config.handshake.replayCache,
  });
  const sessions = new Set<Session>();
  const connections = new Set<ByteStream>();
  /** Resumable sessions by hex session id, with their current resumption secret. */
  const table = new Map<
    string,
    { session: Session; resumptionSecret: Uint8Array; userId: string }
  >();
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  function lookupSession(id: Uint8Array): ResumableSession | undefined {
    const e = table.get(hex(id));
    if (e === undefined || e.session.isClosed) return undefined;
    return { resumptionSecret: e.resumptionSecret, userId: e.userId };
  }
  const graceMs = config.session.resumeGraceS * 1000;
  const tickets = config.session.ticketKeysText === undefined ? undefined : new TicketKeyring(
    decodeTicketKeys(config.session.ticketKeysText, { file: "session.ticket_keys" }),
    { lifetimeMs: Math.max(graceMs, 3_600_000) },
  );

  const decoy = config.fallback.mode === "decoy" ? startDecoy() : undefined;
  const fallbackTarget = config.fallback.mode === "decoy"
    ? { hostname: decoy!.hostname, port: decoy!.port }
    : config.fallback.mode === "upstream" && config.fallback.upstream !== undefined
    ? { hostname: config.fallback.upstream.host, port: config.fallback.upstream.port }
    : undefined;

  // TLS through node:tls so accepted sockets get TCP_NODELAY (see node_tls.ts).
  const listener: AsyncIterable<ServerConn> & { addr: Deno.Addr; close(): void } =
    config.transport === "tls"
      ? await listenNodeTls({
        hostname: config.listen.host,
        port: config.listen.port,
        certPem: config.tls!.certPem,
        keyPem: config.tls!.keyPem,
        alpn: config.tls!.alpn,
      })
      : listen({ transport: "tcp", hostname: config.listen.host, port: config.listen.port });
  const laddr = listener.addr as Deno.NetAddr;
  log.info(`listening on ${config.transport}://${laddr.hostname}:${laddr.port}`);

  const direct = config.socks5Direct.enabled
    ? serveDirectSocks(config.socks5Direct.listen, {
      log: log.child("direct"),
      connectTimeoutMs: config.limits.connectTimeoutS * 1000,
    })
    : undefined;

  function lookupUser(name: string): UserRecord | undefined {
    const u = users.get(name);
    if (u === undefined) return undefined;
    if (u.disabled) {
      log.info(`user "${name}" is disabled`);
      return undefined;
    }
    if (u.expires !== undefined && u.expires.getTime() < Date.now()) {
      log.info(`user "${name}" expired at ${u.expires.toISOString()}`);
      return undefined;
    }
    return toUserRecord(u);
  }

  let connSeq = 0;
  async function handle(conn: ServerConn): Promise<void> {
    const id = ++connSeq;
    const clog = log.child(`conn ${id}`);
    const remote = conn.remoteAddr as Deno.NetAddr;
    connections.add(conn);
    tuneTcp(conn);
    try {
      const reader = new TimedReader(conn);
      const hs = new ServerHandshake({
        identity,
        lookupUser,
        replay,
        now: Date.now,
        kex: config.handshake.kex,
        aead: config.handshake.aead,
        clockWindowMs: config.handshake.clockWindowS * 1000,
        log: (m) => clog.info(m),
        lookupSession,
        ...(tickets === undefined ? {} : { tickets }),
      });
      const start = Date.now();
      let gatePassed = false;
      while (true) {
        const deadline = gatePassed ? HANDSHAKE_DEADLINE_MS : HELLO_DEADLINE_MS;
        const left = start + deadline - Date.now();
        const r = left <= 0
          ? "timeout"
          : await reader.next(gatePassed ? left : Math.min(left, HELLO_IDLE_MS));
        if (r === "timeout" || r === null) {
          if (!gatePassed) {
            clog.info(
              `probe from ${remote.hostname}: ${
                r === null ? "closed" : "stalled"
              } before a complete first message; handing to fallback`,
            );
            await forwardToFallback(conn, reader, hs.received(), fallbackTarget, clog);
          } else {
            clog.info(`handshake with ${remote.hostname} ${r === null ? "closed" : "timed out"}`);
          }
          return;
        }
        const step = hs.push(r);
        if (step.type === "need_more") continue;
        if (step.type === "probe") {
          clog.info(`probe from ${remote.hostname}: ${step.reason}; handing to fallback`);
          await forwardToFallback(conn, reader, hs.received(), fallbackTarget, clog);
          return;
        }
        if (step.type === "reject") {
          clog.warn(`authentication failed from ${remote.hostname}: ${step.reason}`);
          return;
        }
        if (step.type === "send") {
          gatePassed = true;
          await writeAll(conn, step.bytes);
          continue;
        }
        // done
        const secrets = step.secrets;
        const key = hex(secrets.sessionId);
        const sealer = await createRecordSealer(secrets.aead, secrets.serverToClient);
        const opener = await createRecordOpener(secrets.aead, secrets.clientToServer);
        const releaseKey = deriveReleaseKey(secrets.resumptionSecret, secrets.sessionId);
        const link: LinkParams = {
          conn,
          sealer,
          opener,
          initial: step.rest,
          resumed: step.resumed,
          label: remote.hostname,
          linkId: linkIdOf(secrets.transcriptHash),
        };
        const live = table.get(key);
        if (step.resumed && live !== undefined && !live.session.isClosed) {
          live.resumptionSecret = secrets.resumptionSecret;
          live.session.setReleaseKey(releaseKey);
          releaseKey.fill(0);
          clog.info(`user "${step.userId}" resumed their session from ${remote.hostname}`);
          const end = await live.session.attachLink(link);
          clog.info(`connection ended: ${end.reason}`);
          return;
        }
        if (step.resumed) {
          clog.info(
            `user "${step.userId}" resumed a session this server does not hold: starting it afresh`,
          );
          link.stateLost = true;
        } else {
          clog.info(
            `user "${step.userId}" connected from ${remote.hostname} (${secrets.kex}, ${secrets.aead})`,
          );
        }
        const user = users.get(step.userId);
        const slog = clog.child(step.userId);
        const makeMux = () =>
          new Mux({
            role: "server",
            maxStreams: Math.min(user?.maxStreams ?? Infinity, config.limits.maxStreamsPerTunnel),
            streamWindow: config.limits.streamWindow,
            sessionWindow: config.limits.sessionWindow,
            resume: secrets.resumable,
            resendBufferBytes: config.session.resendBuffer,
          });
        const session: Session = new Session({
          role: "server",
          mux: makeMux(),
          createMux: makeMux,
          log: slog,
          resumable: secrets.resumable,
          releaseKey,
          graceMs,
          keepaliveMs: config.session.keepaliveS * 1000,
          deadAfterMs: config.session.deadAfterS * 1000,
          streamIdleMs: config.limits.idleTimeoutS * 1000,
          rekey: { bytes: config.session.rekeyBytes, ms: config.session.rekeyIntervalS * 1000 },
          onOpen: (sid, request) => {
            openStream(session, sid, request, step.userId, slog).catch((e) =>
              slog.warn(`stream ${sid}: ${describeError(e)}`)
            );
          },
        });
        releaseKey.fill(0);
        sessions.add(session);
        table.set(key, {
          session,
          resumptionSecret: secrets.resumptionSecret,
          userId: step.userId,
        });
        session.run().then((end) => {
          sessions.delete(session);
          if (table.get(key)?.session === session) table.delete(key);
          slog.info(`session ended: ${end.reason}`);
        });
        const end = await session.attachLink(link);
        clog.info(`connection ended: ${end.reason}`);
        return;
      }
    } catch (e) {
      clog.warn(`connection error: ${describeError(e)}`);
    } finally {
      connections.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  }

  async function openStream(
    session: Session,
    sid: number,
    request: Uint8Array,
    userName: string,
    slog: Logger,
  ): Promise<void> {
    let req;
    try {
      req = decodeRequest(request);
    } catch (e) {
      const code = e instanceof Socks5Error ? e.reply : Reply.GENERAL_FAILURE;
      session.refuse(sid, encodeReply(code), ResetReason.REFUSED, describeError(e));
      return;
    }
    if (req.command !== "connect") {
      session.refuse(
        sid,
        encodeReply(Reply.COMMAND_NOT_SUPPORTED),
        ResetReason.REFUSED,
        "only CONNECT",
      );
      return;
    }
    const user = users.get(userName);
    if (
      user === undefined ||
      !matchRoute(user.routes, { proto: "tcp", host: req.host, port: req.port })
    ) {
      slog.info(`stream ${sid}: route tcp:${req.host}:${req.port} not allowed`);
      session.refuse(sid, encodeReply(Reply.NOT_ALLOWED), ResetReason.REFUSED, "route not allowed");
      return;
    }
    let target: Deno.TcpConn;
    try {
      target = await dialTarget(req.host, req.port, config.limits.connectTimeoutS * 1000);
    } catch (e) {
      slog.info(`stream ${sid}: dial ${req.host}:${req.port} failed: ${describeError(e)}`);
      session.refuse(sid, encodeReply(replyForError(e)), ResetReason.REFUSED, "dial failed");
      return;
    }
    if (!session.hasStream(sid)) {
      target.close();
      return;
    }
    slog.debug(`stream ${sid}: connected to ${req.host}:${req.port}`);
    // BND.ADDR stays 0.0.0.0:0: the server's outbound address is not the client's business.
    session.reply(sid, encodeReply(Reply.SUCCEEDED));
    session.attach(sid, target);
  }

  const done = (async () => {
    try {
      for await (const conn of listener) {
        handle(conn).catch((e) => log.error(`unexpected: ${describeError(e)}`));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.BadResource)) log.error(`accept failed: ${describeError(e)}`);
    }
  })();

  return {
    addr: { hostname: laddr.hostname, port: laddr.port },
    directAddr: direct?.addr,
    sessions,
    async reloadUsers() {
      users = (await loadUsers(config.usersFile)).users;
      log.info(`reloaded ${users.size} users from ${config.usersFile}`);
    },
    async close() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      await Promise.all(
        [...sessions].map((s) => s.notifyAndClose("server shutting down", ReleaseReason.SHUTDOWN)),
      );
      for (const c of connections) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await direct?.close();
      await decoy?.close();
      await done;
    },
    done,
  };
}
