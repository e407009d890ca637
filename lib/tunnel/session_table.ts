/**
 * The server's sessions: the live set, the resumable ones by session id
 * (with the resumption secret each currently accepts), and the lookup the
 * handshake uses to resume one.
 *
 * @module
 */
import type { ResumableSession } from "../handshake/mod.ts";
import type { Session } from "./session.ts";

/** A resumable session as the table holds it. */
export interface SessionEntry {
  session: Session;
  /** Local number of the session (events, logs). */
  no: number;
  userId: string;
  /** The secret the next resumption must prove; replaced by each resumption. */
  resumptionSecret: Uint8Array;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Sessions by id. An entry leaves the table when its session ends
 * ({@linkcode SessionTable.remove}); a closed session is never resumed.
 *
 * @example
 * ```ts ignore
 * const table = new SessionTable();
 * const hs = new ServerHandshake({ ...options, lookupSession: (id) => table.lookup(id) });
 * ```
 */
export class SessionTable {
  readonly #byId = new Map<string, SessionEntry>();
  readonly #live = new Set<Session>();
  #seq = 0;

  /** Sessions that have not ended. */
  get live(): ReadonlySet<Session> {
    return this.#live;
  }

  /** A new local session number. */
  nextNo(): number {
    return ++this.#seq;
  }

  /** What the handshake needs to resume session `id`, while it is open. */
  lookup(id: Uint8Array): ResumableSession | undefined {
    const e = this.get(id);
    return e === undefined ? undefined : { resumptionSecret: e.resumptionSecret, userId: e.userId };
  }

  /** The open session with this id, if any. */
  get(id: Uint8Array): SessionEntry | undefined {
    const e = this.#byId.get(hex(id));
    return e === undefined || e.session.isClosed ? undefined : e;
  }

  /** The open sessions' entries (for status and kick). */
  *entries(): IterableIterator<SessionEntry> {
    for (const e of this.#byId.values()) if (!e.session.isClosed) yield e;
  }

  /** Adds a new session under `id`. */
  add(id: Uint8Array, entry: SessionEntry): void {
    this.#byId.set(hex(id), entry);
    this.#live.add(entry.session);
  }

  /** Forgets `session` (it ended); `id` is dropped only if it still names it. */
  remove(id: Uint8Array, session: Session): void {
    this.#live.delete(session);
    const key = hex(id);
    if (this.#byId.get(key)?.session === session) this.#byId.delete(key);
  }
}
