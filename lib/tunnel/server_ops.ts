/**
 * The server's operations side, started and closed with it: the
 * `Accountant` (counters per user and for the server, kept in the state
 * file or another store) and, when `admin.listen` is set, the admin
 * listener (`/metrics`, `/status`, `/kick`) over the live sessions.
 *
 * @module
 */
import {
  Accountant,
  type AccountingStore,
  FileStore,
  MemoryStore,
  type SessionBytes,
} from "../accounting/mod.ts";
import {
  type AdminHandle,
  type LiveSession,
  type SessionDirectory,
  startAdmin,
} from "../admin/mod.ts";
import type { AccountingSettings, AdminSettings } from "../config/mod.ts";
import { type Fleet, FleetCounters } from "../fleet/mod.ts";
import type { StoreStatus } from "./fleet_store.ts";
import type { EventHub, Logger, TunnelEvent } from "../observe/mod.ts";
import { ReleaseReason } from "../session/mod.ts";
import type { SessionEntry, SessionTable } from "./session_table.ts";

/** Options for {@linkcode startServerOps}. */
export interface ServerOpsOptions {
  table: SessionTable;
  events: EventHub;
  /** The server's current users. */
  users: { get(name: string): object | undefined; readonly size: number };
  log: Logger;
  /** `admin:` of server.yml; no listener unless `listen` is set. */
  admin?: AdminSettings | undefined;
  /** `accounting:` of server.yml: the state file and how often it is written. */
  accounting?: AccountingSettings | undefined;
  /** Keeps the counters instead of the state file (tests). */
  store?: AccountingStore | undefined;
  /**
   * The fleet's shared store (`store:` of server.yml): users' counters go
   * there, and kicks and revocations reach every server of the fleet.
   */
  fleet?: Fleet | undefined;
  /** The shared store's state, for `/metrics`. */
  storeStatus?: (() => StoreStatus) | undefined;
}

/** The running operations side. */
export interface ServerOps {
  accountant: Accountant;
  /** The admin listener's address, when it serves. */
  adminAddr: { hostname: string; port: number } | undefined;
  /** Ends the user's live sessions (what `/kick` does). */
  kick(user: string, by: string): Promise<number>;
  /**
   * Ends the user's live sessions the way a kick does (NOTICE `code`, then
   * release), for a revocation or a limit; resolves with how many.
   */
  end(user: string, reason: string, code: number): Promise<number>;
  /** Stops the admin listener, then writes the counters and closes the store. */
  close(): Promise<void>;
}

/** How long an ended session waits for its client to close the link after the NOTICE. */
const NOTICE_LINGER_MS = 1_000;

/** What `/status` shows of a session that the table does not hold. */
interface SessionFacts {
  source: string;
  since: number;
  via: string;
}

/** The live sessions, from the session table plus what the events said about each. */
class LiveSessions implements SessionDirectory {
  readonly #table: SessionTable;
  readonly #events: EventHub;
  readonly #facts = new Map<number, SessionFacts>();
  readonly #stop: () => void;

  constructor(table: SessionTable, events: EventHub) {
    this.#table = table;
    this.#events = events;
    this.#stop = events.subscribe((e) => this.#observe(e));
  }

  #observe(e: TunnelEvent): void {
    if (e.type === "session_start") {
      this.#facts.set(e.session, { source: e.peer, since: e.time, via: e.peer });
    } else if (e.type === "resume") {
      const f = this.#facts.get(e.session);
      if (f !== undefined) f.via = e.via;
    } else if (e.type === "session_end") {
      this.#facts.delete(e.session);
    }
  }

  list(): LiveSession[] {
    const out: LiveSession[] = [];
    for (const e of this.#table.entries()) {
      const f = this.#facts.get(e.no);
      const st = e.session.stats;
      out.push({
        session: e.no,
        user: e.userId,
        source: f?.source ?? "",
        since: new Date(f?.since ?? Date.now()).toISOString(),
        via: f?.via ?? "",
        connected: e.session.connected,
        bytesIn: st.bytesIn,
        bytesOut: st.bytesOut,
        streams: e.session.streamCount,
        streamsTotal: st.streams,
        rttMs: st.rttMs ?? null,
      });
    }
    return out.sort((a, b) => a.session - b.session);
  }

  streamsLive(): number {
    let n = 0;
    for (const e of this.#table.entries()) n += e.session.streamCount;
    return n;
  }

  *bytes(): Generator<SessionBytes> {
    for (const e of this.#table.entries()) {
      const st = e.session.stats;
      yield { session: e.no, user: e.userId, bytesIn: st.bytesIn, bytesOut: st.bytesOut };
    }
  }

  async kick(user: string, by: string): Promise<number> {
    const victims = [...this.#table.entries()].filter((e) => e.userId === user);
    this.#events.emit({ type: "kick", user, sessions: victims.length, by });
    await this.#endAll(victims, "kicked by the operator", ReleaseReason.REVOKED);
    return victims.length;
  }

  /** Ends `user`'s live sessions with a NOTICE `code` (a revocation or a limit). */
  async end(user: string, reason: string, code: number): Promise<number> {
    const victims = [...this.#table.entries()].filter((e) => e.userId === user);
    await this.#endAll(victims, reason, code);
    return victims.length;
  }

  async #endAll(victims: SessionEntry[], reason: string, code: number): Promise<void> {
    await Promise.all(
      victims.map((e) =>
        e.session.notifyAndClose(reason, code, { lingerMs: NOTICE_LINGER_MS, resetStreams: true })
      ),
    );
  }

  close(): void {
    this.#stop();
    this.#facts.clear();
  }
}

/**
 * Starts the accountant (loading the state file) and the admin listener.
 * Throws `StateFileError` for a state file that exists but cannot be used,
 * and the admin listener's errors; nothing is left running then.
 *
 * @example
 * ```ts ignore
 * const ops = await startServerOps({ table, events, users, log, admin, accounting });
 * await ops.close();
 * ```
 */
export async function startServerOps(options: ServerOpsOptions): Promise<ServerOps> {
  const { log } = options;
  const local = options.store ??
    (options.accounting === undefined
      ? new MemoryStore()
      : await FileStore.open(options.accounting.stateFile));
  const fleet = options.fleet;
  const store = fleet === undefined ? local : new FleetCounters(fleet, local);
  const live = new LiveSessions(options.table, options.events);
  let accountant: Accountant;
  try {
    accountant = await Accountant.start(options.events, {
      store,
      users: options.users,
      ...(options.accounting === undefined
        ? {}
        : { flushIntervalMs: options.accounting.flushIntervalS * 1000 }),
      sample: () => live.bytes(),
      onStoreError(e, recovered) {
        if (recovered) log.info("counters written again");
        else log.warn(`counters not written: ${e instanceof Error ? e.message : String(e)}`);
      },
    });
  } catch (e) {
    live.close();
    await store.close().catch(() => {});
    throw e;
  }
  let admin: AdminHandle | undefined;
  const listen = options.admin?.listen;
  if (listen !== undefined) {
    try {
      admin = startAdmin({
        listen,
        ...(options.admin?.token === undefined ? {} : { token: options.admin.token }),
        accountant,
        sessions: live,
        users: options.users,
        ...(options.storeStatus === undefined ? {} : { store: options.storeStatus }),
        log: log.child("admin"),
        events: options.events,
      });
    } catch (e) {
      live.close();
      await accountant.close();
      throw e;
    }
  }
  // A kick or revocation on one server ends the user's sessions on every server.
  const share = (user: string, reason: string, code: number) => {
    fleet?.publishKick({ user, reason, code }).then((ok) => {
      if (!ok) log.warn(`kick of "${user}" not shared with the fleet: the store did not answer`);
    });
  };
  const stopKicks = fleet?.onKick((k) => {
    options.events.emit({ type: "limit", limit: "fleet", user: k.user, detail: k.reason });
    void live.end(k.user, k.reason, k.code);
  });
  let closed: Promise<void> | undefined;
  return {
    accountant,
    adminAddr: admin?.addr,
    kick(user, by) {
      share(user, "kicked by the operator", ReleaseReason.REVOKED);
      return live.kick(user, by);
    },
    end(user, reason, code) {
      share(user, reason, code);
      return live.end(user, reason, code);
    },
    close() {
      closed ??= (async () => {
        stopKicks?.();
        await admin?.close();
        live.close();
        // Closing goes on when the last write fails (its directory may be
        // gone): the counters since the last good write are lost, and the log
        // says so.
        await accountant.close().catch((e) =>
          log.error(`counters not written at close: ${e instanceof Error ? e.message : String(e)}`)
        );
      })();
      return closed;
    },
  };
}
