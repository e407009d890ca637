/**
 * The protocol core is pure (docs/PROTOCOL.md part 1; STYLE.md "pure core,
 * I/O at the edges"): the modules below take bytes and a clock value and
 * return bytes and actions. This test holds them to it by reading their
 * source: no `Deno.*` API, no timers, no sockets. (The record layer awaits
 * Web Crypto, which is computation, not I/O.)
 */
import { strict as assert } from "node:assert";

const CORE = [
  "lib/handshake",
  "lib/record",
  "lib/mux",
  "lib/session",
  "lib/socks5",
  "lib/wire",
  "lib/crypto",
  "lib/fronting",
];
const FORBIDDEN = [
  /\bDeno\./,
  /\bsetTimeout\(/,
  /\bsetInterval\(/,
  /\bfetch\(/,
  /from "node:(net|tls|fs|dgram|http)/,
];

/** Source lines without comments (line comments and JSDoc/block comments). */
function codeLines(text: string): string[] {
  const noBlocks = text.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, " "));
  return noBlocks.split("\n").map((l) => l.replace(/\/\/.*$/, ""));
}

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* tsFiles(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

Deno.test("the protocol core uses no Deno API, timer or socket", async () => {
  let files = 0;
  const offences: string[] = [];
  for (const dir of CORE) {
    for await (const file of tsFiles(dir)) {
      files++;
      codeLines(await Deno.readTextFile(file)).forEach((line, i) => {
        for (const re of FORBIDDEN) {
          if (re.test(line)) offences.push(`${file}:${i + 1}: ${line.trim()}`);
        }
      });
    }
  }
  assert.ok(files > 20, `scanned ${files} files`);
  assert.deepEqual(offences, []);
});

/** The session controller and its state machines also never wait: no promise, no await. */
const SYNC_ONLY = ["lib/session"];
const ASYNC = [/\basync\b/, /\bawait\b/, /\bPromise\b/, /\.then\(/];

Deno.test("lib/session decides synchronously: no async, await or promise", async () => {
  let files = 0;
  const offences: string[] = [];
  for (const dir of SYNC_ONLY) {
    for await (const file of tsFiles(dir)) {
      files++;
      codeLines(await Deno.readTextFile(file)).forEach((line, i) => {
        for (const re of ASYNC) {
          if (re.test(line)) offences.push(`${file}:${i + 1}: ${line.trim()}`);
        }
      });
    }
  }
  assert.ok(files >= 5, `scanned ${files} files`);
  assert.deepEqual(offences, []);
});

Deno.test("the purity scan catches an offending line", () => {
  const lines = codeLines(
    "// Deno.exit() in a comment\nconst x = Deno.env.get('A');\n/* setTimeout( */",
  );
  const hits = lines.filter((l) => FORBIDDEN.some((re) => re.test(l)));
  assert.deepEqual(hits, ["const x = Deno.env.get('A');"]);
  const waits = codeLines("// await x\nconst y = await z;\np.then(f);\nconst awaited = 1;")
    .filter((l) => ASYNC.some((re) => re.test(l)));
  assert.deepEqual(waits, ["const y = await z;", "p.then(f);"]);
});
