/**
 * A second, independent reading of docs/PROTOCOL.md part 2 (handshake) section 5
 * (framing and transcript), built only from lib/crypto primitives. Tests use
 * it to open and re-seal messages the way an attacker holding some keys
 * could, and to check the checked-in vectors against the written spec.
 *
 * @module
 */
import { chachaOpen, chachaSeal } from "../../lib/crypto/chacha20_poly1305.ts";
import { hash, hkdfExpandLabel } from "../../lib/crypto/mod.ts";

const enc = new TextEncoder();

/** ck0 = SHA-256("NitroSocks v1 handshake"). */
export const CK0: Uint8Array = hash(enc.encode("NitroSocks v1 handshake"));

/** MixHash: SHA-256(h ‖ parts). */
export function mixHash(h: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(h.length + parts.reduce((n, p) => n + p.length, 0));
  all.set(h);
  let o = h.length;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return hash(all);
}

function keys(ck: Uint8Array, name: string, h: Uint8Array): { key: Uint8Array; mask: number } {
  const m = hkdfExpandLabel(ck, `${name} mask`, h, 2);
  return { key: hkdfExpandLabel(ck, `${name} key`, h, 32), mask: (m[0]! << 8) | m[1]! };
}

/** Opens `masked_len ‖ ct` sealed under (ck, name, h); returns the body. */
export function openSpecFrame(
  ck: Uint8Array,
  name: string,
  h: Uint8Array,
  frame: Uint8Array,
): Uint8Array {
  const k = keys(ck, name, h);
  const len = ((frame[0]! << 8) | frame[1]!) ^ k.mask;
  if (len !== frame.length - 2) {
    throw new Error(`spec: length ${len} but frame has ${frame.length - 2}`);
  }
  const aad = new Uint8Array([...h, frame[0]!, frame[1]!]);
  return chachaOpen(k.key, new Uint8Array(12), frame.subarray(2), aad);
}

/** Seals a body under (ck, name, h) as `masked_len ‖ ct`. */
export function sealSpecFrame(
  ck: Uint8Array,
  name: string,
  h: Uint8Array,
  body: Uint8Array,
): Uint8Array {
  const k = keys(ck, name, h);
  const masked = (body.length + 16) ^ k.mask;
  const header = new Uint8Array([masked >> 8, masked & 0xff]);
  const ct = chachaSeal(k.key, new Uint8Array(12), body, new Uint8Array([...h, ...header]));
  return new Uint8Array([...header, ...ct]);
}
