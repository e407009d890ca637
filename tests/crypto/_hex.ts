/**
 * Test helpers: hex, JSON vector loading, byte assertions.
 *
 * @module
 */
import { strict as assert } from "node:assert";

/** Decodes lowercase or uppercase hex. */
export function unhex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new TypeError(`Bad hex "${s}"`);
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** Encodes bytes as lowercase hex. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Asserts two byte arrays are equal, showing hex on failure. */
export function assertBytes(actual: Uint8Array, expected: Uint8Array, message?: string): void {
  assert.equal(hex(actual), hex(expected), message);
}

/** Reads a JSON file next to the repository's tests/vectors. */
export function loadVector<T>(name: string): T {
  const url = new URL(`../vectors/${name}`, import.meta.url);
  return JSON.parse(Deno.readTextFileSync(url)) as T;
}
