/**
 * HTTP/1.1 CONNECT (RFC 9110 section 9.3.6, message syntax RFC 9112) for
 * the HTTP proxy port: a push-based parser that turns a CONNECT request
 * into the same {@linkcode Socks5Request} the SOCKS5 front end produces,
 * and the response bytes for every outcome. No I/O.
 *
 * @module
 */
import { splitHostPort } from "../wire/host_port.ts";
import { classifyHost } from "./address.ts";
import { checkCredentials, validateUsers } from "./_credentials.ts";
import { encodeRequest, type Socks5Request } from "./message.ts";
import { Reply, replyName, Socks5Error } from "./reply.ts";
import type { Socks5Auth } from "./server.ts";

/** Default and maximum size of the request line plus headers. */
export const MAX_HTTP_HEADER_BYTES = 8192;

/** Options for {@linkcode HttpConnectParser}. */
export interface HttpConnectOptions {
  /** Users for `Proxy-Authorization: Basic`; absent means no authentication. */
  auth?: Socks5Auth;
  /** Limit on request line plus headers, default and maximum 8192 bytes. */
  maxHeaderBytes?: number;
  /**
   * Also accept absolute-form requests (`GET http://host/path HTTP/1.1`,
   * RFC 9112 section 3.2.2) as `forward` steps; without it every method but
   * CONNECT is 405.
   */
  absoluteForm?: boolean;
  /**
   * Origin-form paths the proxy answers itself (`GET /proxy.pac`), as
   * `local` steps, before any `Proxy-Authorization` check: a browser
   * fetches its proxy configuration without credentials.
   */
  localPaths?: readonly string[];
}

/** How a forwarded request's body is delimited (RFC 9112 section 6). */
export type HttpBody =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" };

/** What the caller does next after {@linkcode HttpConnectParser.push}. */
export type HttpConnectStep =
  /** Headers not complete yet; push more bytes. */
  | { type: "need_more" }
  /**
   * A valid CONNECT. Dial `request`, then send `httpConnectResponse(reply)`.
   * `raw` is `encodeRequest(request)` (for a tunnel OPEN frame); `rest` the
   * bytes after the blank line (early data for the destination).
   */
  | {
    type: "request";
    request: Socks5Request;
    raw: Uint8Array;
    rest: Uint8Array;
    headers: [name: string, value: string][];
  }
  /**
   * An absolute-form request (option `absoluteForm`): open a stream to
   * `request`, send `head` (origin-form, `Proxy-*` and hop-by-hop headers
   * removed, `Connection: close`) and the body as `body` delimits it, taking
   * `rest` first; then relay the response (see {@linkcode rewriteResponseHead}).
   */
  | {
    type: "forward";
    request: Socks5Request;
    raw: Uint8Array;
    method: string;
    head: Uint8Array;
    body: HttpBody;
    /** The client asked to keep its connection for more requests. */
    keepAlive: boolean;
    /** The client sent `Expect: 100-continue` (removed from `head`): answer 100 at once. */
    expectContinue: boolean;
    rest: Uint8Array;
  }
  /**
   * A GET or HEAD of one of `localPaths` (option): answer it from this
   * proxy, then close the connection.
   */
  | { type: "local"; method: "GET" | "HEAD"; path: string }
  /** Send `send` (an HTTP error response), then close. */
  | { type: "fail"; status: number; send: Uint8Array; error: Socks5Error };

const REASONS: Record<number, string> = {
  200: "Connection established",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  501: "Not Implemented",
  407: "Proxy Authentication Required",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([^ ]+) ([^ ]+) HTTP\/([0-9])\.([0-9])$/;
const HEADER_LINE = /^([^:]*):[ \t]*(.*?)[ \t]*$/;
// deno-lint-ignore no-control-regex
const BAD_CHARS = /[\x00-\x08\x0a-\x1f\x7f]/;
const BASIC = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i;
/** `http://authority[/path?query]`: the authority, then the origin-form target (RFC 9112 3.2). */
const ABSOLUTE_HTTP = /^http:\/\/([^/?#@]+)([/?][^#]*)?$/i;
/** Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = [
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "upgrade",
];
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * The HTTP status for a SOCKS5 reply code (see docs/PROTOCOL.md part 7 (socks5 and http connect edges)):
 * 0 → 200, 2 → 403, 6 → 504, anything else → 502.
 *
 * @example
 * ```ts
 * import { httpStatusForReply } from "./http_connect.ts";
 * httpStatusForReply(5); // 502
 * ```
 */
export function httpStatusForReply(reply: number): number {
  switch (reply) {
    case Reply.SUCCEEDED:
      return 200;
    case Reply.NOT_ALLOWED:
      return 403;
    case Reply.TTL_EXPIRED:
      return 504;
    default:
      return 502;
  }
}

/**
 * Response bytes for `status`. 200 is "Connection established" with no
 * headers (the tunnel starts right after); any other status carries a short
 * text body, `Connection: close`, and for 405 `Allow: CONNECT`, for 407
 * `Proxy-Authenticate: Basic`.
 *
 * @example
 * ```ts
 * import { httpStatusResponse } from "./http_connect.ts";
 * new TextDecoder().decode(httpStatusResponse(200)); // "HTTP/1.1 200 Connection established\r\n\r\n"
 * ```
 */
export function httpStatusResponse(status: number, detail?: string): Uint8Array {
  const reason = REASONS[status] ?? "Error";
  if (status === 200) return encoder.encode(`HTTP/1.1 200 ${reason}\r\n\r\n`);
  const body = `${status} ${reason}${detail === undefined ? "" : `: ${detail}`}\n`;
  const extra = status === 405
    ? "Allow: CONNECT\r\n"
    : status === 407
    ? 'Proxy-Authenticate: Basic realm="NitroSocks", charset="UTF-8"\r\n'
    : "";
  return encoder.encode(
    `HTTP/1.1 ${status} ${reason}\r\n${extra}Content-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${encoder.encode(body).length}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Response bytes for the outcome of dialing: the status from
 * {@linkcode httpStatusForReply}, the reply's RFC 1928 wording as body.
 *
 * @example
 * ```ts
 * import { httpConnectResponse } from "./http_connect.ts";
 * new TextDecoder().decode(httpConnectResponse(5)).split("\r\n")[0]; // "HTTP/1.1 502 Bad Gateway"
 * ```
 */
export function httpConnectResponse(reply: number): Uint8Array {
  const status = httpStatusForReply(reply);
  return httpStatusResponse(status, status === 200 ? undefined : replyName(reply));
}

/**
 * Parses one CONNECT request from bytes pushed as they arrive. Never throws
 * from `push`. Accepts HTTP/1.0 and HTTP/1.1, authority-form targets
 * `host:port`, `[ipv6]:port`, `a.b.c.d:port` (port 1..65535), CRLF line
 * endings only, no obsolete line folding.
 *
 * Failures: bad syntax or target → 400; a method other than CONNECT → 405;
 * missing or wrong `Proxy-Authorization` when users are configured → 407;
 * no blank line within the header limit → 431.
 *
 * @example
 * ```ts
 * import { HttpConnectParser } from "./http_connect.ts";
 * const p = new HttpConnectParser();
 * const step = p.push(new TextEncoder().encode("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"));
 * // step.type === "request", step.request.host === "example.com", step.request.port === 443
 * ```
 */
export class HttpConnectParser {
  #users: Map<string, string> | undefined;
  #max: number;
  #absolute: boolean;
  #local: readonly string[];
  #store: Uint8Array | undefined;
  #len = 0;
  #scanFrom = 0;
  #done = false;

  /** Throws `RangeError` for a bad header limit or a user that could never log in. */
  constructor(opts: HttpConnectOptions = {}) {
    const max = opts.maxHeaderBytes ?? MAX_HTTP_HEADER_BYTES;
    if (!Number.isInteger(max) || max < 16 || max > MAX_HTTP_HEADER_BYTES) {
      throw new RangeError(
        `Cannot create HTTP CONNECT parser: header limit ${max} is not in 16..8192`,
      );
    }
    if (opts.auth?.users !== undefined) validateUsers(opts.auth.users);
    this.#users = opts.auth?.users;
    this.#max = max;
    this.#absolute = opts.absoluteForm === true;
    this.#local = opts.localPaths ?? [];
  }

  /** Feeds bytes read from the client. */
  push(chunk: Uint8Array): HttpConnectStep {
    if (this.#done) return this.#fail(400, "Cannot push to HTTP CONNECT parser: already finished");
    let head: Uint8Array;
    let rest: Uint8Array;
    if (this.#len === 0) {
      // Common case: the whole header arrives in one chunk; no copy.
      const end = findBlankLine(chunk, 0, Math.min(chunk.length, this.#max));
      if (end !== -1) {
        head = chunk.subarray(0, end);
        rest = chunk.slice(end + 4);
        return this.#complete(head, rest);
      }
    }
    // Buffer at most the header limit; bytes past it can only be early data.
    this.#store ??= new Uint8Array(this.#max);
    const take = Math.min(chunk.length, this.#max - this.#len);
    this.#store.set(chunk.subarray(0, take), this.#len);
    this.#len += take;
    const end = findBlankLine(this.#store, this.#scanFrom, this.#len);
    if (end === -1) {
      if (this.#len >= this.#max) {
        return this.#fail(
          431,
          `Cannot parse HTTP CONNECT: no end of headers within ${this.#max} bytes`,
        );
      }
      this.#scanFrom = Math.max(0, this.#len - 3);
      return { type: "need_more" };
    }
    head = this.#store.subarray(0, end);
    const tail = this.#store.subarray(end + 4, this.#len);
    const more = chunk.subarray(take);
    rest = new Uint8Array(tail.length + more.length);
    rest.set(tail);
    rest.set(more, tail.length);
    return this.#complete(head, rest);
  }

  #complete(head: Uint8Array, rest: Uint8Array): HttpConnectStep {
    const text = String.fromCharCode(...head);
    this.#done = true;
    this.#store = undefined;
    this.#len = 0;
    return this.#parse(text, rest);
  }

  /** Reports end of input: a `fail` step (400) if no complete request arrived. */
  end(): HttpConnectStep {
    if (this.#done) return this.#fail(400, "Cannot end HTTP CONNECT parser: already finished");
    return this.#fail(
      400,
      `Cannot parse HTTP CONNECT: connection closed after ${this.#len} bytes of headers`,
      EMPTY,
    );
  }

  #fail(status: number, message: string, send?: Uint8Array): HttpConnectStep {
    this.#done = true;
    this.#store = undefined;
    this.#len = 0;
    const reply = status === 405
      ? Reply.COMMAND_NOT_SUPPORTED
      : status === 407
      ? Reply.NOT_ALLOWED
      : Reply.GENERAL_FAILURE;
    const detail = message.slice(message.indexOf(": ") + 2);
    return {
      type: "fail",
      status,
      send: send ?? httpStatusResponse(status, status === 407 ? undefined : detail),
      error: new Socks5Error(reply, message),
    };
  }

  #parse(head: string, rest: Uint8Array): HttpConnectStep {
    const lines = head.split("\r\n");
    const first = REQUEST_LINE.exec(lines[0]!);
    if (first === null || BAD_CHARS.test(lines[0]!) || !TOKEN.test(first[1]!)) {
      return this.#fail(
        400,
        `Cannot parse HTTP CONNECT: malformed request line ${quote(lines[0]!)}`,
      );
    }
    const method = first[1]!;
    const target = first[2]!;
    const major = first[3]!;
    const minor = first[4]!;
    if (major !== "1" || (minor !== "0" && minor !== "1")) {
      return this.#fail(
        400,
        `Cannot parse HTTP CONNECT: version HTTP/${major}.${minor} is not supported`,
      );
    }
    const local = (method === "GET" || method === "HEAD") && this.#local.includes(target);
    if (method !== "CONNECT" && !this.#absolute && !local) {
      return this.#fail(405, `Cannot parse HTTP CONNECT: method ${quote(method)} is not allowed`);
    }
    const headers: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const m = HEADER_LINE.exec(line);
      if (m === null || !TOKEN.test(m[1]!) || BAD_CHARS.test(line)) {
        return this.#fail(400, `Cannot parse HTTP CONNECT: malformed header line ${quote(line)}`);
      }
      headers.push([m[1]!.toLowerCase(), m[2]!]);
    }
    if (local) return { type: "local", method: method === "HEAD" ? "HEAD" : "GET", path: target };
    if (this.#users !== undefined && !this.#authorized(headers)) {
      return this.#fail(407, "Cannot parse HTTP CONNECT: missing or invalid proxy credentials");
    }
    if (method !== "CONNECT") return this.#forward(method, target, minor, headers, rest);
    const request = parseAuthority(target);
    if (request === null) {
      return this.#fail(400, `Cannot parse HTTP CONNECT: target ${quote(target)} is not host:port`);
    }
    return { type: "request", request, raw: encodeRequest(request), rest, headers };
  }

  /** RFC 9112 section 3.2.2: an absolute-form request for the proxy to forward. */
  #forward(
    method: string,
    target: string,
    minor: string,
    headers: [string, string][],
    rest: Uint8Array,
  ): HttpConnectStep {
    const url = ABSOLUTE_HTTP.exec(target);
    if (url === null) {
      return this.#fail(
        400,
        `Cannot parse HTTP request: target ${
          quote(target)
        } is not an absolute http:// URI (use CONNECT for https)`,
      );
    }
    const hp = splitHostPort(
      url[1]!.includes(":") && !url[1]!.endsWith("]") ? url[1]! : `${url[1]}:80`,
    );
    const host = hp === undefined || hp.port < 1
      ? null
      : classifyHost(hp.bracketed ? `[${hp.host}]` : hp.host);
    if (host === null || hp === undefined) {
      return this.#fail(400, `Cannot parse HTTP request: host in ${quote(target)} is not valid`);
    }
    const get = (name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);
    const te = get("transfer-encoding");
    const cl = get("content-length");
    let body: HttpBody = { kind: "none" };
    if (te.length > 0) {
      // Both framings at once is how requests are smuggled past proxies: refused.
      if (cl.length > 0) {
        return this.#fail(
          400,
          "Cannot parse HTTP request: both Transfer-Encoding and Content-Length",
        );
      }
      if (te.length !== 1 || te[0]!.toLowerCase() !== "chunked") {
        return this.#fail(
          501,
          `Cannot parse HTTP request: transfer coding ${quote(te.join(", "))} is not supported`,
        );
      }
      body = { kind: "chunked" };
    } else if (cl.length > 0) {
      if (!cl.every((v) => v === cl[0])) {
        return this.#fail(
          400,
          `Cannot parse HTTP request: Content-Length given ${cl.length} times with different values (${
            cl.map(quote).join(", ")
          })`,
        );
      }
      if (!/^[0-9]{1,15}$/.test(cl[0]!)) {
        return this.#fail(400, `Cannot parse HTTP request: bad Content-Length ${quote(cl[0]!)}`);
      }
      const length = Number(cl[0]);
      if (length > 0) body = { kind: "length", length };
    }
    const connection = get("connection").concat(get("proxy-connection")).join(",").toLowerCase()
      .split(",").map((t) => t.trim());
    const keepAlive = minor === "1"
      ? !connection.includes("close")
      : connection.includes("keep-alive");
    const expectContinue = get("expect").some((v) => v.toLowerCase() === "100-continue");
    // Hop-by-hop headers (RFC 9110 section 7.6.1) and those the client named in Connection.
    const drop = new Set([...HOP_BY_HOP, ...connection.filter((t) => t !== "")]);
    let lines = `${method} ${url[2] || "/"} HTTP/1.${minor}\r\n`;
    if (get("host").length === 0) lines += `Host: ${url[1]}\r\n`;
    for (const [n, v] of headers) {
      if (drop.has(n) || (n === "expect" && expectContinue)) continue;
      lines += `${n}: ${v}\r\n`;
    }
    lines += "Connection: close\r\n\r\n";
    const request: Socks5Request = {
      command: "connect",
      addressType: host.addressType,
      host: host.host,
      port: hp.port,
    };
    return {
      type: "forward",
      request,
      raw: encodeRequest(request),
      method,
      head: Uint8Array.from(lines, (c) => c.charCodeAt(0)),
      body,
      keepAlive,
      expectContinue,
      rest,
    };
  }

  #authorized(headers: [string, string][]): boolean {
    const value = headers.find(([n]) => n === "proxy-authorization")?.[1];
    const m = value === undefined ? null : BASIC.exec(value);
    if (m === null) return false;
    let bytes: Uint8Array;
    try {
      bytes = Uint8Array.from(atob(m[1]!), (c) => c.charCodeAt(0));
    } catch {
      return false;
    }
    const colon = bytes.indexOf(0x3a);
    if (colon < 1 || colon === bytes.length - 1) return false;
    return checkCredentials(this.#users!, bytes.subarray(0, colon), bytes.subarray(colon + 1));
  }
}

/**
 * One-shot form of {@linkcode HttpConnectParser}: parses `bytes` holding
 * everything received so far; `need_more` if the headers are incomplete.
 *
 * @example
 * ```ts
 * import { parseHttpConnect } from "./http_connect.ts";
 * parseHttpConnect(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n")).type; // "fail" (405)
 * ```
 */
export function parseHttpConnect(bytes: Uint8Array, opts?: HttpConnectOptions): HttpConnectStep {
  return new HttpConnectParser(opts).push(bytes);
}

/** RFC 9110 section 9.3.6: CONNECT uses authority-form, host and port. */
function parseAuthority(target: string): Socks5Request | null {
  const hp = splitHostPort(target); // an IPv6 literal needs brackets
  if (hp === undefined || hp.port < 1) return null;
  const { port } = hp;
  const host = classifyHost(hp.bracketed ? `[${hp.host}]` : hp.host);
  if (host === null) return null;
  return { command: "connect", addressType: host.addressType, host: host.host, port };
}

/** Index of the first CRLF CRLF in `b[from..to)`, or -1. */
function findBlankLine(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (b[i] === 0x0d && b[i + 1] === 0x0a && b[i + 2] === 0x0d && b[i + 3] === 0x0a) return i;
  }
  return -1;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

/**
 * A response head from a target, made ready for the client: `Connection`,
 * `Keep-Alive` and `Proxy-Connection` removed, and `Connection: keep-alive`
 * added when the response's end can be told without closing (a body
 * delimited by Content-Length or chunked, or none: a HEAD request, 1xx, 204,
 * 304), else `Connection: close`. null when `head` (without its blank line)
 * is not an HTTP/1.x status line and headers.
 *
 * @example
 * ```ts
 * import { rewriteResponseHead } from "./http_connect.ts";
 * const r = rewriteResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close", "GET")!;
 * r.keepAlive; // true
 * ```
 */
export function rewriteResponseHead(
  head: string,
  method: string,
): { head: Uint8Array; keepAlive: boolean } | null {
  const lines = head.split("\r\n");
  const status = /^HTTP\/1\.[01] ([0-9]{3})( .*)?$/.exec(lines[0]!);
  if (status === null || BAD_CHARS.test(head.replaceAll("\r\n", ""))) return null;
  const code = Number(status[1]);
  let out = `${lines[0]}\r\n`;
  let delimited = method === "HEAD" || (code >= 100 && code < 200) || code === 204 || code === 304;
  for (const line of lines.slice(1)) {
    const m = HEADER_LINE.exec(line);
    if (m === null) return null;
    const name = m[1]!.toLowerCase();
    if (name === "connection" || name === "keep-alive" || name === "proxy-connection") continue;
    if (name === "content-length" || (name === "transfer-encoding" && /chunked/i.test(m[2]!))) {
      delimited = true;
    }
    out += `${line}\r\n`;
  }
  out += `Connection: ${delimited ? "keep-alive" : "close"}\r\n\r\n`;
  return { head: Uint8Array.from(out, (c) => c.charCodeAt(0)), keepAlive: delimited };
}

/**
 * Finds where a chunked body ends (RFC 9112 section 7.1), bytes pushed as
 * they arrive: `push` returns how many bytes of the chunk belong to the
 * body (all of them until the end is found). Sizes and trailer lines are
 * bounded; a malformed body makes `push` return -1.
 *
 * @example
 * ```ts
 * import { ChunkedBodyEnd } from "./http_connect.ts";
 * const end = new ChunkedBodyEnd();
 * end.push(new TextEncoder().encode("2\r\nhi\r\n0\r\n\r\nGET")); // 15
 * end.done; // true
 * ```
 */
export class ChunkedBodyEnd {
  /** size: reading a size line; data: chunk bytes; crlf: after data; trailer: trailer lines. */
  #state: "size" | "data" | "crlf" | "trailer" = "size";
  #line = 0;
  #size = 0;
  #sawDigit = false;
  #inExt = false;
  #left = 0;
  #done = false;

  /** True once the last chunk and the trailer's blank line went by. */
  get done(): boolean {
    return this.#done;
  }

  /** Bytes of `b` that belong to the body, or -1 for a malformed body. */
  push(b: Uint8Array): number {
    let i = 0;
    while (i < b.length && !this.#done) {
      if (this.#state === "data") {
        const n = Math.min(this.#left, b.length - i);
        i += n;
        this.#left -= n;
        if (this.#left === 0) {
          this.#state = "crlf";
          this.#line = 0;
        }
        continue;
      }
      const c = b[i++]!;
      if (++this.#line > 4096) return -1;
      if (this.#state === "crlf") {
        if (this.#line === 1 && c === 0x0d) continue;
        if (this.#line === 2 && c === 0x0a) {
          this.#startSize();
          continue;
        }
        return -1;
      }
      if (c === 0x0a) {
        // End of a line (its CR was taken as part of it).
        if (this.#state === "size") {
          if (!this.#sawDigit) return -1;
          if (this.#size === 0) {
            this.#state = "trailer";
            this.#line = 0;
          } else {
            this.#state = "data";
            this.#left = this.#size;
          }
        } else if (this.#line <= 2) {
          this.#done = true; // the blank line after the trailers
        } else {
          this.#line = 0;
        }
        continue;
      }
      if (this.#state === "trailer" || c === 0x0d) continue;
      if (this.#inExt) continue;
      const d = hexDigit(c);
      if (d >= 0) {
        if (this.#size > 0xfffffffffff) return -1;
        this.#size = this.#size * 16 + d;
        this.#sawDigit = true;
      } else if (c === 0x3b || c === 0x20 || c === 0x09) {
        this.#inExt = true; // chunk extensions are ignored
      } else {
        return -1;
      }
    }
    return i;
  }

  #startSize(): void {
    this.#state = "size";
    this.#line = 0;
    this.#size = 0;
    this.#sawDigit = false;
    this.#inExt = false;
  }
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}
