/**
 * The admin listener (`admin.listen` in server.yml): a small HTTP server
 * for the operator's tools.
 *
 * - `GET /metrics`: the Prometheus text format (`nitrosocks_…`).
 * - `GET /status`: the live sessions as JSON ({@linkcode StatusReport}).
 * - `POST /kick?user=NAME`: ends that user's live sessions at once.
 *
 * It serves a loopback address only, unless a bearer token is set; with a
 * token every request must carry `Authorization: Bearer TOKEN` (compared in
 * constant time). Requests from web pages (an `Origin` header) are refused,
 * and without a token the `Host` must be a loopback name, so a page in a
 * local browser can neither kick nor read through DNS rebinding.
 *
 * @module
 */
import { type HostPort, isLoopbackHost, USER_NAME_PATTERN } from "../config/mod.ts";
import { ctEqual, hash } from "../crypto/mod.ts";
import {
  type Accountant,
  EXPOSITION_CONTENT_TYPE,
  renderExposition,
  serverMetrics,
  type StoreState,
} from "../accounting/mod.ts";
import { describeError, type EventSink, type Logger } from "../observe/mod.ts";
import type { KickReport, SessionDirectory, StatusReport } from "./types.ts";

/** Options for {@linkcode startAdmin}. */
export interface AdminOptions {
  /** Where to listen (port 0: any free port). */
  listen: HostPort;
  /** The bearer token; required for an address that is not loopback. */
  token?: string;
  accountant: Accountant;
  sessions: SessionDirectory;
  /** The users (their number is a metric). */
  users: { readonly size: number };
  /** The shared store's state (`store:` of server.yml), when the server has one. */
  store?: () => StoreState;
  log: Logger;
  /** Where the `listening` event goes. */
  events?: EventSink;
  /** When the server started (ms since the epoch); default now. */
  startedAt?: number;
  now?: () => number;
}

/** A running admin listener. */
export interface AdminHandle extends AsyncDisposable {
  /** The address actually bound. */
  readonly addr: { hostname: string; port: number };
  /** Stops serving. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body, null, 1) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

/** "host:port", IPv6 in brackets. */
function where(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Starts the admin listener. Throws `TypeError` for an address that is not
 * loopback without a token, and the listen error (e.g. `AddrInUse`) with the
 * address in its message.
 *
 * @example
 * ```ts ignore
 * const admin = startAdmin({ listen: { host: "127.0.0.1", port: 9090 }, accountant, sessions, users, log });
 * await admin.close();
 * ```
 */
export function startAdmin(options: AdminOptions): AdminHandle {
  const { listen, log } = options;
  const token = options.token;
  if (token === undefined && !isLoopbackHost(listen.host)) {
    throw new TypeError(
      `Refusing to serve admin on ${where(listen.host, listen.port)} without admin.token: ` +
        "it is not a loopback address",
    );
  }
  const now = options.now ?? Date.now;
  const startedAt = options.startedAt ?? now();
  const tokenHash = token === undefined ? undefined : hash(encoder.encode(token));

  function authorized(req: Request): boolean {
    if (tokenHash === undefined) return true;
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.get("authorization") ?? "");
    // Hashes compared: constant time, and the token's length does not show either.
    return ctEqual(hash(encoder.encode(m?.[1] ?? "")), tokenHash);
  }

  function metrics(): Response {
    options.accountant.refresh();
    const mem = Deno.memoryUsage();
    const body = renderExposition(serverMetrics({
      snapshot: options.accountant.snapshot(),
      users: options.users.size,
      streamsLive: options.sessions.streamsLive(),
      ...(options.store === undefined ? {} : { store: options.store() }),
      startedAt,
      now: now(),
      memory: { rss: mem.rss, heapUsed: mem.heapUsed },
    }));
    return new Response(body, { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
  }

  function status(): Response {
    const report: StatusReport = {
      server: {
        startedAt: new Date(startedAt).toISOString(),
        uptimeS: Math.round((now() - startedAt) / 100) / 10,
        users: options.users.size,
      },
      sessions: options.sessions.list(),
    };
    return json(200, report);
  }

  async function kick(url: URL, remote: string): Promise<Response> {
    const user = url.searchParams.get("user");
    if (user === null || !USER_NAME_PATTERN.test(user)) {
      return text(400, "Bad request: give ?user=NAME (1-64 of A-Z a-z 0-9 . _ -)\n");
    }
    const sessions = await options.sessions.kick(user, `admin ${remote}`);
    const report: KickReport = { user, sessions };
    return json(200, report);
  }

  async function handle(req: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const remote = (info.remoteAddr as Deno.NetAddr).hostname;
    const url = new URL(req.url);
    if (req.headers.has("origin")) {
      log.warn(`refused a request from a web page (Origin ${req.headers.get("origin")})`);
      return text(403, "Forbidden: the admin listener does not serve web pages\n");
    }
    if (tokenHash === undefined && !isLoopbackHost(url.hostname)) {
      return text(403, "Forbidden: Host must be a loopback name without admin.token\n");
    }
    if (!authorized(req)) {
      log.warn(`refused ${req.method} ${url.pathname} from ${remote}: missing or wrong token`);
      return text(401, "Unauthorized: send Authorization: Bearer TOKEN (admin.token)\n", {
        "www-authenticate": 'Bearer realm="nitrosocks"',
      });
    }
    const route: Record<string, [string, () => Response | Promise<Response>]> = {
      "/metrics": ["GET", metrics],
      "/status": ["GET", status],
      "/kick": ["POST", () => kick(url, remote)],
    };
    const r = route[url.pathname];
    if (r === undefined || !Object.hasOwn(route, url.pathname)) {
      return text(404, "Not found: GET /metrics, GET /status, POST /kick?user=NAME\n");
    }
    const [method, run] = r;
    const allowed = method === "GET" ? ["GET", "HEAD"] : [method];
    if (!allowed.includes(req.method)) {
      return text(405, `Method not allowed: ${url.pathname} takes ${method}\n`, {
        allow: allowed.join(", "),
      });
    }
    try {
      return await run();
    } catch (e) {
      log.error(`${req.method} ${url.pathname}: ${describeError(e)}`);
      return text(500, "Internal error\n");
    }
  }

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: listen.host,
      port: listen.port,
      onListen() {},
      onError(e) {
        log.error(`admin: ${describeError(e)}`);
        return text(500, "Internal error\n");
      },
    }, handle);
  } catch (e) {
    const at = `Cannot listen for admin on ${where(listen.host, listen.port)}`;
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Deno.errors.AddrInUse(`${at}: the address is in use`, { cause: e });
    }
    throw new Error(`${at}: ${describeError(e)}`, { cause: e });
  }
  const addr = { hostname: server.addr.hostname, port: server.addr.port };
  options.events?.emit({ type: "listening", kind: "admin", addr });
  let closed: Promise<void> | undefined;
  const close = () => closed ??= server.shutdown();
  return { addr, close, [Symbol.asyncDispose]: close };
}
