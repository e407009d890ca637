/**
 * Shared helpers for record-layer tests.
 *
 * @module
 */
import type { AeadId } from "../../lib/record/mod.ts";

export const SUITES: readonly AeadId[] = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"];

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
