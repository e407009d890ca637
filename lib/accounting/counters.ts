/**
 * The counters the server keeps, per user and for the whole server, and the
 * batches of increments that move them. Pure data and arithmetic: stores
 * (`store.ts`, `file_store.ts`) keep them, the `Accountant` fills batches
 * from events.
 *
 * Byte directions are the server's: `in` is what the server received from
 * the user's client (the user's upload plus overhead), `out` what it sent
 * (the user's download plus overhead), counted as tunnel bytes on the wire.
 *
 * @module
 */

/** One user's counters. */
export interface UserCounters {
  /** Tunnel bytes received from the user's clients. */
  bytesIn: number;
  /** Tunnel bytes sent to the user's clients. */
  bytesOut: number;
  /** Streams the server connected to their target. */
  streamsOpened: number;
  /** Streams the server refused (route, dial failure, limit). */
  streamsRefused: number;
  /** Fresh logins that succeeded. */
  loginsOk: number;
  /** Resumptions of a session that succeeded. */
  loginsResumed: number;
  /** Logins that named this user and failed. */
  loginsFailed: number;
  /** Times an operator ended the user's sessions. */
  kicks: number;
  /**
   * Sessions live now: a gauge, not a counter. The embedded store starts it
   * at 0 (no session outlives a restart); a shared store sums the fleet's.
   */
  sessionsLive: number;
  /** Bytes since the start of the current quota period, when one was begun. */
  period?: UsagePeriod;
}

/** Bytes counted since `start`. */
export interface UsagePeriod {
  /** When the period began (ms since the epoch). */
  start: number;
  bytesIn: number;
  bytesOut: number;
}

/** The whole server's counters. */
export interface ServerCounters {
  bytesIn: number;
  bytesOut: number;
  streamsOpened: number;
  streamsRefused: number;
  loginsOk: number;
  loginsResumed: number;
  /** Every failed login, whether or not it named a known user. */
  loginsFailed: number;
  sessionsStarted: number;
  kicks: number;
  /** Connections turned away before a session, by reason ("probe", "auth_failed", …). */
  refusals: Map<string, number>;
  /** Limit hits by limit ("max_tunnels", "quota", …). */
  limits: Map<string, number>;
}

/** Every counter at one moment. */
export interface AccountingSnapshot {
  server: ServerCounters;
  /** By user name (a `Map`: names are data, never object keys). */
  users: Map<string, UserCounters>;
}

/** The plain number fields of {@linkcode UserCounters}. */
export type UserCounterName = Exclude<keyof UserCounters, "period">;

/** The plain number fields of {@linkcode ServerCounters}. */
export type ServerCounterName = Exclude<keyof ServerCounters, "refusals" | "limits">;

/** The user counter names, in the order they are stored. */
export const USER_COUNTER_NAMES: readonly UserCounterName[] = [
  "bytesIn",
  "bytesOut",
  "streamsOpened",
  "streamsRefused",
  "loginsOk",
  "loginsResumed",
  "loginsFailed",
  "kicks",
  "sessionsLive",
];

/** The server counter names, in the order they are stored. */
export const SERVER_COUNTER_NAMES: readonly ServerCounterName[] = [
  "bytesIn",
  "bytesOut",
  "streamsOpened",
  "streamsRefused",
  "loginsOk",
  "loginsResumed",
  "loginsFailed",
  "sessionsStarted",
  "kicks",
];

/** Increments to one user's counters; `periodStart` first moves the period. */
export type UserDelta = Partial<Record<UserCounterName, number>> & {
  /**
   * Begin the quota period starting at this time (ms) before adding this
   * delta's bytes, unless the user's period already starts there.
   */
  periodStart?: number;
};

/** Increments to the server's counters. */
export type ServerDelta = Partial<Record<ServerCounterName, number>> & {
  refusals?: Map<string, number>;
  limits?: Map<string, number>;
};

/**
 * Increments gathered over a while and applied together. A shared store
 * applies each field as an atomic increment (e.g. Redis HINCRBY).
 */
export interface AccountingBatch {
  server: ServerDelta;
  users: Map<string, UserDelta>;
}

/** A user with every counter at zero. */
export function emptyUser(): UserCounters {
  return {
    bytesIn: 0,
    bytesOut: 0,
    streamsOpened: 0,
    streamsRefused: 0,
    loginsOk: 0,
    loginsResumed: 0,
    loginsFailed: 0,
    kicks: 0,
    sessionsLive: 0,
  };
}

/** A server with every counter at zero. */
export function emptyServer(): ServerCounters {
  return {
    bytesIn: 0,
    bytesOut: 0,
    streamsOpened: 0,
    streamsRefused: 0,
    loginsOk: 0,
    loginsResumed: 0,
    loginsFailed: 0,
    sessionsStarted: 0,
    kicks: 0,
    refusals: new Map(),
    limits: new Map(),
  };
}

/** An empty snapshot. */
export function emptySnapshot(): AccountingSnapshot {
  return { server: emptyServer(), users: new Map() };
}

/** An empty batch. */
export function emptyBatch(): AccountingBatch {
  return { server: {}, users: new Map() };
}

/** True when `batch` changes nothing. */
export function isEmptyBatch(batch: AccountingBatch): boolean {
  return batch.users.size === 0 && Object.keys(batch.server).length === 0;
}

function addMap(into: Map<string, number>, from: Map<string, number> | undefined): void {
  if (from === undefined) return;
  for (const [k, v] of from) into.set(k, (into.get(k) ?? 0) + v);
}

/**
 * Applies `delta` to `user` in place (the period moves first when
 * `delta.periodStart` names a new one).
 *
 * @example
 * ```ts
 * import { applyUserDelta, emptyUser } from "./counters.ts";
 * const u = emptyUser();
 * applyUserDelta(u, { bytesOut: 500, periodStart: 0 });
 * console.log(u.bytesOut, u.period); // 500 { start: 0, bytesIn: 0, bytesOut: 500 }
 * ```
 */
export function applyUserDelta(user: UserCounters, delta: UserDelta): void {
  if (delta.periodStart !== undefined && user.period?.start !== delta.periodStart) {
    user.period = { start: delta.periodStart, bytesIn: 0, bytesOut: 0 };
  }
  for (const name of USER_COUNTER_NAMES) {
    const v = delta[name];
    if (v !== undefined) user[name] += v;
  }
  if (user.period !== undefined) {
    user.period.bytesIn += delta.bytesIn ?? 0;
    user.period.bytesOut += delta.bytesOut ?? 0;
  }
}

/** Applies `delta` to `server` in place. */
export function applyServerDelta(server: ServerCounters, delta: ServerDelta): void {
  for (const name of SERVER_COUNTER_NAMES) {
    const v = delta[name];
    if (v !== undefined) server[name] += v;
  }
  addMap(server.refusals, delta.refusals);
  addMap(server.limits, delta.limits);
}

/**
 * Applies a whole batch to a snapshot in place; users not in it yet start
 * at zero.
 */
export function applyBatch(snapshot: AccountingSnapshot, batch: AccountingBatch): void {
  applyServerDelta(snapshot.server, batch.server);
  for (const [name, delta] of batch.users) {
    let u = snapshot.users.get(name);
    if (u === undefined) snapshot.users.set(name, u = emptyUser());
    applyUserDelta(u, delta);
  }
}

/**
 * Adds `from` into `into` (both batches), so that applying `into` once
 * equals applying both in order, except that a later `periodStart` wins:
 * bytes gathered just before it (at most one flush's worth) count toward
 * the new period.
 */
export function mergeBatch(into: AccountingBatch, from: AccountingBatch): void {
  for (const name of SERVER_COUNTER_NAMES) {
    const v = from.server[name];
    if (v !== undefined) into.server[name] = (into.server[name] ?? 0) + v;
  }
  for (const key of ["refusals", "limits"] as const) {
    const f = from.server[key];
    if (f !== undefined) addMap(into.server[key] ??= new Map(), f);
  }
  for (const [name, delta] of from.users) {
    const d = into.users.get(name);
    if (d === undefined) {
      into.users.set(name, { ...delta });
      continue;
    }
    for (const c of USER_COUNTER_NAMES) {
      const v = delta[c];
      if (v !== undefined) d[c] = (d[c] ?? 0) + v;
    }
    if (delta.periodStart !== undefined) d.periodStart = delta.periodStart;
  }
}

/** A deep copy of a snapshot. */
export function cloneSnapshot(s: AccountingSnapshot): AccountingSnapshot {
  const users = new Map<string, UserCounters>();
  for (const [name, u] of s.users) users.set(name, cloneUser(u));
  return {
    server: { ...s.server, refusals: new Map(s.server.refusals), limits: new Map(s.server.limits) },
    users,
  };
}

/** A copy of one user's counters. */
export function cloneUser(u: UserCounters): UserCounters {
  const c = { ...u };
  if (u.period !== undefined) c.period = { ...u.period };
  return c;
}
