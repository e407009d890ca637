import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  formatIpv6,
  parseIpv6,
  Reply,
  Socks5Error,
  type Socks5Request,
} from "../../lib/socks5/mod.ts";
import { assertThrowsWith } from "../support/assert.ts";

function assertSocks5Error(fn: () => unknown, reply: number, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Socks5Error, `expected Socks5Error, got ${e}`);
    assert.equal(e.reply, reply, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

const label = fc.stringMatching(/^[a-z0-9_-]{1,20}$/);
const letterLabel = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
const domain = fc.tuple(fc.array(label, { maxLength: 6 }), letterLabel, fc.boolean())
  .map(([ls, last, dot]) => [...ls, last].join(".") + (dot ? "." : ""))
  .filter((d) => d.length <= 255);
const ipv6Text = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
  minLength: 8,
  maxLength: 8,
}).map((ws) => ws.map((w) => w.toString(16).toUpperCase()).join(":"));
const hostArb: fc.Arbitrary<Pick<Socks5Request, "addressType" | "host">> = fc.oneof(
  fc.ipV4().map((host) => ({ addressType: "ipv4" as const, host })),
  fc.oneof(fc.ipV6(), ipv6Text).map((host) => ({ addressType: "ipv6" as const, host })),
  domain.map((host) => ({ addressType: "domain" as const, host })),
);
const requestArb: fc.Arbitrary<Socks5Request> = fc.record({
  command: fc.constantFrom("connect" as const, "bind" as const, "udp_associate" as const),
  target: hostArb,
  port: fc.integer({ min: 0, max: 65535 }),
}).filter((r) => r.command !== "connect" || r.port !== 0)
  .map(({ command, target, port }) => ({ command, ...target, port }));

function canonical(r: { addressType: string; host: string }): string {
  return r.addressType === "ipv6" ? formatIpv6(parseIpv6(r.host)!) : r.host;
}

Deno.test("encodeRequest() matches the RFC 1928 section 4 layout", () => {
  assert.deepEqual(
    encodeRequest({ command: "connect", addressType: "ipv4", host: "127.0.0.1", port: 8080 }),
    Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90),
  );
  assert.deepEqual(
    encodeRequest({ command: "connect", addressType: "domain", host: "a.io", port: 443 }),
    Uint8Array.of(5, 1, 0, 3, 4, 0x61, 0x2e, 0x69, 0x6f, 1, 187),
  );
  const v6 = encodeRequest({
    command: "udp_associate",
    addressType: "ipv6",
    host: "[::1]",
    port: 0,
  });
  assert.deepEqual(v6, Uint8Array.of(5, 3, 0, 4, ...new Array(15).fill(0), 1, 0, 0));
  assert.deepEqual(
    encodeRequest({ command: "bind", addressType: "ipv4", host: "0.0.0.0", port: 0 }).subarray(
      0,
      2,
    ),
    Uint8Array.of(5, 2),
  );
});

Deno.test("encodeRequest() refuses hosts that do not match their type, bad ports and CONNECT to port 0", () => {
  const base = { command: "connect" as const, port: 80 };
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "ipv4", host: "::1" }),
    TypeError,
    'Cannot encode SOCKS5 request: "::1" is not a valid ipv4 host',
  );
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "ipv6", host: "1.2.3.4" }),
    TypeError,
    'Cannot encode SOCKS5 request: "1.2.3.4" is not a valid ipv6 host',
  );
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "domain", host: "" }),
    TypeError,
    'Cannot encode SOCKS5 request: "" is not a valid domain host',
  );
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "domain", host: "a".repeat(256) }),
    TypeError,
    "Cannot encode SOCKS5 request:",
  );
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "domain", host: "127.1" }),
    TypeError,
    'Cannot encode SOCKS5 request: "127.1" is not a valid domain host',
  );
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "ipv4", host: "1.2.3.4", port: 65536 }),
    RangeError,
    "Cannot encode SOCKS5 request: port 65536 is not in 0..65535",
  );
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "ipv4", host: "1.2.3.4", port: -1 }),
    RangeError,
    "Cannot encode SOCKS5 request: port -1 is not in 0..65535",
  );
  assertThrowsWith(
    () => encodeRequest({ ...base, addressType: "ipv4", host: "1.2.3.4", port: 1.5 }),
    RangeError,
    "Cannot encode SOCKS5 request: port 1.5 is not in 0..65535",
  );
  assert.throws(
    () => encodeRequest({ ...base, addressType: "ipv4", host: "1.2.3.4", port: 0 }),
    /port 0/,
  );
});

Deno.test("decodeRequest(encodeRequest(r)) gives r back, IPv6 in canonical form", () => {
  fc.assert(
    fc.property(requestArb, (r) => {
      const raw = encodeRequest(r);
      const back = decodeRequest(raw);
      assert.deepEqual(back, { ...r, host: canonical(r) });
      assert.deepEqual(encodeRequest(back), raw);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("decodeRequest() maps each malformed field to its reply code", () => {
  const ok = [5, 1, 0, 1, 127, 0, 0, 1, 0, 80];
  assert.deepEqual(decodeRequest(Uint8Array.from(ok)).host, "127.0.0.1");
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 0)),
    Reply.GENERAL_FAILURE,
    /truncated at 3 bytes/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(4, ...ok.slice(1))),
    Reply.GENERAL_FAILURE,
    /version 4/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 9, ...ok.slice(2))),
    Reply.COMMAND_NOT_SUPPORTED,
    /0x09/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 0, ...ok.slice(2))),
    Reply.COMMAND_NOT_SUPPORTED,
    /0x00/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 1, ...ok.slice(3))),
    Reply.GENERAL_FAILURE,
    /reserved/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 0, 2, ...ok.slice(4))),
    Reply.ADDRESS_TYPE_NOT_SUPPORTED,
    /address type 0x02/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(...ok, 0)),
    Reply.GENERAL_FAILURE,
    /1 trailing bytes/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.from(ok.slice(0, 9))),
    Reply.GENERAL_FAILURE,
    /truncated at 9 of 10/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 0, 3)),
    Reply.GENERAL_FAILURE,
    /truncated/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 0, 3, 0, 0, 80)),
    Reply.GENERAL_FAILURE,
    /length is 0/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 0, 3, 3, 0x61, 0x0a, 0x62, 0, 80)),
    Reply.GENERAL_FAILURE,
    /not a valid host name/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 0, 3, 5, ...new TextEncoder().encode("127.1"), 0, 80)),
    Reply.GENERAL_FAILURE,
    /not a valid host name/,
  );
  assertSocks5Error(
    () => decodeRequest(Uint8Array.of(5, 1, 0, 1, 1, 2, 3, 4, 0, 0)),
    Reply.GENERAL_FAILURE,
    /port 0/,
  );
  // BIND and UDP ASSOCIATE may carry port 0 (RFC 1928 section 7).
  assert.equal(decodeRequest(Uint8Array.of(5, 3, 0, 1, 0, 0, 0, 0, 0, 0)).command, "udp_associate");
});

Deno.test("decodeRequest() throws only Socks5Error on arbitrary bytes", () => {
  const nearValid = fc.tuple(
    fc.constantFrom(5, 4, 0),
    fc.integer({ min: 0, max: 4 }),
    fc.constantFrom(0, 1),
    fc.constantFrom(1, 3, 4, 2, 0xff),
    fc.uint8Array({ maxLength: 300 }),
  ).map(([v, c, r, a, tail]) => Uint8Array.of(v, c, r, a, ...tail));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), nearValid), (raw) => {
      try {
        const r = decodeRequest(raw);
        assert.deepEqual(encodeRequest(r), raw);
      } catch (e) {
        assert.ok(e instanceof Socks5Error, String(e));
        assert.ok(e.reply === 1 || e.reply === 7 || e.reply === 8);
      }
    }),
    { numRuns: 5000 },
  );
});

Deno.test("encodeReply() defaults to 0.0.0.0:0 and picks ATYP from the bound host", () => {
  assert.deepEqual(
    encodeReply(Reply.CONNECTION_REFUSED),
    Uint8Array.of(5, 5, 0, 1, 0, 0, 0, 0, 0, 0),
  );
  assert.deepEqual(
    encodeReply(0, { host: "10.0.0.1", port: 1080 }),
    Uint8Array.of(5, 0, 0, 1, 10, 0, 0, 1, 4, 56),
  );
  assert.equal(encodeReply(0, { host: "::1", port: 1 })[3], 4);
  assert.equal(encodeReply(0, { host: "proxy.example", port: 1 })[3], 3);
  assertThrowsWith(
    () => encodeReply(256),
    RangeError,
    "Cannot encode SOCKS5 reply: code 256 is not a byte",
  );
  assertThrowsWith(
    () => encodeReply(0, { host: "not a host", port: 1 }),
    TypeError,
    'Cannot encode SOCKS5 reply: "not a host" is not a valid host',
  );
});

Deno.test("decodeReply(encodeReply(x)) gives x back", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 8 }),
      hostArb,
      fc.integer({ min: 0, max: 65535 }),
      (reply, h, port) => {
        const raw = encodeReply(reply, { host: h.host, port });
        assert.deepEqual(decodeReply(raw), { reply, bind: { host: canonical(h), port } });
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("decodeReply() is strict and reports reply 1", () => {
  const ok = [5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
  assert.deepEqual(decodeReply(Uint8Array.from(ok)), {
    reply: 0,
    bind: { host: "0.0.0.0", port: 0 },
  });
  assertSocks5Error(
    () => decodeReply(Uint8Array.of(5, 9, ...ok.slice(2))),
    1,
    /0x09 is unassigned/,
  );
  assertSocks5Error(() => decodeReply(Uint8Array.of(5, 0, 7, ...ok.slice(3))), 1, /reserved/);
  assertSocks5Error(() => decodeReply(Uint8Array.of(1, ...ok.slice(1))), 1, /version 1/);
  assertSocks5Error(() => decodeReply(Uint8Array.of(5, 4, 0, 9, 0, 0)), 1, /address type 0x09/);
  assertSocks5Error(() => decodeReply(Uint8Array.of(...ok, 1)), 1, /trailing/);
  assertSocks5Error(() => decodeReply(Uint8Array.of(5, 0)), 1, /truncated/);
});
