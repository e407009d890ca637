/**
 * The Deno permissions `nitrosocks` runs under, in one place: the compiled
 * executables embed them (`scripts/compile.ts`), README's `deno install`
 * line names them, and a missing one is reported as such.
 *
 * @module
 */

/**
 * The permissions the product needs, and no more: network (it is a proxy
 * that dials arbitrary targets and listens locally), reading its config and
 * key files, writing them for `init` and `user add`, and loading the
 * system's OpenSSL `libcrypto` for the `openssl` crypto backend (`auto`
 * uses it when it loads; docs/CONFIG.md `crypto.backend`).
 */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  // The npm yaml parser reads these two variables on every parse.
  "--allow-env=LOG_TOKENS,LOG_STREAM",
  // Not scoped to a path: libcrypto's location differs by OS and distribution.
  "--allow-ffi",
];

/** UDP sockets (SOCKS5 UDP ASSOCIATE, dns, forwards) are behind Deno's unstable "net" flag. */
export const UNSTABLE_FLAGS: readonly string[] = ["--unstable-net"];

/**
 * A missing Deno permission in words that say what to do, or undefined for
 * any other error.
 *
 * @example
 * ```ts
 * import { explainPermissionError } from "./permissions.ts";
 * explainPermissionError(new Deno.errors.NotCapable('Requires net access to "127.0.0.1:1080", run again with the --allow-net flag'));
 * // 'a Deno permission is missing: Requires net access to "127.0.0.1:1080", …'
 * ```
 */
export function explainPermissionError(e: unknown): string | undefined {
  const capable = e instanceof Deno.errors.NotCapable ||
    (e instanceof Deno.errors.PermissionDenied && /Requires \S+ access/.test(e.message));
  if (!capable) return undefined;
  return `a Deno permission is missing: ${e.message}. nitrosocks needs ${
    PERMISSION_FLAGS.join(" ")
  } ${UNSTABLE_FLAGS.join(" ")} (README, "Install")`;
}
