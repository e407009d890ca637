/**
 * Stand-in for the key functions of `lib/handshake/mod.ts` (same names and
 * encodings, docs/protocol/00-overview.md section 2) until that module lands;
 * the lead swaps the imports and deletes this file.
 *
 * Server private key (64 bytes) = Ed25519 seed ‖ X25519 private key.
 * Server public key (64 bytes)  = Ed25519 public key ‖ X25519 public key.
 *
 * @module
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { randomBytes } from "../crypto/mod.ts";

/** The server's long-term keys. */
export interface ServerIdentity {
  /** Ed25519 seed, 32 bytes. */
  signSeed: Uint8Array;
  /** Ed25519 public key, 32 bytes. */
  signPublic: Uint8Array;
  /** X25519 private key, 32 bytes. */
  dhPrivate: Uint8Array;
  /** X25519 public key, 32 bytes. */
  dhPublic: Uint8Array;
}

/** Makes a fresh server identity. */
export function generateServerIdentity(): ServerIdentity {
  return decodeServerIdentity(randomBytes(64));
}

/** The 64-byte public key clients pin. */
export function serverPublicKey(id: ServerIdentity): Uint8Array {
  const out = new Uint8Array(64);
  out.set(id.signPublic);
  out.set(id.dhPublic, 32);
  return out;
}

/** The 64-byte private encoding stored in the server key file. */
export function encodeServerIdentity(id: ServerIdentity): Uint8Array {
  const out = new Uint8Array(64);
  out.set(id.signSeed);
  out.set(id.dhPrivate, 32);
  return out;
}

/** Decodes the 64-byte private encoding; `RangeError` on a wrong length. */
export function decodeServerIdentity(bytes: Uint8Array): ServerIdentity {
  if (bytes.length !== 64) {
    throw new RangeError(`Cannot decode server identity: expected 64 bytes, got ${bytes.length}`);
  }
  const signSeed = bytes.slice(0, 32);
  const dhPrivate = bytes.slice(32, 64);
  return {
    signSeed,
    signPublic: ed25519.getPublicKey(signSeed),
    dhPrivate,
    dhPublic: x25519.getPublicKey(dhPrivate),
  };
}

/** A fresh client X25519 key pair. */
export function generateClientKey(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = randomBytes(32);
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

/** A fresh 32-byte pre-shared token. */
export function generateToken(): Uint8Array {
  return randomBytes(32);
}
