/**
 * Both curve backends for tests that must give the same bytes on each:
 * `@noble/curves` (none set) and OpenSSL's (required: the test task grants
 * `--allow-ffi` and CI has OpenSSL 3), and a way to run code on one.
 *
 * @module
 */
import { type CurveBackend, setCurveBackend } from "../../lib/crypto/keys.ts";
import { loadCryptoBackend, loadCurveBackend } from "../../lib/openssl/mod.ts";

const openssl = loadCurveBackend(loadCryptoBackend("openssl"));
if (openssl === undefined) throw new Error("OpenSSL's X25519/Ed25519 did not load");

/** `[name, backend]`: `noble` (undefined: `@noble/curves`) and `openssl`. */
export const CURVES: readonly [string, CurveBackend | undefined][] = [
  ["noble", undefined],
  ["openssl", openssl],
];

/**
 * Runs `fn` with `backend` as the process-wide curve backend, then puts the
 * previous one back.
 *
 * @example
 * ```ts ignore
 * for (const [be, curves] of CURVES) withCurves(curves, () => x25519PublicKey(k));
 * ```
 */
export function withCurves<T>(backend: CurveBackend | undefined, fn: () => T): T {
  const prev = setCurveBackend(backend);
  try {
    return fn();
  } finally {
    setCurveBackend(prev);
  }
}
