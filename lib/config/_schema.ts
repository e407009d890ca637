/**
 * A tiny schema validator over the positioned YAML tree. Each schema turns a
 * node into a typed value or throws a `ConfigError` naming the file, line,
 * column and key path (`users.alice.routes[2]`), with a hint.
 *
 * Values that may be secret (keys, tokens, passwords) are never quoted back.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { fromBase64Url } from "../crypto/mod.ts";
import type { Pos, YamlNode } from "./_yaml.ts";
import { decodeBase32 } from "./base32.ts";
import { parseDuration, parseQuota, parseSize, type Quota } from "./units.ts";
import { type HostPort, parseHostPort } from "../wire/host_port.ts";

/** Where a node sits: file, dotted key path, and the position of its key. */
export interface At {
  file: string;
  path: string;
  keyPos?: Pos;
}

/** Turns a node into a `T` or throws `ConfigError`. */
export interface Schema<T> {
  parse(node: YamlNode, at: At): T;
  /** What it holds, for {@link schemaKeys}: a mapping's keys, a list's items; absent for a value. */
  readonly shape?: Shape;
}

/** A field of an object schema: handles the key being absent. */
export interface Field<T> {
  parse(node: YamlNode | undefined, at: At, parentPos: Pos): T;
  /** The shape of the schema it wraps. */
  readonly shape?: Shape;
}

/** The structure of a schema: which keys a mapping has, what a list or a record holds. */
export type Shape =
  | { kind: "object"; fields: Readonly<Record<string, Shape | undefined>> }
  | { kind: "list"; item: Shape | undefined }
  | { kind: "record"; value: Shape | undefined };

/**
 * Every value key path a schema accepts (a section such as `limits` is not
 * listed, its keys are): `limits.stream_window`, `users.*.routes` (a record's
 * free-form keys are `*`), `endpoints[].server` (a list's items are `[]`).
 *
 * @example
 * ```ts
 * import { integer, object, schemaKeys, section, withDefault } from "./_schema.ts";
 * const s = object({ limits: section(object({ n: withDefault(integer(1, 9), 1) })) });
 * schemaKeys(s); // ["limits.n"]
 * ```
 */
export function schemaKeys(schema: { readonly shape?: Shape }): string[] {
  const out: string[] = [];
  const walk = (shape: Shape | undefined, path: string): void => {
    if (shape === undefined) return;
    if (shape.kind === "list") return walk(shape.item, `${path}[]`);
    if (shape.kind === "record") return walk(shape.value, path === "" ? "*" : `${path}.*`);
    for (const [name, child] of Object.entries(shape.fields)) {
      const p = path === "" ? name : `${path}.${name}`;
      const before = out.length;
      walk(child, p);
      if (out.length === before) out.push(p);
    }
  };
  walk(schema.shape, "");
  return out;
}

/** Builds a `ConfigError` at `pos`. */
export function configError(
  at: At,
  pos: Pos,
  detail: string,
  hint?: string,
): ConfigError {
  return new ConfigError(detail, {
    file: at.file,
    line: pos.line,
    column: pos.column,
    ...(at.path === "" ? {} : { key: at.path }),
    ...(hint === undefined ? {} : { hint }),
  });
}

function nameOf(at: At): string {
  return at.path === "" ? "document" : at.path;
}

/** Describes a node for "got …" without echoing long or secret text. */
function describe(node: YamlNode, secret = false): string {
  if (node.kind === "map") return "a mapping";
  if (node.kind === "seq") return "a list";
  if (node.value === null) return "nothing";
  if (secret) return `a ${typeof node.value}`;
  const s = typeof node.value === "string" ? node.value : String(node.plain ?? node.value);
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

function invalid(node: YamlNode, at: At, expected: string, hint?: string, secret = false) {
  return configError(
    at,
    node.pos,
    `Invalid ${nameOf(at)}: expected ${expected}, got ${describe(node, secret)}`,
    hint,
  );
}

/** Joins a child key onto a path: `a.b`, or `a["x.y"]` for odd keys. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  const part = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (path === "") return part.startsWith("[") ? part : key;
  return part.startsWith("[") ? `${path}${part}` : `${path}.${part}`;
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/**
 * The closest candidate to `word` (case, `-`/`_` and camelCase ignored), or
 * undefined when none is close.
 */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) =>
    s.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase().replace(/-/g, "_");
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(w, norm(c));
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  const limit = Math.max(1, Math.floor(w.length / 3));
  return bestD <= limit ? best : undefined;
}

function hintFor(word: string, candidates: readonly string[]): string {
  const s = suggest(word, candidates);
  return s === undefined
    ? `expected one of: ${candidates.join(", ")}`
    : `did you mean ${JSON.stringify(s)}?`;
}

// ---------------------------------------------------------------- scalars

function scalarText(node: YamlNode, at: At, expected: string, secret = false): string {
  if (node.kind !== "scalar" || node.value === null) {
    throw invalid(node, at, expected, undefined, secret);
  }
  if (typeof node.value === "string") return node.value;
  // A plain scalar that YAML read as a number or boolean: take its text.
  if (node.plain !== undefined) return node.plain;
  return String(node.value);
}

/** A string; `pattern` and `what` restrict and describe it. */
export function string(
  opts: { pattern?: RegExp; what?: string; secret?: boolean; hint?: string } = {},
): Schema<string> {
  const what = opts.what ?? "a string";
  return {
    parse(node, at) {
      const s = scalarText(node, at, what, opts.secret);
      if (s === "" || (opts.pattern !== undefined && !opts.pattern.test(s))) {
        throw invalid(node, at, what, opts.hint, opts.secret);
      }
      return s;
    },
  };
}

/** An integer in [min, max]. */
export function integer(min: number, max: number): Schema<number> {
  return {
    parse(node, at) {
      if (
        node.kind !== "scalar" || typeof node.value !== "number" || !Number.isInteger(node.value)
      ) {
        throw invalid(node, at, `an integer from ${min} to ${max}`);
      }
      if (node.value < min || node.value > max) {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: ${node.value} is out of range ${min}..${max}`,
        );
      }
      return node.value;
    },
  };
}

/** `true` or `false`. */
export function boolean(): Schema<boolean> {
  return {
    parse(node, at) {
      if (node.kind !== "scalar" || typeof node.value !== "boolean") {
        throw invalid(node, at, "true or false");
      }
      return node.value;
    },
  };
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(values: readonly T[]): Schema<T> {
  return {
    parse(node, at) {
      const expected = `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`;
      const s = scalarText(node, at, expected);
      if (!(values as readonly string[]).includes(s)) {
        throw invalid(node, at, expected, hintFor(s, values));
      }
      return s as T;
    },
  };
}

/** How {@link quantity} reads and checks one kind of number. */
interface QuantitySpec {
  /** What is expected, for messages: 'a size such as 65536, ...'. */
  what: string;
  /** Hint for malformed text. */
  hint?: string;
  /** Refuse fractions (a YAML number such as 1.5). */
  integer: boolean;
  /** Reads the text form; undefined when malformed. */
  fromText(text: string): number | undefined;
  /** The range message's value and bounds: "5 bytes is out of range 16..64". */
  range(n: number): string;
}

/** A number given as a YAML number or as text with units; result in [min, max]. */
function quantity(min: number, max: number, spec: QuantitySpec): Schema<number> {
  return {
    parse(node, at) {
      const n = node.kind === "scalar" && typeof node.value === "number"
        ? node.value
        : spec.fromText(scalarText(node, at, spec.what));
      if (n === undefined || (spec.integer && !Number.isInteger(n))) {
        throw invalid(node, at, spec.what, spec.hint);
      }
      if (n < min || n > max) {
        throw configError(at, node.pos, `Invalid ${nameOf(at)}: ${spec.range(n)}`);
      }
      return n;
    },
  };
}

/** A byte count: an integer or a string like "1MiB" / "64kB"; result in [min, max]. */
export function size(min: number, max: number): Schema<number> {
  return quantity(min, max, {
    what: 'a size such as 65536, "64KiB" or "1MiB"',
    hint: "units: B, kB, KiB, MB, MiB, GB, GiB (bits: kbit, Mbit, Gbit)",
    integer: true,
    fromText: (s) => parseSize(s),
    range: (n) => `${n} bytes is out of range ${min}..${max}`,
  });
}

/** A rate in bytes per second: an integer or "10MB/s", "100Mbit/s". */
export function rate(min: number, max: number): Schema<number> {
  return quantity(min, max, {
    what: 'a rate such as "10MB/s", "512KiB/s" or "100Mbit/s"',
    integer: true,
    fromText: (s) => s.endsWith("/s") ? parseSize(s.slice(0, -2)) : undefined,
    range: (n) => `${n} bytes/s is out of range ${min}..${max}`,
  });
}

/**
 * A byte quota over a period: "50GB/30d" (at least `minBytes` per at least
 * `minPeriodS` seconds).
 */
export function quota(minBytes: number, minPeriodS: number): Schema<Quota> {
  const what = 'a quota SIZE/PERIOD such as "50GB/30d" or "1GiB/1h"';
  return {
    parse(node, at) {
      const q = parseQuota(scalarText(node, at, what));
      if (q === undefined) throw invalid(node, at, what, "sizes: MB, GB, GiB…; periods: h, d");
      if (q.bytes < minBytes || q.periodS < minPeriodS) {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: at least ${minBytes} bytes per at least ${minPeriodS}s`,
        );
      }
      return q;
    },
  };
}

/** A duration in seconds: a number of seconds or "30s", "5m", "1h". */
export function duration(minS: number, maxS: number): Schema<number> {
  return quantity(minS, maxS, {
    what: 'a duration such as "30s", "5m" or "1h"',
    hint: "units: ms, s, m, h, d",
    integer: false,
    fromText: parseDuration,
    range: (n) => `${n}s is out of range ${minS}s..${maxS}s`,
  });
}

/** A "host:port" string; port 0 only when `minPort` is 0 (listen addresses). */
export function hostPort(minPort = 1): Schema<HostPort> {
  const what = `HOST:PORT such as "127.0.0.1:1080", "example.com:443" or "[::1]:1080"`;
  return {
    parse(node, at) {
      const hp = parseHostPort(scalarText(node, at, what), minPort);
      if (hp === undefined) {
        throw invalid(
          node,
          at,
          what,
          `the port must be ${minPort}..65535; IPv6 addresses go in brackets`,
        );
      }
      return hp;
    },
  };
}

/** A base64url-encoded byte string of exactly `length` bytes. Never echoed. */
export function key(length: number): Schema<Uint8Array> {
  const what = `${length} bytes of unpadded base64url`;
  return {
    parse(node, at) {
      const s = scalarText(node, at, what, true).trim();
      let bytes: Uint8Array;
      try {
        bytes = fromBase64Url(s);
      } catch {
        throw configError(
          at,
          node.pos,
          `Invalid ${
            nameOf(at)
          }: expected ${what}, got a value with characters outside A-Z a-z 0-9 - _`,
        );
      }
      if (bytes.length !== length) {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: expected ${what}, got ${bytes.length} bytes`,
          "copy the whole value; keys are never truncated",
        );
      }
      return bytes;
    },
  };
}

/** A base64url-encoded secret of `minBytes`..`maxBytes` bytes. Never echoed. */
export function secretBytes(minBytes: number, maxBytes: number): Schema<Uint8Array> {
  const what = `${minBytes}..${maxBytes} bytes of unpadded base64url`;
  return {
    parse(node, at) {
      const s = scalarText(node, at, what, true).trim();
      let bytes: Uint8Array;
      try {
        bytes = fromBase64Url(s);
      } catch {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: expected ${what}, got characters outside A-Z a-z 0-9 - _`,
        );
      }
      if (bytes.length < minBytes || bytes.length > maxBytes) {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: expected ${what}, got ${bytes.length} bytes`,
          "make one with: openssl rand 32 | basenc --base64url | tr -d =",
        );
      }
      return bytes;
    },
  };
}

/** A base32 (RFC 4648) secret of at least `minBytes` bytes. Never echoed. */
export function base32Secret(minBytes: number, maxBytes: number): Schema<Uint8Array> {
  const what = `a base32 secret of ${minBytes}..${maxBytes} bytes`;
  return {
    parse(node, at) {
      const bytes = decodeBase32(scalarText(node, at, what, true));
      if (bytes === undefined) {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: expected ${what}, got characters outside A-Z 2-7`,
        );
      }
      if (bytes.length < minBytes || bytes.length > maxBytes) {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: expected ${what}, got ${bytes.length} bytes`,
        );
      }
      return bytes;
    },
  };
}

/** An RFC 3339 timestamp ("2027-01-01T00:00:00Z") or a date ("2027-01-01", UTC midnight). */
export function timestamp(): Schema<Date> {
  const what = 'a date such as "2027-01-01" or "2027-01-01T00:00:00Z"';
  return {
    parse(node, at) {
      const s = scalarText(node, at, what);
      const ok = /^\d{4}-\d{2}-\d{2}$/.test(s) ||
        /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.test(s);
      const d = new Date(s.replace(" ", "T"));
      if (!ok || Number.isNaN(d.getTime())) {
        throw invalid(node, at, what, "give a time zone, e.g. Z for UTC");
      }
      return d;
    },
  };
}

/** Adds a check to a schema; `check` returns an error detail or undefined. */
export function refine<T>(
  schema: Schema<T>,
  check: (value: T) => { detail: string; hint?: string } | undefined,
): Schema<T> {
  return {
    ...(schema.shape === undefined ? {} : { shape: schema.shape }),
    parse(node, at) {
      const v = schema.parse(node, at);
      const bad = check(v);
      if (bad !== undefined) {
        throw configError(at, node.pos, `Invalid ${nameOf(at)}: ${bad.detail}`, bad.hint);
      }
      return v;
    },
  };
}

// ------------------------------------------------------------ collections

/** A list of `item`; a single scalar is not promoted. */
export function list<T>(
  item: Schema<T>,
  opts: { min?: number; max?: number; unique?: boolean } = {},
): Schema<T[]> {
  const min = opts.min ?? 0;
  const max = opts.max ?? 10_000;
  return {
    shape: { kind: "list", item: item.shape },
    parse(node, at) {
      if (node.kind !== "seq") {
        throw invalid(node, at, "a list", 'write [a, b] or one "- item" per line');
      }
      if (node.items.length < min || node.items.length > max) {
        throw configError(
          at,
          node.pos,
          `Invalid ${nameOf(at)}: expected ${min}..${max} items, got ${node.items.length}`,
        );
      }
      const out: T[] = [];
      const seen = new Set<string>();
      node.items.forEach((n, i) => {
        const v = item.parse(n, { file: at.file, path: childPath(at.path, i), keyPos: n.pos });
        if (opts.unique) {
          const k = String(v);
          if (seen.has(k)) {
            throw configError(
              { ...at, path: childPath(at.path, i) },
              n.pos,
              `Invalid ${childPath(at.path, i)}: ${JSON.stringify(k)} is listed twice`,
            );
          }
          seen.add(k);
        }
        out.push(v);
      });
      return out;
    },
  };
}

type FieldsOut<F> = { [K in keyof F]: F[K] extends Field<infer T> ? T : never };

/**
 * A mapping with a fixed set of keys. Unknown keys are refused with a
 * "did you mean" hint; null (an empty `key:`) counts as an empty mapping.
 */
export function object<F extends Record<string, Field<unknown>>>(fields: F): Schema<FieldsOut<F>> {
  const names = Object.keys(fields);
  const shapes: Record<string, Shape | undefined> = {};
  for (const name of names) shapes[name] = fields[name]!.shape;
  return {
    shape: { kind: "object", fields: shapes },
    parse(node, at) {
      if (node.kind === "scalar" && node.value === null) {
        node = { kind: "map", entries: [], pos: node.pos };
      }
      if (node.kind !== "map") throw invalid(node, at, "a mapping of keys to values");
      const byKey = new Map(node.entries.map((e) => [e.key, e]));
      for (const e of node.entries) {
        if (!Object.hasOwn(fields, e.key)) {
          throw configError(
            { ...at, path: childPath(at.path, e.key) },
            e.keyPos,
            `Unknown key ${JSON.stringify(childPath(at.path, e.key))}`,
            hintFor(e.key, names),
          );
        }
      }
      const out: Record<string, unknown> = {};
      const parentPos = at.keyPos ?? node.pos;
      for (const name of names) {
        const e = byKey.get(name);
        const v = fields[name]!.parse(e?.value, {
          file: at.file,
          path: childPath(at.path, name),
          ...(e === undefined ? {} : { keyPos: e.keyPos }),
        }, parentPos);
        if (v !== undefined) out[name] = v;
      }
      return out as FieldsOut<F>;
    },
  };
}

/** A mapping from free-form keys (checked by `keyPattern`) to `value`. */
export function record<T>(
  value: Schema<T>,
  opts: { keyPattern?: RegExp; keyWhat?: string } = {},
): Schema<Map<string, T>> {
  return {
    shape: { kind: "record", value: value.shape },
    parse(node, at) {
      if (node.kind === "scalar" && node.value === null) return new Map();
      if (node.kind !== "map") throw invalid(node, at, "a mapping of names to entries");
      const out = new Map<string, T>();
      for (const e of node.entries) {
        const path = childPath(at.path, e.key);
        if (opts.keyPattern !== undefined && !opts.keyPattern.test(e.key)) {
          throw configError(
            { ...at, path },
            e.keyPos,
            `Invalid name ${JSON.stringify(e.key)} in ${nameOf(at)}: expected ${
              opts.keyWhat ?? "a name"
            }`,
          );
        }
        out.set(e.key, value.parse(e.value, { file: at.file, path, keyPos: e.keyPos }));
      }
      return out;
    },
  };
}

// ------------------------------------------------------------------ fields

/** A key that must be present. */
export function required<T>(schema: Schema<T>): Field<T> {
  return {
    ...(schema.shape === undefined ? {} : { shape: schema.shape }),
    parse(node, at, parentPos) {
      if (node === undefined) {
        throw configError(at, parentPos, `Missing required key ${JSON.stringify(at.path)}`);
      }
      return schema.parse(node, at);
    },
  };
}

/** A key that may be absent (or empty); absent gives undefined. */
export function optional<T>(schema: Schema<T>): Field<T | undefined> {
  return {
    ...(schema.shape === undefined ? {} : { shape: schema.shape }),
    parse(node, at) {
      if (node === undefined || (node.kind === "scalar" && node.value === null)) return undefined;
      return schema.parse(node, at);
    },
  };
}

/** A key with a default used when it is absent. */
export function withDefault<T>(schema: Schema<T>, fallback: T): Field<T> {
  return {
    ...(schema.shape === undefined ? {} : { shape: schema.shape }),
    parse(node, at) {
      if (node === undefined) return fallback;
      return schema.parse(node, at);
    },
  };
}

/** An object field whose absence means "all defaults" (parses an empty mapping). */
export function section<T>(schema: Schema<T>): Field<T> {
  return {
    ...(schema.shape === undefined ? {} : { shape: schema.shape }),
    parse(node, at, parentPos) {
      return schema.parse(node ?? { kind: "map", entries: [], pos: parentPos }, at);
    },
  };
}

/** Finds the position of `path` in the tree: the value if present, else the nearest ancestor key. */
export function locate(root: YamlNode, path: (string | number)[]): Pos {
  let node: YamlNode = root;
  let pos = root.pos;
  for (const step of path) {
    if (typeof step === "number" && node.kind === "seq" && node.items[step] !== undefined) {
      node = node.items[step]!;
      pos = node.pos;
    } else if (typeof step === "string" && node.kind === "map") {
      const e = node.entries.find((x) => x.key === step);
      if (e === undefined) return pos;
      node = e.value;
      pos = e.value.pos;
    } else {
      return pos;
    }
  }
  return pos;
}

/** A `Map` that refuses changes once built, so a parsed config stays as parsed. */
export class FrozenMap<K, V> extends Map<K, V> {
  #frozen = false;
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries) super.set(k, v);
    this.#frozen = true;
  }
  #refuse(): never {
    throw new TypeError("Cannot modify a parsed configuration map");
  }
  override set(key: K, value: V): this {
    if (this.#frozen) this.#refuse();
    return super.set(key, value);
  }
  override delete(key: K): boolean {
    if (this.#frozen) this.#refuse();
    return super.delete(key);
  }
  override clear(): void {
    if (this.#frozen) this.#refuse();
    super.clear();
  }
}

/**
 * Freezes plain objects and arrays deeply; maps held by them become
 * {@link FrozenMap}s (values frozen too). Typed arrays and dates are left as
 * they are.
 */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array || value instanceof Date) return value;
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v);
    return value;
  }
  const obj = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(obj)) {
    if (v instanceof Map && !(v instanceof FrozenMap)) obj[k] = new FrozenMap(v);
    deepFreeze(obj[k]);
  }
  return Object.freeze(value);
}
