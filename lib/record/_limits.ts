/**
 * Wire sizes and key-use limits of the record layer (spec constants), kept
 * apart from implementation choices. Reasons are in
 * `docs/PROTOCOL.md part 3 (record layer)` section "Limits".
 *
 * @module
 */

/** Bytes of the masked record header: epoch bit ‖ re-key bit ‖ 22-bit ciphertext length. */
export const RECORD_HEADER_BYTES = 3;
/** Header bit 23: the sender's key epoch mod 2. */
export const HEADER_EPOCH_BIT = 1 << 23;
/** Header bit 22: this record starts a DH re-key epoch. */
export const HEADER_REKEY_BIT = 1 << 22;
/** Header bits 21..0: the ciphertext length field (up to 2^22 - 1 on the wire). */
export const HEADER_LENGTH_MASK = (1 << 22) - 1;
/** Bytes of a DH re-key mixin (`sealer.rekey`, `opener.provideMixin`). */
export const REKEY_MIXIN_BYTES = 32;
/** Bytes of the AEAD tag (all suites). */
export const AEAD_TAG_BYTES = 16;
/** Bytes of the `pad_len` prefix of the inner plaintext. */
export const PAD_PREFIX_BYTES = 2;
/** Bytes of the AEAD nonce (all suites). */
export const NONCE_BYTES = 12;
/** Bytes of a traffic secret. */
export const TRAFFIC_SECRET_BYTES = 32;

/** Most payload bytes one record carries; payload + padding never exceeds it either. */
export const MAX_RECORD_PAYLOAD = 262144;
/** Fewest ciphertext bytes a record can have: `pad_len` and the tag. */
export const MIN_RECORD_CIPHERTEXT: number = PAD_PREFIX_BYTES + AEAD_TAG_BYTES;
/** Most ciphertext bytes a record can have (262162). */
export const MAX_RECORD_CIPHERTEXT: number = PAD_PREFIX_BYTES + MAX_RECORD_PAYLOAD + AEAD_TAG_BYTES;
/** Most bytes a whole record takes on the wire (262165). */
export const MAX_RECORD_BYTES: number = RECORD_HEADER_BYTES + MAX_RECORD_CIPHERTEXT;

/** Hard ceiling: records sealed under one key (2^32), whatever the policy says. */
export const HARD_RECORDS_PER_KEY = 2 ** 32;
/** Hard ceiling: inner-plaintext bytes sealed under one key (2^36 = 64 GiB). */
export const HARD_BYTES_PER_KEY = 2 ** 36;
/** Hard ceiling on a sender's key age: 12 hours. */
export const HARD_MS_PER_KEY = 12 * 60 * 60 * 1000;
/**
 * A receiver refuses a key older than this (24 hours, twice the sender's
 * ceiling, so queueing delay and clock drift never trip it).
 */
export const OPENER_MAX_KEY_AGE_MS = 2 * HARD_MS_PER_KEY;
/**
 * Last sequence number this implementation uses (2^53 - 1, the largest
 * exact JavaScript integer). The wire allows 2^64; either way a sender stops
 * instead of wrapping, so no nonce and no mask repeats.
 */
export const MAX_SEQ: number = Number.MAX_SAFE_INTEGER;

/** Default ratchet policy: 1 GiB. */
export const DEFAULT_RATCHET_BYTES = 2 ** 30;
/** Default ratchet policy: 2^22 records. */
export const DEFAULT_RATCHET_RECORDS = 2 ** 22;
/** Default ratchet policy: 15 minutes. */
export const DEFAULT_RATCHET_MS = 15 * 60 * 1000;

/** Random padding is applied only to payloads shorter than this. */
export const RANDOM_PAD_BELOW = 4096;
/** Default `max` of random padding. */
export const DEFAULT_RANDOM_PAD_MAX = 255;
/** Smallest bucket of bucket padding. */
export const MIN_BUCKET = 64;
/** Buckets are powers of two up to this size, then multiples of it. */
export const BUCKET_STEP = 16384;
/** Most padding bytes one record can carry (`pad_len` is a u16). */
export const MAX_PAD_LEN = 65535;
