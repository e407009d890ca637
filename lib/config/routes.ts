/**
 * Route patterns: which destinations a user may open through the tunnel.
 *
 * Grammar (case-insensitive; see docs/CONFIG.md):
 *
 * ```
 * route   = "*" | [proto ":"] host [":" port]
 * proto   = "tcp" | "udp" | "*"                      (default: any)
 * host    = "*"                                       any host
 *         | name-glob                                 e.g. "*.example.com", "**.corp"
 *         | ipv4-glob                                 e.g. "10.0.0.*", "192.168.1.10"
 *         | "[" ipv6-glob "]"                         e.g. "[::1]", "[fd00::*]"
 * port    = "*" | N | N "-" M                        (default: any)
 * ```
 *
 * In a name or IPv4 glob `*` matches within one dot-separated label and `**`
 * matches any run of labels, so `*.example.com` matches `a.example.com` but
 * not `a.b.example.com` or `example.com`, and `10.0.0.*` never matches a
 * host name such as `10.0.0.evil.com`. Name globs match only names, IPv4
 * globs only IPv4 literals, IPv6 globs only IPv6 literals (compared in
 * canonical form). Matching is on the destination as the client asked for
 * it, before any DNS lookup.
 *
 * @module
 */
import { canonicalIpv6, isHost } from "../wire/host_port.ts";

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
  /** The transport it allows ("*": both). */
  proto: "tcp" | "udp" | "*";
  /** What kind of host it matches. */
  hostKind: "any" | "name" | "ipv4" | "ipv6";
  /** Matches the allowed hosts (canonical form). */
  host: RegExp;
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
 * ```
 */
export function parseRoute(pattern: string): Route {
  const bad = (why: string) => new TypeError(`Invalid route "${pattern}": ${why}`);
  let rest = pattern.trim();
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
    if (!/^[0-9a-f:.*]+$/i.test(hostText) || !hostText.includes(":")) {
      throw bad("bracketed host must be an IPv6 address or glob");
    }
    const [portMin, portMax] = parsePort(portText, pattern);
    const literal = hostText.includes("*") ? undefined : canonicalIpv6(hostText);
    if (!hostText.includes("*") && literal === undefined) throw bad("not an IPv6 address");
    const host = literal !== undefined
      ? new RegExp(`^${literal.replace(/\./g, "\\.")}$`, "i")
      : globToRegExp(hostText.toLowerCase(), "[0-9a-f:.]");
    return { proto, hostKind: "ipv6", host, portMin, portMax };
  }
  const parts = rest.split(":");
  if (parts.length > 2) throw bad('IPv6 addresses go in brackets, e.g. "[::1]:22"');
  hostText = parts[0]!.toLowerCase().replace(/\.$/, "");
  if (parts[1] !== undefined) portText = parts[1];
  const [portMin, portMax] = parsePort(portText, pattern);
  if (hostText === "*" || hostText === "**") {
    return { proto, hostKind: "any", host: /^/, portMin, portMax };
  }
  if (/^[0-9.*]+$/.test(hostText)) {
    const labels = hostText.split(".");
    const ok = hostText.includes("**") || (labels.length === 4 &&
      labels.every((l) => l === "*" || (/^\d{1,3}$/.test(l) && Number(l) <= 255)));
    if (!ok) throw bad("an IPv4 pattern has four parts, each 0-255 or *");
    return { proto, hostKind: "ipv4", host: globToRegExp(hostText, "[0-9]"), portMin, portMax };
  }
  const sample = hostText.replace(/\*+/g, "x");
  if (!/^[a-z0-9_*.-]+$/.test(hostText) || !isHost(sample)) {
    throw bad("host must be *, a DNS name glob, an IPv4 glob or [IPv6]");
  }
  return { proto, hostKind: "name", host: globToRegExp(hostText, "[^.]"), portMin, portMax };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function matchOne(
  r: Route,
  proto: string,
  kind: "name" | "ipv4" | "ipv6",
  host: string,
  port: number,
) {
  if (r.proto !== "*" && r.proto !== proto) return false;
  if (port < r.portMin || port > r.portMax) return false;
  if (r.hostKind === "any") return true;
  return r.hostKind === kind && r.host.test(host);
}

/**
 * Compiles patterns once into a matcher; throws `TypeError` on a bad pattern.
 *
 * @example
 * ```ts
 * import { compileRoutes } from "./routes.ts";
 * const allowed = compileRoutes(["tcp:*.example.com:443"]);
 * allowed({ proto: "tcp", host: "www.example.com", port: 443 }); // true
 * ```
 */
export function compileRoutes(patterns: readonly string[]): (target: RouteTarget) => boolean {
  const routes = patterns.map(parseRoute);
  return (t) => {
    let host = t.host.toLowerCase();
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    let kind: "name" | "ipv4" | "ipv6";
    if (host.includes(":")) {
      const c = canonicalIpv6(host);
      if (c === undefined) return false;
      host = c;
      kind = "ipv6";
    } else {
      host = host.replace(/\.$/, "");
      kind = IPV4.test(host) ? "ipv4" : "name";
    }
    return routes.some((r) => matchOne(r, t.proto, kind, host, t.port));
  };
}

const cache = new WeakMap<readonly string[], (target: RouteTarget) => boolean>();

/**
 * True when any pattern allows `target`. Compiled matchers are cached per
 * (frozen) array, so calling this per stream with `user.routes` is cheap.
 *
 * @example
 * ```ts
 * import { matchRoute } from "./routes.ts";
 * matchRoute(["[::1]:22"], { proto: "tcp", host: "0:0::1", port: 22 }); // true
 * ```
 */
export function matchRoute(patterns: readonly string[], target: RouteTarget): boolean {
  let m = Object.isFrozen(patterns) ? cache.get(patterns) : undefined;
  if (m === undefined) {
    m = compileRoutes(patterns);
    if (Object.isFrozen(patterns)) cache.set(patterns, m);
  }
  return m(target);
}
