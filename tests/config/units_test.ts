import assert from "node:assert/strict";
import { decodeBase32, encodeBase32, parseDuration, parseSize } from "../../lib/config/mod.ts";

Deno.test("parseSize() reads decimal, binary and bit units", () => {
  const table: [string, number | undefined][] = [
    ["65536", 65536],
    ["1B", 1],
    ["64kB", 64_000],
    ["64KB", 64_000],
    ["64KiB", 65536],
    ["1MiB", 1048576],
    ["10MB", 10_000_000],
    ["1.5MiB", 1572864],
    ["2GiB", 2 * 1024 ** 3],
    ["100Mbit", 12_500_000],
    ["1 MiB", 1048576],
    ["1kb", undefined],
    ["1mib", undefined],
    ["-1", undefined],
    ["MiB", undefined],
    ["", undefined],
  ];
  for (const [text, want] of table) assert.equal(parseSize(text), want, text);
});

Deno.test("parseDuration() reads ms, s, m, h, d and combinations", () => {
  const table: [string, number | undefined][] = [
    ["30s", 30],
    ["5m", 300],
    ["1h30m", 5400],
    ["250ms", 0.25],
    ["2d", 172800],
    ["1.5s", 1.5],
    ["30", undefined],
    ["5 minutes", undefined],
    ["m", undefined],
  ];
  for (const [text, want] of table) assert.equal(parseDuration(text), want, text);
});

Deno.test("base32 matches RFC 4648 section 10 vectors", () => {
  const vectors: [string, string][] = [
    ["", ""],
    ["f", "MY"],
    ["fo", "MZXQ"],
    ["foo", "MZXW6"],
    ["foob", "MZXW6YQ"],
    ["fooba", "MZXW6YTB"],
    ["foobar", "MZXW6YTBOI"],
  ];
  const enc = new TextEncoder();
  for (const [plain, b32] of vectors) {
    assert.equal(encodeBase32(enc.encode(plain)), b32);
    assert.deepEqual(decodeBase32(b32), enc.encode(plain));
    assert.deepEqual(
      decodeBase32(b32.toLowerCase() + "=".repeat((8 - b32.length % 8) % 8)),
      enc.encode(plain),
    );
  }
  assert.equal(decodeBase32("M1"), undefined);
  assert.equal(decodeBase32("MZX"), undefined);
  assert.equal(decodeBase32("MZ"), undefined); // leftover bits must be zero
});
