/**
 * The one place the public API meets the client's session manager.
 *
 * `lib/tunnel/client.ts` is becoming a `ClientTunnel` class (a session
 * manager without listeners) with exactly the interface below. Until it
 * lands, this adapter implements that interface over today's
 * `startClient()` and its `tunnel()`. When the class exists, this file
 * shrinks to `export { ClientTunnel, type ClientTunnelOptions } from
 * "../tunnel/client.ts";` and nothing else in `lib/api` changes.
 *
 * @module
 */
import type { ClientConfig } from "../config/mod.ts";
import { EventHub, type Logger } from "../observe/mod.ts";
import { type ClientHandle, startClient } from "../tunnel/client.ts";
import type { Session } from "../tunnel/session.ts";
import { formatHostPort } from "../transport/mod.ts";
import { randomBytes } from "../crypto/mod.ts";

/** Options for {@linkcode ClientTunnel}. */
export interface ClientTunnelOptions {
  profile: ClientConfig;
  log: Logger;
  events?: EventHub;
  /** Dial this address instead of the profile's (TLS name and key stay). */
  server?: { host: string; port: number };
  /** Trust this CA PEM for TLS instead of the profile's. */
  caPem?: string;
}

let sessionSeq = 0;

/**
 * One client's sessions: opened on demand, resumed after a broken link,
 * released on close.
 *
 * @example
 * ```ts ignore
 * const client = new ClientTunnel({ profile, log });
 * const session = await client.session();
 * const { id, reply } = await session.open(rawSocks5Request, 30_000);
 * ```
 */
export class ClientTunnel {
  /** What happens to the client's sessions. */
  readonly events: EventHub;
  readonly #handle: Promise<ClientHandle>;
  #started: ClientHandle | undefined;
  #current: Session | undefined;
  #pending: Promise<Session> | undefined;
  readonly #user: string;
  readonly #peer: string;

  constructor(options: ClientTunnelOptions) {
    this.events = options.events ?? new EventHub();
    this.#user = options.profile.user;
    const server = options.server ?? options.profile.server;
    this.#peer = formatHostPort(server.host, server.port);
    // startClient also serves SOCKS5, which the library does not want: it
    // listens on a loopback port of its own, behind a random password that
    // nobody is told, and without HTTP CONNECT.
    const { httpConnect: _http, ...rest } = options.profile;
    const secret = () => Array.from(randomBytes(16), (b) => b.toString(16)).join("");
    const profile: ClientConfig = {
      ...rest,
      socks5: { ...options.profile.socks5, users: new Map([[secret(), secret()]]) },
    };
    this.#handle = startClient(profile, {
      log: options.log,
      socks: { host: "127.0.0.1", port: 0 },
      lazy: true,
      ...(options.server === undefined ? {} : { server: options.server }),
      ...(options.caPem === undefined ? {} : { caPem: options.caPem }),
    });
    this.#handle.then((h) => (this.#started = h), () => {});
  }

  /** The live session, opened (or reopened after it ended) if needed. */
  async session(): Promise<Session> {
    const handle = await this.#handle;
    const attempt = handle.tunnel();
    this.#pending = attempt;
    const session = await attempt.finally(() => {
      if (this.#pending === attempt) this.#pending = undefined;
    });
    if (session !== this.#current) {
      this.#current = session;
      const id = ++sessionSeq;
      this.events.emit({ type: "session_start", session: id, user: this.#user, peer: this.#peer });
      session.ended.then((end) => {
        this.events.emit({
          type: "session_end",
          session: id,
          user: this.#user,
          reason: end.reason,
          graceful: end.graceful,
          bytesIn: session.stats.bytesIn,
          bytesOut: session.stats.bytesOut,
        });
      });
    }
    return session;
  }

  /** How many times a broken connection was resumed. */
  get resumptions(): number {
    return this.#started?.resumptions ?? 0;
  }

  /** Drops the current connection on purpose: the session resumes over a new one. */
  dropConnection(reason?: string): void {
    this.#started?.dropConnection(reason);
  }

  /** Releases the session and stops. */
  async close(): Promise<void> {
    const handle = await this.#handle.catch(() => undefined);
    await handle?.close();
    // A session still being opened arrives after close: end it too.
    const late = await this.#pending?.catch(() => undefined);
    if (late !== undefined && !late.isClosed) await late.release(3_000);
  }
}
