/**
 * NitroSocks handshake v1 constants: algorithm names and wire ids, sizes of
 * every field and message, limits. Spec constants only; implementation
 * defaults (padding, clock window) live beside the code that uses them.
 * See docs/PROTOCOL.md part 2 (handshake) for the tables these numbers come from.
 *
 * @module
 */
import { JWT_MAX_BYTES } from "../crypto/jwt.ts";

/** Key exchange suites, in default preference order (hybrid first). */
export type KexId = "x25519" | "x25519-mlkem768";
/** Record-layer AEADs the handshake can negotiate. */
export type AeadId = "aes-256-gcm" | "aes-128-gcm" | "chacha20-poly1305";

/** Every key exchange we implement, default preference first. */
export const KEX_IDS: readonly KexId[] = Object.freeze(["x25519-mlkem768", "x25519"]);
/** Every record AEAD we can negotiate, default preference first. */
export const AEAD_IDS: readonly AeadId[] = Object.freeze([
  "aes-256-gcm",
  "aes-128-gcm",
  "chacha20-poly1305",
]);

/** Protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
/** Versions we accept, preferred first. */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([PROTOCOL_VERSION]);

/** Wire ids (u8) of the key exchanges. */
export const KEX_WIRE_IDS: Readonly<Record<KexId, number>> = Object.freeze({
  "x25519": 0x01,
  "x25519-mlkem768": 0x02,
});
/** Wire ids (u8) of the AEADs. */
export const AEAD_WIRE_IDS: Readonly<Record<AeadId, number>> = Object.freeze({
  "aes-256-gcm": 0x01,
  "aes-128-gcm": 0x02,
  "chacha20-poly1305": 0x03,
});

/**
 * Record padding modes a session can use (docs/PROTOCOL.md part 3 (record
 * layer) section 8), weakest first; negotiated by the padding extension
 * (part 2 (handshake) section 4.7).
 */
export type PaddingMode = "none" | "random" | "bucket";
/** Every padding mode, weakest first (the order the negotiation ranks them in). */
export const PADDING_MODES: readonly PaddingMode[] = Object.freeze(["none", "random", "bucket"]);
/** Wire ids (u8) of the padding modes. */
export const PADDING_WIRE_IDS: Readonly<Record<PaddingMode, number>> = Object.freeze({
  "none": 0x00,
  "random": 0x01,
  "bucket": 0x02,
});

/** Most entries in one offered list (versions, KEX, AEAD). */
export const MAX_LIST_ENTRIES = 8;
/** Bytes of the client and server nonces. */
export const NONCE_BYTES = 32;
/** Bytes of a u64 millisecond timestamp. */
export const TIMESTAMP_BYTES = 8;
/** Bytes of the Elligator 2 representative of the client's ephemeral key. */
export const REPRESENTATIVE_BYTES = 32;
/** Bytes of an X25519 key. */
export const DH_BYTES = 32;
/** Bytes of the masked length prefix of every sealed message. */
export const LENGTH_BYTES = 2;
/** Poly1305 tag on every sealed message. */
export const AEAD_TAG_BYTES = 16;
/** HMAC-SHA256 tags (key tag, token tag, Result MAC, Finish). */
export const MAC_BYTES = 32;
/** Ed25519 signature bytes. */
export const SIGNATURE_BYTES = 64;
/** ML-KEM-768 encapsulation key bytes (FIPS 203 table 3). */
export const MLKEM768_ENCAPSULATION_KEY_BYTES = 1184;
/** ML-KEM-768 ciphertext bytes (FIPS 203 table 3). */
export const MLKEM768_CIPHERTEXT_BYTES = 1088;
/** Most padding bytes in one message. */
export const MAX_PADDING = 255;
/** Most bytes in a UTF-8 user id. */
export const MAX_USER_ID_BYTES = 255;
/** Session id bytes. */
export const SESSION_ID_BYTES = 16;
/** Token bytes. */
export const TOKEN_BYTES = 32;
/** Secret bytes of each derived traffic or resumption secret. */
export const SECRET_BYTES = 32;
/** The u32 in a Response that says "no TOTP code". */
export const NO_TOTP_CODE = 0xffffffff;
/** Largest TOTP code (6 digits). */
export const MAX_TOTP_CODE = 999_999;

/** Hello plaintext, smallest: one entry per list, no ML-KEM key, no padding. */
export const HELLO_BODY_MIN = 1 + 2 + 1 + 1 + 1 + 1 + NONCE_BYTES + TIMESTAMP_BYTES + 1;
/**
 * Hello plaintext, largest. A resume extension must fit inside it too (the
 * client shortens its padding, section 4.6), so the probe gate's range is the
 * same with or without resumption.
 */
export const HELLO_BODY_MAX = 1 + 2 * MAX_LIST_ENTRIES + 1 + MAX_LIST_ENTRIES + 1 +
  MAX_LIST_ENTRIES + NONCE_BYTES + TIMESTAMP_BYTES + MLKEM768_ENCAPSULATION_KEY_BYTES + 1 +
  MAX_PADDING;
/** mac1 ‖ mac2 after the representative (section 15, `cookie.ts`). */
export const HELLO_MACS_BYTES = 32;
/** Bytes before the Hello ciphertext: representative ‖ mac1 ‖ mac2 ‖ masked length. */
export const HELLO_HEADER_BYTES = REPRESENTATIVE_BYTES + HELLO_MACS_BYTES + LENGTH_BYTES;
/** Smallest whole Hello on the wire (130). */
export const HELLO_MIN_BYTES: number = HELLO_HEADER_BYTES + HELLO_BODY_MIN + AEAD_TAG_BYTES;
/** Largest whole Hello on the wire (1597). */
export const HELLO_MAX_BYTES: number = HELLO_HEADER_BYTES + HELLO_BODY_MAX + AEAD_TAG_BYTES;

/** ServerHello plaintext, smallest (X25519, no padding). */
export const SERVER_HELLO_BODY_MIN = 2 + 1 + 1 + DH_BYTES + NONCE_BYTES + TIMESTAMP_BYTES + 1 +
  SIGNATURE_BYTES;
/** ServerHello plaintext, largest (hybrid, full padding). */
export const SERVER_HELLO_BODY_MAX = SERVER_HELLO_BODY_MIN + MLKEM768_CIPHERTEXT_BYTES +
  MAX_PADDING;
/** Smallest whole ServerHello (159). */
export const SERVER_HELLO_MIN_BYTES = LENGTH_BYTES + SERVER_HELLO_BODY_MIN + AEAD_TAG_BYTES;
/** Largest whole ServerHello (1502). */
export const SERVER_HELLO_MAX_BYTES: number = LENGTH_BYTES + SERVER_HELLO_BODY_MAX + AEAD_TAG_BYTES;

/** Response plaintext, smallest: 1-byte user id, no padding. */
export const RESPONSE_BODY_MIN = 1 + 1 + 4 + 1;
/** Response plaintext, largest: with a JWT extension (section 14 of the spec) of the longest token. */
export const RESPONSE_BODY_MAX = 1 + MAX_USER_ID_BYTES + 4 + 1 + MAX_PADDING + 3 + JWT_MAX_BYTES;
/** Smallest whole Response (89): sealed body plus key tag and token tag. */
export const RESPONSE_MIN_BYTES = LENGTH_BYTES + RESPONSE_BODY_MIN + AEAD_TAG_BYTES + 2 * MAC_BYTES;
/** Largest whole Response (2649). */
export const RESPONSE_MAX_BYTES: number = LENGTH_BYTES + RESPONSE_BODY_MAX + AEAD_TAG_BYTES +
  2 * MAC_BYTES;

/**
 * Extension header in a Hello or Result body, after the padding:
 * type u8 ‖ length u16 (section 4.6 of the spec).
 */
export const EXTENSION_HEADER_BYTES = 3;
/** Hello extension: resume a session (must be the last extension). */
export const EXT_RESUME = 0x01;
/** Result extension (empty): a ticket frame follows the Result MAC. */
export const EXT_TICKET = 0x02;
/** Result extension (empty): the server keeps this session resumable. */
export const EXT_RESUMABLE = 0x03;
/** Response extension: the login's JWT (compact form, ASCII), for a user whose factor is a JWT. */
export const EXT_JWT = 0x04;
/**
 * Hello and Result extension: the record padding mode, one byte (a
 * `PADDING_WIRE_IDS` value). In a Hello, the mode the client asks for; in
 * the Result, the mode both directions use.
 */
export const EXT_PADDING = 0x05;
/** Bytes a padding extension adds to a body: header 3, mode 1. */
export const PADDING_EXTENSION_BYTES = 4;
/** Resume identity kind: the 16-byte session id (server keeps a session table). */
export const RESUME_KIND_SESSION_ID = 0x01;
/** Resume identity kind: an opaque ticket (stateless servers sharing a keyring). */
export const RESUME_KIND_TICKET = 0x02;
/** Binder: HMAC-SHA256 proof of the resumption secret at the end of the Hello body. */
export const BINDER_BYTES = MAC_BYTES;
/** Smallest ticket on the wire. */
export const TICKET_MIN_BYTES = 1;
/**
 * Largest ticket on the wire (344): key id u32 ‖ nonce 12 ‖ AEAD(session id 16 ‖
 * resumption secret 32 ‖ issued u64 ‖ id_len u8 ‖ user id ≤255) ‖ tag 16.
 */
export const TICKET_MAX_BYTES: number = 4 + 12 + SESSION_ID_BYTES + SECRET_BYTES + 8 + 1 +
  MAX_USER_ID_BYTES + AEAD_TAG_BYTES;

/** Resume Response plaintext, smallest: padding length only. */
export const RESUME_RESPONSE_BODY_MIN = 1;
/** Resume Response plaintext, largest. */
export const RESUME_RESPONSE_BODY_MAX = 1 + MAX_PADDING;
/** Smallest whole resume Response (51): sealed body plus the resume tag. */
export const RESUME_RESPONSE_MIN_BYTES: number = LENGTH_BYTES + RESUME_RESPONSE_BODY_MIN +
  AEAD_TAG_BYTES +
  MAC_BYTES;
/** Largest whole resume Response (306). */
export const RESUME_RESPONSE_MAX_BYTES: number = LENGTH_BYTES + RESUME_RESPONSE_BODY_MAX +
  AEAD_TAG_BYTES +
  MAC_BYTES;

/** Result plaintext, smallest. */
export const RESULT_BODY_MIN = SESSION_ID_BYTES + 1;
/** Result plaintext, largest: full padding, the two empty extensions and the padding extension. */
export const RESULT_BODY_MAX = RESULT_BODY_MIN + MAX_PADDING + 2 * EXTENSION_HEADER_BYTES +
  PADDING_EXTENSION_BYTES;
/** Smallest ticket frame: masked_len ‖ sealed ticket. */
export const TICKET_FRAME_MIN_BYTES = LENGTH_BYTES + TICKET_MIN_BYTES + AEAD_TAG_BYTES;
/** Largest ticket frame (362). */
export const TICKET_FRAME_MAX_BYTES: number = LENGTH_BYTES + TICKET_MAX_BYTES + AEAD_TAG_BYTES;
/** Smallest whole Result (67). */
export const RESULT_MIN_BYTES = LENGTH_BYTES + RESULT_BODY_MIN + AEAD_TAG_BYTES + MAC_BYTES;
/** Largest whole Result (694), a ticket frame included. */
export const RESULT_MAX_BYTES: number = LENGTH_BYTES + RESULT_BODY_MAX + AEAD_TAG_BYTES +
  MAC_BYTES +
  TICKET_FRAME_MAX_BYTES;

/** Finish: one HMAC-SHA256. */
export const FINISH_BYTES = MAC_BYTES;

/** Largest handshake message of any kind (a Response with the longest JWT, 2649 bytes). */
export const HANDSHAKE_MAX_MESSAGE: number = Math.max(
  HELLO_MAX_BYTES,
  SERVER_HELLO_MAX_BYTES,
  RESPONSE_MAX_BYTES,
  RESULT_MAX_BYTES,
  FINISH_BYTES,
);

/** Protocol name hashed into the initial chaining key. */
export const PROTOCOL_NAME = "NitroSocks v1 handshake";
/** Prefix of the message the server signs (then the 32-byte hash). */
export const SIGNATURE_CONTEXT = "NitroSocks v1 ServerHello signature\u0000";
