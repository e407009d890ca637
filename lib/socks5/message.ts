/**
 * SOCKS5 request and reply messages (RFC 1928 sections 4–6): strict
 * encoders and decoders over whole messages. Decoders throw `Socks5Error`
 * carrying the reply code a server should answer with.
 *
 * @module
 */
import {
  type AddressType,
  classifyHost,
  formatIpv4,
  formatIpv6,
  isValidDomain,
  parseIpv4,
  parseIpv6,
} from "./address.ts";
import { Reply, Socks5Error } from "./reply.ts";

/** Protocol version byte (RFC 1928 section 3). */
export const SOCKS_VERSION = 0x05;
/** ATYP values (RFC 1928 section 5). */
export const ATYP_IPV4 = 0x01;
/** ATYP: a domain name. */
export const ATYP_DOMAIN = 0x03;
/** ATYP: an IPv6 address. */
export const ATYP_IPV6 = 0x04;
/** CMD values (RFC 1928 section 4). */
export const CMD_CONNECT = 0x01;
/** CMD: BIND. */
export const CMD_BIND = 0x02;
/** CMD: UDP ASSOCIATE. */
export const CMD_UDP_ASSOCIATE = 0x03;
/**
 * What a domain-type address (ATYP 3) may hold: a valid host name, or an IP
 * literal in canonical form. Clients such as curl `--socks5-hostname` and
 * Chromium send `127.0.0.1` as a domain; forms a resolver would reinterpret
 * (`127.1`, `0x7f.1`, `2130706433`) stay refused.
 */
function isDomainHost(host: string): boolean {
  if (isValidDomain(host)) return true;
  const v4 = parseIpv4(host);
  if (v4 !== null) return formatIpv4(v4) === host;
  const v6 = parseIpv6(host);
  return v6 !== null && formatIpv6(v6) === host.toLowerCase();
}

/** Largest request or reply: 4 header bytes, 1 + 255 domain bytes, 2 port bytes. */
export const MAX_MESSAGE_LENGTH: number = 4 + 1 + 255 + 2;

/** A SOCKS5 command. */
export type Socks5Command = "connect" | "bind" | "udp_associate";

/** A decoded SOCKS5 request (RFC 1928 section 4). */
export interface Socks5Request {
  /** CMD. */
  command: Socks5Command;
  /** ATYP. */
  addressType: AddressType;
  /** Dotted IPv4, canonical IPv6 (RFC 5952) without brackets, or a domain as sent. */
  host: string;
  /** DST.PORT. */
  port: number;
}

/** A bound address in a reply (RFC 1928 section 6). */
export interface BindAddress {
  /** BND.ADDR, as text. */
  host: string;
  /** BND.PORT. */
  port: number;
}

/** A decoded SOCKS5 reply. */
export interface Socks5Reply {
  /** REP: the reply code (`Reply`). */
  reply: number;
  /** BND.ADDR and BND.PORT. */
  bind: BindAddress;
}

const COMMAND_CODES: Record<Socks5Command, number> = {
  connect: CMD_CONNECT,
  bind: CMD_BIND,
  udp_associate: CMD_UDP_ASSOCIATE,
};
const COMMANDS: readonly (Socks5Command | undefined)[] = [
  undefined,
  "connect",
  "bind",
  "udp_associate",
];

function hex(b: number): string {
  return `0x${b.toString(16).padStart(2, "0")}`;
}

/**
 * Total length of a request or reply with address type `atyp` (and, for a
 * domain, the domain length byte), or null if ATYP is unknown.
 *
 * @example
 * ```ts
 * import { ATYP_DOMAIN, messageLength } from "./message.ts";
 * messageLength(ATYP_DOMAIN, 11); // 18
 * ```
 */
export function messageLength(atyp: number, domainLength: number): number | null {
  switch (atyp) {
    case ATYP_IPV4:
      return 4 + 4 + 2;
    case ATYP_IPV6:
      return 4 + 16 + 2;
    case ATYP_DOMAIN:
      return 4 + 1 + domainLength + 2;
    default:
      return null;
  }
}

function encodeAddress(
  what: string,
  addressType: AddressType,
  host: string,
  port: number,
  head: [number, number],
): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot encode SOCKS5 ${what}: port ${port} is not in 0..65535`);
  }
  let addr: Uint8Array | null;
  let atyp: number;
  if (addressType === "ipv4") {
    addr = parseIpv4(host);
    atyp = ATYP_IPV4;
  } else if (addressType === "ipv6") {
    addr = parseIpv6(host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host);
    atyp = ATYP_IPV6;
  } else {
    addr = isDomainHost(host) ? Uint8Array.from(host, (c) => c.charCodeAt(0)) : null;
    atyp = ATYP_DOMAIN;
  }
  if (addr === null) {
    throw new TypeError(
      `Cannot encode SOCKS5 ${what}: "${host}" is not a valid ${addressType} host`,
    );
  }
  const prefix = atyp === ATYP_DOMAIN ? 1 : 0;
  const out = new Uint8Array(4 + prefix + addr.length + 2);
  out[0] = SOCKS_VERSION;
  out[1] = head[0];
  out[2] = head[1];
  out[3] = atyp;
  if (prefix) out[4] = addr.length;
  out.set(addr, 4 + prefix);
  out[out.length - 2] = port >> 8;
  out[out.length - 1] = port & 0xff;
  return out;
}

interface DecodedAddress {
  addressType: AddressType;
  host: string;
  port: number;
}

/** Decodes ATYP..PORT of a whole message; `fail` builds the error to throw. */
function decodeAddress(
  raw: Uint8Array,
  fail: (reply: number, detail: string) => Socks5Error,
): DecodedAddress {
  const atyp = raw[3]!;
  if (atyp === ATYP_DOMAIN && raw.length < 5) throw fail(Reply.GENERAL_FAILURE, "truncated");
  const domainLength = atyp === ATYP_DOMAIN ? raw[4]! : 0;
  const need = messageLength(atyp, domainLength);
  if (need === null) {
    throw fail(Reply.ADDRESS_TYPE_NOT_SUPPORTED, `address type ${hex(atyp)} is unknown`);
  }
  if (raw.length < need) {
    throw fail(Reply.GENERAL_FAILURE, `truncated at ${raw.length} of ${need} bytes`);
  }
  if (raw.length > need) throw fail(Reply.GENERAL_FAILURE, `${raw.length - need} trailing bytes`);
  const port = (raw[need - 2]! << 8) | raw[need - 1]!;
  if (atyp === ATYP_IPV4) {
    return { addressType: "ipv4", host: formatIpv4(raw.subarray(4, 8)), port };
  }
  if (atyp === ATYP_IPV6) {
    return { addressType: "ipv6", host: formatIpv6(raw.subarray(4, 20)), port };
  }
  if (domainLength === 0) throw fail(Reply.GENERAL_FAILURE, "domain length is 0");
  const host = String.fromCharCode(...raw.subarray(5, 5 + domainLength));
  if (!isDomainHost(host)) {
    throw fail(Reply.GENERAL_FAILURE, `domain ${JSON.stringify(host)} is not a valid host name`);
  }
  return { addressType: "domain", host, port };
}

/**
 * Encodes a request VER CMD RSV ATYP DST.ADDR DST.PORT (RFC 1928 section 4).
 * Throws `TypeError` for a host that does not match its address type and
 * `RangeError` for a port outside 0..65535 or a CONNECT to port 0.
 *
 * @example
 * ```ts
 * import { encodeRequest } from "./message.ts";
 * encodeRequest({ command: "connect", addressType: "domain", host: "a.io", port: 443 });
 * // Uint8Array [5, 1, 0, 3, 4, 97, 46, 105, 111, 1, 187]
 * ```
 */
export function encodeRequest(r: Socks5Request): Uint8Array {
  const cmd = COMMAND_CODES[r.command];
  if (cmd === undefined) {
    throw new TypeError(`Cannot encode SOCKS5 request: unknown command "${r.command}"`);
  }
  if (r.command === "connect" && r.port === 0) {
    throw new RangeError("Cannot encode SOCKS5 request: CONNECT to port 0");
  }
  return encodeAddress("request", r.addressType, r.host, r.port, [cmd, 0]);
}

/**
 * Decodes exactly one request. Strict: VER must be 5 and RSV 0, the length
 * must match ATYP exactly (trailing bytes are an error), domains are
 * 1..255 bytes of `[A-Za-z0-9._-]` not ending in a numeric label, and
 * CONNECT to port 0 is refused (BIND and UDP ASSOCIATE may use port 0).
 * Throws `Socks5Error` with reply 7 for an unknown command, 8 for an
 * unknown address type, and 1 for anything else malformed.
 *
 * @example
 * ```ts
 * import { decodeRequest } from "./message.ts";
 * decodeRequest(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
 * // { command: "connect", addressType: "ipv4", host: "127.0.0.1", port: 80 }
 * ```
 */
export function decodeRequest(raw: Uint8Array): Socks5Request {
  const fail = (reply: number, detail: string) =>
    new Socks5Error(reply, `Cannot decode SOCKS5 request: ${detail}`);
  if (raw.length < 4) throw fail(Reply.GENERAL_FAILURE, `truncated at ${raw.length} bytes`);
  if (raw[0] !== SOCKS_VERSION) throw fail(Reply.GENERAL_FAILURE, `version ${raw[0]}, expected 5`);
  const command = COMMANDS[raw[1]!];
  if (command === undefined) {
    throw fail(Reply.COMMAND_NOT_SUPPORTED, `command ${hex(raw[1]!)} is unknown`);
  }
  if (raw[2] !== 0) {
    throw fail(Reply.GENERAL_FAILURE, `reserved byte is ${hex(raw[2]!)}, expected 0x00`);
  }
  const a = decodeAddress(raw, fail);
  if (command === "connect" && a.port === 0) throw fail(Reply.GENERAL_FAILURE, "CONNECT to port 0");
  return { command, addressType: a.addressType, host: a.host, port: a.port };
}

const UNSPECIFIED_BIND: BindAddress = { host: "0.0.0.0", port: 0 };

/**
 * Encodes a reply VER REP RSV ATYP BND.ADDR BND.PORT (RFC 1928 section 6).
 * The bound address defaults to 0.0.0.0:0; its type follows its text.
 *
 * @example
 * ```ts
 * import { encodeReply } from "./message.ts";
 * import { Reply } from "./reply.ts";
 * encodeReply(Reply.CONNECTION_REFUSED); // Uint8Array [5, 5, 0, 1, 0, 0, 0, 0, 0, 0]
 * ```
 */
export function encodeReply(reply: number, bind: BindAddress = UNSPECIFIED_BIND): Uint8Array {
  if (!Number.isInteger(reply) || reply < 0 || reply > 255) {
    throw new RangeError(`Cannot encode SOCKS5 reply: code ${reply} is not a byte`);
  }
  const c = classifyHost(bind.host);
  if (c === null) {
    throw new TypeError(`Cannot encode SOCKS5 reply: "${bind.host}" is not a valid host`);
  }
  return encodeAddress("reply", c.addressType, c.host, bind.port, [reply, 0]);
}

/**
 * Decodes exactly one reply. Strict like {@linkcode decodeRequest}; a
 * reply code above 8 (unassigned) is refused. Throws `Socks5Error` with
 * reply 1 (what a relaying client should tell its application).
 *
 * @example
 * ```ts
 * import { decodeReply } from "./message.ts";
 * decodeReply(new Uint8Array([5, 0, 0, 1, 10, 0, 0, 1, 4, 56]));
 * // { reply: 0, bind: { host: "10.0.0.1", port: 1080 } }
 * ```
 */
export function decodeReply(raw: Uint8Array): Socks5Reply {
  const fail = (_reply: number, detail: string) =>
    new Socks5Error(Reply.GENERAL_FAILURE, `Cannot decode SOCKS5 reply: ${detail}`);
  if (raw.length < 4) throw fail(Reply.GENERAL_FAILURE, `truncated at ${raw.length} bytes`);
  if (raw[0] !== SOCKS_VERSION) throw fail(Reply.GENERAL_FAILURE, `version ${raw[0]}, expected 5`);
  if (raw[1]! > Reply.ADDRESS_TYPE_NOT_SUPPORTED) {
    throw fail(Reply.GENERAL_FAILURE, `reply code ${hex(raw[1]!)} is unassigned`);
  }
  if (raw[2] !== 0) {
    throw fail(Reply.GENERAL_FAILURE, `reserved byte is ${hex(raw[2]!)}, expected 0x00`);
  }
  const a = decodeAddress(raw, fail);
  return { reply: raw[1]!, bind: { host: a.host, port: a.port } };
}
