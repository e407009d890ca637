/**
 * A fleet for the end-to-end tests: one server directory made the way a
 * user makes one (`initServerDir`, `addUser`), its server.yml pointed at a
 * private redis-server (`store.url`), and N servers started from it in this
 * process on loopback ports — same identity, certificate and users, each
 * with its own state file, events and log, as N machines behind one
 * address would be.
 *
 * Exports: `startFleet(redis, opts)` → `Fleet` `{ dir, servers, caPem,
 * profile(name), client(name, server), close() }`.
 *
 * @module
 */
import { join } from "node:path";
import {
  type ClientConfig,
  loadClientConfig,
  loadServerConfig,
  loadUsers,
} from "../../lib/config/mod.ts";
import { addUser, type AddUserOptions, initServerDir } from "../../lib/provision/mod.ts";
import { type ClientHandle, startClient } from "../../lib/tunnel/client.ts";
import { type ServerHandle, startServer } from "../../lib/tunnel/server.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { onTimeout, step } from "../support/deadline.ts";
import type { RedisServer } from "../support/redis.ts";
import { Logs, LOOPBACK_ROUTES } from "./_harness.ts";

/** One server of the fleet. */
export interface FleetServer {
  handle: ServerHandle;
  port: number;
  /** Everything it reported. */
  events: EventLog;
}

/** A running client of the fleet. */
export interface FleetClient {
  handle: ClientHandle;
  socksPort: number;
  events: EventLog;
  close(): Promise<void>;
}

/** A running fleet. */
export interface Fleet extends AsyncDisposable {
  dir: string;
  servers: FleetServer[];
  logs: Logs;
  /** The TLS CA every server's certificate chains to. */
  caPem: string;
  /** A user's profile as `user add` wrote it. */
  profile(name: string): Promise<ClientConfig>;
  /** Starts `name`'s client on a free SOCKS5 port, dialing server `i` (or `port`). */
  client(name: string, to: number | { port: number }): Promise<FleetClient>;
  close(): Promise<void>;
}

/** A user of the fleet: its name and limits (`user add` flags). */
export type FleetUser =
  & { name: string }
  & Pick<AddUserOptions, "maxTunnels" | "maxStreams" | "quota" | "bandwidth">;

/** Options for {@linkcode startFleet}. */
export interface FleetOptions {
  /** How many servers; default 3. */
  servers?: number;
  /** The users (routes: loopback); default alice alone. */
  users?: FleetUser[];
  /** More server.yml text (a `store:` section is written from `redis`). */
  serverYaml?: string;
  /** Extra lines of the `store:` section (e.g. `  password_file: redis.pass`). */
  storeYaml?: string;
  /** Files to write in the server directory first (name → text), e.g. a password file. */
  files?: Record<string, string>;
  /** Edits server.yml's text as `init` wrote it (for keys `init` already wrote). */
  editServer?: (text: string) => string;
}

/**
 * Starts the fleet on `redis`.
 *
 * @example
 * ```ts ignore
 * await using redis = await startRedis();
 * await using fleet = await startFleet(redis, { users: [{ name: "alice", maxTunnels: 2 }] });
 * const c = await fleet.client("alice", 1);
 * ```
 */
export function startFleet(redis: RedisServer, opts: FleetOptions = {}): Promise<Fleet> {
  return step("the fleet to start", fleetUp(redis, opts));
}

async function fleetUp(redis: RedisServer, opts: FleetOptions): Promise<Fleet> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-fleet-" });
  const logs = new Logs();
  const servers: FleetServer[] = [];
  const clients = new Set<FleetClient>();
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      forget();
      for (const c of [...clients]) await c.close();
      await Promise.all(servers.map((s) => s.handle.close()));
      for (const s of servers) s.events.close();
      await Deno.remove(dir, { recursive: true });
    })();
  const forget = onTimeout(close);
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
    for (const [name, text] of Object.entries(opts.files ?? {})) {
      await Deno.writeTextFile(join(dir, name), text, { mode: 0o600 });
    }
    const yml = join(dir, "server.yml");
    const store = `store:\n  url: ${JSON.stringify(redis.url)}\n${opts.storeYaml ?? ""}`;
    const edit = opts.editServer ?? ((t: string) => t);
    await Deno.writeTextFile(
      yml,
      `${edit(await Deno.readTextFile(yml)).trimEnd()}\n\n${store.trimEnd()}\n${
        opts.serverYaml === undefined ? "" : `\n${opts.serverYaml.trimEnd()}\n`
      }`,
    );
    for (const u of opts.users ?? [{ name: "alice" }]) {
      await addUser(u.name, {
        dir,
        out: join(dir, `${u.name}.yml`),
        server: "127.0.0.1:1",
        routes: [...LOOPBACK_ROUTES],
        ...(u.maxTunnels === undefined ? {} : { maxTunnels: u.maxTunnels }),
        ...(u.quota === undefined ? {} : { quota: u.quota }),
        ...(u.bandwidth === undefined ? {} : { bandwidth: u.bandwidth }),
        ...(u.maxStreams === undefined ? {} : { maxStreams: u.maxStreams }),
      });
    }
    const config = await loadServerConfig(yml);
    const n = opts.servers ?? 3;
    for (let i = 0; i < n; i++) {
      const hub = new EventHub();
      const events = new EventLog(hub);
      const { users } = await loadUsers(config.usersFile);
      const handle = await startServer({
        ...config,
        accounting: { ...config.accounting, stateFile: join(dir, `state-${i}.json`) },
        users,
        log: logs.logger(`server${i}`),
        events: hub,
      });
      servers.push({ handle, port: handle.addr.port, events });
    }
    const caPem = await Deno.readTextFile(join(dir, "tls", "ca.crt"));
    const profile = (name: string) => loadClientConfig(join(dir, `${name}.yml`));
    let seq = 0;
    const fleet: Fleet = {
      dir,
      servers,
      logs,
      caPem,
      profile,
      async client(name, to) {
        const port = typeof to === "number" ? servers[to]!.port : to.port;
        const hub = new EventHub();
        const events = new EventLog(hub);
        const handle = await startClient({
          profile: await profile(name),
          log: logs.logger(`client-${name}-${++seq}`),
          events: hub,
          server: { host: "127.0.0.1", port },
          socks: { host: "127.0.0.1", port: 0 },
          lazy: false,
        });
        let done: Promise<void> | undefined;
        const c: FleetClient = {
          handle,
          socksPort: handle.socksAddr.port,
          events,
          close: () =>
            done ??= (async () => {
              clients.delete(c);
              await handle.close();
              events.close();
            })(),
        };
        clients.add(c);
        return c;
      },
      close,
      [Symbol.asyncDispose]: close,
    };
    return fleet;
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
}
