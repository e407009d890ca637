/**
 * The client's optional HTTP CONNECT proxy port: the same connector as the
 * SOCKS5 port behind an HTTP/1.1 CONNECT front end.
 *
 * @module
 */
import { HttpConnectParser, httpConnectResponse, Reply, replyName } from "../socks5/mod.ts";
import { writeAll } from "../transport/types.ts";
import type { Connector, FrontEnd } from "./dial.ts";
import { describeError, type Logger } from "./log.ts";
import { TimedReader } from "./reader.ts";

/** The request headers must arrive within this. */
const HEADER_DEADLINE_MS = 15_000;

/** Serves HTTP CONNECT on `listen`, sending each request to `connector`. */
export function serveHttpConnect(
  listenAddr: { host: string; port: number },
  opts: { connector: Connector; log: Logger; users?: Map<string, string> },
): FrontEnd {
  const listener = Deno.listen({ hostname: listenAddr.host, port: listenAddr.port });
  const addr = listener.addr as Deno.NetAddr;
  const open = new Set<Deno.Conn>();
  opts.log.info(`HTTP CONNECT listening on ${addr.hostname}:${addr.port}`);
  const done = (async () => {
    try {
      for await (const conn of listener) {
        open.add(conn);
        handle(conn, opts).catch((e) => {
          opts.log.debug(`HTTP client error: ${describeError(e)}`);
          try {
            conn.close();
          } catch {
            // already closed
          }
        }).finally(() => open.delete(conn));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.BadResource)) {
        opts.log.error(`accept failed: ${describeError(e)}`);
      }
    }
  })();
  return {
    addr: { hostname: addr.hostname, port: addr.port },
    async close() {
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
    },
    done,
  };
}

async function handle(
  conn: Deno.Conn,
  opts: { connector: Connector; log: Logger; users?: Map<string, string> },
): Promise<void> {
  const parser = new HttpConnectParser(
    opts.users === undefined ? {} : { auth: { users: opts.users } },
  );
  const reader = new TimedReader(conn, 8192);
  const deadline = Date.now() + HEADER_DEADLINE_MS;
  while (true) {
    const left = deadline - Date.now();
    const chunk = left > 0 ? await reader.next(left) : "timeout";
    if (chunk === null || chunk === "timeout") {
      conn.close();
      return;
    }
    const step = parser.push(chunk);
    if (step.type === "need_more") continue;
    if (step.type === "fail") {
      await writeAll(conn, step.send).catch(() => {});
      conn.close();
      return;
    }
    let reply: Uint8Array;
    let attach: ((sock: Deno.Conn, early: Uint8Array) => void) | undefined;
    try {
      const opened = await opts.connector.open(step.request, step.raw);
      reply = opened.reply;
      attach = opened.attach;
    } catch (e) {
      opts.log.info(`${step.request.host}:${step.request.port}: ${describeError(e)}`);
      reply = new Uint8Array([5, Reply.GENERAL_FAILURE]);
    }
    const code = reply[1] ?? Reply.GENERAL_FAILURE;
    await writeAll(conn, httpConnectResponse(code));
    if (code !== Reply.SUCCEEDED || attach === undefined) {
      opts.log.debug(`CONNECT ${step.request.host}:${step.request.port}: ${replyName(code)}`);
      conn.close();
      return;
    }
    attach(conn, step.rest);
    return;
  }
}
