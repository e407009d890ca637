/**
 * Minimal SOCKS5 (RFC 1928/1929) and HTTP CONNECT clients for tests,
 * written independently of `lib/socks5` so they catch its mistakes rather
 * than share them.
 *
 * Exports:
 * - `socksConnect(proxyPort, host, port, opts?)` → `Deno.TcpConn` ready for
 *   application data after a success reply; throws `SocksReplyError`
 *   (`.reply` = REP code) otherwise. IPv4/IPv6 literals are sent as
 *   ATYP 1/4 (brackets optional), anything else as a domain (ATYP 3).
 * - `socksHandshake(stream, host, port, opts?)` → `{ reply, bind }` over an
 *   already open stream (e.g. a memory pipe); throws on non-zero REP unless
 *   `allowFailure`.
 * - `httpConnect(proxyPort, host, port, opts?)` → `Deno.TcpConn` after
 *   "200"; throws `HttpConnectError` (`.status`, `.head`) otherwise.
 * - `readExact(stream, n)` → exactly n bytes (throws on early EOF).
 * - `expectClosed(stream, ms, what)`: the peer closes (end of stream or a
 *   reset) within `ms`, sending nothing more.
 *
 * Options: `username`/`password` (RFC 1929 or Basic), `proxyHostname`
 * (default "127.0.0.1"), `methods` (override offered SOCKS methods).
 *
 * @example
 * ```ts ignore
 * import { socksConnect } from "./socks_client.ts";
 * const conn = await socksConnect(1080, "127.0.0.1", target.port);
 * ```
 *
 * @module
 */
import { step, withDeadline } from "./deadline.ts";

/** A stream the handshakes can run over. */
export interface HandshakeStream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
}

/** Options for the clients. */
export interface SocksClientOptions {
  username?: string;
  password?: string;
  /** Default "127.0.0.1". */
  proxyHostname?: string;
  /** SOCKS methods to offer; default [0x00] or [0x02] with credentials. */
  methods?: number[];
  /** Resolve with the reply instead of throwing on a non-zero REP. */
  allowFailure?: boolean;
}

/** The proxy refused: `reply` is the RFC 1928 REP code (or 0xff for no method, 0x101 for auth failure). */
export class SocksReplyError extends Error {
  readonly reply: number;
  constructor(reply: number, message: string) {
    super(message);
    this.name = "SocksReplyError";
    this.reply = reply;
  }
}

/** The HTTP proxy answered something other than 200. */
export class HttpConnectError extends Error {
  readonly status: number;
  readonly head: string;
  constructor(status: number, head: string) {
    super(`HTTP CONNECT refused: ${head.split("\r\n")[0]}`);
    this.name = "HttpConnectError";
    this.status = status;
    this.head = head;
  }
}

const enc = new TextEncoder();

async function writeFull(s: HandshakeStream, p: Uint8Array): Promise<void> {
  let o = 0;
  while (o < p.length) o += await s.write(p.subarray(o));
}

/** Reads exactly `n` bytes, never more (so data after a reply stays unread). */
export async function readExact(s: HandshakeStream, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let o = 0;
  while (o < n) {
    const r = await s.read(out.subarray(o));
    if (r === null) {
      throw new Deno.errors.UnexpectedEof(`Cannot read: end of stream after ${o} of ${n} bytes`);
    }
    o += r;
  }
  return out;
}

/**
 * Waits at most `ms` for the peer to close `s` (end of stream or a reset);
 * throws if data arrives instead, or a `DeadlineError` naming `what`.
 */
export async function expectClosed(s: HandshakeStream, ms: number, what: string): Promise<void> {
  const n = await withDeadline(s.read(new Uint8Array(8)).catch(() => null), ms, what);
  if (n !== null) throw new Error(`Expected ${what}, but ${n} bytes arrived`);
}

function ipv4Bytes(h: string): Uint8Array | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (!m) return null;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? Uint8Array.from(b) : null;
}

function ipv6Bytes(h: string): Uint8Array | null {
  if (!h.includes(":")) return null;
  // Rewrite a trailing dotted IPv4 as two hex groups, then parse hex only.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (v4) {
    const b = ipv4Bytes(v4[1]!);
    if (!b) return null;
    h = `${h.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${
      ((b[2]! << 8) | b[3]!).toString(16)
    }`;
  }
  const halves = h.split("::");
  if (halves.length > 2) return null;
  const parse = (
    x: string,
  ) => (x === ""
    ? []
    : x.split(":").map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - left.length - right.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return null;
  const words = [...left, ...new Array<number>(fill).fill(0), ...right];
  if (words.some((w) => Number.isNaN(w))) return null;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function addressBytes(host: string): Uint8Array {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const v4 = ipv4Bytes(h);
  if (v4) return Uint8Array.of(1, ...v4);
  const v6 = ipv6Bytes(h);
  if (v6) return Uint8Array.of(4, ...v6);
  const d = enc.encode(host);
  return Uint8Array.of(3, d.length, ...d);
}

function formatBind(atyp: number, a: Uint8Array): string {
  if (atyp === 1) return Array.from(a).join(".");
  if (atyp === 4) {
    const w: string[] = [];
    for (let i = 0; i < 16; i += 2) w.push(((a[i]! << 8) | a[i + 1]!).toString(16));
    return w.join(":");
  }
  return new TextDecoder().decode(a);
}

/**
 * Runs the client side of the SOCKS5 handshake over `stream`.
 *
 * @example
 * ```ts ignore
 * import { socksHandshake } from "./socks_client.ts";
 * const { reply, bind } = await socksHandshake(pipeEnd, "example.com", 443);
 * ```
 */
export async function socksHandshake(
  stream: HandshakeStream,
  host: string,
  port: number,
  opts: SocksClientOptions = {},
): Promise<{ reply: number; bind: { host: string; port: number } }> {
  const auth = opts.username !== undefined;
  const methods = opts.methods ?? [auth ? 2 : 0];
  await writeFull(stream, Uint8Array.of(5, methods.length, ...methods));
  const sel = await readExact(stream, 2);
  if (sel[0] !== 5) throw new SocksReplyError(0xff, `bad method selection version ${sel[0]}`);
  if (sel[1] === 0xff) {
    throw new SocksReplyError(0xff, "proxy accepted none of the offered methods");
  }
  if (sel[1] === 2) {
    const u = enc.encode(opts.username ?? "");
    const p = enc.encode(opts.password ?? "");
    await writeFull(stream, Uint8Array.of(1, u.length, ...u, p.length, ...p));
    const st = await readExact(stream, 2);
    if (st[0] !== 1 || st[1] !== 0) {
      throw new SocksReplyError(0x101, `authentication failed (status ${st[1]})`);
    }
  } else if (sel[1] !== 0) {
    throw new SocksReplyError(0xff, `proxy selected unexpected method ${sel[1]}`);
  }
  await writeFull(stream, Uint8Array.of(5, 1, 0, ...addressBytes(host), port >> 8, port & 0xff));
  const head = await readExact(stream, 4);
  if (head[0] !== 5) throw new SocksReplyError(1, `bad reply version ${head[0]}`);
  const atyp = head[3]!;
  const alen = atyp === 1
    ? 4
    : atyp === 4
    ? 16
    : atyp === 3
    ? (await readExact(stream, 1))[0]!
    : -1;
  if (alen < 0) throw new SocksReplyError(1, `bad reply address type ${atyp}`);
  const addr = await readExact(stream, alen);
  const p = await readExact(stream, 2);
  const result = {
    reply: head[1]!,
    bind: { host: formatBind(atyp, addr), port: (p[0]! << 8) | p[1]! },
  };
  if (result.reply !== 0 && !opts.allowFailure) {
    throw new SocksReplyError(result.reply, `SOCKS5 proxy replied ${result.reply}`);
  }
  return result;
}

/**
 * Connects to a SOCKS5 proxy on `proxyPort` and asks for `host:port`.
 *
 * @example
 * ```ts ignore
 * import { socksConnect } from "./socks_client.ts";
 * const conn = await socksConnect(proxy.port, "localhost", target.port, { username: "u", password: "p" });
 * ```
 */
export function socksConnect(
  proxyPort: number,
  host: string,
  port: number,
  opts: SocksClientOptions = {},
): Promise<Deno.TcpConn> {
  return connectThrough(proxyPort, opts, `the SOCKS5 reply for ${host}:${port}`, async (conn) => {
    await socksHandshake(conn, host, port, { ...opts, allowFailure: false });
  });
}

/**
 * The SOCKS5 reply code a proxy on 127.0.0.1:`proxyPort` gives for
 * `host:port` (with the client's fast open off, the server's own answer);
 * the connection is closed after the reply.
 *
 * @example
 * ```ts ignore
 * import { socksReplyFor } from "./socks_client.ts";
 * assert.equal(await socksReplyFor(pair.socksPort, "10.0.0.1", 80), 2);
 * ```
 */
export async function socksReplyFor(
  proxyPort: number,
  host: string,
  port: number,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  try {
    return (await socksHandshake(conn, host, port, { allowFailure: true })).reply;
  } finally {
    conn.close();
  }
}

/**
 * Connects to an HTTP CONNECT proxy on `proxyPort` and asks for `host:port`.
 *
 * @example
 * ```ts ignore
 * import { httpConnect } from "./socks_client.ts";
 * const conn = await httpConnect(proxy.port, "::1", target.port);
 * ```
 */
export function httpConnect(
  proxyPort: number,
  host: string,
  port: number,
  opts: SocksClientOptions = {},
): Promise<Deno.TcpConn> {
  return connectThrough(
    proxyPort,
    opts,
    `the CONNECT response for ${host}:${port}`,
    async (conn) => {
      const authority = host.includes(":") && !host.startsWith("[")
        ? `[${host}]:${port}`
        : `${host}:${port}`;
      const cred = opts.username === undefined
        ? ""
        : `Proxy-Authorization: Basic ${
          btoa(String.fromCharCode(...enc.encode(`${opts.username}:${opts.password ?? ""}`)))
        }\r\n`;
      await writeFull(
        conn,
        enc.encode(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${cred}\r\n`),
      );
      // Read byte by byte up to the blank line so tunnel data stays unread.
      let head = "";
      while (!head.endsWith("\r\n\r\n")) {
        if (head.length > 16384) throw new HttpConnectError(0, head);
        head += String.fromCharCode((await readExact(conn, 1))[0]!);
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      if (status !== 200) throw new HttpConnectError(status, head);
    },
  );
}

/** Connects to the proxy and runs `handshake` on the connection (closed if it fails), as a named step. */
function connectThrough(
  proxyPort: number,
  opts: SocksClientOptions,
  what: string,
  handshake: (conn: Deno.TcpConn) => Promise<void>,
): Promise<Deno.TcpConn> {
  return step(what, async () => {
    const hostname = opts.proxyHostname ?? "127.0.0.1";
    const conn = await Deno.connect({ hostname, port: proxyPort });
    try {
      await handshake(conn);
      return conn;
    } catch (e) {
      conn.close();
      throw e;
    }
  });
}
