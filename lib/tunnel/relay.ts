/**
 * An untrusted relay (docs/PROTOCOL.md part 6): accepts TLS (or TCP) from
 * clients and forwards the bytes over a new TLS (or TCP) connection to an
 * upstream NitroSocks server or the next relay. It holds no NitroSocks key:
 * the inner handshake and records pass through end to end, so the relay can
 * neither read nor alter them undetected; a relay that tampers only breaks
 * its own path, and the client moves the session to another one.
 *
 * @module
 */
import { dial, listen } from "../transport/mod.ts";
import { listenNodeTls } from "../transport/node_tls.ts";
import type { ByteStream } from "../transport/types.ts";
import { describeError, type Logger } from "../observe/mod.ts";
import { pipeBoth } from "./pipe.ts";
import { serveListener } from "./listener.ts";

/** Where and how a relay listens and forwards. */
export interface RelayOptions {
  listen: { host: string; port: number };
  transport: "tls" | "tcp";
  /** TLS certificate and key the relay presents to clients. */
  certPem?: string;
  keyPem?: string;
  upstream: {
    host: string;
    port: number;
    transport: "tls" | "tcp";
    /** Name checked on the upstream's TLS certificate. */
    serverName?: string;
    /** CA (PEM) trusted for the upstream's TLS certificate. */
    caPem?: string;
  };
  /** Close a connection idle this long (ms). Default 10 min. */
  idleMs?: number;
  log: Logger;
}

/** A running relay. */
export interface RelayHandle {
  addr: { hostname: string; port: number };
  /** Connections currently relayed. */
  readonly active: number;
  close(): Promise<void>;
  done: Promise<void>;
}

/**
 * Starts a relay.
 *
 * @example
 * ```ts ignore
 * const relay = await startRelay({ listen: { host: "127.0.0.1", port: 0 }, transport: "tls",
 *   certPem, keyPem, upstream: { host: "127.0.0.1", port: 8443, transport: "tls", caPem }, log });
 * ```
 */
export async function startRelay(opts: RelayOptions): Promise<RelayHandle> {
  const log = opts.log;
  if (opts.transport === "tls" && (opts.certPem === undefined || opts.keyPem === undefined)) {
    throw new TypeError("Cannot start a TLS relay without a certificate and key");
  }
  const listener: AsyncIterable<ByteStream & { remoteAddr: Deno.Addr }> & {
    addr: Deno.Addr;
    close(): void;
  } = opts.transport === "tls"
    ? await listenNodeTls({
      hostname: opts.listen.host,
      port: opts.listen.port,
      certPem: opts.certPem!,
      keyPem: opts.keyPem!,
    })
    : listen({ transport: "tcp", hostname: opts.listen.host, port: opts.listen.port });
  const addr = listener.addr as Deno.NetAddr;
  const up = opts.upstream;
  log.info(
    `relaying ${opts.transport}://${addr.hostname}:${addr.port} -> ${up.transport}://${up.host}:${up.port}`,
  );
  let active = 0;
  const front = serveListener(
    listener,
    async (conn, track) => {
      let upstream: ByteStream;
      try {
        upstream = await dial({
          transport: up.transport,
          hostname: up.host,
          port: up.port,
          ...(up.serverName === undefined ? {} : { serverName: up.serverName }),
          ...(up.caPem === undefined ? {} : { caPems: [up.caPem] }),
        });
      } catch (e) {
        log.warn(`upstream ${up.host}:${up.port} unreachable: ${describeError(e)}`);
        conn.close();
        return;
      }
      const untrack = track(upstream);
      active++;
      try {
        await pipeBoth(conn, conn, upstream, opts.idleMs ?? 600_000);
      } finally {
        active--;
        untrack();
      }
    },
    log,
    "relay",
  );
  return {
    addr: front.addr,
    get active() {
      return active;
    },
    close: front.close,
    done: front.done,
  };
}
