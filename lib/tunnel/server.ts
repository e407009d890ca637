/**
 * The NitroSocks server: accepts TLS (or TCP) connections, runs the probe
 * gate and handshake, hands anything that is not a client to the fallback
 * web server, and serves each authenticated tunnel's streams by dialing
 * their targets under the user's route rules.
 *
 * `startServer` wires small parts together: the {@linkcode SessionTable}
 * (resumable sessions), the {@linkcode ConnectionAcceptor} (accept loop,
 * handshake, fallback) and the {@linkcode StreamPolicy} (route check and
 * dial). It reads no files — the caller passes the parsed settings and the
 * users — except that it watches the TLS certificate files (`tlsFiles`) and
 * serves a changed pair to new connections (`cert_watch.ts`).
 *
 * @module
 */
import {
  type AccountingSettings,
  type AdminSettings,
  DEFAULT_EGRESS_BLOCK,
  DEFAULT_PADDING,
  EgressBlock,
  type EgressSettings,
  parseRoute,
  type ServerConfig,
  type StoreSettings,
  type UserEntry,
  type UserSource,
} from "../config/mod.ts";
import type { Accountant, AccountingStore } from "../accounting/mod.ts";
import {
  CookieJar,
  decodeServerIdentity,
  decodeTicketKeys,
  ReplayGuard,
  ServerHandshake,
  serverPublicKey,
  TicketKeyring,
  type UserRecord,
} from "../handshake/mod.ts";
import { ReleaseReason } from "../session/mod.ts";
import { getTransport, WS_UPGRADE_DEADLINE_MS } from "../transport/mod.ts";
import { describeError, EventHub, logEvents, type Logger } from "../observe/mod.ts";
import { ConnectionAcceptor, type ServerListener } from "./acceptor.ts";
import { Decoy, type DecoyTimeouts } from "./decoy.ts";
import { watchCertificate } from "./cert_watch.ts";
import { serveDirectSocks } from "./dial.ts";
import type { Session } from "./session.ts";
import { SessionTable } from "./session_table.ts";
import { StreamPolicy } from "./stream_policy.ts";
import { dnsResolve, isWildcard, LocalAddresses, type Resolve, selfAddresses } from "./egress.ts";
import { startServerOps } from "./server_ops.ts";
import { UserLimits } from "./user_limits.ts";
import { RemovedUsers } from "./login_guard.ts";
import { connectFleet } from "./fleet_store.ts";
import { FleetTunnels } from "./fleet_tunnels.ts";
import { FleetPace } from "./fleet_pace.ts";
import { shareStreamCounts } from "./fleet_streams.ts";
import { shareLockout } from "./fleet_lockout.ts";
import { startFleetTickets } from "./fleet_tickets.ts";
import { shareUsers } from "./fleet_users.ts";
import { LoginGuard } from "./login_guard.ts";
import { lockoutSettings } from "./acceptor.ts";

export { ConnectionAcceptor } from "./acceptor.ts";
export { SessionTable } from "./session_table.ts";
export { StreamPolicy } from "./stream_policy.ts";

/** The parts of a parsed `server.yml` the server uses. */
export type ServerSettings =
  & Pick<
    ServerConfig,
    | "listen"
    | "transport"
    | "tls"
    | "tlsFiles"
    | "ws"
    | "proxyProtocol"
    | "identity"
    | "fallback"
    | "handshake"
    | "limits"
    | "socks5Direct"
    | "session"
  >
  & {
    /** `auth:` of server.yml (failed-login lockout); lockout is off when absent. */
    auth?: ServerConfig["auth"];
    /** `padding:` of server.yml: this server's record padding; `random` when absent. */
    padding?: ServerConfig["padding"];
  };

/** Options for {@linkcode startServer}: the settings, the users, and where to report. */
export interface ServerOptions extends ServerSettings {
  /** The users to serve (e.g. the map `loadUsers` returns); replace with `setUsers`. */
  users: UserSource;
  log: Logger;
  /** Where the server reports events; created when absent. Its events are logged to `log`. */
  events?: EventHub;
  /** `admin:` of server.yml: the admin listener (`/metrics`, `/status`, `/kick`), when set. */
  admin?: AdminSettings;
  /** `accounting:` of server.yml: the state file; counters stay in memory when absent. */
  accounting?: AccountingSettings;
  /** Keeps the counters instead of the state file (tests). */
  accountingStore?: AccountingStore;
  /** `store:` of server.yml: `file` (this process only, the default) or the fleet's Redis. */
  store?: StoreSettings;
  /** `egress:` of server.yml; default: the default block list and the system resolver. */
  egress?: EgressSettings;
  /** Resolves target names instead of `egress.resolver` or the system (tests, embedders). */
  resolve?: Resolve;
  /** The decoy's timers; default nginx's (tests shorten them to compare closes). */
  decoyTimeouts?: Partial<DecoyTimeouts>;
}

/** A running server. */
export interface ServerHandle {
  /** The address actually bound (port 0 resolves to the real port). */
  addr: { hostname: string; port: number };
  /** The direct SOCKS5 port, when enabled. */
  directAddr: { hostname: string; port: number } | undefined;
  /** Live tunnels. */
  readonly sessions: ReadonlySet<Session>;
  /** Logins, refusals, sessions, resumptions and stream decisions. */
  readonly events: EventHub;
  /** Counters per user and for the server (lib/accounting). */
  readonly accountant: Accountant;
  /** The admin listener's address, when `admin.listen` is set. */
  adminAddr: { hostname: string; port: number } | undefined;
  /** Ends `user`'s live sessions at once (what `nitrosocks kick` asks); resolves with how many. */
  kick(user: string, by?: string): Promise<number>;
  /**
   * Serves these users from now on (a reload). Live sessions of users now
   * removed, disabled, expired or over quota end (NOTICE, then release);
   * the others get the new bandwidth at once. Ignored (and logged) with
   * `store.users` once the fleet's store holds users: they come from there.
   */
  setUsers(users: UserSource): void;
  /** Stops listening and ends every tunnel. */
  close(): Promise<void>;
  /** Resolves when the accept loop ends. */
  done: Promise<void>;
}

/** Why `pattern` is not a route (users.yml grammar), for a JWT's `routes` claim. */
function routeError(pattern: string): string | undefined {
  try {
    parseRoute(pattern);
    return undefined;
  } catch (e) {
    return describeError(e);
  }
}

function toUserRecord(u: UserEntry, auth: ServerConfig["auth"] | undefined): UserRecord {
  const r: UserRecord = { userId: u.name, publicKey: u.publicKey };
  if (u.token !== undefined) r.token = u.token;
  if (u.jwt !== undefined) {
    // The user's own keys and the server-wide auth.jwt keys verify the user's tokens.
    const j = auth?.jwt;
    r.jwt = {
      keys: {
        hs256: [...(u.jwt.secret === undefined ? [] : [u.jwt.secret]), ...(j?.secrets ?? [])],
        ed25519: [
          ...(u.jwt.publicKey === undefined ? [] : [u.jwt.publicKey]),
          ...(j?.publicKeys ?? []),
        ],
      },
      ...(j?.audience === undefined ? {} : { audience: j.audience }),
      leewayS: j?.leewayS ?? 0,
      routeError,
    };
  }
  if (u.password !== undefined) {
    r.password = { storedKey: u.password.storedKey, serverKey: u.password.serverKey };
  }
  if (u.totpSecret !== undefined) r.totpSecret = u.totpSecret;
  return r;
}

/**
 * The users, replaceable as a whole while the parts that look them up keep
 * a reference. Remembers the public keys of users a reload removed
 * ({@linkcode RemovedUsers}), so that a removed user's client reconnecting
 * is told apart from a guess.
 */
class CurrentUsers implements UserSource {
  #source: UserSource;
  readonly #removed = new RemovedUsers();

  constructor(source: UserSource) {
    this.#source = source;
  }

  replace(source: UserSource): void {
    for (const name of this.#source.keys()) {
      const gone = this.#source.get(name);
      if (gone !== undefined && source.get(name) === undefined) {
        this.#removed.add(name, gone.publicKey);
      }
    }
    this.#source = source;
  }

  get(name: string): UserEntry | undefined {
    return this.#source.get(name);
  }

  keys(): Iterable<string> {
    return this.#source.keys();
  }

  /** The static public key of `name` when a reload removed that user (and it is not back). */
  removedKey(name: string): Uint8Array | undefined {
    return this.#source.get(name) === undefined ? this.#removed.key(name) : undefined;
  }

  get size(): number {
    return this.#source.size;
  }
}

/**
 * Starts a server.
 *
 * @example
 * ```ts ignore
 * const config = await loadServerConfig("server.yml");
 * const { users } = await loadUsers(config.usersFile);
 * const server = await startServer({ ...config, users, log });
 * await server.done;
 * ```
 */
export async function startServer(options: ServerOptions): Promise<ServerHandle> {
  const { log } = options;
  const events = options.events ?? new EventHub();
  const stopLogging = logEvents(events, log, "server");
  const users = new CurrentUsers(options.users);
  const identity = decodeServerIdentity(options.identity);
  const replay = new ReplayGuard({
    windowMs: options.handshake.clockWindowS * 1000,
    capacity: options.handshake.replayCache,
  });
  const graceMs = options.session.resumeGraceS * 1000;
  const ticketLifetimeMs = Math.max(graceMs, 3_600_000);
  const table = new SessionTable();
  const fleet = options.store?.kind === "redis"
    ? await connectFleet(options.store, log.child("store"))
    : undefined;
  // store.users: the users come from the fleet's Redis (users.yml until it holds some).
  let checkLimits = () => {};
  const sharedUsers = fleet === undefined || options.store?.kind !== "redis" ||
      !options.store.users
    ? undefined
    : await shareUsers(fleet.fleet, {
      apply(next) {
        users.replace(next);
        checkLimits();
      },
      log: log.child("store"),
      url: options.store.url,
    }).catch(async (e) => {
      await fleet.fleet.close();
      throw e;
    });
  // The fleet's own rotated ticket keys (store.ticket_rotation), or the ticket keys file.
  const rotation = options.store?.kind === "redis" ? options.store.ticketRotationS : undefined;
  const fleetTickets = fleet === undefined || rotation === undefined
    ? undefined
    : await startFleetTickets(fleet.fleet, {
      rotateMs: rotation * 1000,
      lifetimeMs: ticketLifetimeMs,
      log: log.child("store"),
    }).catch(async (e) => {
      sharedUsers?.close();
      await fleet.fleet.close();
      throw e;
    });
  const tickets = fleetTickets?.keyring ??
    (options.session.ticketKeysText === undefined ? undefined : new TicketKeyring(
      decodeTicketKeys(options.session.ticketKeysText, { file: "session.ticket_keys" }),
      { lifetimeMs: ticketLifetimeMs },
    ));
  const ops = await startServerOps({
    table,
    events,
    users,
    log,
    admin: options.admin,
    accounting: options.accounting,
    store: options.accountingStore,
    fleet: fleet?.fleet,
    storeStatus: fleet?.status,
  }).catch(async (e) => {
    sharedUsers?.close();
    fleetTickets?.close();
    await fleet?.fleet.close();
    throw e;
  });
  const fleetTunnels = fleet === undefined
    ? undefined
    : new FleetTunnels(fleet.fleet, table, users);
  // Redis back: leases put back at once, counters gathered meanwhile written.
  fleet?.onRecover(() => {
    void fleetTunnels?.renew();
    void ops.accountant.flush();
    void sharedUsers?.reload();
  });
  // The fleet's replay cache keeps a nonce while its Hello could still pass the clock check
  // (twice the window) and refuses Hellos stamped before its replay epoch for one window.
  const clockWindowMs = options.handshake.clockWindowS * 1000;

  const limits = new UserLimits({
    table,
    users,
    events,
    accountant: ops.accountant,
    maxTunnels: options.limits.maxTunnels,
    end: (user, reason, code) => ops.end(user, reason, code),
  });
  checkLimits = () => limits.check();
  const fleetPace = fleet === undefined
    ? undefined
    : new FleetPace(fleet.fleet, table, users, limits, events);
  const fleetStreams = fleet === undefined
    ? undefined
    : shareStreamCounts(fleet.fleet, table, users, limits);
  const lockout = lockoutSettings(options.auth);
  const guard = new LoginGuard(lockout);
  const sharedLockout = fleet === undefined
    ? undefined
    : shareLockout(fleet.fleet, guard, lockout, events);

  // Disabled, expired and removed users are refused, but their own clients' reconnects
  // are not failed logins (UserRecord.inactive).
  function lookupUser(name: string): UserRecord | undefined {
    const u = users.get(name);
    if (u === undefined) {
      const publicKey = users.removedKey(name);
      if (publicKey === undefined) return undefined;
      return {
        userId: name,
        publicKey,
        inactive: { reason: "removed from users.yml", removed: true },
      };
    }
    const record = toUserRecord(u, options.auth);
    if (u.disabled) record.inactive = { reason: "disabled in users.yml" };
    else if (u.expires !== undefined && u.expires.getTime() <= Date.now()) {
      record.inactive = { reason: `expired at ${u.expires.toISOString()}` };
    }
    return record;
  }

  const decoy = options.fallback.mode === "decoy"
    ? Decoy.start(options.decoyTimeouts, options.log)
    : undefined;
  const fallback = options.fallback.mode === "upstream" && options.fallback.upstream !== undefined
    ? { hostname: options.fallback.upstream.host, port: options.fallback.upstream.port }
    : undefined;

  /** Stops the limits, the fleet's shared parts and the operations (start-up failure or close). */
  const closeShared = async () => {
    limits.close();
    fleetPace?.close();
    fleetStreams?.close();
    sharedLockout?.close();
    fleetTickets?.close();
    sharedUsers?.close();
    await fleetTunnels?.close();
    await ops.close();
    await fleet?.fleet.close();
  };
  // The transport registry: node:tls for "tls" (accepted sockets get TCP_NODELAY), plain TCP,
  // WebSocket at ws.path ("ws", "wss"); the PROXY v2 header first when a TCP front sends one.
  const listener = await getTransport(options.transport).listen({
    hostname: options.listen.host,
    port: options.listen.port,
    ...(options.tls === undefined ? {} : {
      certPem: options.tls.certPem,
      keyPem: options.tls.keyPem,
      alpn: options.tls.alpn,
      ...(options.tls.clientCaPem === undefined ? {} : { clientCaPem: options.tls.clientCaPem }),
    }),
    ...(options.ws === undefined ? {} : {
      path: options.ws.path,
      // A silent visitor meets the decoy's header timer, not a longer wait for the upgrade.
      upgradeDeadlineMs: Math.min(WS_UPGRADE_DEADLINE_MS, decoy?.headerTimeoutMs ?? Infinity),
    }),
    ...(options.proxyProtocol ? { proxyProtocol: true } : {}),
  }).catch(async (e) => {
    await closeShared();
    throw e;
  });
  const certWatch = options.tls !== undefined && options.tlsFiles !== undefined &&
      listener.setCertificate !== undefined
    ? watchCertificate({
      files: options.tlsFiles,
      current: options.tls,
      apply: (certPem, keyPem) => listener.setCertificate!(certPem, keyPem),
      events,
    })
    : undefined;
  const laddr = listener.addr as Deno.NetAddr;
  const addr = { hostname: laddr.hostname, port: laddr.port };
  events.emit({
    type: "listening",
    kind: "tunnel",
    addr,
    transport: options.transport,
    ...(options.ws === undefined ? {} : { path: options.ws.path }),
    ...(options.proxyProtocol ? { proxyProtocol: true } : {}),
  });

  const direct = options.socks5Direct.enabled
    ? serveDirectSocks(options.socks5Direct.listen, {
      log: log.child("direct"),
      events,
      connectTimeoutMs: options.limits.connectTimeoutS * 1000,
    })
    : undefined;

  const listens = [
    addr.hostname,
    options.listen.host,
    ...(direct === undefined ? [] : [direct.addr.hostname]),
    ...(ops.adminAddr === undefined ? [] : [ops.adminAddr.hostname]),
  ];
  const local = new LocalAddresses();
  const resolver = options.egress?.resolver;
  const resolve = options.resolve ?? (resolver === undefined ? undefined : dnsResolve(resolver));
  const acceptor = new ConnectionAcceptor({
    cookies: new CookieJar(serverPublicKey(identity)),
    handshake: (hsLog, allowLogin, cookie) =>
      new ServerHandshake({
        allowLogin,
        cookie,
        identity,
        lookupUser,
        replay,
        now: Date.now,
        kex: options.handshake.kex,
        aead: options.handshake.aead,
        clockWindowMs: options.handshake.clockWindowS * 1000,
        recordPadding: options.padding ?? DEFAULT_PADDING,
        log: hsLog,
        lookupSession: (id) => table.lookup(id),
        ...(tickets === undefined ? {} : { tickets }),
      }),
    table,
    policy: new StreamPolicy({
      users,
      connectTimeoutMs: options.limits.connectTimeoutS * 1000,
      udpIdleMs: options.limits.udpIdleTimeoutS * 1000,
      events,
      block: new EgressBlock(options.egress?.block ?? DEFAULT_EGRESS_BLOCK, selfAddresses(listens)),
      // On a wildcard address every address of this machine is a listening one (`self`).
      ...(listens.some(isWildcard) ? { isLocal: (a) => local.has(a) } : {}),
      ...(resolve === undefined ? {} : { resolve }),
      log: log.child("udp"),
      admit: (user) => limits.admitStream(user),
    }),
    users,
    jwtVerifier: (name) => {
      // A disabled, expired or removed user renews nothing (their sessions end anyway).
      const r = lookupUser(name);
      return r?.inactive === undefined ? r?.jwt : undefined;
    },
    limits,
    guard,
    ...(fleet === undefined ? {} : {
      claimHello: (hello) => fleet.claim(hello, clockWindowMs),
      fleetTunnels,
    }),
    ...(sharedLockout === undefined ? {} : { onFailedLogin: sharedLockout.failed }),
    settings: options,
    clientCertificates: options.transport === "tls" && options.tls?.clientCaPem !== undefined,
    fallback,
    ...(decoy === undefined ? {} : { decoy }),
    wholeFirstRead: options.transport === "tls",
    log,
    events,
  });
  const done = acceptor.serve(listener as ServerListener);

  return {
    addr,
    directAddr: direct?.addr,
    sessions: table.live,
    events,
    accountant: ops.accountant,
    adminAddr: ops.adminAddr,
    kick: (user, by = "the server") => ops.kick(user, by),
    setUsers(next) {
      if (sharedUsers !== undefined && sharedUsers.version > 0) {
        log.warn("users not replaced: they come from the fleet's store (store.users)");
        return;
      }
      users.replace(next);
      limits.check();
    },
    async close() {
      certWatch?.close();
      try {
        listener.close();
      } catch {
        // already closed
      }
      await Promise.all(
        [...table.live].map((s) =>
          s.notifyAndClose("server shutting down", ReleaseReason.SHUTDOWN)
        ),
      );
      acceptor.closeConnections();
      await direct?.close();
      await decoy?.close();
      await done;
      await closeShared();
      stopLogging();
    },
    done,
  };
}
