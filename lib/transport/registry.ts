/**
 * The transport registry: how the tunnel's byte stream reaches the other
 * side. A transport is a name with a `listen` (the server's tunnel port) and
 * a `dial` (the client's way in); the tunnel layer asks the registry by the
 * name in its configuration and never knows more. `tls` (the default:
 * camouflage plus one more layer) and `tcp` (the inner layer alone) are
 * built in; a new way in — WebSocket behind a CDN, an HTTP/2 stream, QUIC —
 * is one module that calls {@linkcode registerTransport}.
 *
 * The inner NitroSocks layer is end-to-end whatever the transport, so a
 * transport only has to move bytes reliably and in order.
 *
 * @module
 */
import { dialTcp, listenTcp } from "./tcp.ts";
import { dialTls } from "./tls.ts";
import { listenNodeTls } from "./node_tls.ts";
import type { ByteStream } from "./types.ts";

/** A connection a transport accepted or dialed. */
export interface TransportConn extends ByteStream {
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr;
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
    [Symbol.asyncIterator]: () => l[Symbol.asyncIterator](),
  };
}

registerTransport({
  name: "tls",
  summary: "TLS 1.3 (ALPN h2/http/1.1): looks like a web server",
  listen(o) {
    if (o.certPem === undefined || o.keyPem === undefined) {
      return Promise.reject(
        new TypeError("Cannot listen with TLS: certPem and keyPem are required"),
      );
    }
    // node:tls, so accepted sockets get TCP_NODELAY (see node_tls.ts).
    return listenNodeTls({
      hostname: o.hostname,
      port: o.port,
      certPem: o.certPem,
      keyPem: o.keyPem,
      ...(o.alpn === undefined ? {} : { alpn: o.alpn }),
    });
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
      return Promise.resolve(fromDenoListener(listenTcp({ hostname: o.hostname, port: o.port })));
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
