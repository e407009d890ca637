/**
 * The server's login guards, kept apart from the sockets so they can be
 * tested with a clock: the failed-login lockout per source address and per
 * user (`auth.lockout`), and the per-source caps on concurrent connections
 * and new connections per second (`limits.per_ip`). Neither ever changes
 * what a peer sees on its own: a locked-out login is refused by the
 * handshake exactly like wrong credentials, and a connection over the caps
 * is handed to the fallback like any probe (docs/CONFIG.md).
 *
 * @module
 */
import { canonicalIpv6 } from "../wire/host_port.ts";

/** Most sources (and users) each guard remembers; the oldest idle entry goes first. */
export const GUARD_MAX_ENTRIES = 100_000;

/**
 * The key a source address is counted under: an IPv4 address as it is
 * (IPv4-mapped IPv6 included), an IPv6 address by its /64, since one host
 * usually holds a whole /64.
 *
 * @example
 * ```ts
 * import { sourceKey } from "./login_guard.ts";
 * sourceKey("2001:db8:1:2:aaaa::1"); // "2001:db8:1:2::/64"
 * sourceKey("::ffff:192.0.2.7"); // "192.0.2.7"
 * ```
 */
export function sourceKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (!address.includes(":")) return address;
  const c = canonicalIpv6(address);
  if (c === undefined) return address;
  // Expand "::" to get the first four groups.
  const [head = "", tail] = c.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? left
    : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return `${canonicalIpv6(`${groups.slice(0, 4).join(":")}::`) ?? c}/64`;
}

/** `auth.lockout` in server.yml. */
export interface LockoutSettings {
  /** Failed logins within `windowS` that lock the source or the user; 0 turns lockout off. */
  failures: number;
  /** The window the failures are counted in (s). */
  windowS: number;
  /** How long a lock lasts (s). */
  durationS: number;
}

interface Counter {
  /** Times of the recent failures (ms), oldest first, at most `failures`. */
  times: number[];
  /** Locked until this time (ms); 0 when not locked. */
  until: number;
}

/** Failed logins counted per key, with a lock once there are too many. */
class FailureCounter {
  readonly #map = new Map<string, Counter>();
  readonly #s: LockoutSettings;
  readonly #max: number;

  constructor(settings: LockoutSettings, max: number) {
    this.#s = settings;
    this.#max = max;
  }

  /** The lock's end (ms) if `key` is locked at `now`. */
  lockedUntil(key: string, now: number): number | undefined {
    const c = this.#map.get(key);
    return c !== undefined && c.until > now ? c.until : undefined;
  }

  /** Counts a failure; returns the lock's end when this failure locks `key`. */
  fail(key: string, now: number): number | undefined {
    const { failures, windowS, durationS } = this.#s;
    let c = this.#map.get(key);
    if (c === undefined) {
      this.#evict(now);
      c = { times: [], until: 0 };
    } else this.#map.delete(key); // re-inserted below: the map stays in order of last use
    this.#map.set(key, c);
    if (c.until > now) return undefined; // already locked; the lock is not extended
    const from = now - windowS * 1000;
    while (c.times.length > 0 && c.times[0]! <= from) c.times.shift();
    c.times.push(now);
    if (c.times.length < failures) return undefined;
    c.times.length = 0;
    c.until = now + durationS * 1000;
    return c.until;
  }

  /** Locks `key` until `until` (ms), e.g. for a lock another server of a fleet started. */
  lock(key: string, until: number): void {
    const c = this.#map.get(key);
    if (c !== undefined) {
      c.until = Math.max(c.until, until);
      return;
    }
    this.#evict(until - 1);
    this.#map.set(key, { times: [], until });
  }

  /** Forgets `key`'s failures (a successful login). */
  clear(key: string): void {
    this.#map.delete(key);
  }

  get size(): number {
    return this.#map.size;
  }

  #evict(now: number): void {
    if (this.#map.size < this.#max) return;
    // Oldest first: drop entries that are not locked; a locked one is kept while there is room.
    for (const [k, c] of this.#map) {
      if (c.until <= now) this.#map.delete(k);
      if (this.#map.size < this.#max) return;
    }
    const first = this.#map.keys().next();
    if (!first.done) this.#map.delete(first.value);
  }
}

/** What a lock refers to, for the server log. */
export interface Lock {
  by: "source" | "user";
  until: number;
}

/**
 * Failed-login lockout per source address and per user: `failures` failed
 * logins within `windowS` lock the source (or the user) for `durationS`.
 * While locked, every login from that source (or as that user) is refused
 * even with the right credentials, by the handshake's `allowLogin` hook, so
 * the refusal is byte for byte an ordinary failed login. Attempts while
 * locked do not extend the lock; a successful login clears the user's
 * count.
 *
 * @example
 * ```ts
 * import { LoginGuard } from "./login_guard.ts";
 * let now = 0;
 * const guard = new LoginGuard({ failures: 2, windowS: 60, durationS: 300 }, { now: () => now });
 * guard.failed("192.0.2.7", "alice");
 * guard.failed("192.0.2.7", "alice");
 * guard.check("192.0.2.7", "bob")?.by; // "source"
 * now += 300_000;
 * guard.check("192.0.2.7", "bob"); // undefined
 * ```
 */
export class LoginGuard {
  readonly #sources: FailureCounter;
  readonly #users: FailureCounter;
  readonly #now: () => number;
  readonly #on: boolean;

  constructor(
    settings: LockoutSettings,
    opts: { now?: () => number; maxEntries?: number } = {},
  ) {
    const max = opts.maxEntries ?? GUARD_MAX_ENTRIES;
    this.#sources = new FailureCounter(settings, max);
    this.#users = new FailureCounter(settings, max);
    this.#now = opts.now ?? Date.now;
    this.#on = settings.failures > 0;
  }

  /** The lock that refuses a login by `user` from `address` now, if any. */
  check(address: string, user: string): Lock | undefined {
    if (!this.#on) return undefined;
    const now = this.#now();
    const s = this.#sources.lockedUntil(sourceKey(address), now);
    if (s !== undefined) return { by: "source", until: s };
    const u = this.#users.lockedUntil(user, now);
    return u === undefined ? undefined : { by: "user", until: u };
  }

  /**
   * Counts a failed login from `address`, and against `user` when the
   * client proved that user's static key (a wrong key or an unknown name
   * counts against the source only: a guess at a name must not lock that
   * user out, nor fill the table). Returns the locks this failure started.
   */
  failed(address: string, user?: string): Lock[] {
    if (!this.#on) return [];
    const now = this.#now();
    const locks: Lock[] = [];
    const s = this.#sources.fail(sourceKey(address), now);
    if (s !== undefined) locks.push({ by: "source", until: s });
    if (user !== undefined) {
      const u = this.#users.fail(user, now);
      if (u !== undefined) locks.push({ by: "user", until: u });
    }
    return locks;
  }

  /**
   * Locks a source (its {@linkcode sourceKey}) or a user until `until`
   * (ms): a lock another server of a fleet started.
   */
  lock(by: "source" | "user", key: string, until: number): void {
    if (!this.#on) return;
    (by === "source" ? this.#sources : this.#users).lock(key, until);
  }

  /** A successful login: forgets the user's failures. */
  succeeded(user: string): void {
    this.#users.clear(user);
  }

  /** Sources and users remembered (for tests of the bound). */
  get entries(): { sources: number; users: number } {
    return { sources: this.#sources.size, users: this.#users.size };
  }
}

/** Most removed users whose static keys a running server remembers (never across a restart). */
export const REMEMBERED_REMOVED_USERS = 10_000;

/**
 * The static public keys of users a reload removed, so that a removed
 * user's client that keeps reconnecting (and proves that key) is refused
 * without counting as a failed login (`UserRecord.inactive` in
 * lib/handshake/types.ts). Holds at most `max` users; the oldest removal is
 * forgotten first. Kept in memory only: after a restart a removed user is
 * an unknown name.
 *
 * @example
 * ```ts
 * import { RemovedUsers } from "./login_guard.ts";
 * const removed = new RemovedUsers({ max: 1 });
 * removed.add("alice", new Uint8Array(32).fill(1));
 * removed.add("bob", new Uint8Array(32).fill(2));
 * removed.key("alice"); // undefined: forgotten for bob
 * removed.key("bob")?.[0]; // 2
 * ```
 */
export class RemovedUsers {
  readonly #keys = new Map<string, Uint8Array>();
  readonly #max: number;

  constructor(opts: { max?: number } = {}) {
    this.#max = opts.max ?? REMEMBERED_REMOVED_USERS;
  }

  /** Remembers that `name`, whose static public key is `publicKey`, was removed. */
  add(name: string, publicKey: Uint8Array): void {
    this.#keys.delete(name); // re-inserted: the map stays in order of removal
    this.#keys.set(name, publicKey);
    if (this.#keys.size > this.#max) this.#keys.delete(this.#keys.keys().next().value!);
  }

  /** The static public key of removed user `name`, if remembered. */
  key(name: string): Uint8Array | undefined {
    return this.#keys.get(name);
  }

  /** Users remembered (for tests of the bound). */
  get size(): number {
    return this.#keys.size;
  }
}

/** `limits.per_ip` in server.yml. */
export interface PerIpSettings {
  /** Most connections open at once from one source. */
  connections: number;
  /** New connections per second from one source (a burst of one second's worth). */
  handshakesPerSecond: number;
}

interface SourceState {
  open: number;
  tokens: number;
  at: number;
}

/**
 * Per-source caps: concurrent connections and new connections per second
 * (a token bucket holding at most one second's worth). `admit` says whether
 * a new connection may start its handshake; the caller hands a refused one
 * to the fallback, exactly as a probe, and calls `release` when an admitted
 * one closes.
 *
 * @example
 * ```ts
 * import { PerIpLimiter } from "./login_guard.ts";
 * const limiter = new PerIpLimiter({ connections: 1, handshakesPerSecond: 10 }, { now: () => 0 });
 * limiter.admit("192.0.2.7"); // undefined: admitted
 * limiter.admit("192.0.2.7"); // "1 connections open (limits.per_ip.connections 1)"
 * limiter.release("192.0.2.7");
 * ```
 */
export class PerIpLimiter {
  readonly #map = new Map<string, SourceState>();
  readonly #s: PerIpSettings;
  readonly #now: () => number;
  readonly #max: number;

  constructor(settings: PerIpSettings, opts: { now?: () => number; maxEntries?: number } = {}) {
    this.#s = settings;
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxEntries ?? GUARD_MAX_ENTRIES;
  }

  /** Undefined when a connection from `address` may start; else why not (for the log). */
  admit(address: string): string | undefined {
    const key = sourceKey(address);
    const now = this.#now();
    const rate = this.#s.handshakesPerSecond;
    let st = this.#map.get(key);
    if (st === undefined) {
      this.#evict();
      st = { open: 0, tokens: rate, at: now };
      this.#map.set(key, st);
    } else {
      st.tokens = Math.min(rate, st.tokens + ((now - st.at) / 1000) * rate);
      st.at = now;
    }
    if (st.open >= this.#s.connections) {
      return `${st.open} connections open (limits.per_ip.connections ${this.#s.connections})`;
    }
    if (st.tokens < 1) {
      return `more than ${rate} new connections per second (limits.per_ip.handshakes_per_second)`;
    }
    st.tokens -= 1;
    st.open++;
    return undefined;
  }

  /** An admitted connection from `address` closed. */
  release(address: string): void {
    const st = this.#map.get(sourceKey(address));
    if (st !== undefined && st.open > 0) st.open--;
  }

  /** Sources remembered (for tests of the bound). */
  get size(): number {
    return this.#map.size;
  }

  #evict(): void {
    if (this.#map.size < this.#max) return;
    for (const [k, st] of this.#map) {
      if (st.open === 0) this.#map.delete(k);
      if (this.#map.size < this.#max) return;
    }
  }
}

/** `limits.pre_login` in server.yml. */
export interface PreLoginSettings {
  /** Pre-login connections at once, in all. */
  max: number;
  /** Pre-login connections at once from one source (IPv6: its /64). */
  perIp: number;
  /** At `max`, only a connection at least this old (ms) is closed for any newcomer. */
  minAgeMs: number;
}

interface PreLoginEntry {
  readonly key: string;
  readonly since: number;
  readonly evict: (why: string) => void;
}

/** What {@link PreLoginTable.admit} answers: a place, or why there is none (then `done()` does nothing). */
export interface PreLoginAdmission {
  /** This connection logged in or closed: its place is free. */
  done(): void;
  /** Set when the newcomer was refused, saying why. */
  refused?: string;
}

/**
 * The connections that have not logged in yet (handshakes in progress, and
 * probes the fallback web server is answering), capped in all and per
 * source address. A new connection over its source's cap closes that
 * source's oldest. At the cap in all, a newcomer closes the oldest
 * connection if that one is at least `minAgeMs` old; otherwise the oldest
 * of the busiest source if that source holds at least two more than the
 * newcomer's (a fair share: a client from a quiet address gets in at once);
 * otherwise the newcomer is refused. So connections that come straight back
 * when closed cannot turn the table over faster than `max` per `minAgeMs`.
 *
 * @example
 * ```ts
 * import { PreLoginTable } from "./login_guard.ts";
 * const table = new PreLoginTable({ max: 2, perIp: 2, minAgeMs: 0 });
 * const a = table.admit("192.0.2.1", (why) => console.log("evicted:", why));
 * table.admit("192.0.2.2", () => {});
 * table.admit("192.0.2.3", () => {}); // evicts the first: "evicted: …"
 * a.done(); // nothing left to do: it was evicted
 * ```
 */
export class PreLoginTable {
  readonly #s: PreLoginSettings;
  readonly #now: () => number;
  /** Insertion order is age order: the first entry is the oldest. */
  readonly #all = new Set<PreLoginEntry>();
  readonly #bySource = new Map<string, Set<PreLoginEntry>>();
  /** Sources by how many connections each has (1 and up), to find the busiest at once. */
  readonly #bySize = new Map<number, Set<string>>();
  #busiest = 0;
  #evictions = 0;
  #refusals = 0;

  constructor(settings: PreLoginSettings, opts: { now?: () => number } = {}) {
    this.#s = settings;
    this.#now = opts.now ?? Date.now;
  }

  /** Connections counted now. */
  get size(): number {
    return this.#all.size;
  }

  /** Connections evicted so far. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Newcomers refused so far (at the cap, nothing old enough or unfairly many to evict). */
  get refusals(): number {
    return this.#refusals;
  }

  /**
   * Counts a new connection from `address`, first evicting one (their
   * `evict` is called with the reason) if a cap is reached, as the class
   * says; or refuses it. Call `done()` when an admitted one logs in or closes.
   */
  admit(address: string, evict: (why: string) => void): PreLoginAdmission {
    const key = sourceKey(address);
    const now = this.#now();
    const mine = this.#bySource.get(key);
    if (mine !== undefined && mine.size >= this.#s.perIp) {
      this.#evict(
        mine.values().next().value!,
        `the oldest of ${mine.size} pre-login connections from its source ` +
          `(limits.pre_login.per_ip ${this.#s.perIp})`,
      );
    }
    if (this.#all.size >= this.#s.max) {
      const oldest = this.#all.values().next().value!;
      const have = this.#bySource.get(key)?.size ?? 0;
      if (now - oldest.since >= this.#s.minAgeMs) {
        this.#evict(
          oldest,
          `the oldest of ${this.#all.size} pre-login connections ` +
            `(limits.pre_login.max ${this.#s.max})`,
        );
      } else if (this.#busiest >= have + 2) {
        const source = this.#bySize.get(this.#busiest)!.values().next().value!;
        this.#evict(
          this.#bySource.get(source)!.values().next().value!,
          `the oldest of the busiest source's ${this.#busiest} pre-login connections, for a ` +
            `source with ${have} (limits.pre_login.max ${this.#s.max})`,
        );
      } else {
        this.#refusals++;
        return {
          done: () => {},
          refused: `${this.#all.size} pre-login connections, none older than ` +
            `${this.#s.minAgeMs / 1000} s (limits.pre_login.min_age) and none of a source ` +
            `with 2 more than this one's ${have} (limits.pre_login.max ${this.#s.max})`,
        };
      }
    }
    const entry: PreLoginEntry = { key, since: now, evict };
    this.#all.add(entry);
    let set = this.#bySource.get(key);
    if (set === undefined) this.#bySource.set(key, set = new Set());
    set.add(entry);
    this.#resize(key, set.size - 1, set.size);
    return { done: () => this.#remove(entry) };
  }

  #evict(entry: PreLoginEntry, why: string): void {
    this.#remove(entry);
    this.#evictions++;
    entry.evict(why);
  }

  #remove(entry: PreLoginEntry): void {
    if (!this.#all.delete(entry)) return;
    const mine = this.#bySource.get(entry.key)!;
    mine.delete(entry);
    if (mine.size === 0) this.#bySource.delete(entry.key);
    this.#resize(entry.key, mine.size + 1, mine.size);
  }

  /** Moves source `key` from the bucket of sources with `from` connections to `to`'s. */
  #resize(key: string, from: number, to: number): void {
    const old = this.#bySize.get(from);
    old?.delete(key);
    if (old?.size === 0) this.#bySize.delete(from);
    if (to > 0) {
      let bucket = this.#bySize.get(to);
      if (bucket === undefined) this.#bySize.set(to, bucket = new Set());
      bucket.add(key);
    }
    if (to > this.#busiest) this.#busiest = to;
    else if (from === this.#busiest && !this.#bySize.has(from)) this.#busiest = to;
  }
}
