/**
 * The event interface: what a server, a client or a tunnel tells whoever
 * watches it — logins, refusals, streams, bytes, path changes, resumptions.
 * Logs, metrics and tests subscribe to the same events instead of reading
 * log text. Events carry facts, never key material or tokens.
 *
 * @module
 */

/** Why the server turned a connection away before a session existed. */
export type RefusalReason =
  /** Not a NitroSocks first message: handed to the fallback web server. */
  | "probe"
  /** The first message was ours but the login failed (any factor: they look the same). */
  | "auth_failed"
  /** Over `limits.per_ip` (connections or handshakes per second): handed to the fallback, as a probe. */
  | "rate_limited"
  /** The handshake did not finish in time (`limits.handshake_timeout`). */
  | "timeout"
  /** Closed before logging in to make room: the oldest over `limits.pre_login`. */
  | "evicted"
  /** At `limits.pre_login.max` with nothing it may evict (`min_age`): closed before reading. */
  | "full"
  /** Under load (`limits.cookie_after`), a Hello without this source's cookie: a cookie reply. */
  | "cookie"
  /** The peer closed during the handshake. */
  | "closed"
  /** Anything else (a socket error). */
  | "error";

/** Where a listener serves. */
export interface EventAddr {
  /** The IP address or name. */
  hostname: string;
  /** The port. */
  port: number;
}

/** Everything the library reports, by `type`. */
export type TunnelEventInit =
  | {
    type: "listening";
    /** What listens there. */
    kind: "tunnel" | "socks5" | "http" | "direct" | "relay" | "admin" | "forward" | "dns";
    addr: EventAddr;
    /** A forward's or the DNS server's protocol ("tcp" or "udp"). */
    protocol?: "tcp" | "udp";
    /** A forward's destination, the DNS server's upstream (HOST:PORT). */
    to?: string;
    /** The tunnel port's transport ("tls", "tcp", "ws" or "wss"). */
    transport?: string;
    /** `ws`/`wss`: the WebSocket's path. */
    path?: string;
    /** The port expects a PROXY v2 header first. */
    proxyProtocol?: boolean;
  }
  | {
    type: "login";
    /** Local number of the session (not its wire id). */
    session: number;
    user: string;
    remote: string;
    kex: string;
    aead: string;
    /** The handshake resumed an existing session. */
    resumed: boolean;
    /** Server: local number of the connection. */
    conn?: number;
  }
  | {
    type: "refusal";
    remote: string;
    reason: RefusalReason;
    /** The server's own account (never shown to the peer). */
    detail: string;
    /** Server: local number of the connection. */
    conn?: number;
    /**
     * Server, `auth_failed`: the user whose static key the client proved (for
     * per-user counters and lockout; never shown to the peer). Absent for an
     * unknown user or a wrong key, so a guess at a name never counts against it.
     */
    user?: string;
  }
  | {
    /** Client: a connection attempt to an endpoint failed. */
    type: "connect_failed";
    endpoint: string;
    error: string;
    /** The endpoint the client tries next, if any. */
    next?: string;
  }
  | {
    type: "session_start";
    session: number;
    user: string;
    /** Where the first link goes (client) or comes from (server). */
    peer: string;
    /** Client: the key exchange and AEAD the handshake chose. */
    kex?: string;
    aead?: string;
    /** Server: the client resumed a session this server does not hold; it starts afresh. */
    restarted?: boolean;
  }
  | {
    type: "session_end";
    session: number;
    user: string;
    reason: string;
    /** A side ended it on purpose (release, shutdown), not a failure. */
    graceful: boolean;
    bytesIn: number;
    bytesOut: number;
  }
  | {
    /** A link broke without a release; the session waits for another. */
    type: "link_down";
    session: number;
    reason: string;
    /** A record failed authentication: whoever carried it tampered. */
    tampered: boolean;
    /** Where the link went (an address), for logs. */
    peer?: string;
  }
  | {
    /**
     * Client: the server refused to resume the session under the latest
     * credentials (it no longer holds the session, or never saw the Finish
     * that replaced them).
     */
    type: "resume_refused";
    session: number;
    /** The endpoint that refused. */
    endpoint: string;
    /** "previous": retrying with the credentials before the latest; "give_up": the session is lost. */
    next: "previous" | "give_up";
  }
  | {
    /** A session continues over a new link. */
    type: "resume";
    session: number;
    user: string;
    via: string;
    /** Client: how long the session had no link. */
    afterMs?: number;
    /** Server: local number of the connection. */
    conn?: number;
  }
  | {
    /** Client: the session moved to another endpoint. */
    type: "path_change";
    session: number;
    from: string | undefined;
    to: string;
    reason: string;
  }
  | {
    /** Client: an endpoint is tried last for a while. */
    type: "path_avoided";
    endpoint: string;
    /** For how long (ms). */
    forMs: number;
    /** Why, e.g. "tampered with the tunnel". */
    reason: string;
  }
  | {
    type: "stream_open";
    session: number;
    stream: number;
    /** "host:port" as requested. */
    target: string;
    user: string;
  }
  | {
    type: "stream_refused";
    session: number;
    stream: number;
    target: string;
    /** The SOCKS5 reply code sent. */
    reply: number;
    /** For the log: what was refused and why (the rule or block entry). */
    reason: string;
    /** Which check refused it. */
    cause: RefusalCause;
    /** The user whose stream it was. */
    user: string;
  }
  | {
    /** A UDP ASSOCIATE was accepted: client, its relay socket; server, the association's stream. */
    type: "udp_open";
    session: number;
    stream: number;
    side: "client" | "server";
    /** Client: where the application sends its datagrams. */
    relay?: string;
  }
  | {
    /**
     * Server: a datagram to `target` was refused by the user's routes or
     * `egress.block` (reported once per target).
     */
    type: "udp_refused";
    session: number;
    stream: number;
    target: string;
    /** What refused it, as a refused stream's reason says (no secrets: names and rules). */
    reason: string;
  }
  | {
    /** A UDP association ended; its counters. */
    type: "udp_close";
    session: number;
    stream: number;
    side: "client" | "server";
    /** Datagrams sent on (client: into the tunnel; server: to destinations). */
    out: number;
    /** Datagrams delivered (client: to the application; server: into the tunnel). */
    in: number;
    bytesOut: number;
    bytesIn: number;
    /** Server: datagrams refused by routes. */
    refused?: number;
    /** Server: datagrams from peers the client never sent to; client: from other sources. */
    strangers: number;
    /** Client: fragments (FRAG ≠ 0), dropped as RFC 1928 section 7 allows. */
    fragments?: number;
    /** Malformed, unsendable, or refused by a full queue. */
    dropped: number;
    reason: string;
  }
  | {
    type: "stream_close";
    session: number;
    stream: number;
    /** Bytes the stream delivered to its local socket. */
    bytesIn: number;
    /** Bytes the stream read from its local socket. */
    bytesOut: number;
    reason: string;
  }
  | {
    /** Tunnel bytes (records on the wire) since the last `bytes` event of this session. */
    type: "bytes";
    session: number;
    user: string;
    in: number;
    out: number;
  }
  | {
    /** A full in-band re-key with fresh X25519 completed. */
    type: "rekey";
    session: number;
  }
  | {
    /** A release exchange (or NOTICE) ended the session on purpose. */
    type: "release";
    session: number;
    by: "us" | "peer";
    reason: string;
    /**
     * The reason code of the NOTICE `by` sent, when a NOTICE rather than the
     * three-step exchange ended it (1: our release request went unanswered).
     */
    notice?: number;
  }
  | {
    /**
     * No stream was open for `idleMs` (the server's `limits.idle_timeout`):
     * the session ends with a release. Open streams are never cut for idleness.
     */
    type: "tunnel_idle";
    session: number;
    user: string;
    idleMs: number;
  }
  | {
    /**
     * Server: the client of a JWT login sent a fresh token in-band (a RENEW
     * frame): taken, so the session now ends at the new `exp`, or refused,
     * so it still ends at the old one.
     */
    type: "jwt_renewal";
    session: number;
    user: string;
    ok: boolean;
    /** When the session ends now (`exp` plus the leeway), ms since the Unix epoch. */
    expiresMs: number;
    /** Why it was refused, or what was taken (no token, no secrets). */
    detail: string;
  }
  | {
    /** Server: an operator ended a user's live sessions (`nitrosocks kick`). */
    type: "kick";
    user: string;
    /** How many live sessions were ended. */
    sessions: number;
    /** Who asked, e.g. "admin 127.0.0.1". */
    by: string;
  }
  | {
    /**
     * Server: the TLS certificate files changed. "reloaded": new connections
     * get the new certificate; "rejected": the files did not load (e.g. a
     * key that is not the certificate's) and the previous one stays.
     */
    type: "certificate";
    action: "reloaded" | "rejected";
    /** The certificate file. */
    file: string;
    /** Why it was rejected, or the new certificate's subject and expiry. */
    detail: string;
  }
  | {
    /** Server: a limit refused or ended something (a stream, a tunnel, a login, bytes). */
    type: "limit";
    /**
     * Which limit, by its config key: "max_tunnels", "limits.max_tunnels",
     * "max_streams", "quota", "disabled", "expires", or "removed" (the user
     * left users.yml) for the revocations that end live sessions.
     */
    limit: string;
    /** The user it applied to; absent for a server-wide limit hit before a login. */
    user?: string;
    session?: number;
    /** What happened, for the log (no secrets). */
    detail: string;
  };

/**
 * Why the server refused a stream: a malformed OPEN (`request`), a command
 * other than CONNECT (`command`), the user's routes (`route`), the
 * `egress.block` list (`egress`), or the target could not be reached (`dial`).
 */
export type RefusalCause = "request" | "command" | "route" | "egress" | "limit" | "dial";

/** An event as observers see it: with the time it happened (ms since the epoch). */
export type TunnelEvent = TunnelEventInit & { time: number };

/** The event type names. */
export type TunnelEventType = TunnelEvent["type"];

/** An event of one type. */
export type EventOf<T extends TunnelEventType> = Extract<TunnelEvent, { type: T }>;

/** Receives events. It must not throw or block; an error it throws is dropped. */
export type Observer = (event: TunnelEvent) => void;

/** Where events are sent: an {@linkcode EventHub} or anything with `emit`. */
export interface EventSink {
  /** Reports `event`; must not throw or block. */
  emit(event: TunnelEventInit): void;
}

/** A sink that drops everything. */
export const NO_EVENTS: EventSink = { emit() {} };

/** Options for {@linkcode EventHub.stream}. */
export interface EventStreamOptions {
  /** Most events held for a slow reader; the oldest are dropped beyond it. Default 1024. */
  buffer?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
}

/**
 * Fans events out to observers. Subscribing returns the function that
 * unsubscribes; `stream()` gives an async iterator with a bounded buffer.
 *
 * @example
 * ```ts
 * import { EventHub } from "./events.ts";
 * const hub = new EventHub();
 * const seen: string[] = [];
 * const stop = hub.subscribe((e) => seen.push(e.type));
 * hub.emit({ type: "rekey", session: 1 });
 * stop();
 * hub.emit({ type: "rekey", session: 1 });
 * if (seen.length !== 1) throw new Error("expected one event");
 * ```
 */
export class EventHub implements EventSink, AsyncIterable<TunnelEvent> {
  readonly #observers = new Set<Observer>();
  readonly #now: () => number;

  /** `now` stamps each event (ms since the epoch); tests pass a fake clock. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** True while anyone listens (hot paths may skip building events otherwise). */
  get active(): boolean {
    return this.#observers.size > 0;
  }

  /** Calls `observer` for every event from now on; returns the unsubscribe function. */
  subscribe(observer: Observer): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  /** Sends `event` (stamped with the time) to every observer. */
  emit(event: TunnelEventInit): void {
    if (this.#observers.size === 0) return;
    const stamped = { ...event, time: this.#now() } as TunnelEvent;
    for (const o of [...this.#observers]) {
      try {
        o(stamped);
      } catch {
        // An observer's failure must not break the tunnel.
      }
    }
  }

  /**
   * The events from now on as an async iterator. A reader that falls more
   * than `buffer` events behind loses the oldest; `dropped` counts them.
   */
  stream(options: EventStreamOptions = {}): AsyncIterableIterator<TunnelEvent> & {
    readonly dropped: number;
  } {
    const limit = Math.max(1, options.buffer ?? 1024);
    const queue: TunnelEvent[] = [];
    let waiting: ((r: IteratorResult<TunnelEvent>) => void) | undefined;
    let done = false;
    let dropped = 0;
    const finish = () => {
      if (done) return;
      done = true;
      unsubscribe();
      options.signal?.removeEventListener("abort", finish);
      const w = waiting;
      waiting = undefined;
      w?.({ value: undefined, done: true });
    };
    const unsubscribe = this.subscribe((e) => {
      const w = waiting;
      if (w !== undefined) {
        waiting = undefined;
        w({ value: e, done: false });
        return;
      }
      queue.push(e);
      if (queue.length > limit) {
        queue.shift();
        dropped++;
      }
    });
    if (options.signal?.aborted) finish();
    options.signal?.addEventListener("abort", finish, { once: true });
    const it = {
      get dropped() {
        return dropped;
      },
      next(): Promise<IteratorResult<TunnelEvent>> {
        const e = queue.shift();
        if (e !== undefined) return Promise.resolve({ value: e, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((r) => (waiting = r));
      },
      return(): Promise<IteratorResult<TunnelEvent>> {
        finish();
        queue.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  /** Same as `stream()`: `for await (const e of hub)`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<TunnelEvent> {
    return this.stream();
  }

  /**
   * Resolves with the first event of `type` that satisfies `match`, or
   * rejects after `timeoutMs` saying what it waited for.
   */
  next<T extends TunnelEventType>(
    type: T,
    options: { match?: (e: EventOf<T>) => boolean; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<EventOf<T>> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        stop();
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        cleanup();
        reject(options.signal?.reason ?? new DOMException("Aborted", "AbortError"));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Deno.errors.TimedOut(`No "${type}" event within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const stop = this.subscribe((e) => {
        if (e.type !== type) return;
        const ev = e as EventOf<T>;
        if (options.match !== undefined && !options.match(ev)) return;
        cleanup();
        resolve(ev);
      });
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/**
 * Records every event (bounded), for tests and diagnostics.
 *
 * @example
 * ```ts
 * import { EventHub, EventLog } from "./events.ts";
 * const hub = new EventHub();
 * const log = new EventLog(hub);
 * hub.emit({ type: "rekey", session: 7 });
 * if (log.of("rekey").length !== 1) throw new Error("expected one rekey");
 * log.close();
 * ```
 */
export class EventLog {
  /** What was recorded, oldest first. */
  readonly events: TunnelEvent[] = [];
  readonly #hub: EventHub;
  readonly #stop: () => void;
  readonly #limit: number;
  #closed = false;

  /** Records `hub`'s events from now on, at most `limit` of them. */
  constructor(hub: EventHub, limit = 100_000) {
    this.#hub = hub;
    this.#limit = limit;
    this.#stop = hub.subscribe((e) => {
      if (this.events.length < this.#limit) this.events.push(e);
    });
  }

  /** Events of `type`, optionally filtered. */
  of<T extends TunnelEventType>(type: T, match?: (e: EventOf<T>) => boolean): EventOf<T>[] {
    const out: EventOf<T>[] = [];
    for (const e of this.events) {
      if (e.type === type && (match === undefined || match(e as EventOf<T>))) {
        out.push(e as EventOf<T>);
      }
    }
    return out;
  }

  /**
   * Resolves with the recorded events of `type` that satisfy `match` once
   * there are at least `count` of them (default 1), counting those recorded
   * before the call; rejects after `timeoutMs` (default 10 s) saying what it
   * waited for, or at once when the log no longer records.
   *
   * @example
   * ```ts
   * import { EventHub, EventLog } from "./events.ts";
   * const hub = new EventHub();
   * const log = new EventLog(hub);
   * hub.emit({ type: "rekey", session: 1 });
   * setTimeout(() => hub.emit({ type: "rekey", session: 2 }), 10);
   * const both = await log.waitFor("rekey", { count: 2, timeoutMs: 1_000 });
   * if (both.length !== 2) throw new Error("expected two rekeys");
   * log.close();
   * ```
   */
  waitFor<T extends TunnelEventType>(
    type: T,
    options: { match?: (e: EventOf<T>) => boolean; count?: number; timeoutMs?: number } = {},
  ): Promise<EventOf<T>[]> {
    const { match } = options;
    const count = options.count ?? 1;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const what = count === 1 ? `a "${type}" event` : `${count} "${type}" events`;
    const found = this.of(type, match);
    if (found.length >= count) return Promise.resolve(found);
    if (this.#closed) {
      return Promise.reject(
        new Deno.errors.BadResource(`Cannot wait for ${what}: the log is closed`),
      );
    }
    let seen = found.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(
          new Deno.errors.TimedOut(
            `Timed out after ${timeoutMs / 1000} s waiting for ${what} (saw ${seen})`,
          ),
        );
      }, timeoutMs);
      // Subscribed after the recorder: an event is in `events` when this sees it.
      const stop = this.#hub.subscribe((e) => {
        if (e.type !== type || (match !== undefined && !match(e as EventOf<T>))) return;
        if (++seen < count) return;
        stop();
        clearTimeout(timer);
        resolve(this.of(type, match));
      });
    });
  }

  /** Stops recording. */
  close(): void {
    this.#closed = true;
    this.#stop();
  }
}
