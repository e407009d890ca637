/**
 * `listen()`: a NitroSocks server in this process.
 *
 * @module
 */
import { loadServerConfig, type ServerConfig } from "../config/mod.ts";
import { EventHub, type Logger, type LogLevel } from "../observe/mod.ts";
import { type ServerEngine, startServerEngine } from "./_server_engine.ts";
import { abortable, resolveLog } from "./_options.ts";

/** Options for {@linkcode listen}. */
export interface ListenOptions {
  /** Aborting it stops the server (or the start, while starting). */
  signal?: AbortSignal;
  /**
   * Where log lines go: a level (to stderr) or a `Logger`. Default: no
   * log lines (`server.events` reports what happens either way).
   */
  log?: LogLevel | Logger;
  /**
   * Report events here (becomes `server.events`): subscribe before
   * starting to see everything. Default: a new hub.
   */
  events?: EventHub;
}

/**
 * A running server: it accepts tunnels on `addr`, serves their
 * connections under each user's routes, and hands anything that is not a
 * NitroSocks client to its fallback web site. `await using` stops it.
 *
 * @example
 * ```ts ignore
 * import { listen } from "../../mod.ts";
 * await using server = await listen("/etc/nitrosocks/server.yml", { log: "info" });
 * console.log(`listening on port ${server.addr.port}`);
 * await server.finished;
 * ```
 */
export interface TunnelServer extends AsyncDisposable {
  /** The address tunnels are accepted on (port 0 in the config resolves to the real port). */
  readonly addr: Deno.NetAddr;
  /** What happens on the server: logins, refusals, sessions, streams. */
  readonly events: EventHub;
  /** Resolves when the server has stopped accepting (after `close()` or the signal). */
  readonly finished: Promise<void>;
  /** Re-reads the users file: new users may log in; live sessions keep running. */
  reloadUsers(): Promise<void>;
  /** Stops accepting and ends every tunnel (telling each client it is over). */
  close(): Promise<void>;
}

/**
 * Starts a server from its configuration: a path to `server.yml` (as
 * `nitrosocks init DIR` writes it; users come from its users file) or a
 * configuration already parsed. Rejects with a `ConfigError` for a bad
 * file, or an error naming the address when it cannot listen.
 *
 * @example Start a server on a free loopback port and stop it
 * ```ts
 * import { listen } from "../../mod.ts";
 * import { initServerDir } from "../provision/mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir, { listen: "127.0.0.1:0" });
 * const controller = new AbortController();
 * const server = await listen(`${dir}/server.yml`, { signal: controller.signal });
 * if (server.addr.port === 0) throw new Error("expected a real port");
 * controller.abort();
 * await server.finished;
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listen(
  config: string | ServerConfig,
  options: ListenOptions = {},
): Promise<TunnelServer> {
  const signal = options.signal;
  signal?.throwIfAborted();
  const parsed = typeof config === "string" ? await loadServerConfig(config) : config;
  const events = options.events ?? new EventHub();
  const starting = startServerEngine(parsed, {
    log: resolveLog(options.log, "nitrosocks server"),
    events,
  });
  let engine: ServerEngine;
  try {
    engine = await abortable(starting, signal);
  } catch (e) {
    starting.then((s) => s.close(), () => {});
    throw e;
  }
  return new Server(engine, events, signal);
}

class Server implements TunnelServer {
  readonly addr: Deno.NetAddr;
  readonly events: EventHub;
  readonly #engine: ServerEngine;
  readonly #signal: AbortSignal | undefined;
  #closing: Promise<void> | undefined;

  constructor(engine: ServerEngine, events: EventHub, signal: AbortSignal | undefined) {
    this.#engine = engine;
    this.events = events;
    this.addr = { transport: "tcp", hostname: engine.addr.hostname, port: engine.addr.port };
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  get finished(): Promise<void> {
    // After close(), the accept loop ends first: wait for the rest of the shutdown too.
    return this.#engine.done.then(() => this.#closing);
  }

  reloadUsers(): Promise<void> {
    return this.#engine.reloadUsers();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#signal?.removeEventListener("abort", this.#onAbort);
      await this.#engine.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onAbort = (): void => {
    this.close().catch(() => {});
  };
}
