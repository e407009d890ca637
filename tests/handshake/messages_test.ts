import { strict as assert } from "node:assert";
import fc from "fast-check";
import { ProtocolError } from "../../lib/errors.ts";
import {
  decodeHelloBody,
  decodeResponseBody,
  decodeResultBody,
  decodeServerHelloBody,
  encodeHelloBody,
  encodeResponseBody,
  encodeResultBody,
  encodeServerHelloBody,
  type HelloBody,
  type ResponseBody,
  type ServerHelloFields,
} from "../../lib/handshake/messages.ts";
import { assertThrowsWith } from "../support/assert.ts";

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const list = (max: number) => fc.array(fc.integer({ min: 0, max }), { minLength: 1, maxLength: 8 });
const timestamp = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const padding = fc.integer({ min: 0, max: 255 });

const hello: fc.Arbitrary<HelloBody> = fc
  .record({
    versions: list(0xffff),
    kex: list(0xff),
    aead: list(0xff),
    nonce: bytes(32),
    timestampMs: timestamp,
    paddingLength: padding,
    key: bytes(1184),
  })
  .map(({ key, ...b }) => (b.kex.includes(2) ? { ...b, mlkemKey: key } : b));

const serverHello = fc
  .record({
    version: fc.integer({ min: 0, max: 0xffff }),
    kex: fc.integer({ min: 0, max: 0xff }),
    aead: fc.integer({ min: 0, max: 0xff }),
    serverEphemeral: bytes(32),
    nonce: bytes(32),
    timestampMs: timestamp,
    paddingLength: padding,
    signature: bytes(64),
    ct: bytes(1088),
  })
  .map((
    { ct, ...b },
  ): ServerHelloFields & {
    signature: Uint8Array;
  } => (b.kex === 2 ? { ...b, mlkemCiphertext: ct } : b));

const response: fc.Arbitrary<ResponseBody> = fc
  .record({
    userId: fc.string({ minLength: 1, maxLength: 60, unit: "grapheme" }),
    code: fc.option(fc.integer({ min: 0, max: 999_999 }), { nil: undefined }),
    paddingLength: padding,
  })
  .map(({ code, ...b }) => (code === undefined ? b : { ...b, totpCode: code }));

function isMalformed(e: unknown): boolean {
  return e instanceof ProtocolError && (e.code === "MALFORMED" || e.code === "TOO_LARGE");
}

Deno.test("decodeHelloBody(encodeHelloBody(b)) equals b (property)", () => {
  fc.assert(fc.property(hello, (b) => assert.deepEqual(decodeHelloBody(encodeHelloBody(b)), b)), {
    numRuns: 200,
  });
});

Deno.test("decodeServerHelloBody(encodeServerHelloBody(b)) equals b, and `signed` is the prefix (property)", () => {
  fc.assert(
    fc.property(serverHello, (b) => {
      const enc = encodeServerHelloBody(b);
      const { signed, ...rest } = decodeServerHelloBody(enc);
      assert.deepEqual(rest, b);
      assert.deepEqual(signed, enc.subarray(0, enc.length - 64));
    }),
    { numRuns: 200 },
  );
});

Deno.test("decodeResponseBody(encodeResponseBody(b)) equals b (property)", () => {
  fc.assert(
    fc.property(response, (b) => assert.deepEqual(decodeResponseBody(encodeResponseBody(b)), b)),
    { numRuns: 300 },
  );
});

Deno.test("decodeResultBody(encodeResultBody(b)) equals b (property)", () => {
  fc.assert(
    fc.property(
      fc.record({ sessionId: bytes(16), paddingLength: padding }),
      (b) => assert.deepEqual(decodeResultBody(encodeResultBody(b)), { ...b }),
    ),
  );
});

Deno.test("decoders refuse random bytes only with MALFORMED or TOO_LARGE (property)", () => {
  const decoders = [decodeHelloBody, decodeServerHelloBody, decodeResponseBody, decodeResultBody];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1600 }), (b) => {
      for (const d of decoders) {
        try {
          d(b);
        } catch (e) {
          assert.ok(isMalformed(e), String(e));
        }
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("decoders refuse a trailing byte and a truncated body as MALFORMED (property)", () => {
  fc.assert(
    fc.property(hello, response, fc.nat(), (h, r, cut) => {
      for (
        const [enc, dec] of [[encodeHelloBody(h), decodeHelloBody], [
          encodeResponseBody(r),
          decodeResponseBody,
        ]] as const
      ) {
        const withExtra = new Uint8Array([...enc, 0]);
        assert.throws(
          () => dec(withExtra),
          (e) => e instanceof ProtocolError && e.code === "MALFORMED",
        );
        const short = enc.subarray(0, cut % enc.length);
        assert.throws(
          () => dec(short),
          (e) => e instanceof ProtocolError && e.code === "MALFORMED",
        );
      }
    }),
    { numRuns: 100 },
  );
});

Deno.test("decodeHelloBody() refuses non-zero padding, empty or long lists, and a missing ML-KEM key", () => {
  const base: HelloBody = {
    versions: [1],
    kex: [1],
    aead: [1],
    nonce: new Uint8Array(32),
    timestampMs: 5,
    paddingLength: 3,
  };
  const enc = encodeHelloBody(base);
  const badPad = enc.slice();
  badPad[badPad.length - 1] = 1;
  assert.throws(() => decodeHelloBody(badPad), /padding is not zero/);
  const empty = enc.slice();
  empty[0] = 0;
  assert.throws(() => decodeHelloBody(empty), /count 0/);
  const long = enc.slice();
  long[0] = 9;
  assert.throws(() => decodeHelloBody(long), /count 9/);
  // Offer the hybrid (id 2) without the 1184-byte key behind it.
  const noKey = enc.slice();
  noKey[4] = 2;
  assert.throws(
    () => decodeHelloBody(noKey),
    (e) => e instanceof ProtocolError && e.code === "MALFORMED",
  );
  assertThrowsWith(
    () => encodeHelloBody({ ...base, kex: [2] }),
    TypeError,
    "Cannot encode Hello: ML-KEM key must be present iff the hybrid is offered",
  );
});

Deno.test("decodeResponseBody() refuses a 7-digit TOTP code, an empty user id and bad UTF-8", () => {
  const enc = encodeResponseBody({ userId: "bob", totpCode: 1, paddingLength: 0 });
  const big = enc.slice();
  new DataView(big.buffer).setUint32(4, 1_000_000);
  assert.throws(() => decodeResponseBody(big), /more than 6 digits/);
  assert.throws(() => decodeResponseBody(new Uint8Array([0, 0xff, 0xff, 0xff, 0xff, 0])), /empty/);
  assert.throws(
    () => decodeResponseBody(new Uint8Array([1, 0xc3, 0xff, 0xff, 0xff, 0xff, 0])),
    /UTF-8/,
  );
  assertThrowsWith(
    () => encodeResponseBody({ userId: "", paddingLength: 0 }),
    RangeError,
    "Cannot encode user id length: 0 is outside 1..255",
  );
  assertThrowsWith(
    () => encodeResponseBody({ userId: "x".repeat(256), paddingLength: 0 }),
    RangeError,
    "Cannot encode user id length: 256 is outside 1..255",
  );
});
