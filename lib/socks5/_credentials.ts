/**
 * Username/password checking shared by the SOCKS5 (RFC 1929) and HTTP
 * CONNECT (Basic) front ends. Private to `lib/socks5`.
 *
 * @module
 */
import { ctEqual, hash } from "../crypto/mod.ts";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });
/** RFC 1929 section 2: ULEN and PLEN are one byte, 1..255. */
export const MAX_CREDENTIAL_LENGTH = 255;
const DUMMY = new Uint8Array(32);
const validated = new WeakSet<Map<string, string>>();

/**
 * Throws `RangeError` if a configured username or password is empty or
 * longer than 255 UTF-8 bytes (it could never be sent). Checked once per map.
 */
export function validateUsers(users: Map<string, string>): void {
  if (validated.has(users)) return;
  for (const [name, password] of users) {
    const n = encoder.encode(name).length;
    const p = encoder.encode(password).length;
    if (n < 1 || n > MAX_CREDENTIAL_LENGTH) {
      throw new RangeError(
        `Cannot use SOCKS5 user "${name}": username is ${n} bytes, expected 1..255`,
      );
    }
    if (p < 1 || p > MAX_CREDENTIAL_LENGTH) {
      throw new RangeError(
        `Cannot use SOCKS5 user "${name}": password is ${p} bytes, expected 1..255`,
      );
    }
  }
  validated.add(users);
}

/**
 * True if `username`/`password` (raw bytes as received) match a configured
 * user. Passwords are compared as SHA-256 digests in constant time, so the
 * time taken depends neither on the password length nor on where it
 * differs; an unknown user costs the same two hashes.
 */
export function checkCredentials(
  users: Map<string, string>,
  username: Uint8Array,
  password: Uint8Array,
): boolean {
  let name: string | undefined;
  try {
    name = strictDecoder.decode(username);
  } catch {
    name = undefined;
  }
  const expected = name === undefined ? undefined : users.get(name);
  const given = hash(password);
  const want = hash(expected === undefined ? DUMMY : encoder.encode(expected));
  const same = ctEqual(given, want);
  return expected !== undefined && same;
}
