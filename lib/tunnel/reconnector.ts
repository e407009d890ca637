/**
 * The client's reconnect loop: after a link breaks, dial again (healthiest
 * endpoint first, backoff with jitter between rounds) and resume the session
 * with the latest resumption secret — or the one before it, when the server
 * never saw the Finish that replaced it — until a link is up, the server
 * says the session is gone, or it is time to give up.
 *
 * @module
 */
import type { Endpoint } from "../config/mod.ts";
import type { ClientResume, SessionSecrets } from "../handshake/mod.ts";
import { describeError, type EventSink, type Logger } from "../observe/mod.ts";
import { FailureLog } from "./failure_log.ts";
import { type NewLink, TunnelError } from "./link.ts";
import type { PathSelector, PathState } from "./path_selector.ts";
import type { Session } from "./session.ts";

/** Reconnect backoff: first delay, cap, and how long to keep trying. */
export const BACKOFF_FIRST_MS = 50;
export const BACKOFF_MAX_MS = 5_000;
/** How long the client keeps trying to resume a session (ms). */
export const RECONNECT_GIVE_UP_MS = 5 * 60_000;

/** Options for {@linkcode Reconnector}. */
export interface ReconnectorOptions {
  paths: PathSelector;
  /** Dials an endpoint and runs the handshake (a resumption with `resume`). */
  connect: (endpoint: Endpoint, resume: ClientResume | undefined) => Promise<NewLink>;
  log: Logger;
  /** Where a refused resumption is reported (`resume_refused`). */
  events: EventSink;
  /** Ends a backoff wait early (shutdown). */
  signal?: AbortSignal;
  /** Give up after this long (ms); default 5 min. */
  giveUpMs?: number;
  /** Backoff between attempts (ms): first delay and cap; default 50 and 5 000. */
  backoff?: { firstMs: number; maxMs: number };
}

/** A link that resumed the session, for the caller to attach. */
export interface Resumed {
  link: NewLink;
  path: PathState;
  /** How long the session had no link (ms). */
  afterMs: number;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Holds the session's resumption credentials and re-links it.
 *
 * @example
 * ```ts ignore
 * const connect = (e: Endpoint, r?: ClientResume) => connectLink(config, e, r);
 * const reconnector = new Reconnector({ paths, connect, log, events });
 * reconnector.start(secrets, sessionNo);
 * const resumed = await reconnector.reconnect(session, () => !closed);
 * ```
 */
export class Reconnector {
  readonly #o: ReconnectorOptions;
  #latest: ClientResume | undefined;
  /**
   * The credentials `#latest` replaced. The server adopts new ones only when
   * our Finish reaches it: if the connection broke just after we sent it,
   * the server still expects these.
   */
  #previous: ClientResume | undefined;
  /** Local number of the session the credentials belong to (events). */
  #session = 0;

  constructor(options: ReconnectorOptions) {
    this.#o = options;
  }

  /**
   * A new session (local number `session`, for events): its credentials, and
   * nothing of the last one to fall back to.
   */
  start(secrets: SessionSecrets, session = 0): void {
    this.#session = session;
    this.#latest = undefined;
    this.#remember(secrets);
  }

  #remember(secrets: SessionSecrets): void {
    this.#previous = this.#latest;
    this.#latest = {
      sessionId: secrets.sessionId,
      resumptionSecret: secrets.resumptionSecret,
      ...(secrets.ticket === undefined ? {} : { ticket: secrets.ticket }),
    };
  }

  /**
   * Dials until a link resumes `session`, while `wanted()` holds. Resolves
   * with the link for the caller to attach, or undefined: not wanted any
   * more, or the session could not continue (then it is closed here).
   */
  async reconnect(session: Session, wanted: () => boolean): Promise<Resumed | undefined> {
    const { log, paths, events } = this.#o;
    const giveUpMs = this.#o.giveUpMs ?? RECONNECT_GIVE_UP_MS;
    const start = Date.now();
    let delay = this.#o.backoff?.firstMs ?? BACKOFF_FIRST_MS;
    const maxDelay = this.#o.backoff?.maxMs ?? BACKOFF_MAX_MS;
    const failures = new FailureLog(log);
    while (wanted() && !session.isClosed) {
      let tried: Endpoint | undefined;
      try {
        const { value: link, path } = await paths.connect((e) => {
          tried = e;
          return this.#o.connect(e, this.#latest);
        });
        if (!wanted() || session.isClosed) {
          link.link.conn.close();
          return undefined;
        }
        this.#remember(link.secrets);
        failures.recovered("reconnected");
        return { link, path, afterMs: Date.now() - start };
      } catch (e) {
        if (e instanceof TunnelError && e.kind === "session_gone") {
          const refused = {
            type: "resume_refused",
            session: this.#session,
            endpoint: tried === undefined ? "?" : `${tried.server.host}:${tried.server.port}`,
          } as const;
          if (this.#previous !== undefined) {
            events.emit({ ...refused, next: "previous" });
            this.#latest = this.#previous;
            this.#previous = undefined;
            continue;
          }
          events.emit({ ...refused, next: "give_up" });
          session.close("server no longer has the session", false);
          return undefined;
        }
        if (Date.now() - start > giveUpMs) {
          log.error(`giving up resuming after ${giveUpMs / 60_000} min: ${describeError(e)}`);
          session.close("could not reconnect", false);
          return undefined;
        }
        failures.failed(`reconnect failed: ${describeError(e)}; retrying with backoff`);
        await sleep(delay * (0.5 + Math.random()), this.#o.signal);
        delay = Math.min(delay * 2, maxDelay);
      }
    }
    return undefined;
  }
}
