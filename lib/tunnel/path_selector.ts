/**
 * The client's endpoints and what it has seen of each: recent failures,
 * connect time, and whether one tampered with the tunnel (then it is
 * avoided for a while: a `path_avoided` event). Connections are tried
 * healthiest first; a move of the session to another endpoint is a
 * `path_change` event.
 *
 * @module
 */
import type { Endpoint } from "../config/mod.ts";
import { describeError, type EventSink } from "../observe/mod.ts";
import { TunnelError } from "./link.ts";

/** An endpoint whose records failed authentication is avoided this long. */
const TAMPER_PENALTY_MS = 10 * 60_000;

/** An endpoint and what the client has seen of it. */
export interface PathState {
  readonly endpoint: Endpoint;
  /** Failed connection attempts since the last success. */
  failures: number;
  /** Not tried first before this instant (ms since the epoch). */
  avoidUntil: number;
  /** How long the last successful connection took (ms). */
  connectMs: number;
}

/** "host:port" of a path's endpoint. */
export function where(p: PathState): string {
  return `${p.endpoint.server.host}:${p.endpoint.server.port}`;
}

/** Options for {@linkcode PathSelector}. */
export interface PathSelectorOptions {
  events: EventSink;
  now?: () => number;
  /** How long a tampering endpoint is avoided (ms); default 10 min. */
  tamperPenaltyMs?: number;
}

/**
 * Chooses among the profile's endpoints.
 *
 * @example
 * ```ts ignore
 * const paths = new PathSelector([first, ...config.endpoints], { events });
 * const { value: link, path } = await paths.connect((e) => connectLink(config, e));
 * paths.use(path, sessionNo, "new session");
 * ```
 */
export class PathSelector {
  readonly #paths: PathState[];
  readonly #o: PathSelectorOptions;
  readonly #now: () => number;
  #current: PathState | undefined;

  constructor(endpoints: Endpoint[], options: PathSelectorOptions) {
    this.#paths = endpoints.map((endpoint) => ({
      endpoint,
      failures: 0,
      avoidUntil: 0,
      connectMs: 0,
    }));
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** The endpoint the session uses now. */
  get current(): PathState | undefined {
    return this.#current;
  }

  /** Healthiest first: not avoided, fewest recent failures, fastest connect. */
  ordered(): PathState[] {
    const now = this.#now();
    return [...this.#paths].sort((a, b) =>
      Number(a.avoidUntil > now) - Number(b.avoidUntil > now) || a.failures - b.failures ||
      a.connectMs - b.connectMs
    );
  }

  /**
   * Tries `attempt` on every endpoint, healthiest first; resolves with the
   * first success. A refused resumption ("session_gone") ends the search at
   * once (the endpoint worked; the session is gone everywhere).
   */
  async connect<T>(
    attempt: (endpoint: Endpoint) => Promise<T>,
  ): Promise<{ value: T; path: PathState }> {
    let lastError: unknown;
    const order = this.ordered();
    for (let i = 0; i < order.length; i++) {
      const path = order[i]!;
      const t0 = performance.now();
      try {
        const value = await attempt(path.endpoint);
        path.connectMs = performance.now() - t0;
        path.failures = 0;
        return { value, path };
      } catch (e) {
        path.failures++;
        lastError = e;
        if (e instanceof TunnelError && e.kind === "session_gone") throw e;
        const next = order[i + 1];
        this.#o.events.emit({
          type: "connect_failed",
          endpoint: where(path),
          error: describeError(e),
          ...(next === undefined ? {} : { next: where(next) }),
        });
      }
    }
    throw lastError;
  }

  /** The current endpoint tampered with the tunnel: avoid it for a while. */
  avoidCurrent(): void {
    const path = this.#current;
    if (path === undefined) return;
    const forMs = this.#o.tamperPenaltyMs ?? TAMPER_PENALTY_MS;
    path.avoidUntil = this.#now() + forMs;
    this.#o.events.emit({
      type: "path_avoided",
      endpoint: where(path),
      forMs,
      reason: "tampered with the tunnel",
    });
  }

  /** Session `session` now runs over `path`; a change of endpoint is a `path_change`. */
  use(path: PathState, session: number, reason: string): void {
    const from = this.#current;
    this.#current = path;
    if (from === path) return;
    this.#o.events.emit({
      type: "path_change",
      session,
      from: from === undefined ? undefined : where(from),
      to: where(path),
      reason,
    });
  }
}
