/**
 * What the servers of a fleet share through one Redis (`store:` in
 * server.yml), and what each does when Redis does not answer:
 *
 * | shared                | Redis                                 | when Redis does not answer          |
 * | --------------------- | ------------------------------------- | ----------------------------------- |
 * | replay cache          | `replay:NONCE` (NX, PX 2×window) and `replay_epoch` | fail closed: the Hello is a probe |
 * | tunnels per user      | lease set `tunnels:USER` (expiring)    | fail open: local caps only          |
 * | kicks and revocations | channel `kick`                        | this server only; not replayed      |
 * | user counters, quota  | hash `user:USER` (`user_counters.ts`) | kept locally, written when back     |
 *
 * Keys and channels start with `store.prefix`. Lease expiry uses Redis's own
 * clock (`TIME` in the scripts), so servers' clocks need not agree for it.
 *
 * @module
 */
import { type RedisLink, StoreUnavailableError } from "./redis.ts";

/** How long a tunnel lease lives without renewal (ms): a crashed server's leases vanish after it. */
export const LEASE_TTL_MS = 15_000;
/** How often a server renews the leases of its connected tunnels (ms). */
export const LEASE_RENEW_MS = 5_000;

/**
 * What a fleet-wide replay check says: "ok" (first claim), "replay" (claimed
 * before), "before_epoch" (stamped before Redis's replay epoch, within a clock
 * window of it: Redis may have forgotten its nonce), "unavailable".
 */
export type ClaimVerdict = "ok" | "replay" | "before_epoch" | "unavailable";

/** A claim's verdict with the fleet's replay epoch (ms, Redis clock) and whether this claim set it. */
export interface Claim {
  verdict: ClaimVerdict;
  /** The replay epoch; 0 when Redis did not answer. */
  epoch: number;
  /** True when the epoch marker was missing and this claim wrote it. */
  created: boolean;
}

/** What a fleet-wide tunnel admission says. */
export type LeaseVerdict = "ok" | "over" | "unavailable";

/** A kick or revocation published to the fleet. */
export interface FleetKick {
  user: string;
  /** What the ended sessions' NOTICE says. */
  reason: string;
  /** The NOTICE's release code. */
  code: number;
}

/** One lease: the user and the lease's id (the tunnel's session id, unique in the fleet). */
export interface Lease {
  user: string;
  id: string;
}

/** Lua: `now`, the time in ms by Redis's clock (so the servers' clocks need not agree). */
const NOW =
  "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

// ZSET of lease id -> expiry (ms, Redis clock). KEYS[1] the user's set; ARGV: lease id, max
// (-1: none), ttl ms, then lease ids to drop first (this server's tunnels that gave their place).
const ACQUIRE = `
${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 4, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
local max = tonumber(ARGV[2])
if max >= 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

// KEYS: the users' sets; ARGV[1] ttl ms, then one lease id per key.
const RENEW = `
${NOW}
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return #KEYS
`;

// KEYS: the users' sets of servers moving their traffic; ARGV[1] this server, ARGV[2] ttl ms.
// Marks this server active for each user and returns how many servers are.
const ACTIVE = `
${NOW}
local ttl = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl)
  out[i] = redis.call('ZCARD', KEYS[i])
end
return out
`;

// KEYS[1] the failure count, KEYS[2] the lock; ARGV: failures, window ms, duration ms.
// Counts a failed login (fixed window from the first failure); returns the lock's end (ms, Redis
// clock) when this failure starts a lock, else 0.
const FAILED = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n < tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
${NOW}
local untilMs = now + tonumber(ARGV[3])
redis.call('SET', KEYS[2], untilMs, 'PX', ARGV[3])
return untilMs
`;

// KEYS[1] the list of ticket keys, newest first; ARGV: id, key (base64url), rotate ms, keep,
// channel. Pushes the new key when the list is empty or its newest key is older than the rotation
// interval, keeps the newest `keep`, and tells the servers; returns 1 if it rotated.
const ROTATE = `
${NOW}
local top = redis.call('LINDEX', KEYS[1], 0)
if top and now - tonumber(cjson.decode(top).created) < tonumber(ARGV[3]) then return 0 end
redis.call('LPUSH', KEYS[1], cjson.encode({ id = tonumber(ARGV[1]), key = ARGV[2], created = now }))
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[5], 'rotated')
return 1
`;

// The replay claim and the replay epoch in one round trip. KEYS[1] the epoch marker, KEYS[2] the
// nonce's key (absent: only check the marker); ARGV: clock window ms, the Hello's timestamp (ms),
// the nonce key's ttl ms. The marker (no expiry) holds the time Redis's replay cache was last
// known to start empty: written at first use and whenever it is missing (Redis lost its data).
// Within one clock window of it, a Hello stamped before it is refused: its nonce may have been
// claimed before the loss. Returns { 1 ok | 0 replay | -1 before the epoch, epoch, created }.
const CLAIM = `
${NOW}
local epoch = tonumber(redis.call('GET', KEYS[1]))
local created = 0
if not epoch then
  epoch = now
  created = 1
  redis.call('SET', KEYS[1], epoch)
end
if #KEYS < 2 then return { 1, epoch, created } end
if now < epoch + tonumber(ARGV[1]) and tonumber(ARGV[2]) < epoch then return { -1, epoch, created } end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return { 1, epoch, created } end
return { 0, epoch, created }
`;

/** A ticket key as the fleet keeps it. */
export interface StoredTicketKey {
  /** The key id (u32). */
  id: number;
  /** 32 bytes, base64url. */
  key: string;
  /** When it was made (ms since the epoch, Redis clock). */
  created: number;
}

/** A failed-login lock published to the fleet (`auth.lockout`). */
export interface FleetLock {
  by: "source" | "user";
  /** The source key (an address, or an IPv6 /64) or the user name. */
  key: string;
  /** When the lock ends (ms since the epoch). */
  until: number;
}

// KEYS: the users' hashes of streams per server; ARGV[1] this server, ARGV[2] ttl ms, then this
// server's count per key. Records this server's counts, drops stale ones, returns the others' sums.
const STREAMS = `
${NOW}
local ttl = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[1], ARGV[i + 2] .. ':' .. (now + ttl))
  redis.call('PEXPIRE', KEYS[i], ttl)
  local all = redis.call('HGETALL', KEYS[i])
  local others = 0
  for j = 1, #all, 2 do
    local n, exp = string.match(all[j + 1], '^(%d+):(%d+)$')
    if not exp or tonumber(exp) <= now then redis.call('HDEL', KEYS[i], all[j])
    elseif all[j] ~= ARGV[1] then others = others + tonumber(n) end
  end
  out[i] = others
end
return out
`;

/** How long a server counts as moving a user's traffic after it last said so (ms). */
export const ACTIVE_TTL_MS = 1_000;

function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** Options for {@linkcode Fleet}. */
export interface FleetOptions {
  link: RedisLink;
  /** `store.prefix`. */
  prefix: string;
  /** Distinguishes this process's kick messages from the other servers'. */
  serverId: string;
}

/**
 * The fleet's shared state, over a {@linkcode RedisLink}.
 *
 * @example
 * ```ts ignore
 * const fleet = new Fleet({ link, prefix: "nitrosocks:", serverId: "a1b2" });
 * await fleet.claimNonce(nonce, Date.now(), 120_000); // "ok" once fleet-wide, then "replay"
 * ```
 */
export class Fleet {
  readonly #link: RedisLink;
  readonly #prefix: string;
  /** This process's id in lease ids and messages. */
  readonly serverId: string;
  #kickHandlers = new Set<(k: FleetKick) => void>();
  #lockHandlers = new Set<(l: FleetLock) => void>();
  #rotatedHandlers = new Set<() => void>();

  constructor(options: FleetOptions) {
    this.#link = options.link;
    this.#prefix = options.prefix;
    this.serverId = options.serverId;
  }

  /** True while Redis answers. */
  get up(): boolean {
    return this.#link.up;
  }

  /** The underlying connection (for the counters' store). */
  get link(): RedisLink {
    return this.#link;
  }

  /** The key `name` under the prefix. */
  key(name: string): string {
    return this.#prefix + name;
  }

  /**
   * Claims a Hello nonce for the whole fleet: "ok" the first time any server
   * asks, "replay" after, "before_epoch" when Redis lost its data less than
   * `windowMs` ago and the Hello is stamped (`timestampMs`) before it noticed,
   * "unavailable" when Redis does not answer (the caller refuses the Hello: a
   * replay cache it cannot consult could let a replayed Hello through). The
   * nonce's key lives 2 × `windowMs` (the clock window on both sides of now).
   * One round trip (a script), which also checks the replay epoch.
   */
  async claimNonce(nonce: Uint8Array, timestampMs: number, windowMs: number): Promise<Claim> {
    return await this.#claim(
      [this.key("replay_epoch"), this.key(`replay:${hex(nonce)}`)],
      [String(windowMs), String(Math.floor(timestampMs)), String(Math.max(1, 2 * windowMs))],
    );
  }

  /**
   * Checks the replay epoch marker alone (at connect and on every
   * reconnect), writing it when missing: a Redis that lost its data is
   * noticed before the next Hello.
   */
  async checkEpoch(): Promise<Claim> {
    return await this.#claim([this.key("replay_epoch")], []);
  }

  async #claim(keys: string[], args: string[]): Promise<Claim> {
    try {
      const r = await this.#link.run((c) => c.eval(CLAIM, { keys, arguments: args })) as number[];
      const code = Number(r[0]);
      const verdict = code === 1 ? "ok" : code === -1 ? "before_epoch" : "replay";
      return { verdict, epoch: Number(r[1]), created: Number(r[2]) === 1 };
    } catch (e) {
      if (e instanceof StoreUnavailableError) {
        return { verdict: "unavailable", epoch: 0, created: false };
      }
      throw e;
    }
  }

  /**
   * Takes a tunnel lease for `lease.user` if they hold fewer than `max`
   * (undefined: no cap, the lease is only counted). `drop` names leases of
   * this server to remove first (tunnels that just gave their place).
   */
  async acquire(lease: Lease, max: number | undefined, drop: string[] = []): Promise<LeaseVerdict> {
    try {
      const r = await this.#link.run((c) =>
        c.eval(ACQUIRE, {
          keys: [this.key(`tunnels:${lease.user}`)],
          arguments: [lease.id, String(max ?? -1), String(LEASE_TTL_MS), ...drop],
        })
      );
      return r === 1 ? "ok" : "over";
    } catch (e) {
      if (e instanceof StoreUnavailableError) return "unavailable";
      throw e;
    }
  }

  /** Renews these leases (and puts back any Redis lost); false when Redis did not answer. */
  async renew(leases: readonly Lease[]): Promise<boolean> {
    if (leases.length === 0) return true;
    try {
      await this.#link.run((c) =>
        c.eval(RENEW, {
          keys: leases.map((l) => this.key(`tunnels:${l.user}`)),
          arguments: [String(LEASE_TTL_MS), ...leases.map((l) => l.id)],
        })
      );
      return true;
    } catch (e) {
      if (e instanceof StoreUnavailableError) return false;
      throw e;
    }
  }

  /** Gives a lease back; one Redis cannot take now expires by itself. */
  async release(lease: Lease): Promise<void> {
    await this.#link.run((c) => c.zRem(this.key(`tunnels:${lease.user}`), lease.id)).catch(
      () => {},
    );
  }

  /**
   * Says that this server moves `users`' traffic now, and learns over how
   * many servers each one's traffic goes (this one included); undefined
   * when Redis does not answer.
   */
  async active(users: readonly string[]): Promise<Map<string, number> | undefined> {
    if (users.length === 0) return new Map();
    try {
      const counts = await this.#link.run((c) =>
        c.eval(ACTIVE, {
          keys: users.map((u) => this.key(`bandwidth:${u}`)),
          arguments: [this.serverId, String(ACTIVE_TTL_MS)],
        })
      ) as number[];
      return new Map(users.map((u, i) => [u, Math.max(1, Number(counts[i] ?? 1))]));
    } catch (e) {
      if (e instanceof StoreUnavailableError) return undefined;
      throw e;
    }
  }

  /**
   * Records how many streams each of `counts`' users has open on this
   * server, and learns how many they have on the other servers (counts
   * older than `ACTIVE_TTL_MS` dropped); undefined when Redis does not answer.
   */
  async streams(counts: ReadonlyMap<string, number>): Promise<Map<string, number> | undefined> {
    const users = [...counts.keys()];
    if (users.length === 0) return new Map();
    try {
      const others = await this.#link.run((c) =>
        c.eval(STREAMS, {
          keys: users.map((u) => this.key(`streams:${u}`)),
          arguments: [
            this.serverId,
            String(ACTIVE_TTL_MS),
            ...users.map((u) => String(counts.get(u))),
          ],
        })
      ) as number[];
      return new Map(users.map((u, i) => [u, Number(others[i] ?? 0)]));
    } catch (e) {
      if (e instanceof StoreUnavailableError) return undefined;
      throw e;
    }
  }

  /** How many live leases `user` holds fleet-wide (undefined when Redis does not answer). */
  async leases(user: string): Promise<number | undefined> {
    try {
      return await this.#link.run(async (c) => {
        const k = this.key(`tunnels:${user}`);
        const [t] = await c.time() as unknown as [string, string];
        return await c.zCount(k, Number(t) * 1000, "+inf");
      });
    } catch {
      return undefined;
    }
  }

  /**
   * Counts a failed login against a source or a user fleet-wide; when it
   * reaches `failures` within `windowMs`, locks it for `durationMs`,
   * publishes the lock to the other servers and returns it. Undefined
   * otherwise, and when Redis does not answer (each server's own count
   * still locks).
   */
  async failedLogin(
    by: "source" | "user",
    key: string,
    limits: { failures: number; windowMs: number; durationMs: number },
  ): Promise<FleetLock | undefined> {
    try {
      const until = Number(
        await this.#link.run((c) =>
          c.eval(FAILED, {
            keys: [this.key(`failed:${by}:${key}`), this.key(`locked:${by}:${key}`)],
            arguments: [
              String(limits.failures),
              String(limits.windowMs),
              String(limits.durationMs),
            ],
          })
        ),
      );
      if (!(until > 0)) return undefined;
      const lock: FleetLock = { by, key, until };
      await this.#link.run((c) =>
        c.publish(this.key("lock"), JSON.stringify({ ...lock, from: this.serverId }))
      );
      return lock;
    } catch (e) {
      if (e instanceof StoreUnavailableError) return undefined;
      throw e;
    }
  }

  /**
   * Adds `key` as the fleet's newest ticket key if the newest is older than
   * `rotateMs` (or there is none), keeping the newest `keep`; true when it
   * did. Rejects with `StoreUnavailableError` when Redis does not answer.
   */
  async rotateTickets(key: StoredTicketKey, rotateMs: number, keep: number): Promise<boolean> {
    const r = await this.#link.run((c) =>
      c.eval(ROTATE, {
        keys: [this.key("tickets")],
        arguments: [String(key.id), key.key, String(rotateMs), String(keep), this.key("rotated")],
      })
    );
    return r === 1;
  }

  /** The fleet's ticket keys, newest first (rejects when Redis does not answer). */
  async ticketKeys(): Promise<StoredTicketKey[]> {
    const items = await this.#link.run((c) => c.lRange(this.key("tickets"), 0, -1));
    const out: StoredTicketKey[] = [];
    for (const item of items) {
      const k = parseJson(item) as Partial<StoredTicketKey> | undefined;
      if (
        typeof k?.id === "number" && typeof k.key === "string" && typeof k.created === "number"
      ) out.push({ id: k.id, key: k.key, created: k.created });
    }
    return out;
  }

  /** Calls `handler` whenever a server rotated the ticket keys; returns the unsubscribe. */
  onTicketsRotated(handler: () => void): () => void {
    this.#rotatedHandlers.add(handler);
    return () => this.#rotatedHandlers.delete(handler);
  }

  /** Calls `handler` for every lock another server publishes; returns the unsubscribe. */
  onLock(handler: (l: FleetLock) => void): () => void {
    this.#lockHandlers.add(handler);
    return () => this.#lockHandlers.delete(handler);
  }

  /**
   * Publishes a kick to the other servers; resolves false when Redis did
   * not take it (the kick then ends this server's sessions only).
   */
  async publishKick(kick: FleetKick): Promise<boolean> {
    const msg = JSON.stringify({ ...kick, from: this.serverId });
    try {
      await this.#link.run((c) => c.publish(this.key("kick"), msg));
      return true;
    } catch {
      return false;
    }
  }

  /** Calls `handler` for every kick another server publishes; returns the unsubscribe. */
  onKick(handler: (k: FleetKick) => void): () => void {
    this.#kickHandlers.add(handler);
    return () => this.#kickHandlers.delete(handler);
  }

  /** Starts listening to the kick and lock channels. */
  async listen(): Promise<void> {
    await this.#link.subscribe(this.key("rotated"), () => {
      for (const h of this.#rotatedHandlers) h();
    });
    await this.#link.subscribe(this.key("lock"), (m) => {
      const l = parseJson(m);
      if (!isLock(l) || l.from === this.serverId) return;
      for (const h of this.#lockHandlers) h({ by: l.by, key: l.key, until: l.until });
    });
    await this.#link.subscribe(this.key("kick"), (m) => {
      const k = parseJson(m);
      if (!isKick(k) || k.from === this.serverId) return;
      for (const h of this.#kickHandlers) h({ user: k.user, reason: k.reason, code: k.code });
    });
  }

  /** Closes the connection. */
  close(): Promise<void> {
    this.#kickHandlers.clear();
    this.#lockHandlers.clear();
    this.#rotatedHandlers.clear();
    return this.#link.close();
  }
}

function parseJson(m: string): unknown {
  try {
    return JSON.parse(m);
  } catch {
    return undefined;
  }
}

function isLock(l: unknown): l is FleetLock & { from: string } {
  if (typeof l !== "object" || l === null) return false;
  const o = l as Record<string, unknown>;
  return (o.by === "source" || o.by === "user") && typeof o.key === "string" &&
    o.key.length <= 256 && typeof o.until === "number" && Number.isFinite(o.until) &&
    typeof o.from === "string";
}

function isKick(k: unknown): k is FleetKick & { from: string } {
  if (typeof k !== "object" || k === null) return false;
  const o = k as Record<string, unknown>;
  return typeof o.user === "string" && typeof o.reason === "string" &&
    typeof o.code === "number" && Number.isInteger(o.code) && o.code >= 0 && o.code <= 255 &&
    typeof o.from === "string";
}
