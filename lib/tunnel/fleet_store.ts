/**
 * The server's side of `store: redis://…`: connects to the fleet's Redis
 * at start (a server does not start without it: its replay cache would be
 * missing), logs each outage and recovery, and answers the acceptor's
 * replay question with the fail-closed rule: a Hello that the shared cache
 * cannot vouch for is a probe.
 *
 * @module
 */
import type { StoreSettings } from "../config/mod.ts";
import { randomBytes } from "../crypto/mod.ts";
import { Fleet, RedisLink } from "../fleet/mod.ts";
import type { Logger } from "../observe/mod.ts";

/** The shared store's state, for `/metrics`. */
export interface StoreStatus {
  /** `redis`. */
  kind: string;
  /** True while Redis answers. */
  up: boolean;
  /** Times the connection went down since the server started. */
  outages: number;
  /** Hellos turned into probes because the store could not be asked. */
  unchecked: number;
}

/** A connected fleet store. */
export interface FleetStore {
  fleet: Fleet;
  /** A reason to treat the Hello as a probe, or undefined when the fleet has not seen it. */
  claim(nonce: Uint8Array, ttlMs: number): Promise<string | undefined>;
  /** The store's state now. */
  status(): StoreStatus;
  /** Calls `fn` each time the connection comes back (to put leases back). */
  onRecover(fn: () => void): void;
}

function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Connects to the Redis `settings` name; rejects when it does not answer
 * within 5 s.
 *
 * @example
 * ```ts ignore
 * const store = await connectFleet({ kind: "redis", url: "redis://127.0.0.1:6379", prefix: "nitrosocks:" }, log);
 * ```
 */
export async function connectFleet(
  settings: Extract<StoreSettings, { kind: "redis" }>,
  log: Logger,
): Promise<FleetStore> {
  const st: StoreStatus = { kind: "redis", up: false, outages: 0, unchecked: 0 };
  const recovered: (() => void)[] = [];
  let since = 0;
  const link = await RedisLink.connect({
    url: settings.url,
    ...(settings.password === undefined ? {} : { password: settings.password }),
    ...(settings.tlsCaPem === undefined ? {} : { tlsCaPem: settings.tlsCaPem }),
    onState(up, detail) {
      st.up = up;
      if (!up) {
        st.outages++;
        since = Date.now();
        log.warn(
          `shared store ${settings.url} unreachable (${detail}): new logins are refused, ` +
            "live tunnels go on, tunnel caps are local, counters wait",
        );
        return;
      }
      if (since === 0) {
        log.info(`shared store ${settings.url} connected`);
        return;
      }
      log.info(
        `shared store ${settings.url} back after ${
          ((Date.now() - since) / 1000).toFixed(1)
        } s: logins accepted, leases and counters reconciled`,
      );
      for (const fn of recovered) fn();
    },
  });
  st.up = link.up;
  const fleet = new Fleet({ link, prefix: settings.prefix, serverId: hex(randomBytes(6)) });
  await fleet.listen().catch(async (e) => {
    await fleet.close();
    throw e;
  });
  return {
    fleet,
    async claim(nonce, ttlMs) {
      const v = await fleet.claimNonce(nonce, ttlMs);
      if (v === "ok") return undefined;
      if (v === "replay") return "replayed hello nonce (seen by another server of the fleet)";
      st.unchecked++;
      return "the shared store did not answer, so the hello's nonce could not be checked (fail closed)";
    },
    status: () => ({ ...st }),
    onRecover: (fn) => void recovered.push(fn),
  };
}
