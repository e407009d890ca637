/**
 * A user's `max_tunnels` across a fleet: each of this server's tunnels
 * holds a lease in the shared store (`lib/fleet`), taken at login, renewed
 * while the tunnel has a link, given back when it ends. A login that would
 * make the user's leases exceed `max_tunnels` ends at once (NOTICE `LIMIT`),
 * as the local cap does.
 *
 * Fail open: when the store does not answer, the login is judged by this
 * server's own count (`user_limits.ts`) and its lease is put back with the
 * next renewal. A tunnel that lost its link stops renewing, so its place
 * frees within `LEASE_TTL_MS` for a login through another server; when it
 * resumes, its lease is put back at once.
 *
 * @module
 */
import { type Fleet, type Lease, LEASE_RENEW_MS } from "../fleet/mod.ts";
import type { UserSource } from "../config/mod.ts";
import type { SessionTable } from "./session_table.ts";
import type { LimitRefusal } from "./user_limits.ts";

function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/**
 * This server's tunnel leases.
 *
 * @example
 * ```ts ignore
 * const tunnels = new FleetTunnels(fleet, table, users);
 * const over = await tunnels.admit("alice", 7, sessionId, []);
 * tunnels.ended(7);
 * ```
 */
export class FleetTunnels {
  readonly #fleet: Fleet;
  readonly #table: SessionTable;
  readonly #users: UserSource;
  readonly #leases = new Map<number, Lease>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(fleet: Fleet, table: SessionTable, users: UserSource) {
    this.#fleet = fleet;
    this.#table = table;
    this.#users = users;
    this.#timer = setInterval(() => void this.renew(), LEASE_RENEW_MS);
  }

  /**
   * Takes a lease for session `no` (id `sessionId`) of `user`; a refusal
   * when the user's leases fleet-wide are at `max_tunnels`. The lease is
   * named by the session id, which a ticket carries to another server: a
   * session resumed there after its server died keeps its place. `replaced`
   * are this server's sessions of the user that just gave their place
   * (their leases go first).
   */
  async admit(
    user: string,
    no: number,
    sessionId: Uint8Array,
    replaced: number[],
  ): Promise<LimitRefusal | undefined> {
    const lease = { user, id: hex(sessionId) };
    const drop: string[] = [];
    for (const n of replaced) {
      const l = this.#leases.get(n);
      if (l !== undefined) drop.push(l.id);
      this.#leases.delete(n);
    }
    const max = this.#users.get(user)?.maxTunnels;
    const v = await this.#fleet.acquire(lease, max, drop);
    if (v === "over") {
      return {
        limit: "max_tunnels",
        detail: `too many tunnels for this user across the fleet (max ${max})`,
      };
    }
    this.#leases.set(no, lease);
    return undefined;
  }

  /** Session `no` got a link again (a resumption): its lease is put back at once. */
  resumed(no: number): void {
    const l = this.#leases.get(no);
    if (l !== undefined) void this.#fleet.renew([l]);
  }

  /** Session `no` ended: its lease is given back. */
  ended(no: number): void {
    const l = this.#leases.get(no);
    if (l === undefined) return;
    this.#leases.delete(no);
    void this.#fleet.release(l);
  }

  /** Renews the leases of the tunnels that have a link (and puts back those Redis lost). */
  async renew(): Promise<boolean> {
    const live: Lease[] = [];
    for (const e of this.#table.entries()) {
      const l = this.#leases.get(e.no);
      if (l !== undefined && e.session.connected) live.push(l);
    }
    return await this.#fleet.renew(live);
  }

  /** Stops renewing and gives every lease back. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const all = [...this.#leases.values()];
    this.#leases.clear();
    await Promise.all(all.map((l) => this.#fleet.release(l)));
  }
}
