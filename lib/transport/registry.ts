/**
 * The transport registry: how the tunnel's byte stream reaches the other
 * side. A transport is a name with a `listen` (the server's tunnel port) and
 * a `dial` (the client's way in); the tunnel layer asks the registry by the
 * name in its configuration and never knows more. `tls` (the default:
 * camouflage plus one more layer), `tcp` (the inner layer alone), `ws`
 * (WebSocket over plain HTTP, for a web front or CDN that terminates TLS)
 * and `wss` (WebSocket over the server's own TLS) are registered here; a
 * new way in — an HTTP/2 stream, QUIC — is one module that calls
 * {@linkcode registerTransport}. `ws.ts` is the worked example: a listener
 * that prepares each accepted connection (the upgrade) and hands anything
 * else on `refused`, and a dialer.
 *
 * The inner NitroSocks layer is end-to-end whatever the transport, so a
 * transport only has to move bytes reliably and in order.
 *
 * @module
 */
import { dialTcp, listenTcp } from "./tcp.ts";
import { dialTls } from "./tls.ts";
import { listenNodeTls, listenNodeTlsProxied } from "./node_tls.ts";
import { preparedListener } from "./_prepared.ts";
import { acceptProxyV2 } from "./proxy_protocol.ts";
import type { ByteStream } from "./types.ts";
import { dialWs, upgradeAccepted } from "./ws.ts";

/** A connection a transport accepted or dialed. */
export interface TransportConn extends ByteStream {
  /** The client's address (from the PROXY v2 header when a front sent one). */
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr;
  /**
   * Set on an accepted connection that failed the transport's own check
   * (not a WebSocket upgrade at the path, no valid PROXY header): why. Its
   * bytes are still to be read; the server serves it as a probe (the
   * fallback web server), without a login.
   */
  readonly refused?: string;
  /**
   * Accepted TLS connections when the listener asked for client
   * certificates (`clientCaPem`): whether the client presented one the CA
   * signed, and its subject common name.
   */
  readonly clientCertificate?: ClientCertificate;
  /**
   * When the listener accepted it (`Date.now()`), set on connections a
   * transport prepared before handing them on (the WebSocket upgrade, the
   * PROXY header): the fallback's timers count from here, as a web
   * server's count from its accept.
   */
  acceptedAt?: number;
}

/** What a server learned about a TLS client's certificate. */
export interface ClientCertificate {
  /** A certificate was presented and chains to the listener's `clientCaPem`. */
  authorized: boolean;
  /** The certificate's subject CN, when it is authorized. */
  commonName?: string;
}

/** A listening transport: yields accepted connections until closed. */
export interface TransportListener extends AsyncIterable<TransportConn> {
  /** The address actually bound (port 0 resolves to the real port). */
  readonly addr: Deno.NetAddr;
  close(): void;
  /**
   * Transports that terminate TLS: serve this certificate chain and key to
   * new connections from now on (throws, keeping the old pair, when they do
   * not load).
   */
  setCertificate?(certPem: string, keyPem: string): void;
}

/** What a server asks a transport to listen with. */
export interface TransportListenOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** TLS certificate chain and key, PEM (transports that terminate TLS). */
  certPem?: string;
  keyPem?: string;
  /** ALPN protocols offered (TLS). */
  alpn?: string[];
  /** `ws`/`wss`: the path the WebSocket is served at. */
  path?: string;
  /** Read a PROXY v2 header before anything else (the connection comes from a TCP front). */
  proxyProtocol?: boolean;
  /**
   * `ws`/`wss`: how long a connection has for its whole upgrade request
   * before it is refused to the fallback (default 10 s); a server keeps it
   * within its fallback's header timer.
   */
  upgradeDeadlineMs?: number;
  /** TLS: ask clients for a certificate and check it against these CA certificates (PEM). */
  clientCaPem?: string;
}

/** What a client asks a transport to dial with. */
export interface TransportDialOptions {
  hostname: string;
  port: number;
  /** TLS: SNI and certificate name, default `hostname`. */
  serverName?: string;
  /** TLS: trust anchors, PEM. */
  caPems?: string[];
  /** TLS ALPN. */
  alpn?: string[];
  /** `ws`/`wss`: the WebSocket's path (the URL's path). */
  path?: string;
  /** TLS: a client certificate chain and its private key, PEM (for servers with `tls.client_ca`). */
  clientCertPem?: string;
  clientKeyPem?: string;
  /** Deadline for connect (and any handshake of the transport's own). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A way for the tunnel's bytes to travel. */
export interface Transport {
  /** The name configurations use (`transport: tls`). */
  readonly name: string;
  /** One line for `--help` and docs. */
  readonly summary: string;
  listen(options: TransportListenOptions): Promise<TransportListener>;
  dial(options: TransportDialOptions): Promise<TransportConn>;
}

const registry = new Map<string, Transport>();

/**
 * Adds a transport. A name may be registered once: a second registration
 * is a programming error and throws `TypeError`.
 *
 * @example
 * ```ts
 * import { getTransport, registerTransport } from "./registry.ts";
 * const tcp = getTransport("tcp");
 * registerTransport({ ...tcp, name: "tcp-copy", summary: "TCP again, for the example" });
 * ```
 */
export function registerTransport(transport: Transport): void {
  if (!/^[a-z][a-z0-9+.-]*$/.test(transport.name)) {
    throw new TypeError(`Cannot register transport "${transport.name}": not a lower-case name`);
  }
  if (registry.has(transport.name)) {
    throw new TypeError(`Cannot register transport "${transport.name}": already registered`);
  }
  registry.set(transport.name, transport);
}

/**
 * The transport registered as `name`; throws `TypeError` naming the known
 * ones when there is none.
 *
 * @example
 * ```ts
 * import { getTransport } from "./registry.ts";
 * const tls = getTransport("tls");
 * ```
 */
export function getTransport(name: string): Transport {
  const t = registry.get(name);
  if (t === undefined) {
    throw new TypeError(
      `Unknown transport "${name}": expected one of ${transportNames().join(", ")}`,
    );
  }
  return t;
}

/** Names of the registered transports, in registration order. */
export function transportNames(): string[] {
  return [...registry.keys()];
}

/** Adapts a Deno listener (plain TCP) to {@linkcode TransportListener}. */
function fromDenoListener(l: Deno.TcpListener): TransportListener {
  return {
    addr: l.addr,
    close: () => l.close(),
    async *[Symbol.asyncIterator]() {
      for await (const c of l) {
        c.setNoDelay(true);
        yield c;
      }
    },
  };
}

/** Plain TCP, with the PROXY v2 header read first when asked. */
function listenPlain(o: TransportListenOptions): TransportListener {
  const l = fromDenoListener(listenTcp({ hostname: o.hostname, port: o.port }));
  return o.proxyProtocol === true ? preparedListener(l, (c) => acceptProxyV2(c)) : l;
}

/** TLS over node:tls (TCP_NODELAY, see node_tls.ts); the PROXY v2 header before TLS when asked. */
function listenTlsFor(o: TransportListenOptions, what: string): Promise<TransportListener> {
  if (o.certPem === undefined || o.keyPem === undefined) {
    return Promise.reject(
      new TypeError(`Cannot listen with ${what}: certPem and keyPem are required`),
    );
  }
  const opts = {
    hostname: o.hostname,
    port: o.port,
    certPem: o.certPem,
    keyPem: o.keyPem,
    ...(o.alpn === undefined ? {} : { alpn: o.alpn }),
    ...(o.clientCaPem === undefined ? {} : { clientCaPem: o.clientCaPem }),
  };
  return o.proxyProtocol === true ? listenNodeTlsProxied(opts) : listenNodeTls(opts);
}

function wsPath(o: { path?: string }, what: string): string {
  if (o.path === undefined || !o.path.startsWith("/")) {
    throw new TypeError(`Cannot ${what}: a WebSocket path starting with "/" is required`);
  }
  return o.path;
}

/**
 * WebSocket upgrades at the path over `inner`; a connection already
 * refused (no PROXY header) skips the upgrade.
 */
function wsOver(
  inner: TransportListener,
  path: string,
  deadlineMs: number | undefined,
): TransportListener {
  const opts = { path, ...(deadlineMs === undefined ? {} : { deadlineMs }) };
  return preparedListener(
    inner,
    (c) => c.refused !== undefined ? Promise.resolve(c) : upgradeAccepted(c, opts),
  );
}

registerTransport({
  name: "tls",
  summary: "TLS 1.3 (ALPN h2/http/1.1): looks like a web server",
  listen(o) {
    return listenTlsFor(o, "TLS");
  },
  dial(o) {
    return dialTls(o);
  },
});

registerTransport({
  name: "tcp",
  summary: "plain TCP: the inner layer alone (for a front that adds its own TLS)",
  listen(o) {
    try {
      return Promise.resolve(listenPlain(o));
    } catch (e) {
      return Promise.reject(e);
    }
  },
  dial(o) {
    return dialTcp({
      hostname: o.hostname,
      port: o.port,
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
  },
});

registerTransport({
  name: "ws",
  summary: "WebSocket over plain HTTP at ws.path: for a web front or CDN that terminates TLS",
  listen(o) {
    try {
      return Promise.resolve(
        wsOver(listenPlain(o), wsPath(o, "listen with ws"), o.upgradeDeadlineMs),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  },
  dial(o) {
    try {
      return dialWs({ ...wsDial(o), path: wsPath(o, "dial ws"), secure: false });
    } catch (e) {
      return Promise.reject(e);
    }
  },
});

registerTransport({
  name: "wss",
  summary: "WebSocket over the server's own TLS at ws.path",
  async listen(o) {
    const path = wsPath(o, "listen with wss");
    return wsOver(await listenTlsFor(o, "wss"), path, o.upgradeDeadlineMs);
  },
  dial(o) {
    try {
      return dialWs({ ...wsDial(o), path: wsPath(o, "dial wss"), secure: true });
    } catch (e) {
      return Promise.reject(e);
    }
  },
});

function wsDial(o: TransportDialOptions) {
  return {
    hostname: o.hostname,
    port: o.port,
    ...(o.serverName === undefined ? {} : { serverName: o.serverName }),
    ...(o.caPems === undefined ? {} : { caPems: o.caPems }),
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  };
}
