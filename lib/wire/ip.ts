/**
 * IP addresses as 16 bytes and CIDR ranges over them, for the egress policy
 * (lib/config/egress.ts) and the routes' CIDR rules (lib/config/routes.ts).
 *
 * An IPv4 address is held in its IPv4-mapped form `::ffff:a.b.c.d` (RFC 4291
 * section 2.5.5.2), so `127.0.0.1` and `::ffff:127.0.0.1` are the same
 * address, and an IPv4 range `10.0.0.0/8` is the IPv6 range
 * `::ffff:10.0.0.0/104`. Only dotted-quad IPv4 text is an address here;
 * other forms (`127.1`, `2130706433`) are names the resolver turns into
 * addresses, and it is those addresses that are checked.
 *
 * @module
 */
import { canonicalIpv6 } from "./host_port.ts";

/** An address: 16 bytes, IPv4 in its IPv4-mapped form. */
export type IpBytes = Uint8Array;

/** A range of addresses: the first `bits` bits of `base`. */
export interface Cidr {
  /** The network address (bits past `bits` are zero). */
  base: IpBytes;
  /** The prefix length, 0-128 (an IPv4 /N is 96 + N). */
  bits: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parses a dotted-quad IPv4 or an IPv6 address (without brackets) to its
 * 16 bytes; undefined for anything else.
 *
 * @example
 * ```ts
 * import { parseIp } from "./ip.ts";
 * parseIp("127.0.0.1")![15]; // 1
 * parseIp("::ffff:127.0.0.1")![12]; // 127
 * parseIp("localhost"); // undefined
 * ```
 */
export function parseIp(text: string): IpBytes | undefined {
  if (IPV4.test(text)) {
    const b = new Uint8Array(16);
    b[10] = 0xff;
    b[11] = 0xff;
    text.split(".").forEach((p, i) => (b[12 + i] = Number(p)));
    return b;
  }
  if (!text.includes(":")) return undefined;
  const c = canonicalIpv6(text);
  if (c === undefined) return undefined;
  // The URL parser writes embedded IPv4 as two hex groups; expand "::".
  const [head, tail] = c.includes("::") ? c.split("::") as [string, string] : [c, undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const b = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    b[2 * i] = v >> 8;
    b[2 * i + 1] = v & 0xff;
  });
  return b;
}

/** True when `addr` is an IPv4 address (IPv4-mapped form). */
export function isIpv4(addr: IpBytes): boolean {
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return addr[10] === 0xff && addr[11] === 0xff;
}

/**
 * The text form: dotted quad for IPv4, canonical IPv6 (RFC 5952) otherwise.
 *
 * @example
 * ```ts
 * import { formatIp, parseIp } from "./ip.ts";
 * formatIp(parseIp("::ffff:10.0.0.1")!); // "10.0.0.1"
 * formatIp(parseIp("0:0::1")!); // "::1"
 * ```
 */
export function formatIp(addr: IpBytes): string {
  if (isIpv4(addr)) return `${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  return canonicalIpv6(groups.join(":"))!;
}

/**
 * Parses `ADDR/LEN` (IPv4 LEN 0-32, IPv6 LEN 0-128) or a bare address (a
 * /32 or /128); undefined when malformed. Bits past the prefix must be zero
 * (`10.0.0.1/8` is refused: it probably means something else).
 *
 * @example
 * ```ts
 * import { parseCidr } from "./ip.ts";
 * parseCidr("10.0.0.0/8")!.bits; // 104
 * parseCidr("fe80::/10")!.bits; // 10
 * parseCidr("10.0.0.1/8"); // undefined
 * ```
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const base = parseIp(addrText);
  if (base === undefined) return undefined;
  const v4 = !addrText.includes(":");
  const max = v4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) return undefined;
    len = Number(lenText);
  }
  const bits = v4 ? 96 + len : len;
  for (let i = bits; i < 128; i++) {
    if ((base[i >> 3]! >> (7 - (i & 7))) & 1) return undefined;
  }
  return { base, bits };
}

/**
 * True when `addr` is in `range`.
 *
 * @example
 * ```ts
 * import { cidrContains, parseCidr, parseIp } from "./ip.ts";
 * cidrContains(parseCidr("127.0.0.0/8")!, parseIp("::ffff:127.0.0.2")!); // true
 * ```
 */
export function cidrContains(range: Cidr, addr: IpBytes): boolean {
  const full = range.bits >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== range.base[i]) return false;
  const rest = range.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[full]! & mask) === (range.base[full]! & mask);
}

function v4(a: number, b: number, c: number, d: number): IpBytes {
  const out = new Uint8Array(16);
  out.set([0xff, 0xff, a, b, c, d], 10);
  return out;
}

function startsWith(addr: IpBytes, prefix: readonly number[]): boolean {
  return prefix.every((x, i) => addr[i] === x);
}

function zeroUpTo(addr: IpBytes, end: number, from = 0): boolean {
  for (let i = from; i < end; i++) if (addr[i] !== 0) return false;
  return true;
}

/**
 * The IPv4 addresses an IPv6 address carries, which a gateway or the kernel
 * may turn into an IPv4 connection: IPv4-compatible `::a.b.c.d`
 * (RFC 4291 2.5.5.1), IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765), NAT64
 * `64:ff9b::/96` (RFC 6052) and `64:ff9b:1::/48` (RFC 8215, last 32 bits),
 * 6to4 `2002:AABB:CCDD::/48` (RFC 3056) and Teredo `2001:0::/32` (RFC 4380:
 * the server, and the client address inverted). IPv4-mapped addresses are
 * already IPv4 here, so they carry nothing more.
 *
 * @example
 * ```ts
 * import { embeddedIpv4, formatIp, parseIp } from "./ip.ts";
 * embeddedIpv4(parseIp("64:ff9b::7f00:1")!).map(formatIp); // ["127.0.0.1"]
 * ```
 */
export function embeddedIpv4(addr: IpBytes): IpBytes[] {
  if (isIpv4(addr)) return [];
  const last = () => v4(addr[12]!, addr[13]!, addr[14]!, addr[15]!);
  const out: IpBytes[] = [];
  // ::a.b.c.d (also :: and ::1, whose "IPv4" forms 0.0.0.0 and 0.0.0.1 are blocked as 0/8).
  if (zeroUpTo(addr, 12)) out.push(last());
  if (zeroUpTo(addr, 8) && addr[8] === 0xff && addr[9] === 0xff && zeroUpTo(addr, 12, 10)) {
    out.push(last());
  }
  if (startsWith(addr, [0, 0x64, 0xff, 0x9b]) && zeroUpTo(addr, 12, 4)) out.push(last());
  if (startsWith(addr, [0, 0x64, 0xff, 0x9b, 0, 1])) out.push(last());
  if (startsWith(addr, [0x20, 0x02])) out.push(v4(addr[2]!, addr[3]!, addr[4]!, addr[5]!));
  if (startsWith(addr, [0x20, 0x01, 0, 0])) {
    out.push(v4(addr[4]!, addr[5]!, addr[6]!, addr[7]!));
    out.push(v4(~addr[12]! & 0xff, ~addr[13]! & 0xff, ~addr[14]! & 0xff, ~addr[15]! & 0xff));
  }
  return out;
}
