/**
 * SOCKS5 UDP relay messages (RFC 1928 section 7): the header in front of
 * every datagram between an application and its UDP relay, and the
 * address form (`ATYP ‖ DST.ADDR ‖ DST.PORT`) the tunnel's DATAGRAM frames
 * reuse (docs/PROTOCOL.md part 5 (session frames) section 12). Pure;
 * decoders return views, never copies.
 *
 * ```
 * +----+------+------+----------+----------+----------+
 * |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 * +----+------+------+----------+----------+----------+
 * | 2  |  1   |  1   | Variable |    2     | Variable |
 * ```
 *
 * @module
 */
import { formatIpv4, formatIpv6, isValidDomain, parseIpv4, parseIpv6 } from "./address.ts";
import { ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6 } from "./message.ts";
import type { AddressType } from "./address.ts";

/** Bytes of `RSV RSV FRAG` in front of the address. */
export const UDP_HEADER_PREFIX = 3;

/** A UDP relay packet split into its parts (views into the packet). */
export interface UdpPacket {
  /** FRAG: 0 for a whole datagram; anything else is a fragment (we drop those). */
  frag: number;
  /** `ATYP ‖ DST.ADDR ‖ DST.PORT`, as sent. */
  address: Uint8Array;
  /** The datagram itself. */
  data: Uint8Array;
}

/** A decoded UDP address. */
export interface UdpAddress {
  /** ATYP. */
  addressType: AddressType;
  /** Dotted IPv4, canonical IPv6 without brackets, or the domain as sent. */
  host: string;
  /** The port. */
  port: number;
}

/**
 * Bytes of the address at the start of `b` (`ATYP ‖ addr ‖ port`), or -1
 * when `b` does not start with a whole address of a known type.
 *
 * @example
 * ```ts
 * import { udpAddressLength } from "./udp.ts";
 * udpAddressLength(new Uint8Array([1, 127, 0, 0, 1, 0, 53])); // 7
 * ```
 */
export function udpAddressLength(b: Uint8Array): number {
  let n: number;
  switch (b[0]) {
    case ATYP_IPV4:
      n = 1 + 4 + 2;
      break;
    case ATYP_IPV6:
      n = 1 + 16 + 2;
      break;
    case ATYP_DOMAIN:
      if (b.length < 2 || b[1] === 0) return -1;
      n = 2 + b[1]! + 2;
      break;
    default:
      return -1;
  }
  return n <= b.length ? n : -1;
}

/**
 * Splits a packet an application sent to its UDP relay. Returns null when
 * it is malformed (short, RSV not zero, unknown ATYP); such packets are
 * dropped silently, as RFC 1928 section 7 says of packets it cannot relay.
 *
 * @example
 * ```ts
 * import { decodeUdpPacket } from "./udp.ts";
 * const p = decodeUdpPacket(new Uint8Array([0, 0, 0, 1, 127, 0, 0, 1, 0, 53, 0xab]))!;
 * p.data; // Uint8Array [171]
 * ```
 */
export function decodeUdpPacket(packet: Uint8Array): UdpPacket | null {
  if (packet.length < UDP_HEADER_PREFIX + 1 || packet[0] !== 0 || packet[1] !== 0) return null;
  const rest = packet.subarray(UDP_HEADER_PREFIX);
  const n = udpAddressLength(rest);
  if (n < 0) return null;
  return { frag: packet[2]!, address: rest.subarray(0, n), data: rest.subarray(n) };
}

/**
 * Decodes an address (`ATYP ‖ addr ‖ port`, exactly). Returns null for a
 * malformed one or a domain that is not a valid host name.
 *
 * @example
 * ```ts
 * import { decodeUdpAddress } from "./udp.ts";
 * decodeUdpAddress(new Uint8Array([1, 127, 0, 0, 1, 0, 53]));
 * // { addressType: "ipv4", host: "127.0.0.1", port: 53 }
 * ```
 */
export function decodeUdpAddress(b: Uint8Array): UdpAddress | null {
  const n = udpAddressLength(b);
  if (n < 0 || n !== b.length) return null;
  const port = (b[n - 2]! << 8) | b[n - 1]!;
  if (b[0] === ATYP_IPV4) return { addressType: "ipv4", host: formatIpv4(b.subarray(1, 5)), port };
  if (b[0] === ATYP_IPV6) return { addressType: "ipv6", host: formatIpv6(b.subarray(1, 17)), port };
  const host = String.fromCharCode(...b.subarray(2, n - 2));
  return isValidDomain(host) ? { addressType: "domain", host, port } : null;
}

/**
 * Encodes an IP address and port as `ATYP ‖ addr ‖ port` (for the source of
 * a reply; the relay only ever sees IP addresses there). Throws `TypeError`
 * for a host that is not an IP address.
 *
 * @example
 * ```ts
 * import { encodeUdpAddress } from "./udp.ts";
 * encodeUdpAddress("127.0.0.1", 53); // Uint8Array [1, 127, 0, 0, 1, 0, 53]
 * ```
 */
export function encodeUdpAddress(host: string, port: number): Uint8Array {
  const v4 = parseIpv4(host);
  const ip = v4 ?? parseIpv6(host);
  if (ip === null) throw new TypeError(`Cannot encode UDP address: "${host}" is not an IP address`);
  const out = new Uint8Array(1 + ip.length + 2);
  out[0] = v4 !== null ? ATYP_IPV4 : ATYP_IPV6;
  out.set(ip, 1);
  out[ip.length + 1] = port >> 8;
  out[ip.length + 2] = port & 0xff;
  return out;
}
