/**
 * Long-term keys: the server identity (Ed25519 signing seed + X25519 DH
 * key), client X25519 keys and tokens, and their byte encodings.
 *
 * @module
 */
import { randomBytes, type RandomSource } from "../crypto/mod.ts";
import { ed25519PublicKey, x25519PublicKey } from "../crypto/keys.ts";
import { DH_BYTES, TOKEN_BYTES } from "./constants.ts";

/** The server's private keys. Treat as immutable once in use (public keys are cached). */
export interface ServerIdentity {
  /** Ed25519 seed (32 bytes): signs every ServerHello. */
  signSeed: Uint8Array;
  /** X25519 private key (32 bytes): the probe gate's DH key. */
  dhPrivate: Uint8Array;
}

/** Bytes of an encoded identity: Ed25519 seed ‖ X25519 private key. */
export const SERVER_IDENTITY_BYTES = 64;
/** Bytes of the pinned server public key: Ed25519 public ‖ X25519 public. */
export const SERVER_PUBLIC_KEY_BYTES = 64;

const publicCache = new WeakMap<ServerIdentity, Uint8Array>();

function checkKey(what: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array)) throw new TypeError(`Cannot use ${what}: not a Uint8Array`);
  if (b.length !== n) throw new RangeError(`Cannot use ${what}: length ${b.length} is not ${n}`);
}

/**
 * A fresh server identity: 32 random bytes for each key.
 *
 * @example
 * ```ts
 * import { generateServerIdentity, serverPublicKey } from "./identity.ts";
 * serverPublicKey(generateServerIdentity()).length; // 64
 * ```
 */
export function generateServerIdentity(random: RandomSource = randomBytes): ServerIdentity {
  const signSeed = random(32);
  const dhPrivate = random(32);
  checkKey("random signing seed", signSeed, 32);
  checkKey("random DH key", dhPrivate, DH_BYTES);
  return { signSeed, dhPrivate };
}

/**
 * The 64-byte public key clients pin: Ed25519 public ‖ X25519 public.
 *
 * @example
 * ```ts
 * import { generateServerIdentity, serverPublicKey } from "./identity.ts";
 * const pub = serverPublicKey(generateServerIdentity());
 * pub.subarray(0, 32); // Ed25519 public key
 * ```
 */
export function serverPublicKey(id: ServerIdentity): Uint8Array {
  let pub = publicCache.get(id);
  if (pub === undefined) {
    checkKey("signing seed", id.signSeed, 32);
    checkKey("DH private key", id.dhPrivate, DH_BYTES);
    pub = new Uint8Array(SERVER_PUBLIC_KEY_BYTES);
    pub.set(ed25519PublicKey(id.signSeed));
    pub.set(x25519PublicKey(id.dhPrivate), 32);
    publicCache.set(id, pub);
  }
  return pub.slice();
}

/**
 * Encodes an identity for the server's private key file (64 bytes).
 *
 * @example
 * ```ts
 * import { decodeServerIdentity, encodeServerIdentity, generateServerIdentity } from "./identity.ts";
 * const id = generateServerIdentity();
 * decodeServerIdentity(encodeServerIdentity(id)); // same keys as id
 * ```
 */
export function encodeServerIdentity(id: ServerIdentity): Uint8Array {
  checkKey("signing seed", id.signSeed, 32);
  checkKey("DH private key", id.dhPrivate, DH_BYTES);
  const out = new Uint8Array(SERVER_IDENTITY_BYTES);
  out.set(id.signSeed);
  out.set(id.dhPrivate, 32);
  return out;
}

/**
 * Decodes a 64-byte identity; `RangeError` for any other length.
 *
 * @example
 * ```ts
 * import { decodeServerIdentity } from "./identity.ts";
 * decodeServerIdentity(new Uint8Array(64)).signSeed.length; // 32
 * ```
 */
export function decodeServerIdentity(b: Uint8Array): ServerIdentity {
  checkKey("server identity", b, SERVER_IDENTITY_BYTES);
  return { signSeed: b.slice(0, 32), dhPrivate: b.slice(32, 64) };
}

/**
 * A fresh client X25519 key pair; the public half goes in `users.yml`.
 *
 * @example
 * ```ts
 * import { generateClientKey } from "./identity.ts";
 * const { privateKey, publicKey } = generateClientKey();
 * ```
 */
export function generateClientKey(
  random: RandomSource = randomBytes,
): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = random(DH_BYTES);
  checkKey("random client key", privateKey, DH_BYTES);
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/**
 * The public key of a client private key (to print or check a profile).
 *
 * @example
 * ```ts
 * import { clientPublicKey, generateClientKey } from "./identity.ts";
 * const k = generateClientKey();
 * clientPublicKey(k.privateKey); // equals k.publicKey
 * ```
 */
export function clientPublicKey(privateKey: Uint8Array): Uint8Array {
  return x25519PublicKey(privateKey);
}

/**
 * A fresh 32-byte token.
 *
 * @example
 * ```ts
 * import { generateToken } from "./identity.ts";
 * generateToken().length; // 32
 * ```
 */
export function generateToken(random: RandomSource = randomBytes): Uint8Array {
  const t = random(TOKEN_BYTES);
  checkKey("random token", t, TOKEN_BYTES);
  return t;
}
