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
 * - HTTP/1.1 without Host is 400; a major version above 1 is 505;
 * - a `Range: bytes=…` request gets its range filter's answer: 206 with one
 *   range, `multipart/byteranges` with several, 416 when none fits, the
 *   whole page when the ranges overlap past its size or `If-Range` does not
 *   match (`parseByteRanges`).
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
  /** Range, when sent (the first one, as nginx keeps). */
  range?: string;
  /** If-Range, when sent (the first one). */
  ifRange?: string;
  /** If-Modified-Since, when sent (the first one). */
  ifModifiedSince?: string;
  /** If-Match, when sent (the first one). */
  ifMatch?: string;
  /** If-Unmodified-Since, when sent (the first one). */
  ifUnmodifiedSince?: string;
}

/** What {@linkcode parseRequestHead} found at the start of the bytes. */
export type HeadParse =
  | { type: "need_more" }
  | { type: "request"; request: DecoyRequest; headBytes: number }
  | { type: "bad"; status: 400 | 414 | 505 };

/** Request headers the validators and the range filter read, by the field they fill. */
const CONDITION_HEADERS: Readonly<Record<string, Exclude<keyof PageConditions, "ifNoneMatch">>> =
  Object.freeze({
    "range": "range",
    "if-range": "ifRange",
    "if-modified-since": "ifModifiedSince",
    "if-match": "ifMatch",
    "if-unmodified-since": "ifUnmodifiedSince",
  });

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
  const conditions: Partial<Record<keyof PageConditions, string>> = {};
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
      else if (CONDITION_HEADERS[name] !== undefined) conditions[CONDITION_HEADERS[name]] ??= value;
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
      ...conditions,
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
  206: "Partial Content",
  304: "Not Modified",
  400: "Bad Request",
  404: "Not Found",
  405: "Not Allowed",
  412: "Precondition Failed",
  414: "Request-URI Too Large",
  416: "Requested Range Not Satisfiable",
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

/** One byte range of the page: `start` inclusive, `end` exclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Range values at or above this are refused (nginx: past its largest file offset). */
const MAX_RANGE_VALUE = 1e18;

/**
 * What nginx 1.22's range filter makes of a `Range` header for a file of
 * `length` bytes (`ngx_http_range_parse`, unlimited `max_ranges`):
 * `undefined` to send the whole file (not a `bytes=` range, or ranges that
 * add up to more than the file), `"unsatisfiable"` for 416 (a syntax error,
 * or no range that starts inside the file), else the ranges in the order
 * given, each cut to the file.
 *
 * @example
 * ```ts
 * import { parseByteRanges } from "./decoy_http.ts";
 * parseByteRanges("bytes=0-9", 615); // [{ start: 0, end: 10 }]
 * parseByteRanges("bytes=-5", 615); // [{ start: 610, end: 615 }]
 * parseByteRanges("bytes=700-", 615); // "unsatisfiable"
 * parseByteRanges("chars=0-9", 615); // undefined
 * ```
 */
export function parseByteRanges(
  value: string,
  length: number,
): ByteRange[] | "unsatisfiable" | undefined {
  if (value.length < 7 || value.slice(0, 6).toLowerCase() !== "bytes=") return undefined;
  let i = 6;
  const at = () => value[i] ?? "";
  const digit = () => at() >= "0" && at() <= "9";
  const spaces = () => {
    while (at() === " ") i++;
  };
  const number = (): number | undefined => {
    let n = 0;
    while (digit()) {
      n = n * 10 + value.charCodeAt(i++) - 0x30;
      if (n >= MAX_RANGE_VALUE) return undefined;
    }
    return n;
  };
  const ranges: ByteRange[] = [];
  let size = 0;
  for (;;) {
    let start = 0;
    let end: number | undefined;
    let suffix = false;
    spaces();
    if (at() !== "-") {
      if (!digit()) return "unsatisfiable";
      const n = number();
      if (n === undefined) return "unsatisfiable";
      start = n;
      spaces();
      if (value[i++] !== "-") return "unsatisfiable";
      spaces();
      if (at() === "," || at() === "") end = length; // "start-": to the end
    } else {
      suffix = true;
      i++;
    }
    if (end === undefined) {
      if (!digit()) return "unsatisfiable";
      const n = number();
      if (n === undefined) return "unsatisfiable";
      spaces();
      if (at() !== "," && at() !== "") return "unsatisfiable";
      end = n;
      if (suffix) {
        // "-N": the last N bytes.
        start = end < length ? length - end : 0;
        end = length - 1;
      }
      end = end >= length ? length : end + 1;
    }
    if (start < end) {
      ranges.push({ start, end });
      size += end - start;
    } else if (start === 0) return undefined;
    if (value[i++] !== ",") break;
  }
  if (ranges.length === 0) return "unsatisfiable";
  return size > length ? undefined : ranges;
}

/** An answer: the bytes to send and whether the connection stays open after. */
export interface DecoyAnswer {
  bytes: Uint8Array;
  keepAlive: boolean;
}

const enc = new TextEncoder();

/** The validators and range of a request for the page (HTTP/1.x and HTTP/2 alike). */
export interface PageConditions {
  ifNoneMatch?: string | undefined;
  range?: string | undefined;
  ifRange?: string | undefined;
  ifModifiedSince?: string | undefined;
  ifMatch?: string | undefined;
  ifUnmodifiedSince?: string | undefined;
}

/**
 * nginx's answer to a GET or HEAD of the page, before the connection's own
 * headers: status, headers in nginx's order (the HTTP/1.x `Connection`
 * header goes after `Last-Modified`, or after `Content-Length` where there
 * is none) and body. In nginx's order (`ngx_http_not_modified_filter`):
 * 412 when If-Unmodified-Since is not at or after the page's time (or is
 * not a date) or If-Match names no ETag of the page; 304 when
 * If-Modified-Since is exactly the page's time and If-None-Match, if sent,
 * names its ETag (`*`, a list, `W/` allowed), or when If-None-Match alone
 * does; else the range filter's answer (`parseByteRanges`; If-Range must
 * name the ETag or the Last-Modified time); else 200 with `Accept-Ranges`.
 * `boundary` numbers a multipart answer (nginx counts them from 1).
 *
 * @example
 * ```ts
 * import { pageAnswer } from "./decoy_http.ts";
 * const a = pageAnswer({ mtimeS: 0, body: "hello" }, { range: "bytes=1-3" }, new Date(0), () => 1);
 * console.log(a.status, a.body); // 206 "ell"
 * ```
 */
export function pageAnswer(
  file: DecoyFile,
  c: PageConditions,
  now: Date,
  boundary: () => number,
): { status: number; headers: [string, string][]; body: string } {
  const etag = etagOf(file);
  const modified = new Date(file.mtimeS * 1000).toUTCString();
  const base: [string, string][] = [["Server", DECOY_SERVER], ["Date", now.toUTCString()]];
  const failed = (c.ifUnmodifiedSince !== undefined &&
    !((parseHttpTime(c.ifUnmodifiedSince) ?? -1) >= file.mtimeS)) ||
    (c.ifMatch !== undefined && !etagListMatches(c.ifMatch, etag, false));
  if (failed) {
    const body = errorPage(412);
    return {
      status: 412,
      headers: [...base, ["Content-Type", "text/html"], ["Content-Length", String(body.length)]],
      body,
    };
  }
  if (c.ifModifiedSince !== undefined || c.ifNoneMatch !== undefined) {
    const modifiedSince = c.ifModifiedSince !== undefined &&
      parseHttpTime(c.ifModifiedSince) !== file.mtimeS;
    const noneMatch = c.ifNoneMatch !== undefined && !etagListMatches(c.ifNoneMatch, etag, true);
    if (!modifiedSince && !noneMatch) {
      return {
        status: 304,
        headers: [...base, ["Last-Modified", modified], ["ETag", etag]],
        body: "",
      };
    }
  }
  const length = file.body.length;
  const ranges = c.range === undefined || !ifRangeMatches(c.ifRange, etag, file.mtimeS)
    ? undefined
    : parseByteRanges(c.range, length);
  if (ranges === "unsatisfiable") {
    const body = errorPage(416);
    return {
      status: 416,
      headers: [
        ...base,
        ["Content-Type", "text/html"],
        ["Content-Length", String(body.length)],
        ["Content-Range", `bytes */${length}`],
      ],
      body,
    };
  }
  const page = (type: string, body: string, last?: [string, string]) => ({
    status: ranges === undefined ? 200 : 206,
    headers: [
      ...base,
      ["Content-Type", type],
      ["Content-Length", String(body.length)],
      ["Last-Modified", modified],
      ["ETag", etag],
      ...(last === undefined ? [] : [last]),
    ] as [string, string][],
    body,
  });
  if (ranges === undefined) return page("text/html", file.body, ["Accept-Ranges", "bytes"]);
  const span = (r: ByteRange) => `bytes ${r.start}-${r.end - 1}/${length}`;
  if (ranges.length === 1) {
    const r = ranges[0]!;
    return page("text/html", file.body.slice(r.start, r.end), ["Content-Range", span(r)]);
  }
  // ngx_http_range_multipart_header: a 20-digit boundary, each part's own headers.
  const b = String(boundary()).padStart(20, "0");
  const parts = ranges.map((r) =>
    `\r\n--${b}\r\nContent-Type: text/html\r\nContent-Range: ${span(r)}\r\n\r\n` +
    file.body.slice(r.start, r.end)
  );
  const body = `${parts.join("")}\r\n--${b}--\r\n`;
  return page(`multipart/byteranges; boundary=${b}`, body);
}

/** If-Range (absent, the ETag exactly, or the Last-Modified time) lets the range filter work. */
function ifRangeMatches(ifRange: string | undefined, etag: string, mtimeS: number): boolean {
  if (ifRange === undefined) return true;
  if (ifRange.length >= 2 && ifRange.endsWith('"')) return ifRange === etag;
  return parseHttpTime(ifRange) === mtimeS;
}

/**
 * Whether an If-Match / If-None-Match list names `etag` (`ngx_http_test_if_match`):
 * `*`, or one of the comma-separated entries, with a `W/` prefix allowed when `weak`.
 */
function etagListMatches(list: string, etag: string, weak: boolean): boolean {
  if (list === "*") return true;
  return list.split(",").some((entry) => {
    const e = entry.replace(/^[ \t]+|[ \t]+$/g, "");
    return (weak && e.startsWith("W/") ? e.slice(2) : e) === etag;
  });
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const RFC1123 = /^[A-Za-z]+, (\d\d) ([A-Za-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/;
const RFC850 = /^[A-Za-z]+, (\d\d)-([A-Za-z]{3})-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/;
const ASCTIME = /^[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})$/;

/**
 * An HTTP date in seconds since the epoch, undefined when it is none of the
 * three forms nginx's `ngx_parse_http_time` reads: RFC 1123
 * (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37
 * GMT`, years below 70 in this century) and asctime (`Sun Nov  6 08:49:37
 * 1994`).
 *
 * @example
 * ```ts
 * import { parseHttpTime } from "./decoy_http.ts";
 * parseHttpTime("Sun, 06 Nov 1994 08:49:37 GMT"); // 784111777
 * parseHttpTime("Sunday, 06-Nov-94 08:49:37 GMT"); // 784111777
 * parseHttpTime("yesterday"); // undefined
 * ```
 */
export function parseHttpTime(value: string): number | undefined {
  let day: string, month: string, year: number, clock: string[];
  let m: RegExpExecArray | null;
  if ((m = RFC1123.exec(value))) {
    [day, month, year, clock] = [m[1]!, m[2]!, Number(m[3]), m.slice(4, 7)];
  } else if ((m = RFC850.exec(value))) {
    const yy = Number(m[3]);
    [day, month, year, clock] = [m[1]!, m[2]!, yy < 70 ? 2000 + yy : 1900 + yy, m.slice(4, 7)];
  } else if ((m = ASCTIME.exec(value))) {
    [month, day, clock, year] = [m[1]!, m[2]!.trim(), m.slice(3, 6), Number(m[6])];
  } else return undefined;
  const mon = MONTHS.indexOf(month);
  const [h, mi, s] = clock.map(Number) as [number, number, number];
  const d = Number(day);
  if (mon < 0 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return undefined;
  return Date.UTC(year, mon, d, h, mi, s) / 1000;
}

/** HTTP/1.1 bytes of a `pageAnswer` (or error) head and body. */
function http1(
  a: { status: number; headers: [string, string][]; body: string },
  keepAlive: boolean,
  head: boolean,
): Uint8Array {
  const lines = [`HTTP/1.1 ${a.status} ${STATUS_TEXT[a.status] ?? ""}`];
  const after = a.headers.some(([n]) => n === "Last-Modified") ? "Last-Modified" : "Content-Length";
  for (const [name, value] of a.headers) {
    lines.push(`${name}: ${value}`);
    if (name === after) lines.push(`Connection: ${keepAlive ? "keep-alive" : "close"}`);
  }
  return enc.encode(`${lines.join("\r\n")}\r\n\r\n${head ? "" : a.body}`);
}

/**
 * The answer nginx gives `req` (static site: `/` and `/index.html` are the
 * page, anything else 404; only GET and HEAD are served, other methods 405),
 * or to a bad request (`status`, then close). `now` is the Date header;
 * `boundary` numbers multipart answers (see `pageAnswer`).
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
  boundary: () => number = () => 1,
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
  return { bytes: http1(pageAnswer(file, req, now, boundary), keepAlive, head), keepAlive };
}

function errorAnswer(status: number, keepAlive: boolean, head: boolean, now: Date): DecoyAnswer {
  const body = errorPage(status);
  const headers: [string, string][] = [
    ["Server", DECOY_SERVER],
    ["Date", now.toUTCString()],
    ["Content-Type", "text/html"],
    ["Content-Length", String(body.length)],
  ];
  return { bytes: http1({ status, headers, body }, keepAlive, head), keepAlive };
}
