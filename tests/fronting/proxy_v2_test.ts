import assert from "node:assert/strict";
import { parseProxyV2, PROXY_V2_SIGNATURE } from "../../lib/fronting/mod.ts";

const sig = [...PROXY_V2_SIGNATURE];

// Vectors built as HAProxy's proxy-protocol.txt section 2.2 lays the header out.
Deno.test("parseProxyV2() reads a TCP/IPv4 PROXY header and skips TLVs", () => {
  const h = new Uint8Array([
    ...sig,
    0x21,
    0x11,
    0,
    12 + 7,
    198,
    51,
    100,
    9,
    127,
    0,
    0,
    1,
    0xd4,
    0x31,
    0x20,
    0xfb,
    0x01,
    0x00,
    0x04,
    0x68,
    0x32,
    0x68,
    0x31, // PP2_TYPE_ALPN "h2h1"
    0x16,
    0x03, // the client's first bytes follow
  ]);
  assert.deepEqual(parseProxyV2(h), {
    type: "header",
    size: 35,
    source: { hostname: "198.51.100.9", port: 54321 },
    destination: { hostname: "127.0.0.1", port: 8443 },
  });
});

Deno.test("parseProxyV2() reads a TCP/IPv6 PROXY header in the compressed form", () => {
  const src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const dst = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const h = new Uint8Array([...sig, 0x21, 0x21, 0, 36, ...src, ...dst, 0x01, 0xbb, 0x20, 0xfb]);
  assert.deepEqual(parseProxyV2(h), {
    type: "header",
    size: 52,
    source: { hostname: "2001:db8::1", port: 443 },
    destination: { hostname: "::1", port: 8443 },
  });
});

Deno.test("parseProxyV2() takes LOCAL and UNSPEC without an address", () => {
  assert.deepEqual(parseProxyV2(new Uint8Array([...sig, 0x20, 0x00, 0, 0])), {
    type: "header",
    size: 16,
  });
  assert.deepEqual(parseProxyV2(new Uint8Array([...sig, 0x21, 0x00, 0, 0])), {
    type: "header",
    size: 16,
  });
});

Deno.test("parseProxyV2() fails at the first wrong byte and waits on a valid prefix", () => {
  const full = new Uint8Array([...sig, 0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
  for (let n = 0; n < full.length; n++) {
    assert.deepEqual(parseProxyV2(full.subarray(0, n)), { type: "partial" }, `prefix ${n}`);
  }
  const enc = new TextEncoder();
  assert.equal(parseProxyV2(enc.encode("G")).type, "invalid");
  assert.equal(parseProxyV2(enc.encode("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")).type, "invalid");
  assert.equal(parseProxyV2(new Uint8Array([0x16, 0x03, 0x01])).type, "invalid");
  assert.equal(
    parseProxyV2(
      new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]),
    ).type,
    "invalid",
  );
});

Deno.test("parseProxyV2() refuses wrong versions, commands, families, short blocks and long bodies", () => {
  const cases: [number[], RegExp][] = [
    [[...sig, 0x11, 0x11, 0, 12], /version 2/],
    [[...sig, 0x22, 0x11, 0, 12], /unknown command 2/],
    [[...sig, 0x21, 0x31, 0, 0], /unsupported family 0x31/],
    [[...sig, 0x21, 0x12, 0, 12, ...new Array(12).fill(0)], /unsupported family 0x12/],
    [[...sig, 0x21, 0x11, 0, 4, 1, 2, 3, 4], /short IPv4/],
    [[...sig, 0x21, 0x21, 0, 12, ...new Array(12).fill(0)], /short IPv6/],
    [[...sig, 0x21, 0x11, 0x04, 0x01], /1025 bytes/],
  ];
  for (const [b, reason] of cases) {
    const r = parseProxyV2(new Uint8Array(b));
    assert.ok(r.type === "invalid" && reason.test(r.reason), `${reason}: ${JSON.stringify(r)}`);
  }
  // A version byte that is wrong is refused before the rest arrives.
  assert.equal(parseProxyV2(new Uint8Array([...sig, 0x11])).type, "invalid");
});
