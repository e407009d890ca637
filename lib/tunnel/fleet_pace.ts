/**
 * A user's `bandwidth` across a fleet: every {@linkcode PACE_SYNC_MS} (and at
 * once when a limited user's traffic starts here), this server tells the shared store which users' traffic it moves now (users
 * with a bandwidth and an open stream here) and learns over how many
 * servers each one's traffic goes; it then paces the user at `bandwidth`
 * divided by that number (`UserLimits.setShares`). The rate is split ahead
 * of time, so the data path never waits for Redis: one round trip per
 * server per sync, whatever the number of users or records.
 *
 * A server that stops moving a user's traffic drops out of the split within
 * `ACTIVE_TTL_MS`, and the others get its share. When Redis does not
 * answer, the last split stays.
 *
 * @module
 */
import type { UserSource } from "../config/mod.ts";
import type { Fleet } from "../fleet/mod.ts";
import type { SessionTable } from "./session_table.ts";
import type { UserLimits } from "./user_limits.ts";
import type { EventHub } from "../observe/mod.ts";

/** How often the split is renewed (ms). */
export const PACE_SYNC_MS = 250;

/**
 * The split of the users' bandwidth with the other servers.
 *
 * @example
 * ```ts ignore
 * const pace = new FleetPace(fleet, table, users, limits, events);
 * pace.close();
 * ```
 */
export class FleetPace {
  readonly #fleet: Fleet;
  readonly #table: SessionTable;
  readonly #users: UserSource;
  readonly #limits: UserLimits;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #stop: () => void;
  /** The users this server said it moves, at the last sync. */
  #active = new Set<string>();
  #busy = false;
  #split = false;

  constructor(
    fleet: Fleet,
    table: SessionTable,
    users: UserSource,
    limits: UserLimits,
    events: EventHub,
  ) {
    this.#fleet = fleet;
    this.#table = table;
    this.#users = users;
    this.#limits = limits;
    this.#timer = setInterval(() => void this.sync(), PACE_SYNC_MS);
    // A limited user's traffic starting here: split at once, not at the next tick.
    this.#stop = events.subscribe((e) => {
      if (
        e.type === "stream_open" && e.user !== undefined && !this.#active.has(e.user) &&
        this.#users.get(e.user)?.bandwidth !== undefined
      ) void this.sync();
    });
  }

  /** Renews the split now (the timer calls it). */
  async sync(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const active = new Set<string>();
      for (const e of this.#table.entries()) {
        if (e.session.streamCount > 0 && this.#users.get(e.userId)?.bandwidth !== undefined) {
          active.add(e.userId);
        }
      }
      if (active.size === 0 && !this.#split) return;
      const counts = await this.#fleet.active([...active]);
      if (counts === undefined) return;
      this.#active = active;
      this.#limits.setShares(counts);
      this.#split = counts.size > 0;
    } finally {
      this.#busy = false;
    }
  }

  /** Stops renewing. */
  close(): void {
    clearInterval(this.#timer);
    this.#stop();
  }
}
