/**
 * Route patterns: which destinations a user may open through the tunnel.
 *
 * Grammar (case-insensitive; see docs/CONFIG.md):
 *
 * ```
 * route   = ["!"] ( "*" | [proto ":"] host [":" port] )    "!": a deny rule
 * proto   = "tcp" | "udp" | "*"                      (default: any)
 * host    = "*"                                       any host
 *         | name-glob                                 e.g. "*.example.com", "**.corp"
 *         | ipv4-glob                                 e.g. "10.0.0.*", "192.168.1.10"
 *         | ipv4 "/" len                              e.g. "10.0.0.0/8"
 *         | "[" ipv6-glob "]"                         e.g. "[::1]", "[fd00::*]"
 *         | "[" ipv6 "/" len "]"                      e.g. "[fd00::/8]"
 * port    = "*" | N | N "-" M                        (default: any)
 * ```
 *
 * In a name or IPv4 glob `*` matches within one dot-separated label and `**`
 * matches any run of labels, so `*.example.com` matches `a.example.com` but
 * not `a.b.example.com` or `example.com`, and `10.0.0.*` never matches a
 * host name such as `10.0.0.evil.com`.
 *
 * Rules are tried in order and the first that matches decides (allow, or
 * deny for a `!` rule); no match is a refusal. Name globs match the name the
 * client asked for; address rules (IPv4 and IPv6 literals, globs and CIDR
 * ranges, compared as 16-byte addresses, so `127.0.0.1` and
 * `::ffff:127.0.0.1` are one address) match the address actually dialled:
 * the literal asked for, or each address a name resolved to.
 *
 * An address in the server's `egress.block` list is reached only through
 * an explicit address rule ({@linkcode Route.explicit}); `*` and name globs
 * pass over it as if they did not match.
 *
 * @module
 */
import { canonicalIpv6, isHost } from "../wire/host_port.ts";
import {
  type Cidr,
  cidrContains,
  embeddedIpv4,
  formatIp,
  type IpBytes,
  isIpv4,
  parseCidr,
  parseIp,
} from "../wire/ip.ts";

/** A destination to check. IPv6 hosts come without brackets. */
export interface RouteTarget {
  /** The transport asked for. */
  proto: "tcp" | "udp";
  /** A host name or IP address. */
  host: string;
  /** The port, 1-65535. */
  port: number;
}

/** A parsed route pattern. */
export interface Route {
  /** The pattern as written. */
  pattern: string;
  /** A `!` rule: a match refuses. */
  deny: boolean;
  /** The transport it allows ("*": both). */
  proto: "tcp" | "udp" | "*";
  /** What kind of host it matches ("cidr": an address or range, IPv4 or IPv6). */
  hostKind: "any" | "name" | "ipv4" | "ipv6" | "cidr";
  /** Matches the allowed hosts (canonical form); for "cidr" see `cidr`. */
  host: RegExp;
  /** The range of a "cidr" rule (a literal address is a /32 or /128). */
  cidr?: Cidr;
  /**
   * True for an address rule that names addresses (not `*`, a name glob,
   * `0.0.0.0/0`, `[::/0]` or an all-wildcard glob): such a rule reaches
   * addresses in `egress.block`.
   */
  explicit: boolean;
  /** Lowest allowed port. */
  portMin: number;
  /** Highest allowed port. */
  portMax: number;
}

function globToRegExp(glob: string, single: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        re += ".*";
        i++;
      } else re += `${single}*`;
    } else re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "i");
}

function parsePort(text: string, pattern: string): [number, number] {
  if (text === "*") return [0, 65535];
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || lo > 65535 || hi > 65535 || lo > hi) {
    throw new TypeError(`Invalid route "${pattern}": port must be *, N or N-M within 0..65535`);
  }
  return [lo, hi];
}

/**
 * Parses one route pattern; throws `TypeError` with the pattern quoted when
 * it is not one.
 *
 * @example
 * ```ts
 * import { parseRoute } from "./routes.ts";
 * parseRoute("tcp:*.example.com:443").proto; // "tcp"
 * parseRoute("!10.0.0.0/8").deny; // true
 * ```
 */
export function parseRoute(pattern: string): Route {
  const bad = (why: string) => new TypeError(`Invalid route "${pattern}": ${why}`);
  let rest = pattern.trim();
  const deny = rest.startsWith("!");
  if (deny) rest = rest.slice(1).trim();
  if (rest === "") throw bad("empty pattern");
  let proto: Route["proto"] = "*";
  const pm = /^(tcp|udp|\*):(.+)$/i.exec(rest);
  if (pm && !rest.startsWith("[")) {
    const after = pm[2]!;
    const isProto = pm[1] !== "*" || after.startsWith("[") || after.includes(":") ||
      !/^(\*|\d+(-\d+)?)$/.test(after);
    if (isProto) {
      proto = pm[1]!.toLowerCase() as Route["proto"];
      rest = after;
    }
  }
  const base = { pattern, deny, proto };
  let hostText: string;
  let portText = "*";
  if (rest.startsWith("[")) {
    const end = rest.indexOf("]");
    if (end < 0) throw bad('missing "]" after IPv6 address');
    hostText = rest.slice(1, end);
    const tail = rest.slice(end + 1);
    if (tail !== "") {
      if (!tail.startsWith(":")) throw bad('expected ":PORT" after "]"');
      portText = tail.slice(1);
    }
    const [portMin, portMax] = parsePort(portText, pattern);
    const ports = { portMin, portMax };
    if (!/^[0-9a-f:.*/]+$/i.test(hostText) || !hostText.includes(":")) {
      throw bad("bracketed host must be an IPv6 address, range or glob");
    }
    if (!hostText.includes("*")) {
      if (canonicalIpv6(hostText.replace(/\/.*$/, "")) === undefined) {
        throw bad("not an IPv6 address");
      }
      return cidrRoute(base, hostText, ports, bad);
    }
    if (hostText.includes("/")) throw bad("a range is ADDRESS/LENGTH, without *");
    const explicit = /[0-9a-f]/i.test(hostText);
    const host = globToRegExp(hostText.toLowerCase(), "[0-9a-f:.]");
    return { ...base, hostKind: "ipv6", host, explicit, ...ports };
  }
  const parts = rest.split(":");
  if (parts.length > 2) throw bad('IPv6 addresses go in brackets, e.g. "[::1]:22"');
  hostText = parts[0]!.toLowerCase().replace(/\.$/, "");
  if (parts[1] !== undefined) portText = parts[1];
  const [portMin, portMax] = parsePort(portText, pattern);
  const ports = { portMin, portMax };
  if (hostText === "*" || hostText === "**") {
    return { ...base, hostKind: "any", host: /^/, explicit: false, ...ports };
  }
  if (/^[0-9.*/]+$/.test(hostText)) {
    if (hostText.includes("/") || !hostText.includes("*")) {
      if (hostText.includes("*")) throw bad("a range is ADDRESS/LENGTH, without *");
      if (parseIp(hostText.replace(/\/.*$/, "")) === undefined) {
        throw bad("an IPv4 address has four parts, each 0-255");
      }
      return cidrRoute(base, hostText, ports, bad);
    }
    const labels = hostText.split(".");
    const ok = hostText.includes("**") || (labels.length === 4 &&
      labels.every((l) => l === "*" || (/^\d{1,3}$/.test(l) && Number(l) <= 255)));
    if (!ok) throw bad("an IPv4 pattern has four parts, each 0-255 or *");
    const explicit = /\d/.test(hostText);
    return {
      ...base,
      hostKind: "ipv4",
      host: globToRegExp(hostText, "[0-9]"),
      explicit,
      ...ports,
    };
  }
  const sample = hostText.replace(/\*+/g, "x");
  if (!/^[a-z0-9_*.-]+$/.test(hostText) || !isHost(sample)) {
    throw bad("host must be *, a DNS name glob, an IPv4 glob or range, or [IPv6]");
  }
  return {
    ...base,
    hostKind: "name",
    host: globToRegExp(hostText, "[^.]"),
    explicit: false,
    ...ports,
  };
}

function cidrRoute(
  base: Pick<Route, "pattern" | "deny" | "proto">,
  text: string,
  ports: Pick<Route, "portMin" | "portMax">,
  bad: (why: string) => TypeError,
): Route {
  const cidr = parseCidr(text);
  if (cidr === undefined) {
    throw bad("a range is ADDRESS/LENGTH (IPv4 0-32, IPv6 0-128) with no bits set past LENGTH");
  }
  const explicit = cidr.bits > 0 && !(cidr.bits === 96 && isIpv4(cidr.base));
  return { ...base, hostKind: "cidr", host: /^$/, cidr, explicit, ...ports };
}

/**
 * What judges destinations: one {@linkcode RouteSet}, or several that must
 * all allow ({@linkcode allRoutes}).
 */
export interface RouteRules {
  /** Judges dialling `addr` for `target`; `blocked`: `addr` is in `egress.block`. */
  check(target: RouteTarget, addr: IpBytes, blocked: boolean): RouteVerdict;
  /** False when no address `target`'s name could resolve to would be allowed. */
  mayAllowName(target: RouteTarget): boolean;
}

/** How the rules judged one destination. */
export type RouteVerdict =
  /** A rule allows it. */
  | { verdict: "allow"; rule: string }
  /** A `!` rule refuses it. */
  | { verdict: "deny"; rule: string; layer?: string }
  /** The address is blocked and only non-explicit rules would allow it. */
  | { verdict: "blocked"; rule: string; layer?: string }
  /** No rule matches. */
  | { verdict: "unlisted"; layer?: string };

/**
 * Compiled routes: first match wins, over the name asked for and the
 * address dialled (see the module documentation).
 *
 * @example
 * ```ts
 * import { RouteSet } from "./routes.ts";
 * import { parseIp } from "../wire/ip.ts";
 * const routes = new RouteSet(["!10.1.2.3", "10.0.0.0/8:22", "*"]);
 * const to = (host: string) => ({ proto: "tcp" as const, host, port: 22 });
 * routes.check(to("10.1.2.4"), parseIp("10.1.2.4")!, true).verdict; // "allow"
 * routes.check(to("10.1.2.3"), parseIp("10.1.2.3")!, true).verdict; // "deny"
 * routes.check(to("db.corp"), parseIp("192.168.0.5")!, true).verdict; // "blocked"
 * ```
 */
export class RouteSet implements RouteRules {
  readonly #routes: Route[];

  /** Throws `TypeError` on a bad pattern. */
  constructor(patterns: readonly string[]) {
    this.#routes = patterns.map(parseRoute);
  }

  /**
   * Judges dialling `addr` for `target` (its host as the client asked:
   * a name, or the same address). `blocked`: `addr` is in `egress.block`.
   */
  check(target: RouteTarget, addr: IpBytes, blocked: boolean): RouteVerdict {
    const name = nameOf(target.host);
    let passed: string | undefined;
    for (const r of this.#routes) {
      if (!protoPort(r, target)) continue;
      let hit: boolean;
      switch (r.hostKind) {
        case "any":
          hit = true;
          break;
        case "name":
          hit = name !== undefined && r.host.test(name);
          break;
        case "ipv4":
          hit = isIpv4(addr) && r.host.test(formatIp(addr));
          break;
        case "ipv6":
          hit = !isIpv4(addr) && r.host.test(formatIp(addr));
          break;
        case "cidr":
          hit = cidrContains(r.cidr!, addr) ||
            (r.deny && embeddedIpv4(addr).some((a) => cidrContains(r.cidr!, a)));
          break;
      }
      if (!hit) continue;
      if (r.deny) return { verdict: "deny", rule: r.pattern };
      if (blocked && !r.explicit) {
        passed ??= r.pattern;
        continue;
      }
      return { verdict: "allow", rule: r.pattern };
    }
    return passed === undefined ? { verdict: "unlisted" } : { verdict: "blocked", rule: passed };
  }

  /**
   * Before resolving a name: false when no address it could resolve to
   * would be allowed (a deny or no rule decides on the name alone), so the
   * name is not looked up at all. An IP literal is judged by {@linkcode check}.
   */
  mayAllowName(target: RouteTarget): boolean {
    const name = nameOf(target.host);
    if (name === undefined) return true;
    for (const r of this.#routes) {
      if (!protoPort(r, target)) continue;
      if (r.hostKind === "any" || (r.hostKind === "name" && r.host.test(name))) return !r.deny;
      // An address rule: an allow may match an address the name resolves to; a deny may not.
      if (r.hostKind !== "name" && !r.deny) return true;
    }
    return false;
  }

  /**
   * The request as asked, before any lookup: an IP literal is judged as
   * the address it is (not blocked), a name by name rules and `*` (address
   * rules never match a name here). True when the first match allows.
   */
  allows(target: RouteTarget): boolean {
    const host = bare(target.host);
    const addr = parseIp(host);
    if (addr !== undefined) return this.check(target, addr, false).verdict === "allow";
    if (host.includes(":")) return false;
    const name = nameOf(host)!;
    for (const r of this.#routes) {
      if (!protoPort(r, target)) continue;
      if (r.hostKind === "any" || (r.hostKind === "name" && r.host.test(name))) return !r.deny;
    }
    return false;
  }
}

/**
 * Rules that allow a destination only when every one of `layers` allows it
 * (the user's routes, then a JWT's `routes` claim narrowing them for one
 * session). Each layer judges every address the same way, `egress.block`
 * included: a blocked address passes only when every layer names it
 * explicitly. The verdict is the first layer's that does not allow, its
 * `rule` prefixed with the layer's `name` when it has one.
 *
 * @example
 * ```ts
 * import { allRoutes, RouteSet } from "./routes.ts";
 * import { parseIp } from "../wire/ip.ts";
 * const rules = allRoutes(
 *   { rules: new RouteSet(["127.0.0.1:*"]) },
 *   { rules: new RouteSet(["*.example:443"]), name: "the JWT routes claim" },
 * );
 * const to = { proto: "tcp" as const, host: "www.example", port: 443 };
 * rules.check(to, parseIp("127.0.0.1")!, true).verdict; // "blocked": the claim names no address
 * ```
 */
export function allRoutes(...layers: { rules: RouteRules; name?: string }[]): RouteRules {
  return {
    check(target, addr, blocked) {
      let allowed: RouteVerdict = { verdict: "unlisted" };
      for (const { rules, name } of layers) {
        const v = rules.check(target, addr, blocked);
        if (v.verdict === "allow") {
          allowed = v;
          continue;
        }
        if (name === undefined) return v;
        return v.verdict === "unlisted"
          ? { verdict: "unlisted", layer: name }
          : { ...v, layer: name };
      }
      return allowed;
    },
    mayAllowName: (target) => layers.every(({ rules }) => rules.mayAllowName(target)),
  };
}

function protoPort(r: Route, t: RouteTarget): boolean {
  return (r.proto === "*" || r.proto === t.proto) && t.port >= r.portMin && t.port <= r.portMax;
}

function bare(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

/** The name asked for (lower case, no final dot), or undefined for an IP literal. */
function nameOf(host: string): string | undefined {
  const h = bare(host);
  if (h.includes(":") || parseIp(h) !== undefined) return undefined;
  return h.replace(/\.$/, "");
}

/**
 * Compiles patterns once into a matcher of requests as asked
 * ({@linkcode RouteSet.allows}); throws `TypeError` on a bad pattern.
 *
 * @example
 * ```ts
 * import { compileRoutes } from "./routes.ts";
 * const allowed = compileRoutes(["tcp:*.example.com:443"]);
 * allowed({ proto: "tcp", host: "www.example.com", port: 443 }); // true
 * ```
 */
export function compileRoutes(patterns: readonly string[]): (target: RouteTarget) => boolean {
  const set = new RouteSet(patterns);
  return (t) => set.allows(t);
}

const cache = new WeakMap<readonly string[], RouteSet>();

/**
 * The compiled {@linkcode RouteSet} of `patterns`, cached per (frozen)
 * array, so calling this per stream with `user.routes` is cheap.
 *
 * @example
 * ```ts
 * import { routeSet } from "./routes.ts";
 * routeSet(Object.freeze(["*"])).allows({ proto: "tcp", host: "a.example", port: 1 }); // true
 * ```
 */
export function routeSet(patterns: readonly string[]): RouteSet {
  let m = Object.isFrozen(patterns) ? cache.get(patterns) : undefined;
  if (m === undefined) {
    m = new RouteSet(patterns);
    if (Object.isFrozen(patterns)) cache.set(patterns, m);
  }
  return m;
}

/**
 * True when the first pattern that matches `target` as asked allows it
 * ({@linkcode RouteSet.allows}; no lookup, no block list).
 *
 * @example
 * ```ts
 * import { matchRoute } from "./routes.ts";
 * matchRoute(["[::1]:22"], { proto: "tcp", host: "0:0::1", port: 22 }); // true
 * matchRoute(["!10.0.0.1", "10.0.0.0/8"], { proto: "tcp", host: "10.0.0.1", port: 22 }); // false
 * ```
 */
export function matchRoute(patterns: readonly string[], target: RouteTarget): boolean {
  return routeSet(patterns).allows(target);
}
