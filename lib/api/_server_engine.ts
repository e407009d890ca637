/**
 * The one place the public API starts a server.
 *
 * `startServer` takes plain settings and a user source; this adapter reads
 * the configuration's users file for it (and again on `reloadUsers`).
 *
 * @module
 */
import { loadUsers, reloadUsersFile, type ServerConfig } from "../config/mod.ts";
import type { EventHub, Logger } from "../observe/mod.ts";
import { startServer } from "../tunnel/server.ts";

/** Options for {@linkcode startServerEngine}. */
export interface ServerEngineOptions {
  log: Logger;
  events: EventHub;
}

/** A running server, as the public API uses it. */
export interface ServerEngine {
  /** The address actually bound (port 0 resolves to the real port). */
  readonly addr: { hostname: string; port: number };
  /**
   * Re-reads the users file; live sessions keep running, except those of
   * users now removed, disabled, expired or over quota, which end.
   */
  reloadUsers(): Promise<void>;
  /** Stops listening and ends every tunnel. */
  close(): Promise<void>;
  /** Resolves when the accept loop ends. */
  readonly done: Promise<void>;
}

/**
 * Starts a server from a parsed configuration (its users from its users file).
 *
 * @example
 * ```ts ignore
 * const engine = await startServerEngine(config, { log, events: new EventHub() });
 * console.log(engine.addr.port);
 * await engine.close();
 * ```
 */
export async function startServerEngine(
  config: ServerConfig,
  options: ServerEngineOptions,
): Promise<ServerEngine> {
  const { users } = await loadUsers(config.usersFile);
  const server = await startServer({ ...config, users, log: options.log, events: options.events });
  return {
    addr: server.addr,
    done: server.done,
    close: () => server.close(),
    async reloadUsers() {
      server.setUsers((await reloadUsersFile(config.usersFile)).users);
    },
  };
}
