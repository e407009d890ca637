/**
 * Plain TCP listen and dial (for tests, and behind a TLS-terminating
 * front end).
 *
 * @module
 */
import { withDeadline } from "./_dial.ts";
import { explainListenError } from "./errors.ts";

/** Options for {@linkcode listenTcp}. */
export interface TcpListenOptions {
  hostname: string;
  /** 0 picks a free port; read it from `listener.addr.port`. */
  port: number;
}

/** Options for {@linkcode dialTcp}. */
export interface TcpDialOptions {
  hostname: string;
  port: number;
  /** Connect deadline, default 10 000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Listens for TCP connections; errors say which address and why.
 *
 * @example
 * ```ts
 * import { listenTcp } from "./tcp.ts";
 * using listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
 * listener.addr.port; // a free port
 * ```
 */
export function listenTcp(opts: TcpListenOptions): Deno.TcpListener {
  try {
    return Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  } catch (e) {
    throw explainListenError(e, opts);
  }
}

/**
 * Connects over TCP with a deadline, `TCP_NODELAY` set. Rejects with
 * "connection refused by 127.0.0.1:8443", "timed out after 10 s connecting
 * to …", or the abort reason of `signal`.
 *
 * @example
 * ```ts
 * import { dialTcp, listenTcp } from "./tcp.ts";
 * using listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
 * using conn = await dialTcp({ hostname: "127.0.0.1", port: listener.addr.port, timeoutMs: 2000 });
 * ```
 */
export function dialTcp(opts: TcpDialOptions): Promise<Deno.TcpConn> {
  return withDeadline(opts, opts, async (signal, track) => {
    const conn = await Deno.connect({
      hostname: opts.hostname,
      port: opts.port,
      transport: "tcp",
      signal,
    });
    track(conn);
    conn.setNoDelay(true);
    return conn;
  });
}
