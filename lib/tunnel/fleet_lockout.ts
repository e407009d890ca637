/**
 * `auth.lockout` across a fleet: every failed login a server counts is also
 * counted in the shared store, per source (its `sourceKey`) and per user;
 * the failure that reaches `auth.lockout.failures` within the window there
 * locks the source or user on every server at once (published). Each
 * server's own count still locks too, so a guesser spread over N servers
 * gets `failures` attempts in all, not N times as many.
 *
 * Fail open to the local count: when the store does not answer, a failure
 * is counted by this server only. The fleet's count is a fixed window from
 * the first failure, and a successful login does not reset it.
 *
 * @module
 */
import { type LockoutSettings, type LoginGuard, sourceKey } from "./login_guard.ts";
import type { Fleet, FleetLock } from "../fleet/mod.ts";
import type { EventSink } from "../observe/mod.ts";

/**
 * Shares this server's lockout with the fleet; returns what stops it.
 *
 * @example
 * ```ts ignore
 * const guard = new LoginGuard(settings);
 * const share = shareLockout(fleet, guard, settings, events);
 * // ConnectionAcceptor({ guard, onFailedLogin: share.failed, … })
 * ```
 */
export function shareLockout(
  fleet: Fleet,
  guard: LoginGuard,
  settings: LockoutSettings,
  events: EventSink,
): { failed(remote: string, user: string | undefined): void; close(): void } {
  const limits = {
    failures: settings.failures,
    windowMs: settings.windowS * 1000,
    durationMs: settings.durationS * 1000,
  };
  const apply = (l: FleetLock) => guard.lock(l.by, l.key, l.until);
  const stop = fleet.onLock(apply);
  const count = async (by: "source" | "user", key: string) => {
    const l = await fleet.failedLogin(by, key, limits);
    if (l === undefined) return;
    apply(l);
    const what = by === "source" ? `source ${key}` : `user ${JSON.stringify(key)}`;
    events.emit({
      type: "limit",
      limit: "auth.lockout",
      ...(by === "user" ? { user: key } : {}),
      detail: `${what} locked out on every server of the fleet until ${
        new Date(l.until).toISOString()
      } after ${settings.failures} failed logins in ${settings.windowS} s`,
    });
  };
  return {
    failed(remote, user) {
      if (settings.failures === 0) return;
      void count("source", sourceKey(remote)).catch(() => {});
      if (user !== undefined) void count("user", user).catch(() => {});
    },
    close: stop,
  };
}
