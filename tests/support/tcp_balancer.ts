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

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      let o = 0;
      while (o < n) o += await to.write(buf.subarray(o, n));
    }
    await to.closeWrite().catch(() => {});
  } catch {
    // Either side went away: the caller closes both.
  }
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
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const picks: number[] = [];
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let clients = 0;

  async function serve(client: Deno.Conn, index: number): Promise<void> {
    const b = backends[index]!;
    let upstream: Deno.Conn | undefined;
    try {
      upstream = await Deno.connect({ hostname: b.hostname ?? "127.0.0.1", port: b.port });
      open.add(upstream);
      const up = upstream;
      await Promise.all([pump(client, up), pump(up, client)]);
    } catch {
      // Backend unreachable: drop the client.
    } finally {
      closeQuietly(client);
      open.delete(client);
      if (upstream !== undefined) {
        closeQuietly(upstream);
        open.delete(upstream);
      }
      clients--;
    }
  }

  const done = (async () => {
    try {
      for await (const client of listener) {
        if (clients >= max) {
          closeQuietly(client);
          continue;
        }
        clients++;
        const index = picks.length % backends.length;
        picks.push(index);
        open.add(client);
        const t = serve(client, index);
        tasks.add(t);
        t.finally(() => tasks.delete(t));
      }
    } catch {
      // listener closed
    }
  })();

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const c of [...open]) closeQuietly(c);
      await done;
      await Promise.allSettled([...tasks]);
    })();
    return closed;
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    picks,
    get connections() {
      return picks.length;
    },
    dropAll() {
      for (const c of [...open]) closeQuietly(c);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
