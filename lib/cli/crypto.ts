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
 * cannot load (the message says why, e.g. to grant `--allow-ffi`, and names
 * `crypto.library` when one is set); `auto` never throws.
 *
 * @example
 * ```ts
 * import { useCryptoBackend } from "./crypto.ts";
 * console.log(useCryptoBackend({ backend: "webcrypto" }).name); // webcrypto
 * ```
 */
export function useCryptoBackend(settings: CryptoSettings): CryptoBackend {
  let loaded: CryptoBackend;
  try {
    loaded = loadCryptoBackend(
      settings.backend,
      settings.library === undefined ? {} : { library: settings.library },
    );
  } catch (e) {
    if (settings.library === undefined || !(e instanceof Error)) throw e;
    throw new Error(
      `${e.message}: check crypto.library (a path to OpenSSL 3's libcrypto), or remove it to ` +
        "try the usual names",
      { cause: e },
    );
  }
  const backend = setCryptoBackend(loaded);
  setCurveBackend(loadCurveBackend(backend));
  return backend;
}
