/**
 * Paths of the Debian programs the end-to-end tests run, where a user's
 * PATH may find other ones or none.
 *
 * Exports: `PYTHON` (Debian's python3, which has python3-socks and
 * python3-dnspython; a pyenv one may not), `DNSMASQ` (in /usr/sbin).
 *
 * @module
 */

/** `path` when it exists, else `name` (looked up in PATH). */
function installed(path: string, name: string): string {
  try {
    Deno.statSync(path);
    return path;
  } catch {
    return name;
  }
}

/** Debian's python3. */
export const PYTHON: string = installed("/usr/bin/python3", "python3");

/** dnsmasq, which lives in /usr/sbin. */
export const DNSMASQ: string = installed("/usr/sbin/dnsmasq", "dnsmasq");
