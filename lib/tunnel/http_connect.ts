/**
 * The client's HTTP proxy: on the optional HTTP port, and on the SOCKS5
 * port when a connection's first byte is a letter (a mixed port). CONNECT
 * joins the connection to a tunnel stream; an absolute-form request
 * (`GET http://host/path`) is forwarded on a stream of its own and its
 * response relayed, and the connection is kept for the next request when
 * both sides allow (keep-alive), with chunked request bodies.
 *
 * @module
 */
import {
  ChunkedBodyEnd,
  type HttpBody,
  HttpConnectParser,
  httpConnectResponse,
  httpStatusResponse,
  PAC_PATH,
  pacResponse,
  Reply,
  replyName,
  rewriteResponseHead,
} from "../socks5/mod.ts";
import { memoryPipe } from "../transport/memory_pipe.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import { type Connector, openFor } from "./dial.ts";
import type { HttpConnectStep } from "../socks5/mod.ts";
import { type FrontEnd, serveListener } from "./listener.ts";
import { listenTcp } from "../transport/tcp.ts";
import type { EventSink, Logger } from "../observe/mod.ts";
import { TimedReader } from "./reader.ts";
import { drive } from "./_drive.ts";

/** The request headers must arrive within this. */
const HEADER_DEADLINE_MS = 15_000;
/** A kept-alive connection may wait this long for its next request. */
const KEEP_ALIVE_IDLE_MS = 60_000;
/** A request body must keep arriving: no byte for this long ends the connection. */
const BODY_IDLE_MS = 60_000;
/** Largest response head accepted from a target. */
const MAX_RESPONSE_HEAD = 64 * 1024;
const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
const EMPTY = new Uint8Array(0);

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
  const listener = listenTcp({ hostname: listenAddr.host, port: listenAddr.port });
  const front = serveListener(
    listener,
    (conn) => handleHttpProxy(conn, opts, undefined),
    opts.log,
    "HTTP CONNECT",
  );
  opts.events?.emit({ type: "listening", kind: "http", addr: front.addr });
  return front;
}

/** Options of {@linkcode handleHttpProxy}. */
export interface HttpProxyOptions {
  connector: Connector;
  log: Logger;
  /** Proxy-Authorization users; absent: none asked for. */
  users?: Map<string, string> | undefined;
  /**
   * Serve the PAC file at `/proxy.pac` (without credentials), pointing at
   * the address the connection came in on: set on the mixed port.
   */
  pac?: boolean;
}

/**
 * Serves one HTTP proxy connection (the HTTP port's, or the SOCKS5 port's
 * when its first byte was a letter); `initial` is what was already read.
 */
export async function handleHttpProxy(
  conn: Deno.Conn,
  opts: HttpProxyOptions,
  initial: Uint8Array | undefined,
): Promise<void> {
  const reader = new TimedReader(conn, 16 * 1024);
  let leftover = initial;
  for (let first = true;; first = false) {
    const parser = new HttpConnectParser({
      absoluteForm: true,
      ...(opts.pac ? { localPaths: [PAC_PATH] } : {}),
      ...(opts.users === undefined ? {} : { auth: { users: opts.users } }),
    });
    const r = await drive(conn, reader, (c) => parser.push(c), {
      deadlineMs: first ? HEADER_DEADLINE_MS : KEEP_ALIVE_IDLE_MS,
      ...(leftover === undefined || leftover.length === 0 ? {} : { initial: leftover }),
    });
    if ("stop" in r) {
      conn.close();
      if (r.stop === "error" && first) throw r.error;
      return;
    }
    const step = r.step;
    if (step.type === "fail") {
      await writeAll(conn, step.send).catch(() => {});
      conn.close();
      return;
    }
    if (step.type === "request") {
      await connect(conn, opts, step);
      return;
    }
    if (step.type === "local") {
      // The PAC file names the address this connection reached (a 0.0.0.0 listener's too).
      const at = conn.localAddr as Deno.NetAddr;
      const auth = opts.users !== undefined;
      await writeAll(conn, pacResponse(step.method, { host: at.hostname, port: at.port, auth }))
        .catch(() => {});
      conn.close();
      return;
    }
    const next = await forward(conn, reader, opts, step).catch((e) => {
      opts.log.debug(`${step.method} ${step.request.host}:${step.request.port}: ${e}`);
      return null;
    });
    if (next === null) {
      conn.close();
      return;
    }
    leftover = next;
  }
}

/** CONNECT: the connection becomes the stream's. */
async function connect(
  conn: Deno.Conn,
  opts: { connector: Connector; log: Logger },
  step: Extract<HttpConnectStep, { type: "request" }>,
): Promise<void> {
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

/**
 * One absolute-form request: a stream of its own to the target (asked to
 * close after its response), the request head and body sent on it, the
 * response relayed with its head made ready for the client. Resolves with
 * the bytes already read past the request body when the connection is
 * kept for the next request, null when it must close.
 */
async function forward(
  conn: Deno.Conn,
  reader: TimedReader,
  opts: { connector: Connector; log: Logger },
  step: Extract<HttpConnectStep, { type: "forward" }>,
): Promise<Uint8Array | null> {
  const opened = await openFor(opts.connector, step.request, step.raw, opts.log);
  const code = opened.reply[1] ?? Reply.GENERAL_FAILURE;
  if (code !== Reply.SUCCEEDED || opened.attach === undefined) {
    opts.log.debug(`${step.method} ${step.request.host}:${step.request.port}: ${replyName(code)}`);
    await writeAll(conn, httpConnectResponse(code));
    return null;
  }
  if (step.expectContinue) await writeAll(conn, CONTINUE);
  const [mine, theirs] = memoryPipe();
  opened.attach(theirs, EMPTY);
  let open = true;
  const shut = () => {
    if (open) mine.close();
    open = false;
  };
  // What the client gets instead of a response when its body ends the request early.
  let unanswered: Uint8Array | undefined;
  try {
    await writeAll(mine, step.head);
    const [rest, keep] = await Promise.all([
      sendBody(mine, reader, step.body, step.rest).then((sent) => {
        if (sent instanceof Uint8Array) return sent;
        // The target must not wait for a body that will never be whole: the stream ends now.
        opts.log.debug(`${step.method} ${step.request.host}:${step.request.port}: body ${sent}`);
        unanswered = BODY_ENDS[sent];
        shut();
        return null;
      }),
      relayResponse(mine, conn, step.method, () => unanswered),
    ]);
    return keep && step.keepAlive && rest !== null ? rest : null;
  } finally {
    shut();
  }
}

/** The answer when a request body ends the request before the target answered. */
const BODY_ENDS: Record<BodyEnd, Uint8Array> = {
  malformed: httpStatusResponse(400, "the chunked request body is malformed"),
  stalled: httpStatusResponse(400, "the request body stopped arriving"),
  closed: EMPTY,
};

/** Why a request body ended early: bad chunked framing, no byte for BODY_IDLE_MS, EOF. */
type BodyEnd = "malformed" | "stalled" | "closed";

/**
 * Sends the request body (`first`, then what the client sends) as `body`
 * delimits it; resolves with the bytes read past its end (the next
 * request's), or why the body ended before it was whole.
 */
async function sendBody(
  to: ByteStream,
  reader: TimedReader,
  body: HttpBody,
  first: Uint8Array,
): Promise<Uint8Array | BodyEnd> {
  if (body.kind === "none") return first;
  let chunk: Uint8Array = first;
  let left = body.kind === "length" ? body.length : Infinity;
  const chunked = body.kind === "chunked" ? new ChunkedBodyEnd() : undefined;
  for (;;) {
    if (chunk.length > 0) {
      let n: number;
      if (chunked !== undefined) {
        n = chunked.push(chunk);
        if (n < 0) return "malformed";
      } else {
        n = Math.min(left, chunk.length);
        left -= n;
      }
      await writeAll(to, chunk.subarray(0, n));
      if (left === 0 || chunked?.done) return chunk.subarray(n);
    }
    const got = await reader.next(BODY_IDLE_MS);
    if (got === null) return "closed";
    if (got === "timeout") return "stalled";
    chunk = got;
  }
}

/**
 * Relays the target's response to the client: the head rewritten
 * (rewriteResponseHead), then every byte until the target closes. Resolves
 * with whether the client may keep the connection (the response's end is
 * delimited), false when no valid head came (502 sent if nothing was, or
 * what `unanswered` gives when the request itself ended it).
 */
async function relayResponse(
  from: ByteStream,
  to: ByteStream,
  method: string,
  unanswered: () => Uint8Array | undefined,
): Promise<boolean> {
  const buf = new Uint8Array(64 * 1024);
  let head = new Uint8Array(0);
  let end = -1;
  while (end < 0) {
    const n = await from.read(buf);
    if (n === null) {
      if (head.length === 0) {
        await writeAll(
          to,
          unanswered() ?? httpStatusResponse(502, "the target closed without answering"),
        );
      }
      return false;
    }
    const grown = new Uint8Array(head.length + n);
    grown.set(head);
    grown.set(buf.subarray(0, n), head.length);
    head = grown;
    end = blankLine(head);
    if ((end < 0 ? head.length : end) > MAX_RESPONSE_HEAD) {
      await writeAll(to, httpStatusResponse(502, "the target's response head is too large"));
      return false;
    }
  }
  const ready = rewriteResponseHead(String.fromCharCode(...head.subarray(0, end)), method);
  if (ready === null) {
    await writeAll(to, httpStatusResponse(502, "the target's response is not HTTP/1.x"));
    return false;
  }
  await writeAll(to, ready.head);
  if (head.length > end + 4) await writeAll(to, head.subarray(end + 4));
  for (;;) {
    const n = await from.read(buf);
    if (n === null) return ready.keepAlive;
    await writeAll(to, buf.subarray(0, n));
  }
}

/** Index of the first CRLF CRLF in `b`, or -1. */
function blankLine(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 0x0d && b[i + 1] === 0x0a && b[i + 2] === 0x0d && b[i + 3] === 0x0a) return i;
  }
  return -1;
}
