/**
 * A UDP "connection" through the tunnel: what `Tunnel.dial` returns for
 * `transport: "udp"`.
 *
 * @module
 */

/** Options for {@linkcode TunnelDatagramConn.receive}. */
export interface ReceiveOptions {
  /**
   * Reject with `Deno.errors.TimedOut` when no datagram arrived this many
   * milliseconds after the call. Default: wait as long as it takes.
   */
  timeoutMs?: number;
}

/**
 * Datagrams to and from one target, carried by the tunnel as the SOCKS5
 * port carries UDP ASSOCIATE: lossy DATAGRAM frames that are never resent,
 * never wait for stream credit, and survive a resumed session (datagrams
 * in flight when a connection breaks are lost, as UDP allows). Every
 * datagram received was authenticated by the record layer. The server
 * checks each one against the user's `udp:` routes.
 *
 * Received datagrams wait in a queue of {@linkcode DATAGRAM_QUEUE_MAX};
 * when it is full the oldest is dropped and counted in `dropped`.
 * `close()` (or `using`) ends the association; if the tunnel ends it
 * first, `receive` rejects with `Deno.errors.ConnectionReset`.
 *
 * The server relays datagrams from sockets on the wildcard address
 * (`0.0.0.0`, `::`): a server run with `--allow-net` scoped to hosts needs
 * those too (`deno task test:doc` runs this example with
 * `--allow-net=127.0.0.1,0.0.0.0`).
 *
 * @example A datagram to a UDP echo server and its echo
 * ```ts
 * import { connect, listen } from "../../mod.ts";
 * import { addUser, initServerDir } from "../provision/mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir, { listen: "127.0.0.1:0" });
 * await using server = await listen(`${dir}/server.yml`);
 * const at = `127.0.0.1:${server.addr.port}`;
 * await addUser("alice", { dir, out: `${dir}/alice.yml`, server: at, routes: ["127.0.0.1"] });
 * await server.reloadUsers();
 *
 * // A UDP echo server.
 * const echo = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const echoing = (async () => {
 *   const [data, from] = await echo.receive();
 *   await echo.send(data, from);
 * })();
 *
 * await using tunnel = await connect(`${dir}/alice.yml`);
 * const port = (echo.addr as Deno.NetAddr).port;
 * using conn = await tunnel.dial({ hostname: "127.0.0.1", port, transport: "udp" });
 * await conn.send(new TextEncoder().encode("ping"));
 * const back = await conn.receive({ timeoutMs: 10_000 });
 * await echoing;
 * echo.close();
 * if (new TextDecoder().decode(back) !== "ping") throw new Error("unexpected echo");
 * await tunnel.close();
 * await server.close(); // before its directory goes: closing writes its counters there
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface TunnelDatagramConn extends Disposable, AsyncIterable<Uint8Array> {
  /** The target, as dialed (`transport: "udp"`). */
  readonly remoteAddr: Deno.NetAddr;
  /** Received datagrams dropped because the queue was full (oldest first). */
  readonly dropped: number;
  /**
   * Sends `data` (at most 65,535 bytes) to the target as one datagram; it
   * is copied, so the buffer may be reused at once. Resolves its length
   * once queued (a full queue of the tunnel drops its oldest datagram, as
   * UDP may). Rejects with `RangeError` for a datagram too large,
   * `Deno.errors.BadResource` when closed, `Deno.errors.ConnectionReset`
   * when the tunnel ended the association.
   */
  send(data: Uint8Array): Promise<number>;
  /**
   * The next datagram from the target (its own copy). Only one `receive`
   * may wait at a time (`Deno.errors.Busy` otherwise).
   */
  receive(options?: ReceiveOptions): Promise<Uint8Array>;
  /** Ends the association. Throws `Deno.errors.BadResource` when already closed. */
  close(): void;
}

/** How many received datagrams wait for `receive` at most. */
export const DATAGRAM_QUEUE_MAX = 256;

/** The largest datagram `send` takes (a UDP payload). */
export const MAX_DATAGRAM_BYTES = 65_535;
