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

/** Connects and authenticates one tunnel; returns the running session. */
export async function connectTunnel(
  config: ClientConfig,
  opts: ClientOptions,
): Promise<{ session: Session; secrets: SessionSecrets }> {
  const log = opts.log;
  const target = opts.server ?? config.server;
  const where = `${target.host}:${target.port}`;
  const caPem = opts.caPem ?? config.caPem;
  const conn = await dial({
    transport: config.transport,
    hostname: target.host,
    port: target.port,
    serverName: config.serverName,
    ...(caPem === undefined ? {} : { caPems: [caPem] }),
    timeoutMs: config.limits.connectTimeoutS * 1000,
  });
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
    let answered = false;
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
      if (chunk === null) {
        throw new TunnelError(
          answered
            ? `The server at ${where} refused the login: check the user id, key, token, TOTP code and this machine's clock`
            : `The server at ${where} closed the connection without answering: it may not be a NitroSocks server, ` +
              `its key may differ from the profile's, or this machine's clock may be off by minutes`,
        );
      }
      let step;
      try {
        step = hs.push(chunk);
      } catch (e) {
        if (e instanceof ProtocolError && e.code === "AUTH_FAILED") {
          throw new TunnelError(
            `The server at ${where} is not the server in your profile: its identity does not match the pinned key ` +
              `(a different server or an interceptor is answering); refusing to send credentials`,
            { cause: e },
          );
        }
        throw new TunnelError(
          `The server at ${where} did not answer as a NitroSocks server (${describeError(e)}): ` +
            `it may be a plain web server, the profile's server key may be out of date, or this machine's clock may be off`,
          { cause: e },
        );
      }
      if (step.type === "need_more") continue;
      if (step.type === "send") {
        answered = true;
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
