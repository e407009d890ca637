/**
 * Where a server directory's users live: its `users.yml`, or, with
 * `store.users: true` in server.yml, the fleet's Redis (one users.yml
 * document every server of the fleet reloads when it changes;
 * `lib/fleet/fleet_users.ts`). `user add|set|remove|list|token` read and
 * write through here, so they work the same on both.
 *
 * @module
 */
import { loadUsers, parseUsers, type ServerConfig, type UsersConfig } from "../config/mod.ts";
import { FleetUsersDoc, RedisLink } from "../fleet/mod.ts";
import { replaceFile, withLock } from "./_files.ts";

/** True when the users of `cfg` live in the fleet's Redis (`store.users`). */
export function usersInStore(cfg: ServerConfig): boolean {
  return cfg.store.kind === "redis" && cfg.store.users;
}

/** How the command's output names where the users are: the file, or the store. */
export function usersPlace(cfg: ServerConfig): string {
  return usersInStore(cfg) && cfg.store.kind === "redis"
    ? `the fleet's users in ${cfg.store.url} (${cfg.store.prefix}users)`
    : cfg.usersFile;
}

async function withDoc<T>(cfg: ServerConfig, fn: (doc: FleetUsersDoc) => Promise<T>): Promise<T> {
  if (cfg.store.kind !== "redis") throw new TypeError("Cannot reach the store: store.url is file");
  const store = cfg.store;
  const link = await RedisLink.connect({
    url: store.url,
    ...(store.password === undefined ? {} : { password: store.password }),
    ...(store.tlsCaPem === undefined ? {} : { tlsCaPem: store.tlsCaPem }),
  }).catch((e) => {
    throw new Error(
      `${e instanceof Error ? e.message : String(e)} (store.users in ${cfg.file}: ` +
        "the users live there; start Redis, or check store.url)",
      { cause: e },
    );
  });
  try {
    return await fn(new FleetUsersDoc(link, store.prefix));
  } finally {
    await link.close();
  }
}

/**
 * Runs `fn` with the users' text and a `save` that replaces it, holding the
 * users' lock (`users.yml.lock`, or the store's). Until the store holds
 * users, its text is the directory's users.yml: the first write copies
 * that file (with the change) to the store.
 */
export function editUsersText<T>(
  cfg: ServerConfig,
  fn: (text: string, save: (text: string) => Promise<void>) => Promise<T>,
): Promise<T> {
  if (!usersInStore(cfg)) {
    return withLock(
      cfg.usersFile,
      async () =>
        fn(await Deno.readTextFile(cfg.usersFile), (text) => replaceFile(cfg.usersFile, text)),
    );
  }
  return withDoc(
    cfg,
    (doc) =>
      doc.edit(async (current, save) =>
        fn(current?.yaml ?? await Deno.readTextFile(cfg.usersFile), async (text) => {
          await save(text);
        })
      ),
  );
}

/** The users of `cfg`: its users.yml, or the store's (its users.yml until the store has some). */
export async function readUsers(cfg: ServerConfig): Promise<UsersConfig> {
  const doc = usersInStore(cfg) ? await withDoc(cfg, (d) => d.read()) : undefined;
  return doc === undefined ? await loadUsers(cfg.usersFile) : parseUsers(doc.yaml, usersPlace(cfg));
}
