/**
 * Key schedule and framing shared by both engines (Noise-style): a chaining
 * key `ck` advanced by HKDF-Extract with each DH result or PSK, a transcript
 * hash `h` advanced by SHA-256 over each message, and sealed frames
 * `masked_len u16 ‖ ChaCha20-Poly1305(key, 0^12, body, aad = h ‖ masked_len)`.
 * Spec: docs/PROTOCOL.md part 2 (handshake) section 5.
 *
 * @module
 */
import { chachaOpen, chachaSeal } from "../crypto/chacha20_poly1305.ts";
import { hash, hkdfExpandLabel, hkdfExtract, hmacSha256, wipe } from "../crypto/mod.ts";
import { concat } from "../wire/bytes.ts";
import { PROTOCOL_NAME, SECRET_BYTES } from "./constants.ts";

const EMPTY = new Uint8Array(0);
/** Every frame key is used once, so the nonce is constant. */
const ZERO_NONCE = new Uint8Array(12);

/** ck0 = SHA-256("NitroSocks v1 handshake"). Copy before use: mixKey wipes its input. */
export const INITIAL_CHAINING_KEY: Uint8Array = hash(new TextEncoder().encode(PROTOCOL_NAME));

/** h = SHA-256(h ‖ parts...). */
export function mixHash(h: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return hash(concat([h, ...parts]));
}

/** ck' = HKDF-Extract(salt = ck, ikm); wipes the old ck. */
export function mixKey(ck: Uint8Array, ikm: Uint8Array): Uint8Array {
  const next = hkdfExtract(ck, ikm);
  wipe(ck);
  return next;
}

/** One sealed frame's key and length mask. */
export interface FrameKeys {
  key: Uint8Array;
  mask: number;
}

/** key = ExpandLabel(ck, "<name> key", h, 32); mask = ExpandLabel(ck, "<name> mask", h, 2). */
export function frameKeys(ck: Uint8Array, name: string, h: Uint8Array): FrameKeys {
  const key = hkdfExpandLabel(ck, `${name} key`, h, 32);
  const m = hkdfExpandLabel(ck, `${name} mask`, h, 2);
  return { key, mask: (m[0]! << 8) | m[1]! };
}

/** Seals a body: masked_len ‖ ciphertext ‖ tag; wipes the key. */
export function sealFrame(keys: FrameKeys, h: Uint8Array, body: Uint8Array): Uint8Array {
  const ctLen = body.length + 16;
  const header = new Uint8Array([((ctLen ^ keys.mask) >> 8) & 0xff, (ctLen ^ keys.mask) & 0xff]);
  const ct = chachaSeal(keys.key, ZERO_NONCE, body, concat([h, header]));
  wipe(keys.key);
  return concat([header, ct]);
}

/** The ciphertext length a 2-byte masked header stands for. */
export function frameLength(keys: FrameKeys, header: Uint8Array): number {
  return ((header[0]! << 8) | header[1]!) ^ keys.mask;
}

/** Opens masked_len ‖ ciphertext; throws `ProtocolError` `DECRYPT_FAILED`. Wipes the key. */
export function openFrame(keys: FrameKeys, h: Uint8Array, frame: Uint8Array): Uint8Array {
  try {
    return chachaOpen(keys.key, ZERO_NONCE, frame.subarray(2), concat([h, frame.subarray(0, 2)]));
  } finally {
    wipe(keys.key);
  }
}

/** HMAC-SHA256(ExpandLabel(ck, label, "", 32), h). */
export function transcriptMac(ck: Uint8Array, label: string, h: Uint8Array): Uint8Array {
  const k = hkdfExpandLabel(ck, label, EMPTY, 32);
  const tag = hmacSha256(k, h);
  wipe(k);
  return tag;
}

/** The final secrets: ExpandLabel(ck, label, h_final, 32) for each. */
export function finalSecrets(
  ck: Uint8Array,
  h: Uint8Array,
): { clientToServer: Uint8Array; serverToClient: Uint8Array; resumptionSecret: Uint8Array } {
  return {
    clientToServer: hkdfExpandLabel(ck, "c ap traffic", h, SECRET_BYTES),
    serverToClient: hkdfExpandLabel(ck, "s ap traffic", h, SECRET_BYTES),
    resumptionSecret: hkdfExpandLabel(ck, "resumption", h, SECRET_BYTES),
  };
}

/**
 * The PSK a resumption mixes in place of se and token:
 * ExpandLabel(resumption secret, "resume psk", "", 32).
 */
export function resumePsk(resumptionSecret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(resumptionSecret, "resume psk", EMPTY, SECRET_BYTES);
}

/**
 * The Hello binder: MAC(resumption secret, "resume binder", MixHash(hc, body
 * before the binder)). Proves the client holds the secret without revealing it.
 */
export function resumeBinder(
  resumptionSecret: Uint8Array,
  hc: Uint8Array,
  bodyBeforeBinder: Uint8Array,
): Uint8Array {
  return transcriptMac(resumptionSecret, "resume binder", mixHash(hc, bodyBeforeBinder));
}

const PASSWORD_AUTH_PREFIX = new TextEncoder().encode("NitroSocks v1 SCRAM-SHA-256\0");

/**
 * SCRAM's AuthMessage for a password login: utf8("NitroSocks v1
 * SCRAM-SHA-256") ‖ 0x00 ‖ h3. The transcript hash h3 stands for RFC 5802's
 * nonces and channel binding: it covers the server's public key, both
 * nonces, both ephemeral keys, the server's signature and the user id.
 */
export function passwordAuthMessage(h3: Uint8Array): Uint8Array {
  return concat([PASSWORD_AUTH_PREFIX, h3]);
}

/** The proof field: ClientProof XOR ExpandLabel(ck3, "password proof", h3, 32). */
export function passwordProofField(
  ck3: Uint8Array,
  h3: Uint8Array,
  proof: Uint8Array,
): Uint8Array {
  const mask = hkdfExpandLabel(ck3, "password proof", h3, SECRET_BYTES);
  const out = new Uint8Array(SECRET_BYTES);
  for (let i = 0; i < SECRET_BYTES; i++) out[i] = mask[i]! ^ (proof[i] ?? 0);
  wipe(mask);
  return out;
}

/** The PSK a password login mixes into ck4: ClientKey ‖ ServerKey (64 bytes). */
export function passwordPsk(clientKey: Uint8Array, serverKey: Uint8Array): Uint8Array {
  return concat([clientKey, serverKey]);
}

const JWT_PSK_PREFIX = new TextEncoder().encode("NitroSocks v1 jwt\0");

/** The PSK a JWT login mixes into ck4 in place of a token: SHA-256("NitroSocks v1 jwt" ‖ 0x00 ‖ token). */
export function jwtPsk(token: string): Uint8Array {
  return hash(concat([JWT_PSK_PREFIX, new TextEncoder().encode(token)]));
}

/** A padding length 0..max from one random byte (always draws the byte). */
export function paddingLength(random: (n: number) => Uint8Array, max: number): number {
  const b = random(1)[0]!;
  return Math.floor((b * (max + 1)) / 256);
}

/** Accumulates pushed bytes; views it hands out are never written to again. */
export class ByteQueue {
  #buf: Uint8Array = EMPTY;

  get length(): number {
    return this.#buf.length;
  }

  /** Appends a copy of `chunk`. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const next = new Uint8Array(this.#buf.length + chunk.length);
    next.set(this.#buf);
    next.set(chunk, this.#buf.length);
    this.#buf = next;
  }

  /** A view of the first `n` bytes (n <= length). */
  peek(n: number): Uint8Array {
    return this.#buf.subarray(0, n);
  }

  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Uint8Array {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Removes and returns everything. */
  rest(): Uint8Array {
    const out = this.#buf;
    this.#buf = EMPTY;
    return out;
  }
}
