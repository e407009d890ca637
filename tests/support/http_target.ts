/**
 * A local HTTP server to be the destination of proxied connections in
 * tests, plus a raw HTTP/1.1 client that runs over any connected stream
 * (a SOCKS5 tunnel, an HTTP CONNECT tunnel, a memory pipe).
 *
 * Exports:
 * - `startHttpTarget(opts?)` → `HttpTarget` `{ hostname, port, url, requests, close() }`;
 *   `Deno.serve` on 127.0.0.1 (or `::1`), ephemeral port. Routes:
 *   - `GET /hello` → "hello from target\n"
 *   - `GET /bytes/N` → N bytes of `patternBytes(0, N)`, streamed, with
 *     Content-Length (N ≤ 1 GiB); check with `expectedSha256(N)`;
 *     `?rate=R` paces them at R bytes per second (a download that lasts)
 *   - `POST /echo` → the request body, streamed back
 *   - `GET /page` → HTML with 5 `<img src="/img/K.png">`, K = 1..5
 *   - `GET /img/K.png` → `pngImage(K)`, a valid 8×8 PNG (K = 1..5)
 *   - `GET /slow?ms=M` → "slow\n" after M ms (M ≤ 60 000)
 * - `patternBytes(offset, length)` → the deterministic pseudo-random content
 *   (byte i is the same whatever the offset), `expectedSha256(N)` → hex
 *   SHA-256 of the first N bytes (cached)
 * - `pngImage(k)` → the bytes served at `/img/k.png`
 * - `rawHttpRequest(stream, opts)` → `{ status, headers, body }`: writes one
 *   HTTP/1.1 request with `Connection: close` and reads the response to EOF
 *   (Content-Length or chunked)
 *
 * @example
 * ```ts
 * import { expectedSha256, rawHttpRequest, startHttpTarget } from "./http_target.ts";
 * await using target = await startHttpTarget();
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
 * const res = await rawHttpRequest(conn, { path: "/bytes/1000" });
 * // sha256hex(res.body) === expectedSha256(1000)
 * ```
 *
 * @module
 */
import { onTimeout } from "./deadline.ts";
import { sha256 } from "@noble/hashes/sha2.js";

/** Largest `/bytes/N`. */
export const MAX_TARGET_BYTES = 1 << 30;
const MAX_SLOW_MS = 60_000;
const CHUNK = 65536;

/** Options for {@linkcode startHttpTarget}. */
export interface HttpTargetOptions {
  /** "127.0.0.1" (default) or "::1". */
  hostname?: string;
  /** Default 0 (ephemeral). */
  port?: number;
}

/** One request the target served. */
export interface TargetRequest {
  method: string;
  path: string;
  remote: string;
}

/** A running target. `await using` closes it. */
export interface HttpTarget extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /** "http://127.0.0.1:PORT" or "http://[::1]:PORT". */
  readonly url: string;
  /** Every request served so far, in order. */
  readonly requests: TargetRequest[];
  close(): Promise<void>;
}

/** murmur3 fmix32: a good 32-bit mixer, so byte i depends only on i. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * `length` bytes of the target's deterministic content starting at
 * `offset`: byte i is byte (i mod 4), little-endian, of mix32(⌊i/4⌋ ⊕ 0x9e3779b9).
 *
 * @example
 * ```ts
 * import { patternBytes } from "./http_target.ts";
 * patternBytes(10, 5); // equals patternBytes(0, 15).subarray(10)
 * ```
 */
export function patternBytes(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const byteAt = (pos: number) => (wordAt(Math.floor(pos / 4)) >>> ((pos % 4) * 8)) & 0xff;
  let i = 0;
  while (i < length && (offset + i) % 4 !== 0) out[i] = byteAt(offset + i++);
  const view = new DataView(out.buffer);
  for (let k = (offset + i) / 4; i + 4 <= length; i += 4, k++) view.setUint32(i, wordAt(k), true);
  while (i < length) out[i] = byteAt(offset + i++);
  return out;
}

function wordAt(k: number): number {
  return mix32((k ^ 0x9e3779b9) >>> 0);
}

const shaCache = new Map<number, string>();

/** Lowercase hex of bytes. */
export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Hex SHA-256 of `/bytes/n`'s body.
 *
 * @example
 * ```ts
 * import { expectedSha256 } from "./http_target.ts";
 * expectedSha256(0); // "e3b0c442…b855" (SHA-256 of nothing)
 * ```
 */
export function expectedSha256(n: number): string {
  const cached = shaCache.get(n);
  if (cached !== undefined) return cached;
  const h = sha256.create();
  for (let o = 0; o < n; o += CHUNK) h.update(patternBytes(o, Math.min(CHUNK, n - o)));
  const hex = toHex(h.digest());
  shaCache.set(n, hex);
  return hex;
}

// --- PNG (ISO/IEC 15948): signature, IHDR, IDAT (zlib, stored block), IEND ---

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (const b of p) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u32be(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

function pngChunk(type: string, data: Uint8Array): Uint8Array[] {
  const t = new TextEncoder().encode(type);
  return [u32be(data.length), t, data, u32be(crc32([t, data]))];
}

const pngCache = new Map<number, Uint8Array<ArrayBuffer>>();

/**
 * The PNG served at `/img/k.png`: 8×8 RGB, a colour derived from `k`.
 *
 * @example
 * ```ts
 * import { pngImage } from "./http_target.ts";
 * pngImage(1).subarray(1, 4); // "PNG"
 * ```
 */
export function pngImage(k: number): Uint8Array<ArrayBuffer> {
  const cached = pngCache.get(k);
  if (cached !== undefined) return cached;
  const size = 8;
  const rgb = [(k * 67) & 0xff, (k * 131) & 0xff, (k * 199) & 0xff];
  const raw = new Uint8Array(size * (1 + size * 3)); // filter byte 0 per row
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) raw.set(rgb, y * (1 + size * 3) + 1 + x * 3);
  }
  let a = 1;
  let b = 0;
  for (const v of raw) {
    a = (a + v) % 65521;
    b = (b + a) % 65521;
  }
  const zlib = new Uint8Array(2 + 5 + raw.length + 4);
  zlib.set([
    0x78,
    0x01,
    0x01,
    raw.length & 0xff,
    raw.length >> 8,
    ~raw.length & 0xff,
    (~raw.length >> 8) & 0xff,
  ]);
  zlib.set(raw, 7);
  zlib.set(u32be(((b << 16) | a) >>> 0), 7 + raw.length);
  const ihdr = new Uint8Array([...u32be(size), ...u32be(size), 8, 2, 0, 0, 0]);
  const parts = [
    Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    ...pngChunk("IHDR", ihdr),
    ...pngChunk("IDAT", zlib),
    ...pngChunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  pngCache.set(k, out);
  return out;
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>NitroSocks test page</title></head>
<body><h1>Test page</h1>
${
  [1, 2, 3, 4, 5].map((k) => `<img src="/img/${k}.png" width="8" height="8" alt="${k}">`).join("\n")
}
</body></html>
`;

function text(body: string, status = 200): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

function bytesResponse(n: number, closing: AbortSignal, rate?: number): Response {
  let offset = 0;
  const started = performance.now();
  // Paced: chunks of a tenth of a second's worth, each sent when its time comes.
  const chunk = rate === undefined ? CHUNK : Math.max(1, Math.min(CHUNK, Math.floor(rate / 10)));
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      // On close(), fail the body so a stalled client cannot hold shutdown.
      closing.addEventListener("abort", () => {
        try {
          controller.error(new Error("target closing"));
        } catch {
          // Stream already finished.
        }
      }, { once: true });
    },
    async pull(controller) {
      if (offset >= n) {
        controller.close();
        return;
      }
      if (rate !== undefined) {
        const wait = started + (offset / rate) * 1000 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (closing.aborted) return;
      }
      const len = Math.min(chunk, n - offset);
      controller.enqueue(patternBytes(offset, len));
      offset += len;
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: { "content-type": "application/octet-stream", "content-length": String(n) },
  });
}

/**
 * Starts the target; resolves once it listens.
 *
 * @example
 * ```ts
 * import { startHttpTarget } from "./http_target.ts";
 * const target = await startHttpTarget();
 * await (await fetch(`${target.url}/hello`)).text(); // "hello from target\n"
 * await target.close();
 * ```
 */
export function startHttpTarget(opts: HttpTargetOptions = {}): Promise<HttpTarget> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const closing = new AbortController();
  const requests: TargetRequest[] = [];
  const handler = async (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    requests.push({
      method: req.method,
      path: path + url.search,
      remote: info.remoteAddr.hostname,
    });
    if (path === "/echo") {
      if (req.method !== "POST") return text("POST only\n", 405);
      return new Response(req.body, { headers: { "content-type": "application/octet-stream" } });
    }
    if (req.method !== "GET" && req.method !== "HEAD") return text("GET only\n", 405);
    if (path === "/hello") return text("hello from target\n");
    if (path === "/page") {
      return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    const bytes = /^\/bytes\/([0-9]{1,10})$/.exec(path);
    if (bytes) {
      const n = Number(bytes[1]);
      if (n > MAX_TARGET_BYTES) return text(`at most ${MAX_TARGET_BYTES} bytes\n`, 400);
      const rate = url.searchParams.get("rate");
      if (rate !== null && !/^[1-9][0-9]{0,9}$/.test(rate)) {
        return text("rate is bytes per second, 1..9999999999\n", 400);
      }
      return bytesResponse(n, closing.signal, rate === null ? undefined : Number(rate));
    }
    const img = /^\/img\/([1-5])\.png$/.exec(path);
    if (img) {
      return new Response(pngImage(Number(img[1])), { headers: { "content-type": "image/png" } });
    }
    if (path === "/slow") {
      const ms = Math.min(
        MAX_SLOW_MS,
        Math.max(0, Number(url.searchParams.get("ms") ?? "1000") || 0),
      );
      await new Promise<void>((resolve) => {
        const signals = AbortSignal.any([closing.signal, req.signal]);
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          signals.removeEventListener("abort", done);
          resolve();
        }
        signals.addEventListener("abort", done);
      });
      return text("slow\n");
    }
    return text("not found\n", 404);
  };
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname,
        port: opts.port ?? 0,
        onListen: (addr) => {
          const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
          let closed: Promise<void> | undefined;
          const close = () => {
            closed ??= (async () => {
              forget();
              closing.abort();
              await server.shutdown();
            })();
            return closed;
          };
          const forget = onTimeout(close);
          resolve({
            hostname: addr.hostname,
            port: addr.port,
            url: `http://${host}:${addr.port}`,
            requests,
            close,
            [Symbol.asyncDispose]: close,
          });
        },
      }, handler);
    } catch (e) {
      reject(e);
    }
  });
}

/** Options for {@linkcode rawHttpRequest}. */
export interface RawHttpRequestOptions {
  /** Default "GET". */
  method?: string;
  /** Path and query, default "/". */
  path?: string;
  /** Host header, default "target". */
  host?: string;
  /** Request body (sent with Content-Length). */
  body?: Uint8Array;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** Give up after this many bytes of response, default 256 MiB. */
  maxBytes?: number;
}

/** A parsed HTTP/1.1 response. */
export interface RawHttpResponse {
  status: number;
  /** Lowercased names. */
  headers: Map<string, string>;
  body: Uint8Array;
}

interface Stream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
}

/**
 * Sends one HTTP/1.1 request with `Connection: close` over an already
 * connected stream and reads the response until EOF. Does not close
 * `stream`.
 *
 * @example
 * ```ts ignore
 * import { rawHttpRequest } from "./http_target.ts";
 * const res = await rawHttpRequest(conn, { path: "/hello" });
 * new TextDecoder().decode(res.body); // "hello from target\n"
 * ```
 */
export async function rawHttpRequest(
  stream: Stream,
  opts: RawHttpRequestOptions = {},
): Promise<RawHttpResponse> {
  const enc = new TextEncoder();
  const extra = Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  const length = opts.body === undefined ? "" : `Content-Length: ${opts.body.length}\r\n`;
  const head = enc.encode(
    `${opts.method ?? "GET"} ${opts.path ?? "/"} HTTP/1.1\r\nHost: ${opts.host ?? "target"}\r\n` +
      `Connection: close\r\n${length}${extra}\r\n`,
  );
  for (const part of [head, opts.body ?? new Uint8Array(0)]) {
    let o = 0;
    while (o < part.length) o += await stream.write(part.subarray(o));
  }
  const max = opts.maxBytes ?? 256 * 1024 * 1024;
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await stream.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
    if (total > max) throw new RangeError(`Cannot read HTTP response: more than ${max} bytes`);
  }
  const all = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  let end = -1;
  for (let i = 0; i + 3 < all.length; i++) {
    if (all[i] === 13 && all[i + 1] === 10 && all[i + 2] === 13 && all[i + 3] === 10) {
      end = i;
      break;
    }
  }
  if (end === -1) {
    throw new SyntaxError(`Cannot parse HTTP response: no end of headers in ${all.length} bytes`);
  }
  const lines = new TextDecoder().decode(all.subarray(0, end)).split("\r\n");
  const m = /^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0]!);
  if (m === null) {
    throw new SyntaxError(`Cannot parse HTTP response: status line ${JSON.stringify(lines[0])}`);
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  let body: Uint8Array = all.subarray(end + 4);
  if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") body = dechunk(body);
  else if (headers.has("content-length")) {
    body = body.subarray(0, Number(headers.get("content-length")));
  }
  return { status: Number(m[1]), headers, body };
}

function dechunk(b: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let o = 0;
  for (;;) {
    let eol = o;
    while (eol + 1 < b.length && !(b[eol] === 13 && b[eol + 1] === 10)) eol++;
    if (eol + 1 >= b.length) {
      throw new SyntaxError("Cannot parse chunked body: truncated size line");
    }
    const size = parseInt(new TextDecoder().decode(b.subarray(o, eol)).split(";")[0]!, 16);
    if (!Number.isFinite(size)) throw new SyntaxError("Cannot parse chunked body: bad size");
    o = eol + 2;
    if (size === 0) break;
    if (o + size > b.length) throw new SyntaxError("Cannot parse chunked body: truncated chunk");
    parts.push(b.subarray(o, o + size));
    o += size + 2;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let p = 0;
  for (const x of parts) {
    out.set(x, p);
    p += x.length;
  }
  return out;
}
