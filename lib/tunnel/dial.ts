/**
 * Local proxy front ends and the direct dialer. A front end (SOCKS5 or HTTP
 * CONNECT listener) accepts applications' connections and asks a
 * `Connector` to reach the target: through the tunnel on the client, or
 * directly on the server's own SOCKS5 port (seed 002's port 1081).
 *
 * @module
 */
import {
  encodeReply,
  Reply,
  replyForError,
  type Socks5Auth,
  type Socks5Request,
  Socks5ServerHandshake,
} from "../socks5/mod.ts";
import { type ByteStream, writeAll } from "../transport/types.ts";
import { describeError, type EventSink, type Logger } from "../observe/mod.ts";
import { pipeBoth } from "./pipe.ts";
import { TimedReader } from "./reader.ts";
import { drive } from "./_drive.ts";
import { type FrontEnd, serveListener } from "./listener.ts";
import { listenTcp } from "../transport/tcp.ts";

export type { FrontEnd } from "./listener.ts";

/** A SOCKS5 greeting and request must arrive within this. */
const SOCKS_HANDSHAKE_MS = 15_000;

/** The outcome of asking a connector for a target. */
export interface Opened {
  /** The raw SOCKS5 reply (VER REP RSV ATYP BND.ADDR BND.PORT). */
  reply: Uint8Array;
  /** Joins the application's socket to the target; only when the reply is success. */
  attach(sock: ByteStream, early: Uint8Array): void;
}

/** Reaches targets on behalf of a front end. */
export interface Connector {
  open(request: Socks5Request, raw: Uint8Array): Promise<Opened>;
  /**
   * Runs a SOCKS5 UDP ASSOCIATE on its control connection, reply included,
   * until it ends. Without it, UDP ASSOCIATE is answered 7 (not supported).
   */
  associate?(control: Deno.Conn, request: Socks5Request): Promise<void>;
}

/**
 * Dials a TCP target with a deadline; names resolve through the system.
 * Throws `Deno.errors.TimedOut` after `timeoutMs`.
 */
export function dialTarget(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<Deno.TcpConn> {
  const attempt = Deno.connect({ hostname: host, port });
  // One promise and one timer; whichever settles it first wins.
  return new Promise<Deno.TcpConn>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(
        new Deno.errors.TimedOut(
          `Timed out after ${timeoutMs / 1000} s connecting to ${host}:${port}`,
        ),
      );
    }, timeoutMs);
    attempt.then((conn) => {
      // A connect that finishes after the deadline must not leak.
      if (late) return conn.close();
      clearTimeout(timer);
      try {
        conn.setNoDelay(true);
      } catch (e) {
        conn.close();
        return reject(e);
      }
      resolve(conn);
    }, (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** A connector that dials targets directly from this machine. */
export function directConnector(connectTimeoutMs: number): Connector {
  return {
    async open(req) {
      if (req.command !== "connect") {
        return { reply: encodeReply(Reply.COMMAND_NOT_SUPPORTED), attach: (s) => s.close() };
      }
      let target: Deno.TcpConn;
      try {
        target = await dialTarget(req.host, req.port, connectTimeoutMs);
      } catch (e) {
        return { reply: encodeReply(replyForError(e)), attach: (s) => s.close() };
      }
      const local = target.localAddr as Deno.NetAddr;
      return {
        reply: encodeReply(Reply.SUCCEEDED, { host: local.hostname, port: local.port }),
        attach(sock, early) {
          (async () => {
            if (early.length > 0) await writeAll(target, early);
            await pipeBoth(sock, sock, target);
          })().catch(() => {
            target.close();
            sock.close();
          });
        },
      };
    },
  };
}

/**
 * Serves SOCKS5 (RFC 1928, with RFC 1929 when `auth.users` is set) on
 * `listen`, sending each request to `connector`.
 */
export function serveSocks(
  listenAddr: { host: string; port: number },
  opts: {
    auth?: Socks5Auth;
    connector: Connector;
    log: Logger;
    /** Hears `listening` (as `kind`, default "socks5"). */
    events?: EventSink;
    kind?: "socks5" | "direct";
    /**
     * A mixed port: a connection whose first byte is a letter (an HTTP
     * method) is handed here, with the bytes read so far.
     */
    http?: (conn: Deno.Conn, initial: Uint8Array) => Promise<void>;
  },
): FrontEnd {
  const listener = listenTcp({ hostname: listenAddr.host, port: listenAddr.port });
  const front = serveListener(listener, (conn) => handleSocks(conn, opts), opts.log, "SOCKS5");
  opts.events?.emit({ type: "listening", kind: opts.kind ?? "socks5", addr: front.addr });
  return front;
}

async function handleSocks(
  conn: Deno.Conn,
  opts: {
    auth?: Socks5Auth;
    connector: Connector;
    log: Logger;
    http?: (conn: Deno.Conn, initial: Uint8Array) => Promise<void>;
  },
): Promise<void> {
  if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  const reader = new TimedReader(conn, 4096);
  let initial: Uint8Array | undefined;
  if (opts.http !== undefined) {
    // Mixed port: every HTTP method starts with a letter, SOCKS5 with its
    // version byte 5; anything else (SOCKS4, noise) gets SOCKS5's refusal.
    const first = await reader.next(SOCKS_HANDSHAKE_MS);
    if (first === null || first === "timeout") {
      conn.close();
      return;
    }
    const b = first[0]!;
    if ((b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) {
      await opts.http(conn, first);
      return;
    }
    initial = first;
  }
  const associate = opts.connector.associate?.bind(opts.connector);
  const hs = new Socks5ServerHandshake(opts.auth, { udpAssociate: associate !== undefined });
  const r = await drive(conn, reader, (c) => hs.push(c), {
    deadlineMs: SOCKS_HANDSHAKE_MS,
    ...(initial === undefined ? {} : { initial }),
  });
  if ("stop" in r) {
    conn.close();
    if (r.stop === "error") throw r.error;
    return;
  }
  const step = r.step;
  if (step.type === "fail") {
    opts.log.debug(`SOCKS5 request refused: ${step.error.message}`);
    await writeAll(conn, step.send).catch(() => {});
    conn.close();
    return;
  }
  if (step.send !== undefined) await writeAll(conn, step.send);
  if (step.request.command === "udp_associate" && associate !== undefined) {
    await associate(conn, step.request);
    return;
  }
  const opened = await openFor(opts.connector, step.request, step.raw, opts.log);
  if (opened.attach === undefined) {
    await writeAll(conn, opened.reply).catch(() => {});
    conn.close();
    return;
  }
  await writeAll(conn, opened.reply);
  if (opened.reply[1] !== Reply.SUCCEEDED) {
    conn.close();
    return;
  }
  opened.attach(conn, step.rest);
}

/**
 * The reply a front end gives when its connector fails: a stream OPEN the
 * tunnel did not answer in time (`Deno.errors.TimedOut`) is "TTL expired"
 * (reply 6; HTTP 504 Gateway Timeout); anything else (server down, login
 * refused) is a general failure (reply 1; HTTP 502).
 *
 * @example
 * ```ts
 * import { replyForOpenError } from "./dial.ts";
 * replyForOpenError(new Deno.errors.TimedOut("no reply")); // 6
 * replyForOpenError(new Error("down")); // 1
 * ```
 */
export function replyForOpenError(e: unknown): number {
  return e instanceof Deno.errors.TimedOut ? Reply.TTL_EXPIRED : Reply.GENERAL_FAILURE;
}

/**
 * Asks `connector` for a front end's request; a failure becomes a failure
 * reply ({@linkcode replyForOpenError}) without `attach`, and is logged.
 */
export async function openFor(
  connector: Connector,
  request: Socks5Request,
  raw: Uint8Array,
  log: Logger,
): Promise<{ reply: Uint8Array; attach: Opened["attach"] | undefined }> {
  try {
    return await connector.open(request, raw);
  } catch (e) {
    log.info(`${request.host}:${request.port}: ${describeError(e)}`);
    return { reply: encodeReply(replyForOpenError(e)), attach: undefined };
  }
}

/** Serves the server-side direct SOCKS5 port (no tunnel). */
export function serveDirectSocks(
  listenAddr: { host: string; port: number },
  opts: { log: Logger; connectTimeoutMs: number; events?: EventSink },
): FrontEnd {
  return serveSocks(listenAddr, {
    connector: directConnector(opts.connectTimeoutMs),
    log: opts.log,
    kind: "direct",
    ...(opts.events === undefined ? {} : { events: opts.events }),
  });
}
