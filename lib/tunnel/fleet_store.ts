/**
 * The server's side of `store: redis://…`: connects to the fleet's Redis
 * at start (a server does not start without it: its replay cache would be
 * missing), logs each outage and recovery, and answers the acceptor's
 * replay question with the fail-closed rule: a Hello that the shared cache
 * cannot vouch for is a probe. It checks the replay epoch at connect and on
 * every reconnect, and logs when Redis had lost it (docs/DEPLOY.md).
 *
 * @module
 */
import type { StoreSettings } from "../config/mod.ts";
import { randomBytes } from "../crypto/mod.ts";
import { type Claim, Fleet, RedisLink } from "../fleet/mod.ts";
import type { HelloSeen } from "../handshake/mod.ts";
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
  /**
   * A reason to treat the Hello as a probe, or undefined when the fleet has
   * not seen it; `windowMs` is `handshake.clock_window`.
   */
  claim(hello: HelloSeen, windowMs: number): Promise<string | undefined>;
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
  const noted = (c: Claim) => {
    if (!c.created) return;
    const iso = (ms: number) => new Date(ms).toISOString();
    log.warn(
      `shared store had no replay epoch (first use, or Redis lost its data): set to ${
        iso(c.epoch)
      }; Hellos stamped before it are probes for one clock window`,
    );
  };
  // Set once the fleet exists: each reconnect checks the replay epoch (docs/DEPLOY.md).
  const made: { fleet?: Fleet } = {};
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
      void made.fleet?.checkEpoch().then(noted, () => {});
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
  const f = new Fleet({ link, prefix: settings.prefix, serverId: hex(randomBytes(6)) });
  made.fleet = f;
  await f.listen().catch(async (e) => {
    await f.close();
    throw e;
  });
  noted(await f.checkEpoch());
  return {
    fleet: f,
    async claim(hello, windowMs) {
      const c = await f.claimNonce(hello.nonce, hello.timestampMs, windowMs);
      noted(c);
      if (c.verdict === "ok") return undefined;
      if (c.verdict === "replay") {
        return "replayed hello nonce (seen by another server of the fleet)";
      }
      if (c.verdict === "before_epoch") {
        return "hello stamped before the shared store's replay epoch " +
          `${new Date(c.epoch).toISOString()} (Redis lost its data; its nonce may have been seen)`;
      }
      st.unchecked++;
      return "the shared store did not answer, so the hello's nonce could not be checked (fail closed)";
    },
    status: () => ({ ...st }),
    onRecover: (fn) => void recovered.push(fn),
  };
}
