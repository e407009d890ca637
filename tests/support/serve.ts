/**
 * One accept loop for the test servers and relays (echo server, balancer,
 * relays, proxies), over the library's `serveListener`: each accepted
 * connection goes to a handler and is closed when the handler ends;
 * `dropAll()` cuts every open connection; `close()` stops accepting,
 * closes what is open and waits for every handler. A test whose budget
 * runs out closes it too (see `deadline.ts`).
 *
 * Exports: `serveConnections(listener, handle)` → `Served`, `echo(conn,
 * prefix?)` (a handler), and `startEchoServer()` → an `EchoServer` on
 * 127.0.0.1.
 *
 * @module
 */
import { type Acceptor, serveListener } from "../../lib/tunnel/listener.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import type { ByteStream } from "../../lib/transport/mod.ts";
import { onTimeout } from "./deadline.ts";
import { closeQuietly, writeAll } from "./io.ts";

/** Registers another stream (an upstream) to close with the server; returns the unregister. */
export type Track = (s: ByteStream) => () => void;

/** A running accept loop. */
export interface Served extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Closes every open connection (accepted or tracked); keeps accepting. */
  dropAll(): void;
  close(): Promise<void>;
}

/**
 * Runs `handle` for every connection `listener` accepts, closing the
 * connection (and what the handler tracked) when the handler ends.
 *
 * @example
 * ```ts ignore
 * await using served = serveConnections(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (c) => {
 *   await c.write(new TextEncoder().encode("hello"));
 * });
 * ```
 */
export function serveConnections<C extends ByteStream>(
  listener: Acceptor<C>,
  handle: (conn: C, track: Track) => Promise<void>,
): Served {
  const open = new Set<ByteStream>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const track: Track = (s) => {
    open.add(s);
    return () => open.delete(s);
  };
  const front = serveListener(
    listener,
    (conn) => {
      accepted++;
      open.add(conn);
      const task = handle(conn, track).finally(() => {
        open.delete(conn);
        closeQuietly(conn);
      });
      const settled = task.then(() => {}, () => {});
      tasks.add(settled);
      settled.then(() => tasks.delete(settled));
      return task;
    },
    silentLogger,
    "test server",
  );
  const addr = listener.addr as Deno.NetAddr;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      forget();
      await front.close();
      for (const c of [...open]) closeQuietly(c);
      await Promise.all([...tasks]);
    })();
    return closed;
  };
  const forget = onTimeout(close);
  return {
    hostname: addr.hostname,
    port: addr.port,
    get accepted() {
      return accepted;
    },
    dropAll() {
      for (const c of [...open]) closeQuietly(c);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Writes back what `conn` sends (each read prefixed with `prefix`) until it
 * half-closes, then half-closes back. Never rejects: a peer that goes away
 * just ends it.
 *
 * @example
 * ```ts ignore
 * serveConnections(listener, (c) => echo(c, new TextEncoder().encode("echo:")));
 * ```
 */
export async function echo(conn: ByteStream, prefix?: Uint8Array): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (prefix !== undefined) await writeAll(conn, prefix);
      await writeAll(conn, buf.subarray(0, n));
    }
    await conn.closeWrite();
  } catch {
    // the peer went away
  }
}

/** A loopback TCP echo server. */
export interface EchoServer extends AsyncDisposable {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/**
 * Starts a TCP echo server on 127.0.0.1 (ephemeral port); it half-closes
 * back when the peer half-closes.
 *
 * @example
 * ```ts ignore
 * await using echo = startEchoServer();
 * ```
 */
export function startEchoServer(): EchoServer {
  const served = serveConnections(Deno.listen({ hostname: "127.0.0.1", port: 0 }), (c) => echo(c));
  return {
    port: served.port,
    accepted: () => served.accepted,
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
}
