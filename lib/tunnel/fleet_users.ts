/**
 * The server's side of `store.users: true`: its users come from the fleet's
 * Redis (`lib/fleet/fleet_users.ts`) instead of its users.yml. It reads them
 * at start, reloads them when a write is published, and also compares the
 * store's version with its own every 2 s (a message missed while the
 * connection was down). When Redis does not answer, or holds a document
 * that does not parse, the server keeps the users it last read.
 *
 * @module
 */
import { parseUsers, type UserSource } from "../config/mod.ts";
import { type Fleet, FleetUsersDoc, USERS_POLL_MS } from "../fleet/mod.ts";
import { describeError, type Logger } from "../observe/mod.ts";

/** Options for {@linkcode shareUsers}. */
export interface ShareUsersOptions {
  /** Gives the server a new set of users (ends sessions of users now disabled or gone). */
  apply(users: UserSource): void;
  log: Logger;
  /** `store.url`, for the log. */
  url: string;
}

/** The fleet's users, kept current. */
export interface SharedUsers {
  /** The version of the users now served (0: the store holds none; the users.yml ones are served). */
  readonly version: number;
  /** Reads the store again now (after an outage); resolves when done. */
  reload(): Promise<void>;
  /** Stops listening. */
  close(): void;
}

/**
 * Reads the fleet's users and keeps them current. Rejects when the store's
 * users do not parse at start (the server would serve nobody it means to).
 *
 * @example
 * ```ts ignore
 * const shared = await shareUsers(fleet, { apply: (u) => users.replace(u), log, url });
 * shared.close();
 * ```
 */
export async function shareUsers(fleet: Fleet, options: ShareUsersOptions): Promise<SharedUsers> {
  const { log } = options;
  const doc = new FleetUsersDoc(fleet.link, fleet.key(""));
  const where = `the fleet's users in ${options.url} (${fleet.key("users")})`;
  let version = 0;
  let closed = false;
  let running: Promise<void> | undefined;
  let again = false;

  async function load(atStart: boolean): Promise<void> {
    const d = await doc.read();
    if (d === undefined || d.version === version) return;
    let users;
    try {
      users = parseUsers(d.yaml, where).users;
    } catch (e) {
      if (atStart) throw e;
      log.error(`users not reloaded (the last ones read stay): ${describeError(e)}`);
      version = d.version; // told once per bad version
      return;
    }
    version = d.version;
    options.apply(users);
    log.info(
      `${atStart ? "serving" : "reloaded"} ${users.size} users from ${where} (version ${version})`,
    );
  }

  /** One load at a time; a request meanwhile loads once more after it. */
  function reload(): Promise<void> {
    if (closed) return Promise.resolve();
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        // Redis down: the last users read stay (the link logs the outage).
        await load(false).catch((e) => log.debug(`users not read: ${describeError(e)}`));
      } while (again && !closed);
      running = undefined;
    })();
    return running;
  }

  await load(true);
  if (version === 0) {
    log.warn(
      `store.users: ${where} holds no users yet: serving users.yml until "nitrosocks user" ` +
        "writes there (the first add, set or remove copies users.yml to the store)",
    );
  }
  await fleet.link.subscribe(doc.channel, () => void reload());
  const poll = setInterval(() => {
    doc.version().then((v) => {
      if (v !== version) void reload();
    }, () => {});
  }, USERS_POLL_MS);
  return {
    get version() {
      return version;
    },
    reload,
    close() {
      closed = true;
      clearInterval(poll);
    },
  };
}
