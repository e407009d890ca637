/**
 * The probe gate's fallback: a connection that is not a NitroSocks client is
 * handed, byte for byte, to a web server — a configured upstream, or the
 * built-in decoy's HTTP/2 side (`decoy.ts`) — so that a prober sees an
 * ordinary web site.
 *
 * @module
 */
import { type ByteStream, writeAll } from "../transport/types.ts";
import { pipeBoth } from "./pipe.ts";
import type { TimedReader } from "./reader.ts";
import { describeError, type Logger } from "../observe/mod.ts";

/**
 * Forwards a probing connection to the fallback: first the bytes it already
 * sent, then everything both ways. Closes `conn` when done. `target`
 * undefined means "close": the connection is simply closed. `fromBackend`
 * rewrites the web server's bytes on their way to the prober (the HTTP/2
 * preface filter of `lib/handshake/h2_preface.ts`).
 */
export async function forwardToFallback(
  conn: ByteStream,
  reader: TimedReader,
  received: Uint8Array,
  target: { hostname: string; port: number } | undefined,
  log: Logger,
  idleMs = 120_000,
  fromBackend?: (chunk: Uint8Array) => Uint8Array,
): Promise<void> {
  if (target === undefined) {
    conn.close();
    return;
  }
  let up: Deno.TcpConn;
  try {
    up = await Deno.connect({ hostname: target.hostname, port: target.port });
  } catch (e) {
    log.warn(`fallback ${target.hostname}:${target.port} unreachable: ${describeError(e)}`);
    conn.close();
    return;
  }
  try {
    if (received.length > 0) await writeAll(up, received);
  } catch {
    up.close();
    conn.close();
    return;
  }
  await pipeBoth(reader, conn, up, idleMs, fromBackend);
}
