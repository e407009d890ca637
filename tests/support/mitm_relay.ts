/**
 * Relays that sit between a client and a server in tests and record what
 * they see, to prove what an observer or an interceptor can and cannot learn.
 *
 * Exports:
 * - `startMitmRelay(opts)` → `MitmRelay`: a TLS-intercepting relay. It
 *   forges a certificate for `serverName` (and 127.0.0.1, ::1) from its OWN
 *   fresh CA (`caPem`: give it to the client to make the interception
 *   "trusted"), terminates the client's TLS, opens TLS to the real upstream
 *   (trusting `upstream.caPem`; or plain TCP with `upstream.transport: "tcp"`)
 *   and forwards bytes both ways, recording the plaintext it saw.
 * - `startTcpRelay(opts)` → `Relay`: the plain TCP variant (a passive
 *   on-path observer): records the raw bytes, TLS records included.
 * - Both: `seenClientToServer()` / `seenServerToClient()` → all bytes seen in
 *   that direction over all connections, in arrival order (recording stops
 *   at `maxRecordBytes`, default 64 MiB, per direction), `connections()`,
 *   `close()`, `await using`. `tamper(dir, chunk, offset)` may return
 *   altered bytes to forward (`offset` counts that direction's bytes on that
 *   connection); recording happens before tampering.
 * - `containsBytes(haystack, needle)` → whether a byte string occurs.
 *
 * @example
 * ```ts ignore
 * import { containsBytes, startMitmRelay } from "./mitm_relay.ts";
 * await using relay = await startMitmRelay({
 *   upstream: { hostname: "127.0.0.1", port: serverPort, caPem: serverCa.certPem, serverName: "localhost" },
 *   serverName: "localhost",
 * });
 * // client dials 127.0.0.1:relay.port trusting relay.caPem, talks through the tunnel…
 * containsBytes(relay.seenClientToServer(), new TextEncoder().encode("secret")); // false if end-to-end encrypted
 * ```
 *
 * @module
 */
import { createCa, issueCert } from "./certs.ts";
import { closeQuietly } from "./io.ts";
import { serveConnections } from "./serve.ts";
import { concat } from "../../lib/wire/bytes.ts";

/** Which way bytes were going. */
export type RelayDirection = "client_to_server" | "server_to_client";

/** Rewrites a chunk before it is forwarded. */
export type Tamper = (dir: RelayDirection, chunk: Uint8Array, offset: number) => Uint8Array;

/** Options shared by both relays. */
export interface RelayCommonOptions {
  /** Listen address, default "127.0.0.1". */
  hostname?: string;
  tamper?: Tamper;
  /** Recording limit per direction, default 64 MiB. */
  maxRecordBytes?: number;
}

/** Options for {@linkcode startTcpRelay}. */
export interface TcpRelayOptions extends RelayCommonOptions {
  upstream: { hostname: string; port: number };
}

/** Options for {@linkcode startMitmRelay}. */
export interface MitmRelayOptions extends RelayCommonOptions {
  upstream: {
    hostname: string;
    port: number;
    /** "tls" (default) or "tcp". */
    transport?: "tls" | "tcp";
    /** CA the upstream's certificate chains to (TLS upstream). */
    caPem?: string;
    /** Name to verify the upstream certificate against; default `hostname`. */
    serverName?: string;
  };
  /** Name in the forged certificate; default `upstream.serverName` or "localhost". */
  serverName?: string;
  /** ALPN offered to the client and to the upstream, default ["h2", "http/1.1"]. */
  alpn?: string[];
  /** ALPN offered to the upstream instead, as an interceptor that negotiates each side alone. */
  upstreamAlpn?: string[];
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  seenClientToServer(): Uint8Array;
  seenServerToClient(): Uint8Array;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** A running TLS-intercepting relay. */
export interface MitmRelay extends Relay {
  /** The forged CA, PEM: the client must trust it for the interception to succeed. */
  readonly caPem: string;
}

type Conn = Deno.Conn;

/**
 * True if `needle` occurs in `haystack`.
 *
 * @example
 * ```ts
 * import { containsBytes } from "./mitm_relay.ts";
 * containsBytes(new Uint8Array([1, 2, 3]), new Uint8Array([2, 3])); // true
 * ```
 */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

class Recorder {
  #chunks: Uint8Array[] = [];
  #size = 0;
  #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  add(chunk: Uint8Array): void {
    const room = this.#max - this.#size;
    if (room <= 0) return;
    const c = chunk.length <= room ? chunk.slice() : chunk.slice(0, room);
    this.#chunks.push(c);
    this.#size += c.length;
  }
  all(): Uint8Array {
    return concat(this.#chunks);
  }
}

async function pump(
  from: Conn,
  to: Conn,
  dir: RelayDirection,
  rec: Recorder,
  tamper: Tamper | undefined,
): Promise<void> {
  const buf = new Uint8Array(32768);
  let offset = 0;
  for (;;) {
    const n = await from.read(buf);
    if (n === null) break;
    const chunk = buf.subarray(0, n);
    rec.add(chunk);
    let out = tamper === undefined ? chunk : tamper(dir, chunk.slice(), offset);
    offset += n;
    while (out.length > 0) out = out.subarray(await to.write(out));
  }
  // Half-close; if the peer is already gone the other pump will notice.
  await to.closeWrite().catch(() => {});
}

function runRelay(
  listener: Deno.Listener,
  dialUpstream: () => Promise<Conn>,
  opts: RelayCommonOptions,
): Relay {
  const max = opts.maxRecordBytes ?? 64 * 1024 * 1024;
  const c2s = new Recorder(max);
  const s2c = new Recorder(max);
  const served = serveConnections(listener, async (client, track) => {
    let up: Conn;
    try {
      up = await dialUpstream();
    } catch {
      return; // upstream unreachable: drop the client
    }
    const untrack = track(up);
    const cut = () => {
      closeQuietly(client);
      closeQuietly(up);
    };
    await Promise.all([
      pump(client, up, "client_to_server", c2s, opts.tamper).catch(cut),
      pump(up, client, "server_to_client", s2c, opts.tamper).catch(cut),
    ]);
    closeQuietly(up);
    untrack();
  });
  return {
    hostname: served.hostname,
    port: served.port,
    seenClientToServer: () => c2s.all(),
    seenServerToClient: () => s2c.all(),
    connections: () => served.accepted,
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
}

/**
 * Starts a plain TCP relay to `upstream` that records the raw bytes.
 *
 * @example
 * ```ts ignore
 * import { startTcpRelay } from "./mitm_relay.ts";
 * await using relay = startTcpRelay({ upstream: { hostname: "127.0.0.1", port: serverPort } });
 * ```
 */
export function startTcpRelay(opts: TcpRelayOptions): Relay {
  const listener = Deno.listen({ hostname: opts.hostname ?? "127.0.0.1", port: 0 });
  return runRelay(
    listener,
    () => Deno.connect({ hostname: opts.upstream.hostname, port: opts.upstream.port }),
    opts,
  );
}

/**
 * Starts a TLS-intercepting relay with a freshly forged CA.
 *
 * @example
 * ```ts ignore
 * import { startMitmRelay } from "./mitm_relay.ts";
 * const relay = await startMitmRelay({ upstream: { hostname: "127.0.0.1", port, caPem }, serverName: "localhost" });
 * const conn = await Deno.connectTls({ hostname: "localhost", port: relay.port, caCerts: [relay.caPem] });
 * ```
 */
export async function startMitmRelay(opts: MitmRelayOptions): Promise<MitmRelay> {
  const name = opts.serverName ?? opts.upstream.serverName ?? "localhost";
  const ca = await createCa({ commonName: "Forged Interception CA" });
  const isIp = /^[0-9.]+$/.test(name) || name.includes(":");
  const leaf = await issueCert(ca, {
    dnsNames: isIp ? [] : [name],
    ipAddresses: [...new Set([...(isIp ? [name] : []), "127.0.0.1", "::1"])],
  });
  const alpn = opts.alpn ?? ["h2", "http/1.1"];
  const listener = Deno.listenTls({
    hostname: opts.hostname ?? "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
    alpnProtocols: alpn,
  });
  const up = opts.upstream;
  const dialUpstream = async (): Promise<Conn> => {
    const tcp = await Deno.connect({ hostname: up.hostname, port: up.port });
    if (up.transport === "tcp") return tcp;
    const tls = await Deno.startTls(tcp, {
      hostname: up.serverName ?? up.hostname,
      caCerts: up.caPem === undefined ? [] : [up.caPem],
      alpnProtocols: opts.upstreamAlpn ?? alpn,
    });
    await tls.handshake();
    return tls;
  };
  return { ...runRelay(listener, dialUpstream, opts), caPem: ca.certPem };
}
