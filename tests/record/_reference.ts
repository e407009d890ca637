/**
 * A slow, literal implementation of docs/PROTOCOL.md part 3 (record layer) built only
 * from `@noble/ciphers` (AES-GCM, ChaCha20-Poly1305, ChaCha20) and
 * `hkdfExpandLabel`, sharing no code with `lib/record`. Tests hold the fast
 * implementation equal to it, and it generates tests/vectors/record_v1.json.
 *
 * @module
 */
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20, chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdfExpandLabel } from "../../lib/crypto/mod.ts";

export type Suite = "aes-256-gcm" | "aes-128-gcm" | "chacha20-poly1305";

const EMPTY = new Uint8Array(0);

/** Keys of one epoch, per section "Key schedule". */
export interface RefEpoch {
  secret: Uint8Array;
  key: Uint8Array;
  iv: Uint8Array;
}

/** Section "Key schedule": epochs 0..n of one direction. */
export function refEpochs(suite: Suite, secret0: Uint8Array, n: number): RefEpoch[] {
  const out: RefEpoch[] = [];
  let s = secret0;
  for (let e = 0; e <= n; e++) {
    out.push({
      secret: s,
      key: hkdfExpandLabel(s, "record key", EMPTY, suite === "aes-128-gcm" ? 16 : 32),
      iv: hkdfExpandLabel(s, "record iv", EMPTY, 12),
    });
    s = hkdfExpandLabel(s, "traffic upd", EMPTY, 32);
  }
  return out;
}

/** Section "Key schedule": len_key. */
export function refLenKey(secret0: Uint8Array): Uint8Array {
  return hkdfExpandLabel(secret0, "record len", EMPTY, 32);
}

/** Section "Header mask": 3 keystream bytes. */
export function refMask(lenKey: Uint8Array, seq: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, seq);
  return chacha20(lenKey, nonce, new Uint8Array(3));
}

/** Section "Nonce": iv XOR seq (12-byte big-endian). */
export function refNonce(iv: Uint8Array, seq: bigint): Uint8Array {
  const s = new Uint8Array(12);
  new DataView(s.buffer).setBigUint64(4, seq);
  return iv.map((b, i) => b ^ s[i]!);
}

function aead(suite: Suite, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) {
  return suite === "chacha20-poly1305" ? chacha20poly1305(key, nonce, aad) : gcm(key, nonce, aad);
}

/** One record as the spec builds it. */
export function refSealRecord(
  suite: Suite,
  lenKey: Uint8Array,
  ep: RefEpoch,
  epochNumber: number,
  seq: bigint,
  payload: Uint8Array,
  padLen: number,
): Uint8Array {
  const inner = new Uint8Array(2 + payload.length + padLen);
  new DataView(inner.buffer).setUint16(0, padLen);
  inner.set(payload, 2);
  return refSealInner(suite, lenKey, ep, epochNumber, seq, inner);
}

/** One record around an arbitrary inner plaintext (tests build malformed ones). */
export function refSealInner(
  suite: Suite,
  lenKey: Uint8Array,
  ep: RefEpoch,
  epochNumber: number,
  seq: bigint,
  inner: Uint8Array,
): Uint8Array {
  const ctLen = inner.length + 16;
  const header = ((epochNumber % 2) << 23) | ctLen;
  const m = refMask(lenKey, seq);
  const masked = Uint8Array.of(
    ((header >>> 16) & 0xff) ^ m[0]!,
    ((header >>> 8) & 0xff) ^ m[1]!,
    (header & 0xff) ^ m[2]!,
  );
  const ct = aead(suite, ep.key, refNonce(ep.iv, seq), masked).encrypt(inner);
  const rec = new Uint8Array(3 + ct.length);
  rec.set(masked);
  rec.set(ct, 3);
  return rec;
}

/** Opens one whole record; throws on any failure. */
export function refOpenRecord(
  suite: Suite,
  lenKey: Uint8Array,
  ep: RefEpoch,
  seq: bigint,
  rec: Uint8Array,
): { epochBit: number; payload: Uint8Array; padLen: number } {
  const m = refMask(lenKey, seq);
  const h = ((rec[0]! ^ m[0]!) << 16) | ((rec[1]! ^ m[1]!) << 8) | (rec[2]! ^ m[2]!);
  const ctLen = h & 0x7fffff;
  if (rec.length !== 3 + ctLen) throw new Error("length mismatch");
  const inner = aead(suite, ep.key, refNonce(ep.iv, seq), rec.subarray(0, 3)).decrypt(
    rec.subarray(3),
  );
  const padLen = (inner[0]! << 8) | inner[1]!;
  return { epochBit: h >>> 23, payload: inner.subarray(2, inner.length - padLen), padLen };
}

/** Lowercase hex. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
}

/** Parses hex. */
export function unhex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(s)) {
    throw new TypeError(`Bad hex "${s.slice(0, 16)}"`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
