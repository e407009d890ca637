import { strict as assert } from "node:assert";
import { ConfigError } from "../../lib/errors.ts";
import { chachaOpen } from "../../lib/crypto/chacha20_poly1305.ts";
import {
  decodeTicketKeys,
  DEFAULT_TICKET_LIFETIME_MS,
  encodeTicketKeys,
  generateTicketKey,
  TICKET_MAX_BYTES,
  TicketKeyring,
  type TicketState,
} from "../../lib/handshake/mod.ts";
import { hex } from "../crypto/_hex.ts";
import { drbg, T0 } from "./_helpers.ts";
import { assertProtocolError, assertThrowsWith } from "../support/assert.ts";

const enc = new TextEncoder();

function state(userId = "alice", issuedMs = T0): TicketState {
  const r = drbg(`ticket state ${userId}`);
  return { sessionId: r(16), resumptionSecret: r(32), userId, issuedMs };
}

function sameState(a: TicketState | undefined, b: TicketState): void {
  assert.ok(a !== undefined, "ticket did not open");
  assert.deepEqual(
    { ...a, sessionId: hex(a.sessionId), resumptionSecret: hex(a.resumptionSecret) },
    { ...b, sessionId: hex(b.sessionId), resumptionSecret: hex(b.resumptionSecret) },
  );
}

function ring(ids: number[], label = "ring", now = T0, lifetimeMs?: number): TicketKeyring {
  const keys = ids.map((id) => generateTicketKey(id, drbg(`${label} key ${id}`)));
  return new TicketKeyring(keys, {
    now: () => now,
    random: drbg(`${label} nonces`),
    ...(lifetimeMs === undefined ? {} : { lifetimeMs }),
  });
}

Deno.test("TicketKeyring.open() returns what seal() put in", () => {
  const r = ring([1]);
  for (const id of ["a", "alice", "ünïcødé", "x".repeat(255)]) {
    const s = state(id);
    const t = r.seal(s);
    assert.equal(t.length, 89 + enc.encode(id).length);
    assert.ok(t.length <= TICKET_MAX_BYTES);
    sameState(r.open(t), s);
  }
});

Deno.test("a ticket follows the written layout: key id, nonce, AEAD with the key id as AAD", () => {
  const key = generateTicketKey(0x01020304, drbg("layout key"));
  const r = new TicketKeyring([key], { now: () => T0, random: drbg("layout nonces") });
  const s = state("bob");
  const t = r.seal(s);
  assert.equal(hex(t.subarray(0, 4)), "01020304");
  assert.equal(hex(t.subarray(4, 16)), hex(drbg("layout nonces")(12)));
  const plain = chachaOpen(key.key, t.subarray(4, 16), t.subarray(16), t.subarray(0, 4));
  const issued = new Uint8Array(8);
  new DataView(issued.buffer).setBigUint64(0, BigInt(T0));
  assert.equal(
    hex(plain),
    hex(s.sessionId) + hex(s.resumptionSecret) + hex(issued) + "03" + hex(enc.encode("bob")),
  );
  // A different key id as AAD does not open.
  assertProtocolError(
    () => chachaOpen(key.key, t.subarray(4, 16), t.subarray(16), new Uint8Array(4)),
    "DECRYPT_FAILED",
    /bad tag/,
  );
});

Deno.test("every ticket has its own nonce, so two seals of one state differ", () => {
  const r = ring([1]);
  const s = state();
  assert.notEqual(hex(r.seal(s)), hex(r.seal(s)));
});

Deno.test("rotation: the first key seals, every key opens; a dropped key's tickets are refused", () => {
  const k1 = generateTicketKey(1, drbg("rot 1"));
  const k2 = generateTicketKey(2, drbg("rot 2"));
  const old = new TicketKeyring([k1], { now: () => T0 });
  const rotated = new TicketKeyring([k2, k1], { now: () => T0 });
  const dropped = new TicketKeyring([k2], { now: () => T0 });
  const s = state();
  const fromOld = old.seal(s);
  const fromNew = rotated.seal(s);
  assert.deepEqual(rotated.keyIds, [2, 1]);
  assert.equal(hex(fromNew.subarray(0, 4)), "00000002");
  sameState(rotated.open(fromOld), s);
  sameState(dropped.open(fromNew), s);
  assert.equal(dropped.open(fromOld), undefined);
  assert.match((dropped.inspect(fromOld) as { reason: string }).reason, /key id 1 is not in/);
  assert.equal(old.open(fromNew), undefined, "a server not yet given the new key refuses it");
});

Deno.test("a ticket from another keyring is refused, even under the same key id", () => {
  const s = state();
  const t = ring([1], "theirs").seal(s);
  const ours = ring([1], "ours");
  assert.equal(ours.open(t), undefined);
  assert.match((ours.inspect(t) as { reason: string }).reason, /does not open under key 1/);
});

Deno.test("a ticket is refused after its lifetime and when issued implausibly far ahead", () => {
  const s = state("alice", T0);
  const t = ring([1], "life").seal(s);
  sameState(ring([1], "life", T0 + DEFAULT_TICKET_LIFETIME_MS).open(t), s);
  const late = ring([1], "life", T0 + DEFAULT_TICKET_LIFETIME_MS + 1);
  assert.equal(late.open(t), undefined);
  assert.match((late.inspect(t) as { reason: string }).reason, /expired 0\.0 s ago/);
  const short = ring([1], "life", T0 + 10_001, 10_000);
  assert.match((short.inspect(t) as { reason: string }).reason, /expired/);
  sameState(ring([1], "life", T0 - 5_000, 10_000).open(t), s);
  const early = ring([1], "life", T0 - 10_001, 10_000);
  assert.match((early.inspect(t) as { reason: string }).reason, /in the future/);
});

Deno.test("every flipped bit and every truncation of a ticket is refused", () => {
  const r = ring([1]);
  const t = r.seal(state());
  for (let i = 0; i < t.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = t.slice();
      bad[i]! ^= 1 << bit;
      assert.equal(r.open(bad), undefined, `byte ${i} bit ${bit}`);
    }
  }
  for (let n = 0; n < t.length; n++) assert.equal(r.open(t.subarray(0, n)), undefined, `cut ${n}`);
  assert.match((r.inspect(new Uint8Array(20)) as { reason: string }).reason, /length 20/);
  assert.equal(r.open(new Uint8Array(TICKET_MAX_BYTES + 1)), undefined);
});

Deno.test("TicketKeyring refuses bad keys, lifetimes and states loudly", () => {
  const key = new Uint8Array(32);
  assertThrowsWith(
    () => new TicketKeyring([]),
    RangeError,
    "Cannot use ticket keys: the list is empty",
  );
  assertThrowsWith(
    () => new TicketKeyring([{ id: 1, key: new Uint8Array(31) }]),
    RangeError,
    "Cannot use ticket key 1: length 31 is not 32",
  );
  assertThrowsWith(
    () => new TicketKeyring([{ id: -1, key }]),
    RangeError,
    "Cannot use ticket key id -1: not an integer in 0..4294967295",
  );
  assertThrowsWith(
    () => new TicketKeyring([{ id: 2 ** 32, key }]),
    RangeError,
    "Cannot use ticket key id 4294967296: not an integer in 0..4294967295",
  );
  assertThrowsWith(
    () => new TicketKeyring([{ id: 1.5, key }]),
    RangeError,
    "Cannot use ticket key id 1.5: not an integer in 0..4294967295",
  );
  assert.throws(() => new TicketKeyring([{ id: 1, key }, { id: 1, key }]), /appears twice/);
  assertThrowsWith(
    () => new TicketKeyring([{ id: 1, key }], { lifetimeMs: 0 }),
    RangeError,
    "Cannot use ticket lifetime 0 ms: not a finite number > 0",
  );
  assertThrowsWith(
    () => new TicketKeyring([{ id: 1, key }], { lifetimeMs: NaN }),
    RangeError,
    "Cannot use ticket lifetime NaN ms: not a finite number > 0",
  );
  const r = new TicketKeyring([{ id: 1, key }]);
  const s = state();
  assertThrowsWith(
    () => r.seal({ ...s, sessionId: new Uint8Array(15) }),
    RangeError,
    "Cannot seal ticket: session id length 15 is not 16",
  );
  assertThrowsWith(
    () => r.seal({ ...s, resumptionSecret: new Uint8Array(33) }),
    RangeError,
    "Cannot seal ticket: resumption secret length 33 is not 32",
  );
  assertThrowsWith(
    () => r.seal({ ...s, userId: "" }),
    RangeError,
    "Cannot seal ticket: user id is 0 bytes, outside 1..255",
  );
  assertThrowsWith(
    () => r.seal({ ...s, userId: "x".repeat(256) }),
    RangeError,
    "Cannot seal ticket: user id is 256 bytes, outside 1..255",
  );
  assertThrowsWith(
    () => r.seal({ ...s, issuedMs: -1 }),
    RangeError,
    "Cannot seal ticket: issue time -1 is not a safe integer >= 0",
  );
  assertThrowsWith(
    () => r.seal({ ...s, issuedMs: 1.5 }),
    RangeError,
    "Cannot seal ticket: issue time 1.5 is not a safe integer >= 0",
  );
});

Deno.test("the keyring keeps its own copy of the keys", () => {
  const k = generateTicketKey(9, drbg("copy"));
  const r = new TicketKeyring([k], { now: () => T0 });
  const t = r.seal(state());
  k.key.fill(0);
  assert.ok(r.open(t) !== undefined);
});

Deno.test("encodeTicketKeys() writes id:key lines, sealing key first, and decodeTicketKeys() reads them", () => {
  const keys = [generateTicketKey(20, drbg("file 20")), generateTicketKey(4294967295, drbg("max"))];
  const text = encodeTicketKeys(keys);
  const lines = text.split("\n");
  assert.equal(lines.length, 3);
  assert.equal(lines[2], "");
  assert.match(lines[0]!, /^20:[A-Za-z0-9_-]{43}$/);
  assert.match(lines[1]!, /^4294967295:[A-Za-z0-9_-]{43}$/);
  const back = decodeTicketKeys(text);
  assert.deepEqual(back.map((k) => [k.id, hex(k.key)]), keys.map((k) => [k.id, hex(k.key)]));
  // Comments, blank lines, CRLF and indentation are tolerated.
  const loose = `# ticket keys, newest first\r\n\r\n  ${lines[0]}\r\n${lines[1]}`;
  assert.deepEqual(decodeTicketKeys(loose).map((k) => k.id), [20, 4294967295]);
});

Deno.test("decodeTicketKeys() says where a key file is wrong, without echoing key material", () => {
  const good = encodeTicketKeys([generateTicketKey(1, drbg("good"))]).trim();
  const secret = good.slice(2);
  const cases: [string, RegExp, number, number][] = [
    [`${good}\n${secret}`, /is not id:key/, 2, 1],
    [`${good}\n2: ${secret}`, /is not id:key/, 2, 1],
    [`${good}\n\n 2:${secret.slice(1)}`, /ticket key 2: not 32 bytes of base64url/, 3, 4],
    [`${good}\n3:${secret}!`, /^f\.keys:2:3: Cannot read ticket key 3: not 32 bytes/, 2, 3],
    [`${good}\n3:${secret}AAAA`, /ticket key 3: not 32 bytes/, 2, 3],
    [`${good}\n4294967296:${secret}`, /id 4294967296 exceeds 4294967295/, 2, 1],
    [`${good}\n1:${secret}`, /id 1 appears twice.*first on line 1/, 2, 1],
    [`# nothing here\n`, /holds no key/, 0, 0],
  ];
  for (const [text, message, line, column] of cases) {
    try {
      decodeTicketKeys(text, { file: "f.keys" });
      assert.fail(`accepted ${JSON.stringify(text)}`);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, message);
      assert.equal(e.file, "f.keys");
      if (line > 0) {
        assert.equal(e.line, line, e.message);
        assert.equal(e.column, column, e.message);
      }
      assert.ok(!e.message.includes(secret.slice(0, 16)), `key material in ${e.message}`);
    }
  }
});

Deno.test("encodeTicketKeys() refuses what a keyring would refuse", () => {
  assertThrowsWith(
    () => encodeTicketKeys([]),
    RangeError,
    "Cannot use ticket keys: the list is empty",
  );
  assertThrowsWith(
    () => encodeTicketKeys([{ id: 1, key: new Uint8Array(16) }]),
    RangeError,
    "Cannot use ticket key 1: length 16 is not 32",
  );
  assertThrowsWith(
    () => generateTicketKey(-1),
    RangeError,
    "Cannot use ticket key id -1: not an integer in 0..4294967295",
  );
});
