/**
 * The probe gate's fallback: a connection that is not a NitroSocks client is
 * handed, byte for byte, to a web server — the built-in decoy site or a
 * configured upstream — so that a prober sees an ordinary web site.
 *
 * @module
 */
import { type ByteStream, writeAll } from "../transport/types.ts";
import { pipeBoth } from "./pipe.ts";
import type { TimedReader } from "./reader.ts";
import { describeError, type Logger } from "../observe/mod.ts";

const DECOY_PAGE = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
`;

/** A running built-in decoy web server on loopback. */
export interface Decoy {
  hostname: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts the decoy site on 127.0.0.1 (ephemeral port): a static page for
 * `/`, 404 elsewhere, with headers like a default nginx install.
 *
 * @example
 * ```ts ignore
 * const decoy = startDecoy();
 * console.log(decoy.port);
 * await decoy.close();
 * ```
 */
export function startDecoy(): Decoy {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const url = new URL(req.url);
      const headers = { "server": "nginx", "content-type": "text/html" };
      if (url.pathname === "/" || url.pathname === "/index.html") {
        return new Response(req.method === "HEAD" ? null : DECOY_PAGE, { headers });
      }
      return new Response(
        "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        { status: 404, headers },
      );
    },
  );
  const addr = server.addr as Deno.NetAddr;
  return { hostname: addr.hostname, port: addr.port, close: () => server.shutdown() };
}

/**
 * Forwards a probing connection to the fallback: first the bytes it already
 * sent, then everything both ways. Closes `conn` when done. `target`
 * undefined means "close": the connection is simply closed.
 */
export async function forwardToFallback(
  conn: ByteStream,
  reader: TimedReader,
  received: Uint8Array,
  target: { hostname: string; port: number } | undefined,
  log: Logger,
  idleMs = 120_000,
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
  await pipeBoth(reader, conn, up, idleMs);
}
