/**
 * The client's optional HTTP CONNECT proxy port: the same connector as the
 * SOCKS5 port behind an HTTP/1.1 CONNECT front end.
 *
 * @module
 */
import { HttpConnectParser, httpConnectResponse, Reply, replyName } from "../socks5/mod.ts";
import { writeAll } from "../transport/types.ts";
import type { Connector } from "./dial.ts";
import { type FrontEnd, serveListener } from "./listener.ts";
import { describeError, type Logger } from "../observe/mod.ts";
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
  opts.log.info(`HTTP CONNECT listening on ${addr.hostname}:${addr.port}`);
  return serveListener(listener, (conn) => handle(conn, opts), opts.log, "HTTP CONNECT");
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
