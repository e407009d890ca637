/**
 * `egress.block` in server.yml: the addresses no tunnel reaches unless the
 * user's routes name them explicitly (see lib/config/routes.ts and
 * docs/CONFIG.md). Pure: the server's own addresses (`self`) are handed in.
 *
 * @module
 */
import {
  type Cidr,
  cidrContains,
  embeddedIpv4,
  formatIp,
  type IpBytes,
  parseCidr,
} from "../wire/ip.ts";

/** The entry that stands for the server's own listening addresses. */
export const SELF = "self";

/**
 * The default `egress.block`: everything that is not the public internet,
 * and the server itself. IPv4-mapped, -compatible, -translated, NAT64, 6to4
 * and Teredo forms of the IPv4 ranges are covered by the check itself
 * ({@linkcode EgressBlock.blocks}).
 */
export const DEFAULT_EGRESS_BLOCK: readonly string[] = Object.freeze([
  // "This network" and the unspecified address (0.0.0.0 reaches this host on Linux).
  "0.0.0.0/8",
  // RFC 1918 private networks.
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  // Carrier-grade NAT (RFC 6598), including Alibaba Cloud's metadata 100.100.100.200.
  "100.64.0.0/10",
  // Loopback.
  "127.0.0.0/8",
  // Link-local, including the metadata services of AWS, GCP, Azure, Oracle (169.254.169.254).
  "169.254.0.0/16",
  // IETF protocol assignments (RFC 6890), e.g. 192.0.0.192.
  "192.0.0.0/24",
  // Multicast, reserved and limited broadcast.
  "224.0.0.0/4",
  "240.0.0.0/4",
  // IPv6 unspecified and loopback.
  "::/128",
  "::1/128",
  // Unique-local (RFC 4193), including AWS's IPv6 metadata fd00:ec2::254.
  "fc00::/7",
  // Link-local.
  "fe80::/10",
  // Site-local (deprecated, still routed by some stacks).
  "fec0::/10",
  // Multicast.
  "ff00::/8",
  SELF,
]);

/**
 * Why `text` is not a valid `egress.block` entry, or undefined when it is:
 * an address, `ADDR/LEN`, `[IPv6]` or `[IPv6/LEN]`, or `self`.
 *
 * @example
 * ```ts
 * import { egressEntryError } from "./egress.ts";
 * egressEntryError("10.0.0.0/8"); // undefined
 * egressEntryError("10.0.0.1/8"); // "bits past the prefix length are set"
 * ```
 */
export function egressEntryError(text: string): string | undefined {
  if (text === SELF) return undefined;
  const inner = /^\[(.*)\]$/.exec(text)?.[1] ?? text;
  if (parseCidr(inner) !== undefined) return undefined;
  const slash = inner.indexOf("/");
  if (slash >= 0 && parseCidr(inner.slice(0, slash)) !== undefined) {
    return /^\d{1,3}$/.test(inner.slice(slash + 1)) &&
        Number(inner.slice(slash + 1)) <= (inner.includes(":") ? 128 : 32)
      ? "bits past the prefix length are set"
      : "the prefix length is out of range";
  }
  return `expected an address, ADDR/LEN or "${SELF}"`;
}

/**
 * The compiled block list.
 *
 * @example
 * ```ts
 * import { EgressBlock } from "./egress.ts";
 * import { parseIp } from "../wire/ip.ts";
 * const block = new EgressBlock(["127.0.0.0/8", "self"], [parseIp("192.0.2.7")!]);
 * block.blocks(parseIp("::ffff:127.0.0.1")!); // "127.0.0.0/8"
 * block.blocks(parseIp("192.0.2.7")!); // "self"
 * block.blocks(parseIp("192.0.2.8")!); // undefined
 * ```
 */
export class EgressBlock {
  readonly #ranges: { cidr: Cidr; text: string }[] = [];
  readonly #self: IpBytes[];
  readonly #hasSelf: boolean;

  /**
   * `entries` as {@linkcode egressEntryError} accepts them (throws
   * `TypeError` otherwise); `self` are the server's own addresses, used
   * when the list names `self`.
   */
  constructor(entries: readonly string[], self: readonly IpBytes[] = []) {
    for (const e of entries) {
      if (e === SELF) continue;
      const inner = /^\[(.*)\]$/.exec(e)?.[1] ?? e;
      const cidr = parseCidr(inner);
      if (cidr === undefined) {
        throw new TypeError(`Invalid egress.block entry "${e}": ${egressEntryError(e)}`);
      }
      this.#ranges.push({ cidr, text: inner });
    }
    this.#hasSelf = entries.includes(SELF);
    this.#self = this.#hasSelf ? [...self] : [];
  }

  /** True when the list names `self`. */
  get hasSelf(): boolean {
    return this.#hasSelf;
  }

  /**
   * The entry that blocks `addr` (checked as given and in every IPv4 form
   * it carries, see `embeddedIpv4` in lib/wire/ip.ts), or undefined.
   */
  blocks(addr: IpBytes): string | undefined {
    const own = this.#match(addr);
    if (own !== undefined) return own;
    for (const inner of embeddedIpv4(addr)) {
      const hit = this.#match(inner);
      if (hit !== undefined) return `${hit} (as ${formatIp(inner)})`;
    }
    return undefined;
  }

  #match(addr: IpBytes): string | undefined {
    for (const r of this.#ranges) if (cidrContains(r.cidr, addr)) return r.text;
    for (const s of this.#self) if (s.every((b, i) => b === addr[i])) return SELF;
    return undefined;
  }
}
