/**
 * WebSocket (RFC 6455) for the `ws` and `wss` transports, pure: frame
 * headers, masking, a push-style frame decoder with size limits, and the
 * opening handshake's request and response. No I/O, no timers; the socket
 * side is `lib/transport/ws.ts`.
 *
 * The tunnel's byte stream travels as the payload of binary messages; the
 * message boundaries carry no meaning, so the decoder hands payload bytes on
 * as they arrive instead of assembling messages.
 *
 * @module
 */
import { sha1 } from "@noble/hashes/legacy.js";

/** Frame opcodes (RFC 6455 section 5.2). */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** Close status codes used here (RFC 6455 section 7.4.1). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  MESSAGE_TOO_BIG: 1009,
} as const;

/** Control frames carry at most this many payload bytes (section 5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
/** The longest frame header: 2 + 8 (length) + 4 (mask key). */
export const MAX_HEADER_SIZE = 14;
/** Default bound on one message (the sum of its fragments), for the decoder. */
export const DEFAULT_MAX_MESSAGE = 1024 * 1024;
/** The longest HTTP head either side of the opening handshake accepts. */
export const MAX_HTTP_HEAD = 8192;

/** The GUID of section 1.3 that the accept key hashes with the client's key. */
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * Writes a frame header into `out` at `offset` and returns its length
 * (2 to 14 bytes). `maskKey` (4 bytes) is present exactly on client frames.
 * Lengths use the shortest form, as section 5.2 requires.
 *
 * @example
 * ```ts
 * import { encodeFrameHeader, Opcode } from "./websocket.ts";
 * const h = new Uint8Array(14);
 * encodeFrameHeader(h, 0, { opcode: Opcode.BINARY, fin: true, length: 256 }); // 4: 82 7e 01 00
 * ```
 */
export function encodeFrameHeader(
  out: Uint8Array,
  offset: number,
  frame: { opcode: number; fin: boolean; length: number; maskKey?: Uint8Array },
): number {
  const { opcode, fin, length, maskKey } = frame;
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Cannot encode frame: length ${length} is not a byte count`);
  }
  if (opcode >= 0x8 && (length > MAX_CONTROL_PAYLOAD || !fin)) {
    throw new RangeError(
      `Cannot encode frame: control frame of ${length} bytes (at most 125, unfragmented)`,
    );
  }
  let o = offset;
  out[o++] = (fin ? 0x80 : 0) | opcode;
  const mask = maskKey === undefined ? 0 : 0x80;
  if (length < 126) {
    out[o++] = mask | length;
  } else if (length < 0x10000) {
    out[o++] = mask | 126;
    out[o++] = length >>> 8;
    out[o++] = length & 0xff;
  } else {
    out[o++] = mask | 127;
    const hi = Math.floor(length / 0x1_0000_0000);
    const lo = length >>> 0;
    out[o++] = 0;
    out[o++] = 0;
    out[o++] = (hi >>> 8) & 0xff;
    out[o++] = hi & 0xff;
    out[o++] = lo >>> 24;
    out[o++] = (lo >>> 16) & 0xff;
    out[o++] = (lo >>> 8) & 0xff;
    out[o++] = lo & 0xff;
  }
  if (maskKey !== undefined) {
    if (maskKey.length !== 4) {
      throw new RangeError(`Cannot encode frame: mask key of ${maskKey.length} bytes, expected 4`);
    }
    out.set(maskKey, o);
    o += 4;
  }
  return o - offset;
}

/**
 * XORs `src` with the mask key into `dst` (which may be `src`: in place),
 * starting at byte `phase` of the key (section 5.3).
 *
 * @example
 * ```ts
 * import { mask } from "./websocket.ts";
 * const b = new TextEncoder().encode("Hello");
 * mask(b, b, new Uint8Array([0x37, 0xfa, 0x21, 0x3d])); // b is 7f 9f 4d 51 58
 * ```
 */
export function mask(src: Uint8Array, dst: Uint8Array, key: Uint8Array, phase = 0): void {
  const n = src.length;
  const k0 = key[phase & 3]!, k1 = key[(phase + 1) & 3]!;
  const k2 = key[(phase + 2) & 3]!, k3 = key[(phase + 3) & 3]!;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    dst[i] = src[i]! ^ k0;
    dst[i + 1] = src[i + 1]! ^ k1;
    dst[i + 2] = src[i + 2]! ^ k2;
    dst[i + 3] = src[i + 3]! ^ k3;
  }
  for (; i < n; i++) dst[i] = src[i]! ^ key[(phase + i) & 3]!;
}

/**
 * A whole frame in one buffer: header, then the payload (masked when
 * `maskKey` is given). For control frames and tests; the transport writes
 * data frames without this extra allocation.
 *
 * @example
 * ```ts
 * import { encodeFrame, Opcode } from "./websocket.ts";
 * encodeFrame(Opcode.PING, new TextEncoder().encode("Hello")); // 89 05 48 65 6c 6c 6f
 * ```
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  maskKey?: Uint8Array,
  fin = true,
): Uint8Array {
  const head = new Uint8Array(MAX_HEADER_SIZE);
  const h = encodeFrameHeader(
    head,
    0,
    maskKey === undefined
      ? { opcode, fin, length: payload.length }
      : { opcode, fin, length: payload.length, maskKey },
  );
  const out = new Uint8Array(h + payload.length);
  out.set(head.subarray(0, h));
  if (maskKey === undefined) out.set(payload, h);
  else mask(payload, out.subarray(h), maskKey);
  return out;
}

/**
 * The payload of a Close frame: the status code, then a UTF-8 reason
 * (at most 123 bytes; longer reasons are cut).
 *
 * @example
 * ```ts
 * import { closePayload } from "./websocket.ts";
 * closePayload(1000); // 03 e8
 * ```
 */
export function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason).subarray(0, MAX_CONTROL_PAYLOAD - 2);
  const out = new Uint8Array(2 + text.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** What {@linkcode FrameDecoder.next} found. */
export type FrameEvent =
  /** Every byte given was consumed; push more. */
  | { type: "more" }
  /** Payload bytes of a data message, unmasked in place: a view into the chunk. */
  | { type: "data"; bytes: Uint8Array; end: number }
  | { type: "ping"; payload: Uint8Array; end: number }
  | { type: "pong"; payload: Uint8Array; end: number }
  /** The peer's Close; `code` 1005 when it carried none. */
  | { type: "close"; code: number; reason: string; end: number }
  /** The peer broke the protocol: close with `code` and stop reading. */
  | { type: "error"; code: number; reason: string };

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /** "server" decodes a client's frames (masked); "client" a server's (unmasked). */
  role: "server" | "client";
  /** The longest message accepted (sum of its fragments); default 1 MiB. */
  maxMessage?: number;
  /** Accept text messages as data too (tests with the RFC's text vectors); default false. */
  allowText?: boolean;
}

const enum State {
  HEADER,
  PAYLOAD,
  CONTROL,
  FAILED,
}

function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
    (code >= 3000 && code <= 4999);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes the frames of one direction of a WebSocket connection. Feed it
 * the bytes read from the socket, chunk by chunk: `next(chunk, offset)`
 * returns one event and the offset (`end`) to continue from, until it says
 * `more`. Data payloads are unmasked in place and returned as views of the
 * chunk, so the bytes are copied only once, to where the reader wants them.
 * Headers and control payloads split across chunks are kept (at most 14
 * and 125 bytes).
 *
 * Strict, per section 5: RSV bits must be 0 (no extensions); client frames
 * masked and server frames not; lengths in the shortest form with the top
 * bit clear; control frames unfragmented and at most 125 bytes; a
 * continuation only inside a message and a new message only after the
 * last ended; Close codes and reasons valid. A message longer than
 * `maxMessage` is refused (1009) before its payload is read. After an
 * `error` the decoder stays failed.
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "./websocket.ts";
 * const d = new FrameDecoder({ role: "client" });
 * const chunk = new Uint8Array([0x82, 0x03, 1, 2, 3]);
 * const e = d.next(chunk, 0); // { type: "data", bytes: 01 02 03, end: 5 }
 * d.next(chunk, 5); // { type: "more" }
 * ```
 */
export class FrameDecoder {
  readonly #masked: boolean;
  readonly #maxMessage: number;
  readonly #allowText: boolean;
  #state = State.HEADER;
  readonly #head = new Uint8Array(MAX_HEADER_SIZE);
  #headLen = 0;
  #opcode = 0;
  #fin = false;
  /** Payload bytes of the current frame not yet delivered. */
  #left = 0;
  readonly #key = new Uint8Array(4);
  #phase = 0;
  /** Inside a fragmented data message. */
  #inMessage = false;
  #messageSize = 0;
  readonly #control = new Uint8Array(MAX_CONTROL_PAYLOAD);
  #controlLen = 0;

  constructor(options: FrameDecoderOptions) {
    this.#masked = options.role === "server";
    this.#maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
    this.#allowText = options.allowText ?? false;
  }

  /**
   * Payload bytes of the current data frame still to come (0 between
   * frames and in control frames): a reader may read up to this many bytes
   * straight into its own buffer and pass that view to `next`.
   */
  get payloadLeft(): number {
    return this.#state === State.PAYLOAD ? this.#left : 0;
  }

  /** Consumes from `chunk[offset..]` up to one event; see the class doc. */
  next(chunk: Uint8Array, offset: number): FrameEvent {
    let o = offset;
    for (;;) {
      switch (this.#state) {
        case State.FAILED:
          return { type: "error", code: CloseCode.PROTOCOL_ERROR, reason: "decoder failed" };
        case State.HEADER: {
          if (o >= chunk.length) return { type: "more" };
          // At most 14 bytes: the size is known once the second byte is in.
          while (o < chunk.length && this.#headLen < this.#headerSize()) {
            this.#head[this.#headLen++] = chunk[o++]!;
          }
          if (this.#headLen < this.#headerSize()) continue;
          const bad = this.#takeHeader();
          if (bad !== undefined) return this.#fail(bad.code, bad.reason);
          break;
        }
        case State.PAYLOAD: {
          if (this.#left === 0) {
            this.#endFrame();
            continue;
          }
          if (o >= chunk.length) return { type: "more" };
          const n = Math.min(this.#left, chunk.length - o);
          const bytes = chunk.subarray(o, o + n);
          if (this.#masked) mask(bytes, bytes, this.#key, this.#phase);
          this.#phase = (this.#phase + n) & 3;
          this.#left -= n;
          if (this.#left === 0) this.#endFrame();
          return { type: "data", bytes, end: o + n };
        }
        case State.CONTROL: {
          if (this.#left > 0) {
            if (o >= chunk.length) return { type: "more" };
            const n = Math.min(this.#left, chunk.length - o);
            const dst = this.#control.subarray(this.#controlLen, this.#controlLen + n);
            if (this.#masked) mask(chunk.subarray(o, o + n), dst, this.#key, this.#phase);
            else dst.set(chunk.subarray(o, o + n));
            this.#phase = (this.#phase + n) & 3;
            this.#controlLen += n;
            this.#left -= n;
            o += n;
            if (this.#left > 0) continue;
          }
          this.#state = State.HEADER;
          const payload = this.#control.slice(0, this.#controlLen);
          if (this.#opcode === Opcode.PING) return { type: "ping", payload, end: o };
          if (this.#opcode === Opcode.PONG) return { type: "pong", payload, end: o };
          return this.#closeEvent(payload, o);
        }
      }
    }
  }

  /** Header size implied by the bytes seen so far (2 until the length byte is in). */
  #headerSize(): number {
    if (this.#headLen < 2) return 2;
    const len7 = this.#head[1]! & 0x7f;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    return 2 + ext + ((this.#head[1]! & 0x80) !== 0 ? 4 : 0);
  }

  #takeHeader(): { code: number; reason: string } | undefined {
    const h = this.#head;
    this.#headLen = 0;
    const b0 = h[0]!, b1 = h[1]!;
    if ((b0 & 0x70) !== 0) {
      return { code: CloseCode.PROTOCOL_ERROR, reason: "reserved bits set" };
    }
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.#masked) {
      return {
        code: CloseCode.PROTOCOL_ERROR,
        reason: this.#masked ? "unmasked client frame" : "masked server frame",
      };
    }
    const len7 = b1 & 0x7f;
    let length = len7;
    let k = 2;
    if (len7 === 126) {
      length = (h[2]! << 8) | h[3]!;
      k = 4;
      if (length < 126) return { code: CloseCode.PROTOCOL_ERROR, reason: "length not minimal" };
    } else if (len7 === 127) {
      if ((h[2]! & 0x80) !== 0) {
        return { code: CloseCode.PROTOCOL_ERROR, reason: "length top bit set" };
      }
      const hi = ((h[2]! << 24) | (h[3]! << 16) | (h[4]! << 8) | h[5]!) >>> 0;
      const lo = ((h[6]! << 24) | (h[7]! << 16) | (h[8]! << 8) | h[9]!) >>> 0;
      length = hi * 0x1_0000_0000 + lo;
      k = 10;
      if (length < 0x10000) {
        return { code: CloseCode.PROTOCOL_ERROR, reason: "length not minimal" };
      }
    }
    if (masked) this.#key.set(h.subarray(k, k + 4));
    this.#phase = 0;
    this.#fin = fin;
    this.#opcode = opcode;
    this.#left = length;
    if (opcode >= 0x8) {
      if (opcode !== Opcode.CLOSE && opcode !== Opcode.PING && opcode !== Opcode.PONG) {
        return { code: CloseCode.PROTOCOL_ERROR, reason: `reserved opcode ${opcode}` };
      }
      if (!fin) return { code: CloseCode.PROTOCOL_ERROR, reason: "fragmented control frame" };
      if (length > MAX_CONTROL_PAYLOAD) {
        return { code: CloseCode.PROTOCOL_ERROR, reason: "control frame over 125 bytes" };
      }
      this.#controlLen = 0;
      this.#state = State.CONTROL;
      return undefined;
    }
    if (opcode === Opcode.CONTINUATION) {
      if (!this.#inMessage) {
        return { code: CloseCode.PROTOCOL_ERROR, reason: "continuation outside a message" };
      }
    } else if (opcode === Opcode.BINARY || opcode === Opcode.TEXT) {
      if (this.#inMessage) {
        return { code: CloseCode.PROTOCOL_ERROR, reason: "new message inside a fragmented one" };
      }
      if (opcode === Opcode.TEXT && !this.#allowText) {
        return { code: CloseCode.UNSUPPORTED_DATA, reason: "text message" };
      }
      this.#messageSize = 0;
    } else {
      return { code: CloseCode.PROTOCOL_ERROR, reason: `reserved opcode ${opcode}` };
    }
    this.#messageSize += length;
    if (this.#messageSize > this.#maxMessage) {
      return { code: CloseCode.MESSAGE_TOO_BIG, reason: "message too big" };
    }
    this.#inMessage = !fin;
    this.#state = State.PAYLOAD;
    return undefined;
  }

  #endFrame(): void {
    this.#state = State.HEADER;
    if (this.#fin) this.#inMessage = false;
  }

  #closeEvent(payload: Uint8Array, end: number): FrameEvent {
    if (payload.length === 0) return { type: "close", code: 1005, reason: "", end };
    if (payload.length === 1) {
      return this.#fail(CloseCode.PROTOCOL_ERROR, "close payload of 1 byte");
    }
    const code = (payload[0]! << 8) | payload[1]!;
    if (!validCloseCode(code)) {
      return this.#fail(CloseCode.PROTOCOL_ERROR, `invalid close code ${code}`);
    }
    let reason: string;
    try {
      reason = strictUtf8.decode(payload.subarray(2));
    } catch {
      return this.#fail(CloseCode.INVALID_PAYLOAD, "close reason is not UTF-8");
    }
    return { type: "close", code, reason, end };
  }

  #fail(code: number, reason: string): FrameEvent {
    this.#state = State.FAILED;
    return { type: "error", code, reason };
  }
}

// ---------------------------------------------------------------------------
// The opening handshake (section 4).

/**
 * `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`: base64 of the
 * SHA-1 of the key and the GUID (section 4.2.2).
 *
 * @example
 * ```ts
 * import { acceptKey } from "./websocket.ts";
 * acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export function acceptKey(key: string): string {
  const digest = sha1(new TextEncoder().encode(key + WS_GUID));
  return btoa(String.fromCharCode(...digest));
}

/** An HTTP/1.1 request or response head, parsed. */
export interface HttpHead {
  /** Request: method, target, version. Response: version, status, reason. */
  start: [string, string, string];
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Map<string, string>;
  /** Bytes the head took, the blank line included. */
  size: number;
}

/** What {@linkcode parseHttpHead} found. */
export type HeadResult =
  | { type: "head"; head: HttpHead }
  /** No blank line yet, and still under the bound. */
  | { type: "partial" }
  /** Not an HTTP/1.1 head, or longer than the bound. */
  | { type: "invalid"; reason: string };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parses an HTTP/1.x head from the start of `bytes`, at most `maxSize`
 * bytes (default 8 KiB). Strict: CRLF line ends, three parts on the start
 * line, `name: value` header lines with token names, no obsolete line
 * folding; anything else is `invalid` (the caller hands such a connection to
 * the fallback).
 *
 * @example
 * ```ts
 * import { parseHttpHead } from "./websocket.ts";
 * const r = parseHttpHead(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
 * r.type === "head" && r.head.headers.get("host"); // "a"
 * ```
 */
export function parseHttpHead(bytes: Uint8Array, maxSize = MAX_HTTP_HEAD): HeadResult {
  const n = Math.min(bytes.length, maxSize);
  let end = -1;
  for (let i = 3; i < n; i++) {
    if (
      bytes[i] === 0x0a && bytes[i - 1] === 0x0d && bytes[i - 2] === 0x0a && bytes[i - 3] === 0x0d
    ) {
      end = i + 1;
      break;
    }
  }
  if (end < 0) {
    for (let i = 0; i < n; i++) {
      const b = bytes[i]!;
      if (b === 0 || b >= 0x80) return { type: "invalid", reason: "not text" };
    }
    return bytes.length >= maxSize
      ? { type: "invalid", reason: `head longer than ${maxSize} bytes` }
      : { type: "partial" };
  }
  let text = "";
  for (let i = 0; i < end - 4; i++) {
    const b = bytes[i]!;
    if (b === 0 || b >= 0x80) return { type: "invalid", reason: "not text" };
    text += String.fromCharCode(b);
  }
  const lines = text.split("\r\n");
  const start = lines[0]!.split(" ");
  if (start.length < 3 || start.some((p, i) => i < 2 && p.length === 0)) {
    return { type: "invalid", reason: "malformed start line" };
  }
  const startLine: [string, string, string] = [start[0]!, start[1]!, start.slice(2).join(" ")];
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0 || line.includes("\n") || line.includes("\r")) {
      return { type: "invalid", reason: "malformed header line" };
    }
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return { type: "invalid", reason: "malformed header name" };
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers.get(key);
    headers.set(key, prev === undefined ? value : `${prev}, ${value}`);
  }
  return { type: "head", head: { start: startLine, headers, size: end } };
}

function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  return value.split(",").some((t) => t.trim().toLowerCase() === token);
}

/**
 * The client's upgrade request for `path` on `host` (the Host header, with
 * the port when it is not the scheme's default) with a 16-byte nonce.
 *
 * @example
 * ```ts
 * import { upgradeRequest } from "./websocket.ts";
 * upgradeRequest({ host: "cdn.example", path: "/ws", key: "dGhlIHNhbXBsZSBub25jZQ==" });
 * // "GET /ws HTTP/1.1\r\nHost: cdn.example\r\n..."
 * ```
 */
export function upgradeRequest(o: { host: string; path: string; key: string }): string {
  return `GET ${o.path} HTTP/1.1\r\n` +
    `Host: ${o.host}\r\n` +
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
    "Chrome/131.0.0.0 Safari/537.36\r\n" +
    "Upgrade: websocket\r\n" +
    "Connection: Upgrade\r\n" +
    `Sec-WebSocket-Key: ${o.key}\r\n` +
    "Sec-WebSocket-Version: 13\r\n" +
    "\r\n";
}

/**
 * Checks a request head as a WebSocket upgrade at `path` (section 4.2.1):
 * GET, HTTP/1.1, the path (query ignored), `Upgrade: websocket`,
 * `Connection: upgrade`, version 13 and a key of 16 bytes in base64.
 * Returns the key, or undefined for anything else (the fallback's).
 *
 * @example
 * ```ts
 * import { checkUpgradeRequest, parseHttpHead, upgradeRequest } from "./websocket.ts";
 * const key = "dGhlIHNhbXBsZSBub25jZQ==";
 * const r = parseHttpHead(new TextEncoder().encode(upgradeRequest({ host: "a", path: "/ws", key })));
 * r.type === "head" && checkUpgradeRequest(r.head, "/ws"); // key
 * ```
 */
export function checkUpgradeRequest(head: HttpHead, path: string): string | undefined {
  const [method, target, version] = head.start;
  if (method !== "GET" || version !== "HTTP/1.1") return undefined;
  const q = target.indexOf("?");
  if ((q < 0 ? target : target.slice(0, q)) !== path) return undefined;
  const h = head.headers;
  if (!hasToken(h.get("upgrade"), "websocket")) return undefined;
  if (!hasToken(h.get("connection"), "upgrade")) return undefined;
  if (h.get("sec-websocket-version") !== "13") return undefined;
  const key = h.get("sec-websocket-key");
  if (key === undefined || !/^[A-Za-z0-9+/]{22}==$/.test(key)) return undefined;
  return key;
}

/**
 * The server's 101 answer to an upgrade with `key`.
 *
 * @example
 * ```ts
 * import { upgradeResponse } from "./websocket.ts";
 * upgradeResponse("dGhlIHNhbXBsZSBub25jZQ==");
 * // "HTTP/1.1 101 Switching Protocols\r\n...Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
 * ```
 */
export function upgradeResponse(key: string): string {
  return "HTTP/1.1 101 Switching Protocols\r\n" +
    "Upgrade: websocket\r\n" +
    "Connection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n` +
    "\r\n";
}

/**
 * Checks the server's answer to an upgrade sent with `key` (section
 * 4.1): status 101, `Upgrade: websocket`, `Connection: upgrade` and the
 * right `Sec-WebSocket-Accept`. Returns undefined when it is one, else
 * what was wrong (for the user's error message).
 *
 * @example
 * ```ts
 * import { checkUpgradeResponse, parseHttpHead, upgradeResponse } from "./websocket.ts";
 * const key = "dGhlIHNhbXBsZSBub25jZQ==";
 * const r = parseHttpHead(new TextEncoder().encode(upgradeResponse(key)));
 * r.type === "head" && checkUpgradeResponse(r.head, key); // undefined
 * ```
 */
export function checkUpgradeResponse(head: HttpHead, key: string): string | undefined {
  const [version, status, reason] = head.start;
  if (!/^HTTP\/1\.[01]$/.test(version)) return `not an HTTP response (${version})`;
  if (status !== "101") return `HTTP ${status} ${reason}`.trim();
  const h = head.headers;
  if (!hasToken(h.get("upgrade"), "websocket")) return "101 without Upgrade: websocket";
  if (!hasToken(h.get("connection"), "upgrade")) return "101 without Connection: upgrade";
  if (h.get("sec-websocket-accept") !== acceptKey(key)) return "wrong Sec-WebSocket-Accept";
  return undefined;
}
