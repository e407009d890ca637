/**
 * Copies bytes between two streams both ways, propagating half-close, for
 * the fallback web server and the server's direct SOCKS5 port.
 *
 * @module
 */
import { type ByteStream, writeAll } from "../transport/types.ts";
import { TimedReader } from "./reader.ts";

/** Copies `from` to `to` until end of stream, then half-closes `to`. */
export async function copyOneWay(
  from: ByteStream | TimedReader,
  to: ByteStream,
  idleMs?: number,
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
    await writeAll(to, chunk);
  }
  await to.closeWrite().catch(() => {});
}

/**
 * Joins two streams until both directions end (or either fails), then
 * closes both.
 */
export async function pipeBoth(
  a: ByteStream | TimedReader,
  aWrite: ByteStream,
  b: ByteStream,
  idleMs?: number,
): Promise<void> {
  try {
    await Promise.all([copyOneWay(a, b, idleMs), copyOneWay(b, aWrite)]);
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
