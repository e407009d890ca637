/**
 * Shared helpers for record-layer tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { loadCryptoBackend } from "../../lib/openssl/mod.ts";
import { OpenSslKey } from "../../lib/record/_openssl.ts";
import { NobleChaChaKey } from "../../lib/record/_webcrypto.ts";
import {
  type AeadId,
  createRecordOpener,
  createRecordSealer,
  type CryptoBackend,
  type OpenerOptions,
  type RecordOpener,
  type RecordSealer,
  type SealerOptions,
} from "../../lib/record/mod.ts";

export const SUITES: readonly AeadId[] = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"];

/**
 * Both crypto backends. OpenSSL is required (the test task grants
 * `--allow-ffi`; CI has OpenSSL 3): a machine without it fails here, loudly,
 * instead of testing one backend only.
 */
export const BACKENDS: readonly { be: string; backend: CryptoBackend }[] = [
  { be: "webcrypto", backend: loadCryptoBackend("webcrypto") },
  { be: "openssl", backend: loadCryptoBackend("openssl") },
];

/** Every backend with every suite. */
export const CASES: readonly { be: string; backend: CryptoBackend; aead: AeadId }[] = BACKENDS
  .flatMap(({ be, backend }) => SUITES.map((aead) => ({ be, backend, aead })));

/**
 * Asserts an epoch key was wiped: OpenSSL freed (and so cleansed) its
 * context; a `@noble/ciphers` ChaCha key's bytes are zero.
 */
export function assertKeyWiped(be: string, key: unknown): void {
  assert.ok(key instanceof OpenSslKey || key instanceof NobleChaChaKey, `${be}: ${String(key)}`);
  assert.equal(key.wiped, true);
  if (be === "webcrypto") {
    assert.ok(key instanceof NobleChaChaKey);
    assert.ok(key.raw.every((b) => b === 0));
  } else {
    assert.ok(key instanceof OpenSslKey);
  }
}

/** `createRecordSealer`/`createRecordOpener` on one backend (other options as given). */
export function on(backend: CryptoBackend): {
  createRecordSealer(aead: AeadId, secret: Uint8Array, opts?: SealerOptions): Promise<RecordSealer>;
  createRecordOpener(aead: AeadId, secret: Uint8Array, opts?: OpenerOptions): Promise<RecordOpener>;
} {
  return {
    createRecordSealer: (aead, secret, opts = {}) =>
      createRecordSealer(aead, secret, { ...opts, backend }),
    createRecordOpener: (aead, secret, opts = {}) =>
      createRecordOpener(aead, secret, { ...opts, backend }),
  };
}

/** A fixed 32-byte secret. */
export function secretOf(b: number): Uint8Array {
  return new Uint8Array(32).fill(b);
}

/** Concatenates records as they would appear on the wire (`concat` from lib/wire). */
export { concat as join } from "../../lib/wire/bytes.ts";

/** Bytes 0, 1, 2, … (mod 256) with a starting offset, so payloads differ. */
export function pattern(n: number, start = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (start + i * 7) & 0xff;
  return out;
}

/** A random source that returns the given 16-bit values (big-endian), then zeros. */
export function u16Source(values: readonly number[]): (n: number) => Uint8Array {
  let i = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let o = 0; o + 1 < n && i < values.length; o += 2, i++) {
      out[o] = values[i]! >>> 8;
      out[o + 1] = values[i]! & 0xff;
    }
    return out;
  };
}

/** Settles every promise; returns payloads or the error of each. */
export function settle(ps: Promise<Uint8Array>[]): Promise<(Uint8Array | unknown)[]> {
  return Promise.all(ps.map((p) => p.then((v) => v, (e: unknown) => ({ error: e }))));
}
