/**
 * The sending half of the record layer: padding, ratchet decisions, header
 * masking and sealing. Sequence numbers and epochs are assigned
 * synchronously in `seal` and `sealParts`, so calls may overlap.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { type CipherKey, recordNonce, sealBody, sealInPlace } from "./_aead.ts";
import { type CryptoBackend, cryptoBackend } from "./_backend.ts";
import { checkMixin, deriveLenKey, type Epoch, KeySchedule } from "./_keys.ts";
import {
  AEAD_TAG_BYTES,
  DEFAULT_RATCHET_BYTES,
  DEFAULT_RATCHET_MS,
  DEFAULT_RATCHET_RECORDS,
  HARD_BYTES_PER_KEY,
  HARD_MS_PER_KEY,
  HARD_RECORDS_PER_KEY,
  HEADER_REKEY_BIT,
  MAX_RECORD_PAYLOAD,
  MAX_SEQ,
  NONCE_BYTES,
  PAD_PREFIX_BYTES,
  RECORD_HEADER_BYTES,
} from "./_limits.ts";
import { HeaderMask } from "./_mask.ts";
import { Padder, type PaddingPolicy } from "./_padding.ts";
import type { AeadId } from "./_types.ts";
import { randomBytes, wipe } from "../crypto/mod.ts";

/**
 * When the sender ratchets its key: before the record that would make the
 * current key exceed `bytes` inner-plaintext bytes (a record larger than
 * `bytes` gets a key of its own) or `records` records, or once the key is
 * `ms` old. Each value is clamped to the hard ceilings `HARD_*_PER_KEY`.
 */
export interface RatchetPolicy {
  /** Ratchet after this many inner-plaintext bytes. */
  bytes?: number;
  /** Ratchet after this many records. */
  records?: number;
  /** Ratchet once the key is this old (ms). */
  ms?: number;
}

/** Options of `createRecordSealer`. */
export interface SealerOptions {
  /** Padding; default none. */
  padding?: PaddingPolicy;
  /** When to ratchet the key; default `DEFAULT_RATCHET`. */
  ratchet?: RatchetPolicy;
  /** Clock for the key age (ms); default `Date.now`. */
  now?: () => number;
  /** Source of padding lengths; default the platform CSPRNG. */
  random?: (n: number) => Uint8Array;
  /** The crypto backend; default the process-wide one (`cryptoBackend()`). */
  backend?: CryptoBackend;
}

/** Internal knobs for tests: start sequence and hard ceilings. */
export interface SealerInternals {
  firstSeq?: number;
  hardRecords?: number;
  hardBytes?: number;
}

function limit(name: string, v: number | undefined, dflt: number, hard: number): number {
  if (v === undefined) return Math.min(dflt, hard);
  if (typeof v !== "number" || Number.isNaN(v) || v <= 0) {
    throw new RangeError(`Cannot use ratchet policy: ${name} ${v} is not a positive number`);
  }
  return Math.min(v, hard);
}

const nonceScratch = new Uint8Array(NONCE_BYTES);

/** Options of `sealParts`. */
export interface SealPartsOptions {
  /**
   * The `PAD_PREFIX_BYTES` bytes in front of the payload in its buffer are
   * the caller's to give: the sealer writes the record's `pad_len` there
   * and seals prefix and payload as they lie, without copying them first.
   */
  useHeadroom?: boolean;
}

/** Whether two views of one buffer share a byte. */
function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length;
}

function checkPayload(payload: Uint8Array): void {
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError("Cannot seal record: payload is not a Uint8Array");
  }
  if (payload.length > MAX_RECORD_PAYLOAD) {
    throw new RangeError(
      `Cannot seal record: payload length ${payload.length} exceeds maximum ${MAX_RECORD_PAYLOAD}`,
    );
  }
}

/** See `RecordSealer` in `mod.ts`. */
export class Sealer {
  readonly #aead: AeadId;
  readonly #keys: KeySchedule;
  readonly #mask: HeaderMask;
  readonly #padder: Padder;
  readonly #now: () => number;
  readonly #maxBytes: number;
  readonly #maxRecords: number;
  readonly #maxMs: number;
  #seq: number;
  #epoch: Epoch;
  #epochRecords = 0;
  #epochBytes = 0;
  #epochStart: number;
  #ratchetPending = false;
  /** Mixin of a requested DH re-key, applied before the next record. */
  #rekeyMixin: Uint8Array | undefined;
  #firstSeq: number;
  /** Whether every key this sealer imports seals synchronously. */
  readonly #sync: boolean;

  constructor(
    aead: AeadId,
    secret: Uint8Array,
    opts: SealerOptions,
    internals: SealerInternals = {},
  ) {
    this.#aead = aead;
    this.#now = opts.now ?? Date.now;
    this.#padder = new Padder(
      opts.padding ?? { mode: "none" },
      opts.random ?? randomBytes,
    );
    const r = opts.ratchet ?? {};
    this.#maxBytes = limit(
      "bytes",
      r.bytes,
      DEFAULT_RATCHET_BYTES,
      internals.hardBytes ?? HARD_BYTES_PER_KEY,
    );
    this.#maxRecords = limit(
      "records",
      r.records,
      DEFAULT_RATCHET_RECORDS,
      internals.hardRecords ?? HARD_RECORDS_PER_KEY,
    );
    this.#maxMs = limit("ms", r.ms, DEFAULT_RATCHET_MS, HARD_MS_PER_KEY);
    const lenKey = deriveLenKey(secret);
    this.#mask = new HeaderMask(lenKey);
    wipe(lenKey);
    this.#keys = new KeySchedule(aead, secret, {
      backend: opts.backend ?? cryptoBackend(),
      use: "seal",
    });
    this.#epoch = this.#keys.current;
    // A backend imports every key of a suite alike: synchronously here, or not at all.
    this.#sync = this.#epoch.key?.sync === true;
    this.#epochStart = this.#now();
    this.#seq = internals.firstSeq ?? 0;
    this.#firstSeq = this.#seq;
  }

  get synchronous(): boolean {
    return this.#sync;
  }

  /** Resolves once epoch 0's key is imported. */
  get ready(): Promise<unknown> {
    return this.#epoch.ready;
  }

  get recordsSealed(): number {
    return this.#seq - this.#firstSeq;
  }

  get epoch(): number {
    return this.#epoch.n;
  }

  ratchetNow(): void {
    this.#ratchetPending = true;
  }

  get rekeyPending(): boolean {
    return this.#rekeyMixin !== undefined;
  }

  rekey(mixin: Uint8Array): void {
    checkMixin("re-key sealer", mixin);
    if (this.#rekeyMixin !== undefined) {
      throw new ProtocolError(
        "BAD_STATE",
        "Cannot re-key sealer: the previous re-key has not started an epoch yet",
      );
    }
    this.#rekeyMixin = mixin.slice();
  }

  seal(payload: Uint8Array): Promise<Uint8Array> {
    checkPayload(payload);
    const n = payload.length;
    const seq = this.#seq;
    const pad = this.#padder.padFor(n);
    const h = this.#step(PAD_PREFIX_BYTES + n + pad);

    // One buffer: masked header ‖ pad_len ‖ payload ‖ zero padding ‖ tag space.
    // ChaCha works on aligned words: one spare leading byte puts the body at offset 4.
    const ctLen = PAD_PREFIX_BYTES + n + pad + AEAD_TAG_BYTES;
    const lead = this.#aead === "chacha20-poly1305" ? 1 : 0;
    const rec = new Uint8Array(lead + RECORD_HEADER_BYTES + ctLen).subarray(lead);
    rec[0] = h >>> 16;
    rec[1] = h >>> 8;
    rec[2] = h;
    rec[3] = pad >>> 8;
    rec[4] = pad;
    rec.set(payload, RECORD_HEADER_BYTES + PAD_PREFIX_BYTES);

    const epoch = this.#epoch;
    const key = epoch.key;
    if (key !== undefined) {
      return sealInPlace(key, recordNonce(epoch.iv, seq, nonceScratch), rec, RECORD_HEADER_BYTES);
    }
    // The key import of a fresh epoch is still running: keep our own nonce.
    const nonce = recordNonce(epoch.iv, seq, new Uint8Array(NONCE_BYTES));
    return epoch.ready.then((k: CipherKey) => sealInPlace(k, nonce, rec, RECORD_HEADER_BYTES));
  }

  sealParts(payload: Uint8Array, options: SealPartsOptions = {}): Promise<Uint8Array[]> {
    checkPayload(payload);
    const useHeadroom = options.useHeadroom === true;
    if (useHeadroom && payload.byteOffset < PAD_PREFIX_BYTES) {
      throw new RangeError(
        `Cannot seal record: payload offset ${payload.byteOffset} leaves no headroom of ${PAD_PREFIX_BYTES} bytes`,
      );
    }
    const n = payload.length;
    const seq = this.#seq;
    const pad = this.#padder.padFor(n);
    const h = this.#step(PAD_PREFIX_BYTES + n + pad);
    const header = new Uint8Array(RECORD_HEADER_BYTES);
    header[0] = h >>> 16;
    header[1] = h >>> 8;
    header[2] = h;

    const epoch = this.#epoch;
    const key = epoch.key;
    let inner: Uint8Array;
    if (useHeadroom && pad === 0 && key !== undefined) {
      // pad_len goes into the headroom; the AEAD reads (AES: copies) the
      // inner plaintext before sealBody returns, and the payload is never written.
      inner = new Uint8Array(
        payload.buffer,
        payload.byteOffset - PAD_PREFIX_BYTES,
        PAD_PREFIX_BYTES + n,
      );
      inner[0] = 0;
      inner[1] = 0;
    } else {
      inner = new Uint8Array(PAD_PREFIX_BYTES + n + pad);
      inner[0] = pad >>> 8;
      inner[1] = pad;
      inner.set(payload, PAD_PREFIX_BYTES);
    }
    if (key !== undefined && key.sync) {
      try {
        const body = new Uint8Array(inner.length + AEAD_TAG_BYTES);
        key.sealTo(recordNonce(epoch.iv, seq, nonceScratch), header, inner, body);
        return Promise.resolve([header, body]);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (key !== undefined) {
      return sealBody(key, recordNonce(epoch.iv, seq, nonceScratch), header, inner).then(
        (body) => [header, body],
      );
    }
    // The key import of a fresh epoch is still running: keep our own nonce (`inner` is a copy here).
    const nonce = recordNonce(epoch.iv, seq, new Uint8Array(NONCE_BYTES));
    return epoch.ready.then((k: CipherKey) => sealBody(k, nonce, header, inner)).then(
      (body) => [header, body],
    );
  }

  maxSealedLength(payloadLength: number): number {
    return RECORD_HEADER_BYTES + PAD_PREFIX_BYTES + payloadLength +
      this.#padder.maxFor(payloadLength) + AEAD_TAG_BYTES;
  }

  sealInto(
    payload: Uint8Array,
    out: Uint8Array,
    offset = 0,
    options: SealPartsOptions = {},
  ): number {
    checkPayload(payload);
    if (!this.#sync) {
      throw new TypeError(
        "Cannot seal record synchronously: the crypto backend seals asynchronously",
      );
    }
    if (!(out instanceof Uint8Array)) {
      throw new TypeError("Cannot seal record: output is not a Uint8Array");
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > out.length) {
      throw new RangeError(`Cannot seal record: offset ${offset} is outside the output`);
    }
    const useHeadroom = options.useHeadroom === true;
    if (useHeadroom && payload.byteOffset < PAD_PREFIX_BYTES) {
      throw new RangeError(
        `Cannot seal record: payload offset ${payload.byteOffset} leaves no headroom of ${PAD_PREFIX_BYTES} bytes`,
      );
    }
    const n = payload.length;
    const pad = this.#padder.padFor(n);
    const innerLen = PAD_PREFIX_BYTES + n + pad;
    const len = RECORD_HEADER_BYTES + innerLen + AEAD_TAG_BYTES;
    if (out.length - offset < len) {
      throw new RangeError(
        `Cannot seal record: ${
          out.length - offset
        } bytes of output after offset ${offset}, record needs ${len}`,
      );
    }
    const rec = out.subarray(offset, offset + len);
    const at = RECORD_HEADER_BYTES + PAD_PREFIX_BYTES;
    const inPlace = payload.buffer === rec.buffer && payload.byteOffset === rec.byteOffset + at;
    // With headroom and no padding, an unpadded payload outside `out` is
    // encrypted from where it lies (pad_len written into its headroom):
    // the AEAD's output is the only write into `out`, no copy first.
    let inner: Uint8Array | undefined;
    if (useHeadroom && pad === 0 && !inPlace) {
      inner = new Uint8Array(payload.buffer, payload.byteOffset - PAD_PREFIX_BYTES, innerLen);
      if (inner.buffer === rec.buffer && overlaps(inner, rec)) inner = undefined;
    }
    const seq = this.#seq;
    const h = this.#step(innerLen);
    // A payload already where its plaintext goes is sealed where it lies;
    // any other is copied first, so header bytes never overwrite it unread.
    if (inner === undefined && !inPlace) rec.set(payload, at);
    rec[0] = h >>> 16;
    rec[1] = h >>> 8;
    rec[2] = h;
    if (inner === undefined) {
      rec[3] = pad >>> 8;
      rec[4] = pad;
      if (pad > 0) rec.fill(0, at + n, at + n + pad);
      inner = rec.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + innerLen);
    } else {
      inner[0] = 0;
      inner[1] = 0;
    }
    const key = this.#epoch.key;
    if (key === undefined || !key.sync) {
      throw new TypeError("Cannot seal record synchronously: the key is not ready");
    }
    key.sealTo(
      recordNonce(this.#epoch.iv, seq, nonceScratch),
      rec.subarray(0, RECORD_HEADER_BYTES),
      inner,
      rec.subarray(RECORD_HEADER_BYTES),
    );
    return len;
  }

  /**
   * Takes the next sequence number for a record of `innerLen` inner-plaintext
   * bytes, applies a pending DH re-key or a due ratchet (at most one step per
   * record), and returns its masked header as a 24-bit number.
   */
  #step(innerLen: number): number {
    const seq = this.#seq;
    if (seq > MAX_SEQ) {
      throw new ProtocolError("LIMIT", `Cannot seal record: sequence number ${seq} exhausted`);
    }
    const now = this.#now();
    let rekeyBit = 0;
    const mixin = this.#rekeyMixin;
    if (mixin !== undefined) {
      this.#epoch = this.#keys.rekey(mixin);
      wipe(mixin);
      this.#rekeyMixin = undefined;
      rekeyBit = HEADER_REKEY_BIT;
      this.#epochRecords = 0;
      this.#epochBytes = 0;
      this.#epochStart = now;
      this.#ratchetPending = false;
    } else if (
      this.#ratchetPending ||
      this.#epochRecords >= this.#maxRecords ||
      (this.#epochRecords > 0 && this.#epochBytes + innerLen > this.#maxBytes) ||
      now - this.#epochStart >= this.#maxMs
    ) {
      this.#epoch = this.#keys.advance();
      this.#epochRecords = 0;
      this.#epochBytes = 0;
      this.#epochStart = now;
      this.#ratchetPending = false;
    }
    this.#seq = seq + 1;
    this.#epochRecords++;
    this.#epochBytes += innerLen;
    const ctLen = innerLen + AEAD_TAG_BYTES;
    return (((this.#epoch.n & 1) << 23) | rekeyBit | ctLen) ^ this.#mask.mask(seq);
  }
}
