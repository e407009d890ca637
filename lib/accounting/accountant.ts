/**
 * The `Accountant`: an observer of a server's events that keeps the
 * counters (per user and for the server), answers reads at once from
 * memory, and hands the increments to an {@linkcode AccountingStore} in
 * batches, every few seconds and at close.
 *
 * Bytes per session are the larger of two views of the same cumulative
 * count: the sum of the session's `bytes` events, and samples of the live
 * sessions' own counters (`sample`, taken at each flush and before each
 * read of the metrics); `session_end` carries the final total. Whatever
 * mix of these arrives, each byte is counted once.
 *
 * Memory is bounded by the users that exist and the live sessions: a name
 * that is not a user (a failed login's guess) only moves server counters,
 * and the counters of users removed from users.yml are dropped.
 *
 * @module
 */
import type { EventHub, TunnelEvent } from "../observe/mod.ts";
import {
  type AccountingBatch,
  type AccountingSnapshot,
  applyServerDelta,
  applyUserDelta,
  cloneSnapshot,
  cloneUser,
  emptyBatch,
  emptyUser,
  isEmptyBatch,
  mergeBatch,
  type ServerCounterName,
  type ServerCounters,
  type UserCounterName,
  type UserCounters,
  type UserDelta,
} from "./counters.ts";
import type { AccountingStore } from "./store.ts";

/** A live session's own byte counters, as `sample` reports them. */
export interface SessionBytes {
  /** Local number of the session (as in events). */
  session: number;
  user: string;
  /** Tunnel bytes received so far (cumulative). */
  bytesIn: number;
  /** Tunnel bytes sent so far (cumulative). */
  bytesOut: number;
}

/** Options for {@linkcode Accountant.start}. */
export interface AccountantOptions {
  store: AccountingStore;
  /**
   * Which users exist, looked up at each event (the server's current
   * `UserSource`): only they get counters of their own.
   */
  users: { get(name: string): object | undefined };
  /** How often the increments go to the store (ms). Default 5000. */
  flushIntervalMs?: number;
  /** The live sessions' byte counters, sampled at each flush and by `refresh()`. */
  sample?: () => Iterable<SessionBytes>;
  /** Told when a flush fails (once per run of failures) and when one succeeds again. */
  onStoreError?: (error: unknown, recovered: boolean) => void;
}

/** What the accountant follows of one session. */
interface SessionTrack {
  user: string;
  /** Sum of the session's `bytes` events. */
  evIn: number;
  evOut: number;
  /** Bytes credited so far (the largest cumulative value seen). */
  seenIn: number;
  seenOut: number;
  live: boolean;
}

/** At most this many sessions followed at once (each is followed from login to end). */
const MAX_SESSIONS = 1_000_000;

/**
 * Counts a server's events.
 *
 * @example
 * ```ts
 * import { EventHub } from "../observe/mod.ts";
 * import { Accountant } from "./accountant.ts";
 * import { MemoryStore } from "./store.ts";
 * const hub = new EventHub();
 * const users = new Map([["alice", {}]]);
 * const acct = await Accountant.start(hub, { store: new MemoryStore(), users });
 * hub.emit({ type: "stream_open", session: 1, stream: 1, target: "example.com:443", user: "alice" });
 * console.log(acct.user("alice")?.streamsOpened); // 1
 * await acct.close();
 * ```
 */
export class Accountant {
  readonly #o: AccountantOptions;
  readonly #totals: AccountingSnapshot;
  #pending: AccountingBatch = emptyBatch();
  readonly #sessions = new Map<number, SessionTrack>();
  readonly #stop: () => void;
  readonly #timer: ReturnType<typeof setInterval>;
  #flushing: Promise<void> = Promise.resolve();
  #failing = false;
  #closed: Promise<void> | undefined;

  private constructor(hub: EventHub, options: AccountantOptions, loaded: AccountingSnapshot) {
    this.#o = options;
    this.#totals = loaded;
    for (const u of loaded.users.values()) u.sessionsLive = 0;
    this.#stop = hub.subscribe((e) => this.#observe(e));
    const every = Math.max(50, options.flushIntervalMs ?? 5_000);
    this.#timer = setInterval(() => void this.flush(), every);
  }

  /**
   * Loads the counters the store holds, drops those of users that no longer
   * exist, and starts counting `hub`'s events.
   */
  static async start(hub: EventHub, options: AccountantOptions): Promise<Accountant> {
    const loaded = await options.store.snapshot();
    const gone = [...loaded.users.keys()].filter((n) => options.users.get(n) === undefined);
    for (const n of gone) loaded.users.delete(n);
    if (gone.length > 0) await options.store.forget(gone);
    return new Accountant(hub, options, loaded);
  }

  /** One user's counters now (a copy), or undefined for a user without any. */
  user(name: string): UserCounters | undefined {
    const u = this.#totals.users.get(name);
    return u === undefined ? undefined : cloneUser(u);
  }

  /** The server's counters now (a copy). */
  server(): ServerCounters {
    const s = this.#totals.server;
    return { ...s, refusals: new Map(s.refusals), limits: new Map(s.limits) };
  }

  /** Every counter now (a copy). */
  snapshot(): AccountingSnapshot {
    return cloneSnapshot(this.#totals);
  }

  /**
   * Begins `user`'s quota period at `start` (ms since the epoch): the
   * period's bytes restart from 0 unless it already starts there.
   */
  beginPeriod(user: string, start: number): void {
    if (this.#totals.users.get(user)?.period?.start === start) return;
    this.#user(user, { periodStart: start });
  }

  /** Counts what the live sessions moved since the last look (before reading the metrics). */
  refresh(): void {
    const sample = this.#o.sample;
    if (sample === undefined) return;
    for (const s of sample()) {
      const t = this.#sessions.get(s.session);
      if (t !== undefined) this.#credit(t, s.bytesIn, s.bytesOut);
    }
  }

  /** Samples the live sessions and hands what is pending to the store. */
  flush(): Promise<void> {
    const run = this.#flushing.then(async () => {
      this.refresh();
      this.#prune();
      // While the store fails, an empty batch still asks it to retry what it holds.
      if (isEmptyBatch(this.#pending) && !this.#failing) return;
      const batch = this.#pending;
      this.#pending = emptyBatch();
      try {
        await this.#o.store.add(batch);
        await this.#adopt();
        if (this.#failing) {
          this.#failing = false;
          this.#o.onStoreError?.(undefined, true);
        }
      } catch (e) {
        if (!this.#failing) {
          this.#failing = true;
          this.#o.onStoreError?.(e, false);
        }
      }
    });
    this.#flushing = run;
    return run;
  }

  /**
   * With a shared store: takes the fleet's counters of the users with a
   * live session here, plus what this server gathered since the last batch.
   */
  async #adopt(): Promise<void> {
    const read = this.#o.store.users;
    if (read === undefined) return;
    const names = new Set<string>();
    for (const t of this.#sessions.values()) names.add(t.user);
    if (names.size === 0) return;
    const fleet = await read.call(this.#o.store, [...names]);
    for (const [name, shared] of fleet) {
      const mine = this.#totals.users.get(name);
      if (mine === undefined) continue;
      shared.sessionsLive = mine.sessionsLive;
      const pending = this.#pending.users.get(name);
      if (pending !== undefined) applyUserDelta(shared, { ...pending, sessionsLive: 0 });
      this.#totals.users.set(name, shared);
    }
  }

  /** Stops counting, writes what is pending, and closes the store. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#stop();
      clearInterval(this.#timer);
      await this.flush();
      await this.#o.store.close();
    })();
    return this.#closed;
  }

  #user(name: string, delta: UserDelta): void {
    let u = this.#totals.users.get(name);
    if (u === undefined) {
      if (this.#o.users.get(name) === undefined) return;
      this.#totals.users.set(name, u = emptyUser());
    }
    applyUserDelta(u, delta);
    mergeBatch(this.#pending, { server: {}, users: new Map([[name, delta]]) });
  }

  #server(name: ServerCounterName, by = 1): void {
    applyServerDelta(this.#totals.server, { [name]: by });
    this.#pending.server[name] = (this.#pending.server[name] ?? 0) + by;
  }

  #serverKeyed(which: "refusals" | "limits", key: string): void {
    applyServerDelta(this.#totals.server, { [which]: new Map([[key, 1]]) });
    const m = this.#pending.server[which] ??= new Map();
    m.set(key, (m.get(key) ?? 0) + 1);
  }

  #count(user: string | undefined, name: ServerCounterName & UserCounterName, by = 1): void {
    this.#server(name, by);
    if (user !== undefined) this.#user(user, { [name]: by });
  }

  #track(session: number, user: string): SessionTrack | undefined {
    let t = this.#sessions.get(session);
    if (t === undefined && this.#sessions.size < MAX_SESSIONS) {
      t = { user, evIn: 0, evOut: 0, seenIn: 0, seenOut: 0, live: false };
      this.#sessions.set(session, t);
    }
    return t;
  }

  /** Credits the growth of a session's cumulative byte counts. */
  #credit(t: SessionTrack, totalIn: number, totalOut: number): void {
    const dIn = Math.max(0, totalIn - t.seenIn);
    const dOut = Math.max(0, totalOut - t.seenOut);
    if (dIn === 0 && dOut === 0) return;
    t.seenIn += dIn;
    t.seenOut += dOut;
    this.#server("bytesIn", dIn);
    this.#server("bytesOut", dOut);
    this.#user(t.user, { bytesIn: dIn, bytesOut: dOut });
  }

  #observe(e: TunnelEvent): void {
    switch (e.type) {
      case "login":
        this.#track(e.session, e.user);
        this.#count(e.user, e.resumed ? "loginsResumed" : "loginsOk");
        return;
      case "refusal":
        this.#serverKeyed("refusals", e.reason);
        if (e.reason === "auth_failed") this.#count(e.user, "loginsFailed");
        return;
      case "session_start": {
        const t = this.#track(e.session, e.user);
        this.#server("sessionsStarted");
        if (t !== undefined && !t.live) {
          t.live = true;
          this.#user(t.user, { sessionsLive: 1 });
        }
        return;
      }
      case "session_end": {
        const t = this.#sessions.get(e.session);
        if (t === undefined) return;
        this.#credit(t, Math.max(t.evIn, e.bytesIn), Math.max(t.evOut, e.bytesOut));
        if (t.live) this.#user(t.user, { sessionsLive: -1 });
        this.#sessions.delete(e.session);
        return;
      }
      case "bytes": {
        // A session is followed from its login to its end; bytes after the end are in its total.
        const t = this.#sessions.get(e.session);
        if (t === undefined) return;
        t.evIn += e.in;
        t.evOut += e.out;
        this.#credit(t, t.evIn, t.evOut);
        return;
      }
      case "stream_open":
        this.#count(e.user, "streamsOpened");
        return;
      case "stream_refused":
        this.#count(this.#sessions.get(e.session)?.user, "streamsRefused");
        return;
      case "kick":
        this.#count(e.user, "kicks");
        return;
      case "limit":
        this.#serverKeyed("limits", e.limit);
        return;
      default:
        return;
    }
  }

  /** Drops the counters of users removed from users.yml that have no live session. */
  #prune(): void {
    const gone: string[] = [];
    for (const [name, u] of this.#totals.users) {
      if (u.sessionsLive <= 0 && this.#o.users.get(name) === undefined) gone.push(name);
    }
    if (gone.length === 0) return;
    for (const n of gone) {
      this.#totals.users.delete(n);
      this.#pending.users.delete(n);
    }
    this.#o.store.forget(gone).catch((e) => {
      if (!this.#failing) {
        this.#failing = true;
        this.#o.onStoreError?.(e, false);
      }
    });
  }
}
