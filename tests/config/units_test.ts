import assert from "node:assert/strict";
import {
  decodeBase32,
  encodeBase32,
  parseDuration,
  parseQuota,
  parseSize,
} from "../../lib/config/mod.ts";

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

Deno.test("parseSize() reads TB, TiB, bits, fractions and whitespace", () => {
  const table: [string, number | undefined][] = [
    ["2TB", 2e12],
    ["1TiB", 1024 ** 4],
    ["8bit", 1],
    ["1kbit", 125],
    ["1Kibit", 128],
    ["1Gbit", 125_000_000],
    ["0.5B", 0],
    ["1.5kB", 1500],
    ["  64KiB  ", 65536],
    ["64K", undefined],
    ["64 k B", undefined],
    ["1e3", undefined],
    ["64KiB/s", undefined],
  ];
  for (const [text, want] of table) assert.equal(parseSize(text), want, text);
});

Deno.test("parseSize() with loose also reads any case and a missing B", () => {
  const table: [string, number | undefined][] = [
    ["65536", 65536],
    ["1b", 1],
    ["1B", 1],
    ["64k", 64_000],
    ["64K", 64_000],
    ["64kb", 64_000],
    ["64KB", 64_000],
    ["64kib", 65536],
    ["64KiB", 65536],
    ["64ki", 65536],
    ["10m", 10_000_000],
    ["10mb", 10_000_000],
    ["256mib", 256 * 2 ** 20],
    ["256MiB", 256 * 2 ** 20],
    ["1g", 1e9],
    ["1gb", 1e9],
    ["1gib", 2 ** 30],
    ["1t", 1e12],
    ["100mbit", 12_500_000],
    ["100Mbit", 12_500_000],
    [" 1.5 MiB ", 1572864],
    ["12 parsecs", undefined],
    ["MiB", undefined],
    ["-1", undefined],
    ["", undefined],
    ["1x", undefined],
    ["1ib", undefined],
  ];
  for (const [text, want] of table) assert.equal(parseSize(text, { loose: true }), want, text);
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

Deno.test("parseQuota() reads SIZE/PERIOD; loose sizes only when asked", () => {
  assert.deepEqual(parseQuota("50GB/30d"), { bytes: 50e9, periodS: 30 * 86_400 });
  assert.deepEqual(parseQuota("1GiB/1h30m"), { bytes: 1024 ** 3, periodS: 5_400 });
  assert.equal(parseQuota("50gb/30d"), undefined);
  assert.deepEqual(parseQuota("50gb/30d", { loose: true }), { bytes: 50e9, periodS: 2_592_000 });
  for (const bad of ["50GB", "/30d", "50GB/", "50GB/30", "50GB/0d", "x/1d"]) {
    assert.equal(parseQuota(bad), undefined, bad);
  }
});
