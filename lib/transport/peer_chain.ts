/**
 * Fetches the certificate chain a TLS server sends, without trusting it:
 * the caller checks what it gets against a pin (a share link's CA hash).
 * Nothing is sent after the handshake; the connection is closed at once.
 *
 * @module
 */
import tls from "node:tls";
import { type DialContext, dialTimeoutError, explainDialError } from "./errors.ts";
import { DEFAULT_DIAL_TIMEOUT_MS } from "./_dial.ts";

/** node's socket errors as the `Deno.errors` class `explainDialError` expects. */
function denoError(e: Error & { code?: string }): Error {
  const E = e.code === "ECONNREFUSED"
    ? Deno.errors.ConnectionRefused
    : e.code === "ENETUNREACH"
    ? Deno.errors.NetworkUnreachable
    : e.code === "ECONNRESET"
    ? Deno.errors.ConnectionReset
    : undefined;
  return E === undefined ? e : new E(e.message, { cause: e });
}

/** Options for {@linkcode fetchPeerChain}. */
export interface PeerChainOptions {
  hostname: string;
  port: number;
  /** SNI; default `hostname`. */
  serverName?: string;
  /** Deadline for connect plus handshake, default 10 000 ms. */
  timeoutMs?: number;
}

/**
 * The DER certificates the server sent, leaf first. Rejects with the
 * explained dial error ("connection refused by …", "timed out after …").
 *
 * @example
 * ```ts ignore
 * import { fetchPeerChain } from "./peer_chain.ts";
 * const chain = await fetchPeerChain({ hostname: "127.0.0.1", port: 8443, serverName: "vpn.example.org" });
 * chain.length; // 2: the server's certificate and its CA
 * ```
 */
export function fetchPeerChain(opts: PeerChainOptions): Promise<Uint8Array[]> {
  const serverName = opts.serverName ?? opts.hostname;
  const ctx: DialContext = { hostname: opts.hostname, port: opts.port, serverName };
  const ms = opts.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: opts.hostname,
      port: opts.port,
      // An IP address is not a valid SNI value; node omits it then.
      servername: serverName,
      // Only to read the chain: the caller checks it against its pin.
      rejectUnauthorized: false,
      ALPNProtocols: ["h2", "http/1.1"],
    });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(dialTimeoutError(ctx, ms));
    }, ms);
    sock.once("secureConnect", () => {
      clearTimeout(timer);
      const chain: Uint8Array[] = [];
      let cert = sock.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
      const seen = new Set<string>();
      while (cert?.raw !== undefined && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        chain.push(new Uint8Array(cert.raw));
        cert = cert.issuerCertificate;
      }
      sock.destroy();
      resolve(chain);
    });
    sock.once("error", (e) => {
      clearTimeout(timer);
      sock.destroy();
      reject(explainDialError(denoError(e), ctx));
    });
  });
}
