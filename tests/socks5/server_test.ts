import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeReply,
  encodeRequest,
  Reply,
  Socks5Error,
  Socks5ServerHandshake,
  type Socks5Step,
} from "../../lib/socks5/mod.ts";
import { assertThrowsWith } from "../support/assert.ts";

const te = new TextEncoder();
const REQ = Uint8Array.of(5, 1, 0, 3, 11, ...te.encode("example.com"), 1, 187);
const USERS = new Map([["alice", "s3cret"], ["bob", "hunter2"]]);

function authMsg(user: string, pass: string): Uint8Array {
  const u = te.encode(user);
  const p = te.encode(pass);
  return Uint8Array.of(1, u.length, ...u, p.length, ...p);
}

/** Pushes `chunks` one by one; returns every send concatenated and the final step. */
function drive(
  hs: Socks5ServerHandshake,
  chunks: Uint8Array[],
): { sent: number[]; last: Socks5Step; pushed: number } {
  const sent: number[] = [];
  let last: Socks5Step = { type: "need_more" };
  let pushed = 0;
  for (const c of chunks) {
    last = hs.push(c);
    pushed += c.length;
    if (last.type === "send") sent.push(...last.bytes);
    if (last.type === "request" && last.send) sent.push(...last.send);
    if (last.type === "fail") sent.push(...last.send);
    if (last.type === "request" || last.type === "fail") break;
  }
  return { sent, last, pushed };
}

function bytewise(b: Uint8Array): Uint8Array[] {
  return Array.from(b, (x) => Uint8Array.of(x));
}

function expectFail(
  step: Socks5Step,
  send: Uint8Array | number[],
  reply: number,
  pattern: RegExp,
): void {
  assert.equal(step.type, "fail");
  if (step.type !== "fail") return;
  assert.deepEqual(Array.from(step.send), Array.from(send));
  assert.ok(step.error instanceof Socks5Error);
  assert.equal(step.error.reply, reply);
  assert.match(step.error.message, pattern);
}

Deno.test("Socks5ServerHandshake: no-auth greeting, then request, step by step", () => {
  const hs = new Socks5ServerHandshake();
  assert.deepEqual(hs.push(Uint8Array.of(5)), { type: "need_more" });
  assert.deepEqual(hs.push(Uint8Array.of(2, 0x02)), { type: "need_more" });
  assert.deepEqual(hs.push(Uint8Array.of(0x00)), { type: "send", bytes: Uint8Array.of(5, 0) });
  assert.equal(hs.done, false);
  const step = hs.push(REQ);
  assert.equal(step.type, "request");
  if (step.type !== "request") return;
  assert.deepEqual(step.request, {
    command: "connect",
    addressType: "domain",
    host: "example.com",
    port: 443,
  });
  assert.deepEqual(step.raw, REQ);
  assert.equal(step.rest.length, 0);
  assert.equal("send" in step, false);
  assert.equal(hs.done, true);
});

Deno.test("Socks5ServerHandshake: pipelined greeting, request and early data in one chunk", () => {
  const hs = new Socks5ServerHandshake();
  const step = hs.push(Uint8Array.of(5, 1, 0, ...REQ, ...te.encode("GET / HTTP/1.1\r\n")));
  assert.equal(step.type, "request");
  if (step.type !== "request") return;
  assert.deepEqual(step.send, Uint8Array.of(5, 0));
  assert.deepEqual(step.raw, REQ);
  assert.equal(new TextDecoder().decode(step.rest), "GET / HTTP/1.1\r\n");
});

Deno.test("Socks5ServerHandshake: byte-at-a-time delivery gives the same result", () => {
  const all = Uint8Array.of(5, 2, 0, 2, ...authMsg("alice", "s3cret"), ...REQ, 0xaa);
  const { sent, last } = drive(new Socks5ServerHandshake({ users: USERS }), bytewise(all));
  assert.deepEqual(sent, [5, 2, 1, 0]);
  assert.equal(last.type, "request");
  if (last.type !== "request") return;
  assert.deepEqual(last.raw, REQ);
  // The request completes on its last byte; the early-data byte comes in the next read.
  assert.equal(last.rest.length, 0);
});

Deno.test("Socks5ServerHandshake: any split of a valid exchange gives the same request and bytes", () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 30 }),
      (withAuth, early, cuts) => {
        const hello = withAuth ? [5, 3, 0, 1, 2, ...authMsg("bob", "hunter2")] : [5, 1, 0];
        const all = Uint8Array.of(...hello, ...REQ, ...early);
        const chunks: Uint8Array[] = [];
        let o = 0;
        for (const c of cuts) {
          if (o >= all.length) break;
          chunks.push(all.slice(o, o + c));
          o += c;
        }
        if (o < all.length) chunks.push(all.slice(o));
        const hs = new Socks5ServerHandshake(withAuth ? { users: USERS } : {});
        const { sent, last, pushed } = drive(hs, chunks);
        assert.deepEqual(sent, withAuth ? [5, 2, 1, 0] : [5, 0]);
        assert.equal(last.type, "request");
        if (last.type !== "request") return;
        assert.deepEqual(last.raw, REQ);
        // `rest` is exactly the early data that arrived with the request's last byte.
        assert.deepEqual(last.rest, all.slice(hello.length + REQ.length, pushed));
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("Socks5ServerHandshake: RFC 1929 success with the method offered among others", () => {
  const hs = new Socks5ServerHandshake({ users: USERS });
  assert.deepEqual(hs.push(Uint8Array.of(5, 3, 0, 1, 2)), {
    type: "send",
    bytes: Uint8Array.of(5, 2),
  });
  assert.deepEqual(hs.push(authMsg("alice", "s3cret")), {
    type: "send",
    bytes: Uint8Array.of(1, 0),
  });
  assert.equal(hs.push(REQ).type, "request");
});

Deno.test("Socks5ServerHandshake: every RFC 1929 failure looks the same (01 01, reply 2)", () => {
  const cases: [string, Uint8Array][] = [
    ["wrong password", authMsg("alice", "s3creT")],
    ["unknown user", authMsg("mallory", "s3cret")],
    ["password prefix", authMsg("alice", "s3cre")],
    ["password longer", authMsg("alice", "s3cret!")],
    ["wrong sub-negotiation version", Uint8Array.of(5, ...authMsg("alice", "s3cret").subarray(1))],
    ["empty username", Uint8Array.of(1, 0, 1, 0x61)],
    ["empty password", Uint8Array.of(1, 1, 0x61, 0)],
    ["invalid UTF-8 username", Uint8Array.of(1, 1, 0xff, 1, 0x61)],
  ];
  for (const [what, msg] of cases) {
    const hs = new Socks5ServerHandshake({ users: USERS });
    assert.deepEqual(
      hs.push(Uint8Array.of(5, 1, 2)),
      { type: "send", bytes: Uint8Array.of(5, 2) },
      what,
    );
    const step = hs.push(msg);
    expectFail(step, [1, 1], Reply.NOT_ALLOWED, /invalid username or password/);
    assert.equal(hs.done, true, what);
  }
  // Pipelined: the method selection precedes the failure status.
  const hs = new Socks5ServerHandshake({ users: USERS });
  expectFail(
    hs.push(Uint8Array.of(5, 1, 2, ...authMsg("alice", "nope"), ...REQ)),
    [5, 2, 1, 1],
    2,
    /invalid/,
  );
});

Deno.test("Socks5ServerHandshake: greeting failures answer 05 FF", () => {
  expectFail(
    new Socks5ServerHandshake().push(Uint8Array.of(4, 1, 0, 80)),
    [5, 0xff],
    1,
    /version 4, expected 5/,
  );
  expectFail(new Socks5ServerHandshake().push(te.encode("CONNECT ")), [5, 0xff], 1, /version 67/);
  expectFail(
    new Socks5ServerHandshake().push(Uint8Array.of(5, 0)),
    [5, 0xff],
    1,
    /no methods offered/,
  );
  expectFail(
    new Socks5ServerHandshake().push(Uint8Array.of(5, 2, 1, 2)),
    [5, 0xff],
    Reply.NOT_ALLOWED,
    /no acceptable method among \[0x01, 0x02\], need 0x00/,
  );
  expectFail(
    new Socks5ServerHandshake({ users: USERS }).push(Uint8Array.of(5, 1, 0)),
    [5, 0xff],
    Reply.NOT_ALLOWED,
    /need 0x02/,
  );
});

Deno.test("Socks5ServerHandshake: request failures answer the matching reply", () => {
  const cases: [string, number[], number, RegExp][] = [
    ["version", [4, 1, 0, 1, 1, 2, 3, 4, 0, 80], 1, /version 4/],
    ["BIND", [5, 2, 0, 1, 1, 2, 3, 4, 0, 80], 7, /BIND is not supported/],
    ["UDP ASSOCIATE", [5, 3, 0, 1, 0, 0, 0, 0, 0, 0], 7, /UDP ASSOCIATE is not supported/],
    ["unknown command", [5, 0x09], 7, /0x09 is not supported/],
    ["reserved byte", [5, 1, 1], 1, /reserved byte is 0x01/],
    ["address type", [5, 1, 0, 2], 8, /address type 0x02/],
    ["empty domain", [5, 1, 0, 3, 0, 0, 80], 1, /length is 0/],
    ["control character in domain", [5, 1, 0, 3, 2, 0x61, 0x0d, 0, 80], 1, /not a valid host name/],
    ["CONNECT to port 0", [5, 1, 0, 1, 127, 0, 0, 1, 0, 0], 1, /port 0/],
  ];
  for (const [what, req, reply, pattern] of cases) {
    const hs = new Socks5ServerHandshake();
    hs.push(Uint8Array.of(5, 1, 0));
    const step = hs.push(Uint8Array.from(req));
    expectFail(step, encodeReply(reply), reply, pattern);
    assert.equal(hs.done, true, what);
    // Byte-at-a-time gives the same failure.
    const { sent, last } = drive(
      new Socks5ServerHandshake(),
      bytewise(Uint8Array.of(5, 1, 0, ...req)),
    );
    assert.deepEqual(sent, [5, 0, ...encodeReply(reply)], what);
    assert.equal(last.type, "fail", what);
  }
});

Deno.test("Socks5ServerHandshake: IPv4 and IPv6 requests", () => {
  for (
    const r of [
      { command: "connect" as const, addressType: "ipv4" as const, host: "192.0.2.7", port: 80 },
      { command: "connect" as const, addressType: "ipv6" as const, host: "2001:db8::1", port: 443 },
    ]
  ) {
    const step = new Socks5ServerHandshake().push(Uint8Array.of(5, 1, 0, ...encodeRequest(r)));
    assert.equal(step.type, "request");
    if (step.type === "request") assert.deepEqual(step.request, r);
  }
});

Deno.test("Socks5ServerHandshake: never throws on arbitrary input", () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 8 }),
      (auth, chunks) => {
        const hs = new Socks5ServerHandshake(auth ? { users: USERS } : {});
        for (const c of chunks) {
          const step = hs.push(c);
          if (step.type === "fail") assert.ok(step.error instanceof Socks5Error);
          if (step.type === "request" || step.type === "fail") break;
        }
        const end = hs.end();
        assert.equal(end.type, "fail");
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("Socks5ServerHandshake: push after finishing and end() mid-message fail cleanly", () => {
  const hs = new Socks5ServerHandshake();
  hs.push(Uint8Array.of(5, 1, 0, ...REQ));
  expectFail(hs.push(Uint8Array.of(1)), [], 1, /already finished/);
  const half = new Socks5ServerHandshake();
  half.push(Uint8Array.of(5, 1, 0, 5, 1));
  expectFail(half.end(), [], 1, /closed during request after 2 bytes/);
});

Deno.test("Socks5ServerHandshake: keeps its own copy of partial input", () => {
  const hs = new Socks5ServerHandshake();
  hs.push(Uint8Array.of(5, 1, 0));
  const buf = new Uint8Array(REQ.length);
  buf.set(REQ.subarray(0, 6));
  hs.push(buf.subarray(0, 6));
  buf.fill(0xee); // the caller reuses its read buffer
  const step = hs.push(REQ.subarray(6));
  assert.equal(step.type, "request");
  if (step.type === "request") assert.deepEqual(step.raw, REQ);
});

Deno.test("Socks5ServerHandshake: refuses configured credentials that could never be sent", () => {
  assertThrowsWith(
    () => new Socks5ServerHandshake({ users: new Map([["", "x"]]) }),
    RangeError,
    'Cannot use SOCKS5 user "": username is 0 bytes, expected 1..255',
  );
  assert.throws(
    () => new Socks5ServerHandshake({ users: new Map([["u", "p".repeat(256)]]) }),
    /256 bytes/,
  );
  assertThrowsWith(
    () => new Socks5ServerHandshake({ users: new Map([["u", ""]]) }),
    RangeError,
    'Cannot use SOCKS5 user "u": password is 0 bytes, expected 1..255',
  );
});

Deno.test("Socks5ServerHandshake: UDP ASSOCIATE is a request when the caller serves it", () => {
  const hs = new Socks5ServerHandshake({}, { udpAssociate: true });
  hs.push(Uint8Array.of(5, 1, 0));
  const step = hs.push(Uint8Array.of(5, 3, 0, 1, 127, 0, 0, 1, 0x30, 0x39));
  assert.equal(step.type, "request");
  if (step.type !== "request") return;
  assert.deepEqual(step.request, {
    command: "udp_associate",
    addressType: "ipv4",
    host: "127.0.0.1",
    port: 12345,
  });
  // BIND stays refused.
  const bind = new Socks5ServerHandshake({}, { udpAssociate: true });
  bind.push(Uint8Array.of(5, 1, 0));
  expectFail(
    bind.push(Uint8Array.of(5, 2, 0, 1, 1, 2, 3, 4, 0, 80)),
    encodeReply(7),
    7,
    /BIND is not supported/,
  );
});

Deno.test('Socks5ServerHandshake: UDP ASSOCIATE naming a domain (PySocks sends "0") means any address, port kept', () => {
  const hs = new Socks5ServerHandshake({}, { udpAssociate: true });
  hs.push(Uint8Array.of(5, 1, 0));
  const step = hs.push(Uint8Array.of(5, 3, 0, 3, 1, 0x30, 0x1f, 0x90));
  assert.equal(step.type, "request");
  if (step.type !== "request") return;
  assert.deepEqual(step.request, {
    command: "udp_associate",
    addressType: "domain",
    host: "",
    port: 8080,
  });
});
