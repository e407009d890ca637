/**
 * The decoy web site's HTTP/1.x core, pure: parse a request head the way
 * nginx does (what it answers at once, what it waits for) and build the
 * answers a default nginx install sends for its static welcome page — the
 * same status lines, header names, header order and error pages. The I/O
 * (timeouts, closing, HTTP/2) is in `decoy.ts`.
 *
 * What nginx 1.22 does, as measured on loopback against Debian's build and
 * as `tests/e2e/probe_compare_test.ts` checks side by side:
 * - it answers 400 and closes as soon as a byte cannot start or continue a
 *   request line (a lower-case method, a control byte, a TLS record);
 * - it waits for the rest of a request that is valid so far (a head without
 *   its blank line), up to `client_header_timeout`;
 * - a request line without a version is HTTP/0.9: the body alone, then close;
 * - HTTP/1.1 without Host is 400; a major version above 1 is 505.
 *
 * @module
 */

/** The built-in page: a default nginx install's welcome page. */
export const DECOY_PAGE = `<!DOCTYPE html>
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

/** The `Server` header: nginx with `server_tokens off`. */
export const DECOY_SERVER = "nginx";

/** Longest request line nginx buffers (large_client_header_buffers 8k) before 414. */
export const MAX_REQUEST_LINE = 8192;
/** Longest request head the decoy buffers before it answers 400 (4 × 8k, as nginx). */
export const MAX_HEAD = 32768;

/** A request head the decoy understood. */
export interface DecoyRequest {
  method: string;
  /** The path, without query; "/" for an absolute-form target without one. */
  path: string;
  /** HTTP version: "0.9" (no version in the request line), "1.0" or "1.1". */
  version: "0.9" | "1.0" | "1.1";
  /** Whether the connection stays open after the answer. */
  keepAlive: boolean;
  /** Body bytes that follow the head (Content-Length), to skip. */
  bodyBytes: number;
  /** Transfer-Encoding: chunked (the decoy closes after answering). */
  chunked: boolean;
  /** If-None-Match, when sent. */
  ifNoneMatch: string | undefined;
}

/** What {@linkcode parseRequestHead} found at the start of the bytes. */
export type HeadParse =
  | { type: "need_more" }
  | { type: "request"; request: DecoyRequest; headBytes: number }
  | { type: "bad"; status: 400 | 414 | 505 };

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

function isMethodByte(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x2d; // A-Z _ -
}

function isCtl(c: number): boolean {
  return c < 0x20 || c === 0x7f;
}

const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f]; // "HTTP/"
const BAD = { type: "bad", status: 400 } as const;
const NEED_MORE = { type: "need_more" } as const;

/**
 * Parses the request head at `b[start..]` as nginx does: "bad" as soon as
 * the bytes cannot be a request, "need_more" while they still can,
 * "request" once the head is complete (`headBytes` counted from `start`).
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./decoy_http.ts";
 * const enc = new TextEncoder();
 * parseRequestHead(enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n")).type; // "request"
 * parseRequestHead(enc.encode("get / HTTP/1.1")).type; // "bad" (at the first byte)
 * parseRequestHead(enc.encode("GET / HTTP/1.1\r\nHost")).type; // "need_more"
 * ```
 */
export function parseRequestHead(b: Uint8Array, start = 0): HeadParse {
  const end = b.length;
  let i = start;
  while (i < end && (b[i] === CR || b[i] === LF)) i++; // nginx skips empty lines first
  const lineStart = i;
  // Method.
  while (i < end && isMethodByte(b[i]!)) i++;
  if (i === end) return i - lineStart > MAX_REQUEST_LINE ? { type: "bad", status: 414 } : NEED_MORE;
  if (i === lineStart || b[i] !== SP) return BAD;
  const method = ascii(b, lineStart, i);
  while (i < end && b[i] === SP) i++;
  if (i === end) return NEED_MORE;
  // Target: origin-form or absolute-form.
  const targetStart = i;
  const first = b[i]!;
  const isLetter = (c: number) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
  if (first !== 0x2f && !isLetter(first)) return BAD;
  while (i < end && b[i] !== SP && b[i] !== CR && b[i] !== LF) {
    if (isCtl(b[i]!)) return BAD;
    i++;
  }
  if (i === end) {
    return i - lineStart > MAX_REQUEST_LINE ? { type: "bad", status: 414 } : NEED_MORE;
  }
  const target = ascii(b, targetStart, i);
  const rawPath = pathOf(target);
  if (rawPath === undefined) return BAD;
  // nginx resolves the path once the request line is complete: a bad one is 400 then.
  const path = normalizePath(rawPath);
  if (b[i] === CR || b[i] === LF) {
    // HTTP/0.9: the request line is the whole request.
    if (b[i] === CR) {
      if (i + 1 === end) return NEED_MORE;
      if (b[i + 1] !== LF) return BAD;
      i++;
    }
    if (path === undefined) return BAD;
    return {
      type: "request",
      request: {
        method,
        path,
        version: "0.9",
        keepAlive: false,
        bodyBytes: 0,
        chunked: false,
        ifNoneMatch: undefined,
      },
      headBytes: i + 1 - start,
    };
  }
  while (i < end && b[i] === SP) i++;
  // "HTTP/" major "." minor.
  for (const c of HTTP_SLASH) {
    if (i === end) return NEED_MORE;
    if (b[i] !== c) return BAD;
    i++;
  }
  let major = 0;
  let digits = 0;
  while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) {
    major = major * 10 + b[i]! - 0x30;
    if (++digits > 3) return BAD;
    i++;
  }
  if (i === end) return NEED_MORE;
  if (digits === 0 || b[i] !== 0x2e) return BAD;
  if (major > 1) return { type: "bad", status: 505 };
  if (major < 1) return BAD;
  i++;
  let minor = 0;
  digits = 0;
  while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39) {
    minor = minor * 10 + b[i]! - 0x30;
    if (++digits > 3) return BAD;
    i++;
  }
  while (i < end && b[i] === SP) i++;
  if (i === end) return NEED_MORE;
  if (digits === 0) return BAD;
  if (b[i] === CR) {
    if (i + 1 === end) return NEED_MORE;
    if (b[i + 1] !== LF) return BAD;
    i++;
  }
  if (b[i] !== LF) return BAD;
  i++;
  if (path === undefined) return BAD;
  const version = minor === 0 ? "1.0" : "1.1";
  // Header lines, until an empty one.
  let host = 0;
  let connection = "";
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let ifNoneMatch: string | undefined;
  while (true) {
    const lf = b.indexOf(LF, i);
    if (lf < 0) return end - start > MAX_HEAD ? BAD : NEED_MORE;
    const lineEnd = lf > i && b[lf - 1] === CR ? lf - 1 : lf;
    if (lineEnd === i) {
      i = lf + 1;
      break;
    }
    for (let k = i; k < lineEnd; k++) if (b[k] === 0) return BAD;
    const colon = b.indexOf(0x3a, i);
    if (colon < 0 || colon >= lineEnd) return BAD; // "client sent invalid header line"
    const name = ascii(b, i, colon).toLowerCase();
    const value = ascii(b, colon + 1, lineEnd).trim();
    if (/^[a-z0-9-]+$/.test(name)) {
      if (name === "host") {
        if (++host > 1 || /[\s/\\]/.test(value) || value === "") return BAD;
      } else if (name === "connection") connection = value.toLowerCase();
      else if (name === "content-length") {
        if (contentLength !== undefined || !/^\d{1,18}$/.test(value)) return BAD;
        contentLength = value;
      } else if (name === "transfer-encoding") transferEncoding = value.toLowerCase();
      else if (name === "if-none-match") ifNoneMatch = value;
    } // else: an invalid header name is ignored (ignore_invalid_headers on)
    i = lf + 1;
    if (i - start > MAX_HEAD) return BAD;
  }
  if (version === "1.1" && host === 0) return BAD;
  if (transferEncoding !== undefined) {
    if (version === "1.0" || contentLength !== undefined || transferEncoding !== "chunked") {
      return BAD;
    }
  }
  const keepAlive = version === "1.1"
    ? !/\bclose\b/.test(connection)
    : /\bkeep-alive\b/.test(connection);
  return {
    type: "request",
    request: {
      method,
      path,
      version,
      keepAlive,
      bodyBytes: contentLength === undefined ? 0 : Number(contentLength),
      chunked: transferEncoding !== undefined,
      ifNoneMatch,
    },
    headBytes: i - start,
  };
}

function ascii(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let k = from; k < to; k++) s += String.fromCharCode(b[k]!);
  return s;
}

/** The path of an origin-form or absolute-form target, without query; undefined if malformed. */
function pathOf(target: string): string | undefined {
  let t = target;
  if (t.charCodeAt(0) !== 0x2f) {
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]+(.*)$/.exec(t);
    if (m === null) return undefined;
    t = m[1] === "" ? "/" : m[1]!;
    if (t.charCodeAt(0) !== 0x2f) return undefined;
  }
  const q = t.search(/[?#]/);
  return q < 0 ? t : t.slice(0, q);
}

/**
 * The path as nginx resolves it: %XX decoded, "." and empty segments
 * dropped, ".." applied; undefined (400) for a bad escape, a NUL, or a
 * ".." above the root.
 */
function normalizePath(path: string): string | undefined {
  let decoded = "";
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (ch !== "%") {
      decoded += ch;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
    const code = parseInt(hex, 16);
    if (code === 0) return undefined;
    decoded += String.fromCharCode(code);
    i += 2;
  }
  const out: string[] = [];
  const segments = decoded.split("/");
  for (const seg of segments) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(seg);
  }
  const last = segments[segments.length - 1];
  const trailing = out.length > 0 && (last === "" || last === "." || last === "..");
  return "/" + out.join("/") + (trailing ? "/" : "");
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  304: "Not Modified",
  400: "Bad Request",
  404: "Not Found",
  405: "Not Allowed",
  414: "Request-URI Too Large",
  505: "HTTP Version Not Supported",
};

/** nginx's built-in error page for `status`. */
export function errorPage(status: number): string {
  const title = `${status} ${STATUS_TEXT[status] ?? ""}`;
  return `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n` +
    `<center><h1>${title}</h1></center>\r\n<hr><center>${DECOY_SERVER}</center>\r\n` +
    `</body>\r\n</html>\r\n`;
}

/** The page's file facts, for Last-Modified and ETag. */
export interface DecoyFile {
  /** Modification time, whole seconds since the epoch. */
  mtimeS: number;
  body: string;
}

/** The ETag nginx gives a static file: hex mtime, "-", hex length. */
export function etagOf(file: DecoyFile): string {
  return `"${file.mtimeS.toString(16)}-${file.body.length.toString(16)}"`;
}

/** An answer: the bytes to send and whether the connection stays open after. */
export interface DecoyAnswer {
  bytes: Uint8Array;
  keepAlive: boolean;
}

const enc = new TextEncoder();

/**
 * The answer nginx gives `req` (static site: `/` and `/index.html` are the
 * page, anything else 404; only GET and HEAD are served, other methods 405),
 * or to a bad request (`status`, then close). `now` is the Date header.
 *
 * @example
 * ```ts
 * import { answer, parseRequestHead } from "./decoy_http.ts";
 * const p = parseRequestHead(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
 * if (p.type === "request") {
 *   const a = answer(p.request, { mtimeS: 1_700_000_000, body: "hi" }, new Date());
 *   console.log(new TextDecoder().decode(a.bytes).split("\r\n")[0]); // "HTTP/1.1 200 OK"
 * }
 * ```
 */
export function answer(
  req: DecoyRequest | { status: number },
  file: DecoyFile,
  now: Date,
): DecoyAnswer {
  if ("status" in req) return errorAnswer(req.status, false, false, now);
  const served = req.path === "/" || req.path === "/index.html";
  let status = 200;
  if (req.method !== "GET" && req.method !== "HEAD") {
    status = served || req.method !== "POST" ? 405 : 404;
  } else if (!served) status = 404;
  const keepAlive = req.keepAlive && !req.chunked;
  const head = req.method === "HEAD";
  if (req.version === "0.9") {
    // HTTP/0.9: no status line, no headers; the body, then close.
    return {
      bytes: enc.encode(status === 200 ? (head ? "" : file.body) : errorPage(status)),
      keepAlive: false,
    };
  }
  if (status !== 200) return errorAnswer(status, keepAlive, head, now);
  const etag = etagOf(file);
  const modified = new Date(file.mtimeS * 1000).toUTCString();
  const conn = keepAlive ? "keep-alive" : "close";
  if (req.ifNoneMatch !== undefined && req.ifNoneMatch === etag) {
    return {
      bytes: enc.encode(
        `HTTP/1.1 304 Not Modified\r\nServer: ${DECOY_SERVER}\r\nDate: ${now.toUTCString()}\r\n` +
          `Last-Modified: ${modified}\r\nConnection: ${conn}\r\nETag: ${etag}\r\n\r\n`,
      ),
      keepAlive,
    };
  }
  return {
    bytes: enc.encode(
      `HTTP/1.1 200 OK\r\nServer: ${DECOY_SERVER}\r\nDate: ${now.toUTCString()}\r\n` +
        `Content-Type: text/html\r\nContent-Length: ${file.body.length}\r\n` +
        `Last-Modified: ${modified}\r\nConnection: ${conn}\r\nETag: ${etag}\r\n` +
        `Accept-Ranges: bytes\r\n\r\n${head ? "" : file.body}`,
    ),
    keepAlive,
  };
}

function errorAnswer(status: number, keepAlive: boolean, head: boolean, now: Date): DecoyAnswer {
  const body = errorPage(status);
  return {
    bytes: enc.encode(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ""}\r\nServer: ${DECOY_SERVER}\r\n` +
        `Date: ${now.toUTCString()}\r\nContent-Type: text/html\r\n` +
        `Content-Length: ${body.length}\r\nConnection: ${keepAlive ? "keep-alive" : "close"}\r\n` +
        `\r\n${head ? "" : body}`,
    ),
    keepAlive,
  };
}
