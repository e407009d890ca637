/**
 * NitroSocks record layer (docs/PROTOCOL.md part 3 (record layer)): AEAD records with an
 * implicit 64-bit sequence number, a masked 3-byte header, padding, an
 * in-band hash-ratchet key update and a DH re-key step whose mixin comes
 * from the session layer (docs/PROTOCOL.md part 4 (re-key and release)). Pure: no I/O,
 * no timers.
 *
 * ```
 * record = masked_header(3) ‖ AEAD(key_e, iv_e XOR seq, inner, aad = masked_header)
 * header = epoch_bit << 23 | rekey_bit << 22 | ciphertext_length
 * inner  = pad_len u16 ‖ payload ‖ pad_len zero bytes
 * ```
 *
 * @example
 * ```ts
 * import { createRecordOpener, createRecordSealer } from "./mod.ts";
 * const secret = new Uint8Array(32).fill(7); // from the handshake, one per direction
 * const sealer = await createRecordSealer("aes-256-gcm", secret);
 * const opener = await createRecordOpener("aes-256-gcm", secret);
 * const wire = await sealer.seal(new TextEncoder().encode("hello"));
 * const [payload] = opener.push(wire);
 * console.log(new TextDecoder().decode(await payload)); // "hello"
 * ```
 *
 * The AEADs run in a crypto backend: the system's OpenSSL 3 (synchronous;
 * `createOpenSslBackend` over the functions `lib/openssl/mod.ts` loads with
 * FFI) or Web Crypto with `@noble/ciphers` ChaCha20-Poly1305
 * (`webCryptoBackend`, the default). `setCryptoBackend` chooses it for the
 * process; both produce the same bytes, so peers on different backends
 * interoperate.
 *
 * @module
 */
import { Opener, type OpenerOptions } from "./_opener.ts";
import { Sealer, type SealerOptions, type SealPartsOptions } from "./_sealer.ts";
import { type AeadId, isAeadId } from "./_types.ts";
import { TRAFFIC_SECRET_BYTES } from "./_limits.ts";

export type { AeadId } from "./_types.ts";
export {
  type AsyncCipherKey,
  type CipherKey,
  type CryptoBackend,
  cryptoBackend,
  type CryptoBackendName,
  describeCryptoBackend,
  type KeyUse,
  setCryptoBackend,
  type SyncCipherKey,
} from "./_backend.ts";
export { createOpenSslBackend, type EvpAeadApi, type Libcrypto } from "./_openssl.ts";
export { WEBCRYPTO_BACKEND as webCryptoBackend } from "./_webcrypto.ts";
export {
  FIRST_FLIGHT,
  FIRST_FLIGHT_RECORDS,
  type PaddingPolicy,
  tunnelPadding,
} from "./_padding.ts";
export type { OpenerOptions } from "./_opener.ts";
export type { RatchetPolicy, SealerOptions, SealPartsOptions } from "./_sealer.ts";
export {
  AEAD_TAG_BYTES,
  DEFAULT_RATCHET_BYTES,
  DEFAULT_RATCHET_MS,
  DEFAULT_RATCHET_RECORDS,
  HARD_BYTES_PER_KEY,
  HARD_MS_PER_KEY,
  HARD_RECORDS_PER_KEY,
  HEADER_EPOCH_BIT,
  HEADER_LENGTH_MASK,
  HEADER_REKEY_BIT,
  MAX_RECORD_BYTES,
  MAX_RECORD_CIPHERTEXT,
  MAX_RECORD_PAYLOAD,
  MAX_SEQ,
  MIN_RECORD_CIPHERTEXT,
  OPENER_MAX_KEY_AGE_MS,
  PAD_PREFIX_BYTES,
  RECORD_HEADER_BYTES,
  REKEY_MIXIN_BYTES,
} from "./_limits.ts";

/**
 * Seals one direction's records.
 *
 * @example
 * ```ts
 * import { createRecordSealer } from "./mod.ts";
 * const sealer = await createRecordSealer("chacha20-poly1305", new Uint8Array(32));
 * const records = await Promise.all([1, 2, 3].map((n) => sealer.seal(new Uint8Array(n))));
 * console.log(records.map((r) => r.length)); // [22, 23, 24]: header 3 + pad_len 2 + payload + tag 16
 * ```
 */
export interface RecordSealer {
  /**
   * Seals one record. The sequence number (and key epoch) is assigned
   * synchronously at call time, so several calls may be in flight; the
   * caller writes the results in call order. `payload` is copied before
   * `seal` returns, so the caller may reuse it at once. Throws `RangeError`
   * if `payload.length > MAX_RECORD_PAYLOAD`, and `ProtocolError` `LIMIT`
   * once the sequence number is exhausted (never reuses a nonce).
   */
  seal(payload: Uint8Array): Promise<Uint8Array>;
  /**
   * Seals one record like `seal` (same sequence numbers, keys and wire
   * bytes) and resolves to it in pieces to be written back to back: the
   * masked 3-byte header, then ciphertext ‖ tag. The pieces are new arrays
   * the caller owns, so a writer joins them straight into its own batch
   * buffer, where `seal` would have copied the ciphertext behind the header
   * first.
   *
   * With `options.useHeadroom`, the `PAD_PREFIX_BYTES` (2) bytes in front
   * of `payload` in its buffer are the caller's scratch: the sealer writes
   * `pad_len` there and hands prefix and payload to the AEAD as they lie,
   * instead of copying the payload into a new inner plaintext (it still
   * copies when the record gets padding or its key is not imported yet).
   * The payload itself is never written, and neither the payload nor the
   * headroom is read after `sealParts` returns, so the caller may reuse
   * both at once. Throws `RangeError` when `payload.byteOffset` is below 2,
   * and like `seal` otherwise.
   *
   * @example
   * ```ts
   * import { createRecordOpener, createRecordSealer, PAD_PREFIX_BYTES } from "./mod.ts";
   * const s = new Uint8Array(32);
   * const sealer = await createRecordSealer("aes-256-gcm", s);
   * const opener = await createRecordOpener("aes-256-gcm", s);
   * const buf = new Uint8Array(PAD_PREFIX_BYTES + 3);
   * buf.set([1, 2, 3], PAD_PREFIX_BYTES);
   * const [header, body] = await sealer.sealParts(buf.subarray(PAD_PREFIX_BYTES), {
   *   useHeadroom: true,
   * });
   * const wire = new Uint8Array(header!.length + body!.length);
   * wire.set(header!);
   * wire.set(body!, header!.length);
   * console.log(await opener.push(wire)[0]); // Uint8Array [1, 2, 3]
   * ```
   */
  sealParts(payload: Uint8Array, options?: SealPartsOptions): Promise<Uint8Array[]>;
  /**
   * Whether this sealer's backend seals synchronously (OpenSSL, or
   * ChaCha20-Poly1305 on Web Crypto): then `seal` and `sealParts` return
   * promises that are already settled, and `sealInto` may be used.
   */
  readonly synchronous: boolean;
  /**
   * Seals one record synchronously straight into `out` at `offset` (masked
   * header ‖ ciphertext ‖ tag; same sequence numbers, keys and bytes as
   * `seal`) and returns its length. If `payload` already lies in `out` at
   * `offset + 5` (behind the header and `pad_len`), it is encrypted where
   * it lies; any other payload is copied there first, except that with
   * `options.useHeadroom` (as for `sealParts`) an unpadded payload outside
   * `out` is encrypted from where it lies, `pad_len` written into its
   * headroom, so the AEAD's output is the only write into `out`. Throws
   * `TypeError` unless `synchronous`, `RangeError` if `out` lacks room
   * (before a sequence number is taken; `maxSealedLength` is always
   * enough), and like `seal` otherwise.
   *
   * @example
   * ```ts
   * import { createRecordOpener, createRecordSealer } from "./mod.ts";
   * const s = new Uint8Array(32);
   * const sealer = await createRecordSealer("chacha20-poly1305", s);
   * const opener = await createRecordOpener("chacha20-poly1305", s);
   * const out = new Uint8Array(64);
   * const n = sealer.sealInto(new Uint8Array([1, 2, 3]), out, 8);
   * console.log(n, await opener.push(out.subarray(8, 8 + n))[0]); // 24 Uint8Array [1, 2, 3]
   * ```
   */
  sealInto(
    payload: Uint8Array,
    out: Uint8Array,
    offset?: number,
    options?: SealPartsOptions,
  ): number;
  /**
   * The most bytes a record of `payloadLength` payload bytes can take on
   * the wire with this sealer's padding (exact without padding): the room
   * `sealInto` needs.
   *
   * @example
   * ```ts
   * import { createRecordSealer } from "./mod.ts";
   * const sealer = await createRecordSealer("aes-256-gcm", new Uint8Array(32));
   * console.log(sealer.maxSealedLength(100)); // 121: header 3 + pad_len 2 + 100 + tag 16
   * ```
   */
  maxSealedLength(payloadLength: number): number;
  /** Records sealed so far (the next sequence number). */
  readonly recordsSealed: number;
  /** Key epoch of the last sealed record (0 before the first ratchet). */
  readonly epoch: number;
  /** Forces a key ratchet before the next record (tests, and the key-update request of a later issue). */
  ratchetNow(): void;
  /**
   * Starts a DH re-key epoch with the next record sealed: its secret is
   * `HKDF-Expand-Label(HKDF-Extract(salt = chain_e, ikm = mixin), "traffic
   * rekey", "", 32)` and its first record carries the re-key header bit
   * (docs/PROTOCOL.md part 4 (re-key and release) section 3). `mixin` (32 bytes) is
   * copied. Records already passed to `seal` keep their keys, so call this
   * only after `seal` was called for the record that carries the rekey
   * REPLY (the peer needs that record to learn the mixin). Throws
   * `ProtocolError` `BAD_STATE` while an earlier `rekey` has not yet been
   * applied to a record.
   *
   * @example
   * ```ts
   * import { createRecordOpener, createRecordSealer } from "./mod.ts";
   * const s = new Uint8Array(32), mixin = new Uint8Array(32).fill(9);
   * const sealer = await createRecordSealer("aes-256-gcm", s);
   * const opener = await createRecordOpener("aes-256-gcm", s);
   * sealer.rekey(mixin);
   * const [p] = opener.push(await sealer.seal(new Uint8Array([1]))); // waits for the mixin
   * opener.provideMixin(mixin);
   * console.log(await p); // Uint8Array [1]
   * ```
   */
  rekey(mixin: Uint8Array): void;
  /** Whether a `rekey` waits for the next `seal`. */
  readonly rekeyPending: boolean;
}

/**
 * Opens the peer's records from a byte stream cut anywhere.
 *
 * @example
 * ```ts
 * import { createRecordOpener, createRecordSealer } from "./mod.ts";
 * const s = new Uint8Array(32);
 * const sealer = await createRecordSealer("aes-128-gcm", s);
 * const opener = await createRecordOpener("aes-128-gcm", s);
 * const wire = await sealer.seal(new Uint8Array([1, 2, 3]));
 * console.log(opener.push(wire.subarray(0, 4)).length); // 0: incomplete
 * console.log(opener.buffered); // 4
 * const [p] = opener.push(wire.subarray(4));
 * console.log(await p); // Uint8Array [1, 2, 3]
 * ```
 */
export interface RecordOpener {
  /**
   * Push received bytes; returns one promise per complete record, in order.
   * Framing is synchronous: each masked header is unmasked and its length
   * and epoch read; a length above `MAX_RECORD_CIPHERTEXT` throws
   * `ProtocolError` `TOO_LARGE` before anything is allocated (a peer over
   * the per-key hard limits throws `LIMIT`, a second re-key epoch while one
   * waits for its mixin `BAD_STATE`); after such a throw every later `push`
   * throws it again. Each promise resolves, in order, to the record's
   * payload (padding removed) or rejects with `ProtocolError`
   * `DECRYPT_FAILED` (`MALFORMED` for an authentic record with a bad
   * `pad_len`); after any failure every later record fails too. Records of
   * a re-key epoch stay pending until `provideMixin` (and the records after
   * them, since delivery is in order). Rejections are pre-handled, so
   * dropping the promises after a failure is safe.
   *
   * With a synchronous backend each record whose predecessors have settled
   * is opened before `push` returns and its promise is already settled.
   *
   * Ownership: `push` reads `chunk` before it returns and keeps no view of
   * it (records that arrive whole are handed to the AEAD, which copies or
   * reads them at once; a record that must wait for its key is copied), so
   * the caller may reuse the chunk as soon as `push` returns. Returned
   * payloads are views of buffers the opener or the AEAD allocated, never
   * of a pushed chunk.
   */
  push(chunk: Uint8Array): Promise<Uint8Array>[];
  /**
   * Like `push`, for a reader that keeps its own input buffer: frames and
   * opens only the records that lie whole at the start of `bytes`, and
   * returns their promises with the number of bytes they took (`used`). The
   * incomplete record after them, if any, is left where it is: the caller
   * presents those bytes again, followed by more, in a later call (so it
   * needs room for one `MAX_RECORD_BYTES` record). No record is copied
   * before the AEAD reads it, and, as with `push`, nothing of `bytes` is
   * kept once this returns. A length above `MAX_RECORD_CIPHERTEXT` throws
   * `TOO_LARGE` as soon as its header is in `bytes`; other errors and the
   * promises behave as with `push`. Throws `TypeError` while `push` has
   * left an incomplete record buffered (use one of the two per opener).
   *
   * @example
   * ```ts
   * import { createRecordOpener, createRecordSealer } from "./mod.ts";
   * const s = new Uint8Array(32);
   * const sealer = await createRecordSealer("aes-256-gcm", s);
   * const opener = await createRecordOpener("aes-256-gcm", s);
   * const wire = await sealer.seal(new Uint8Array([1, 2, 3]));
   * console.log(opener.pushWhole(wire.subarray(0, 10)).used); // 0: incomplete, nothing taken
   * const { records, used } = opener.pushWhole(wire);
   * console.log(used, await records[0]); // 24 Uint8Array [1, 2, 3]
   * ```
   */
  pushWhole(bytes: Uint8Array): { records: Promise<Uint8Array>[]; used: number };
  /**
   * The synchronous form of `pushWhole`, for a backend that opens
   * synchronously (OpenSSL, or ChaCha20-Poly1305 on Web Crypto): opens the
   * records that lie whole at the start of `bytes` one by one, hands each
   * payload (padding removed; a new array, never a view of `bytes`) to
   * `sink` before framing the next, and returns the bytes they took. No
   * promise is made. It stops early, leaving the rest for `pushWhole`,
   * before any record it cannot open at once: while records handed out by
   * `push`/`pushWhole` are unsettled, after a failure, at a DH re-key epoch
   * whose mixin is not known yet, or when the key opens asynchronously.
   * Throws what a record's promise would reject with (`DECRYPT_FAILED`,
   * `MALFORMED`; later records then fail too) and what framing throws, and
   * passes on whatever `sink` throws (the record is consumed).
   *
   * @example
   * ```ts
   * import { createRecordOpener, createRecordSealer } from "./mod.ts";
   * const s = new Uint8Array(32);
   * const sealer = await createRecordSealer("aes-256-gcm", s);
   * const opener = await createRecordOpener("aes-256-gcm", s);
   * const wire = await sealer.seal(new Uint8Array([1, 2, 3]));
   * const got: Uint8Array[] = [];
   * console.log(opener.openWhole(wire, (p) => got.push(p)), got); // 24 [ Uint8Array [1, 2, 3] ]
   * ```
   */
  openWhole(bytes: Uint8Array, sink: (payload: Uint8Array) => void): number;
  /** Bytes of an incomplete record held. */
  readonly buffered: number;
  /** Key epoch of the last framed record (0 before the peer's first ratchet). */
  readonly epoch: number;
  /** Complete records framed so far (the peer's next sequence number). */
  readonly recordsReceived: number;
  /**
   * Supplies the 32-byte mixin (copied) of the peer's next DH re-key epoch.
   * It may come before or after that epoch's first record is framed: records
   * of the re-key epoch (and of hash ratchets after it) are opened once it
   * is known; earlier records never wait. A wrong mixin makes those records
   * fail with `DECRYPT_FAILED`. Throws `ProtocolError` `BAD_STATE` if a
   * mixin provided earlier has not been used by a re-key epoch yet (the
   * peer started another exchange without switching keys).
   *
   * @example
   * ```ts
   * import { createRecordOpener, createRecordSealer } from "./mod.ts";
   * const s = new Uint8Array(32), mixin = new Uint8Array(32).fill(3);
   * const sealer = await createRecordSealer("chacha20-poly1305", s);
   * const opener = await createRecordOpener("chacha20-poly1305", s);
   * opener.provideMixin(mixin); // early: used by the next re-key epoch
   * sealer.rekey(mixin);
   * const [p] = opener.push(await sealer.seal(new Uint8Array([2])));
   * console.log(await p, opener.awaitingMixin); // Uint8Array [2] false
   * ```
   */
  provideMixin(mixin: Uint8Array): void;
  /**
   * Whether a re-key epoch has been framed whose mixin is not known yet
   * (its records wait). A peer that never lets the mixin be derived leaves
   * them pending for the life of the connection.
   */
  readonly awaitingMixin: boolean;
}

function checkArgs(what: string, aead: unknown, secret: unknown): asserts aead is AeadId {
  if (!isAeadId(aead)) {
    throw new TypeError(`Cannot create record ${what}: unknown AEAD "${String(aead)}"`);
  }
  if (!(secret instanceof Uint8Array)) {
    throw new TypeError(`Cannot create record ${what}: traffic secret is not a Uint8Array`);
  }
  if (secret.length !== TRAFFIC_SECRET_BYTES) {
    throw new RangeError(
      `Cannot create record ${what}: traffic secret length ${secret.length} is not ${TRAFFIC_SECRET_BYTES}`,
    );
  }
}

/**
 * Creates the sealer for one direction from its 32-byte traffic secret
 * (copied; the caller wipes its own copy). Defaults: no padding, ratchet
 * after 1 GiB, 2^22 records or 15 minutes, clock `Date.now`, randomness
 * from `crypto.getRandomValues`, the process-wide crypto backend.
 *
 * @example
 * ```ts
 * import { createRecordSealer } from "./mod.ts";
 * const sealer = await createRecordSealer("aes-256-gcm", new Uint8Array(32), {
 *   padding: { mode: "random", max: 255 },
 *   ratchet: { bytes: 2 ** 28, ms: 10 * 60 * 1000 },
 * });
 * const rec = await sealer.seal(new Uint8Array(100));
 * console.log(rec.length >= 3 + 2 + 100 + 16); // true
 * ```
 */
export async function createRecordSealer(
  aead: AeadId,
  trafficSecret: Uint8Array,
  opts: SealerOptions = {},
): Promise<RecordSealer> {
  checkArgs("sealer", aead, trafficSecret);
  const s = new Sealer(aead, trafficSecret, opts);
  await s.ready;
  return s;
}

/**
 * Creates the opener for the peer's direction from the same traffic secret
 * the peer's sealer uses (copied), on `opts.backend` or the process-wide
 * crypto backend.
 *
 * @example
 * ```ts
 * import { createRecordOpener } from "./mod.ts";
 * const opener = await createRecordOpener("chacha20-poly1305", new Uint8Array(32));
 * console.log(opener.push(new Uint8Array(0))); // []
 * ```
 */
export async function createRecordOpener(
  aead: AeadId,
  trafficSecret: Uint8Array,
  opts: OpenerOptions = {},
): Promise<RecordOpener> {
  checkArgs("opener", aead, trafficSecret);
  const o = new Opener(aead, trafficSecret, opts);
  await o.ready;
  return o;
}
