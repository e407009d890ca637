/**
 * The NitroSocks client: local SOCKS5 (and optional HTTP CONNECT) listeners
 * whose requests ride one authenticated tunnel to the server, opened on
 * demand and reopened when it breaks.
 *
 * @module
 */
import type { ClientConfig } from "../config/mod.ts";
import { type ClientCredentials, ClientHandshake, type SessionSecrets } from "../handshake/mod.ts";
import { createRecordOpener, createRecordSealer } from "../record/mod.ts";
import { Mux } from "../mux/mod.ts";
import { ProtocolError } from "../errors.ts";
import { dial } from "../transport/mod.ts";
import { writeAll } from "../transport/types.ts";
import { type Connector, type FrontEnd, type Opened, serveSocks } from "./dial.ts";
import { serveHttpConnect } from "./http_connect.ts";
import { describeError, type Logger } from "./log.ts";
import { TimedReader } from "./reader.ts";
import { Session } from "./session.ts";

/** The whole handshake must finish within this. */
const HANDSHAKE_DEADLINE_MS = 15_000;
/** A stream's OPEN must be answered within this. */
const OPEN_TIMEOUT_MS = 30_000;

/** Raised when the tunnel cannot be established; the message says what to do. */
export class TunnelError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TunnelError";
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
    if (msg.includes("web server")) {
      return new TunnelError(
        `The server at ${where} answered as a web server, so it did not accept our first message: ` +
          `the profile's server key may be out of date, this machine's clock may be off by minutes, ` +
          `or the address is not a NitroSocks server`,
        { cause: e },
      );
    }
    if (msg.includes("after our credentials")) {
      return new TunnelError(
        `The server at ${where} refused the login: check the profile's user id, key, token and TOTP ` +
          `secret (ask the server's admin for a fresh profile) and this machine's clock`,
        { cause: e },
      );
    }
    return new TunnelError(
      `The server at ${where} is not the server in your profile: its identity does not match the pinned ` +
        `key (a different server or an interceptor is answering); no credentials were sent`,
      { cause: e },
    );
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
  /** The current tunnel, opened if needed. */
  tunnel(): Promise<Session>;
  close(): Promise<void>;
}

/** What to check after a failed dial, for the error message. */
function dialAdvice(e: unknown): string {
  if (e instanceof Deno.errors.InvalidData) {
    return "check the profile's ca and server_name (behind a TLS-inspecting proxy, pass its CA with --ca)";
  }
  return "check that the NitroSocks server is running and that the profile's server address and port are right";
}

/** Connects and authenticates one tunnel; returns the running session. */
export async function connectTunnel(
  config: ClientConfig,
  opts: ClientOptions,
): Promise<{ session: Session; secrets: SessionSecrets }> {
  const log = opts.log;
  const target = opts.server ?? config.server;
  const where = `${target.host}:${target.port}`;
  const caPem = opts.caPem ?? config.caPem;
  let conn;
  try {
    conn = await dial({
      transport: config.transport,
      hostname: target.host,
      port: target.port,
      serverName: config.serverName,
      ...(caPem === undefined ? {} : { caPems: [caPem] }),
      timeoutMs: config.limits.connectTimeoutS * 1000,
    });
  } catch (e) {
    throw new TunnelError(
      `Cannot reach the server at ${where}: ${describeError(e)}: ${dialAdvice(e)}`,
      { cause: e },
    );
  }
  try {
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
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
    });
    await writeAll(conn, hs.hello());
    const reader = new TimedReader(conn);
    const deadline = Date.now() + HANDSHAKE_DEADLINE_MS;
    while (true) {
      const left = deadline - Date.now();
      const chunk = left > 0 ? await reader.next(left) : "timeout";
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
      const mux = new Mux({
        role: "client",
        maxStreams: config.limits.maxStreams,
        streamWindow: config.limits.streamWindow,
        sessionWindow: config.limits.sessionWindow,
      });
      log.info(`tunnel up to ${where} as "${config.user}" (${secrets.kex}, ${secrets.aead})`);
      const session = new Session({ conn, sealer, opener, mux, log, initial: step.rest });
      return { session, secrets };
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

/**
 * Starts the client: listeners up at once, tunnel opened on start (unless
 * `lazy`) and reopened on demand after a failure.
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
  let current: Session | undefined;
  let connecting: Promise<Session> | undefined;
  let closed = false;

  function tunnel(): Promise<Session> {
    if (closed) return Promise.reject(new TunnelError("Client is shutting down"));
    if (current !== undefined && !current.isClosed) return Promise.resolve(current);
    if (connecting !== undefined) return connecting;
    connecting = (async () => {
      try {
        const { session } = await connectTunnel(config, opts);
        current = session;
        session.run().then((end) => {
          log[end.graceful ? "info" : "warn"](`tunnel ended: ${end.reason}`);
          if (current === session) current = undefined;
        });
        return session;
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  }

  const connector: Connector = {
    async open(_req, raw): Promise<Opened> {
      const session = await tunnel();
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
    http = serveHttpConnect(config.httpConnect.listen, { connector, log: log.child("http") });
    fronts.push(http);
  }
  if (!opts.lazy) {
    await tunnel().catch((e) => log.warn(`${describeError(e)}; will retry on the first request`));
  }
  return {
    socksAddr: socks.addr,
    httpAddr: http?.addr,
    tunnel,
    async close() {
      closed = true;
      current?.close("client shutting down");
      await Promise.all(fronts.map((f) => f.close()));
    },
  };
}
