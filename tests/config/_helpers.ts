import assert from "node:assert/strict";
import { ConfigError } from "../../lib/errors.ts";
import { toBase64Url } from "../../lib/crypto/mod.ts";

/** Runs `fn`, asserts it throws a ConfigError, and returns it. */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    return e;
  }
  assert.fail("expected a ConfigError, nothing was thrown");
}

/** Asserts the error's file, line and column, and that the message starts with them. */
export function assertAt(e: ConfigError, file: string, line: number, column: number): void {
  assert.deepEqual([e.file, e.line, e.column], [file, line, column], e.message);
  assert.ok(e.message.startsWith(`${file}:${line}:${column}: `), e.message);
}

/** A base64url key of `n` bytes, all `fill`. */
export function k(n: number, fill = 1): string {
  return toBase64Url(new Uint8Array(n).fill(fill));
}

export const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
export const KEY = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";

/** A readFile over a fixed set of files. */
export function files(map: Record<string, string>): (p: string) => string {
  return (p) => {
    const v = map[p];
    if (v === undefined) throw new Deno.errors.NotFound(`No such file: ${p}`);
    return v;
  };
}

/** The usual files a server.yml in "etc/" names. */
export const SERVER_FILES = files({
  "etc/keys/server.key": k(64, 7) + "\n",
  "etc/tls/server.crt": CERT,
  "etc/tls/server.key": KEY,
});
