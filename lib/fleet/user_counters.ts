/**
 * The counters of a fleet: each user's counters (bytes, streams, logins,
 * kicks, the quota period's bytes) are one Redis hash `user:NAME` that
 * every server increments (one script per user per batch: atomic, the
 * period moved first when a batch begins a new one); the server's own
 * counters stay in its local store (the state file), since they describe
 * that server. `sessionsLive` stays local too: a gauge a crashed server
 * could not take back.
 *
 * A batch Redis does not take is kept and carried with the next one (the
 * `AccountingStore` contract), so counters reconcile when Redis returns.
 *
 * @module
 */
import {
  type AccountingBatch,
  type AccountingSnapshot,
  type AccountingStore,
  USER_COUNTER_NAMES,
  type UserCounters,
  type UserDelta,
} from "../accounting/mod.ts";
import type { Fleet } from "./fleet.ts";

// KEYS[1] the user's hash, KEYS[2] the set of users; ARGV[1] name, ARGV[2] period start or "",
// then field/increment pairs. Bytes also count toward the period while one is begun.
const APPLY = `
redis.call('SADD', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  local cur = redis.call('HGET', KEYS[1], 'periodStart')
  if not cur or tonumber(cur) < tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'periodStart', ARGV[2], 'periodIn', 0, 'periodOut', 0)
  end
end
local period = redis.call('HEXISTS', KEYS[1], 'periodStart') == 1
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  if period and ARGV[i] == 'bytesIn' then redis.call('HINCRBY', KEYS[1], 'periodIn', ARGV[i + 1]) end
  if period and ARGV[i] == 'bytesOut' then redis.call('HINCRBY', KEYS[1], 'periodOut', ARGV[i + 1]) end
end
return 1
`;

/** The counters Redis keeps per user (`sessionsLive` is local). */
const SHARED_FIELDS = USER_COUNTER_NAMES.filter((n) => n !== "sessionsLive");

function mergeUsers(into: Map<string, UserDelta>, from: Map<string, UserDelta>): void {
  for (const [name, d] of from) {
    const cur = into.get(name);
    if (cur === undefined) {
      into.set(name, { ...d });
      continue;
    }
    for (const f of SHARED_FIELDS) {
      const v = d[f];
      if (v !== undefined) cur[f] = (cur[f] ?? 0) + v;
    }
    if (d.periodStart !== undefined) cur.periodStart = d.periodStart;
  }
}

function decodeUser(h: Record<string, string>): UserCounters {
  const n = (k: string) => {
    const v = Number(h[k] ?? 0);
    return Number.isFinite(v) ? v : 0;
  };
  const u: UserCounters = {
    bytesIn: n("bytesIn"),
    bytesOut: n("bytesOut"),
    streamsOpened: n("streamsOpened"),
    streamsRefused: n("streamsRefused"),
    loginsOk: n("loginsOk"),
    loginsResumed: n("loginsResumed"),
    loginsFailed: n("loginsFailed"),
    kicks: n("kicks"),
    sessionsLive: 0,
  };
  if (h.periodStart !== undefined) {
    u.period = { start: n("periodStart"), bytesIn: n("periodIn"), bytesOut: n("periodOut") };
  }
  return u;
}

/**
 * Users' counters in Redis, the server's in `local`.
 *
 * @example
 * ```ts ignore
 * const store = new FleetCounters(fleet, await FileStore.open("state.json"));
 * const acct = await Accountant.start(events, { store, users });
 * ```
 */
export class FleetCounters implements AccountingStore {
  readonly #fleet: Fleet;
  readonly #local: AccountingStore;
  /** User increments Redis has not taken yet. */
  #unsent = new Map<string, UserDelta>();
  #sending: Promise<void> = Promise.resolve();

  constructor(fleet: Fleet, local: AccountingStore) {
    this.#fleet = fleet;
    this.#local = local;
  }

  /** The server's counters from the local store, the users' from Redis (empty when it is down). */
  async snapshot(): Promise<AccountingSnapshot> {
    const snap = await this.#local.snapshot();
    const users = new Map<string, UserCounters>();
    try {
      const names = await this.#fleet.link.run((c) => c.sMembers(this.#fleet.key("users")));
      for (const [n, u] of await this.users(names)) users.set(n, u);
    } catch {
      // Redis down at start: the users' counters come with the first refresh once it is back.
    }
    return { server: snap.server, users };
  }

  async user(name: string): Promise<UserCounters | undefined> {
    return (await this.users([name])).get(name);
  }

  /** These users' fleet-wide counters (those Redis has; rejects when Redis does not answer). */
  async users(names: readonly string[]): Promise<Map<string, UserCounters>> {
    const out = new Map<string, UserCounters>();
    if (names.length === 0) return out;
    const hashes = await this.#fleet.link.run((c) => {
      const m = c.multi();
      for (const n of names) m.hGetAll(this.#fleet.key(`user:${n}`));
      return m.exec() as unknown as Promise<Record<string, string>[]>;
    });
    names.forEach((n, i) => {
      const h = hashes[i];
      if (h !== undefined && Object.keys(h).length > 0) out.set(n, decodeUser(h));
    });
    return out;
  }

  /** Server counters to the local store; user counters to Redis, carried over while it fails. */
  add(batch: AccountingBatch): Promise<void> {
    mergeUsers(this.#unsent, batch.users);
    const local = this.#local.add({ server: batch.server, users: new Map() });
    const run = this.#sending.catch(() => {}).then(() => this.#send());
    this.#sending = run;
    return Promise.all([local, run]).then(() => {});
  }

  async #send(): Promise<void> {
    if (this.#unsent.size === 0) return;
    const batch = this.#unsent;
    this.#unsent = new Map();
    try {
      await this.#fleet.link.run((c) => {
        const m = c.multi();
        for (const [name, d] of batch) {
          const args = [name, d.periodStart === undefined ? "" : String(d.periodStart)];
          for (const f of SHARED_FIELDS) {
            const v = d[f];
            if (v !== undefined && v !== 0) args.push(f, String(Math.round(v)));
          }
          m.eval(APPLY, {
            keys: [this.#fleet.key(`user:${name}`), this.#fleet.key("users")],
            arguments: args,
          });
        }
        return m.exec();
      });
    } catch (e) {
      // Not taken (or not known to be): carried with the next batch.
      mergeUsers(batch, this.#unsent);
      this.#unsent = batch;
      throw e;
    }
  }

  async forget(names: readonly string[]): Promise<void> {
    for (const n of names) this.#unsent.delete(n);
    // Another server may still serve them (its users.yml not changed yet): Redis keeps them.
    await Promise.resolve();
  }

  /** Writes what is pending (the local store's and, when Redis answers, the users'). */
  async close(): Promise<void> {
    await this.#sending.catch(() => {});
    await this.#send().catch(() => {});
    await this.#local.close();
  }
}
