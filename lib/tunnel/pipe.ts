/**
 * Copies bytes between two streams both ways, propagating half-close, for
 * the fallback web server and the server's direct SOCKS5 port.
 *
 * @module
 */
import { type ByteStream, writeAll } from "../transport/types.ts";
import { TimedReader } from "./reader.ts";

/**
 * Copies `from` to `to` until end of stream, then half-closes `to`;
 * `transform`, when given, rewrites each chunk on the way (it may hold bytes
 * back and return an empty chunk).
 */
export async function copyOneWay(
  from: ByteStream | TimedReader,
  to: ByteStream,
  idleMs?: number,
  transform?: (chunk: Uint8Array) => Uint8Array,
): Promise<void> {
  if (idleMs !== undefined && !("next" in from)) from = new TimedReader(from, 64 * 1024);
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    let chunk: Uint8Array | null;
    if ("next" in from) {
      const r = await from.next(idleMs);
      if (r === "timeout") throw new Deno.errors.TimedOut(`idle for ${idleMs} ms`);
      chunk = r;
    } else {
      const n = await from.read(buf);
      chunk = n === null ? null : buf.subarray(0, n);
    }
    if (chunk === null) break;
    if (transform !== undefined) chunk = transform(chunk);
    if (chunk.length > 0) await writeAll(to, chunk);
  }
  await to.closeWrite().catch(() => {});
}

/**
 * Joins two streams until both directions end (or either fails), then
 * closes both. `fromB` rewrites what `b` sends before `aWrite` gets it.
 */
export async function pipeBoth(
  a: ByteStream | TimedReader,
  aWrite: ByteStream,
  b: ByteStream,
  idleMs?: number,
  fromB?: (chunk: Uint8Array) => Uint8Array,
): Promise<void> {
  try {
    await Promise.all([copyOneWay(a, b, idleMs), copyOneWay(b, aWrite, undefined, fromB)]);
  } catch {
    // One side failed: both are closed below.
  } finally {
    for (const s of [aWrite, b]) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
  }
}
