/**
 * The fleet's users in Redis (`store.users: true` in server.yml): one
 * users.yml document, the same text a server directory's users.yml holds,
 * kept in the hash `PREFIX users` (fields `yaml` and `version`). Writers
 * (`nitrosocks user add|set|remove`) take the lock `PREFIX users:lock`,
 * read, edit and write the document; each write bumps `version` and is
 * published on the channel `PREFIX users`, and every server reloads it
 * (and also looks at `version` every {@linkcode USERS_POLL_MS}, for a
 * message missed while its connection was down).
 *
 * @module
 */
import { type RedisLink, StoreUnavailableError } from "./redis.ts";

/** How often a server compares its users' version with the store's (ms). */
export const USERS_POLL_MS = 2_000;
/** How long a writer's lock lives without being released (ms). */
const LOCK_TTL_MS = 10_000;
/** How long a writer waits for another writer's lock (ms). */
const LOCK_WAIT_MS = 5_000;

/** The users document as the store holds it. */
export interface UsersDoc {
  /** users.yml text. */
  yaml: string;
  /** Bumped by every write (1 for the first). */
  version: number;
}

// KEYS[1] the document, KEYS[2] the lock; ARGV: lock token, yaml, channel.
// Writes only while the caller holds the lock; returns the new version, or 0.
const SAVE = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'yaml', ARGV[2])
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', ARGV[3], tostring(v))
return v
`;

// KEYS[1] the lock; ARGV[1] the token. Releases the lock if the caller still holds it.
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * The users document of the fleet under `prefix`.
 *
 * @example
 * ```ts ignore
 * const doc = new FleetUsersDoc(link, "nitrosocks:");
 * await doc.edit(async (current, save) => {
 *   await save((current?.yaml ?? "users: {}\n") + "# a comment\n");
 * });
 * ```
 */
export class FleetUsersDoc {
  readonly #link: RedisLink;
  readonly #prefix: string;

  constructor(link: RedisLink, prefix: string) {
    this.#link = link;
    this.#prefix = prefix;
  }

  /** The channel every write is published on. */
  get channel(): string {
    return this.#prefix + "users";
  }

  /** The document, or undefined when the store holds no users yet. */
  async read(): Promise<UsersDoc | undefined> {
    const [yaml, version] = await this.#link.run((c) =>
      c.hmGet(this.#prefix + "users", ["yaml", "version"])
    );
    if (typeof yaml !== "string") return undefined;
    return { yaml, version: Number(version ?? 0) };
  }

  /** The document's version (0 when there is none); a cheap look for changes. */
  async version(): Promise<number> {
    const v = await this.#link.run((c) => c.hGet(this.#prefix + "users", "version"));
    return Number(v ?? 0);
  }

  /**
   * Runs `fn` holding the fleet's users lock, with the document as it is and
   * a `save` that replaces it (published to every server). Rejects with
   * {@linkcode StoreUnavailableError} when Redis does not answer, or when
   * another writer holds the lock for longer than 5 s.
   */
  async edit<T>(
    fn: (current: UsersDoc | undefined, save: (yaml: string) => Promise<number>) => Promise<T>,
  ): Promise<T> {
    const lock = this.#prefix + "users:lock";
    const token = crypto.randomUUID();
    const deadline = Date.now() + LOCK_WAIT_MS;
    while (
      await this.#link.run((c) => c.set(lock, token, { NX: true, PX: LOCK_TTL_MS })) === null
    ) {
      if (Date.now() > deadline) {
        throw new StoreUnavailableError(
          `another "nitrosocks user" command has held the users lock (${lock}) for 5 s; ` +
            "try again, or delete the key if no such command runs",
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      return await fn(await this.read(), async (yaml) => {
        const v = Number(
          await this.#link.run((c) =>
            c.eval(SAVE, {
              keys: [this.#prefix + "users", lock],
              arguments: [token, yaml, this.channel],
            })
          ),
        );
        if (!(v > 0)) {
          throw new StoreUnavailableError(
            `the users lock (${lock}) expired before the write: nothing was changed; try again`,
          );
        }
        return v;
      });
    } finally {
      await this.#link.run((c) => c.eval(UNLOCK, { keys: [lock], arguments: [token] })).catch(
        () => {},
      );
    }
  }
}
