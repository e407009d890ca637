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

/**
 * Replaces `path` atomically (temp file + rename) with a file of `mode`
 * (default 0600), whatever mode the file it replaces had and whatever the
 * umask: the text is never readable under another mode, not even briefly.
 */
export async function replaceFile(path: string, text: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${
    Array.from(randomBytes(6), (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600, createNew: true });
  try {
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Writes a new file of `mode` (default 0600); with `overwrite`, replaces an
 * existing one atomically ({@linkcode replaceFile}), so an overwritten file
 * ends with `mode` too, never with the old file's.
 */
export async function writeNewFile(
  path: string,
  text: string,
  opts: { overwrite?: boolean; mode?: number } = {},
): Promise<void> {
  const mode = opts.mode ?? 0o600;
  if (opts.overwrite) return await replaceFile(path, text, mode);
  await Deno.writeTextFile(path, text, { mode, createNew: true });
  await Deno.chmod(path, mode);
}
