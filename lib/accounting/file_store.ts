/**
 * The embedded store: every counter in one small JSON file in the server
 * directory (`accounting.state_file`, default `state.json`), read at start
 * and rewritten after each batch.
 *
 * Writes are atomic: the new content goes to a temporary file next to the
 * state file, is flushed to disk (`fsync`), and then renamed over it, and
 * the directory is flushed too where the OS allows. A crash at any moment
 * leaves either the old file or the new one, never a mix; temporary files a
 * crash left behind are removed at the next start.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import {
  type AccountingBatch,
  type AccountingSnapshot,
  applyBatch,
  cloneSnapshot,
  cloneUser,
  emptySnapshot,
  type UserCounters,
} from "./counters.ts";
import { decodeState, encodeState } from "./_state.ts";
import type { AccountingStore } from "./store.ts";

/** The state file exists but cannot be used; the server refuses to start rather than reset it. */
export class StateFileError extends Error {
  /** The state file's path. */
  readonly path: string;

  constructor(path: string, detail: string, options?: ErrorOptions) {
    super(`Cannot use state file ${JSON.stringify(path)}: ${detail}`, options);
    this.name = "StateFileError";
    this.path = path;
  }
}

/** Options for {@linkcode FileStore.open}. */
export interface FileStoreOptions {
  /**
   * Writes `data` to the new temporary file `path` and flushes it to disk.
   * Default: create (never overwrite), write, fsync, close. Tests pass one
   * that fails halfway.
   */
  writeTemp?: (path: string, data: Uint8Array) => Promise<void>;
  /** The clock for the file's `saved` field. */
  now?: () => number;
}

async function writeTempFile(path: string, data: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  try {
    let off = 0;
    while (off < data.length) off += await f.write(data.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
}

/** Flushes a directory's entries (the rename) to disk; a no-op where the OS does not allow it. */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Not supported here: the rename is still atomic, only its durability waits for the OS.
  }
}

let tempSeq = 0;

/**
 * Counters kept in a JSON state file.
 *
 * @example
 * ```ts ignore
 * const store = await FileStore.open("/srv/nitro/state.json");
 * await store.add({ server: { loginsOk: 1 }, users: new Map([["alice", { loginsOk: 1 }]]) });
 * await store.close();
 * ```
 */
export class FileStore implements AccountingStore {
  /** The state file's path. */
  readonly path: string;
  readonly #data: AccountingSnapshot;
  readonly #writeTemp: (path: string, data: Uint8Array) => Promise<void>;
  readonly #now: () => number;
  /** The write in progress (writes never overlap). */
  #writing: Promise<void> = Promise.resolve();
  /** Changes not yet on disk. */
  #dirty = false;
  #closed = false;

  private constructor(path: string, data: AccountingSnapshot, options: FileStoreOptions) {
    this.path = path;
    this.#data = data;
    this.#writeTemp = options.writeTemp ?? writeTempFile;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Opens the state file at `path`, reading the counters it holds (none when
   * it does not exist yet) and removing temporary files a crash left. Throws
   * {@linkcode StateFileError} when the file exists but cannot be read or
   * decoded: counters (and quotas) are never silently reset.
   */
  static async open(path: string, options: FileStoreOptions = {}): Promise<FileStore> {
    let data = emptySnapshot();
    let text: string | undefined;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new StateFileError(path, e instanceof Error ? e.message : String(e), { cause: e });
      }
    }
    if (text !== undefined) {
      try {
        data = decodeState(text);
      } catch (e) {
        const detail = e instanceof Error ? e.message : String(e);
        throw new StateFileError(
          path,
          `${detail} (move it away to start with fresh counters)`,
          { cause: e },
        );
      }
    }
    await removeLeftovers(path);
    return new FileStore(path, data, options);
  }

  snapshot(): Promise<AccountingSnapshot> {
    return Promise.resolve(cloneSnapshot(this.#data));
  }

  user(name: string): Promise<UserCounters | undefined> {
    const u = this.#data.users.get(name);
    return Promise.resolve(u === undefined ? undefined : cloneUser(u));
  }

  /**
   * Applies `batch` and writes the file. The batch is kept even when the
   * write fails (the promise rejects to say so); the next write carries it.
   */
  add(batch: AccountingBatch): Promise<void> {
    applyBatch(this.#data, batch);
    return this.#save();
  }

  forget(names: readonly string[]): Promise<void> {
    let changed = false;
    for (const n of names) changed = this.#data.users.delete(n) || changed;
    return changed ? this.#save() : this.#writing;
  }

  /** Writes what is pending; later calls do nothing. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#writing.catch(() => {});
    this.#closed = true;
    if (this.#dirty) await this.#write();
  }

  #save(): Promise<void> {
    if (this.#closed) return Promise.reject(new StateFileError(this.path, "the store is closed"));
    this.#dirty = true;
    // Chained, so writes never overlap; a write that starts later carries every change so far.
    const next = this.#writing.catch(() => {}).then(() => this.#dirty ? this.#write() : undefined);
    this.#writing = next;
    return next;
  }

  async #write(): Promise<void> {
    this.#dirty = false;
    const bytes = new TextEncoder().encode(encodeState(this.#data, this.#now()));
    const tmp = `${this.path}.${Deno.pid}-${++tempSeq}.tmp`;
    try {
      await this.#writeTemp(tmp, bytes);
      await Deno.rename(tmp, this.path);
    } catch (e) {
      this.#dirty = true;
      await Deno.remove(tmp).catch(() => {});
      throw new StateFileError(
        this.path,
        `write failed: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    await syncDir(dirname(this.path));
  }
}

/** Removes `NAME.*.tmp` files next to the state file (a crash during a write). */
async function removeLeftovers(path: string): Promise<void> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.startsWith(prefix) && e.name.endsWith(".tmp")) {
        await Deno.remove(join(dir, e.name)).catch(() => {});
      }
    }
  } catch {
    // The directory does not exist yet or cannot be listed: the first write says why.
  }
}
