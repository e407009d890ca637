/**
 * Watching a configuration file for changes on every OS (`Deno.watchFs`),
 * for a running server to reload `users.yml` without a signal.
 *
 * The file's directory is watched, not the file: editors that save by
 * writing a new file and renaming it over the old one replace the inode a
 * file watch would follow. Bursts of events (an editor writes, truncates,
 * renames) are collapsed into one call after a quiet moment.
 *
 * @module
 */
import { basename, dirname, resolve } from "node:path";

/** How long the file must stay quiet before `onChange` runs (ms). */
export const WATCH_DEBOUNCE_MS = 200;

/** A running watch. */
export interface FileWatch {
  /** Stops watching; a pending call is dropped. */
  close(): void;
}

/** Options for {@linkcode watchFile}. */
export interface WatchFileOptions {
  /** Quiet time before `onChange` (ms); default {@linkcode WATCH_DEBOUNCE_MS}. */
  debounceMs?: number;
  /** Told when the watch itself fails (e.g. the directory was removed). */
  onError?: (error: unknown) => void;
}

/**
 * Calls `onChange` after `path` is written, created, replaced by a rename
 * or removed, once per burst of changes.
 *
 * @example
 * ```ts ignore
 * const watch = watchFile("srv/users.yml", () => reload());
 * watch.close();
 * ```
 */
export function watchFile(
  path: string,
  onChange: () => void,
  options: WatchFileOptions = {},
): FileWatch {
  return watchFiles([path], onChange, options);
}

/**
 * {@linkcode watchFile} for several files at once (a certificate and its
 * key): one call per burst of changes to any of them. Throws when a
 * directory cannot be watched.
 *
 * @example
 * ```ts ignore
 * const watch = watchFiles(["tls/server.crt", "tls/server.key"], () => reload());
 * watch.close();
 * ```
 */
export function watchFiles(
  paths: readonly string[],
  onChange: () => void,
  options: WatchFileOptions = {},
): FileWatch {
  const full = paths.map((p) => resolve(p));
  const names = new Set(full.map((f) => basename(f)));
  const dirs = [...new Set(full.map((f) => dirname(f)))];
  const debounceMs = options.debounceMs ?? WATCH_DEBOUNCE_MS;
  const watcher = Deno.watchFs(dirs, { recursive: false });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  (async () => {
    for await (const ev of watcher) {
      if (ev.kind === "access" || !ev.paths.some((p) => names.has(basename(p)))) continue;
      clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        if (!closed) onChange();
      }, debounceMs);
    }
  })().catch((e) => {
    if (!closed) options.onError?.(e);
  });
  return {
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      try {
        watcher.close();
      } catch {
        // already closed
      }
    },
  };
}
