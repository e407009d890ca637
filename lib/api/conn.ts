/**
 * A connection through the tunnel, shaped like `Deno.Conn`: what
 * `Tunnel.dial` returns.
 *
 * @module
 */
/** Options for {@linkcode TunnelConn.readFull}. */
export interface ReadFullOptions {
  /**
   * Fail with a `PeerSlowError` when the buffer is not full this many
   * milliseconds after the call. Default: no deadline.
   */
  timeoutMs?: number;
}

/**
 * A TCP connection to a target, carried by the tunnel. Bytes read from it
 * came out of the tunnel's record layer: each one was authenticated (and
 * decrypted) before it is returned, in order, exactly once. Writes wait for
 * the tunnel's flow-control credit, so a peer that stops reading stops the
 * writer; `writeTimeoutMs` (a dial option) turns that wait into a
 * `PeerSlowError`, and `readFull` with `timeoutMs` reports a peer that
 * sends too slowly the same way, keeping the bytes that did arrive.
 *
 * Reads and writes may run concurrently with each other, but not with
 * themselves (a second read while one waits throws `Deno.errors.Busy`).
 * Use either `read`/`readFull` or `readable`, not both; the same for
 * `write` and `writable`. `close()` (or `using`) releases the stream; if
 * the target or the tunnel ends it first, reads fail with
 * `Deno.errors.ConnectionReset` instead of returning end of stream.
 *
 * @example A slow peer: `readFull` keeps what arrived and says how much
 * ```ts
 * import { connect, listen, PeerSlowError } from "../../mod.ts";
 * import { addUser, initServerDir } from "../provision/mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir, { listen: "127.0.0.1:0" });
 * await using server = await listen(`${dir}/server.yml`);
 * const profile = `${dir}/alice.yml`;
 * const at = `127.0.0.1:${server.addr.port}`;
 * await addUser("alice", { dir, out: profile, server: at, routes: ["127.0.0.1"] });
 * await server.reloadUsers();
 *
 * // A target that sends 3 of the 8 bytes expected, then stalls until told.
 * using target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const { promise: goOn, resolve: sendRest } = Promise.withResolvers<void>();
 * const served = (async () => {
 *   using c = await target.accept();
 *   await c.write(new TextEncoder().encode("abc"));
 *   await goOn;
 *   await c.write(new TextEncoder().encode("defgh"));
 * })();
 *
 * await using tunnel = await connect(profile);
 * using conn = await tunnel.dial({ hostname: "127.0.0.1", port: target.addr.port });
 * const buf = new Uint8Array(8);
 * try {
 *   await conn.readFull(buf, { timeoutMs: 200 });
 * } catch (e) {
 *   if (!(e instanceof PeerSlowError) || e.bytesRead !== 3) throw e;
 *   sendRest(); // buf starts with "abc"; the rest follows it
 *   await conn.readFull(buf.subarray(e.bytesRead), { timeoutMs: 10_000 });
 * }
 * await served;
 * if (new TextDecoder().decode(buf) !== "abcdefgh") throw new Error("bytes lost");
 * await tunnel.close();
 * await server.close(); // before its directory goes: closing writes its counters there
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface TunnelConn extends Disposable {
  /**
   * The address the target connection was bound to on the server's side,
   * as the server reported it (0.0.0.0:0 when it does not disclose it).
   */
  readonly localAddr: Deno.NetAddr;
  /** The target, as dialed. */
  readonly remoteAddr: Deno.NetAddr;
  /**
   * The bytes from the target (authenticated), as a byte stream;
   * cancelling it closes the connection.
   */
  readonly readable: ReadableStream<Uint8Array<ArrayBuffer>>;
  /**
   * Bytes to the target (each chunk under `writeTimeoutMs` like `write`);
   * closing it half-closes the connection (`closeWrite`), aborting it closes it.
   */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Reads up to `p.length` bytes into `p`: the count, or null at the end
   * of the stream (the target half-closed and every byte was read).
   */
  read(p: Uint8Array): Promise<number | null>;
  /**
   * Reads until `p` is full. Resolves `p.length`; fewer when the stream
   * ended first (null if it ended before any byte). With `timeoutMs`, a
   * buffer not full by then fails with `PeerSlowError`: its `bytesRead`
   * first bytes of `p` hold what arrived, and the next read continues
   * right after them.
   */
  readFull(p: Uint8Array, options?: ReadFullOptions): Promise<number | null>;
  /**
   * Writes all of `p` (resolves `p.length`) once the tunnel has taken it.
   * With the dial option `writeTimeoutMs`, fails with `PeerSlowError` when
   * the tunnel could not take all of it in time because the peer stopped
   * reading (its `bytesWritten` were taken and will be delivered).
   */
  write(p: Uint8Array): Promise<number>;
  /** Half-closes: the target reads end of stream; reading goes on. */
  closeWrite(): Promise<void>;
  /** Closes both directions. Throws `Deno.errors.BadResource` when already closed. */
  close(): void;
}
