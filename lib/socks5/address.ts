/**
 * Host text ⇄ bytes for SOCKS5 addresses: strict dotted IPv4, IPv6 in any
 * RFC 4291 section 2.2 text form (printed canonically per RFC 5952), and
 * domain names limited to the characters a resolver accepts.
 *
 * @module
 */

/** SOCKS5 address kinds (RFC 1928 section 5, ATYP). */
export type AddressType = "ipv4" | "ipv6" | "domain";

/** A host classified and, for IP literals, in canonical text form. */
export interface ClassifiedHost {
  /** What kind of address it is. */
  addressType: AddressType;
  /** The host, canonical for IP literals. */
  host: string;
}

const IPV4_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;
/** Letters, digits, hyphen, underscore, dot: what DNS resolvers take. */
const DOMAIN_CHARS = /^[A-Za-z0-9._-]+$/;
/** A label an IPv4 parser (inet_aton) would read as a number. */
const NUMERIC_LABEL = /^(?:[0-9]+|0[xX][0-9A-Fa-f]*)$/;

/** Maximum domain length in a SOCKS5 request (one length byte). */
export const MAX_DOMAIN_LENGTH = 255;

/**
 * Parses strict dotted-decimal IPv4 ("192.0.2.1"; no leading zeros, no
 * shorthand). Returns null if `text` is not one.
 *
 * @example
 * ```ts
 * import { parseIpv4 } from "./address.ts";
 * parseIpv4("127.0.0.1"); // Uint8Array [127, 0, 0, 1]
 * parseIpv4("127.1"); // null
 * ```
 */
export function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!IPV4_OCTET.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** Formats 4 bytes as dotted-decimal IPv4. */
export function formatIpv4(b: Uint8Array): string {
  if (b.length !== 4) {
    throw new RangeError(`Cannot format IPv4 address: length ${b.length}, expected 4`);
  }
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/**
 * Parses IPv6 text (RFC 4291 section 2.2: full, "::"-compressed, or with a
 * trailing dotted IPv4). No brackets, no zone id. Returns null if invalid.
 *
 * @example
 * ```ts
 * import { parseIpv6 } from "./address.ts";
 * parseIpv6("::1")?.[15]; // 1
 * parseIpv6("fe80::1%eth0"); // null
 * ```
 */
export function parseIpv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups: number[][] = [];
  for (let h = 0; h < halves.length; h++) {
    const half = halves[h]!;
    const out: number[] = [];
    if (half !== "") {
      const parts = half.split(":");
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!;
        const last = i === parts.length - 1 && h === halves.length - 1;
        if (last && p.includes(".")) {
          const v4 = parseIpv4(p);
          if (v4 === null) return null;
          out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        } else if (HEX_GROUP.test(p)) {
          out.push(parseInt(p, 16));
        } else {
          return null;
        }
      }
    }
    groups.push(out);
  }
  let words: number[];
  if (groups.length === 1) {
    words = groups[0]!;
    if (words.length !== 8) return null;
  } else {
    const head = groups[0]!;
    const tail = groups[1]!;
    const zeros = 8 - head.length - tail.length;
    if (zeros < 1) return null;
    words = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

/**
 * Formats 16 bytes as canonical IPv6 text (RFC 5952 section 4: lowercase,
 * no leading zeros, the longest run of two or more zero groups as "::",
 * the first on a tie; section 5: IPv4-mapped addresses as "::ffff:a.b.c.d").
 *
 * @example
 * ```ts
 * import { formatIpv6, parseIpv6 } from "./address.ts";
 * formatIpv6(parseIpv6("2001:DB8:0:0:0:0:0:1")!); // "2001:db8::1"
 * ```
 */
export function formatIpv6(b: Uint8Array): string {
  if (b.length !== 16) {
    throw new RangeError(`Cannot format IPv6 address: length ${b.length}, expected 16`);
  }
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  // RFC 5952 section 5: IPv4-mapped ::ffff:0:0/96.
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return `::ffff:${formatIpv4(b.subarray(12))}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestLen < 2) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}

/**
 * True if `name` is an acceptable SOCKS5 domain: 1..255 bytes of
 * `[A-Za-z0-9._-]`, labels of 1..63 bytes (one trailing dot allowed), and a
 * last label that is not a number. The last rule refuses "127.1",
 * "2130706433" and "0x7f.1", which resolvers would turn into IPv4 addresses
 * behind the back of an address-based policy (the WHATWG URL standard's
 * "ends in a number" check).
 *
 * @example
 * ```ts
 * import { isValidDomain } from "./address.ts";
 * isValidDomain("example.com."); // true
 * isValidDomain("127.1"); // false
 * ```
 */
export function isValidDomain(name: string): boolean {
  if (name.length < 1 || name.length > MAX_DOMAIN_LENGTH || !DOMAIN_CHARS.test(name)) return false;
  const labels = (name.endsWith(".") ? name.slice(0, -1) : name).split(".");
  for (const l of labels) if (l.length < 1 || l.length > 63) return false;
  return !NUMERIC_LABEL.test(labels[labels.length - 1]!);
}

/**
 * Classifies host text as IPv4, IPv6 (brackets allowed and removed) or
 * domain, printing IP literals canonically. Returns null for anything
 * else (empty, spaces, control characters, zone ids, over 255 bytes).
 *
 * @example
 * ```ts
 * import { classifyHost } from "./address.ts";
 * classifyHost("[0:0::1]"); // { addressType: "ipv6", host: "::1" }
 * classifyHost("example.com"); // { addressType: "domain", host: "example.com" }
 * ```
 */
export function classifyHost(text: string): ClassifiedHost | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { addressType: "ipv4", host: formatIpv4(v4) };
  const inner = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v6 = parseIpv6(inner);
  if (v6 !== null) return { addressType: "ipv6", host: formatIpv6(v6) };
  if (inner !== text) return null;
  return isValidDomain(text) ? { addressType: "domain", host: text } : null;
}
