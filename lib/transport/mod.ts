/**
 * Byte transports: TLS (camouflage) or TCP listeners and dialers with clear
 * errors and deadlines, the `ByteStream` interface the tunnel depends on,
 * and an in-memory pipe for tests.
 *
 * @example
 * ```ts ignore
 * import { dial, listen } from "./mod.ts";
 * const listener = listen({ transport: "tls", hostname: "127.0.0.1", port: 0, certPem, keyPem });
 * const conn = await dial({ transport: "tls", hostname: "127.0.0.1", port: listener.addr.port, caPems: [caPem] });
 * ```
 *
 * @module
 */
import { dialTcp, listenTcp } from "./tcp.ts";
import { dialTls, listenTls } from "./tls.ts";
import type { TransportDialOptions, TransportListenOptions } from "./registry.ts";

export { type ByteStream, writeAll } from "./types.ts";
export { DEFAULT_PIPE_CAPACITY, memoryPipe } from "./memory_pipe.ts";
export { DEFAULT_DIAL_TIMEOUT_MS } from "./_dial.ts";
export {
  type DialContext,
  dialTimeoutError,
  explainDialError,
  explainListenError,
  formatDuration,
  formatHostPort,
} from "./errors.ts";
export { dialTcp, listenTcp, type TcpDialOptions, type TcpListenOptions } from "./tcp.ts";
export {
  DEFAULT_ALPN,
  dialTls,
  listenTls,
  type TlsDialOptions,
  type TlsListenOptions,
} from "./tls.ts";

export {
  dialWs,
  upgradeAccepted,
  WS_MAX_FRAME_OUT,
  WS_UPGRADE_DEADLINE_MS,
  type WsAcceptOptions,
  WsConn,
  type WsDialOptions,
  wsListener,
} from "./ws.ts";
export { acceptProxyV2, PROXY_HEADER_DEADLINE_MS } from "./proxy_protocol.ts";
export { fetchPeerChain, type PeerChainOptions } from "./peer_chain.ts";
export {
  type ClientCertificate,
  getTransport,
  registerTransport,
  type Transport,
  type TransportConn,
  type TransportDialOptions,
  type TransportListener,
  type TransportListenOptions,
  transportNames,
} from "./registry.ts";

/**
 * Options for {@linkcode listen}: a registry transport's listen options
 * (TLS requires `certPem` and `keyPem`; ALPN defaults to
 * `["h2", "http/1.1"]`) and which transport.
 */
export interface ListenOptions extends TransportListenOptions {
  transport: "tls" | "tcp";
}

/**
 * Options for {@linkcode dial}: a registry transport's dial options (TLS
 * trust anchors are added to Deno's default roots; the deadline defaults
 * to 10 000 ms) and which transport.
 */
export interface DialOptions extends TransportDialOptions {
  transport: "tls" | "tcp";
}

/**
 * Listens with TLS (`Deno.listenTls`) or plain TCP (`Deno.listen`).
 * Throws `TypeError` if TLS lacks `certPem`/`keyPem`; listen errors say
 * which address and why ("Cannot listen on 127.0.0.1:8443: address already
 * in use").
 *
 * @example
 * ```ts
 * import { listen } from "./mod.ts";
 * using listener = listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
 * ```
 */
export function listen(opts: ListenOptions & { transport: "tls" }): Deno.TlsListener;
export function listen(opts: ListenOptions & { transport: "tcp" }): Deno.TcpListener;
export function listen(opts: ListenOptions): Deno.TlsListener | Deno.TcpListener;
export function listen(opts: ListenOptions): Deno.TlsListener | Deno.TcpListener {
  if (opts.transport === "tcp") return listenTcp(opts);
  if (opts.transport !== "tls") {
    throw new TypeError(`Cannot listen: unknown transport "${opts.transport}"`);
  }
  if (opts.certPem === undefined || opts.keyPem === undefined) {
    throw new TypeError("Cannot listen with TLS: certPem and keyPem are required");
  }
  return listenTls({
    hostname: opts.hostname,
    port: opts.port,
    certPem: opts.certPem,
    keyPem: opts.keyPem,
    ...(opts.alpn === undefined ? {} : { alpn: opts.alpn }),
  });
}

/**
 * Dials with TLS (verified, handshake completed) or TCP, within
 * `timeoutMs`. See {@linkcode dialTls} for the error messages.
 *
 * @example
 * ```ts
 * import { dial, listen } from "./mod.ts";
 * using listener = listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
 * using conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: listener.addr.port });
 * ```
 */
export function dial(opts: DialOptions & { transport: "tls" }): Promise<Deno.TlsConn>;
export function dial(opts: DialOptions & { transport: "tcp" }): Promise<Deno.TcpConn>;
export function dial(opts: DialOptions): Promise<Deno.TlsConn | Deno.TcpConn>;
export function dial(opts: DialOptions): Promise<Deno.TlsConn | Deno.TcpConn> {
  const common = {
    hostname: opts.hostname,
    port: opts.port,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
  };
  if (opts.transport === "tcp") return dialTcp(common);
  if (opts.transport !== "tls") {
    return Promise.reject(new TypeError(`Cannot dial: unknown transport "${opts.transport}"`));
  }
  return dialTls(opts);
}

/**
 * Tunes a TCP connection if it is one (`Deno.TcpConn`): `TCP_NODELAY` on by
 * default, keepalive if asked. Returns false for other streams (TLS, pipes).
 *
 * @example
 * ```ts
 * import { listen, tuneTcp } from "./mod.ts";
 * using listener = listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * tuneTcp(conn, { keepAlive: true }); // true
 * ```
 */
export function tuneTcp(
  conn: unknown,
  opts: { noDelay?: boolean; keepAlive?: boolean } = {},
): boolean {
  if (
    typeof conn !== "object" || conn === null || !("setNoDelay" in conn) ||
    !("setKeepAlive" in conn)
  ) {
    return false;
  }
  const tcp = conn as Deno.TcpConn;
  tcp.setNoDelay(opts.noDelay ?? true);
  if (opts.keepAlive !== undefined) tcp.setKeepAlive(opts.keepAlive);
  return true;
}
