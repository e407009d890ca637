/**
 * What the server does with a stream OPEN: decode the SOCKS5 request it
 * carries, check the user's routes, dial the target with a deadline, and
 * answer (success and join the stream to the target, or a failure reply and
 * a reset). Each decision is an event (`stream_open`, `stream_refused`).
 *
 * @module
 */
import {
  allRoutes,
  DEFAULT_EGRESS_BLOCK,
  EgressBlock,
  routeSet,
  type UserSource,
} from "../config/mod.ts";
import { ResetReason } from "../mux/mod.ts";
import {
  decodeRequest,
  encodeReply,
  Reply,
  replyForError,
  Socks5Error,
  type Socks5Request,
} from "../socks5/mod.ts";
import {
  describeError,
  type EventSink,
  type Logger,
  type RefusalCause,
  silentLogger,
} from "../observe/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { formatIp, type IpBytes, isIpv4, parseIp } from "../wire/ip.ts";
import { dialTarget } from "./dial.ts";
import { Egress, type EgressRoutes, type Resolve } from "./egress.ts";
import type { Session } from "./session.ts";
import { UdpAssociation, type UdpVerdict } from "./udp_relay.ts";
import type { LimitRefusal } from "./user_limits.ts";

/** Options for {@linkcode StreamPolicy}. */
export interface StreamPolicyOptions {
  /** The server's users (their routes), looked up at each OPEN. */
  users: UserSource;
  /** How long a target may take to accept (ms). */
  connectTimeoutMs: number;
  events: EventSink;
  /**
   * The user's stream limits (quota, `max_streams` over all tunnels): a
   * refusal to send instead of dialing, or undefined to go on.
   */
  admit?: (user: string) => LimitRefusal | undefined;
  /** Dials one resolved address (default {@linkcode dialTarget}). */
  dial?: (host: string, port: number, timeoutMs: number) => Promise<Deno.TcpConn>;
  /** `egress.block` with the server's own addresses (default: `DEFAULT_EGRESS_BLOCK`). */
  block?: EgressBlock;
  /** Resolves target names, for streams and datagrams alike (default: the system resolver). */
  resolve?: Resolve;
  /**
   * Whether an address is this machine's own (`self` for a server on a
   * wildcard address; `EgressOptions.isLocal` in lib/tunnel/egress.ts).
   */
  isLocal?: (addr: IpBytes) => boolean;
  /** A UDP association's socket that moved nothing for this long is closed (ms); default 60 s. */
  udpIdleMs?: number;
  /** For debug lines of UDP associations. */
  log?: Logger;
}

/** The session a stream belongs to, as the policy sees it. */
export interface StreamOwner {
  session: Session;
  /** Local number of the session (events). */
  no: number;
  user: string;
  /**
   * A JWT login's `routes` claim: every address a stream or datagram goes
   * to must pass these too, under the same egress check as the user's
   * routes (they narrow the user's).
   */
  routes?: readonly string[];
}

/** What names the claim's layer in refusal reasons (the server log). */
const CLAIM_LAYER = "the JWT routes claim";

/** What the client is told when the rules refuse a stream (route or egress alike). */
const NOT_ALLOWED_TEXT = "not allowed by the server's routes";

/** "host:port", IPv6 hosts in brackets. */
function targetOf(req: Socks5Request): string {
  return formatHostPort(req.host, req.port);
}

/**
 * Serves OPENs under the users' route rules.
 *
 * @example
 * ```ts ignore
 * const policy = new StreamPolicy({ users, connectTimeoutMs: 10_000, events });
 * new Session({ ...options, onOpen: (id, req) => policy.open(owner, id, req) });
 * ```
 */
export class StreamPolicy {
  readonly #o: StreamPolicyOptions;
  readonly #egress: Egress;

  constructor(options: StreamPolicyOptions) {
    this.#o = options;
    this.#egress = new Egress({
      block: options.block ?? new EgressBlock(DEFAULT_EGRESS_BLOCK),
      connect: options.dial ?? dialTarget,
      ...(options.resolve === undefined ? {} : { resolve: options.resolve }),
      ...(options.isLocal === undefined ? {} : { isLocal: options.isLocal }),
    });
  }

  /** Answers stream `id`'s OPEN (raw SOCKS5 request `request`) and joins it to its target. */
  async open(owner: StreamOwner, id: number, request: Uint8Array): Promise<void> {
    let req: Socks5Request;
    try {
      req = decodeRequest(request);
    } catch (e) {
      const code = e instanceof Socks5Error ? e.reply : Reply.GENERAL_FAILURE;
      this.#refuse(owner, id, "unknown", code, describeError(e), describeError(e), "request");
      return;
    }
    const target = targetOf(req);
    // Quota and max_streams over all of the user's tunnels (a UDP association is a stream too).
    const over = this.#o.admit?.(owner.user);
    if (over !== undefined) {
      this.#o.events.emit({
        type: "limit",
        limit: over.limit,
        user: owner.user,
        session: owner.no,
        detail: over.detail,
      });
      this.#refuse(owner, id, target, Reply.NOT_ALLOWED, over.detail, over.detail, "limit");
      return;
    }
    if (req.command === "udp_associate") {
      this.#associate(owner, id);
      return;
    }
    if (req.command !== "connect") {
      const why = `${req.command} ${target} refused: only CONNECT and UDP ASSOCIATE`;
      this.#refuse(owner, id, target, Reply.COMMAND_NOT_SUPPORTED, "not supported", why, "command");
      return;
    }
    const rules = this.#rules(owner);
    if (rules === undefined) {
      // The user was removed (or disabled) since the login.
      const why = `route tcp:${target} not allowed`;
      this.#refuse(owner, id, target, Reply.NOT_ALLOWED, NOT_ALLOWED_TEXT, why, "route");
      return;
    }
    let conn: Deno.TcpConn;
    try {
      const r = await this.#egress.dial(
        rules,
        { proto: "tcp", host: req.host, port: req.port },
        this.#o.connectTimeoutMs,
      );
      if ("refused" in r) {
        // The same reply and wire text for a route and an egress refusal: the
        // client learns nothing about what a name resolves to on this side.
        this.#refuse(owner, id, target, Reply.NOT_ALLOWED, NOT_ALLOWED_TEXT, r.reason, r.refused);
        return;
      }
      conn = r.conn;
    } catch (e) {
      const why = `dial ${target} failed: ${describeError(e)}`;
      this.#refuse(owner, id, target, replyForError(e), "dial failed", why, "dial");
      return;
    }
    const { session } = owner;
    if (!session.hasStream(id)) {
      conn.close();
      return;
    }
    this.#o.events.emit({
      type: "stream_open",
      session: owner.no,
      stream: id,
      target,
      user: owner.user,
    });
    // BND.ADDR stays 0.0.0.0:0: the server's outbound address is not the client's business.
    session.reply(id, encodeReply(Reply.SUCCEEDED));
    session.attach(id, conn);
  }

  /**
   * The rules `owner`'s streams go by, read at every use (a users file
   * reload applies at once): the user's routes, narrowed by the login's JWT
   * `routes` claim when it has one; undefined when the user is gone.
   */
  #rules(owner: Pick<StreamOwner, "user" | "routes">): EgressRoutes | undefined {
    const u = this.#o.users.get(owner.user);
    if (u === undefined) return undefined;
    if (owner.routes === undefined) return u.routes;
    return allRoutes({ rules: routeSet(u.routes) }, {
      rules: routeSet(owner.routes),
      name: CLAIM_LAYER,
    });
  }

  /**
   * A UDP ASSOCIATE OPEN: the association starts at once (BND 0.0.0.0:0; the
   * client's relay socket is the application's address), and each datagram
   * is checked against the `udp:` routes on its way out.
   */
  #associate(owner: StreamOwner, id: number): void {
    const { session } = owner;
    const association = new UdpAssociation({
      session,
      id,
      // The route and egress check of each datagram, read at every datagram (a users file
      // reload applies at once): the same Egress judgement as a TCP stream's.
      allowed: (host, port, addrs) => this.#datagramTo(owner, host, port, addrs),
      // Names go through the same resolver as a TCP stream's, and every address is judged.
      resolve: async (name) =>
        (await this.#egress.lookup(name, this.#o.connectTimeoutMs)).map(formatIp),
      idleMs: this.#o.udpIdleMs ?? 60_000,
      events: this.#o.events,
      log: this.#o.log ?? silentLogger,
    });
    if (!association.start()) return;
    this.#o.events.emit({ type: "udp_open", session: owner.no, stream: id, side: "server" });
    session.reply(id, encodeReply(Reply.SUCCEEDED));
  }

  /**
   * Where a datagram of `owner`'s to `host:port` goes (see `UdpRouteCheck`
   * in lib/tunnel/udp_relay.ts): among the allowed addresses the first
   * IPv4 one, else the first IPv6 one (a datagram has no fallback).
   */
  #datagramTo(
    owner: StreamOwner,
    host: string,
    port: number,
    addrs: readonly string[] | undefined,
  ): UdpVerdict {
    const target = { proto: "udp", host, port } as const;
    const rules = this.#rules(owner);
    if (rules === undefined) {
      return { refused: "route", reason: `route udp:${formatHostPort(host, port)} not allowed` };
    }
    const literal = parseIp(host.replace(/^\[(.*)\]$/, "$1"));
    let judged;
    if (literal !== undefined) judged = this.#egress.judge(rules, target, [literal]);
    else if (addrs === undefined) return this.#egress.nameRefusal(rules, target);
    else judged = this.#egress.judge(rules, target, addrs.flatMap((a) => parseIp(a) ?? []));
    if ("refused" in judged) return judged;
    return { to: formatIp(judged.allowed.find(isIpv4) ?? judged.allowed[0]!) };
  }

  #refuse(
    owner: StreamOwner,
    id: number,
    target: string,
    reply: number,
    wireMessage: string,
    reason: string,
    cause: RefusalCause,
  ): void {
    // A policy refusal (reply 2) resets with NOT_ALLOWED, as docs/PROTOCOL.md part 5 section 6 says.
    const reset = reply === Reply.NOT_ALLOWED ? ResetReason.NOT_ALLOWED : ResetReason.REFUSED;
    owner.session.refuse(id, encodeReply(reply), reset, wireMessage);
    this.#o.events.emit({
      type: "stream_refused",
      session: owner.no,
      stream: id,
      target,
      reply,
      reason,
      cause,
      user: owner.user,
    });
  }
}
