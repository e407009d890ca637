/**
 * Byte reader and writer for wire formats: bounds-checked, big-endian,
 * no per-field socket reads. Trailing bytes are an error (`expectEmpty`).
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";

/**
 * Reads fields from a byte array; every read checks the bounds first.
 *
 * @example
 * ```ts
 * import { Reader } from "./bytes.ts";
 * const r = new Reader(new Uint8Array([1, 0, 2]), "example");
 * r.u8(); // 1
 * r.u16(); // 2
 * r.expectEmpty();
 * ```
 */
export class Reader {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;
  #what: string;

  constructor(buf: Uint8Array, what = "message") {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#what = what;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  /** Current offset from the start. */
  get offset(): number {
    return this.#pos;
  }

  #need(n: number): void {
    if (this.#pos + n > this.#buf.length) {
      throw new ProtocolError(
        "TRUNCATED",
        `Cannot decode ${this.#what}: needs ${n} more bytes at offset ${this.#pos}, has ${this.remaining}`,
      );
    }
  }

  u8(): number {
    this.#need(1);
    return this.#buf[this.#pos++]!;
  }

  u16(): number {
    this.#need(2);
    const v = this.#view.getUint16(this.#pos);
    this.#pos += 2;
    return v;
  }

  u24(): number {
    this.#need(3);
    const v = (this.#buf[this.#pos]! << 16) | (this.#buf[this.#pos + 1]! << 8) |
      this.#buf[this.#pos + 2]!;
    this.#pos += 3;
    return v;
  }

  u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return v;
  }

  u64(): bigint {
    this.#need(8);
    const v = this.#view.getBigUint64(this.#pos);
    this.#pos += 8;
    return v;
  }

  /** A view (not a copy) of the next `n` bytes. */
  take(n: number): Uint8Array {
    this.#need(n);
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** A view of everything left. */
  rest(): Uint8Array {
    const out = this.#buf.subarray(this.#pos);
    this.#pos = this.#buf.length;
    return out;
  }

  /** Throws if any byte is left unread. */
  expectEmpty(): void {
    if (this.remaining !== 0) {
      throw new ProtocolError(
        "MALFORMED",
        `Cannot decode ${this.#what}: ${this.remaining} trailing bytes`,
      );
    }
  }
}

/**
 * Builds a byte array field by field, growing as needed.
 *
 * @example
 * ```ts
 * import { Writer } from "./bytes.ts";
 * const w = new Writer();
 * w.u8(1).u16(2).bytes(new Uint8Array([3]));
 * w.finish(); // Uint8Array [1, 0, 2, 3]
 * ```
 */
export class Writer {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  /** An empty writer; `capacity` bytes are allocated up front (it grows as needed). */
  constructor(capacity = 64) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #grow(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** Appends one byte. */
  u8(v: number): this {
    this.#grow(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  /** Appends a big-endian u16. */
  u16(v: number): this {
    this.#grow(2);
    this.#view.setUint16(this.#len, v);
    this.#len += 2;
    return this;
  }

  /** Appends a big-endian u24. */
  u24(v: number): this {
    this.#grow(3);
    this.#buf[this.#len++] = (v >>> 16) & 0xff;
    this.#buf[this.#len++] = (v >>> 8) & 0xff;
    this.#buf[this.#len++] = v & 0xff;
    return this;
  }

  /** Appends a big-endian u32. */
  u32(v: number): this {
    this.#grow(4);
    this.#view.setUint32(this.#len, v);
    this.#len += 4;
    return this;
  }

  /** Appends a big-endian u64. */
  u64(v: bigint): this {
    this.#grow(8);
    this.#view.setBigUint64(this.#len, v);
    this.#len += 8;
    return this;
  }

  /** Appends `b` (copied). */
  bytes(b: Uint8Array): this {
    this.#grow(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** The bytes written so far (a view of the internal buffer). */
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

/** Concatenates byte arrays into one new array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
