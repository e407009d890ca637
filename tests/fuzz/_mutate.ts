/**
 * The fuzzer's mutation engine: a seeded PRNG and byte- and text-level
 * mutators in the style of libFuzzer's (bit flips, interesting integers at
 * any offset in both byte orders, inserts, deletes, duplicated and spliced
 * ranges, truncation), plus, for text formats, line-level edits and a
 * dictionary of tokens the format gives meaning to (YAML anchors and
 * aliases, config keys, units). Deterministic for a given seed.
 *
 * @module
 */

/** A small, fast, seeded PRNG (xorshift128+ folded to 32 bits). */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    // splitmix32 to spread a small seed over the state.
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next() | 1;
    this.#b = next();
    this.#c = next();
    this.#d = next();
  }

  /** A uniform 32-bit unsigned integer (xoshiro128**). */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.#b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#b << 9) >>> 0;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return r;
  }

  /** An integer in `0..n-1` (`n` ≥ 1). */
  below(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }

  /** True with probability `1/n`. */
  oneIn(n: number): boolean {
    return this.below(n) === 0;
  }

  /** One element of `list` (non-empty). */
  pick<T>(list: readonly T[]): T {
    return list[this.below(list.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Integers that sit on the edges parsers check (lengths, counts, signs). */
const INTERESTING: readonly number[] = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0xffffff,
  0x1000000,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];

/** The largest input a mutator makes (bigger inputs only slow the run down). */
export const MAX_INPUT_BYTES = 64 * 1024;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function writeInt(b: Uint8Array, at: number, width: number, v: number, little: boolean): void {
  for (let i = 0; i < width && at + i < b.length; i++) {
    const shift = little ? i : width - 1 - i;
    b[at + i] = Math.floor(v / 2 ** (8 * shift)) & 0xff;
  }
}

/** One byte-level mutation of `input` (a new array; `input` is not changed). */
export function mutateBytes(
  rng: Rng,
  input: Uint8Array,
  corpus: readonly Uint8Array[],
): Uint8Array {
  const b = input.slice();
  const at = () => rng.below(Math.max(1, b.length));
  switch (rng.below(12)) {
    case 0: // flip one bit
      if (b.length > 0) b[at()]! ^= 1 << rng.below(8);
      return b;
    case 1: // a random byte
      if (b.length > 0) b[at()] = rng.u32() & 0xff;
      return b;
    case 2: { // an interesting integer, 1..4 bytes, either byte order
      if (b.length === 0) return b;
      writeInt(b, at(), rng.pick([1, 2, 3, 4]), rng.pick(INTERESTING), rng.oneIn(2));
      return b;
    }
    case 3: { // add or subtract a little from a byte (length fields off by a few)
      if (b.length === 0) return b;
      const i = at();
      b[i] = (b[i]! + rng.pick([1, 2, 3, 4, 16, -1, -2, -3, -4, -16])) & 0xff;
      return b;
    }
    case 4: { // delete a range
      const i = at();
      return concat(b.subarray(0, i), b.subarray(i + 1 + rng.below(Math.min(64, b.length))));
    }
    case 5: { // insert random bytes
      const i = rng.below(b.length + 1);
      return concat(b.subarray(0, i), rng.bytes(1 + rng.below(32)), b.subarray(i));
    }
    case 6: { // duplicate a range in place
      const i = at();
      const r = b.subarray(i, i + 1 + rng.below(256));
      return concat(b.subarray(0, i), r, r, b.subarray(i + r.length));
    }
    case 7: // truncate
      return b.subarray(0, rng.below(b.length + 1));
    case 8: { // append random bytes or a repeated byte
      const n = 1 + rng.below(rng.oneIn(8) ? 4096 : 64);
      const tail = rng.oneIn(2) ? rng.bytes(n) : new Uint8Array(n).fill(rng.pick([0, 0xff, 0x41]));
      return concat(b, tail);
    }
    case 9: { // splice with another corpus entry
      const other = rng.pick(corpus);
      return concat(b.subarray(0, at()), other.subarray(rng.below(other.length + 1)));
    }
    case 10: { // overwrite a range with a copy of another place
      if (b.length < 2) return b;
      const from = at(), to = at(), n = 1 + rng.below(Math.min(32, b.length));
      b.copyWithin(to, from, from + n);
      return b;
    }
    default: { // fill a range with one value
      const i = at();
      b.fill(rng.pick([0, 0xff, 0x20, 0x0a]), i, i + 1 + rng.below(16));
      return b;
    }
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One line- or token-level mutation of UTF-8 text (config files, links). */
export function mutateText(
  rng: Rng,
  input: Uint8Array,
  dictionary: readonly string[],
): Uint8Array {
  const lines = dec.decode(input).split("\n");
  const i = rng.below(lines.length);
  switch (rng.below(8)) {
    case 0: // delete a line
      lines.splice(i, 1);
      break;
    case 1: // duplicate a line
      lines.splice(i, 0, lines[i] ?? "");
      break;
    case 2: { // swap two lines
      const j = rng.below(lines.length);
      [lines[i], lines[j]] = [lines[j] ?? "", lines[i] ?? ""];
      break;
    }
    case 3: // a dictionary token inserted somewhere on a line
    {
      const line = lines[i] ?? "";
      const at = rng.below(line.length + 1);
      lines[i] = line.slice(0, at) + rng.pick(dictionary) + line.slice(at);
      break;
    }
    case 4: { // replace a value after "key:" with a dictionary token
      const line = lines[i] ?? "";
      const colon = line.indexOf(":");
      lines[i] = colon < 0
        ? rng.pick(dictionary)
        : `${line.slice(0, colon + 1)} ${rng.pick(dictionary)}`;
      break;
    }
    case 5: // re-indent a line
      lines[i] = " ".repeat(rng.below(6)) + (lines[i] ?? "").trimStart();
      break;
    case 6: // a new line made of a dictionary key and value
      lines.splice(i, 0, `${rng.pick(dictionary)}: ${rng.pick(dictionary)}`);
      break;
    default: // a very long line
      lines[i] = (lines[i] ?? "") + rng.pick(dictionary).repeat(1 + rng.below(2000));
  }
  return enc.encode(lines.join("\n"));
}

/**
 * Split points for a push-based decoder, derived from the input itself so a
 * replay of the same input feeds the same chunks: mostly whole, sometimes
 * one byte at a time, sometimes in chunks of a size taken from the input.
 */
export function chunksOf(input: Uint8Array): Uint8Array[] {
  let h = 0x811c9dc5;
  for (let i = 0; i < Math.min(input.length, 64); i++) h = Math.imul(h ^ input[i]!, 0x01000193);
  h = (h ^ input.length) >>> 0;
  const mode = h % 4;
  if (mode <= 1 || input.length < 2) return [input];
  const out: Uint8Array[] = [];
  const size = mode === 2 ? 1 : 1 + ((h >>> 8) % 97);
  for (let at = 0; at < input.length; at += size) out.push(input.subarray(at, at + size));
  return out;
}

/** Makes the next input from `corpus`: one to four stacked mutations of a random entry. */
export function nextInput(
  rng: Rng,
  corpus: readonly Uint8Array[],
  dictionary: readonly string[] | undefined,
  maxBytes = MAX_INPUT_BYTES,
): Uint8Array {
  let b = rng.pick(corpus);
  const n = 1 + rng.below(4);
  for (let k = 0; k < n; k++) {
    b = dictionary !== undefined && rng.oneIn(2)
      ? mutateText(rng, b, dictionary)
      : mutateBytes(rng, b, corpus);
  }
  return b.length > maxBytes ? b.subarray(0, maxBytes) : b;
}
