/**
 * Record key schedule (docs/PROTOCOL.md part 3 (record layer) section "Key schedule"):
 *
 * ```
 * len_key    = HKDF-Expand-Label(secret_0, "record len", "", 32)   never ratcheted
 * key_e      = HKDF-Expand-Label(secret_e, "record key", "", 16|32)
 * iv_e       = HKDF-Expand-Label(secret_e, "record iv",  "", 12)
 * chain_e    = HKDF-Expand-Label(secret_e, "traffic upd", "", 32)
 * secret_e+1 = chain_e                                               hash ratchet
 * secret_e+1 = HKDF-Expand-Label(HKDF-Extract(salt = chain_e, ikm = mixin),
 *                                "traffic rekey", "", 32)            DH re-key
 * ```
 *
 * The schedule keeps the current epoch and prepares the hash successor
 * ahead of time (a Web Crypto key import runs in the background; an
 * OpenSSL one is done at once), so a ratchet on the data path is
 * synchronous. Each secret is zeroed as soon as its successor is derived,
 * and each epoch's key is wiped (an OpenSSL context freed) when the
 * schedule leaves it.
 *
 * A receiver may frame the first record of a DH re-key epoch before it
 * knows the mixin (docs/PROTOCOL.md part 4 (re-key and release)): that epoch, and any
 * hash successors framed after it, are then "waiting" epochs whose keys are
 * derived when `supplyMixin` is called.
 *
 * @module
 */
import { hkdfExpandLabel, hkdfExtract, wipe } from "../crypto/mod.ts";
import type { CipherKey, CryptoBackend, KeyUse } from "./_backend.ts";
import { NONCE_BYTES, REKEY_MIXIN_BYTES, TRAFFIC_SECRET_BYTES } from "./_limits.ts";
import { AEAD_KEY_BYTES, type AeadId } from "./_types.ts";

const EMPTY = new Uint8Array(0);
function noop(): void {}

/** HKDF labels of the record layer (each is prefixed with "ns1 " by `hkdfExpandLabel`). */
export const LABELS = {
  lenKey: "record len",
  key: "record key",
  iv: "record iv",
  update: "traffic upd",
  rekey: "traffic rekey",
} as const;

/** `len_key` from the direction's initial traffic secret. */
export function deriveLenKey(secret0: Uint8Array): Uint8Array {
  return hkdfExpandLabel(secret0, LABELS.lenKey, EMPTY, 32);
}

/** `chain_e` (the hash-ratchet `secret_{e+1}`) from `secret_e`. */
export function nextTrafficSecret(secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(secret, LABELS.update, EMPTY, TRAFFIC_SECRET_BYTES);
}

/**
 * The secret of a DH re-key epoch (docs/PROTOCOL.md part 4 (re-key and release)
 * section 3): `HKDF-Expand-Label(HKDF-Extract(salt = chain, ikm = mixin),
 * "traffic rekey", "", 32)`, where `chain` is what the hash ratchet would
 * have used as the next secret.
 */
export function rekeyTrafficSecret(chain: Uint8Array, mixin: Uint8Array): Uint8Array {
  const prk = hkdfExtract(chain, mixin);
  const s = hkdfExpandLabel(prk, LABELS.rekey, EMPTY, TRAFFIC_SECRET_BYTES);
  wipe(prk);
  return s;
}

/** Throws `TypeError`/`RangeError` unless `mixin` is a 32-byte `Uint8Array`. */
export function checkMixin(what: string, mixin: unknown): asserts mixin is Uint8Array {
  if (!(mixin instanceof Uint8Array)) {
    throw new TypeError(`Cannot ${what}: mixin is not a Uint8Array`);
  }
  if (mixin.length !== REKEY_MIXIN_BYTES) {
    throw new RangeError(
      `Cannot ${what}: mixin length ${mixin.length} is not ${REKEY_MIXIN_BYTES}`,
    );
  }
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

/** Which backend imports a schedule's keys, and for which direction. */
export interface KeyScheduleOptions {
  backend: CryptoBackend;
  use: KeyUse;
}

/**
 * One epoch's keys. `key` is set at once by a synchronous import (OpenSSL,
 * ChaCha on Web Crypto) and when the Web Crypto import finishes for AES.
 * An epoch created without a secret is waiting: `derived` is false, `iv` is
 * all zero and `ready` stays pending until `resolve` supplies the secret.
 */
export class Epoch {
  readonly n: number;
  readonly iv: Uint8Array = new Uint8Array(NONCE_BYTES);
  readonly ready: Promise<CipherKey>;
  key: CipherKey | undefined;
  /** The epoch's traffic secret, held only until the successor is derived. */
  secret: Uint8Array | undefined;
  readonly #aead: AeadId;
  readonly #opts: KeyScheduleOptions;
  #derived = false;
  #wiped = false;
  #settle: ((k: CipherKey | Promise<CipherKey>) => void) | undefined;

  /** Takes ownership of `secret`; without one the epoch waits for `resolve`. */
  constructor(aead: AeadId, opts: KeyScheduleOptions, n: number, secret?: Uint8Array) {
    this.#aead = aead;
    this.#opts = opts;
    this.n = n;
    if (secret === undefined) {
      this.ready = new Promise<CipherKey>((r) => {
        this.#settle = r;
      });
    } else {
      this.ready = this.#derive(secret);
    }
  }

  /** Whether `iv` and (possibly still importing) `key` are derived. */
  get derived(): boolean {
    return this.#derived;
  }

  /** Derives a waiting epoch's keys from its secret (taking ownership of it). */
  resolve(secret: Uint8Array): void {
    const settle = this.#settle;
    if (settle === undefined) throw new TypeError("Cannot resolve epoch: keys already derived");
    this.#settle = undefined;
    if (this.#wiped) {
      wipe(secret);
      return;
    }
    settle(this.#derive(secret));
  }

  #derive(secret: Uint8Array): Promise<CipherKey> {
    this.secret = secret;
    const { key, iv } = deriveEpochKeys(this.#aead, secret);
    this.iv.set(iv);
    wipe(iv);
    this.#derived = true;
    const k = this.#opts.backend.importKey(this.#aead, key, this.#opts.use);
    if (k instanceof Promise) {
      k.then((v) => {
        // Records that waited for this import still get `v` through `ready`,
        // even when the epoch was left meanwhile: only Web Crypto imports
        // asynchronously, and its keys need no wiping.
        if (!this.#wiped) this.key = v;
      }, noop);
      return k;
    }
    this.key = k;
    return Promise.resolve(k);
  }

  /** Zeroes what this epoch still holds and wipes its key (freeing an OpenSSL context). */
  wipe(): void {
    this.#wiped = true;
    this.key?.wipe();
    wipe(this.iv, this.secret);
    this.secret = undefined;
  }
}

/**
 * Zeroes an epoch the schedule has left. In-flight Web Crypto calls hold the
 * CryptoKey object itself and derived epochs' nonces are computed eagerly;
 * records of a waiting epoch read `iv` (and a ChaCha key) in callbacks on
 * `ready` registered before this one, so its wipe waits behind them.
 */
function retire(old: Epoch): void {
  if (old.derived) old.wipe();
  else old.ready.then(() => old.wipe(), noop);
}

/** Current epoch plus the prepared next one (or the chain of waiting epochs). */
export class KeySchedule {
  readonly aead: AeadId;
  readonly #opts: KeyScheduleOptions;
  #current: Epoch;
  /** Prepared hash successor; undefined while the current epoch waits for a mixin. */
  #next: Epoch | undefined;
  /** `chain` of the waiting re-key epoch (its salt), held until the mixin arrives. */
  #salt: Uint8Array | undefined;
  /** The waiting re-key epoch, then its hash successors; the last is current. */
  #waiting: Epoch[] = [];

  /** Copies `secret0`; the caller keeps and wipes its own copy. */
  constructor(aead: AeadId, secret0: Uint8Array, opts: KeyScheduleOptions) {
    this.aead = aead;
    this.#opts = { backend: opts.backend, use: opts.use };
    this.#current = new Epoch(aead, this.#opts, 0, secret0.slice());
    this.#next = this.#prepare(this.#current);
  }

  #prepare(from: Epoch): Epoch {
    const s = nextTrafficSecret(from.secret!);
    wipe(from.secret);
    from.secret = undefined;
    return new Epoch(this.aead, this.#opts, from.n + 1, s);
  }

  get current(): Epoch {
    return this.#current;
  }

  /** Whether a DH re-key epoch was entered whose mixin is not known yet. */
  get awaitingMixin(): boolean {
    return this.#waiting.length > 0;
  }

  /** Moves to the next epoch (one hash-ratchet step) and prepares the one after. */
  advance(): Epoch {
    const old = this.#current;
    if (this.#next === undefined) {
      // The current epoch waits for a mixin: so does its successor.
      this.#current = new Epoch(this.aead, this.#opts, old.n + 1);
      this.#waiting.push(this.#current);
    } else {
      this.#current = this.#next;
      this.#next = this.#prepare(this.#current);
    }
    retire(old);
    return this.#current;
  }

  /** Moves to a DH re-key epoch whose mixin is known (copied, not kept). */
  rekey(mixin: Uint8Array): Epoch {
    const next = this.#requireNext();
    const old = this.#current;
    const s = rekeyTrafficSecret(next.secret!, mixin);
    next.wipe(); // the unused hash successor, its secret (the salt) included
    this.#current = new Epoch(this.aead, this.#opts, old.n + 1, s);
    this.#next = this.#prepare(this.#current);
    retire(old);
    return this.#current;
  }

  /** Moves to a DH re-key epoch whose mixin comes later (`supplyMixin`). */
  rekeyDeferred(): Epoch {
    const next = this.#requireNext();
    const old = this.#current;
    this.#salt = next.secret;
    next.secret = undefined;
    next.wipe();
    this.#next = undefined;
    this.#current = new Epoch(this.aead, this.#opts, old.n + 1);
    this.#waiting.push(this.#current);
    retire(old);
    return this.#current;
  }

  /**
   * Derives the waiting re-key epoch from `mixin` (copied, not kept), then
   * each hash successor entered since, and prepares the next one.
   */
  supplyMixin(mixin: Uint8Array): void {
    const waiting = this.#waiting;
    if (waiting.length === 0 || this.#salt === undefined) {
      throw new TypeError("Cannot supply mixin: no re-key epoch is waiting");
    }
    this.#waiting = [];
    let s: Uint8Array | undefined = rekeyTrafficSecret(this.#salt, mixin);
    wipe(this.#salt);
    this.#salt = undefined;
    let last = waiting[0]!;
    for (const [i, e] of waiting.entries()) {
      if (i > 0) {
        s = last.secret === undefined ? undefined : nextTrafficSecret(last.secret);
        wipe(last.secret);
        last.secret = undefined;
      }
      if (s === undefined) return; // wiped meanwhile: the schedule is finished
      e.resolve(s);
      last = e;
    }
    if (last.secret !== undefined) this.#next = this.#prepare(last);
  }

  #requireNext(): Epoch {
    if (this.#next === undefined) {
      throw new TypeError("Cannot re-key: the previous re-key epoch still waits for its mixin");
    }
    return this.#next;
  }

  /** Zeroes everything held. */
  wipe(): void {
    this.#current.wipe();
    this.#next?.wipe();
    for (const e of this.#waiting) e.wipe();
    wipe(this.#salt);
    this.#salt = undefined;
  }
}
