/**
 * A round-robin TCP load balancer for tests: it accepts on 127.0.0.1
 * (ephemeral port) and forwards each new connection, byte for byte, to the
 * next backend in turn (TLS passes through untouched), the way a layer-4
 * balancer in front of several servers does.
 *
 * Exports: `startTcpBalancer(backends, opts?)` → `TcpBalancer`
 * `{ port, picks, connections, dropAll(), close() }`.
 *
 * Bounded: at most `maxConnections` (default 64) client connections at
 * once (more are closed at accept), one 64 KiB buffer per direction.
 *
 * @example
 * ```ts ignore
 * import { startTcpBalancer } from "./tcp_balancer.ts";
 * await using lb = startTcpBalancer([{ port: serverA }, { port: serverB }]);
 * // first connection → serverA, second → serverB, third → serverA, …
 * ```
 *
 * @module
 */
import { splice } from "./io.ts";
import { serveConnections } from "./serve.ts";

/** A running balancer. */
export interface TcpBalancer extends AsyncDisposable {
  readonly port: number;
  /** Which backend (index) each accepted connection went to, in order. */
  readonly picks: readonly number[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Cuts every open connection abruptly (a path failure); keeps listening. */
  dropAll(): void;
  close(): Promise<void>;
}

/** Options for {@linkcode startTcpBalancer}. */
export interface TcpBalancerOptions {
  /** Most client connections open at once; default 64. */
  maxConnections?: number;
}

/**
 * Starts the balancer in front of `backends` (at least one).
 *
 * @example
 * ```ts ignore
 * import { startTcpBalancer } from "./tcp_balancer.ts";
 * const lb = startTcpBalancer([{ port: 8443 }, { hostname: "::1", port: 8443 }]);
 * await lb.close();
 * ```
 */
export function startTcpBalancer(
  backends: readonly { hostname?: string; port: number }[],
  opts: TcpBalancerOptions = {},
): TcpBalancer {
  if (backends.length === 0) throw new RangeError("Cannot start a balancer without backends");
  const max = opts.maxConnections ?? 64;
  const picks: number[] = [];
  let clients = 0;
  const served = serveConnections(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    async (client, track) => {
      if (clients >= max) return; // closed at once
      clients++;
      try {
        const index = picks.length % backends.length;
        picks.push(index);
        const b = backends[index]!;
        let upstream: Deno.Conn;
        try {
          upstream = await Deno.connect({ hostname: b.hostname ?? "127.0.0.1", port: b.port });
        } catch {
          return; // backend unreachable: drop the client
        }
        const untrack = track(upstream);
        await splice(client, upstream);
        untrack();
      } finally {
        clients--;
      }
    },
  );
  return {
    port: served.port,
    picks,
    get connections() {
      return picks.length;
    },
    dropAll: served.dropAll,
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
}
