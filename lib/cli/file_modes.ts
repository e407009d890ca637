/**
 * Warnings for secret files other users may read, as ssh and wg-quick give:
 * a profile, the server key, the users file, a TLS private key. A warning,
 * not a refusal: the file still loads, and the log says how to fix it.
 *
 * @module
 */
import type { Logger } from "../observe/mod.ts";

/**
 * Warns on `log` when `path` is open to its group or to other users (any of
 * the mode bits 0o077); resolves to whether it warned. Says nothing on
 * Windows (no Unix mode) or for a file it cannot stat.
 *
 * @example
 * ```ts ignore
 * await warnIfExposed("alice.yml", "alice's private key and token", log);
 * // warn: alice.yml is readable by other users (mode 0644): it holds …; run: chmod 600 alice.yml
 * ```
 */
export async function warnIfExposed(path: string, holds: string, log: Logger): Promise<boolean> {
  const mode = await Deno.stat(path).then((s) => s.mode, () => null);
  if (mode === null || (mode & 0o077) === 0) return false;
  const who = mode & 0o007 ? "other users" : "its group";
  log.warn(
    `${path} is open to ${who} (mode 0${(mode & 0o777).toString(8)}): it holds ${holds}; ` +
      `run: chmod 600 ${path}`,
  );
  return true;
}
