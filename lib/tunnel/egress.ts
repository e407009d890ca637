/**
 * The server's egress: resolve a stream's target, judge every address
 * under the user's routes and `egress.block` (lib/config/routes.ts,
 * lib/config/egress.ts), and dial only the addresses allowed, in the
 * resolver's order, each attempt given a head start of `ATTEMPT_DELAY_MS`
 * before the next begins (RFC 8305), all within the connect deadline. The
 * address dialled is the address checked (no second lookup, so a name
 * cannot re-bind between check and connect); a name whose every address is
 * refused is never dialled.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import {
  type EgressBlock,
  type RouteRules,
  routeSet,
  type RouteTarget,
  type RouteVerdict,
  SELF,
} from "../config/mod.ts";
import { describeError } from "../observe/mod.ts";
import { formatHostPort, type HostPort } from "../wire/host_port.ts";
import { formatIp, type IpBytes, isIpv4, parseIp } from "../wire/ip.ts";

/** How long a connection attempt runs before the next address is tried too (RFC 8305 section 5). */
export const ATTEMPT_DELAY_MS = 250;

/** Resolves a name to its addresses (text), in the order to try them. */
export type Resolve = (name: string) => Promise<string[]>;

/**
 * The system resolver (getaddrinfo: /etc/hosts, then DNS), addresses in the
 * order the system sorts them.
 */
export const systemResolve: Resolve = async (name) => {
  const found = await lookup(name, { all: true, verbatim: true });
  return found.map((a) => a.address);
};

/**
 * A resolver asking the DNS server at `server` for A and AAAA records
 * (`egress.resolver`), IPv6 first when both answer.
 *
 * @example
 * ```ts ignore
 * const resolve = dnsResolve({ host: "127.0.0.1", port: 5353 });
 * await resolve("rebind.test"); // ["127.0.0.1"]
 * ```
 */
export function dnsResolve(server: HostPort): Resolve {
  const options = { nameServer: { ipAddr: server.host, port: server.port } };
  return async (name) => {
    const [v6, v4] = await Promise.allSettled([
      Deno.resolveDns(name, "AAAA", options),
      Deno.resolveDns(name, "A", options),
    ]);
    const out = [
      ...(v6.status === "fulfilled" ? v6.value : []),
      ...(v4.status === "fulfilled" ? v4.value : []),
    ];
    if (out.length === 0) {
      const e = v4.status === "rejected" ? v4.reason : undefined;
      throw new Deno.errors.NotFound(`no address${e === undefined ? "" : `: ${describeError(e)}`}`);
    }
    return out;
  };
}

/**
 * The rules a destination must pass: route patterns (a user's `routes`),
 * or compiled rules, e.g. the user's routes narrowed by a JWT's `routes`
 * claim (`allRoutes`, lib/config/routes.ts).
 */
export type EgressRoutes = readonly string[] | RouteRules;

function rulesOf(routes: EgressRoutes): RouteRules {
  return Array.isArray(routes) ? routeSet(routes as readonly string[]) : routes as RouteRules;
}

/** " of the JWT routes claim" when a narrowing layer decided, else "". */
function layerOf(v: RouteVerdict): string {
  return "layer" in v && v.layer !== undefined ? ` of ${v.layer}` : "";
}

/** Dials one address with the time left. */
export type ConnectAddress = (
  addr: string,
  port: number,
  timeoutMs: number,
) => Promise<Deno.TcpConn>;

/** Options for {@linkcode Egress}. */
export interface EgressOptions {
  /** `egress.block` with the server's own addresses. */
  block: EgressBlock;
  /** Resolves target names (default {@linkcode systemResolve}). */
  resolve?: Resolve;
  /** Dials one resolved address. */
  connect: ConnectAddress;
  /**
   * Whether an address is one of this machine's own, for a server that
   * listens on a wildcard address (every address of the machine is then a
   * listening address, `self`); see {@linkcode LocalAddresses}. Asked only
   * when `block` names `self` and no other entry blocks the address.
   */
  isLocal?: (addr: IpBytes) => boolean;
}

/** A destination the rules refuse. */
export interface EgressRefusal {
  /** Refused by the routes, or by `egress.block`; nothing was dialled (or a `self` connection was closed). */
  refused: "route" | "egress";
  /** For the log: what was refused and by which rule or block entry. */
  reason: string;
}

/** What {@linkcode Egress.dial} decided. */
export type EgressResult =
  | {
    /** Connected. */
    conn: Deno.TcpConn;
    /** The address dialled. */
    addr: string;
  }
  | EgressRefusal;

/** What {@linkcode Egress.judge} decided: the allowed addresses (at least one), or a refusal. */
export type EgressJudgement = { allowed: IpBytes[] } | EgressRefusal;

/**
 * Resolves, judges and dials targets for the server's streams.
 *
 * @example
 * ```ts ignore
 * const egress = new Egress({ block: new EgressBlock(DEFAULT_EGRESS_BLOCK), connect });
 * const r = await egress.dial(user.routes, { proto: "tcp", host: "example.com", port: 443 }, 10_000);
 * if ("refused" in r) console.log(r.reason);
 * ```
 */
export class Egress {
  readonly #block: EgressBlock;
  readonly #resolve: Resolve;
  readonly #connect: ConnectAddress;
  readonly #isLocal: ((addr: IpBytes) => boolean) | undefined;

  constructor(options: EgressOptions) {
    this.#block = options.block;
    this.#resolve = options.resolve ?? systemResolve;
    this.#connect = options.connect;
    this.#isLocal = options.block.hasSelf ? options.isLocal : undefined;
  }

  /** The `egress.block` entry that blocks `addr` (`self` for any address of a wildcard server). */
  #blocks(addr: IpBytes): string | undefined {
    return this.#block.blocks(addr) ?? (this.#isLocal?.(addr) ? SELF : undefined);
  }

  /**
   * Whether `routes` and `egress.block` let `target` reach `addr` (an IP
   * address text), with no lookup. Without `addr`, an address `target.host`
   * is judged as itself, and a name by whether any address could be allowed
   * (check again with the address it resolves to).
   */
  allows(routes: EgressRoutes, target: RouteTarget, addr?: string): boolean {
    const host = target.host.replace(/^\[(.*)\]$/, "$1");
    const ip = parseIp(addr ?? host);
    if (ip === undefined) {
      return addr === undefined && this.nameRefusal(routes, target) === undefined;
    }
    return "allowed" in this.judge(routes, target, [ip]);
  }

  /**
   * Before a name is looked up: the refusal when no address it could
   * resolve to may be allowed (a deny or no rule decides on the name alone,
   * so it is not looked up at all); undefined to go on.
   */
  nameRefusal(routes: EgressRoutes, target: RouteTarget): EgressRefusal | undefined {
    if (rulesOf(routes).mayAllowName(target)) return undefined;
    const wanted = formatHostPort(target.host, target.port);
    return { refused: "route", reason: `route ${target.proto}:${wanted} not allowed` };
  }

  /**
   * Judges every one of `addrs` for `target` (its host as asked: a name
   * and what it resolved to, or an address and `[that address]`) under
   * `routes` and `egress.block`: the allowed ones in the order given, or,
   * when none is, the refusal with what refused each.
   */
  judge(routes: EgressRoutes, target: RouteTarget, addrs: readonly IpBytes[]): EgressJudgement {
    const rules = rulesOf(routes);
    const allowed: IpBytes[] = [];
    const why: string[] = [];
    let blocked = false;
    for (const a of addrs) {
      const entry = this.#blocks(a);
      const v = rules.check(target, a, entry !== undefined);
      const text = formatIp(a);
      if (v.verdict === "allow") allowed.push(a);
      else if (v.verdict === "deny") why.push(`${text} denied by route "${v.rule}"${layerOf(v)}`);
      else if (v.verdict === "unlisted") why.push(`${text} matches no route${layerOf(v)}`);
      else {
        blocked = true;
        why.push(`${text} is in egress.block (${entry}) and no route${layerOf(v)} names it`);
      }
    }
    if (allowed.length > 0) return { allowed };
    // "route tcp:10.0.0.1:80 not allowed", with what decided it when that says more.
    const wanted = formatHostPort(target.host, target.port);
    const host = target.host.replace(/^\[(.*)\]$/, "$1");
    const literal = parseIp(host);
    const head = blocked
      ? `egress ${target.proto}:${wanted} refused`
      : `route ${target.proto}:${wanted} not allowed`;
    const plain = literal !== undefined && why[0] === `${formatIp(literal)} matches no route`;
    const resolved = literal === undefined
      ? `${host} resolved to ${addrs.map(formatIp).join(", ")}; `
      : "";
    return {
      refused: blocked ? "egress" : "route",
      reason: plain ? head : `${head}: ${resolved}${why.join("; ")}`,
    };
  }

  /**
   * Dials `target` for a user with `routes` within `timeoutMs` (lookup
   * included). Throws what the lookup or the last connect threw when no
   * allowed address could be reached.
   */
  async dial(
    routes: EgressRoutes,
    target: RouteTarget,
    timeoutMs: number,
  ): Promise<EgressResult> {
    const wanted = formatHostPort(target.host, target.port);
    const host = target.host.replace(/^\[(.*)\]$/, "$1");
    const deadline = Date.now() + timeoutMs;
    let addrs: IpBytes[];
    const literal = parseIp(host);
    if (literal !== undefined) {
      addrs = [literal];
    } else {
      const refusal = this.nameRefusal(routes, target);
      if (refusal !== undefined) return refusal;
      addrs = await this.lookup(host, timeoutMs);
    }
    const judged = this.judge(routes, target, addrs);
    if ("refused" in judged) return judged;
    const { conn, addr } = await this.#connectAny(judged.allowed, target.port, deadline, wanted);
    const text = formatIp(addr);
    if (this.#isSelf(conn) && rulesOf(routes).check(target, addr, true).verdict !== "allow") {
      conn.close();
      return {
        refused: "egress",
        reason: `egress ${target.proto}:${wanted} refused: ${text} is this server's own ` +
          `address (egress.block: self) and no route names it`,
      };
    }
    return { conn, addr: text };
  }

  /**
   * Connects to the first of `addrs` that answers (RFC 8305 style): the
   * next attempt starts when the one before fails or after
   * {@linkcode ATTEMPT_DELAY_MS}, whichever comes first; the first
   * connection wins and any later one is closed. Rejects with the last
   * error when every attempt failed.
   */
  #connectAny(
    addrs: IpBytes[],
    port: number,
    deadline: number,
    wanted: string,
  ): Promise<{ conn: Deno.TcpConn; addr: IpBytes }> {
    return new Promise((resolve, reject) => {
      let next = 0;
      let pending = 0;
      let done = false;
      let last: unknown;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const fail = () => {
        done = true;
        reject(last ?? new Deno.errors.TimedOut(`Timed out connecting to ${wanted}`));
      };
      const start = () => {
        clearTimeout(timer);
        if (done || next >= addrs.length) return;
        const left = deadline - Date.now();
        if (left <= 0) {
          if (pending === 0) fail();
          return;
        }
        const addr = addrs[next++]!;
        pending++;
        this.#connect(formatIp(addr), port, left).then((conn) => {
          pending--;
          if (done) return conn.close();
          done = true;
          clearTimeout(timer);
          resolve({ conn, addr });
        }, (e) => {
          pending--;
          last = e;
          if (done) return;
          if (next < addrs.length) start();
          else if (pending === 0) fail();
        });
        if (next < addrs.length) timer = setTimeout(start, ATTEMPT_DELAY_MS);
      };
      start();
    });
  }

  /** A connection from this machine to itself: its local and remote addresses are one. */
  #isSelf(conn: Deno.TcpConn): boolean {
    if (!this.#block.hasSelf) return false;
    const local = conn.localAddr as Deno.NetAddr;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const l = parseIp(local.hostname);
    const r = parseIp(remote.hostname);
    return l !== undefined && r !== undefined && l.every((b, i) => b === r[i]);
  }

  /**
   * Resolves `name` with the egress resolver (`egress.resolver`, or the
   * system's) within `timeoutMs`: its addresses in the resolver's order, each
   * once, zone indexes dropped. Throws `NotFound` when it has none, `TimedOut`
   * when the resolver took too long. TCP streams and UDP datagrams alike go
   * to names through here, and every address it gives is judged.
   */
  async lookup(name: string, timeoutMs: number): Promise<IpBytes[]> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Deno.errors.TimedOut(`Timed out resolving ${name}`)),
        timeoutMs,
      );
    });
    let found: string[];
    try {
      found = await Promise.race([this.#resolve(name), timeout]);
    } catch (e) {
      if (e instanceof Deno.errors.TimedOut) throw e;
      throw new Deno.errors.NotFound(`Cannot resolve ${name}: ${describeError(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
    const out: IpBytes[] = [];
    const seen = new Set<string>();
    for (const text of found) {
      const a = parseIp(text.replace(/%.*$/, ""));
      if (a === undefined) continue;
      const key = formatIp(a);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(a);
    }
    if (out.length === 0) throw new Deno.errors.NotFound(`Cannot resolve ${name}: no address`);
    return out;
  }
}

/** Whether `host` (an address text, IPv6 maybe in brackets) is a wildcard: `0.0.0.0` or `::`. */
export function isWildcard(host: string): boolean {
  const a = parseIp(host.replace(/^\[(.*)\]$/, "$1"));
  return a !== undefined && a.every((b, i) => b === 0 || (isIpv4(a) && (i === 10 || i === 11)));
}

/**
 * The addresses this server listens on, for `self` in `egress.block`: each
 * listening address, and for a wildcard (`0.0.0.0`, `::`) every address of
 * every interface when the `sys` permission for network interfaces is
 * granted. Without it a wildcard adds nothing here; a wildcard server asks
 * {@linkcode LocalAddresses} besides (the server does), which needs no
 * permission and sees interfaces added later too.
 */
export function selfAddresses(listens: readonly string[]): IpBytes[] {
  const out: IpBytes[] = [];
  let wildcard = false;
  for (const h of listens) {
    const a = parseIp(h.replace(/^\[(.*)\]$/, "$1"));
    if (a === undefined) continue;
    if (isWildcard(h)) wildcard = true;
    else out.push(a);
  }
  if (wildcard) {
    const granted = Deno.permissions.querySync({ name: "sys", kind: "networkInterfaces" });
    if (granted.state === "granted") {
      for (const i of Deno.networkInterfaces()) {
        const a = parseIp(i.address.replace(/%.*$/, ""));
        if (a !== undefined) out.push(a);
      }
    }
  }
  return out;
}

/** How long an answer of {@linkcode LocalAddresses} is kept (ms): interfaces come and go. */
export const LOCAL_ANSWER_MS = 5_000;
/** Answers {@linkcode LocalAddresses} keeps; the oldest is forgotten first. */
const LOCAL_ANSWERS = 1024;

/**
 * Binds a UDP socket (port 0) to `hostname` and closes it: true when that
 * works, so the address is one of this machine's; false when the system
 * says no such address here, or the `net` permission does not cover it.
 * Any other failure counts as local (refused, the safe side).
 */
export function bindProbe(hostname: string): boolean {
  try {
    const s = typeof Deno.listenDatagram === "function"
      ? Deno.listenDatagram({ transport: "udp", hostname, port: 0 })
      : Deno.listen({ hostname, port: 0 });
    s.close();
    return true;
  } catch (e) {
    return !(e instanceof Deno.errors.AddrNotAvailable ||
      e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied);
  }
}

/**
 * Which addresses are this machine's own, found by binding a socket to
 * them ({@linkcode bindProbe}): what `self` means for a server listening on
 * a wildcard address, without the `sys` permission and for interfaces
 * added after the start. Answers are kept {@linkcode LOCAL_ANSWER_MS}, so a
 * stream of datagrams costs one bind per address every few seconds.
 *
 * @example
 * ```ts ignore
 * const local = new LocalAddresses();
 * local.has(parseIp("127.0.0.1")!); // true
 * local.has(parseIp("203.0.113.1")!); // false, unless this machine has it
 * ```
 */
export class LocalAddresses {
  readonly #answers = new Map<string, { local: boolean; at: number }>();
  readonly #probe: (hostname: string) => boolean;

  /** `probe` says whether an address text can be bound (default {@linkcode bindProbe}). */
  constructor(probe: (hostname: string) => boolean = bindProbe) {
    this.#probe = probe;
  }

  /** True when `addr` is an address of this machine. */
  has(addr: IpBytes): boolean {
    const text = formatIp(addr);
    const now = Date.now();
    const known = this.#answers.get(text);
    if (known !== undefined && now - known.at < LOCAL_ANSWER_MS) return known.local;
    const local = this.#probe(text);
    this.#answers.delete(text);
    if (this.#answers.size >= LOCAL_ANSWERS) {
      this.#answers.delete(this.#answers.keys().next().value!);
    }
    this.#answers.set(text, { local, at: now });
    return local;
  }
}
