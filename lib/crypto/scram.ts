/**
 * SCRAM-SHA-256 key derivation and proofs (RFC 5802 section 3, RFC 7677).
 * The server stores only the salt, the iteration count, `StoredKey` and
 * `ServerKey`; the client derives `ClientKey` from the password once and
 * proves it per login. How the handshake binds the proof to its transcript:
 * docs/PROTOCOL.md part 2 (handshake) section 14.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ctEqual, wipe } from "./mod.ts";

const encoder = new TextEncoder();

/** SHA-256 output size: the size of every SCRAM key and proof. */
export const SCRAM_KEY_BYTES = 32;
/** RFC 7677 section 4: at least 4096 iterations. */
export const SCRAM_MIN_ITERATIONS = 4096;
/** Most iterations a users.yml or profile may ask for (a bound on the client's work). */
export const SCRAM_MAX_ITERATIONS = 10_000_000;
/** Iterations for new passwords: OWASP's 2023 figure for PBKDF2-HMAC-SHA256. */
export const SCRAM_DEFAULT_ITERATIONS = 600_000;
/** Salt size for new passwords. */
export const SCRAM_SALT_BYTES = 16;

/** What the server keeps for a password (RFC 5802 section 3): never the password. */
export interface ScramVerifier {
  /** Random salt (RFC 5802 `s`). */
  salt: Uint8Array;
  /** PBKDF2 iteration count (RFC 5802 `i`). */
  iterations: number;
  /** `H(ClientKey)`, 32 bytes. */
  storedKey: Uint8Array;
  /** `HMAC(SaltedPassword, "Server Key")`, 32 bytes. */
  serverKey: Uint8Array;
}

/** What the client derives from the password once (it never needs the password again). */
export interface ScramClientKeys {
  /** `HMAC(SaltedPassword, "Client Key")`, 32 bytes. */
  clientKey: Uint8Array;
  /** `HMAC(SaltedPassword, "Server Key")`, 32 bytes. */
  serverKey: Uint8Array;
}

function checkIterations(iterations: number): void {
  if (
    !Number.isSafeInteger(iterations) || iterations < SCRAM_MIN_ITERATIONS ||
    iterations > SCRAM_MAX_ITERATIONS
  ) {
    throw new RangeError(
      `Cannot use ${iterations} SCRAM iterations: not an integer in ` +
        `${SCRAM_MIN_ITERATIONS}..${SCRAM_MAX_ITERATIONS}`,
    );
  }
}

/**
 * `SaltedPassword = Hi(Normalize(password), salt, i)` = PBKDF2-HMAC-SHA256
 * (RFC 5802 section 2.2), computed by Web Crypto. The password is used as
 * given (UTF-8); SASLprep is not applied, so non-ASCII passwords must be
 * typed the same way on both sides.
 *
 * @example
 * ```ts
 * import { saltedPassword } from "./scram.ts";
 * const sp = await saltedPassword("pencil", new Uint8Array(16), 4096);
 * console.log(sp.length); // 32
 * ```
 */
export async function saltedPassword(
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  checkIterations(iterations);
  if (password.length === 0) throw new RangeError("Cannot use an empty password");
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt.slice(), iterations },
    key,
    SCRAM_KEY_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/** `ClientKey` and `ServerKey` from `SaltedPassword` (RFC 5802 section 3); wipes nothing. */
export function scramClientKeys(salted: Uint8Array): ScramClientKeys {
  return {
    clientKey: hmac(sha256, salted, encoder.encode("Client Key")),
    serverKey: hmac(sha256, salted, encoder.encode("Server Key")),
  };
}

/** `StoredKey = H(ClientKey)`. */
export function scramStoredKey(clientKey: Uint8Array): Uint8Array {
  return sha256(clientKey);
}

/**
 * Derives the verifier the server stores for `password`, with a given salt.
 *
 * @example
 * ```ts
 * import { scramVerifier } from "./scram.ts";
 * const v = await scramVerifier("pencil", crypto.getRandomValues(new Uint8Array(16)), 4096);
 * console.log(v.storedKey.length); // 32
 * ```
 */
export async function scramVerifier(
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<ScramVerifier> {
  const salted = await saltedPassword(password, salt, iterations);
  const { clientKey, serverKey } = scramClientKeys(salted);
  const storedKey = scramStoredKey(clientKey);
  wipe(salted, clientKey);
  return { salt: salt.slice(), iterations, storedKey, serverKey };
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** `ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)` (RFC 5802 section 3). */
export function scramClientProof(clientKey: Uint8Array, authMessage: Uint8Array): Uint8Array {
  if (clientKey.length !== SCRAM_KEY_BYTES) {
    throw new RangeError(`Cannot use SCRAM client key: length ${clientKey.length} is not 32`);
  }
  const signature = hmac(sha256, scramStoredKey(clientKey), authMessage);
  const proof = xor(clientKey, signature);
  wipe(signature);
  return proof;
}

/**
 * The server's check (RFC 5802 section 3): recovers `ClientKey` from the
 * proof and compares `H(ClientKey)` with `StoredKey` in constant time. Always
 * does the same work; returns the recovered key (for the key schedule) and
 * whether it matched.
 */
export function scramCheckProof(
  storedKey: Uint8Array,
  authMessage: Uint8Array,
  proof: Uint8Array,
): { ok: boolean; clientKey: Uint8Array } {
  const signature = hmac(sha256, storedKey, authMessage);
  const clientKey = proof.length === SCRAM_KEY_BYTES
    ? xor(proof, signature)
    : new Uint8Array(SCRAM_KEY_BYTES);
  wipe(signature);
  const ok = ctEqual(scramStoredKey(clientKey), storedKey) && proof.length === SCRAM_KEY_BYTES;
  return { ok, clientKey };
}

/** `ServerSignature = HMAC(ServerKey, AuthMessage)` (RFC 5802 section 3). */
export function scramServerSignature(serverKey: Uint8Array, authMessage: Uint8Array): Uint8Array {
  return hmac(sha256, serverKey, authMessage);
}
