/**
 * One accept loop for every local listener (SOCKS5, HTTP CONNECT, relay):
 * each accepted connection goes to a handler; `close()` stops accepting,
 * closes the connections still open and waits for the loop to end.
 *
 * @module
 */
import type { ByteStream } from "../transport/types.ts";
import { describeError, type Logger } from "../observe/mod.ts";

/** A running listener. */
export interface FrontEnd {
  addr: { hostname: string; port: number };
  close(): Promise<void>;
  done: Promise<void>;
}

/** What `serveListener` accepts from: a Deno listener or the node:tls adapter. */
export interface Acceptor<C extends ByteStream> extends AsyncIterable<C> {
  readonly addr: Deno.Addr;
  close(): void;
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

/**
 * Runs `handle` for every connection `listener` accepts. A handler's error
 * is logged at debug level and its connection closed. `track` lets a
 * handler register more streams (e.g. an upstream) to close on shutdown.
 *
 * @example
 * ```ts ignore
 * const front = serveListener(Deno.listen({ port: 0 }), async (conn) => conn.close(), log, "echo");
 * await front.close();
 * ```
 */
export function serveListener<C extends ByteStream>(
  listener: Acceptor<C>,
  handle: (conn: C, track: (s: ByteStream) => () => void) => Promise<void>,
  log: Logger,
  what: string,
): FrontEnd {
  const addr = listener.addr as Deno.NetAddr;
  const open = new Set<ByteStream>();
  const track = (s: ByteStream) => {
    open.add(s);
    return () => open.delete(s);
  };
  const done = (async () => {
    try {
      for await (const conn of listener) {
        open.add(conn);
        handle(conn, track).catch((e) => {
          log.debug(`${what} connection error: ${describeError(e)}`);
          closeQuietly(conn);
        }).finally(() => open.delete(conn));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.BadResource)) log.error(`accept failed: ${describeError(e)}`);
    }
  })();
  return {
    addr: { hostname: addr.hostname, port: addr.port },
    async close() {
      closeQuietly(listener);
      for (const c of open) closeQuietly(c);
      await done;
    },
    done,
  };
}
