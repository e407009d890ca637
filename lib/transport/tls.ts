/**
 * TLS listen and dial. TLS here is camouflage, not the trust anchor: the
 * NitroSocks handshake authenticates the server by its pinned key. Still,
 * certificates are always verified (against the profile's CA PEMs, which
 * Deno adds to its default roots); nothing here disables verification.
 *
 * @module
 */
import { withDeadline } from "./_dial.ts";
import { explainListenError } from "./errors.ts";

/** ALPN offered by default: what a browser offers. */
export const DEFAULT_ALPN: readonly string[] = ["h2", "http/1.1"];

/** Options for {@linkcode listenTls}. */
export interface TlsListenOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** Certificate chain, PEM (leaf first). */
  certPem: string;
  /** Private key, PEM (PKCS#8, SEC1 or PKCS#1). */
  keyPem: string;
  /** ALPN protocols, default `["h2", "http/1.1"]`. */
  alpn?: string[];
  /** Request a client certificate and verify it against these CA certificates (PEM). */
  clientCaPem?: string;
}

/** Options for {@linkcode dialTls}. */
export interface TlsDialOptions {
  hostname: string;
  port: number;
  /** Name sent as SNI and checked against the certificate; default `hostname`. */
  serverName?: string;
  /** Extra trust anchors, PEM (added to Deno's default roots). */
  caPems?: string[];
  /** ALPN protocols, default `["h2", "http/1.1"]`. */
  alpn?: string[];
  /** A client certificate chain and private key, PEM, for servers that ask for one. */
  clientCertPem?: string;
  clientKeyPem?: string;
  /** Deadline for connect plus handshake, default 10 000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Listens for TLS connections (TLS 1.2/1.3 via rustls). The handshake runs
 * on the first read or write of each accepted connection, or on
 * `conn.handshake()`; put a deadline on it.
 *
 * @example
 * ```ts ignore
 * import { listenTls } from "./tls.ts";
 * const listener = listenTls({ hostname: "127.0.0.1", port: 8443, certPem, keyPem });
 * ```
 */
export function listenTls(opts: TlsListenOptions): Deno.TlsListener {
  try {
    return Deno.listenTls({
      hostname: opts.hostname,
      port: opts.port,
      transport: "tcp",
      cert: opts.certPem,
      key: opts.keyPem,
      alpnProtocols: opts.alpn ?? [...DEFAULT_ALPN],
    });
  } catch (e) {
    throw explainListenError(e, opts);
  }
}

/**
 * Connects over TCP, then runs the TLS handshake to completion within the
 * deadline, so certificate problems surface here with a clear message:
 * "TLS certificate not trusted by the profile's CA: …", "TLS certificate
 * not valid for server name …", "connection refused by …", "timed out
 * after 10 s connecting to …". The negotiated ALPN is in
 * `(await conn.handshake()).alpnProtocol` (already resolved).
 *
 * @example
 * ```ts ignore
 * import { dialTls } from "./tls.ts";
 * const conn = await dialTls({ hostname: "127.0.0.1", port: 8443, serverName: "cdn.example", caPems: [caPem] });
 * (await conn.handshake()).alpnProtocol; // "h2"
 * ```
 */
export function dialTls(opts: TlsDialOptions): Promise<Deno.TlsConn> {
  const serverName = opts.serverName ?? opts.hostname;
  const ctx = {
    hostname: opts.hostname,
    port: opts.port,
    serverName,
    customCa: (opts.caPems?.length ?? 0) > 0,
  };
  const { clientCertPem: cert, clientKeyPem: key } = opts;
  if (cert !== undefined && key !== undefined) {
    // Deno.startTls cannot present a client certificate; Deno.connectTls can.
    return withDeadline(ctx, opts, async (_signal, track) => {
      const tls = await Deno.connectTls({
        hostname: opts.hostname,
        port: opts.port,
        caCerts: opts.caPems ?? [],
        alpnProtocols: opts.alpn ?? [...DEFAULT_ALPN],
        cert,
        key,
      });
      track(tls);
      await tls.handshake();
      return tls;
    });
  }
  return withDeadline(ctx, opts, async (signal, track) => {
    const tcp = await Deno.connect({
      hostname: opts.hostname,
      port: opts.port,
      transport: "tcp",
      signal,
    });
    track(tcp);
    tcp.setNoDelay(true);
    const tls = await Deno.startTls(tcp, {
      hostname: serverName,
      caCerts: opts.caPems ?? [],
      alpnProtocols: opts.alpn ?? [...DEFAULT_ALPN],
    });
    track(tls);
    await tls.handshake();
    return tls;
  });
}
