/**
 * Record key schedule (docs/protocol/30-record.md section "Key schedule"):
 *
 * ```
 * len_key    = HKDF-Expand-Label(secret_0, "record len", "", 32)   never ratcheted
 * key_e      = HKDF-Expand-Label(secret_e, "record key", "", 16|32)
 * iv_e       = HKDF-Expand-Label(secret_e, "record iv",  "", 12)
 * secret_e+1 = HKDF-Expand-Label(secret_e, "traffic upd", "", 32)
 * ```
 *
 * The schedule keeps the current epoch and prepares the next one ahead of
 * time (its Web Crypto key import runs in the background), so a ratchet on
 * the data path is synchronous. Each secret is zeroed as soon as its
 * successor is derived.
 *
 * @module
 */
import { hkdfExpandLabel, wipe } from "../crypto/mod.ts";
import { type CipherKey, importCipherKey } from "./_aead.ts";
import { NONCE_BYTES, TRAFFIC_SECRET_BYTES } from "./_limits.ts";
import { AEAD_KEY_BYTES, type AeadId } from "./_types.ts";

const EMPTY = new Uint8Array(0);

/** HKDF labels of the record layer (each is prefixed with "ns1 " by `hkdfExpandLabel`). */
export const LABELS = {
  lenKey: "record len",
  key: "record key",
  iv: "record iv",
  update: "traffic upd",
} as const;

/** `len_key` from the direction's initial traffic secret. */
export function deriveLenKey(secret0: Uint8Array): Uint8Array {
  return hkdfExpandLabel(secret0, LABELS.lenKey, EMPTY, 32);
}

/** `secret_{e+1}` from `secret_e`. */
export function nextTrafficSecret(secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(secret, LABELS.update, EMPTY, TRAFFIC_SECRET_BYTES);
}

/** The raw key and IV of one epoch. */
export function deriveEpochKeys(
  aead: AeadId,
  secret: Uint8Array,
): { key: Uint8Array; iv: Uint8Array } {
  return {
    key: hkdfExpandLabel(secret, LABELS.key, EMPTY, AEAD_KEY_BYTES[aead]),
    iv: hkdfExpandLabel(secret, LABELS.iv, EMPTY, NONCE_BYTES),
  };
}

/**
 * One epoch's keys. `key` is set at once for ChaCha and when the Web Crypto
 * import finishes for AES.
 */
export class Epoch {
  readonly n: number;
  readonly iv: Uint8Array;
  readonly ready: Promise<CipherKey>;
  key: CipherKey | undefined;
  /** The epoch's traffic secret, held only until the successor is derived. */
  secret: Uint8Array | undefined;

  constructor(aead: AeadId, n: number, secret: Uint8Array) {
    this.n = n;
    this.secret = secret;
    const { key, iv } = deriveEpochKeys(aead, secret);
    this.iv = iv;
    const k = importCipherKey(aead, key);
    if (k instanceof Promise) {
      this.ready = k;
      k.then((v) => {
        this.key = v;
      }, () => {});
    } else {
      this.key = k;
      this.ready = Promise.resolve(k);
    }
  }

  /** Zeroes what this epoch still holds (a ChaCha key is raw bytes). */
  wipe(): void {
    if (this.key instanceof Uint8Array) wipe(this.key);
    wipe(this.iv, this.secret);
    this.secret = undefined;
  }
}

/** Current epoch plus the prepared next one. */
export class KeySchedule {
  readonly aead: AeadId;
  #current: Epoch;
  #next: Epoch;

  /** Copies `secret0`; the caller keeps and wipes its own copy. */
  constructor(aead: AeadId, secret0: Uint8Array) {
    this.aead = aead;
    this.#current = new Epoch(aead, 0, secret0.slice());
    this.#next = this.#prepare(this.#current);
  }

  #prepare(from: Epoch): Epoch {
    const s = nextTrafficSecret(from.secret!);
    wipe(from.secret);
    from.secret = undefined;
    return new Epoch(this.aead, from.n + 1, s);
  }

  get current(): Epoch {
    return this.#current;
  }

  /** Moves to the next epoch (one hash-ratchet step) and prepares the one after. */
  advance(): Epoch {
    const old = this.#current;
    this.#current = this.#next;
    this.#next = this.#prepare(this.#current);
    // In-flight Web Crypto calls hold the old CryptoKey object itself; the
    // ChaCha key is only used synchronously, so zeroing now is safe.
    old.wipe();
    return this.#current;
  }

  /** Zeroes everything held. */
  wipe(): void {
    this.#current.wipe();
    this.#next.wipe();
  }
}
