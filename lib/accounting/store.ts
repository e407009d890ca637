/**
 * Where counters are kept: the {@linkcode AccountingStore} interface, and
 * {@linkcode MemoryStore}, which keeps them for the life of the process.
 * `FileStore` (`file_store.ts`) keeps them across restarts in one small
 * JSON file; a shared store (one Redis for a fleet of servers) implements
 * the same interface.
 *
 * The interface is shaped for a store across the network: increments come
 * in batches (the `Accountant` gathers a few seconds of them), every call is
 * async, and reads return copies.
 *
 * @module
 */
import {
  type AccountingBatch,
  type AccountingSnapshot,
  applyBatch,
  cloneSnapshot,
  cloneUser,
  emptySnapshot,
  type UserCounters,
} from "./counters.ts";

/** Keeps the counters of one server (or of a fleet, for a shared store). */
export interface AccountingStore {
  /** Every counter now (a copy). */
  snapshot(): Promise<AccountingSnapshot>;
  /** One user's counters (a copy), or undefined when the store has none. */
  user(name: string): Promise<UserCounters | undefined>;
  /**
   * Takes a batch of increments; once it resolves, a store that persists has
   * it on disk (or shared). A rejection says the batch is not persisted yet,
   * never that it was dropped: the store keeps it and carries it with the
   * next call (an empty batch is a retry).
   */
  add(batch: AccountingBatch): Promise<void>;
  /** Drops these users' counters (users that no longer exist). */
  forget(names: readonly string[]): Promise<void>;
  /** Finishes pending writes and releases what the store holds. */
  close(): Promise<void>;
  /**
   * A store shared by a fleet has it: these users' counters as the whole
   * fleet has them now (users it has none for are left out). The
   * `Accountant` reads them after each batch, so quotas count every
   * server's bytes.
   */
  users?(names: readonly string[]): Promise<Map<string, UserCounters>>;
}

/**
 * Counters in memory only: lost when the process ends. For tests, and for
 * servers started without a state file.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./store.ts";
 * const store = new MemoryStore();
 * await store.add({ server: { loginsOk: 1 }, users: new Map([["alice", { loginsOk: 1 }]]) });
 * console.log((await store.user("alice"))?.loginsOk); // 1
 * ```
 */
export class MemoryStore implements AccountingStore {
  #data: AccountingSnapshot;

  /** Starts from `initial` (copied), or from zero. */
  constructor(initial?: AccountingSnapshot) {
    this.#data = initial === undefined ? emptySnapshot() : cloneSnapshot(initial);
  }

  snapshot(): Promise<AccountingSnapshot> {
    return Promise.resolve(cloneSnapshot(this.#data));
  }

  user(name: string): Promise<UserCounters | undefined> {
    const u = this.#data.users.get(name);
    return Promise.resolve(u === undefined ? undefined : cloneUser(u));
  }

  add(batch: AccountingBatch): Promise<void> {
    applyBatch(this.#data, batch);
    return Promise.resolve();
  }

  forget(names: readonly string[]): Promise<void> {
    for (const n of names) this.#data.users.delete(n);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
