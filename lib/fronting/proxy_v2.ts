/**
 * The PROXY protocol version 2 header (HAProxy's "proxy-protocol.txt",
 * section 2.2), pure: a TCP front such as HAProxy with `send-proxy-v2`
 * puts it before the client's first byte so the server learns the real
 * client address. Only the binary version 2 is read; version 1 (text) and
 * anything else is refused.
 *
 * @module
 */

/** The 12-byte signature every version 2 header starts with. */
export const PROXY_V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
/** Signature, version/command, family and the 2-byte length. */
export const PROXY_V2_FIXED = 16;
/**
 * The longest address-and-TLV block accepted. An IPv6 address block is 36
 * bytes; HAProxy's TLVs (ALPN, authority, unique id, SSL) fit well within.
 */
export const MAX_PROXY_V2_BODY = 1024;

/** What {@linkcode parseProxyV2} found. */
export type ProxyV2Result =
  /** A valid prefix so far: read more. */
  | { type: "partial" }
  /** Not a version 2 header (or one this server refuses). */
  | { type: "invalid"; reason: string }
  /**
   * A complete header of `size` bytes. `source` is the client's address
   * for PROXY over TCP; absent for LOCAL (the front's own health check)
   * and for unspecified families, where the socket's address stands.
   */
  | {
    type: "header";
    size: number;
    source?: { hostname: string; port: number };
    destination?: { hostname: string; port: number };
  };

function ipv6(b: Uint8Array, o: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[o + i]! << 8) | b[o + i + 1]!).toString(16));
  // The canonical compressed form (RFC 5952): the longest run of zero groups becomes "::".
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (parts[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return parts.join(":");
  return `${parts.slice(0, best).join(":")}::${parts.slice(best + bestLen).join(":")}`;
}

/**
 * Parses a PROXY v2 header at the start of `bytes`. Strict: the signature
 * is checked byte by byte as it arrives (so a probe fails at its first
 * wrong byte, not after a timeout); the version must be 2 and the command
 * LOCAL (0) or PROXY (1); PROXY needs a known family and an address block
 * as long as that family's; the body is at most 1024 bytes. TLVs after the
 * addresses are skipped.
 *
 * @example
 * ```ts
 * import { parseProxyV2, PROXY_V2_SIGNATURE } from "./proxy_v2.ts";
 * const h = new Uint8Array([...PROXY_V2_SIGNATURE, 0x21, 0x11, 0, 12,
 *   203, 0, 113, 7, 127, 0, 0, 1, 0xc3, 0x50, 0x20, 0xfb]);
 * parseProxyV2(h);
 * // { type: "header", size: 28, source: { hostname: "203.0.113.7", port: 50000 },
 * //   destination: { hostname: "127.0.0.1", port: 8443 } }
 * ```
 */
export function parseProxyV2(bytes: Uint8Array): ProxyV2Result {
  const sig = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < sig; i++) {
    if (bytes[i] !== PROXY_V2_SIGNATURE[i]) {
      return { type: "invalid", reason: "no PROXY v2 signature" };
    }
  }
  if (bytes.length < PROXY_V2_FIXED) {
    if (bytes.length > 12 && (bytes[12]! & 0xf0) !== 0x20) {
      return { type: "invalid", reason: "not PROXY version 2" };
    }
    return { type: "partial" };
  }
  const verCmd = bytes[12]!;
  if ((verCmd & 0xf0) !== 0x20) return { type: "invalid", reason: "not PROXY version 2" };
  const command = verCmd & 0x0f;
  if (command > 1) return { type: "invalid", reason: `unknown command ${command}` };
  const family = bytes[13]!;
  const length = (bytes[14]! << 8) | bytes[15]!;
  if (length > MAX_PROXY_V2_BODY) {
    return { type: "invalid", reason: `header body of ${length} bytes (at most 1024)` };
  }
  const size = PROXY_V2_FIXED + length;
  if (bytes.length < size) return { type: "partial" };
  if (command === 0) return { type: "header", size }; // LOCAL: the front speaking for itself
  const b = bytes;
  const o = PROXY_V2_FIXED;
  switch (family) {
    case 0x00: // UNSPEC
      return { type: "header", size };
    case 0x11: { // TCP over IPv4
      if (length < 12) return { type: "invalid", reason: "short IPv4 address block" };
      return {
        type: "header",
        size,
        source: { hostname: `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`, port: u16(b, o + 8) },
        destination: {
          hostname: `${b[o + 4]}.${b[o + 5]}.${b[o + 6]}.${b[o + 7]}`,
          port: u16(b, o + 10),
        },
      };
    }
    case 0x21: { // TCP over IPv6
      if (length < 36) return { type: "invalid", reason: "short IPv6 address block" };
      return {
        type: "header",
        size,
        source: { hostname: ipv6(b, o), port: u16(b, o + 32) },
        destination: { hostname: ipv6(b, o + 16), port: u16(b, o + 34) },
      };
    }
    default:
      return { type: "invalid", reason: `unsupported family 0x${family.toString(16)}` };
  }
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
