/**
 * The byte-stream interface every tunnel module depends on. `Deno.Conn` and
 * `Deno.TlsConn` satisfy it as they are; tests use an in-memory pipe.
 *
 * @module
 */

/** A reliable, ordered, bidirectional byte stream with half-close. */
export interface ByteStream {
  /** Reads into `p`; resolves to the count read, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; resolves to the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Half-closes: no more writes; the peer reads end of stream. */
  closeWrite(): Promise<void>;
  /** Closes both directions and releases the resource. */
  close(): void;
}

/** Writes all of `p`, looping over short writes. */
export async function writeAll(s: ByteStream, p: Uint8Array): Promise<void> {
  let o = 0;
  while (o < p.length) o += await s.write(p.subarray(o));
}
