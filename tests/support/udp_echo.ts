/**
 * A UDP echo server for the end-to-end tests: every datagram goes back to
 * its sender as it came; it counts what it received.
 *
 * Exports: `startUdpEcho(hostname?)` → `UdpEcho` (`port`, `received`,
 * `seen`: how often each payload's first 8 bytes, a tag, arrived).
 *
 * @module
 */
/** A UDP echo server on loopback; `seen` counts each payload's first 8 bytes (a tag). */
export interface UdpEcho extends AsyncDisposable {
  port: number;
  received: number;
  seen: Map<string, number>;
}

/** Starts an echo server on `hostname`, any free port. */
export function startUdpEcho(hostname = "127.0.0.1"): UdpEcho {
  const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const echo: UdpEcho = {
    port: (conn.addr as Deno.NetAddr).port,
    received: 0,
    seen: new Map(),
    [Symbol.asyncDispose]: () => {
      try {
        conn.close();
      } catch {
        // closed
      }
      return Promise.resolve();
    },
  };
  (async () => {
    for (;;) {
      const [data, from] = await conn.receive();
      echo.received++;
      const tag = new TextDecoder().decode(data.subarray(0, 8));
      echo.seen.set(tag, (echo.seen.get(tag) ?? 0) + 1);
      await conn.send(data, from);
    }
  })().catch(() => {});
  return echo;
}
