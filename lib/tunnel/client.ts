/**
 * The NitroSocks client: local SOCKS5 (and optional HTTP CONNECT) listeners
 * whose requests ride one authenticated session to the server. The session
 * outlives its connections: when a connection breaks, stalls or fails
 * authentication, the client reconnects (with backoff and jitter, on the
 * healthiest endpoint), resumes the session with a fresh key exchange, and
 * every stream continues where it stopped.
 *
 * `startClient` is a {@linkcode ClientTunnel} (the session manager: paths,
 * reconnects, rotation) plus the front ends.
 *
 * @module
 */
import { encodeReply, Reply, replyName } from "../socks5/mod.ts";
import { describeError, EventHub, ThrottledLog } from "../observe/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { type Connector, type FrontEnd, type Opened, serveSocks } from "./dial.ts";
import { handleHttpProxy, serveHttpConnect } from "./http_connect.ts";
import { ClientTunnel, type ClientTunnelOptions } from "./client_tunnel.ts";
import type { Session } from "./session.ts";
import { runAssociation } from "./udp_associate.ts";
import { type ForwardContext, startForward, type UdpForwardCounters } from "./forwards.ts";
import { startDnsServer } from "./dns.ts";

export { ClientTunnel, type ClientTunnelOptions } from "./client_tunnel.ts";
export { connectLink, type NewLink, TunnelError } from "./link.ts";
export { PathSelector } from "./path_selector.ts";
export { Reconnector } from "./reconnector.ts";

/** A stream's OPEN must be answered within this by default. */
const OPEN_TIMEOUT_MS = 30_000;
/** What a fast open tells the application at once (bound address unknown yet: 0.0.0.0:0). */
const FAST_OPEN_REPLY = encodeReply(Reply.SUCCEEDED);

/** Options for {@linkcode startClient}: the tunnel's, plus the front ends'. */
export interface ClientOptions extends ClientTunnelOptions {
  /** Listen for SOCKS5 here instead of the profile's address. */
  socks?: { host: string; port: number };
  /** Do not open the tunnel until the first request. */
  lazy?: boolean;
  /** How long a stream's OPEN may wait for the server's answer (ms); default 30 s. */
  openTimeoutMs?: number;
}

/** A running client. */
export interface ClientHandle {
  socksAddr: { hostname: string; port: number };
  httpAddr: { hostname: string; port: number } | undefined;
  /** The profile's `forwards:`, in order, with the addresses they listen on. */
  forwards: {
    protocol: "tcp" | "udp";
    addr: { hostname: string; port: number };
    /** A UDP forward's counters (sources held, evicted, refused). */
    counters?: Readonly<UdpForwardCounters>;
  }[];
  /** The local DNS server's address (UDP and TCP), when `dns:` is set. */
  dnsAddr: { hostname: string; port: number } | undefined;
  /** Listening ports, sessions, resumptions, path changes, lost links, failed connects. */
  readonly events: EventHub;
  /** The current session, opened if needed. */
  tunnel(): Promise<Session>;
  /** How many times a broken connection was resumed. */
  readonly resumptions: number;
  /** Drops the current connection on purpose (tests, rotation): the session resumes. */
  dropConnection(reason?: string): void;
  /** Releases the session gracefully (three-step release) and stops. */
  close(): Promise<void>;
}

/** A failure reply from the server, as the client's log says it. */
function refusalText(code: number): string {
  return code === Reply.NOT_ALLOWED
    ? `${replyName(code)}: the server's routes for this user or its egress policy refuse it`
    : replyName(code);
}

/** The front ends' way into the tunnel: one stream per request, fast open when configured. */
function tunnelConnector(
  tunnel: ClientTunnel,
  opts: {
    fastOpen: boolean;
    openTimeoutMs: number;
    log: ClientOptions["log"];
    events: EventHub;
  },
): Connector {
  const { fastOpen, openTimeoutMs, log, events } = opts;
  const throttled = new ThrottledLog(log);
  return {
    async open(req, raw): Promise<Opened> {
      const session = await tunnel.session();
      if (fastOpen && req.command === "connect") {
        // Success at once: the application's first bytes ride right behind
        // the OPEN, saving a round trip. A target the server cannot reach
        // shows as a closed connection; the log says why.
        const target = formatHostPort(req.host, req.port);
        const id = session.openFast(raw, openTimeoutMs, (why) => {
          log.info(
            "timedOut" in why
              ? `${target}: no answer from the server within ${openTimeoutMs / 1000} s`
              : `${target}: ${refusalText(why.reply[1] ?? Reply.GENERAL_FAILURE)}`,
          );
        });
        return { reply: FAST_OPEN_REPLY, attach: (sock, early) => session.attach(id, sock, early) };
      }
      const { id, reply } = await session.open(raw, openTimeoutMs);
      const code = reply[1] ?? Reply.GENERAL_FAILURE;
      if (code !== Reply.SUCCEEDED) {
        log.info(`${formatHostPort(req.host, req.port)}: ${refusalText(code)}`);
      }
      return { reply, attach: (sock, early) => session.attach(id, sock, early) };
    },
    associate(control, request) {
      return runAssociation(control, request, {
        async open(raw) {
          const session = await tunnel.session();
          const { id, reply } = await session.open(raw, openTimeoutMs);
          return { session, id, reply };
        },
        events,
        log,
        throttled,
      });
    },
  };
}

/**
 * Starts the client: listeners up at once, the session opened on start
 * (unless `lazy`), resumed after any connection failure.
 *
 * @example
 * ```ts ignore
 * const client = await startClient({ profile: await loadClientConfig("alice.yml"), log });
 * console.log(client.socksAddr.port);
 * ```
 */
export async function startClient(options: ClientOptions): Promise<ClientHandle> {
  const { profile, log } = options;
  const events = options.events ?? new EventHub();
  const tunnel = new ClientTunnel({ ...options, events });
  const openTimeoutMs = options.openTimeoutMs ?? OPEN_TIMEOUT_MS;
  const connector = tunnelConnector(tunnel, {
    fastOpen: profile.socks5.fastOpen,
    openTimeoutMs,
    log,
    events,
  });
  const fronts: FrontEnd[] = [];
  const closeAll = () => Promise.all(fronts.map((f) => f.close()));
  const socksAuth = profile.socks5.users === undefined ? {} : { users: profile.socks5.users };
  const httpLog = log.child("http");
  const socks = serveSocks(options.socks ?? profile.socks5.listen, {
    auth: socksAuth,
    connector,
    log: log.child("socks5"),
    events,
    // The SOCKS5 port is also an HTTP proxy (mixed port), with the same logins.
    http: (conn, initial) =>
      handleHttpProxy(
        conn,
        { connector, log: httpLog, users: profile.socks5.users, pac: true },
        initial,
      ),
  });
  fronts.push(socks);
  let http: FrontEnd | undefined;
  if (profile.httpConnect !== undefined) {
    http = serveHttpConnect(profile.httpConnect.listen, {
      connector,
      log: log.child("http"),
      events,
      ...(profile.socks5.users === undefined ? {} : { users: profile.socks5.users }),
    });
    fronts.push(http);
  }
  const forwards: ClientHandle["forwards"] = [];
  let dns: FrontEnd | undefined;
  try {
    // Fixed ports: each forward, then the DNS server; a port that cannot be had stops the start.
    const context: ForwardContext = {
      connector,
      session: () => tunnel.session(),
      openTimeoutMs,
      log,
      events,
    };
    for (const forward of profile.forwards) {
      const front = startForward(forward, context);
      fronts.push(front);
      forwards.push({
        protocol: forward.protocol,
        addr: front.addr,
        ...(front.counters === undefined ? {} : { counters: front.counters }),
      });
    }
    if (profile.dns !== undefined) {
      dns = startDnsServer(profile.dns, context);
      fronts.push(dns);
    }
  } catch (e) {
    await closeAll();
    await tunnel.close();
    throw e;
  }
  if (!options.lazy) {
    await tunnel.session().catch((e) =>
      log.warn(`${describeError(e)}; will retry on the first request`)
    );
  }
  return {
    socksAddr: socks.addr,
    httpAddr: http?.addr,
    forwards,
    dnsAddr: dns?.addr,
    events,
    tunnel: () => tunnel.session(),
    get resumptions() {
      return tunnel.resumptions;
    },
    dropConnection(reason) {
      tunnel.dropConnection(reason);
    },
    async close() {
      await closeAll();
      await tunnel.close();
    },
  };
}
