/**
 * The one parser and formatter of "HOST:PORT" text, used by configuration
 * files, command-line flags, HTTP CONNECT targets and messages. IPv6
 * addresses go in brackets (`[::1]:1080`, RFC 3986 section 3.2.2); the host
 * comes back without them.
 *
 * @module
 */

/** A host and port. */
export interface HostPort {
  /** A DNS name or an IP address (IPv6 without brackets). */
  host: string;
  /** 0-65535 (0: any free port, where listening). */
  port: number;
}

/** What {@link splitHostPort} found: the syntax only, the host not checked. */
export interface SplitHostPort extends HostPort {
  /** The host was written in brackets (an IPv6 literal, if valid). */
  bracketed: boolean;
}

const SPLIT = /^(?:\[([^\[\]]*)\]|([^:\[\]]*)):(\d{1,5})$/;

/**
 * Splits "host:port" or "[host]:port" without judging the host: a host
 * outside brackets has no ":", "[" or "]"; the port is 1 to 5 digits,
 * at most 65535. Undefined when the text has another shape.
 *
 * @example
 * ```ts
 * import { splitHostPort } from "./host_port.ts";
 * splitHostPort("[::1]:443"); // { host: "::1", port: 443, bracketed: true }
 * splitHostPort("::1:443"); // undefined
 * ```
 */
export function splitHostPort(text: string): SplitHostPort | undefined {
  const m = SPLIT.exec(text);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const bracketed = m[1] !== undefined;
  return { host: bracketed ? m[1]! : m[2]!, port, bracketed };
}

/**
 * Parses "HOST:PORT" where HOST is a DNS name, an IPv4 address or an IPv6
 * address in brackets, and PORT is `minPort` (default 0) to 65535.
 * Undefined when malformed; {@link invalidHostPortMessage} says so.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./host_port.ts";
 * parseHostPort("[::1]:1080"); // { host: "::1", port: 1080 }
 * parseHostPort("example.com:443"); // { host: "example.com", port: 443 }
 * parseHostPort("127.0.0.1:0", 1); // undefined
 * ```
 */
export function parseHostPort(text: string, minPort = 0): HostPort | undefined {
  const hp = splitHostPort(text);
  if (hp === undefined || hp.port < minPort) return undefined;
  const ok = hp.bracketed ? canonicalIpv6(hp.host) !== undefined : isHost(hp.host);
  return ok ? { host: hp.host, port: hp.port } : undefined;
}

/**
 * The message for text that {@link parseHostPort} refused, naming what it
 * was for.
 *
 * @example
 * ```ts
 * import { invalidHostPortMessage } from "./host_port.ts";
 * invalidHostPortMessage("8443", "listen address");
 * // 'Invalid listen address "8443": expected HOST:PORT, e.g. 127.0.0.1:1080 or [::1]:1080'
 * ```
 */
export function invalidHostPortMessage(text: string, what: string): string {
  return `Invalid ${what} "${text}": expected HOST:PORT, e.g. 127.0.0.1:1080 or [::1]:1080`;
}

/**
 * Formats host and port back, bracketing IPv6 ("[::1]:443").
 *
 * @example
 * ```ts
 * import { formatHostPort } from "./host_port.ts";
 * formatHostPort("::1", 443); // "[::1]:443"
 * formatHostPort("example.com", 443); // "example.com:443"
 * ```
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

const LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`);
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * True for a DNS name, IPv4 address, or IPv6 address (without brackets).
 * All-digit names such as "127.1" are refused: they are not addresses.
 *
 * @example
 * ```ts
 * import { isHost } from "./host_port.ts";
 * isHost("example.com"); // true
 * isHost("::1"); // true
 * isHost("127.1"); // false
 * ```
 */
export function isHost(host: string): boolean {
  if (host.includes(":")) return canonicalIpv6(host) !== undefined;
  return IPV4.test(host) || (HOSTNAME.test(host) && !/^[\d.]+$/.test(host));
}

/**
 * True for an IPv4 address in dotted-quad form or an IPv6 address (without
 * brackets); false for a DNS name.
 *
 * @example
 * ```ts
 * import { isIpAddress } from "./host_port.ts";
 * isIpAddress("10.0.0.1"); // true
 * isIpAddress("fd00::1"); // true
 * isIpAddress("localhost"); // false
 * ```
 */
export function isIpAddress(host: string): boolean {
  return host.includes(":") ? canonicalIpv6(host) !== undefined : IPV4.test(host);
}

/**
 * True for a name or address that stays on this machine: `localhost`,
 * 127.0.0.0/8, `::1` and IPv4-mapped 127.0.0.0/8.
 *
 * @example
 * ```ts
 * import { isLoopbackHost } from "./host_port.ts";
 * isLoopbackHost("127.0.0.2"); // true
 * isLoopbackHost("0.0.0.0"); // false
 * ```
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  if (h === "localhost") return true;
  if (IPV4.test(h)) return h.startsWith("127.");
  if (!h.includes(":")) return false;
  const c = canonicalIpv6(h.replace(/^\[|\]$/g, ""));
  if (c === undefined) return false;
  if (c === "::1") return true;
  // ::ffff:127.x.y.z, which the URL parser writes as ::ffff:7fXX:YYZZ.
  return /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(c);
}

/**
 * Canonical compressed form of an IPv6 address (RFC 5952), or undefined.
 *
 * @example
 * ```ts
 * import { canonicalIpv6 } from "./host_port.ts";
 * canonicalIpv6("0:0::1"); // "::1"
 * canonicalIpv6("example.com"); // undefined
 * ```
 */
export function canonicalIpv6(addr: string): string | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(addr)) return undefined;
  try {
    const h = new URL(`http://[${addr}]/`).hostname;
    return h.slice(1, -1);
  } catch {
    return undefined;
  }
}
