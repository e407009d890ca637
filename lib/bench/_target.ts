/**
 * The benchmark's TCP target and its tiny request protocol, plus a minimal
 * SOCKS5 CONNECT client to reach it through a proxy.
 *
 * ```
 * request = op u8 ‖ count u64 (big-endian)
 * op 'D' (download): the target sends `count` bytes and closes
 * op 'U' (upload):   the target reads `count` bytes, answers "k" and closes
 * op 'E' (echo):     the target echoes every byte until end of stream
 * ```
 *
 * @module
 */
import { encodeRequest } from "../socks5/mod.ts";
import { writeAll } from "../transport/types.ts";

/** Request header bytes. */
export const TARGET_HEADER_BYTES = 9;
/** Bytes per write when the target sends a download. */
const CHUNK = 256 * 1024;

/** Operations of the target protocol. */
export type TargetOp = "D" | "U" | "E";

/** A running target. */
export interface BenchTarget extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Encodes a request header. */
export function targetRequest(op: TargetOp, count: number): Uint8Array {
  const b = new Uint8Array(TARGET_HEADER_BYTES);
  b[0] = op.charCodeAt(0);
  new DataView(b.buffer).setBigUint64(1, BigInt(count));
  return b;
}

async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<boolean> {
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

async function serve(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const head = new Uint8Array(TARGET_HEADER_BYTES);
  if (!(await readFull(conn, head))) return;
  const op = String.fromCharCode(head[0]!);
  let left = Number(new DataView(head.buffer).getBigUint64(1));
  if (op === "D") {
    const chunk = new Uint8Array(CHUNK);
    while (left > 0) {
      const n = Math.min(left, CHUNK);
      await writeAll(conn, n === CHUNK ? chunk : chunk.subarray(0, n));
      left -= n;
    }
  } else if (op === "U") {
    const buf = new Uint8Array(CHUNK);
    while (left > 0) {
      const n = await conn.read(buf.subarray(0, Math.min(left, CHUNK)));
      if (n === null) return;
      left -= n;
    }
    await writeAll(conn, new Uint8Array([0x6b]));
  } else if (op === "E") {
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      await writeAll(conn, buf.subarray(0, n));
    }
  }
}

/**
 * Starts the target on `hostname` (default 127.0.0.1), ephemeral port.
 *
 * @example
 * ```ts ignore
 * await using target = startBenchTarget();
 * console.log(target.port);
 * ```
 */
export function startBenchTarget(hostname = "127.0.0.1"): BenchTarget {
  const listener = Deno.listen({ hostname, port: 0 });
  const open = new Set<Deno.TcpConn>();
  const done = (async () => {
    try {
      for await (const conn of listener) {
        open.add(conn);
        serve(conn).catch(() => {}).finally(() => {
          open.delete(conn);
          try {
            conn.close();
          } catch {
            // already closed
          }
        });
      }
    } catch {
      // listener closed
    }
  })();
  const close = async () => {
    try {
      listener.close();
    } catch {
      // already closed
    }
    for (const c of open) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await done;
  };
  return {
    hostname,
    port: (listener.addr as Deno.NetAddr).port,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Opens a TCP connection to `host:port`, through the SOCKS5 proxy at
 * `socks` (no authentication) when given. Throws when the proxy refuses.
 */
export async function connectVia(
  socks: { hostname: string; port: number } | undefined,
  host: string,
  port: number,
): Promise<Deno.TcpConn> {
  if (socks === undefined) {
    const c = await Deno.connect({ hostname: host, port });
    c.setNoDelay(true);
    return c;
  }
  const conn = await Deno.connect({ hostname: socks.hostname, port: socks.port });
  conn.setNoDelay(true);
  try {
    const buf = new Uint8Array(512);
    await writeAll(conn, new Uint8Array([5, 1, 0]));
    if (!(await readFull(conn, buf.subarray(0, 2))) || buf[0] !== 5 || buf[1] !== 0) {
      throw new Error("SOCKS5 proxy refused no-auth");
    }
    const ipv4 = /^\d+\.\d+\.\d+\.\d+$/.test(host);
    await writeAll(
      conn,
      encodeRequest({
        command: "connect",
        addressType: ipv4 ? "ipv4" : "domain",
        host,
        port,
      }),
    );
    if (!(await readFull(conn, buf.subarray(0, 5)))) throw new Error("SOCKS5 proxy closed");
    if (buf[1] !== 0) throw new Error(`SOCKS5 CONNECT failed with reply ${buf[1]}`);
    const rest = buf[3] === 1 ? 5 : buf[3] === 4 ? 17 : 2 + buf[4]!;
    if (!(await readFull(conn, buf.subarray(0, rest)))) throw new Error("SOCKS5 proxy closed");
    return conn;
  } catch (e) {
    conn.close();
    throw e;
  }
}

export { readFull };
