/**
 * What the server does with a stream OPEN: decode the SOCKS5 request it
 * carries, check the user's routes, dial the target with a deadline, and
 * answer (success and join the stream to the target, or a failure reply and
 * a reset). Each decision is an event (`stream_open`, `stream_refused`).
 *
 * @module
 */
import { matchRoute, type UserSource } from "../config/mod.ts";
import { ResetReason } from "../mux/mod.ts";
import {
  decodeRequest,
  encodeReply,
  Reply,
  replyForError,
  Socks5Error,
  type Socks5Request,
} from "../socks5/mod.ts";
import { describeError, type EventSink } from "../observe/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { dialTarget } from "./dial.ts";
import type { Session } from "./session.ts";
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
  /** Dials a target (default {@linkcode dialTarget}). */
  dial?: (host: string, port: number, timeoutMs: number) => Promise<Deno.TcpConn>;
}

/** The session a stream belongs to, as the policy sees it. */
export interface StreamOwner {
  session: Session;
  /** Local number of the session (events). */
  no: number;
  user: string;
}

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
  readonly #dial: NonNullable<StreamPolicyOptions["dial"]>;

  constructor(options: StreamPolicyOptions) {
    this.#o = options;
    this.#dial = options.dial ?? dialTarget;
  }

  /** Answers stream `id`'s OPEN (raw SOCKS5 request `request`) and joins it to its target. */
  async open(owner: StreamOwner, id: number, request: Uint8Array): Promise<void> {
    let req: Socks5Request;
    try {
      req = decodeRequest(request);
    } catch (e) {
      const code = e instanceof Socks5Error ? e.reply : Reply.GENERAL_FAILURE;
      this.#refuse(owner, id, "unknown", code, describeError(e), describeError(e));
      return;
    }
    const target = targetOf(req);
    if (req.command !== "connect") {
      const why = `${req.command} ${target} refused: only CONNECT`;
      this.#refuse(owner, id, target, Reply.COMMAND_NOT_SUPPORTED, "only CONNECT", why);
      return;
    }
    const over = this.#o.admit?.(owner.user);
    if (over !== undefined) {
      this.#o.events.emit({
        type: "limit",
        limit: over.limit,
        user: owner.user,
        session: owner.no,
        detail: over.detail,
      });
      this.#refuse(owner, id, target, Reply.NOT_ALLOWED, over.detail, over.detail);
      return;
    }
    const user = this.#o.users.get(owner.user);
    if (
      user === undefined ||
      !matchRoute(user.routes, { proto: "tcp", host: req.host, port: req.port })
    ) {
      const why = `route tcp:${target} not allowed`;
      this.#refuse(owner, id, target, Reply.NOT_ALLOWED, "route not allowed", why);
      return;
    }
    let conn: Deno.TcpConn;
    try {
      conn = await this.#dial(req.host, req.port, this.#o.connectTimeoutMs);
    } catch (e) {
      const why = `dial ${target} failed: ${describeError(e)}`;
      this.#refuse(owner, id, target, replyForError(e), "dial failed", why);
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

  #refuse(
    owner: StreamOwner,
    id: number,
    target: string,
    reply: number,
    wireMessage: string,
    reason: string,
  ): void {
    owner.session.refuse(id, encodeReply(reply), ResetReason.REFUSED, wireMessage);
    this.#o.events.emit({
      type: "stream_refused",
      session: owner.no,
      stream: id,
      target,
      reply,
      reason,
    });
  }
}
