/**
 * Per-user limits, enforced on live sessions (the server's side of
 * users.yml beyond the login):
 *
 * - `disabled`, `expires` and removal from users.yml end the user's live
 *   sessions (NOTICE `REVOKED`, then release) as soon as a reload says so,
 *   and `expires` also by a timer set for the earliest expiry among the live
 *   users;
 * - `quota` (bytes over a period, from the `Accountant`'s period counters,
 *   so it survives restarts): the moment a user's usage reaches it, their
 *   live sessions end (NOTICE `QUOTA`); until the period ends, every stream
 *   they open is refused with a reason naming when it ends;
 * - `max_tunnels` (the user's) and `limits.max_tunnels` (the server's): a
 *   login over either gets its tunnel ended at once (NOTICE `LIMIT`); a
 *   user's tunnel that has lost its link gives its place to a new login;
 * - `max_streams` over all of the user's tunnels: an OPEN over it is refused;
 * - `bandwidth`: the user's token buckets (`pace.ts`), handed to each of the
 *   user's sessions (in a `UserMeter`, with the quota budget) and updated on
 *   reload.
 *
 * Every refusal and every session ended here is a `limit` event.
 *
 * @module
 */
import type { Accountant } from "../accounting/mod.ts";
import type { Quota, UserEntry, UserSource } from "../config/mod.ts";
import type { EventHub } from "../observe/mod.ts";
import { ReleaseReason } from "../session/mod.ts";
import { type ByteBudget, Pacers, type UserMeter } from "./pace.ts";
import type { SessionTable } from "./session_table.ts";

/**
 * How often the live users' quotas are checked (ms), while any has one;
 * between checks, a user's sessions check at once when the payload they
 * move reaches what the last check left of the quota.
 */
export const QUOTA_CHECK_MS = 250;
/** The longest a timer may wait (setTimeout's limit). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options for {@linkcode UserLimits}. */
export interface UserLimitsOptions {
  table: SessionTable;
  /** The server's current users. */
  users: UserSource;
  events: EventHub;
  /** The counters (quota periods). */
  accountant: Accountant;
  /** `limits.max_tunnels` of server.yml. */
  maxTunnels: number;
  /** Ends `user`'s live sessions with a NOTICE (the kick path); resolves with how many. */
  end(user: string, reason: string, code: number): Promise<number>;
}

/** A refusal: which limit (its config key) and what to tell the client and the log. */
export interface LimitRefusal {
  limit: string;
  detail: string;
}

/** Why `u` may no longer have sessions at `now`, if so. */
function revocation(
  name: string,
  u: UserEntry | undefined,
  now: number,
): LimitRefusal | undefined {
  if (u === undefined) return { limit: "removed", detail: `user "${name}" removed from users` };
  if (u.disabled) return { limit: "disabled", detail: `user "${name}" is disabled` };
  if (u.expires !== undefined && u.expires.getTime() <= now) {
    return { limit: "expires", detail: `user "${name}" expired at ${u.expires.toISOString()}` };
  }
  return undefined;
}

/** "50 GB per 30d" for a quota. */
function describeQuota(q: Quota): string {
  const units: [number, string][] = [[1e12, "TB"], [1e9, "GB"], [1e6, "MB"], [1e3, "kB"]];
  const [div, unit] = units.find(([d]) => q.bytes >= d) ?? [1, "B"];
  const days = q.periodS / 86_400;
  const hours = q.periodS / 3_600;
  const period = Number.isInteger(days)
    ? `${days}d`
    : Number.isInteger(hours)
    ? `${hours}h`
    : `${q.periodS}s`;
  return `${+(q.bytes / div).toFixed(2)} ${unit} per ${period}`;
}

/**
 * Enforces the users' limits on a server's live sessions.
 *
 * @example
 * ```ts ignore
 * const limits = new UserLimits({ table, users, events, accountant, maxTunnels: 256, end });
 * users.replace(next);
 * limits.check(); // apply the new users to the live sessions
 * ```
 */
export class UserLimits {
  readonly #o: UserLimitsOptions;
  readonly #pacers = new Pacers(() => performance.now());
  /** In a fleet: the streams each user has open on the other servers (as last told). */
  readonly #remoteStreams = new Map<string, number>();
  /**
   * In a fleet: how many servers move each user's traffic now; this server
   * paces the user at `bandwidth` divided by it (`fleet_pace.ts`).
   */
  readonly #shares = new Map<string, number>();
  /** The meters of users with a bandwidth or a quota, shared by their sessions. */
  readonly #meters = new Map<string, UserMeter>();
  /** A quota check is due at once (a budget ran out). */
  #checkSoon: ReturnType<typeof setTimeout> | undefined;
  /** Users whose quota ran out this period: when it ends (ms since the epoch). */
  readonly #exhausted = new Map<string, number>();
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #expiryAt = Infinity;
  #quotaTimer: ReturnType<typeof setInterval> | undefined;
  readonly #stop: () => void;
  #closed = false;

  constructor(options: UserLimitsOptions) {
    this.#o = options;
    this.#stop = options.events.subscribe((e) => {
      if (e.type === "session_start") this.#schedule();
    });
  }

  /**
   * The meter for `user`'s sessions (bandwidth buckets, quota budget),
   * brought up to date with the current users; undefined when the user has
   * neither limit.
   */
  meter(user: string): UserMeter | undefined {
    const u = this.#o.users.get(user);
    const pace = this.#pacers.update(user, this.#rate(user, u));
    if (pace === undefined && u?.quota === undefined) {
      this.#meters.delete(user);
      return undefined;
    }
    let m = this.#meters.get(user);
    if (m === undefined) {
      m = { down: undefined, up: undefined, budget: undefined };
      this.#meters.set(user, m);
    }
    m.down = pace?.down;
    m.up = pace?.up;
    if (u?.quota === undefined) m.budget = undefined;
    else m.budget ??= this.#budget();
    return m;
  }

  /** `u`'s bandwidth on this server: all of it, or its share in a fleet. */
  #rate(user: string, u: UserEntry | undefined): number | undefined {
    const bw = u?.bandwidth;
    return bw === undefined ? undefined : bw / (this.#shares.get(user) ?? 1);
  }

  /**
   * The users whose `bandwidth` is split over several servers of a fleet,
   * and over how many (users not named get all of it again); their live
   * sessions' buckets change rate at once.
   */
  setShares(shares: ReadonlyMap<string, number>): void {
    for (const user of [...this.#shares.keys()]) {
      if (!shares.has(user)) {
        this.#shares.delete(user);
        this.#pacers.update(user, this.#rate(user, this.#o.users.get(user)));
      }
    }
    for (const [user, n] of shares) {
      if (this.#shares.get(user) === n) continue;
      this.#shares.set(user, n);
      this.#pacers.update(user, this.#rate(user, this.#o.users.get(user)));
    }
  }

  /** The streams `user` has open on this server, over all their tunnels. */
  streamsOf(user: string): number {
    let n = 0;
    for (const e of this.#o.table.entries()) if (e.userId === user) n += e.session.streamCount;
    return n;
  }

  /**
   * In a fleet: the streams users have open on the other servers, which
   * their `max_streams` counts too (users not named have none there).
   */
  setRemoteStreams(counts: ReadonlyMap<string, number>): void {
    this.#remoteStreams.clear();
    for (const [user, n] of counts) if (n > 0) this.#remoteStreams.set(user, n);
  }

  /** A quota budget that asks for a check the moment it runs out. */
  #budget(): ByteBudget {
    // Until the first check sets it, the next few bytes trigger one.
    return {
      left: 0,
      spent: () => {
        if (this.#checkSoon !== undefined || this.#closed) return;
        this.#checkSoon = setTimeout(() => {
          this.#checkSoon = undefined;
          this.#checkQuotas(Date.now());
        }, 0);
      },
    };
  }

  /**
   * Whether `user` may start one more tunnel. A tunnel of theirs that has
   * lost its link (waiting to be resumed) gives its place: it is closed,
   * and `replaced` is told its number.
   */
  admitTunnel(user: string, replaced?: (no: number) => void): LimitRefusal | undefined {
    const { table, maxTunnels } = this.#o;
    let all = 0;
    const mine = [];
    for (const e of table.entries()) {
      all++;
      if (e.userId === user) mine.push(e);
    }
    const max = this.#o.users.get(user)?.maxTunnels;
    if (max !== undefined && mine.length >= max) {
      const idle = mine.filter((e) => !e.session.connected);
      const over = mine.length - max + 1;
      if (idle.length < over) {
        return { limit: "max_tunnels", detail: `too many tunnels for this user (max ${max})` };
      }
      for (const e of idle.slice(0, over)) {
        e.session.close("replaced by a new login", false);
        replaced?.(e.no);
      }
      all -= over;
    }
    if (all >= maxTunnels) {
      return {
        limit: "limits.max_tunnels",
        detail: `too many tunnels on this server (max ${maxTunnels})`,
      };
    }
    return undefined;
  }

  /** Whether `user` may open one more stream (the one being opened is already counted). */
  admitStream(user: string): LimitRefusal | undefined {
    const u = this.#o.users.get(user);
    if (u === undefined) return undefined;
    if (u.quota !== undefined) {
      const { used, until } = this.#usage(user, u.quota, Date.now());
      if (used >= u.quota.bytes) {
        return {
          limit: "quota",
          detail: `data quota used up until ${new Date(until).toISOString()} (${
            describeQuota(u.quota)
          })`,
        };
      }
    }
    if (u.maxStreams !== undefined) {
      const n = this.streamsOf(user) + (this.#remoteStreams.get(user) ?? 0);
      if (n > u.maxStreams) {
        return {
          limit: "max_streams",
          detail: `too many streams for this user (max ${u.maxStreams} over all tunnels)`,
        };
      }
    }
    return undefined;
  }

  /**
   * Applies the current users to the live sessions: ends those of users
   * removed, disabled, expired or over quota, and hands the others their
   * (new) bandwidth buckets. Call after every change of the users.
   */
  check(): void {
    if (this.#closed) return;
    const now = Date.now();
    const { users, table } = this.#o;
    const revoked = new Map<string, LimitRefusal>();
    for (const e of table.entries()) {
      if (revoked.has(e.userId)) continue;
      const u = users.get(e.userId);
      const r = revocation(e.userId, u, now);
      if (r !== undefined) {
        revoked.set(e.userId, r);
        continue;
      }
      e.session.setMeter(this.meter(e.userId));
    }
    this.#pacers.retain((name) => users.get(name)?.bandwidth !== undefined);
    for (const name of [...this.#meters.keys()]) {
      const u = users.get(name);
      if (u?.bandwidth === undefined && u?.quota === undefined) this.#meters.delete(name);
    }
    for (const [user, r] of revoked) this.#endSessions(user, r, ReleaseReason.REVOKED);
    this.#checkQuotas(now);
    this.#schedule();
  }

  /** Stops the timers. */
  close(): void {
    this.#closed = true;
    this.#stop();
    clearTimeout(this.#expiryTimer);
    clearInterval(this.#quotaTimer);
    clearTimeout(this.#checkSoon);
    this.#expiryTimer = this.#quotaTimer = this.#checkSoon = undefined;
  }

  #endSessions(user: string, r: LimitRefusal, code: number): void {
    this.#o.events.emit({ type: "limit", limit: r.limit, user, detail: r.detail });
    this.#o.end(user, r.detail, code).catch(() => {});
  }

  /** The user's bytes this period and when the period ends. */
  #usage(user: string, q: Quota, now: number): { used: number; until: number } {
    const periodMs = q.periodS * 1000;
    const start = Math.floor(now / periodMs) * periodMs;
    const acct = this.#o.accountant;
    acct.beginPeriod(user, start);
    const p = acct.user(user)?.period;
    const used = p === undefined || p.start !== start ? 0 : p.bytesIn + p.bytesOut;
    return { used, until: start + periodMs };
  }

  /** Ends the sessions of users whose quota just ran out; true while any live user has one. */
  #checkQuotas(now: number): boolean {
    const { users, table, accountant } = this.#o;
    let any = false;
    const seen = new Set<string>();
    for (const e of table.entries()) {
      const user = e.userId;
      if (seen.has(user)) continue;
      seen.add(user);
      const q = users.get(user)?.quota;
      if (q === undefined) {
        this.#exhausted.delete(user);
        continue;
      }
      if (!any) accountant.refresh();
      any = true;
      const { used, until } = this.#usage(user, q, now);
      const budget = this.#meters.get(user)?.budget;
      // Tunnel bytes (counted) are at least the payload bytes the budget sees.
      if (budget !== undefined) budget.left = q.bytes - used;
      if (used < q.bytes) {
        this.#exhausted.delete(user);
        continue;
      }
      const first = !this.#exhausted.has(user);
      // Sessions that started after the quota ran out stay up (their streams
      // are refused with the reason); one still moving data ends too.
      if (first || this.#movesData(user)) {
        this.#exhausted.set(user, until);
        const detail = `data quota used up until ${new Date(until).toISOString()} (${
          describeQuota(q)
        })`;
        this.#endSessions(user, { limit: "quota", detail }, ReleaseReason.QUOTA);
      }
    }
    return any;
  }

  /** Whether a live session of `user` has a stream open. */
  #movesData(user: string): boolean {
    for (const e of this.#o.table.entries()) {
      if (e.userId === user && e.session.streamCount > 0) return true;
    }
    return false;
  }

  /** Sets the expiry timer for the earliest expiry among live users, and the quota checks. */
  #schedule(): void {
    if (this.#closed) return;
    const now = Date.now();
    let next = Infinity;
    let quota = false;
    for (const e of this.#o.table.entries()) {
      const u = this.#o.users.get(e.userId);
      if (u?.quota !== undefined) quota = true;
      const at = u?.expires?.getTime();
      if (at !== undefined && at > now && at < next) next = at;
    }
    if (next !== this.#expiryAt) {
      clearTimeout(this.#expiryTimer);
      this.#expiryTimer = undefined;
      this.#expiryAt = next;
      if (next !== Infinity) {
        this.#expiryTimer = setTimeout(() => {
          this.#expiryTimer = undefined;
          this.#expiryAt = Infinity;
          this.check();
        }, Math.min(MAX_TIMER_MS, next - now + 1));
      }
    }
    if (quota && this.#quotaTimer === undefined) {
      this.#quotaTimer = setInterval(() => {
        if (!this.#checkQuotas(Date.now())) {
          clearInterval(this.#quotaTimer);
          this.#quotaTimer = undefined;
        }
      }, QUOTA_CHECK_MS);
    }
  }
}
