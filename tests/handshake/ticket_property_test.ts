import { strict as assert } from "node:assert";
import fc from "fast-check";
import { ConfigError } from "../../lib/errors.ts";
import {
  decodeTicketKeys,
  encodeTicketKeys,
  TICKET_MAX_BYTES,
  type TicketKey,
  TicketKeyring,
} from "../../lib/handshake/mod.ts";
import { hex } from "../crypto/_hex.ts";
import { drbg, T0 } from "./_helpers.ts";

const enc = new TextEncoder();
const LIFETIME = 600_000;

const userIdArb = fc.string({ unit: "grapheme", minLength: 1, maxLength: 120 }).filter((s) => {
  const n = enc.encode(s).length;
  return n >= 1 && n <= 255;
});
const stateArb = fc.record({
  sessionId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  resumptionSecret: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  userId: userIdArb,
  issuedMs: fc.integer({ min: T0 - LIFETIME, max: T0 + LIFETIME }),
});
const keyArb: fc.Arbitrary<TicketKey> = fc.record({
  id: fc.integer({ min: 0, max: 0xffff_ffff }),
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
});
const keysArb = fc.uniqueArray(keyArb, { minLength: 1, maxLength: 6, selector: (k) => k.id });

function keyring(keys: TicketKey[], label = "prop"): TicketKeyring {
  return new TicketKeyring(keys, { now: () => T0, lifetimeMs: LIFETIME, random: drbg(label) });
}

Deno.test("property: open(seal(state)) is state, and the ticket is 89 + |user id| bytes under the first key", () => {
  fc.assert(
    fc.property(keysArb, stateArb, (keys, s) => {
      const t = keyring(keys).seal(s);
      assert.equal(t.length, 89 + enc.encode(s.userId).length);
      assert.ok(t.length <= TICKET_MAX_BYTES);
      assert.equal(new DataView(t.buffer, t.byteOffset).getUint32(0), keys[0]!.id);
      const back = keyring(keys).open(t);
      assert.ok(back !== undefined);
      assert.equal(hex(back.sessionId), hex(s.sessionId));
      assert.equal(hex(back.resumptionSecret), hex(s.resumptionSecret));
      assert.equal(back.userId, s.userId);
      assert.equal(back.issuedMs, s.issuedMs);
    }),
    { numRuns: 200 },
  );
});

Deno.test("property: a ticket opens with any keyring that holds its key, at any position", () => {
  fc.assert(
    fc.property(keysArb, stateArb, fc.nat(), (keys, s, pick) => {
      const sealer = keys[pick % keys.length]!;
      const t = keyring([sealer]).seal(s);
      assert.ok(keyring(keys).open(t) !== undefined);
      const without = keys.filter((k) => k.id !== sealer.id);
      if (without.length > 0) assert.equal(keyring(without).open(t), undefined);
    }),
    { numRuns: 200 },
  );
});

Deno.test("property: flipping any bit of a ticket makes it refused", () => {
  fc.assert(
    fc.property(keysArb, stateArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (keys, s, at, bit) => {
      const t = keyring(keys).seal(s);
      t[at % t.length]! ^= 1 << bit;
      assert.equal(keyring(keys).open(t), undefined);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: arbitrary bytes are refused without a throw", () => {
  fc.assert(
    fc.property(keysArb, fc.uint8Array({ maxLength: TICKET_MAX_BYTES + 8 }), (keys, bytes) => {
      const r = keyring(keys).inspect(bytes);
      assert.ok("reason" in r);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: a ticket is accepted exactly while |now - issued| <= lifetime", () => {
  fc.assert(
    fc.property(stateArb, fc.integer({ min: -2 * LIFETIME, max: 2 * LIFETIME }), (s, skew) => {
      const keys = [{ id: 1, key: new Uint8Array(32).fill(7) }];
      const t = keyring(keys).seal({ ...s, issuedMs: T0 });
      const r = new TicketKeyring(keys, { now: () => T0 + skew, lifetimeMs: LIFETIME });
      assert.equal(r.open(t) !== undefined, Math.abs(skew) <= LIFETIME);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: decodeTicketKeys(encodeTicketKeys(keys)) is keys, with comments and blank lines anywhere", () => {
  const noise = fc.constantFrom("", "# comment", "   ", "#", "\r");
  fc.assert(
    fc.property(keysArb, fc.array(noise, { maxLength: 8 }), fc.boolean(), (keys, extra, crlf) => {
      const lines = encodeTicketKeys(keys).split("\n");
      for (const [i, n] of extra.entries()) lines.splice(i % (lines.length + 1), 0, n);
      const text = lines.join(crlf ? "\r\n" : "\n");
      const back = decodeTicketKeys(text);
      assert.deepEqual(
        back.map((k) => [k.id, hex(k.key)]),
        keys.map((k) => [k.id, hex(k.key)]),
      );
    }),
    { numRuns: 200 },
  );
});

Deno.test("property: decodeTicketKeys() either returns valid keys or throws ConfigError", () => {
  const line = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.tuple(fc.nat(), fc.base64String({ maxLength: 48 })).map(([id, b]) =>
      `${id}:${b.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`
    ),
  );
  fc.assert(
    fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
      try {
        const keys = decodeTicketKeys(lines.join("\n"));
        assert.ok(keys.length > 0);
        assert.ok(keyring(keys) instanceof TicketKeyring);
      } catch (e) {
        assert.ok(e instanceof ConfigError, `${e}`);
      }
    }),
    { numRuns: 500 },
  );
});
