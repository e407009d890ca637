/**
 * File helpers of provisioning: existence checks, a lock file around
 * read-modify-write of `users.yml`, atomic replacement.
 *
 * @module
 */
import { randomBytes } from "../crypto/mod.ts";

/** Whether anything (even a dangling symlink) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Runs `fn` holding `FILE.lock`, so two user commands never race on one file. */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  try {
    (await Deno.open(lock, { createNew: true, write: true, mode: 0o600 })).close();
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new Error(
        `Cannot lock "${file}": another user command is running (delete "${lock}" if not)`,
      );
    }
    throw e;
  }
  try {
    return await fn();
  } finally {
    await Deno.remove(lock).catch(() => {});
  }
}

/** Replaces `path` atomically (temp file + rename), mode 0600. */
export async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${
    Array.from(randomBytes(6), (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600, createNew: true });
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
