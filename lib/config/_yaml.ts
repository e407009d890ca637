/**
 * The only module that knows the YAML library. It turns text into a small
 * positioned tree ({@link YamlNode}) and offers two comment-preserving edits.
 * Swapping the parser (e.g. to `@std/yaml`) changes this file alone.
 *
 * @module
 */
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node as YNode,
  parseDocument,
  Scalar,
  YAMLMap,
} from "yaml";
import { ConfigError } from "../errors.ts";

/** A 1-based line and column. */
export interface Pos {
  line: number;
  column: number;
}

/** One `key: value` of a mapping; `keyPos` is where the key starts. */
export interface YamlEntry {
  key: string;
  keyPos: Pos;
  value: YamlNode;
}

/** A parsed YAML value with its position. */
export type YamlNode =
  | { kind: "map"; entries: YamlEntry[]; pos: Pos }
  | { kind: "seq"; items: YamlNode[]; pos: Pos }
  | {
    kind: "scalar";
    /** The resolved value (YAML 1.2 core schema). */
    value: string | number | boolean | null;
    /** The source text of a plain (unquoted) scalar, e.g. "0123" for 123. */
    plain: string | undefined;
    pos: Pos;
  };

/** Upper bound on nodes reached through aliases, so expansion cannot blow up. */
const MAX_ALIASED_NODES = 10_000;
/**
 * Upper bound on aliases in one file: the library finds each alias's anchor
 * by walking the document, so many aliases would cost time quadratic in the
 * file's size (found by `deno task fuzz`).
 */
export const MAX_ALIASES = 100;
const MAX_DEPTH = 64;

function firstLine(message: string): string {
  return message.replace(/ at line \d+, column \d+:[\s\S]*$/, "").split("\n")[0]!;
}

function loadDocument(text: string, file: string): { doc: Document.Parsed; lc: LineCounter } {
  const lc = new LineCounter();
  // prettyErrors off: the library would format context for every error (thousands in a bad
  // file; 3-5x the parse time, found by `deno task fuzz`); the position comes from `lc`.
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err !== undefined) {
    const lp = err.linePos?.[0] ?? lc.linePos(err.pos[0]);
    throw new ConfigError(`Cannot parse YAML: ${firstLine(err.message)}`, {
      file,
      line: lp.line,
      column: lp.col,
    });
  }
  return { doc, lc };
}

/**
 * Parses one YAML document into a positioned tree. Syntax errors, duplicate
 * keys and several documents in one file become a `ConfigError` at the
 * parser's position. An empty document is a null scalar at 1:1.
 *
 * @example
 * ```ts
 * import { parseYaml } from "./_yaml.ts";
 * const root = parseYaml("listen: 0.0.0.0:8443\n", "server.yml");
 * console.log(root.kind); // "map"
 * ```
 */
export function parseYaml(text: string, file: string): YamlNode {
  const { doc, lc } = loadDocument(text, file);
  let budget = MAX_ALIASED_NODES;
  let aliases = 0;
  const posAt = (n: YNode | null | undefined, fallback: Pos): Pos => {
    const off = n?.range?.[0];
    if (off === undefined) return fallback;
    const p = lc.linePos(off);
    return { line: p.line, column: p.col };
  };
  const tooDeep = (pos: Pos): ConfigError =>
    new ConfigError("Cannot parse YAML: nesting or alias expansion too large", {
      file,
      line: pos.line,
      column: pos.column,
    });
  const keyText = (k: unknown, pos: Pos): string => {
    if (isScalar(k)) {
      if (typeof k.value === "string") return k.value;
      if (k.source !== undefined && k.type === Scalar.PLAIN) return k.source;
      if (k.value === null) return "";
    }
    throw new ConfigError("Invalid key: keys must be plain strings", {
      file,
      line: pos.line,
      column: pos.column,
    });
  };
  const convert = (n: unknown, fallback: Pos, depth: number, aliased = false): YamlNode => {
    if ((aliased && --budget < 0) || depth > MAX_DEPTH) throw tooDeep(fallback);
    if (isAlias(n)) {
      const at = posAt(n, fallback);
      if (++aliases > MAX_ALIASES) {
        throw new ConfigError(
          `Cannot parse YAML: alias expansion too large: more than ${MAX_ALIASES} aliases`,
          {
            file,
            line: at.line,
            column: at.column,
          },
        );
      }
      return convert(n.resolve(doc), at, depth + 1, true);
    }
    const pos = posAt(n as YNode | null, fallback);
    if (isMap(n)) {
      const entries: YamlEntry[] = [];
      for (const pair of n.items) {
        if (!isPair(pair)) continue;
        const keyPos = posAt(pair.key as YNode | null, pos);
        const key = keyText(pair.key, keyPos);
        const value = pair.value === null
          ? { kind: "scalar" as const, value: null, plain: undefined, pos: keyPos }
          : convert(pair.value, keyPos, depth + 1, aliased);
        entries.push({ key, keyPos, value });
      }
      return { kind: "map", entries, pos };
    }
    if (isSeq(n)) {
      return { kind: "seq", items: n.items.map((i) => convert(i, pos, depth + 1, aliased)), pos };
    }
    if (isScalar(n) || n === null || n === undefined) {
      const v: unknown = isScalar(n) ? n.value : null;
      const plain = isScalar(n) && n.type === Scalar.PLAIN ? n.source : undefined;
      if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") {
        return { kind: "scalar", value: v, plain, pos };
      }
      if (typeof v === "bigint") return { kind: "scalar", value: Number(v), plain, pos };
    }
    throw new ConfigError("Cannot parse YAML: unsupported value type", {
      file,
      line: pos.line,
      column: pos.column,
    });
  };
  return convert(doc.contents, { line: 1, column: 1 }, 0);
}

/**
 * Sets `path` (mapping keys) to `value` and returns the new text, keeping
 * comments and the order of other entries. Intermediate null or empty
 * mappings become block mappings.
 *
 * @example
 * ```ts
 * import { setYamlEntry } from "./_yaml.ts";
 * setYamlEntry("# users\nusers: {}\n", "users.yml", ["users", "bob"], { routes: ["*"] });
 * ```
 */
export function setYamlEntry(
  text: string,
  file: string,
  path: string[],
  value: unknown,
): string {
  const { doc } = loadDocument(text, file);
  const top: unknown = doc.contents;
  let map: YAMLMap;
  if (isMap(top)) map = top;
  else {
    map = new YAMLMap();
    doc.contents = map as unknown as typeof doc.contents;
  }
  for (const key of path.slice(0, -1)) {
    const next: unknown = map.get(key, true);
    let child: YAMLMap;
    if (isMap(next)) child = next;
    else {
      child = new YAMLMap();
      map.set(key, child);
    }
    if (child.items.length === 0) child.flow = false;
    map = child;
  }
  const node = doc.createNode(value) as YNode;
  const last = path[path.length - 1]!;
  map.set(doc.createNode(last), node);
  return doc.toString({ lineWidth: 0 });
}

/**
 * Deletes the entry at `path` and returns the new text (comments kept).
 * Returns `undefined` when there is no such entry.
 */
export function deleteYamlEntry(text: string, file: string, path: string[]): string | undefined {
  const { doc } = loadDocument(text, file);
  if (!doc.hasIn(path)) return undefined;
  doc.deleteIn(path);
  return doc.toString({ lineWidth: 0 });
}

/** One change for {@link editYamlEntries}: set `path` to `value`, or delete it (`undefined`). */
export interface YamlEdit {
  path: string[];
  value: unknown;
}

/**
 * Applies several edits to existing entries and returns the new text,
 * keeping comments and everything else. Each `path` must name an entry in an
 * existing mapping (its last key may be new).
 *
 * @example
 * ```ts
 * import { editYamlEntries } from "./_yaml.ts";
 * editYamlEntries("users:\n  bob: {routes: [\"*\"]} # bob\n", "users.yml", [
 *   { path: ["users", "bob", "disabled"], value: true },
 * ]);
 * ```
 */
export function editYamlEntries(text: string, file: string, edits: YamlEdit[]): string {
  const { doc } = loadDocument(text, file);
  for (const e of edits) {
    if (e.value === undefined) {
      if (doc.hasIn(e.path)) doc.deleteIn(e.path);
    } else doc.setIn(e.path, doc.createNode(e.value));
  }
  return doc.toString({ lineWidth: 0 });
}
