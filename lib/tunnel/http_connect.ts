/**
 * The client's optional HTTP CONNECT proxy port: the same connector as the
 * SOCKS5 port behind an HTTP/1.1 CONNECT front end.
 *
 * @module
 */
import { HttpConnectParser, httpConnectResponse, Reply, replyName } from "../socks5/mod.ts";
import { writeAll } from "../transport/types.ts";
import { type Connector, openFor } from "./dial.ts";
import { type FrontEnd, serveListener } from "./listener.ts";
import type { EventSink, Logger } from "../observe/mod.ts";
import { TimedReader } from "./reader.ts";
import { drive } from "./_drive.ts";

/** The request headers must arrive within this. */
const HEADER_DEADLINE_MS = 15_000;

/** Serves HTTP CONNECT on `listen`, sending each request to `connector`. */
export function serveHttpConnect(
  listenAddr: { host: string; port: number },
  opts: {
    connector: Connector;
    log: Logger;
    users?: Map<string, string>;
    /** Hears `listening` (kind "http"). */
    events?: EventSink;
  },
): FrontEnd {
  const listener = Deno.listen({ hostname: listenAddr.host, port: listenAddr.port });
  const front = serveListener(
    listener,
    (conn) => handleHttpProxy(conn, opts, undefined),
    opts.log,
    "HTTP CONNECT",
  );
  opts.events?.emit({ type: "listening", kind: "http", addr: front.addr });
  return front;
}

/**
 * Serves one HTTP proxy connection (the HTTP port's, or the SOCKS5 port's
 * when its first byte was not 5); `initial` is what was already read.
 */
export async function handleHttpProxy(
  conn: Deno.Conn,
  opts: { connector: Connector; log: Logger; users?: Map<string, string> | undefined },
  initial: Uint8Array | undefined,
): Promise<void> {
  const parser = new HttpConnectParser(
    opts.users === undefined ? {} : { auth: { users: opts.users } },
  );
  const r = await drive(conn, new TimedReader(conn, 8192), (c) => parser.push(c), {
    deadlineMs: HEADER_DEADLINE_MS,
    ...(initial === undefined ? {} : { initial }),
  });
  if ("stop" in r) {
    conn.close();
    if (r.stop === "error") throw r.error;
    return;
  }
  const step = r.step;
  if (step.type === "fail") {
    await writeAll(conn, step.send).catch(() => {});
    conn.close();
    return;
  }
  const opened = await openFor(opts.connector, step.request, step.raw, opts.log);
  const code = opened.reply[1] ?? Reply.GENERAL_FAILURE;
  await writeAll(conn, httpConnectResponse(code));
  if (code !== Reply.SUCCEEDED || opened.attach === undefined) {
    opts.log.debug(`CONNECT ${step.request.host}:${step.request.port}: ${replyName(code)}`);
    conn.close();
    return;
  }
  opened.attach(conn, step.rest);
}
