import assert from "node:assert/strict";
import fc from "fast-check";
import {
  classifyHost,
  formatIpv4,
  formatIpv6,
  isValidDomain,
  parseIpv4,
  parseIpv6,
} from "../../lib/socks5/address.ts";

Deno.test("parseIpv4() accepts strict dotted quads only", () => {
  assert.deepEqual(parseIpv4("127.0.0.1"), Uint8Array.of(127, 0, 0, 1));
  assert.deepEqual(parseIpv4("0.0.0.0"), new Uint8Array(4));
  assert.deepEqual(parseIpv4("255.255.255.255"), Uint8Array.of(255, 255, 255, 255));
  for (
    const bad of [
      "127.1",
      "01.2.3.4",
      "1.2.3.256",
      "1.2.3.4.5",
      "1.2.3.",
      " 1.2.3.4",
      "0x7f.0.0.1",
      "",
      "1.2.3.-1",
    ]
  ) {
    assert.equal(parseIpv4(bad), null, bad);
  }
});

Deno.test("parseIpv6() accepts RFC 4291 text forms", () => {
  const loop = new Uint8Array(16);
  loop[15] = 1;
  assert.deepEqual(parseIpv6("::1"), loop);
  assert.deepEqual(parseIpv6("0:0:0:0:0:0:0:1"), loop);
  assert.deepEqual(parseIpv6("0000:0000:0000:0000:0000:0000:0000:0001"), loop);
  assert.deepEqual(parseIpv6("::"), new Uint8Array(16));
  assert.deepEqual(
    parseIpv6("::ffff:192.0.2.1")?.subarray(10),
    Uint8Array.of(0xff, 0xff, 192, 0, 2, 1),
  );
  assert.deepEqual(parseIpv6("2001:DB8::1")?.subarray(0, 2), Uint8Array.of(0x20, 0x01));
  assert.deepEqual(parseIpv6("1::")?.subarray(0, 2), Uint8Array.of(0, 1));
  for (
    const bad of [
      ":::",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "1:2:3:4:5:6:7",
      "12345::",
      "fe80::1%eth0",
      "[::1]",
      "::1.2.3",
      "1.2.3.4::",
      "1:2:3:4:5:6:7:8::",
      "g::",
      ":1::",
      "",
      "1:2:3:4:5:6:7::8",
    ]
  ) {
    assert.equal(parseIpv6(bad), null, bad);
  }
});

Deno.test("formatIpv6() prints RFC 5952 canonical text", () => {
  const cases: [string, string][] = [
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // single zero group not compressed
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // longest run wins
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["ABCD:EF01::", "abcd:ef01::"],
    ["::ffff:c000:0201", "::ffff:192.0.2.1"],
    ["::ffff:0:0", "::ffff:0.0.0.0"],
    ["64:ff9b::192.0.2.1", "64:ff9b::c000:201"],
  ];
  for (const [input, want] of cases) assert.equal(formatIpv6(parseIpv6(input)!), want, input);
});

Deno.test("formatIpv6() agrees with the WHATWG URL host serializer", () => {
  const word = fc.oneof(
    fc.constant(0),
    fc.constant(0),
    fc.constant(1),
    fc.integer({ min: 0, max: 0xffff }),
  );
  fc.assert(
    fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), (words) => {
      const bytes = new Uint8Array(16);
      words.forEach((w, i) => {
        bytes[2 * i] = w >> 8;
        bytes[2 * i + 1] = w & 0xff;
      });
      const ours = formatIpv6(bytes);
      const mapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
      if (mapped) return ours.startsWith("::ffff:") && ours.includes(".");
      return `[${ours}]` ===
        new URL(`http://[${words.map((w) => w.toString(16)).join(":")}]/`).hostname;
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseIpv6() reads every non-canonical rendering back to the same bytes", () => {
  const word = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(
      fc.array(word, { minLength: 8, maxLength: 8 }),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.nat(),
      (words, upper, pad, dotted, pick) => {
        let groups = words.map((w) => {
          const h = w.toString(16);
          return pad ? h.padStart(4, "0") : h;
        });
        if (dotted) {
          groups = [
            ...groups.slice(0, 6),
            `${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`,
          ];
        }
        // Compress any one run of zero groups (not only the longest).
        const runs: [number, number][] = [];
        for (let i = 0; i < groups.length; i++) {
          if (groups[i] !== "0" && groups[i] !== "0000") continue;
          let j = i;
          while (j < groups.length && (groups[j] === "0" || groups[j] === "0000")) j++;
          runs.push([i, j]);
          i = j;
        }
        let text = groups.join(":");
        if (runs.length > 0) {
          const [i, j] = runs[pick % runs.length]!;
          text = `${groups.slice(0, i).join(":")}::${groups.slice(j).join(":")}`;
        }
        if (upper) text = text.toUpperCase();
        const bytes = parseIpv6(text);
        assert.ok(bytes, text);
        for (let i = 0; i < 8; i++) {
          assert.equal((bytes[2 * i]! << 8) | bytes[2 * i + 1]!, words[i], text);
        }
        assert.deepEqual(parseIpv6(formatIpv6(bytes)), bytes);
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("formatIpv4() and parseIpv4() round trip", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
      assert.deepEqual(parseIpv4(formatIpv4(b)), b);
    }),
  );
});

Deno.test("isValidDomain() refuses numeric last labels that resolvers read as IPv4", () => {
  for (
    const ok of [
      "example.com",
      "example.com.",
      "a",
      "xn--bcher-kva.example",
      "_srv.example",
      "a-b.c_d",
      "1.2.3.a",
    ]
  ) {
    assert.ok(isValidDomain(ok), ok);
  }
  for (
    const bad of [
      "",
      "127.1",
      "2130706433",
      "0x7f.1",
      "a.0X1",
      "example..com",
      ".example",
      "exa mple.com",
      "ex\u0000ample",
      "bücher.de",
      "a".repeat(64) + ".com",
      "a:b",
      `${"a.".repeat(127)}ab`,
    ]
  ) {
    assert.ok(!isValidDomain(bad), JSON.stringify(bad));
  }
  assert.ok(isValidDomain(`${"a.".repeat(126)}abc`)); // 255 bytes
});

Deno.test("classifyHost() names the address type and canonicalizes IP literals", () => {
  assert.deepEqual(classifyHost("127.0.0.1"), { addressType: "ipv4", host: "127.0.0.1" });
  assert.deepEqual(classifyHost("[0:0::1]"), { addressType: "ipv6", host: "::1" });
  assert.deepEqual(classifyHost("FE80::A"), { addressType: "ipv6", host: "fe80::a" });
  assert.deepEqual(classifyHost("Example.COM"), { addressType: "domain", host: "Example.COM" });
  for (const bad of ["[example.com]", "[::1", "127.1", "", "a b", "fe80::1%1"]) {
    assert.equal(classifyHost(bad), null, bad);
  }
});
