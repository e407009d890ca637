/**
 * The layers of `lib/`, one concern per folder: each folder may import only
 * the folders listed for it in `ALLOWED` below, plus the shared
 * `lib/errors.ts`. This test reads the import and export statements of
 * every file under `lib/` (comments and strings skipped, so JSDoc examples
 * do not count) and fails naming the file, the import and the rule it
 * breaks.
 *
 * Also checked:
 * - a `_private.ts` file of `lib/F/` is imported only by files of `lib/F/`
 *   and by the white-box tests of the same folder, `tests/F/` (as the record
 *   and api tests do); nothing else (other tests, `bench/`, `scripts/`,
 *   `examples/`, `mod.ts`, `main.ts`) reaches into a folder's private
 *   files (helpers private to `tests/` are not covered);
 * - `lib/` never imports the root `mod.ts`/`main.ts`, `tests/` or `bench/`;
 * - `examples/` import only the entry points `deno.json` exports;
 * - the table itself has no cycle between folders, so the layers stack.
 *
 * The table is per folder, not per file: a new file in `lib/tunnel/` may
 * import whatever `tunnel` may. A new folder must be added to the table.
 *
 * @module
 */
import { strict as assert } from "node:assert";

/**
 * Which other `lib/` folders each folder may import (besides itself and
 * `lib/errors.ts`). Lowest layers first.
 */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  // Byte reader/writer and the HOST:PORT text form.
  wire: [],
  // Primitives over @noble; no wire formats.
  crypto: [],
  // Logger and event hub: imported by the layers above, imports nothing.
  observe: [],
  // Private CA and certificates (over @peculiar/x509).
  pki: [],
  // WebSocket framing and the PROXY v2 header: pure byte formats a front speaks.
  fronting: [],
  // Sockets behind a small duplex interface; `fronting` for the ws transports' framing.
  transport: ["wire", "fronting"],
  handshake: ["wire", "crypto"],
  // `handshake` only for the negotiated AEAD's type (AeadId).
  record: ["wire", "crypto", "handshake"],
  mux: ["wire"],
  // The record backend over the system's libcrypto (FFI); `record` for its interface,
  // `crypto` for the curve backend's (X25519 and Ed25519 signing through the same library).
  openssl: ["record", "crypto"],
  // Per-user byte and session counts and where they persist.
  accounting: ["observe"],
  // State a fleet of servers shares through Redis: replay cache, leases, kicks, counters.
  fleet: ["accounting"],
  // The admin HTTP endpoint: /metrics, /status, /kick.
  admin: ["accounting", "config", "crypto", "observe"],
  // Resume, release and re-key; `record` for the re-key mix-in size.
  session: ["wire", "crypto", "mux", "record"],
  // SOCKS5 and HTTP CONNECT messages; `crypto` for constant-time credentials.
  socks5: ["wire", "crypto"],
  // `mux` for the window and stream-count bounds it owns (MUX_LIMITS): one source.
  config: ["wire", "crypto", "mux"],
  // Server directory and users: init, user add/list/remove; `fleet` for users kept in the
  // fleet's Redis (`store.users`).
  provision: ["wire", "crypto", "config", "handshake", "pki", "fleet"],
  // The I/O layer: links, sessions, server and client.
  tunnel: [
    "wire",
    "crypto",
    "handshake",
    "record",
    "mux",
    "session",
    "socks5",
    "transport",
    "config",
    "observe",
    "accounting",
    "admin",
    "fleet",
  ],
  // The public API (mod.ts) over the tunnel layer.
  api: ["wire", "socks5", "transport", "config", "observe", "tunnel"],
  // `nitrosocks bench`'s engine: a local pair made with provision.
  bench: ["socks5", "transport", "config", "observe", "tunnel", "provision"],
  // The command line: argument parsing and printing over any folder; nothing imports it.
  cli: [
    "wire",
    "crypto",
    "observe",
    "pki",
    "transport",
    "handshake",
    "record",
    "openssl",
    "mux",
    "session",
    "socks5",
    "config",
    "accounting",
    "admin",
    "fleet",
    "provision",
    "tunnel",
    "api",
    "bench",
  ],
};

/** Files under `lib/` shared by every folder. */
const SHARED = new Set(["lib/errors.ts"]);

// ---------------------------------------------------------------------------
// Reading import specifiers.

type Token = { kind: "word" | "string" | "punct"; text: string };

const WORD = /[A-Za-z0-9_$]/;
/** After these words a "/" starts a regular expression, not a division. */
const REGEX_AFTER = new Set([
  "return",
  "typeof",
  "case",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "else",
  "do",
  "yield",
  "await",
]);

/**
 * Splits TypeScript source into words, string literals and punctuation,
 * dropping comments, whitespace, regular expressions and template literal
 * text (a `${...}` inside a template is tokenized too). Enough to find
 * import statements; not a parser.
 */
function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  function readString(quote: string): string {
    let s = "";
    i++;
    while (i < src.length && src[i] !== quote) {
      if (src[i] === "\\") i++;
      s += src[i];
      i++;
    }
    i++;
    return s;
  }
  function skipRegex(): void {
    i++;
    let inClass = false;
    while (i < src.length) {
      const c = src[i];
      if (c === "\\") i += 2;
      else if (c === "[") (inClass = true), i++;
      else if (c === "]") (inClass = false), i++;
      else if (c === "/" && !inClass) break;
      else if (c === "\n") break;
      else i++;
    }
    i++;
    while (i < src.length && WORD.test(src[i]!)) i++; // flags
  }
  function regexAllowed(): boolean {
    const prev = out.at(-1);
    if (prev === undefined) return true;
    if (prev.kind === "word") return REGEX_AFTER.has(prev.text);
    if (prev.kind === "string") return false;
    return !/^[)\]}]$/.test(prev.text);
  }
  // Template literal: text is skipped; `${` ... `}` is tokenized as code.
  const braces: ("code" | "template")[] = [];
  function skipTemplateText(): void {
    while (i < src.length) {
      const c = src[i];
      if (c === "\\") i += 2;
      else if (c === "`") {
        i++;
        return;
      } else if (c === "$" && src[i + 1] === "{") {
        i += 2;
        braces.push("template");
        return;
      } else i++;
    }
  }
  while (i < src.length) {
    const c = src[i]!;
    const next = src[i + 1];
    if (/\s/.test(c)) i++;
    else if (c === "/" && next === "/") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2);
      i = end === -1 ? src.length : end + 2;
    } else if (c === "/" && regexAllowed()) skipRegex();
    else if (c === '"' || c === "'") out.push({ kind: "string", text: readString(c) });
    else if (c === "`") {
      i++;
      skipTemplateText();
      out.push({ kind: "string", text: "`" });
    } else if (WORD.test(c)) {
      const start = i;
      while (i < src.length && WORD.test(src[i]!)) i++;
      out.push({ kind: "word", text: src.slice(start, i) });
    } else if (c === "{") {
      braces.push("code");
      out.push({ kind: "punct", text: c });
      i++;
    } else if (c === "}") {
      i++;
      if (braces.pop() === "template") skipTemplateText();
      else out.push({ kind: "punct", text: c });
    } else {
      out.push({ kind: "punct", text: c });
      i++;
    }
  }
  return out;
}

/** The module specifiers of every import, re-export and dynamic import in `src`. */
function importSpecifiers(src: string): string[] {
  const t = tokenize(src);
  const specs: string[] = [];
  const at = (k: number) => t[k];
  /** From `k`, skips an import/export clause to `from "x"`; returns x. */
  function fromClause(k: number): string | undefined {
    for (; k < t.length; k++) {
      const tok = at(k)!;
      if (tok.kind === "string") return undefined;
      if (tok.kind === "punct" && tok.text === ";") return undefined;
      if (tok.kind === "word" && tok.text === "from" && at(k + 1)?.kind === "string") {
        // `import from from "x"` reads the second `from`; fine for our code.
        return at(k + 1)!.text;
      }
      if (tok.kind === "punct" && !/^[{},*]$/.test(tok.text)) return undefined;
    }
    return undefined;
  }
  for (let k = 0; k < t.length; k++) {
    const tok = t[k]!;
    if (tok.kind !== "word") continue;
    const prev = at(k - 1);
    if (prev?.kind === "punct" && prev.text === ".") continue; // x.import
    if (tok.text === "import") {
      const n = at(k + 1);
      if (n?.kind === "string") specs.push(n.text);
      else if (n?.kind === "punct" && n.text === "(") {
        const s = at(k + 2);
        if (s?.kind === "string" && s.text !== "`") specs.push(s.text);
      } else if (n?.kind === "punct" && n.text === ".") continue; // import.meta
      else {
        const s = fromClause(k + 1);
        if (s !== undefined) specs.push(s);
      }
    } else if (tok.text === "export") {
      const n = at(k + 1);
      const starts = n?.kind === "punct" ? n.text === "{" || n.text === "*" : n?.text === "type";
      if (!starts) continue;
      const s = fromClause(k + 1);
      if (s !== undefined) specs.push(s);
    }
  }
  return specs;
}

// ---------------------------------------------------------------------------
// Walking the repository.

async function* tsFiles(dir: string): AsyncGenerator<string> {
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* tsFiles(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

/** `a/b/../c/./d.ts` → `a/c/d.ts`, relative to the repository root. */
function resolve(fromFile: string, spec: string): string {
  const parts = fromFile.split("/").slice(0, -1);
  for (const p of spec.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

/** The `lib/` folder of a path (`lib/tunnel/x.ts` → "tunnel"), or undefined. */
function libFolder(path: string): string | undefined {
  const m = /^lib\/([^/]+)\//.exec(path);
  return m?.[1];
}

/** One import: which file, what it imports (as written and resolved). */
interface Edge {
  file: string;
  spec: string;
  target: string;
}

async function edges(dirs: string[]): Promise<Edge[]> {
  const out: Edge[] = [];
  for (const dir of dirs) {
    for await (const file of tsFiles(dir)) {
      for (const spec of importSpecifiers(await Deno.readTextFile(file))) {
        if (!spec.startsWith(".")) continue; // npm:, node:, jsr: and mapped packages
        out.push({ file, spec, target: resolve(file, spec) });
      }
    }
  }
  return out;
}

/** The rule a `lib/` import breaks, or undefined when it is allowed. */
function libViolation(e: Edge, allowed: typeof ALLOWED): string | undefined {
  const from = libFolder(e.file);
  if (from === undefined) return undefined; // lib/errors.ts imports nothing relevant
  if (!e.target.startsWith("lib/")) {
    return `lib/ imports only lib/ files (never mod.ts, main.ts, tests/ or bench/)`;
  }
  if (SHARED.has(e.target)) return undefined;
  const to = libFolder(e.target);
  if (to === undefined) return `"${e.target}" is not in a lib/ folder nor shared`;
  const rule = allowed[from];
  if (rule === undefined) return `lib/${from}/ is not in the table of tests/layering_test.ts`;
  if (to === from) return undefined;
  if (!(to in allowed)) return `lib/${to}/ is not in the table of tests/layering_test.ts`;
  if (!rule.includes(to)) {
    return `lib/${from}/ may import only ${
      rule.length === 0 ? "nothing" : rule.map((f) => `lib/${f}/`).join(", ")
    } (and lib/errors.ts)`;
  }
  return undefined;
}

/** The rule an import of a `_private.ts` file breaks, or undefined. */
function privateViolation(e: Edge): string | undefined {
  const name = e.target.split("/").at(-1)!;
  const to = libFolder(e.target);
  if (!name.startsWith("_") || to === undefined) return undefined;
  if (libFolder(e.file) === to) return undefined;
  if (e.file.startsWith(`tests/${to}/`)) return undefined;
  return `lib/${to}/${name} is private: imported only from lib/${to}/ and tests/${to}/`;
}

/** Folder cycles in the table, each as "a -> b -> a". */
function cycles(allowed: typeof ALLOWED): string[] {
  const found: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  function visit(f: string): void {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      found.push([...path.slice(path.indexOf(f)), f].join(" -> "));
      return;
    }
    state.set(f, "open");
    path.push(f);
    for (const to of allowed[f] ?? []) visit(to);
    path.pop();
    state.set(f, "done");
  }
  for (const f of Object.keys(allowed)) visit(f);
  return found;
}

function describe(e: Edge, rule: string): string {
  return `${e.file}: import "${e.spec}" (${e.target}): ${rule}`;
}

// ---------------------------------------------------------------------------

Deno.test("every lib/ folder imports only the folders its layer allows", async () => {
  const all = await edges(["lib"]);
  assert.ok(all.length > 300, `found ${all.length} imports`);
  const folders = new Set<string>();
  for await (const e of Deno.readDir("lib")) if (e.isDirectory) folders.add(e.name);
  const missing = [...folders].filter((f) => !(f in ALLOWED));
  assert.deepEqual(missing, [], "every lib/ folder has a row in ALLOWED");
  const offences = all.flatMap((e) => {
    const rule = libViolation(e, ALLOWED);
    return rule === undefined ? [] : [describe(e, rule)];
  });
  assert.deepEqual(offences, []);
});

Deno.test("_private.ts files are imported only from their own folder", async () => {
  const all = await edges(["lib", "tests", "bench", "scripts", "examples"]);
  for (const root of ["mod.ts", "main.ts"]) {
    for (const spec of importSpecifiers(await Deno.readTextFile(root))) {
      if (spec.startsWith(".")) all.push({ file: root, spec, target: resolve(root, spec) });
    }
  }
  const offences = all.flatMap((e) => {
    const rule = privateViolation(e);
    return rule === undefined ? [] : [describe(e, rule)];
  });
  assert.deepEqual(offences, []);
});

Deno.test("examples/ import only the public entry points of deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile("deno.json")) as {
    exports: Record<string, string>;
  };
  const entries = new Set(Object.values(config.exports).map((p) => p.replace(/^\.\//, "")));
  assert.ok(entries.has("mod.ts"));
  const offences = (await edges(["examples"])).flatMap((e) =>
    entries.has(e.target) ? [] : [
      describe(e, `examples/ use the library as others do: only ${[...entries].join(", ")}`),
    ]
  );
  assert.deepEqual(offences, []);
});

Deno.test("the allowed-imports table has no cycle between folders", () => {
  assert.deepEqual(cycles(ALLOWED), []);
  for (const [from, tos] of Object.entries(ALLOWED)) {
    for (const to of tos) assert.ok(to in ALLOWED, `${from} -> ${to}: unknown folder`);
  }
});

Deno.test("the layering check catches a forbidden, a private and a cyclic import", () => {
  const e = (file: string, spec: string): Edge => ({ file, spec, target: resolve(file, spec) });
  assert.match(
    libViolation(e("lib/bench/mod.ts", "../cli/init.ts"), ALLOWED)!,
    /lib\/bench\/ may import only .*lib\/provision\//,
  );
  assert.match(
    libViolation(e("lib/wire/bytes.ts", "../crypto/mod.ts"), ALLOWED)!,
    /lib\/wire\/ may import only nothing/,
  );
  assert.match(libViolation(e("lib/api/x.ts", "../../mod.ts"), ALLOWED)!, /only lib\/ files/);
  assert.equal(libViolation(e("lib/wire/bytes.ts", "../errors.ts"), ALLOWED), undefined);
  assert.equal(libViolation(e("lib/cli/bench.ts", "../bench/mod.ts"), ALLOWED), undefined);
  assert.match(
    privateViolation(e("lib/tunnel/x.ts", "../record/_keys.ts"))!,
    /lib\/record\/_keys\.ts is private/,
  );
  assert.match(privateViolation(e("tests/e2e/x_test.ts", "../../lib/api/_conn.ts"))!, /private/);
  assert.equal(
    privateViolation(e("tests/record/x_test.ts", "../../lib/record/_keys.ts")),
    undefined,
  );
  assert.equal(privateViolation(e("lib/record/mod.ts", "./_keys.ts")), undefined);
  assert.deepEqual(cycles({ ...ALLOWED, bench: [...ALLOWED.bench!, "cli"] }), [
    "bench -> cli -> bench",
  ]);
});

Deno.test("importSpecifiers() reads every import form and skips comments and strings", () => {
  const src = [
    '// import { a } from "../comment/line.ts";',
    '/** import { b } from "../comment/block.ts"; */',
    'import { c, type D } from "../one/mod.ts";',
    'import type { E } from "../two/mod.ts";',
    "import {\n  f,\n  g as h,\n} from '../three/mod.ts';",
    'import * as ns from "../four/mod.ts";',
    'import "../five/side_effect.ts";',
    'export { i } from "../six/mod.ts";',
    'export * from "../seven/mod.ts";',
    'export type { J } from "../eight/mod.ts";',
    "export { k };",
    "export const l = 1;",
    'const m = await import("../nine/mod.ts");',
    'const s = "import { n } from \\"../string/mod.ts\\"";',
    'const re = /["\'`]import x from "..\\/regex\\/mod.ts"/g;',
    'const t = `import { o } from "../template/mod.ts" ${"x" + `y`}`;',
    "const u = import.meta.url;",
    'const v = a / b; import { w } from "../ten/mod.ts";',
  ].join("\n");
  assert.deepEqual(importSpecifiers(src), [
    "../one/mod.ts",
    "../two/mod.ts",
    "../three/mod.ts",
    "../four/mod.ts",
    "../five/side_effect.ts",
    "../six/mod.ts",
    "../seven/mod.ts",
    "../eight/mod.ts",
    "../nine/mod.ts",
    "../ten/mod.ts",
  ]);
});
