/**
 * A user's `max_streams` across a fleet: every {@linkcode STREAMS_SYNC_MS},
 * this server records in the shared store how many streams each user with
 * a `max_streams` and a tunnel here has open on it, and learns how many
 * they have open on the other servers; `UserLimits` counts both when a
 * stream opens. Opening a stream never waits for Redis: the other servers'
 * counts are at most one sync old, so streams opened at the same moment on
 * two servers may pass the limit by what opens within that time.
 *
 * A server's counts vanish `ACTIVE_TTL_MS` after its last sync (a crashed
 * server's streams stop counting); when Redis does not answer, the last
 * counts stay.
 *
 * @module
 */
import type { UserSource } from "../config/mod.ts";
import type { Fleet } from "../fleet/mod.ts";
import type { SessionTable } from "./session_table.ts";
import type { UserLimits } from "./user_limits.ts";

/** How often the counts are exchanged (ms). */
export const STREAMS_SYNC_MS = 250;

/**
 * Starts exchanging the stream counts; returns what stops it.
 *
 * @example
 * ```ts ignore
 * const streams = shareStreamCounts(fleet, table, users, limits);
 * streams.close();
 * ```
 */
export function shareStreamCounts(
  fleet: Fleet,
  table: SessionTable,
  users: UserSource,
  limits: UserLimits,
): { sync(): Promise<void>; close(): void } {
  let busy = false;
  const sync = async () => {
    if (busy) return;
    busy = true;
    try {
      const counts = new Map<string, number>();
      for (const e of table.entries()) {
        if (users.get(e.userId)?.maxStreams === undefined || counts.has(e.userId)) continue;
        counts.set(e.userId, limits.streamsOf(e.userId));
      }
      const others = await fleet.streams(counts);
      if (others !== undefined) limits.setRemoteStreams(others);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void sync().catch(() => {}), STREAMS_SYNC_MS);
  return { sync, close: () => clearInterval(timer) };
}
