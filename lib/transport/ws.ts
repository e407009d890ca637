/**
 * The `ws` and `wss` transports: the tunnel's byte stream as the payload of
 * WebSocket binary messages at one path, so a web front (nginx, Caddy, a
 * CDN) can carry it like any other WebSocket. `ws` is plain HTTP (for a
 * front on loopback that terminates TLS itself); `wss` is the server's own
 * TLS. The framing is `lib/fronting/websocket.ts`; this module owns the
 * sockets.
 *
 * On the server, a connection whose first request is not a WebSocket
 * upgrade at the path (another path, a browser, a scanner, garbage, a
 * stall) comes out of the listener `refused`, with every byte it sent, for
 * the caller's fallback web server.
 *
 * @module
 */
import {
  checkUpgradeRequest,
  checkUpgradeResponse,
  CloseCode,
  closePayload,
  DEFAULT_MAX_MESSAGE,
  encodeFrame,
  encodeFrameHeader,
  FrameDecoder,
  MAX_HEADER_SIZE,
  MAX_HTTP_HEAD,
  Opcode,
  parseHttpHead,
  upgradeRequest,
  upgradeResponse,
} from "../fronting/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { DEFAULT_DIAL_TIMEOUT_MS } from "./_dial.ts";
import { PrefixedConn, preparedListener, readPrefix } from "./_prepared.ts";
import { dialTcp } from "./tcp.ts";
import { dialTls } from "./tls.ts";
import type { TransportConn, TransportListener } from "./registry.ts";
import { type ByteStream, writeAll } from "./types.ts";

/** How long a new connection has to send its whole upgrade request. */
export const WS_UPGRADE_DEADLINE_MS = 10_000;
/** Largest payload of one frame this side writes; longer writes are split. */
export const WS_MAX_FRAME_OUT = 64 * 1024;
/** Bytes read from the socket at once. */
const READ_BUFFER = 64 * 1024;
/** Mask keys drawn from the random source at once (client side). */
const MASK_POOL = 256;

/**
 * A WebSocket connection as a `ByteStream`: `read` returns the payload of
 * the peer's binary messages, `write` sends binary frames (masked with a
 * fresh random key on the client, as RFC 6455 section 5.3 requires).
 * Pings are answered with pongs; the peer's Close is the end of the
 * stream (answered with a Close); `closeWrite` sends a Close (1000).
 *
 * Data path: a large frame's payload is read straight into the caller's
 * buffer and unmasked there; a frame goes out in one write of header and
 * payload from a reused buffer.
 */
export class WsConn implements TransportConn {
  readonly #inner: ByteStream;
  readonly #client: boolean;
  readonly #decoder: FrameDecoder;
  readonly #buf = new Uint8Array(READ_BUFFER);
  #start = 0;
  #end = 0;
  /** Decoded payload not yet returned: a view into `#buf`. */
  #data: Uint8Array | undefined;
  #eof = false;
  #closeSent = false;
  #closed = false;
  /** The data frame being written; control frames wait in `#queued` until it is done. */
  #dataWrite: Promise<void> | undefined;
  #queued: Uint8Array[] = [];
  /** The control frames being written. */
  #control: Promise<void> | undefined;
  #scratch = new Uint8Array(MAX_HEADER_SIZE + 16 * 1024);
  readonly #masks = new Uint8Array(MASK_POOL * 4);
  #maskAt = MASK_POOL * 4;
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr;

  constructor(
    inner: ByteStream & { readonly remoteAddr: Deno.Addr; readonly localAddr: Deno.Addr },
    opts: { role: "client" | "server"; initial?: Uint8Array; maxMessage?: number },
  ) {
    this.#inner = inner;
    this.#client = opts.role === "client";
    this.#decoder = new FrameDecoder({
      role: opts.role,
      maxMessage: opts.maxMessage ?? DEFAULT_MAX_MESSAGE,
    });
    this.remoteAddr = inner.remoteAddr;
    this.localAddr = inner.localAddr;
    const initial = opts.initial;
    if (initial !== undefined && initial.length > 0) {
      if (initial.length > this.#buf.length) {
        throw new RangeError(`Cannot start WebSocket: ${initial.length} early bytes`);
      }
      this.#buf.set(initial);
      this.#end = initial.length;
    }
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      const d = this.#data;
      if (d !== undefined) {
        const n = Math.min(p.length, d.length);
        p.set(n === d.length ? d : d.subarray(0, n));
        this.#data = n === d.length ? undefined : d.subarray(n);
        return n;
      }
      if (this.#eof) return null;
      if (p.length === 0) return 0;
      if (this.#start < this.#end) {
        const e = this.#decoder.next(this.#buf.subarray(0, this.#end), this.#start);
        switch (e.type) {
          case "more":
            this.#start = this.#end = 0;
            break;
          case "data":
            this.#start = e.end;
            this.#data = e.bytes;
            break;
          case "ping":
            this.#start = e.end;
            this.#sendControl(Opcode.PONG, e.payload);
            break;
          case "pong":
            this.#start = e.end;
            break;
          case "close":
            this.#start = e.end;
            this.#eof = true;
            if (!this.#closeSent) {
              this.#closeSent = true;
              this.#sendControl(Opcode.CLOSE, closePayload(CloseCode.NORMAL));
            }
            return null;
          case "error":
            this.#eof = true;
            if (!this.#closeSent) {
              this.#closeSent = true;
              this.#sendControl(Opcode.CLOSE, closePayload(e.code));
            }
            throw new Deno.errors.InvalidData(`WebSocket protocol error: ${e.reason}`);
        }
        continue;
      }
      // Nothing buffered. Inside a frame's payload: read straight into `p`.
      const left = this.#decoder.payloadLeft;
      if (left > 0) {
        const view = p.length > left ? p.subarray(0, left) : p;
        const n = await this.#inner.read(view);
        if (n === null) return this.#abrupt();
        const e = this.#decoder.next(view.subarray(0, n), 0);
        // A payload view always decodes to data (unmasked in place).
        if (e.type === "data") return n;
        throw new Deno.errors.InvalidData("WebSocket protocol error: payload expected");
      }
      const n = await this.#inner.read(this.#buf);
      if (n === null) return this.#abrupt();
      this.#start = 0;
      this.#end = n;
    }
  }

  /** The TCP connection ended without a Close: the end of the stream all the same. */
  #abrupt(): null {
    this.#eof = true;
    return null;
  }

  #nextMask(): Uint8Array {
    if (this.#maskAt === this.#masks.length) {
      crypto.getRandomValues(this.#masks);
      this.#maskAt = 0;
    }
    const k = this.#masks.subarray(this.#maskAt, this.#maskAt + 4);
    this.#maskAt += 4;
    return k;
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) throw new Deno.errors.BadResource("Cannot write to WebSocket: closed");
    if (this.#closeSent) {
      throw new Deno.errors.BrokenPipe("Cannot write to WebSocket: the Close was sent");
    }
    if (p.length === 0) return 0;
    // Frames never interleave: wait for a control frame, or another caller's write, in flight.
    while (this.#dataWrite !== undefined || this.#control !== undefined) {
      await (this.#dataWrite ?? this.#control)!.catch(() => {});
    }
    const n = Math.min(p.length, WS_MAX_FRAME_OUT);
    const payload = n === p.length ? p : p.subarray(0, n);
    const need = MAX_HEADER_SIZE + n;
    // One buffer, reused, for header and payload: one write per frame (as one TLS record).
    if (this.#scratch.length < need) {
      this.#scratch = new Uint8Array(Math.max(need, this.#scratch.length * 2));
    }
    const out = this.#scratch;
    const key = this.#client ? this.#nextMask() : undefined;
    const h = encodeFrameHeader(
      out,
      0,
      key === undefined
        ? { opcode: Opcode.BINARY, fin: true, length: n }
        : { opcode: Opcode.BINARY, fin: true, length: n, maskKey: key },
    );
    if (key === undefined) out.set(payload, h);
    else maskInto(payload, out.subarray(h, h + n), key);
    const w = writeAll(this.#inner, out.subarray(0, h + n));
    this.#dataWrite = w;
    try {
      await w;
    } finally {
      this.#dataWrite = undefined;
      this.#drain();
    }
    return n;
  }

  /**
   * Sends a control frame as soon as no data frame is being written. At most
   * a Close and one pong wait: a newer ping's pong replaces an older one.
   */
  #sendControl(opcode: number, payload: Uint8Array): void {
    const frame = encodeFrame(opcode, payload, this.#client ? this.#nextMask() : undefined);
    if (opcode === Opcode.PONG) {
      this.#queued = this.#queued.filter((f) => (f[0]! & 0x0f) !== Opcode.PONG);
    }
    this.#queued.push(frame);
    this.#drain();
  }

  /** Writes the queued control frames unless a data frame or a drain is in flight. */
  #drain(): void {
    if (this.#dataWrite !== undefined || this.#control !== undefined) return;
    if (this.#queued.length === 0 || this.#closed) return;
    const run = async () => {
      while (this.#queued.length > 0) await writeAll(this.#inner, this.#queued.shift()!);
    };
    const c: Promise<void> = run().catch(() => {
      // The link is gone; the next read or write reports it.
      this.#queued.length = 0;
    }).finally(() => {
      this.#control = undefined;
      this.#drain();
    });
    this.#control = c;
  }

  async closeWrite(): Promise<void> {
    if (this.#closeSent || this.#closed) return;
    this.#closeSent = true;
    this.#sendControl(Opcode.CLOSE, closePayload(CloseCode.NORMAL));
    while (this.#dataWrite !== undefined || this.#control !== undefined) {
      await (this.#dataWrite ?? this.#control)!.catch(() => {});
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#eof = true;
    this.#inner.close();
  }
}

function maskInto(src: Uint8Array, dst: Uint8Array, key: Uint8Array): void {
  const k0 = key[0]!, k1 = key[1]!, k2 = key[2]!, k3 = key[3]!;
  const n = src.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    dst[i] = src[i]! ^ k0;
    dst[i + 1] = src[i + 1]! ^ k1;
    dst[i + 2] = src[i + 2]! ^ k2;
    dst[i + 3] = src[i + 3]! ^ k3;
  }
  for (; i < n; i++) dst[i] = src[i]! ^ key[i & 3]!;
}

/** Options for {@linkcode upgradeAccepted}. */
export interface WsAcceptOptions {
  /** The path the WebSocket is served at (`ws.path`). */
  path: string;
  /** Deadline for the whole upgrade request; default 10 s. */
  deadlineMs?: number;
}

/**
 * Serves the opening handshake on an accepted connection: a WebSocket
 * upgrade at `path` is answered with 101 and comes back as a
 * {@linkcode WsConn}; anything else comes back `refused`, every byte it
 * sent still to be read, for the fallback.
 */
export async function upgradeAccepted(
  conn: TransportConn,
  opts: WsAcceptOptions,
): Promise<TransportConn> {
  // TLS chose h2: a client that reads WebSockets at ws.path asks for http/1.1 only (RFC 8441's
  // WebSockets over HTTP/2 are not served), so this is an HTTP/2 visitor. It goes to the
  // fallback at once, before a byte is read: an HTTP/2 server speaks first (PROTOCOL.md part 2
  // section 6.2.2), and a wait for an HTTP/1 head would be a silence nginx never keeps.
  if ((conn as { alpnProtocol?: string | null }).alpnProtocol === "h2") {
    return new PrefixedConn(conn, new Uint8Array(0), { refused: "an HTTP/2 (ALPN h2) visitor" });
  }
  let verdict: ReturnType<typeof parseHttpHead> = { type: "partial" };
  let elsewhere = false;
  const prefix = await readPrefix(conn, (b) => {
    // Bytes that cannot begin a GET of the path go to the fallback at once, as a web server
    // answers (or starts to read) a request the moment it sees what it is.
    if (!mayBeUpgradeAt(b, opts.path)) {
      elsewhere = true;
      return "done";
    }
    verdict = parseHttpHead(b);
    return verdict.type === "partial" ? "more" : "done";
  }, { max: MAX_HTTP_HEAD, deadlineMs: opts.deadlineMs ?? WS_UPGRADE_DEADLINE_MS });
  if (elsewhere) {
    // A method is upper-case letters; anything else is no HTTP at all.
    const first = prefix.bytes[0] ?? 0;
    const http = first >= 0x41 && first <= 0x5a;
    return new PrefixedConn(conn, prefix, {
      refused: http ? "not a WebSocket upgrade at ws.path" : "not an HTTP request",
    });
  }
  const v = verdict as ReturnType<typeof parseHttpHead>;
  if (prefix.end === "done" && v.type === "head") {
    const key = checkUpgradeRequest(v.head, opts.path);
    if (key !== undefined) {
      await writeAll(conn, new TextEncoder().encode(upgradeResponse(key)));
      return new WsConn(conn, { role: "server", initial: prefix.bytes.subarray(v.head.size) });
    }
    return new PrefixedConn(conn, prefix, { refused: "not a WebSocket upgrade at ws.path" });
  }
  const why = prefix.end === "timeout"
    ? "no complete HTTP request in time"
    : prefix.end === "eof"
    ? "closed before a complete HTTP request"
    : "not an HTTP request";
  return new PrefixedConn(conn, prefix, { refused: why });
}

/** Could `b` still be the start of `GET <path> ` or `GET <path>?…` (an upgrade at the path)? */
function mayBeUpgradeAt(b: Uint8Array, path: string): boolean {
  const want = `GET ${path}`;
  const n = Math.min(b.length, want.length);
  for (let i = 0; i < n; i++) if (b[i] !== want.charCodeAt(i)) return false;
  if (b.length <= want.length) return true;
  const next = b[want.length];
  return next === 0x20 || next === 0x3f; // " " or "?"
}

/**
 * A listener of WebSocket connections at `path` over `inner` (plain TCP or
 * TLS connections): see {@linkcode upgradeAccepted}.
 */
export function wsListener(inner: TransportListener, opts: WsAcceptOptions): TransportListener {
  return preparedListener(inner, (c) => upgradeAccepted(c, opts));
}

/** Options for {@linkcode dialWs}. */
export interface WsDialOptions {
  hostname: string;
  port: number;
  /** The WebSocket's path (the URL's path). */
  path: string;
  /** Over TLS (`wss://`): verified against `caPems` and Deno's roots, ALPN http/1.1. */
  secure: boolean;
  /** TLS name and the Host header; default `hostname`. */
  serverName?: string;
  caPems?: string[];
  /** Deadline for connect, TLS and the upgrade; default 10 000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Connects, runs TLS for `wss`, sends the upgrade request and checks the
 * 101 answer, all within the deadline. Errors say what answered instead:
 * "… answered HTTP 404 Not Found at /tunnel instead of a WebSocket upgrade".
 */
export async function dialWs(opts: WsDialOptions): Promise<WsConn> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const startedAt = Date.now();
  const base = {
    hostname: opts.hostname,
    port: opts.port,
    timeoutMs,
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
  };
  const conn: Deno.TcpConn | Deno.TlsConn = opts.secure
    ? await dialTls({
      ...base,
      ...(opts.serverName === undefined ? {} : { serverName: opts.serverName }),
      ...(opts.caPems === undefined ? {} : { caPems: opts.caPems }),
      // WebSocket over HTTP/2 is another protocol (RFC 8441): ask for HTTP/1.1 only.
      alpn: ["http/1.1"],
    })
    : await dialTcp(base);
  const where = formatHostPort(opts.hostname, opts.port);
  // The caller's abort also ends the upgrade.
  const abort = () => conn.close();
  opts.signal?.addEventListener("abort", abort, { once: true });
  try {
    const name = opts.serverName ?? opts.hostname;
    const defaultPort = opts.secure ? 443 : 80;
    const host = opts.port === defaultPort ? hostForHeader(name) : formatHostPort(name, opts.port);
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const key = btoa(String.fromCharCode(...nonce));
    await writeAll(
      conn,
      new TextEncoder().encode(upgradeRequest({ host, path: opts.path, key })),
    );
    let verdict: ReturnType<typeof parseHttpHead> = { type: "partial" };
    const left = Math.max(1, timeoutMs - (Date.now() - startedAt));
    const prefix = await readPrefix(conn, (b) => {
      verdict = parseHttpHead(b);
      return verdict.type === "partial" ? "more" : "done";
    }, { max: MAX_HTTP_HEAD, deadlineMs: left });
    const v = verdict as ReturnType<typeof parseHttpHead>;
    if (prefix.end === "timeout") {
      throw new Deno.errors.TimedOut(
        `timed out after ${timeoutMs} ms waiting for ${where} to answer the WebSocket upgrade`,
      );
    }
    if (prefix.end !== "done" || v.type !== "head") {
      throw new Deno.errors.InvalidData(
        `${where} did not answer the WebSocket upgrade with HTTP` +
          (prefix.end === "eof" ? " (it closed the connection)" : ""),
      );
    }
    const wrong = checkUpgradeResponse(v.head, key);
    if (wrong !== undefined) {
      throw new Deno.errors.InvalidData(
        `${where} answered ${wrong} at ${opts.path} instead of a WebSocket upgrade (check the ` +
          `path in the profile's URL against the server's ws.path and the front's rule for it)`,
      );
    }
    return new WsConn(conn, { role: "client", initial: prefix.bytes.subarray(v.head.size) });
  } catch (e) {
    try {
      conn.close();
    } catch {
      // already closed
    }
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw e;
  } finally {
    opts.signal?.removeEventListener("abort", abort);
  }
}

function hostForHeader(name: string): string {
  return name.includes(":") ? `[${name}]` : name;
}
