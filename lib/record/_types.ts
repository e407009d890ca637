/**
 * Types shared by the record layer's files.
 *
 * `AeadId` is declared here with the same members as the handshake's
 * negotiated suite, so this folder builds on its own; the two unions are
 * structurally identical and interchangeable.
 *
 * @module
 */

/** The bulk AEAD suites a session can negotiate. */
export type AeadId = "aes-256-gcm" | "aes-128-gcm" | "chacha20-poly1305";

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
