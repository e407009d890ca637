/**
 * Types shared by the record layer's files. `AeadId` is the handshake's
 * negotiated bulk suite (a type-only import: no runtime dependency).
 *
 * @module
 */
import type { AeadId } from "../handshake/mod.ts";

export type { AeadId };

/** Every `AeadId`, in order of preference. */
export const AEAD_IDS: readonly AeadId[] = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"];

/** Key length in bytes of each suite. */
export const AEAD_KEY_BYTES: Readonly<Record<AeadId, number>> = {
  "aes-256-gcm": 32,
  "aes-128-gcm": 16,
  "chacha20-poly1305": 32,
};

/** Whether `x` names a suite this record layer implements. */
export function isAeadId(x: unknown): x is AeadId {
  return x === "aes-256-gcm" || x === "aes-128-gcm" || x === "chacha20-poly1305";
}
