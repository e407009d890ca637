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
 * @example
 * ```ts ignore
 * import { connect } from "../../mod.ts";
 * await using tunnel = await connect("alice.yml");
 * using conn = await tunnel.dial({ hostname: "example.com", port: 80 });
 * await conn.write(new TextEncoder().encode("HEAD / HTTP/1.0\r\nHost: example.com\r\n\r\n"));
 * const head = new Uint8Array(12);
 * await conn.readFull(head, { timeoutMs: 5_000 }); // "HTTP/1.0 200" or a PeerSlowError
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
  /** The bytes from the target (authenticated), as a byte stream. */
  readonly readable: ReadableStream<Uint8Array<ArrayBuffer>>;
  /** Bytes to the target; closing it half-closes the connection (`closeWrite`). */
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
