/**
 * The process-wide crypto backend from a loaded config's `crypto:` section,
 * for the commands that run a server or a client.
 *
 * @module
 */
import type { CryptoSettings } from "../config/mod.ts";
import { loadCryptoBackend, loadCurveBackend } from "../openssl/mod.ts";
import { setCurveBackend } from "../crypto/keys.ts";
import { type CryptoBackend, setCryptoBackend } from "../record/mod.ts";

/**
 * Sets the process-wide record crypto backend from `crypto.backend` and
 * `crypto.library` and returns it; with `openssl`, X25519 and Ed25519
 * signing run through the same library too (`setCurveBackend`), else on
 * `@noble/curves`. Throws when `openssl` is asked for and
 * cannot load (the message says why, e.g. to grant `--allow-ffi`); `auto`
 * never throws.
 *
 * @example
 * ```ts
 * import { useCryptoBackend } from "./crypto.ts";
 * console.log(useCryptoBackend({ backend: "webcrypto" }).name); // webcrypto
 * ```
 */
export function useCryptoBackend(settings: CryptoSettings): CryptoBackend {
  const backend = setCryptoBackend(
    loadCryptoBackend(
      settings.backend,
      settings.library === undefined ? {} : { library: settings.library },
    ),
  );
  setCurveBackend(loadCurveBackend(backend));
  return backend;
}
