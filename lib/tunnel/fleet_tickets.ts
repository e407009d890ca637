/**
 * Ticket keys kept and rotated by the fleet (`store.ticket_rotation`): the
 * fleet's keys live in Redis, newest first; whichever server finds the
 * newest older than the rotation interval adds a fresh one (atomically, so
 * one server does) and tells the others, who reload at once. Enough older
 * keys are kept for every ticket to stay openable for its whole lifetime.
 * No file to copy and rotate by hand; the keys are as safe as Redis is.
 *
 * When Redis does not answer, the keys last read stay in use.
 *
 * @module
 */
import { fromBase64Url, randomBytes, toBase64Url } from "../crypto/mod.ts";
import {
  generateTicketKey,
  TICKET_KEY_BYTES,
  type TicketKey,
  TicketKeyring,
} from "../handshake/mod.ts";
import type { Fleet, StoredTicketKey } from "../fleet/mod.ts";
import type { Logger } from "../observe/mod.ts";

/** The longest wait between two looks at the fleet's keys (ms). */
const MAX_CHECK_MS = 60_000;

function decode(keys: StoredTicketKey[]): TicketKey[] {
  const out: TicketKey[] = [];
  for (const k of keys) {
    try {
      const key = fromBase64Url(k.key);
      if (key.length === TICKET_KEY_BYTES && Number.isInteger(k.id)) out.push({ id: k.id, key });
    } catch {
      // Not a key this version wrote: skipped.
    }
  }
  return out;
}

/** The fleet's ticket keyring, kept up to date. */
export interface FleetTickets {
  keyring: TicketKeyring;
  close(): void;
}

/**
 * Loads the fleet's ticket keys (making the first one when there is none)
 * and keeps the keyring current; rejects when Redis does not answer at start.
 *
 * @example
 * ```ts ignore
 * const t = await startFleetTickets(fleet, { rotateMs: 86_400_000, lifetimeMs: 3_600_000, log });
 * t.keyring; // for ServerHandshake's tickets
 * t.close();
 * ```
 */
export async function startFleetTickets(
  fleet: Fleet,
  opts: { rotateMs: number; lifetimeMs: number; log: Logger },
): Promise<FleetTickets> {
  // A ticket sealed with the newest key must open until it expires: keep that many intervals.
  const keep = Math.ceil(opts.lifetimeMs / opts.rotateMs) + 1;
  const rotate = async () => {
    const fresh = generateTicketKey(new DataView(randomBytes(4).buffer).getUint32(0));
    const stored = { id: fresh.id, key: toBase64Url(fresh.key), created: 0 };
    fresh.key.fill(0);
    if (await fleet.rotateTickets(stored, opts.rotateMs, keep)) {
      opts.log.info(`made a new ticket key (id ${stored.id}) for the fleet`);
    }
  };
  await rotate();
  const first = decode(await fleet.ticketKeys());
  const keyring = new TicketKeyring(first, { lifetimeMs: opts.lifetimeMs });
  const reload = async () => {
    const keys = decode(await fleet.ticketKeys());
    if (keys.length > 0) keyring.setKeys(keys);
  };
  const stop = fleet.onTicketsRotated(() => void reload().catch(() => {}));
  const timer = setInterval(() => {
    rotate().then(reload).catch((e) =>
      opts.log.warn(`ticket keys not checked: ${e instanceof Error ? e.message : String(e)}`)
    );
  }, Math.min(MAX_CHECK_MS, Math.max(1_000, opts.rotateMs / 4)));
  return {
    keyring,
    close() {
      clearInterval(timer);
      stop();
    },
  };
}
