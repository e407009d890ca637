/**
 * The receiving half of the record layer: push-based framing (synchronous),
 * then one AEAD open per record (synchronous with OpenSSL and ChaCha,
 * asynchronous with Web Crypto AES). Framing unmasks each
 * header with the mask of the next sequence number, checks the length before
 * allocating, and follows the epoch bit one ratchet step at a time. A record
 * with the re-key bit starts a DH re-key epoch; if its mixin is not known
 * yet, the records of that epoch (and of its hash successors) wait for
 * `provideMixin`, while earlier records never do.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { wipe } from "../crypto/mod.ts";
import { type CipherKey, openRecordBody, openRecordBodySync, recordNonce } from "./_aead.ts";
import { type CryptoBackend, cryptoBackend } from "./_backend.ts";
import { decryptFailed } from "./_checks.ts";
import { checkMixin, deriveLenKey, type Epoch, KeySchedule } from "./_keys.ts";
import {
  AEAD_TAG_BYTES,
  HARD_BYTES_PER_KEY,
  HARD_RECORDS_PER_KEY,
  HEADER_EPOCH_BIT,
  HEADER_LENGTH_MASK,
  HEADER_REKEY_BIT,
  MAX_RECORD_CIPHERTEXT,
  MAX_SEQ,
  MIN_RECORD_CIPHERTEXT,
  NONCE_BYTES,
  OPENER_MAX_KEY_AGE_MS,
  PAD_PREFIX_BYTES,
  RECORD_HEADER_BYTES,
} from "./_limits.ts";
import { HeaderMask } from "./_mask.ts";
import type { AeadId } from "./_types.ts";

/** Options of `createRecordOpener`. */
export interface OpenerOptions {
  /** Clock (ms) for the receiver's key-age ceiling; default `Date.now`. */
  now?: () => number;
  /** The crypto backend; default the process-wide one (`cryptoBackend()`). */
  backend?: CryptoBackend;
}

/** Internal knobs for tests: start sequence and hard ceilings. */
export interface OpenerInternals {
  firstSeq?: number;
  hardRecords?: number;
  hardBytes?: number;
}

const nonceScratch = new Uint8Array(NONCE_BYTES);
function noop(): void {}

/** See `RecordOpener` in `mod.ts`. */
export class Opener {
  readonly #keys: KeySchedule;
  readonly #mask: HeaderMask;
  readonly #now: () => number;
  readonly #hardRecords: number;
  readonly #hardBytes: number;
  #seq: number;
  #firstSeq: number;
  #epoch: Epoch;
  #epochRecords = 0;
  #epochBytes = 0;
  #epochStart: number;

  // Framing state: header bytes so far, then the body of the current record.
  // The header (the record's AAD) is always copied here: a record opened at
  // once needs it only during the call, and a deferred one takes a copy.
  readonly #hdr = new Uint8Array(RECORD_HEADER_BYTES);
  #hdrFill = 0;
  #bodyLen = -1; // -1 while reading a header
  #body: Uint8Array | undefined; // owned buffer when the body spans chunks
  #bodyFill = 0;

  /** Settles after the previous record: rejects if it or any earlier one failed. */
  #prev: Promise<unknown> = Promise.resolve();
  /** Records whose promise may not have settled yet (opened asynchronously, or behind one). */
  #pending = 0;
  readonly #settled = (): void => {
    this.#pending--;
  };
  #failed = false;
  #fatal: ProtocolError | undefined;
  /** Framing refused the record being read (its promise rejects with this). */
  #refused: ProtocolError | undefined;
  /** A mixin provided before its flagged record was framed. */
  #mixin: Uint8Array | undefined;

  constructor(
    aead: AeadId,
    secret: Uint8Array,
    opts: OpenerOptions,
    internals: OpenerInternals = {},
  ) {
    this.#now = opts.now ?? Date.now;
    this.#hardRecords = internals.hardRecords ?? HARD_RECORDS_PER_KEY;
    this.#hardBytes = internals.hardBytes ?? HARD_BYTES_PER_KEY;
    const lenKey = deriveLenKey(secret);
    this.#mask = new HeaderMask(lenKey);
    wipe(lenKey);
    this.#keys = new KeySchedule(aead, secret, {
      backend: opts.backend ?? cryptoBackend(),
      use: "open",
    });
    this.#epoch = this.#keys.current;
    this.#epochStart = this.#now();
    this.#seq = internals.firstSeq ?? 0;
    this.#firstSeq = this.#seq;
  }

  /** Resolves once epoch 0's key is imported. */
  get ready(): Promise<unknown> {
    return this.#epoch.ready;
  }

  get buffered(): number {
    return this.#bodyLen < 0 ? this.#hdrFill : RECORD_HEADER_BYTES + this.#bodyFill;
  }

  get epoch(): number {
    return this.#epoch.n;
  }

  get recordsReceived(): number {
    return this.#seq - this.#firstSeq - (this.#bodyLen < 0 ? 0 : 1);
  }

  get awaitingMixin(): boolean {
    return this.#keys.awaitingMixin;
  }

  provideMixin(mixin: Uint8Array): void {
    checkMixin("provide re-key mixin", mixin);
    if (this.#keys.awaitingMixin) {
      this.#keys.supplyMixin(mixin);
      return;
    }
    if (this.#mixin !== undefined) {
      throw new ProtocolError(
        "BAD_STATE",
        "Cannot provide re-key mixin: the previous mixin has not been used by a re-key epoch",
      );
    }
    this.#mixin = mixin.slice();
  }

  push(chunk: Uint8Array): Promise<Uint8Array>[] {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError("Cannot open records: chunk is not a Uint8Array");
    }
    if (this.#fatal !== undefined) throw this.#fatal;
    const out: Promise<Uint8Array>[] = [];
    const len = chunk.length;
    let off = 0;
    while (off < len) {
      if (this.#bodyLen < 0) {
        if (this.#hdrFill === 0 && len - off >= RECORD_HEADER_BYTES) {
          this.#hdr[0] = chunk[off]!;
          this.#hdr[1] = chunk[off + 1]!;
          this.#hdr[2] = chunk[off + 2]!;
          off += RECORD_HEADER_BYTES;
        } else {
          const n = Math.min(RECORD_HEADER_BYTES - this.#hdrFill, len - off);
          this.#hdr.set(chunk.subarray(off, off + n), this.#hdrFill);
          this.#hdrFill += n;
          off += n;
          if (this.#hdrFill < RECORD_HEADER_BYTES) break;
          this.#hdrFill = 0;
        }
        this.#beginRecord(this.#unmask()); // may throw TOO_LARGE / LIMIT before any allocation
      }
      const need = this.#bodyLen - this.#bodyFill;
      if (this.#body === undefined) {
        if (len - off >= need) {
          // Whole body in this chunk: a view, no copy (the AEAD reads it before push returns).
          out.push(this.#finishRecord(chunk.subarray(off, off + need), false));
          off += need;
          continue;
        }
        if (off === len) break; // header only so far; the body may come whole next time
        this.#body = new Uint8Array(this.#bodyLen);
      }
      const n = Math.min(need, len - off);
      this.#body.set(chunk.subarray(off, off + n), this.#bodyFill);
      this.#bodyFill += n;
      off += n;
      if (this.#bodyFill === this.#bodyLen) {
        const body = this.#body;
        this.#body = undefined;
        out.push(this.#finishRecord(body, true));
      }
    }
    return out;
  }

  pushWhole(bytes: Uint8Array): { records: Promise<Uint8Array>[]; used: number } {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError("Cannot open records: bytes is not a Uint8Array");
    }
    if (this.#fatal !== undefined) throw this.#fatal;
    if (this.#bodyLen >= 0 || this.#hdrFill > 0) {
      throw new TypeError("Cannot open whole records: push() left an incomplete record");
    }
    const records: Promise<Uint8Array>[] = [];
    const len = bytes.length;
    let off = 0;
    while (len - off >= RECORD_HEADER_BYTES) {
      const h = ((bytes[off]! << 16) | (bytes[off + 1]! << 8) | bytes[off + 2]!) ^
        this.#mask.mask(this.#seq);
      const ctLen = h & HEADER_LENGTH_MASK;
      // An oversize length is refused now (by #beginRecord), not once its body is in.
      if (ctLen <= MAX_RECORD_CIPHERTEXT && len - off - RECORD_HEADER_BYTES < ctLen) break;
      this.#hdr[0] = bytes[off]!;
      this.#hdr[1] = bytes[off + 1]!;
      this.#hdr[2] = bytes[off + 2]!;
      off += RECORD_HEADER_BYTES;
      this.#beginRecord(h);
      records.push(this.#finishRecord(bytes.subarray(off, off + ctLen), false));
      off += ctLen;
    }
    return { records, used: off };
  }

  openWhole(bytes: Uint8Array, sink: (payload: Uint8Array) => void): number {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError("Cannot open records: bytes is not a Uint8Array");
    }
    if (typeof sink !== "function") {
      throw new TypeError("Cannot open records: sink is not a function");
    }
    if (this.#fatal !== undefined) throw this.#fatal;
    if (this.#bodyLen >= 0 || this.#hdrFill > 0) {
      throw new TypeError("Cannot open whole records: push() left an incomplete record");
    }
    const len = bytes.length;
    let off = 0;
    while (len - off >= RECORD_HEADER_BYTES) {
      // Anything unsettled, failed or waiting goes through pushWhole's promises.
      if (this.#pending !== 0 || this.#failed || this.#epoch.key?.sync !== true) break;
      const h = ((bytes[off]! << 16) | (bytes[off + 1]! << 8) | bytes[off + 2]!) ^
        this.#mask.mask(this.#seq);
      const ctLen = h & HEADER_LENGTH_MASK;
      if (ctLen <= MAX_RECORD_CIPHERTEXT && len - off - RECORD_HEADER_BYTES < ctLen) break;
      if ((h & HEADER_REKEY_BIT) !== 0) {
        // A re-key epoch opens at once only with its mixin known and the epoch bit flipped.
        const flip = ((h & HEADER_EPOCH_BIT) !== 0) !== ((this.#epoch.n & 1) === 1);
        if (!flip || this.#mixin === undefined) break;
      }
      this.#hdr[0] = bytes[off]!;
      this.#hdr[1] = bytes[off + 1]!;
      this.#hdr[2] = bytes[off + 2]!;
      off += RECORD_HEADER_BYTES;
      this.#beginRecord(h); // may throw TOO_LARGE / LIMIT before anything is read
      const seq = this.#seq - 1;
      const epoch = this.#epoch;
      const key = epoch.key;
      this.#bodyLen = -1;
      const ct = bytes.subarray(off, off + ctLen);
      off += ctLen;
      let payload: Uint8Array;
      try {
        // A backend imports every key alike, so a ratchet's new key is synchronous too.
        if (key === undefined || !key.sync) {
          throw new TypeError("Cannot open record synchronously: the key is not ready");
        }
        if (ctLen < MIN_RECORD_CIPHERTEXT) throw decryptFailed();
        const nonce = recordNonce(epoch.iv, seq, nonceScratch);
        payload = stripPadding(openRecordBodySync(key, nonce, this.#hdr, ct, false));
      } catch (e) {
        this.#failed = true;
        throw e;
      }
      sink(payload);
    }
    return off;
  }

  /** Fails the record being framed (and so every later one) without killing framing. */
  #refuse(e: ProtocolError): void {
    if (!this.#failed) this.#refused = e;
    this.#failed = true;
  }

  #die(e: ProtocolError): never {
    this.#fatal = e;
    this.#failed = true;
    throw e;
  }

  /** The header in `#hdr`, unmasked with the next sequence number. */
  #unmask(): number {
    const a = this.#hdr;
    return ((a[0]! << 16) | (a[1]! << 8) | a[2]!) ^ this.#mask.mask(this.#seq);
  }

  /** Checks the unmasked header `h` of the next record and follows its epoch bit. */
  #beginRecord(h: number): void {
    const seq = this.#seq;
    if (seq > MAX_SEQ) {
      this.#die(new ProtocolError("LIMIT", `Cannot open record: sequence number ${seq} exhausted`));
    }
    const ctLen = h & HEADER_LENGTH_MASK;
    if (ctLen > MAX_RECORD_CIPHERTEXT) {
      this.#die(
        new ProtocolError(
          "TOO_LARGE",
          `Cannot open record: ciphertext length ${ctLen} exceeds maximum ${MAX_RECORD_CIPHERTEXT}`,
        ),
      );
    }
    const now = this.#now();
    const flip = ((h & HEADER_EPOCH_BIT) !== 0) !== ((this.#epoch.n & 1) === 1);
    const rekey = (h & HEADER_REKEY_BIT) !== 0;
    if (rekey && !flip) {
      // Honest senders set the re-key bit only with a new epoch; the header is
      // AAD, so this record cannot authenticate: fail it like any forgery.
      this.#refuse(
        new ProtocolError("DECRYPT_FAILED", "Cannot open record: authentication failed"),
      );
    } else if (rekey && this.#keys.awaitingMixin) {
      // Records wait in order behind the first re-key epoch, so a rejection
      // here might never be seen: the connection dies now instead.
      this.#die(
        new ProtocolError(
          "BAD_STATE",
          `Cannot open record ${seq}: a second re-key epoch started before the mixin of the first`,
        ),
      );
    } else if (flip) {
      if (!rekey) {
        // The peer ratcheted: exactly one step forward.
        this.#epoch = this.#keys.advance();
      } else if (this.#mixin !== undefined) {
        // DH re-key whose mixin arrived first.
        this.#epoch = this.#keys.rekey(this.#mixin);
        wipe(this.#mixin);
        this.#mixin = undefined;
      } else {
        // DH re-key whose mixin comes later: this epoch's records wait for it.
        this.#epoch = this.#keys.rekeyDeferred();
      }
      this.#epochRecords = 0;
      this.#epochBytes = 0;
      this.#epochStart = now;
    }
    this.#epochRecords++;
    this.#epochBytes += Math.max(0, ctLen - AEAD_TAG_BYTES);
    if (this.#epochRecords > this.#hardRecords || this.#epochBytes > this.#hardBytes) {
      this.#die(new ProtocolError("LIMIT", "Cannot open record: peer exceeded the per-key limit"));
    }
    if (now - this.#epochStart > OPENER_MAX_KEY_AGE_MS) {
      this.#die(new ProtocolError("LIMIT", "Cannot open record: peer key older than 24 hours"));
    }
    this.#seq = seq + 1;
    this.#bodyLen = ctLen;
    this.#bodyFill = 0;
  }

  /**
   * Starts opening a complete record; returns its promise, chained behind
   * earlier records. `ct` (a view of a pushed chunk unless `owned`) and the
   * header are read before this returns, or copied when the record must wait
   * for its key: the caller may reuse the chunk once push() returns.
   */
  #finishRecord(ct: Uint8Array, owned: boolean): Promise<Uint8Array> {
    const seq = this.#seq - 1;
    const epoch = this.#epoch;
    this.#bodyLen = -1;
    this.#bodyFill = 0;

    const key = epoch.key;
    if (this.#pending === 0 && !this.#failed && key !== undefined && key.sync) {
      // Every earlier record has settled and this one opens now: one settled
      // promise, no chain to wait behind.
      let p: Promise<Uint8Array>;
      try {
        if (ct.length < MIN_RECORD_CIPHERTEXT) throw decryptFailed();
        const nonce = recordNonce(epoch.iv, seq, nonceScratch);
        p = Promise.resolve(stripPadding(openRecordBodySync(key, nonce, this.#hdr, ct, owned)));
      } catch (e) {
        this.#failed = true;
        p = Promise.reject(e);
        p.catch(noop);
      }
      this.#prev = p;
      return p;
    }

    let d: Promise<Uint8Array>;
    const refused = this.#refused;
    if (refused !== undefined) {
      this.#refused = undefined;
      d = Promise.reject(refused);
    } else if (this.#failed || ct.length < MIN_RECORD_CIPHERTEXT) {
      d = Promise.reject(
        new ProtocolError("DECRYPT_FAILED", "Cannot open record: authentication failed"),
      );
    } else {
      if (key !== undefined) {
        d = openRecordBody(key, recordNonce(epoch.iv, seq, nonceScratch), this.#hdr, ct, owned);
      } else {
        // The record waits for its key: keep our own header and ciphertext.
        const aad = this.#hdr.slice();
        const body = owned ? ct : ct.slice();
        if (epoch.derived) {
          // The key import of a fresh epoch is still running: keep our own nonce
          // (the IV is wiped if the epoch is left before the import finishes).
          const nonce = recordNonce(epoch.iv, seq, new Uint8Array(NONCE_BYTES));
          d = epoch.ready.then((k: CipherKey) => openRecordBody(k, nonce, aad, body, true));
        } else {
          // A re-key epoch waiting for its mixin: the IV exists once `ready`
          // settles, and the epoch is wiped only after this callback has run.
          d = epoch.ready.then((k: CipherKey) =>
            openRecordBody(k, recordNonce(epoch.iv, seq, nonceScratch), aad, body, true)
          );
        }
      }
      d = d.then(stripPadding);
    }
    d.catch(() => {
      this.#failed = true;
    });
    const p = this.#prev.then(() => d, () => {
      throw new ProtocolError(
        "DECRYPT_FAILED",
        `Cannot open record ${seq}: an earlier record failed`,
      );
    });
    // Callers may drop the promises after a failure; never an unhandled rejection.
    this.#pending++;
    p.then(this.#settled, this.#settled);
    this.#prev = p;
    return p;
  }
}

/** Inner plaintext = pad_len u16 ‖ payload ‖ padding; returns a view of the payload. */
function stripPadding(inner: Uint8Array): Uint8Array {
  const pad = (inner[0]! << 8) | inner[1]!;
  if (PAD_PREFIX_BYTES + pad > inner.length) {
    throw new ProtocolError(
      "MALFORMED",
      `Cannot open record: padding length ${pad} exceeds inner length ${inner.length}`,
    );
  }
  return inner.subarray(PAD_PREFIX_BYTES, inner.length - pad);
}
