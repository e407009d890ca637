/**
 * Plaintext bodies of the handshake messages: encoders and strict decoders.
 * These are the bytes inside each ChaCha20-Poly1305 seal; framing, keys and
 * the transcript live in the client and server engines. Ids are kept as wire
 * numbers so an unknown id survives decoding (negotiation ignores it).
 * Layouts: docs/PROTOCOL.md part 2 (handshake) section 4.
 *
 * @module
 */
import { JWT_MAX_BYTES } from "../crypto/jwt.ts";
import { ProtocolError } from "../errors.ts";
import { Reader, Writer } from "../wire/bytes.ts";
import {
  BINDER_BYTES,
  DH_BYTES,
  EXT_JWT,
  EXT_PADDING,
  EXT_RESUMABLE,
  EXT_RESUME,
  EXT_TICKET,
  EXTENSION_HEADER_BYTES,
  HELLO_BODY_MAX,
  KEX_WIRE_IDS,
  MAX_LIST_ENTRIES,
  MAX_PADDING,
  MAX_TOTP_CODE,
  MAX_USER_ID_BYTES,
  MLKEM768_CIPHERTEXT_BYTES,
  MLKEM768_ENCAPSULATION_KEY_BYTES,
  NO_TOTP_CODE,
  NONCE_BYTES,
  RESPONSE_BODY_MAX,
  RESULT_BODY_MAX,
  RESUME_KIND_SESSION_ID,
  RESUME_KIND_TICKET,
  RESUME_RESPONSE_BODY_MAX,
  SERVER_HELLO_BODY_MAX,
  SESSION_ID_BYTES,
  SIGNATURE_BYTES,
  TICKET_MAX_BYTES,
  TICKET_MIN_BYTES,
} from "./constants.ts";

/**
 * The Hello's resume extension: which session, and the binder proving the
 * client holds its resumption secret. Always the last bytes of the body.
 */
export interface ResumeExtension {
  /** `"session_id"`: the 16-byte session id; `"ticket"`: an opaque ticket from a Result. */
  kind: "session_id" | "ticket";
  /** The session id (16 bytes) or the ticket (1..344 bytes). */
  identity: Uint8Array;
  /** MAC(resumption secret, "resume binder", MixHash(hc, body before the binder)), 32 bytes. */
  binder: Uint8Array;
}

/** Hello plaintext (client → server, sealed under the es key). */
export interface HelloBody {
  /** Offered versions (u16 each), preferred first. */
  versions: number[];
  /** Offered key exchange wire ids, preferred first. */
  kex: number[];
  /** Offered AEAD wire ids, preferred first. */
  aead: number[];
  /** 32 random bytes; the replay cache key. */
  nonce: Uint8Array;
  /** Client clock, milliseconds since the Unix epoch. */
  timestampMs: number;
  /** ML-KEM-768 encapsulation key; present iff `kex` offers the hybrid. */
  mlkemKey?: Uint8Array;
  /** Zero bytes of padding, 0..255. */
  paddingLength: number;
  /**
   * The record padding mode the client asks for, as a wire id (kept as a
   * number so an unknown mode survives decoding); a padding extension
   * after the padding, before any resume extension.
   */
  recordPadding?: number;
  /** Present when the client resumes a session; encoded after the padding, last. */
  resume?: ResumeExtension;
}

/** ServerHello plaintext without its signature (the part that is signed). */
export interface ServerHelloFields {
  version: number;
  kex: number;
  aead: number;
  /** Server ephemeral X25519 public key. */
  serverEphemeral: Uint8Array;
  /** ML-KEM-768 ciphertext; present iff `kex` is the hybrid. */
  mlkemCiphertext?: Uint8Array;
  nonce: Uint8Array;
  timestampMs: number;
  paddingLength: number;
}

/** ServerHello plaintext as decoded: the fields, the signature and the signed bytes. */
export interface ServerHelloBody extends ServerHelloFields {
  signature: Uint8Array;
  /** View of the encoded fields (everything before the signature). */
  signed: Uint8Array;
}

/** Response plaintext (client → server, sealed under the client handshake key). */
export interface ResponseBody {
  userId: string;
  /** TOTP code 0..999999, absent when the client has no TOTP secret. */
  totpCode?: number;
  paddingLength: number;
  /** The login's JWT (compact form), as a JWT extension after the padding. */
  jwt?: string;
}

/** Result plaintext (server → client, sealed under the server handshake key). */
export interface ResultBody {
  sessionId: Uint8Array;
  paddingLength: number;
  /**
   * True when a ticket frame follows the Result MAC (servers with a ticket
   * keyring); encoded as an empty ticket extension after the padding.
   */
  ticketFollows?: boolean;
  /** True when the server keeps the session resumable (an empty resumable extension). */
  resumable?: boolean;
  /**
   * The record padding mode both directions use, as a wire id (a padding
   * extension); sent only in answer to a Hello's padding extension.
   */
  recordPadding?: number;
}

/** Response plaintext when resuming: padding only (the resume tag follows the seal). */
export interface ResumeResponseBody {
  paddingLength: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function malformed(what: string, detail: string): ProtocolError {
  return new ProtocolError("MALFORMED", `Cannot decode ${what}: ${detail}`);
}

/** Runs a decoder; a read past the end of a complete body is MALFORMED, not TRUNCATED. */
function strict<T>(what: string, body: Uint8Array, max: number, f: (r: Reader) => T): T {
  if (body.length > max) {
    throw new ProtocolError(
      "TOO_LARGE",
      `Cannot decode ${what}: length ${body.length} exceeds maximum ${max}`,
    );
  }
  const r = new Reader(body, what);
  try {
    const out = f(r);
    r.expectEmpty();
    return out;
  } catch (e) {
    if (e instanceof ProtocolError && e.code === "TRUNCATED") {
      throw new ProtocolError("MALFORMED", e.message, { cause: e });
    }
    throw e;
  }
}

function checkLength(what: string, b: Uint8Array, n: number): void {
  if (b.length !== n) throw new RangeError(`Cannot encode ${what}: length ${b.length} is not ${n}`);
}

function checkRange(what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`Cannot encode ${what}: ${v} is outside ${min}..${max}`);
  }
}

function writeList(w: Writer, what: string, list: readonly number[], wide: boolean): void {
  checkRange(`${what} count`, list.length, 1, MAX_LIST_ENTRIES);
  w.u8(list.length);
  for (const v of list) {
    checkRange(what, v, 0, wide ? 0xffff : 0xff);
    if (wide) w.u16(v);
    else w.u8(v);
  }
}

function readList(r: Reader, what: string, wide: boolean): number[] {
  const n = r.u8();
  if (n < 1 || n > MAX_LIST_ENTRIES) {
    throw malformed("Hello", `${what} count ${n} is outside 1..${MAX_LIST_ENTRIES}`);
  }
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(wide ? r.u16() : r.u8());
  return out;
}

function writePadding(w: Writer, n: number): void {
  checkRange("padding length", n, 0, MAX_PADDING);
  w.u8(n).bytes(new Uint8Array(n));
}

function readPadding(r: Reader, what: string): number {
  const n = r.u8();
  const pad = r.take(n);
  let acc = 0;
  for (let i = 0; i < pad.length; i++) acc |= pad[i]!;
  if (acc !== 0) throw malformed(what, "padding is not zero");
  return n;
}

function writeExtension(w: Writer, type: number, parts: Uint8Array[]): void {
  let n = 0;
  for (const p of parts) n += p.length;
  w.u8(type).u16(n);
  for (const p of parts) w.bytes(p);
}

/**
 * Reads `type u8 ‖ len u16 ‖ data` until the body ends. Unknown types are
 * skipped (a later version may add one); a repeated type is malformed.
 * `last` names a type that must end the body.
 */
function readExtensions(
  r: Reader,
  what: string,
  last: number | undefined,
  on: (type: number, data: Uint8Array) => void,
): void {
  const seen = new Set<number>();
  while (r.remaining > 0) {
    const type = r.u8();
    const data = r.take(r.u16());
    if (seen.has(type)) throw malformed(what, `extension ${type} appears twice`);
    seen.add(type);
    if (type === last && r.remaining > 0) {
      throw malformed(what, `extension ${type} is not the last`);
    }
    on(type, data);
  }
}

function writePaddingMode(w: Writer, mode: number | undefined): void {
  if (mode === undefined) return;
  checkRange("padding mode", mode, 0, 0xff);
  writeExtension(w, EXT_PADDING, [new Uint8Array([mode])]);
}

function readPaddingMode(what: string, data: Uint8Array): number {
  if (data.length !== 1) {
    throw malformed(what, `padding extension length ${data.length} is not 1`);
  }
  return data[0]!;
}

function readTimestamp(r: Reader, what: string): number {
  const t = r.u64();
  if (t > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(what, `timestamp ${t} is too large`);
  return Number(t);
}

function writeTimestamp(w: Writer, ms: number): void {
  checkRange("timestamp", ms, 0, Number.MAX_SAFE_INTEGER);
  w.u64(BigInt(ms));
}

/**
 * Encodes a Hello body.
 *
 * @example
 * ```ts
 * import { decodeHelloBody, encodeHelloBody } from "./messages.ts";
 * const body = encodeHelloBody({
 *   versions: [1], kex: [1], aead: [1], nonce: new Uint8Array(32), timestampMs: 0, paddingLength: 0,
 * });
 * decodeHelloBody(body).versions; // [1]
 * ```
 */
export function encodeHelloBody(b: HelloBody): Uint8Array {
  const w = new Writer(128);
  writeList(w, "version", b.versions, true);
  writeList(w, "KEX id", b.kex, false);
  writeList(w, "AEAD id", b.aead, false);
  checkLength("Hello nonce", b.nonce, NONCE_BYTES);
  w.bytes(b.nonce);
  writeTimestamp(w, b.timestampMs);
  const hybrid = b.kex.includes(KEX_WIRE_IDS["x25519-mlkem768"]);
  if (hybrid !== (b.mlkemKey !== undefined)) {
    throw new TypeError(
      "Cannot encode Hello: ML-KEM key must be present iff the hybrid is offered",
    );
  }
  if (b.mlkemKey !== undefined) {
    checkLength("ML-KEM key", b.mlkemKey, MLKEM768_ENCAPSULATION_KEY_BYTES);
    w.bytes(b.mlkemKey);
  }
  writePadding(w, b.paddingLength);
  writePaddingMode(w, b.recordPadding);
  if (b.resume !== undefined) {
    const { kind, identity, binder } = b.resume;
    if (kind === "session_id") checkLength("resume session id", identity, SESSION_ID_BYTES);
    else checkRange("ticket length", identity.length, TICKET_MIN_BYTES, TICKET_MAX_BYTES);
    checkLength("binder", binder, BINDER_BYTES);
    const k = kind === "session_id" ? RESUME_KIND_SESSION_ID : RESUME_KIND_TICKET;
    writeExtension(w, EXT_RESUME, [new Uint8Array([k]), identity, binder]);
  }
  if (w.length > HELLO_BODY_MAX) {
    throw new RangeError(
      `Cannot encode Hello: length ${w.length} exceeds maximum ${HELLO_BODY_MAX}`,
    );
  }
  return w.finish().slice();
}

/**
 * Bytes a resume extension adds to a Hello body: header 3, kind 1, identity, binder 32.
 *
 * @example
 * ```ts
 * import { resumeExtensionLength } from "./messages.ts";
 * resumeExtensionLength(16); // 52 (by session id)
 * ```
 */
export function resumeExtensionLength(identityLength: number): number {
  return EXTENSION_HEADER_BYTES + 1 + identityLength + BINDER_BYTES;
}

function readResume(data: Uint8Array): ResumeExtension {
  if (data.length < 1 + BINDER_BYTES) {
    throw malformed("Hello", `resume extension length ${data.length} is too short`);
  }
  const k = data[0]!;
  const identity = data.slice(1, data.length - BINDER_BYTES);
  const binder = data.slice(data.length - BINDER_BYTES);
  if (k === RESUME_KIND_SESSION_ID) {
    if (identity.length !== SESSION_ID_BYTES) {
      throw malformed("Hello", `resume session id length ${identity.length} is not 16`);
    }
    return { kind: "session_id", identity, binder };
  }
  if (k === RESUME_KIND_TICKET) {
    if (identity.length < TICKET_MIN_BYTES || identity.length > TICKET_MAX_BYTES) {
      throw malformed(
        "Hello",
        `ticket length ${identity.length} is outside ${TICKET_MIN_BYTES}..${TICKET_MAX_BYTES}`,
      );
    }
    return { kind: "ticket", identity, binder };
  }
  throw malformed("Hello", `resume kind ${k} is unknown`);
}

/**
 * Decodes a Hello body; throws `ProtocolError` `MALFORMED` for any
 * inconsistency (list sizes, ML-KEM key presence, non-zero padding,
 * a repeated extension, a resume extension that is not last) and
 * `TOO_LARGE` above the maximum.
 *
 * @example
 * ```ts
 * import { decodeHelloBody } from "./messages.ts";
 * try { decodeHelloBody(new Uint8Array(3)); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function decodeHelloBody(body: Uint8Array): HelloBody {
  return strict("Hello", body, HELLO_BODY_MAX, (r) => {
    const versions = readList(r, "version", true);
    const kex = readList(r, "KEX", false);
    const aead = readList(r, "AEAD", false);
    const nonce = r.take(NONCE_BYTES).slice();
    const timestampMs = readTimestamp(r, "Hello");
    const out: HelloBody = { versions, kex, aead, nonce, timestampMs, paddingLength: 0 };
    if (kex.includes(KEX_WIRE_IDS["x25519-mlkem768"])) {
      out.mlkemKey = r.take(MLKEM768_ENCAPSULATION_KEY_BYTES).slice();
    }
    out.paddingLength = readPadding(r, "Hello");
    readExtensions(r, "Hello", EXT_RESUME, (type, data) => {
      if (type === EXT_RESUME) out.resume = readResume(data);
      else if (type === EXT_PADDING) out.recordPadding = readPaddingMode("Hello", data);
    });
    return out;
  });
}

/**
 * Encodes the signed part of a ServerHello body (everything but the signature).
 *
 * @example
 * ```ts
 * import { encodeServerHelloFields } from "./messages.ts";
 * encodeServerHelloFields({
 *   version: 1, kex: 1, aead: 1, serverEphemeral: new Uint8Array(32),
 *   nonce: new Uint8Array(32), timestampMs: 0, paddingLength: 0,
 * }).length; // 77
 * ```
 */
export function encodeServerHelloFields(f: ServerHelloFields): Uint8Array {
  const w = new Writer(128);
  checkRange("version", f.version, 0, 0xffff);
  checkRange("KEX id", f.kex, 0, 0xff);
  checkRange("AEAD id", f.aead, 0, 0xff);
  w.u16(f.version).u8(f.kex).u8(f.aead);
  checkLength("server ephemeral key", f.serverEphemeral, DH_BYTES);
  w.bytes(f.serverEphemeral);
  const hybrid = f.kex === KEX_WIRE_IDS["x25519-mlkem768"];
  if (hybrid !== (f.mlkemCiphertext !== undefined)) {
    throw new TypeError(
      "Cannot encode ServerHello: ML-KEM ciphertext must be present iff the hybrid is selected",
    );
  }
  if (f.mlkemCiphertext !== undefined) {
    checkLength("ML-KEM ciphertext", f.mlkemCiphertext, MLKEM768_CIPHERTEXT_BYTES);
    w.bytes(f.mlkemCiphertext);
  }
  checkLength("ServerHello nonce", f.nonce, NONCE_BYTES);
  w.bytes(f.nonce);
  writeTimestamp(w, f.timestampMs);
  writePadding(w, f.paddingLength);
  return w.finish().slice();
}

/**
 * Encodes a whole ServerHello body: fields ‖ signature.
 *
 * @example
 * ```ts
 * import { encodeServerHelloBody } from "./messages.ts";
 * encodeServerHelloBody({
 *   version: 1, kex: 1, aead: 1, serverEphemeral: new Uint8Array(32),
 *   nonce: new Uint8Array(32), timestampMs: 0, paddingLength: 0, signature: new Uint8Array(64),
 * }).length; // 141
 * ```
 */
export function encodeServerHelloBody(
  b: ServerHelloFields & { signature: Uint8Array },
): Uint8Array {
  checkLength("signature", b.signature, SIGNATURE_BYTES);
  const fields = encodeServerHelloFields(b);
  const out = new Uint8Array(fields.length + SIGNATURE_BYTES);
  out.set(fields);
  out.set(b.signature, fields.length);
  return out;
}

/**
 * Decodes a ServerHello body; `signed` is a view of the bytes the signature covers.
 *
 * @example
 * ```ts
 * import { decodeServerHelloBody, encodeServerHelloBody } from "./messages.ts";
 * const b = encodeServerHelloBody({
 *   version: 1, kex: 1, aead: 3, serverEphemeral: new Uint8Array(32),
 *   nonce: new Uint8Array(32), timestampMs: 5, paddingLength: 2, signature: new Uint8Array(64),
 * });
 * decodeServerHelloBody(b).aead; // 3
 * ```
 */
export function decodeServerHelloBody(body: Uint8Array): ServerHelloBody {
  return strict("ServerHello", body, SERVER_HELLO_BODY_MAX, (r) => {
    const version = r.u16();
    const kex = r.u8();
    const aead = r.u8();
    const serverEphemeral = r.take(DH_BYTES).slice();
    const out: ServerHelloBody = {
      version,
      kex,
      aead,
      serverEphemeral,
      nonce: new Uint8Array(0),
      timestampMs: 0,
      paddingLength: 0,
      signature: new Uint8Array(0),
      signed: new Uint8Array(0),
    };
    if (kex === KEX_WIRE_IDS["x25519-mlkem768"]) {
      out.mlkemCiphertext = r.take(MLKEM768_CIPHERTEXT_BYTES).slice();
    }
    out.nonce = r.take(NONCE_BYTES).slice();
    out.timestampMs = readTimestamp(r, "ServerHello");
    out.paddingLength = readPadding(r, "ServerHello");
    out.signed = body.subarray(0, r.offset);
    out.signature = r.take(SIGNATURE_BYTES).slice();
    return out;
  });
}

/**
 * Encodes a Response body.
 *
 * @example
 * ```ts
 * import { encodeResponseBody } from "./messages.ts";
 * encodeResponseBody({ userId: "alice", totpCode: 123456, paddingLength: 0 }).length; // 12
 * ```
 */
export function encodeResponseBody(b: ResponseBody): Uint8Array {
  const id = encoder.encode(b.userId);
  checkRange("user id length", id.length, 1, MAX_USER_ID_BYTES);
  const w = new Writer(64);
  w.u8(id.length).bytes(id);
  if (b.totpCode === undefined) w.u32(NO_TOTP_CODE);
  else {
    checkRange("TOTP code", b.totpCode, 0, MAX_TOTP_CODE);
    w.u32(b.totpCode);
  }
  writePadding(w, b.paddingLength);
  if (b.jwt !== undefined) {
    const t = encoder.encode(b.jwt);
    checkRange("JWT length", t.length, 1, JWT_MAX_BYTES);
    writeExtension(w, EXT_JWT, [t]);
  }
  return w.finish().slice();
}

/**
 * Decodes a Response body (user id must be valid UTF-8, 1..255 bytes).
 *
 * @example
 * ```ts
 * import { decodeResponseBody, encodeResponseBody } from "./messages.ts";
 * decodeResponseBody(encodeResponseBody({ userId: "bob", paddingLength: 3 })).userId; // "bob"
 * ```
 */
export function decodeResponseBody(body: Uint8Array): ResponseBody {
  return strict("Response", body, RESPONSE_BODY_MAX, (r) => {
    const n = r.u8();
    if (n === 0) throw malformed("Response", "user id is empty");
    let userId: string;
    try {
      userId = decoder.decode(r.take(n));
    } catch (e) {
      throw new ProtocolError("MALFORMED", "Cannot decode Response: user id is not UTF-8", {
        cause: e,
      });
    }
    const code = r.u32();
    const out: ResponseBody = { userId, paddingLength: 0 };
    if (code !== NO_TOTP_CODE) {
      if (code > MAX_TOTP_CODE) {
        throw malformed("Response", `TOTP code ${code} has more than 6 digits`);
      }
      out.totpCode = code;
    }
    out.paddingLength = readPadding(r, "Response");
    readExtensions(r, "Response", undefined, (type, data) => {
      if (type !== EXT_JWT) return;
      if (data.length === 0 || data.length > JWT_MAX_BYTES) {
        throw malformed("Response", `JWT length ${data.length} is outside 1..${JWT_MAX_BYTES}`);
      }
      // A compact JWS is base64url parts and dots: ASCII.
      if (data.some((b) => b < 0x21 || b > 0x7e)) {
        throw malformed("Response", "JWT is not printable ASCII");
      }
      out.jwt = decoder.decode(data);
    });
    return out;
  });
}

/**
 * Encodes a Result body.
 *
 * @example
 * ```ts
 * import { encodeResultBody } from "./messages.ts";
 * encodeResultBody({ sessionId: new Uint8Array(16), paddingLength: 0 }).length; // 17
 * ```
 */
export function encodeResultBody(b: ResultBody): Uint8Array {
  checkLength("session id", b.sessionId, SESSION_ID_BYTES);
  const w = new Writer(32);
  w.bytes(b.sessionId);
  writePadding(w, b.paddingLength);
  if (b.ticketFollows === true) writeExtension(w, EXT_TICKET, []);
  if (b.resumable === true) writeExtension(w, EXT_RESUMABLE, []);
  writePaddingMode(w, b.recordPadding);
  return w.finish().slice();
}

/**
 * Decodes a Result body.
 *
 * @example
 * ```ts
 * import { decodeResultBody, encodeResultBody } from "./messages.ts";
 * decodeResultBody(encodeResultBody({ sessionId: new Uint8Array(16), paddingLength: 1 })).paddingLength; // 1
 * ```
 */
export function decodeResultBody(body: Uint8Array): ResultBody {
  return strict("Result", body, RESULT_BODY_MAX, (r) => {
    const sessionId = r.take(SESSION_ID_BYTES).slice();
    const out: ResultBody = { sessionId, paddingLength: readPadding(r, "Result") };
    readExtensions(r, "Result", undefined, (type, data) => {
      if (type === EXT_PADDING) out.recordPadding = readPaddingMode("Result", data);
      if (type !== EXT_TICKET && type !== EXT_RESUMABLE) return;
      if (data.length !== 0) {
        throw malformed("Result", `extension ${type} length ${data.length} is not 0`);
      }
      if (type === EXT_TICKET) out.ticketFollows = true;
      else out.resumable = true;
    });
    return out;
  });
}

/**
 * Encodes the body of a resume Response (padding only).
 *
 * @example
 * ```ts
 * import { encodeResumeResponseBody } from "./messages.ts";
 * encodeResumeResponseBody({ paddingLength: 2 }).length; // 3
 * ```
 */
export function encodeResumeResponseBody(b: ResumeResponseBody): Uint8Array {
  const w = new Writer(8);
  writePadding(w, b.paddingLength);
  return w.finish().slice();
}

/**
 * Decodes the body of a resume Response.
 *
 * @example
 * ```ts
 * import { decodeResumeResponseBody } from "./messages.ts";
 * decodeResumeResponseBody(new Uint8Array([1, 0])).paddingLength; // 1
 * ```
 */
export function decodeResumeResponseBody(body: Uint8Array): ResumeResponseBody {
  return strict("resume Response", body, RESUME_RESPONSE_BODY_MAX, (r) => ({
    paddingLength: readPadding(r, "resume Response"),
  }));
}
