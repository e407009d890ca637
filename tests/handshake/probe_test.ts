import { strict as assert } from "node:assert";
import fc from "fast-check";
import { ProtocolError } from "../../lib/errors.ts";
import {
  HELLO_MAX_BYTES,
  HELLO_MIN_BYTES,
  ReplayGuard,
  ServerHandshake,
} from "../../lib/handshake/mod.ts";
import { hex } from "../crypto/_hex.ts";
import { drbg, expectServer, fixture, helloWithMacs, makePair, T0 } from "./_helpers.ts";

/** Representative, mac1, mac2, masked length (PROTOCOL.md part 2 sections 4.1 and 15). */
const HEADER = 66;
const enc = new TextEncoder();

function server(): ServerHandshake {
  return new ServerHandshake({
    identity: fixture().identity,
    lookupUser: () => undefined,
    replay: new ReplayGuard(),
    now: () => T0,
    random: drbg("probe server"),
  });
}

/** A real Hello with its masked length rewritten to stand for `ctLen` (and mac1 made anew). */
function helloWithLength(ctLen: number): Uint8Array {
  const { client } = makePair({ clientKex: ["x25519"] });
  const hello = client.hello();
  const real = hello.length - HEADER;
  const mask = ((hello[64]! << 8) | hello[65]!) ^ real;
  const frame = hello.slice(64);
  frame[0] = ((ctLen ^ mask) >> 8) & 0xff;
  frame[1] = (ctLen ^ mask) & 0xff;
  return helloWithMacs(hello.subarray(0, 32), frame, fixture().serverPublicKey);
}

Deno.test("server waits for 66 bytes before judging a connection", () => {
  const s = server();
  const get = enc.encode(
    "GET / HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\nUser-Agent: curl1\r\n",
  );
  assert.equal(get.length, 65);
  expectServer(s.push(get), "need_more");
  assert.equal(hex(s.received()), hex(get));
});

Deno.test("an HTTP request is a probe as soon as its 66th byte arrives, by mac1 alone", () => {
  const s = server();
  const get = enc.encode(
    "GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\nUser-Agent: curl\r\n\r\n",
  );
  expectServer(s.push(get.subarray(0, 65)), "need_more");
  const step = expectServer(s.push(get.subarray(65)), "probe");
  assert.match(step.reason, /hello mac1 does not verify/);
  assert.equal(hex(s.received()), hex(get), "every byte is kept for the fallback");
});

Deno.test("an unmasked length above the maximum is a probe at once, without waiting for the body", () => {
  const hello = helloWithLength(HELLO_MAX_BYTES - HEADER + 1);
  const step = expectServer(server().push(hello.subarray(0, HEADER)), "probe");
  assert.match(step.reason, /length 1532 is outside/);
});

Deno.test("an unmasked length below the minimum is a probe at once", () => {
  const hello = helloWithLength(HELLO_MIN_BYTES - HEADER - 1);
  expectServer(server().push(hello.subarray(0, HEADER)), "probe");
});

Deno.test("a length in range makes the server wait, then the MAC decides", () => {
  const hello = helloWithLength(HELLO_MAX_BYTES - HEADER);
  const s = server();
  expectServer(s.push(hello), "need_more");
  const rest = new Uint8Array(HELLO_MAX_BYTES - hello.length);
  const step = expectServer(s.push(rest), "probe");
  assert.match(step.reason, /MAC/);
  assert.equal(s.received().length, HELLO_MAX_BYTES);
});

Deno.test("a TLS ClientHello sent to the gate is a probe", () => {
  const tls = new Uint8Array([
    0x16,
    0x03,
    0x01,
    0x02,
    0x00,
    0x01,
    0x00,
    0x01,
    0xfc,
    0x03,
    0x03,
    ...new Uint8Array(505).fill(0x5a),
  ]);
  const s = server();
  const step = s.push(tls);
  // Either judged at once or after the claimed length; a probe in both cases.
  const final = step.type === "need_more" ? s.push(new Uint8Array(HELLO_MAX_BYTES)) : step;
  assert.equal(final.type, "probe");
  assert.ok(hex(s.received()).startsWith(hex(tls)));
});

Deno.test("after a probe, push() throws BAD_STATE", () => {
  const s = server();
  expectServer(s.push(new Uint8Array(HELLO_MAX_BYTES)), "probe");
  assert.throws(
    () => s.push(new Uint8Array(1)),
    (e) => e instanceof ProtocolError && e.code === "BAD_STATE",
  );
});

Deno.test("server never throws on random bytes in random chunks, and keeps every byte", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 400 }), { minLength: 1, maxLength: 8 }),
      (chunks) => {
        const s = server();
        const all: number[] = [];
        for (const c of chunks) {
          all.push(...c);
          const step = s.push(c);
          assert.ok(step.type === "need_more" || step.type === "probe", step.type);
          if (step.type === "probe") break;
        }
        assert.ok(hex(Uint8Array.from(all)).startsWith(hex(s.received())));
        assert.equal(s.received().length, all.length);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("received() is a copy: a caller reusing its read buffer cannot change it", () => {
  const s = server();
  const buf = new Uint8Array(10).fill(7);
  s.push(buf);
  buf.fill(0);
  assert.equal(hex(s.received()), "07".repeat(10));
});
