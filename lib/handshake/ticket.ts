/**
 * Resumption tickets: the server's session state (session id, resumption
 * secret, user id, issue time) sealed with ChaCha20-Poly1305 under a key
 * only the servers hold, so any server sharing the keyring can resume a
 * session without a shared session table. The first key seals, every key
 * opens: rotate by adding a new key in front and dropping the oldest later.
 * Spec: docs/PROTOCOL.md part 2 (handshake) section 13.
 *
 * ```
 * ticket = key_id u32 ‖ nonce (12, random) ‖ AEAD(key, nonce, state, aad = key_id u32)
 * state  = session_id (16) ‖ resumption_secret (32) ‖ issued_ms u64 ‖ id_len u8 ‖ user_id
 * ```
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { chachaOpen, chachaSeal } from "../crypto/chacha20_poly1305.ts";
import { fromBase64Url, randomBytes, type RandomSource, toBase64Url, wipe } from "../crypto/mod.ts";
import { Reader, Writer } from "../wire/bytes.ts";
import {
  AEAD_TAG_BYTES,
  MAX_USER_ID_BYTES,
  SECRET_BYTES,
  SESSION_ID_BYTES,
  TICKET_MAX_BYTES,
} from "./constants.ts";

/** Bytes of a ticket key (ChaCha20-Poly1305, RFC 8439 section 2.8). */
export const TICKET_KEY_BYTES = 32;
/** Bytes of the random nonce in every ticket. */
export const TICKET_NONCE_BYTES = 12;
/** Bytes of the key id at the start of every ticket (u32). */
export const TICKET_KEY_ID_BYTES = 4;
/** Largest key id (u32). */
export const TICKET_KEY_ID_MAX = 0xffff_ffff;
/** Smallest ticket this keyring makes (1-byte user id): 90 bytes. */
export const TICKET_SEALED_MIN_BYTES = TICKET_KEY_ID_BYTES + TICKET_NONCE_BYTES +
  SESSION_ID_BYTES + SECRET_BYTES + 8 + 1 + 1 + AEAD_TAG_BYTES;
/** Default ticket lifetime: one hour after it was issued. */
export const DEFAULT_TICKET_LIFETIME_MS = 3_600_000;

/** One ticket key: a u32 id (sent in the clear) and 32 secret bytes. */
export interface TicketKey {
  /** 0..4294967295; names the key inside every ticket it sealed. */
  id: number;
  /** 32 random bytes. */
  key: Uint8Array;
}

/** What a ticket carries: enough for any server with the key to resume the session. */
export interface TicketState {
  /** 16 bytes. */
  sessionId: Uint8Array;
  /** The resumption secret the ticket stands for (32 bytes). */
  resumptionSecret: Uint8Array;
  /** UTF-8, 1..255 bytes. */
  userId: string;
  /** When the ticket was sealed, ms since the Unix epoch. */
  issuedMs: number;
}

/** Options for {@linkcode TicketKeyring}. */
export interface TicketKeyringOptions {
  /** Tickets older than this are refused; default one hour. */
  lifetimeMs?: number;
  /** Clock for the expiry check, ms since the Unix epoch; default `Date.now`. */
  now?: () => number;
  /** Source of the per-ticket nonce; default the platform CSPRNG. */
  random?: RandomSource;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** Opened instead of a missing key so an unknown key id costs the same work. */
const STAND_IN_KEY = new Uint8Array(TICKET_KEY_BYTES);

function checkKeyId(id: number, where: string): void {
  if (!Number.isInteger(id) || id < 0 || id > TICKET_KEY_ID_MAX) {
    throw new RangeError(`Cannot use ${where} id ${id}: not an integer in 0..${TICKET_KEY_ID_MAX}`);
  }
}

function checkKeys(keys: readonly TicketKey[]): void {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new RangeError("Cannot use ticket keys: the list is empty");
  }
  const seen = new Set<number>();
  for (const k of keys) {
    checkKeyId(k.id, "ticket key");
    if (!(k.key instanceof Uint8Array)) {
      throw new TypeError(`Cannot use ticket key ${k.id}: not a Uint8Array`);
    }
    if (k.key.length !== TICKET_KEY_BYTES) {
      throw new RangeError(
        `Cannot use ticket key ${k.id}: length ${k.key.length} is not ${TICKET_KEY_BYTES}`,
      );
    }
    if (seen.has(k.id)) throw new RangeError(`Cannot use ticket keys: id ${k.id} appears twice`);
    seen.add(k.id);
  }
}

function keyIdBytes(id: number): Uint8Array {
  return new Writer(TICKET_KEY_ID_BYTES).u32(id).finish().slice();
}

/**
 * A set of ticket keys shared by every server behind one address. Pure: no
 * I/O, no timers.
 *
 * @example
 * ```ts
 * import { generateTicketKey, TicketKeyring } from "./ticket.ts";
 * const ring = new TicketKeyring([generateTicketKey(1)]);
 * const ticket = ring.seal({
 *   sessionId: new Uint8Array(16), resumptionSecret: new Uint8Array(32), userId: "alice",
 *   issuedMs: Date.now(),
 * });
 * ring.open(ticket)?.userId; // "alice"
 * ```
 */
export class TicketKeyring {
  #sealId: number;
  #sealKey: Uint8Array;
  #keys: Map<number, Uint8Array>;
  #lifetimeMs: number;
  #now: () => number;
  #random: RandomSource;

  /** A keyring sealing with the first key and opening with any; throws `RangeError` for bad keys. */
  constructor(keys: TicketKey[], opts: TicketKeyringOptions = {}) {
    checkKeys(keys);
    const lifetimeMs = opts.lifetimeMs ?? DEFAULT_TICKET_LIFETIME_MS;
    if (!Number.isFinite(lifetimeMs) || lifetimeMs <= 0) {
      throw new RangeError(`Cannot use ticket lifetime ${lifetimeMs} ms: not a finite number > 0`);
    }
    this.#keys = new Map(keys.map((k) => [k.id, k.key.slice()]));
    this.#sealId = keys[0]!.id;
    this.#sealKey = this.#keys.get(this.#sealId)!;
    this.#lifetimeMs = lifetimeMs;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? randomBytes;
  }

  /**
   * Replaces the keys (a rotation another server of a fleet made): seals
   * with the first from now on, opens with any. Throws `RangeError` for bad
   * keys, and then keeps the old ones.
   */
  setKeys(keys: TicketKey[]): void {
    checkKeys(keys);
    this.#keys = new Map(keys.map((k) => [k.id, k.key.slice()]));
    this.#sealId = keys[0]!.id;
    this.#sealKey = this.#keys.get(this.#sealId)!;
  }

  /** How long a ticket stays valid after it was issued, in ms. */
  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  /** Key ids, the sealing key first. */
  get keyIds(): number[] {
    return [...this.#keys.keys()];
  }

  /** Seals `state` under the first key; 90..344 bytes. */
  seal(state: TicketState): Uint8Array {
    const { sessionId, resumptionSecret, userId, issuedMs } = state;
    if (sessionId.length !== SESSION_ID_BYTES) {
      throw new RangeError(`Cannot seal ticket: session id length ${sessionId.length} is not 16`);
    }
    if (resumptionSecret.length !== SECRET_BYTES) {
      throw new RangeError(
        `Cannot seal ticket: resumption secret length ${resumptionSecret.length} is not 32`,
      );
    }
    const id = encoder.encode(userId);
    if (id.length < 1 || id.length > MAX_USER_ID_BYTES) {
      throw new RangeError(
        `Cannot seal ticket: user id is ${id.length} bytes, outside 1..${MAX_USER_ID_BYTES}`,
      );
    }
    if (!Number.isSafeInteger(issuedMs) || issuedMs < 0) {
      throw new RangeError(`Cannot seal ticket: issue time ${issuedMs} is not a safe integer >= 0`);
    }
    const w = new Writer(64 + id.length);
    w.bytes(sessionId).bytes(resumptionSecret).u64(BigInt(issuedMs)).u8(id.length).bytes(id);
    const plain = w.finish();
    const nonce = this.#random(TICKET_NONCE_BYTES);
    if (nonce.length !== TICKET_NONCE_BYTES) {
      throw new RangeError(`Cannot seal ticket: random source gave ${nonce.length} bytes, not 12`);
    }
    const aad = keyIdBytes(this.#sealId);
    const ct = chachaSeal(this.#sealKey, nonce, plain, aad);
    wipe(plain);
    const out = new Uint8Array(TICKET_KEY_ID_BYTES + TICKET_NONCE_BYTES + ct.length);
    out.set(aad);
    out.set(nonce, TICKET_KEY_ID_BYTES);
    out.set(ct, TICKET_KEY_ID_BYTES + TICKET_NONCE_BYTES);
    return out;
  }

  /** The state inside `ticket`, or undefined when it is not ours, tampered with or expired. */
  open(ticket: Uint8Array): TicketState | undefined {
    const r = this.inspect(ticket);
    return "state" in r ? r.state : undefined;
  }

  /**
   * Like `open`, but says why a ticket is refused (for the server log only;
   * a client is never told).
   */
  inspect(ticket: Uint8Array): { state: TicketState } | { reason: string } {
    if (!(ticket instanceof Uint8Array)) return { reason: "ticket is not a byte array" };
    if (ticket.length < TICKET_SEALED_MIN_BYTES || ticket.length > TICKET_MAX_BYTES) {
      return {
        reason:
          `ticket length ${ticket.length} is outside ${TICKET_SEALED_MIN_BYTES}..${TICKET_MAX_BYTES}`,
      };
    }
    const aad = ticket.subarray(0, TICKET_KEY_ID_BYTES);
    const id = new Reader(aad).u32();
    const key = this.#keys.get(id);
    const nonce = ticket.subarray(TICKET_KEY_ID_BYTES, TICKET_KEY_ID_BYTES + TICKET_NONCE_BYTES);
    let plain: Uint8Array;
    try {
      plain = chachaOpen(
        key ?? STAND_IN_KEY,
        nonce,
        ticket.subarray(TICKET_KEY_ID_BYTES + TICKET_NONCE_BYTES),
        aad,
      );
    } catch {
      return {
        reason: key === undefined
          ? `ticket key id ${id} is not in the keyring`
          : `ticket does not open under key ${id}`,
      };
    }
    if (key === undefined) return { reason: `ticket key id ${id} is not in the keyring` };
    try {
      const r = new Reader(plain, "ticket");
      const sessionId = r.take(SESSION_ID_BYTES).slice();
      const resumptionSecret = r.take(SECRET_BYTES).slice();
      const issued = r.u64();
      const n = r.u8();
      const userId = decoder.decode(r.take(n));
      r.expectEmpty();
      if (n === 0 || issued > BigInt(Number.MAX_SAFE_INTEGER)) {
        wipe(resumptionSecret);
        return { reason: `ticket under key ${id} is malformed` };
      }
      const issuedMs = Number(issued);
      const age = Math.floor(this.#now()) - issuedMs;
      if (!(Math.abs(age) <= this.#lifetimeMs)) {
        wipe(resumptionSecret);
        return {
          reason: age > 0
            ? `ticket expired ${((age - this.#lifetimeMs) / 1000).toFixed(1)} s ago`
            : `ticket is issued ${(-age / 1000).toFixed(1)} s in the future`,
        };
      }
      return { state: { sessionId, resumptionSecret, userId, issuedMs } };
    } catch {
      return { reason: `ticket under key ${id} is malformed` };
    } finally {
      wipe(plain);
    }
  }
}

/**
 * A fresh ticket key with the given id.
 *
 * @example
 * ```ts
 * import { generateTicketKey } from "./ticket.ts";
 * generateTicketKey(7).key.length; // 32
 * ```
 */
export function generateTicketKey(id: number, random: RandomSource = randomBytes): TicketKey {
  checkKeyId(id, "ticket key");
  const key = random(TICKET_KEY_BYTES);
  if (key.length !== TICKET_KEY_BYTES) {
    throw new RangeError(`Cannot make ticket key: random source gave ${key.length} bytes, not 32`);
  }
  return { id, key };
}

/**
 * Encodes ticket keys for a key file: one `id:key` line per key (decimal id,
 * unpadded base64url key), the sealing key first.
 *
 * @example
 * ```ts
 * import { encodeTicketKeys } from "./ticket.ts";
 * encodeTicketKeys([{ id: 2, key: new Uint8Array(32) }]);
 * // "2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
 * ```
 */
export function encodeTicketKeys(keys: readonly TicketKey[]): string {
  checkKeys(keys);
  return keys.map((k) => `${k.id}:${toBase64Url(k.key)}\n`).join("");
}

const LINE = /^(\d+):(\S+)$/;

/**
 * Decodes a ticket key file: `id:key` lines in order (sealing key first);
 * blank lines and lines starting with `#` are skipped. Throws `ConfigError`
 * with the line and column of the first mistake.
 *
 * @example
 * ```ts
 * import { decodeTicketKeys } from "./ticket.ts";
 * decodeTicketKeys("# rotated 2025-06-01\n2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")[0]!.id; // 2
 * ```
 */
export function decodeTicketKeys(text: string, opts: { file?: string } = {}): TicketKey[] {
  const where = (line: number, column = 1) => ({
    ...(opts.file === undefined ? {} : { file: opts.file }),
    line,
    column,
  });
  const keys: TicketKey[] = [];
  const seen = new Map<number, number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, "");
    const lead = raw.length - raw.trimStart().length;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (m === null) {
      // The line may hold key material: say what is wrong, never echo it.
      throw new ConfigError(
        `Cannot read ticket key: line of ${line.length} characters is not id:key`,
        { ...where(i + 1, lead + 1), hint: "a decimal id, a colon, 43 base64url characters" },
      );
    }
    const id = Number(m[1]);
    if (id > TICKET_KEY_ID_MAX) {
      throw new ConfigError(
        `Cannot read ticket key: id ${
          m[1]!.length > 12 ? `${m[1]!.slice(0, 12)}…` : m[1]
        } exceeds ${TICKET_KEY_ID_MAX}`,
        where(i + 1, lead + 1),
      );
    }
    const first = seen.get(id);
    if (first !== undefined) {
      throw new ConfigError(
        `Cannot read ticket key: id ${id} appears twice`,
        { ...where(i + 1, lead + 1), hint: `first on line ${first}` },
      );
    }
    let key: Uint8Array;
    try {
      key = fromBase64Url(m[2]!);
    } catch {
      key = new Uint8Array(0);
    }
    if (key.length !== TICKET_KEY_BYTES) {
      throw new ConfigError(
        `Cannot read ticket key ${id}: not ${TICKET_KEY_BYTES} bytes of base64url`,
        where(i + 1, lead + m[1]!.length + 2),
      );
    }
    seen.set(id, i + 1);
    keys.push({ id, key });
  }
  if (keys.length === 0) {
    throw new ConfigError("Cannot read ticket keys: the file holds no key", {
      ...(opts.file === undefined ? {} : { file: opts.file }),
      hint: "one id:key line per key, the sealing key first",
    });
  }
  return keys;
}
