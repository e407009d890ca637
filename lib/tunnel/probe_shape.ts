/**
 * Bytes that say "not a Hello" before the probe gate could: the gate reads
 * a Hello's first 66 bytes before it can judge them, and a short request
 * (`GET / HTTP/1.1\r\nHost: a\r\n\r\n` is 27 bytes) would otherwise wait for
 * bytes that never come while a web server answers at once. Pure.
 *
 * A Hello starts with 32 uniformly random bytes (an Elligator
 * representative), so the chance that one looks like any of these is about
 * 2^-50 or less: each needs seven or more fixed bytes ("HTTP/1." and a
 * blank line; the 24-byte preface; a record header whose two lengths
 * agree). HTTP/0.9 (`GET /\r\n`) is left out for that reason: too few
 * fixed bytes.
 *
 * @module
 */
import { parseRequestHead } from "./decoy_http.ts";

/** What the first bytes of a connection are, when they are recognisably not a Hello. */
export type ProbeShape = "http1" | "h2" | "tls";

/** The HTTP/2 connection preface (RFC 9113 §3.4). */
export const H2_PREFACE: Uint8Array = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Recognises a complete HTTP/1.x request head, the complete HTTP/2 preface, or a TLS record carrying a
 * ClientHello (TLS inside TLS); undefined for anything else (a Hello, or
 * too few bytes to tell).
 *
 * @example
 * ```ts
 * import { recognizeProbe } from "./probe_shape.ts";
 * recognizeProbe(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n")); // "http1"
 * recognizeProbe(new TextEncoder().encode("GET / HTTP/1.0\r\n")); // undefined: not complete yet
 * ```
 */
export function recognizeProbe(b: Uint8Array): ProbeShape | undefined {
  if (b.length >= H2_PREFACE.length && H2_PREFACE.every((c, i) => b[i] === c)) return "h2";
  if (
    b.length >= 9 && b[0] === 0x16 && b[1] === 0x03 && b[2]! >= 0x01 && b[2]! <= 0x04 &&
    b[5] === 0x01
  ) {
    const recordLen = (b[3]! << 8) | b[4]!;
    const helloLen = (b[6]! << 16) | (b[7]! << 8) | b[8]!;
    if (recordLen >= 4 && recordLen <= 16384 + 2048 && helloLen === recordLen - 4) return "tls";
  }
  if (b.length >= 16) {
    const head = parseRequestHead(b);
    if (head.type === "request" && head.request.version !== "0.9") return "http1";
  }
  return undefined;
}
