/**
 * The built-in decoy web site: what a connection that fails the probe gate
 * talks to when `fallback.mode` is `decoy`. It imitates a default nginx
 * install serving its welcome page, on the connection itself (no loopback
 * hop, so the answer takes no longer than nginx's): HTTP/1.x through the
 * nginx-like parser in `decoy_http.ts`, HTTP/2 (ALPN h2, or the preface)
 * through a loopback `node:http2` server in prior-knowledge mode, run with
 * nginx's limits (its SETTINGS values and connection window), that sends
 * nginx's HTTP/2 headers in nginx's order. Over ALPN h2 the prober already
 * has nginx's SETTINGS (the server preface, `lib/handshake/h2_preface.ts`, sent by the
 * acceptor as the TLS handshake ends); the loopback server's own preface is
 * dropped on the way back.
 *
 * Timeouts and closes are nginx's defaults, measured on loopback:
 * - nothing sent: closed after `client_header_timeout` (60 s) from accept,
 *   with a TLS close_notify;
 * - part of a request head: closed at the same 60 s without close_notify;
 * - idle after an answer (keep-alive): closed after `keepalive_timeout`
 *   (75 s) with close_notify;
 * - a bad request: 400 with `Connection: close`, then close_notify at once;
 * - HTTP/2: the same two timers, each ending in a GOAWAY, and nginx's send
 *   timer for a request left open (`decoy_h2.ts`).
 *
 * @module
 */
import http2 from "node:http2";
import { type ByteStream, writeAll } from "../transport/types.ts";
import { describeError, type Logger } from "../observe/mod.ts";
import {
  answer,
  DECOY_PAGE,
  DECOY_SERVER,
  type DecoyFile,
  errorPage,
  pageAnswer,
  parseRequestHead,
} from "./decoy_http.ts";
import { serveH2 } from "./decoy_h2.ts";
import { H2_SERVER_PREFACE } from "../handshake/mod.ts";
import { H2_PREFACE } from "./probe_shape.ts";
import type { TimedReader } from "./reader.ts";

/** nginx's timers the decoy keeps (ms). */
export interface DecoyTimeouts {
  /** `client_header_timeout`: a request head must be complete this long after it began. */
  headerMs: number;
  /** `keepalive_timeout`: an idle kept-alive connection is closed after this. */
  keepaliveMs: number;
}

/** nginx 1.22's defaults, as measured (tests/e2e/probe_compare_test.ts). */
export const NGINX_TIMEOUTS: Readonly<DecoyTimeouts> = {
  headerMs: 60_000,
  keepaliveMs: 75_000,
};

/** What {@linkcode Decoy.serve} needs to know about the connection. */
export interface DecoyConnection {
  /** When the connection was accepted (`Date.now()`): nginx's header timer starts there. */
  startedAt: number;
  /** The ALPN protocol TLS agreed on, if any. */
  alpn: string | null;
  /** True when the connection already carried the HTTP/2 server preface ({@linkcode H2_SERVER_PREFACE}). */
  prefaceSent: boolean;
  log: Logger;
}

/**
 * The decoy site. One per server; `serve` takes each probing connection.
 *
 * @example
 * ```ts ignore
 * const decoy = Decoy.start();
 * await decoy.serve(conn, reader, received, { startedAt, alpn: null, log });
 * await decoy.close();
 * ```
 */
export class Decoy {
  readonly #file: DecoyFile;
  readonly #timeouts: DecoyTimeouts;
  readonly #h2: http2.Http2Server;
  readonly #h2Addr: Promise<{ hostname: string; port: number }>;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  /** Multipart answers so far (nginx numbers their boundaries from 1, over both protocols). */
  #multiparts = 0;
  readonly #boundary = (): number => ++this.#multiparts;

  private constructor(timeouts: DecoyTimeouts, log: Logger | undefined) {
    this.#timeouts = timeouts;
    // Like a page installed when the server was: its time is the start's.
    this.#file = { mtimeS: Math.floor(Date.now() / 1000), body: DECOY_PAGE };
    this.#h2 = http2.createServer({ settings: H2_BACKEND_SETTINGS });
    this.#h2.on("session", (session: http2.ServerHttp2Session) => {
      this.#sessions.add(session);
      session.on("close", () => this.#sessions.delete(session));
      session.on("error", () => {}); // a prober's protocol error ends its session, nothing more
      // nginx's connection window: 2^31 - 1 (its WINDOW_UPDATE of 2147418112).
      session.setLocalWindowSize(NGINX_H2_CONNECTION_WINDOW);
    });
    this.#h2.on("sessionError", () => {});
    this.#h2.on("stream", (stream: http2.ServerHttp2Stream, headers) => {
      stream.on("error", () => {}); // reset by the prober
      h2Answer(stream, headers, this.#file, this.#boundary);
    });
    this.#h2Addr = new Promise((resolve, reject) => {
      let listening = false;
      // Always handled: an unhandled 'error' event would end the process.
      this.#h2.on("error", (e: Error) => {
        if (!listening) reject(e);
        else log?.warn(`decoy HTTP/2 side: ${describeError(e)}`);
      });
      this.#h2.listen(0, "127.0.0.1", () => {
        listening = true;
        const a = this.#h2.address() as { port: number };
        resolve({ hostname: "127.0.0.1", port: a.port });
      });
    });
    this.#h2Addr.catch((e) =>
      log?.warn(
        `decoy HTTP/2 side could not listen on loopback (HTTP/2 probes get no answer): ${
          describeError(e)
        }`,
      )
    );
  }

  /**
   * Starts the decoy (its HTTP/2 side listens on an ephemeral loopback
   * port); `log` hears about that side's failures.
   */
  static start(timeouts: Partial<DecoyTimeouts> = {}, log?: Logger): Decoy {
    return new Decoy({ ...NGINX_TIMEOUTS, ...timeouts }, log);
  }

  /** The header timeout: the probe gate hands an idle connection over before it. */
  get headerTimeoutMs(): number {
    return this.#timeouts.headerMs;
  }

  /**
   * Serves one connection whose first bytes (`received`) the gate already
   * read; resolves when the connection is done (the caller closes it).
   */
  async serve(
    conn: ByteStream,
    reader: TimedReader,
    received: Uint8Array,
    c: DecoyConnection,
  ): Promise<void> {
    // HTTP/2 when TLS chose it, or over plain TCP when the preface came (as
    // nginx's `listen … http2`); with ALPN http/1.1 the preface is a bad
    // HTTP/1 request (400), as nginx answers it.
    if (c.alpn === "h2" || (c.alpn === null && startsWith(received, H2_PREFACE))) {
      try {
        await this.#serveHttp2(conn, reader, received, c);
      } catch {
        // The prober went away.
      }
      return;
    }
    try {
      await this.#serveHttp1(conn, reader, received, c.startedAt);
    } catch {
      // The prober went away mid-answer; the caller closes the connection.
    }
  }

  /**
   * nginx sends its SETTINGS and WINDOW_UPDATE first (the server preface),
   * then reads the client's 24-byte preface: anything else gets a GOAWAY
   * (PROTOCOL_ERROR), then close_notify. The preface goes to the loopback
   * HTTP/2 server, whose own SETTINGS and WINDOW_UPDATE are dropped.
   */
  async #serveHttp2(
    conn: ByteStream,
    reader: TimedReader,
    received: Uint8Array,
    c: DecoyConnection,
  ): Promise<void> {
    if (!c.prefaceSent) await writeAll(conn, H2_SERVER_PREFACE);
    let buf = received;
    // nginx waits for the preface as long as for an HTTP/1 head.
    const deadline = c.startedAt + this.#timeouts.headerMs;
    while (buf.length < H2_PREFACE.length) {
      const left = deadline - Date.now();
      const chunk = left > 0 ? await reader.next(left) : "timeout";
      if (chunk === null) return;
      if (chunk === "timeout") {
        await writeAll(conn, nginxH2Goaway(buf.length === 0 ? 0 : 1));
        await conn.closeWrite();
        return;
      }
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
    }
    if (!startsWith(buf, H2_PREFACE)) {
      await writeAll(conn, nginxH2Goaway(1));
      await conn.closeWrite();
      return;
    }
    await serveH2(conn, reader, buf, {
      backend: await this.#h2Addr,
      startedAt: c.startedAt,
      headerMs: this.#timeouts.headerMs,
      keepaliveMs: this.#timeouts.keepaliveMs,
      // nginx's client_body_timeout and send_timeout (60 s, as client_header_timeout).
      activeIdleMs: this.#timeouts.headerMs,
      log: c.log,
    });
  }

  async #serveHttp1(
    conn: ByteStream,
    reader: TimedReader,
    received: Uint8Array,
    startedAt: number,
  ): Promise<void> {
    let buf = received;
    let pos = 0;
    let deadline = startedAt + this.#timeouts.headerMs;
    let idle = false; // between requests on a kept-alive connection
    while (true) {
      const p = pos < buf.length ? parseRequestHead(buf, pos) : { type: "need_more" } as const;
      if (p.type === "bad") {
        await writeAll(conn, answer({ status: p.status }, this.#file, new Date()).bytes);
        await conn.closeWrite();
        return;
      }
      if (p.type === "request" && pos + p.headBytes + p.request.bodyBytes <= buf.length) {
        const a = answer(p.request, this.#file, new Date(), this.#boundary);
        await writeAll(conn, a.bytes);
        if (!a.keepAlive) {
          await conn.closeWrite();
          return;
        }
        pos += p.headBytes + p.request.bodyBytes;
        if (pos === buf.length) {
          buf = new Uint8Array(0);
          pos = 0;
          idle = true;
          deadline = Date.now() + this.#timeouts.keepaliveMs;
        }
        continue;
      }
      const left = deadline - Date.now();
      const chunk = left > 0 ? await reader.next(left) : "timeout";
      if (chunk === null) return;
      if (chunk === "timeout") {
        // nginx: a connection with nothing pending is shut down cleanly; one
        // in the middle of a request head is dropped without close_notify.
        if (pos === buf.length) await conn.closeWrite();
        return;
      }
      if (idle) {
        idle = false;
        deadline = Date.now() + this.#timeouts.headerMs;
      }
      const next = new Uint8Array(buf.length - pos + chunk.length);
      next.set(buf.subarray(pos));
      next.set(chunk, buf.length - pos);
      buf = next;
      pos = 0;
    }
  }

  /** Stops the HTTP/2 side (and ends the sessions it still serves). */
  async close(): Promise<void> {
    for (const s of this.#sessions) s.destroy();
    await new Promise<void>((resolve) => this.#h2.close(() => resolve()));
  }
}

/**
 * What nginx 1.22 sends, after its server preface, an HTTP/2 client (ALPN
 * h2) that does not send the client preface: GOAWAY (last stream 0) with
 * `code`: PROTOCOL_ERROR (1) for wrong bytes, NO_ERROR (0) when the client
 * sent nothing before the header timeout. Captured on loopback.
 */
function nginxH2Goaway(code: 0 | 1): Uint8Array {
  const hex = "000008070000000000" + "00000000" + `0000000${code}`;
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  if (b.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[i] !== prefix[i]) return false;
  return true;
}

/**
 * The loopback HTTP/2 server's SETTINGS: nginx's frame size and stream
 * window (INITIAL_WINDOW_SIZE 65536, MAX_FRAME_SIZE 16777215), which the
 * prober was told (it sees nginx's own bytes, `H2_SERVER_PREFACE`; this
 * server's SETTINGS frame is dropped on the way). Streams are not capped at
 * nginx's 128: nginx answers a burst of more requests in turn (each ends
 * before the next is counted), where this server would count them all at
 * once and end the connection.
 */
const H2_BACKEND_SETTINGS: http2.Settings = {
  maxConcurrentStreams: 4096,
  initialWindowSize: 65536,
  maxFrameSize: 16777215,
};

/** nginx's connection receive window after its WINDOW_UPDATE of 2147418112. */
const NGINX_H2_CONNECTION_WINDOW = 2 ** 31 - 1;

/**
 * nginx's HTTP/2 answer for the static site: its header names, in its
 * order, and for GET and HEAD of the page the same validators and ranges as
 * over HTTP/1.x (`pageAnswer`); the body, if any, in DATA frames ending the
 * stream, as nginx sends it.
 */
function h2Answer(
  stream: http2.ServerHttp2Stream,
  req: http2.IncomingHttpHeaders,
  file: DecoyFile,
  boundary: () => number,
): void {
  const method = String(req[":method"] ?? "");
  let path = "/";
  try {
    path = new URL(String(req[":path"] ?? "/"), "http://decoy").pathname;
  } catch {
    // An unparsable path is no page: 404 below.
    path = "";
  }
  const served = path === "/" || path === "/index.html";
  const head = method === "HEAD";
  let status = 200;
  if (method !== "GET" && method !== "HEAD") {
    status = served || method !== "POST" ? 405 : 404;
  } else if (!served) status = 404;
  let headers: [string, string][];
  let body: string | null;
  if (status !== 200) {
    const page = errorPage(status);
    headers = [
      ["server", DECOY_SERVER],
      ["date", new Date().toUTCString()],
      ["content-type", "text/html"],
      ["content-length", String(page.length)],
    ];
    body = head ? null : page;
  } else {
    const one = (name: string) => {
      const v = req[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const a = pageAnswer(
      file,
      {
        ifNoneMatch: one("if-none-match"),
        range: one("range"),
        ifRange: one("if-range"),
        ifModifiedSince: one("if-modified-since"),
        ifMatch: one("if-match"),
        ifUnmodifiedSince: one("if-unmodified-since"),
      },
      new Date(),
      boundary,
    );
    status = a.status;
    headers = a.headers.map(([n, v]) => [n.toLowerCase(), v]);
    body = head || a.status === 304 ? null : a.body;
  }
  const out: http2.OutgoingHttpHeaders = { ":status": status };
  for (const [n, v] of headers) out[n] = v;
  if (stream.destroyed) return;
  if (body === null || body.length === 0) {
    stream.respond(out, { endStream: true });
    return;
  }
  stream.respond(out);
  stream.end(body);
}
