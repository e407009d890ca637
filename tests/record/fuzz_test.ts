/**
 * Property tests (fast-check) over both crypto backends: whatever lengths,
 * offsets, overlaps, nonces, truncations, extensions, flipped bits or
 * garbage a caller or a peer produces, every call either does exactly what
 * `@noble/ciphers` (the reference) does or is refused with the documented
 * error; no byte outside the output view changes; and the backends agree
 * on every outcome.
 *
 * A third backend runs the real libcrypto behind a guard that checks, at
 * the boundary to C, every call the record layer makes: each length within
 * its buffer, the key, nonce and tag sizes, a live context. A violation
 * fails the test whether or not it would have corrupted memory visibly.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ProtocolError } from "../../lib/errors.ts";
import {
  type AeadId,
  createRecordOpener,
  createRecordSealer,
  type CryptoBackend,
  MAX_RECORD_CIPHERTEXT,
  type PaddingPolicy,
  type RecordOpener,
} from "../../lib/record/mod.ts";
import type { CipherKey } from "../../lib/record/_backend.ts";
import { disjointOrSame } from "../../lib/record/_checks.ts";
import { HeaderMask } from "../../lib/record/_mask.ts";
import { deriveLenKey } from "../../lib/record/_keys.ts";
import { BACKENDS, join, pattern, secretOf, SUITES, u16Source } from "./_helpers.ts";
import { openLibcrypto } from "../../lib/openssl/mod.ts";
import { createOpenSslBackend, type EvpAeadApi, type Libcrypto } from "../../lib/record/mod.ts";

const RUNS = 150;

/**
 * `lib` behind an `EvpAeadApi` that asserts, before each call reaches C,
 * what C will read or write: `inl` bytes of `in` and of `out`, 16 tag bytes,
 * a 12-byte nonce, a key of the cipher's length, 32 bytes for `Final`, one
 * `int` for each length out-parameter, and a context that is live.
 */
function guarded<P>(
  lib: Libcrypto<P>,
): { lib: Libcrypto<P>; calls: () => number; check: () => void } {
  const a = lib.api;
  // Kept as well as thrown, so a violation is seen even where a caller swallows the error.
  const violations: string[] = [];
  const must = (ok: boolean, what: string) => {
    if (ok) return;
    violations.push(what);
    assert.fail(what);
  };
  const keyLen = new Map<P, number>([
    [lib.ciphers["aes-128-gcm"], 16],
    [lib.ciphers["aes-256-gcm"], 32],
    [lib.ciphers["chacha20-poly1305"], 32],
  ]);
  const live = new Set<P>();
  const keyed = new Set<P>();
  let calls = 0;
  const ctxOk = (ctx: P, what: string) => {
    calls++;
    must(live.has(ctx), `${what}: a context that is not live`);
  };
  const init = (ctx: P, cipher: P | null, key: Uint8Array | null, iv: Uint8Array | null) => {
    ctxOk(ctx, "Init");
    if (cipher !== null) {
      must(key?.length === keyLen.get(cipher), "Init: key of the cipher's length");
      must(iv === null, "Init: no nonce with the key");
      keyed.add(ctx);
    } else {
      must(keyed.has(ctx), "Init: a new nonce for a context that has a key");
      must(key === null, "Init: no key with a nonce");
      must(iv?.length === 12, "Init: a 12-byte nonce");
    }
  };
  const update = (
    ctx: P,
    out: Uint8Array | null,
    outl: Int32Array,
    input: Uint8Array,
    n: number,
  ) => {
    ctxOk(ctx, "Update");
    must(Number.isInteger(n) && n > 0 && n <= 2 ** 31 - 1, `Update: length ${n}`);
    must(n <= input.length, `Update reads ${n} bytes of a ${input.length}-byte input`);
    must(out === null || n <= out.length, `Update writes ${n} bytes to ${out?.length}`);
    must(outl.length >= 1, "Update: an int for the length");
  };
  const final = (ctx: P, out: Uint8Array, outl: Int32Array) => {
    ctxOk(ctx, "Final");
    must(out.length >= 32 && outl.length >= 1, "Final: 32 bytes of room");
  };
  const api: EvpAeadApi<P> = {
    ERR_clear_error: () => a.ERR_clear_error(),
    EVP_CIPHER_CTX_new: () => {
      const ctx = a.EVP_CIPHER_CTX_new();
      if (ctx !== null) live.add(ctx);
      return ctx;
    },
    EVP_CIPHER_CTX_free: (ctx) => {
      ctxOk(ctx, "free");
      live.delete(ctx);
      a.EVP_CIPHER_CTX_free(ctx);
    },
    EVP_EncryptInit_ex: (ctx, cipher, engine, key, iv) => {
      init(ctx, cipher, key, iv);
      return a.EVP_EncryptInit_ex(ctx, cipher, engine, key, iv);
    },
    EVP_DecryptInit_ex: (ctx, cipher, engine, key, iv) => {
      init(ctx, cipher, key, iv);
      return a.EVP_DecryptInit_ex(ctx, cipher, engine, key, iv);
    },
    EVP_EncryptUpdate: (ctx, out, outl, input, n) => {
      update(ctx, out, outl, input, n);
      return a.EVP_EncryptUpdate(ctx, out, outl, input, n);
    },
    EVP_DecryptUpdate: (ctx, out, outl, input, n) => {
      update(ctx, out, outl, input, n);
      return a.EVP_DecryptUpdate(ctx, out, outl, input, n);
    },
    EVP_EncryptFinal_ex: (ctx, out, outl) => {
      final(ctx, out, outl);
      return a.EVP_EncryptFinal_ex(ctx, out, outl);
    },
    EVP_DecryptFinal_ex: (ctx, out, outl) => {
      final(ctx, out, outl);
      return a.EVP_DecryptFinal_ex(ctx, out, outl);
    },
    EVP_CIPHER_CTX_ctrl: (ctx, type, arg, ptr) => {
      ctxOk(ctx, "ctrl");
      must(type === 0x10 || type === 0x11, `ctrl type ${type}`);
      must(arg === 16 && ptr.length >= 16, "ctrl: a 16-byte tag");
      return a.EVP_CIPHER_CTX_ctrl(ctx, type, arg, ptr);
    },
  };
  return {
    lib: { ...lib, api, library: `${lib.library} (guarded)` },
    calls: () => calls,
    check: () => assert.deepEqual(violations, [], "calls the guard refused"),
  };
}

// Opened before any test: a library stays loaded for the process.
const real = openLibcrypto(BACKENDS[1]!.backend.detail.split(",")[0]!);
if (typeof real === "string") throw new Error(real);
const guard = guarded(real);
/**
 * The two backends, and OpenSSL once more behind the guard, ahead of the
 * unguarded one: a bad call is stopped at the guard before the real one
 * could corrupt memory.
 */
const FUZZ = [
  BACKENDS[0]!,
  { be: "openssl-guarded", backend: createOpenSslBackend(guard.lib) },
  BACKENDS[1]!,
];

function keyLen(aead: AeadId): number {
  return aead === "aes-128-gcm" ? 16 : 32;
}

function reference(aead: AeadId, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) {
  return aead === "chacha20-poly1305" ? chacha20poly1305(key, nonce, aad) : gcm(key, nonce, aad);
}

/** What a call did: bytes, or the kind of error. */
type Outcome = { ok: Uint8Array } | { error: string };

function classify(e: unknown): string {
  if (e instanceof ProtocolError) return e.code;
  if (e instanceof RangeError) return "RangeError";
  if (e instanceof TypeError) return "TypeError";
  throw e; // anything else is a bug
}

async function outcome(f: () => Uint8Array | Promise<Uint8Array>): Promise<Outcome> {
  try {
    return { ok: (await f()).slice() };
  } catch (e) {
    return { error: classify(e) };
  }
}

async function importFresh(
  backend: CryptoBackend,
  aead: AeadId,
  key: Uint8Array,
  use: "seal" | "open",
): Promise<CipherKey> {
  return await backend.importKey(aead, key.slice(), use);
}

/** An arena of `size` bytes filled from `seed`, so what lies around each view is arbitrary. */
function arena(size: number, seed: number): Uint8Array {
  const a = new Uint8Array(size);
  for (let i = 0; i < size; i++) a[i] = (seed + i * 131) & 0xff;
  return a;
}

/** Bytes of `a` outside `[start, end)` equal those of `before`. */
function untouchedOutside(a: Uint8Array, before: Uint8Array, start: number, end: number): boolean {
  for (let i = 0; i < a.length; i++) {
    if ((i < start || i >= end) && a[i] !== before[i]) return false;
  }
  return true;
}

const sealCase = fc.record({
  aead: fc.constantFrom(...SUITES),
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  nonceLen: fc.constantFrom(0, 11, 12, 12, 12, 12, 13, 16),
  aad: fc.uint8Array({ maxLength: 40 }),
  pt: fc.uint8Array({ maxLength: 300 }),
  outDelta: fc.constantFrom(-17, -16, -1, 0, 0, 0, 0, 1, 16),
  placement: fc.constantFrom("apart", "inplace", "shifted"),
  shift: fc.integer({ min: -40, max: 40 }),
  seed: fc.nat(255),
});

Deno.test("sealTo()/seal(): any lengths, nonces and overlaps give noble's bytes or a refusal, on both backends alike", async () => {
  await fc.assert(
    fc.asyncProperty(sealCase, async (c) => {
      const key = c.key.subarray(0, keyLen(c.aead));
      const nonce = new Uint8Array(c.nonceLen).fill(9);
      const n = c.pt.length;
      const outLen = Math.max(0, n + 16 + c.outDelta);
      const size = 200 + 2 * (n + 40);
      const ptAt = 100;
      const outAt = c.placement === "apart"
        ? ptAt + n + 30
        : c.placement === "inplace"
        ? ptAt
        : Math.max(0, ptAt + c.shift);
      const valid = c.nonceLen === 12 && outLen === n + 16;
      const want = valid ? reference(c.aead, key, nonce, c.aad).encrypt(c.pt) : undefined;
      const results: Outcome[] = [];
      for (const { backend } of FUZZ) {
        guard.check(); // before the unguarded library is called
        const k = await importFresh(backend, c.aead, key, "seal");
        if (!k.sync) {
          // Web Crypto AES allocates its output: only the inputs can be wrong.
          const r = await outcome(() => k.seal(nonce, c.aad, c.pt));
          assert.equal("ok" in r, c.nonceLen === 12);
          if ("ok" in r) {
            assert.deepEqual(r.ok, reference(c.aead, key, nonce, c.aad).encrypt(c.pt));
          }
          continue;
        }
        const a = arena(size, c.seed);
        a.set(c.pt, ptAt);
        const before = a.slice();
        const pt = a.subarray(ptAt, ptAt + n);
        const out = a.subarray(outAt, outAt + outLen);
        const fits = disjointOrSame(pt, out);
        const r = await outcome(() => {
          k.sealTo(nonce, c.aad, pt, out);
          return out;
        });
        if (valid && fits) {
          assert.ok("ok" in r, JSON.stringify(r));
          assert.deepEqual(r.ok, want);
          assert.ok(untouchedOutside(a, before, outAt, outAt + outLen), "wrote outside the output");
        } else {
          assert.ok("error" in r && (r.error === "RangeError"), JSON.stringify(r));
          assert.deepEqual(a, before, "a refused call changed nothing");
        }
        results.push(r);
        k.wipe();
      }
      for (const r of results) assert.deepEqual(r, results[0], "the backends agree");
    }),
    { numRuns: RUNS },
  );
});

const openCase = fc.record({
  aead: fc.constantFrom(...SUITES),
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  aad: fc.uint8Array({ maxLength: 24 }),
  pt: fc.uint8Array({ maxLength: 200 }),
  mutation: fc.oneof(
    fc.constant({ kind: "none" as const, at: 0, v: 0 }),
    fc.record({
      kind: fc.constant("flip" as const),
      at: fc.nat(),
      v: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat(), v: fc.constant(0) }),
    fc.record({
      kind: fc.constant("extend" as const),
      at: fc.integer({ min: 1, max: 40 }),
      v: fc.nat(255),
    }),
    fc.record({
      kind: fc.constant("aad" as const),
      at: fc.nat(),
      v: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({
      kind: fc.constant("nonce" as const),
      at: fc.nat(11),
      v: fc.integer({ min: 1, max: 255 }),
    }),
  ),
  inPlace: fc.boolean(),
  outDelta: fc.constantFrom(-1, 0, 0, 0, 0, 1),
  seed: fc.nat(255),
});

Deno.test("openTo()/open(): truncated, extended, flipped or re-labelled input is refused alike, and no byte outside the output changes", async () => {
  await fc.assert(
    fc.asyncProperty(openCase, async (c) => {
      const key = c.key.subarray(0, keyLen(c.aead));
      const nonce = new Uint8Array(12).fill(4);
      let sealed: Uint8Array = reference(c.aead, key, nonce, c.aad).encrypt(c.pt);
      let aad = c.aad;
      const openNonce = nonce.slice();
      const m = c.mutation;
      if (m.kind === "flip") sealed[m.at % sealed.length]! ^= m.v;
      if (m.kind === "truncate") sealed = sealed.subarray(0, m.at % sealed.length);
      if (m.kind === "extend") sealed = join([sealed, new Uint8Array(m.at).fill(m.v)]);
      if (m.kind === "aad") {
        aad = aad.length === 0 ? Uint8Array.of(m.v) : aad.slice();
        if (c.aad.length > 0) aad[m.at % aad.length]! ^= m.v;
      }
      if (m.kind === "nonce") openNonce[m.at]! ^= m.v;
      const authentic = m.kind === "none";

      const results: string[] = [];
      for (const { backend } of FUZZ) {
        guard.check(); // before the unguarded library is called
        const k = await importFresh(backend, c.aead, key, "open");
        if (!k.sync) {
          const r = await outcome(() => k.open(openNonce, aad, sealed));
          if (authentic) assert.deepEqual(r, { ok: c.pt });
          else assert.deepEqual(r, { error: "DECRYPT_FAILED" });
          results.push(JSON.stringify(r));
          continue;
        }
        const n = sealed.length - 16;
        const outLen = Math.max(0, n + c.outDelta);
        const size = 100 + 2 * (sealed.length + 8);
        const a = arena(size, c.seed);
        const at = 50;
        a.set(sealed, at);
        const input = a.subarray(at, at + sealed.length);
        const outAt = c.inPlace ? at : at + sealed.length + 7;
        const out = a.subarray(outAt, outAt + outLen);
        const before = a.slice();
        const r = await outcome(() => {
          k.openTo(openNonce, aad, input, out);
          return out;
        });
        if (sealed.length < 16) {
          assert.deepEqual(r, { error: "DECRYPT_FAILED" }, "shorter than a tag");
          assert.deepEqual(a, before);
        } else if (outLen !== n) {
          assert.deepEqual(r, { error: "RangeError" });
          assert.deepEqual(a, before);
        } else if (authentic) {
          assert.deepEqual(r, { ok: c.pt });
          assert.ok(untouchedOutside(a, before, outAt, outAt + outLen), "wrote outside the output");
        } else {
          assert.deepEqual(r, { error: "DECRYPT_FAILED" });
          assert.ok(out.every((b) => b === 0), "no unauthenticated plaintext is left");
          assert.ok(untouchedOutside(a, before, outAt, outAt + outLen), "wrote outside the output");
        }
        results.push(JSON.stringify(r));
        k.wipe();
      }
      // Web Crypto AES allocates its output, so a wrong one given to OpenSSL has no counterpart.
      const first = c.outDelta === 0 || sealed.length < 16 || c.aead === "chacha20-poly1305"
        ? 0
        : 1;
      for (const r of results.slice(first)) assert.equal(r, results[first], "the backends agree");
    }),
    { numRuns: RUNS },
  );
});

const POLICIES: readonly PaddingPolicy[] = [{ mode: "none" }, { mode: "random", max: 64 }, {
  mode: "bucket",
  max: 300,
}];

const streamCase = fc.record({
  aead: fc.constantFrom(...SUITES),
  sizes: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 6 }),
  padding: fc.constantFrom(...POLICIES),
  pads: fc.array(fc.nat(65535), { maxLength: 8 }),
  ratchetEvery: fc.integer({ min: 1, max: 4 }),
  mutation: fc.oneof(
    fc.constant({ kind: "none" as const, at: 0, bytes: new Uint8Array(0) }),
    fc.record({
      kind: fc.constant("truncate" as const),
      at: fc.nat(),
      bytes: fc.constant(new Uint8Array(0)),
    }),
    fc.record({
      kind: fc.constant("flip" as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 1 }),
    }),
    fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }),
    }),
    fc.record({
      kind: fc.constant("garbage" as const),
      at: fc.constant(0),
      bytes: fc.uint8Array({ maxLength: 600 }),
    }),
    fc.record({
      kind: fc.constant("duplicate" as const),
      at: fc.nat(),
      bytes: fc.constant(new Uint8Array(0)),
    }),
    fc.record({
      kind: fc.constant("oversize" as const),
      at: fc.nat(),
      bytes: fc.constant(new Uint8Array(0)),
    }),
  ),
  chunks: fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 5 }),
  whole: fc.boolean(),
});

/** Feeds `wire` to `opener` in chunks; returns what was delivered and how it ended. */
async function feed(
  opener: RecordOpener,
  wire: Uint8Array,
  chunks: number[],
  whole: boolean,
): Promise<{ delivered: Uint8Array[]; end: string }> {
  const ps: Promise<Uint8Array>[] = [];
  let thrown: string | undefined;
  let held = new Uint8Array(0);
  for (let o = 0, i = 0; o < wire.length && thrown === undefined; i++) {
    const n = Math.min(chunks[i % chunks.length]!, wire.length - o);
    const chunk = wire.slice(o, o + n);
    o += n;
    try {
      if (whole) {
        const bytes = join([held, chunk]);
        const { records, used } = opener.pushWhole(bytes);
        ps.push(...records);
        held = bytes.slice(used);
        bytes.fill(0); // the caller's buffer is reused: nothing of it may be kept
      } else {
        ps.push(...opener.push(chunk));
        chunk.fill(0);
      }
    } catch (e) {
      thrown = `throw ${classify(e)}`;
    }
  }
  const delivered: Uint8Array[] = [];
  let end = thrown ?? (held.length > 0 || opener.buffered > 0 ? "incomplete" : "clean");
  for (const p of ps) {
    try {
      delivered.push(await p);
    } catch (e) {
      const code = classify(e); // rethrows anything but the documented errors
      if (thrown === undefined) end = `reject ${code}`;
      break;
    }
  }
  return { delivered, end };
}

Deno.test("openers on both backends deliver the same authentic prefix of any damaged stream, and nothing else", async () => {
  const sealers = BACKENDS.find((b) => b.be === "openssl")!.backend;
  await fc.assert(
    fc.asyncProperty(streamCase, async (c) => {
      const secret = secretOf(90);
      const sealer = await createRecordSealer(c.aead, secret, {
        backend: sealers,
        padding: c.padding,
        random: u16Source(c.pads),
        ratchet: { records: c.ratchetEvery },
      });
      const payloads = c.sizes.map((n, i) => pattern(n, i));
      const recs: Uint8Array[] = [];
      for (const p of payloads) recs.push(await sealer.seal(p));
      let wire = join(recs);
      const m = c.mutation;
      if (m.kind === "truncate") wire = wire.subarray(0, m.at % wire.length);
      if (m.kind === "flip") wire[m.at % wire.length]! ^= m.bytes[0]! | 1;
      if (m.kind === "insert") {
        const at = m.at % (wire.length + 1);
        wire = join([wire.subarray(0, at), m.bytes, wire.subarray(at)]);
      }
      if (m.kind === "garbage") wire = m.bytes;
      if (m.kind === "duplicate") {
        const i = m.at % recs.length;
        wire = join([...recs.slice(0, i + 1), recs[i]!, ...recs.slice(i + 1)]);
      }
      if (m.kind === "oversize") {
        // Record i's header rewritten (correctly masked) to claim a body above the maximum.
        const i = m.at % recs.length;
        const mask = new HeaderMask(deriveLenKey(secret)).mask(i);
        const h = (MAX_RECORD_CIPHERTEXT + 1 + (m.at % 1000)) ^ mask;
        const off = recs.slice(0, i).reduce((s, r) => s + r.length, 0);
        wire = wire.slice();
        wire.set([h >>> 16 & 0xff, h >>> 8 & 0xff, h & 0xff], off);
      }
      const ends: { delivered: Uint8Array[]; end: string }[] = [];
      for (const { backend } of FUZZ) {
        guard.check(); // before the unguarded library is called
        const opener = await createRecordOpener(c.aead, secret, { backend });
        ends.push(await feed(opener, wire, c.chunks, c.whole));
      }
      for (const r of ends) {
        assert.ok(r.delivered.length <= payloads.length);
        assert.deepEqual(r.delivered, payloads.slice(0, r.delivered.length), "only authentic data");
        if (m.kind === "none") assert.deepEqual(r, { delivered: payloads, end: "clean" });
        if (m.kind === "oversize") assert.equal(r.end, "throw TOO_LARGE");
      }
      for (const e of ends) assert.deepEqual(e, ends[0], "the backends agree");
    }),
    { numRuns: RUNS },
  );
});

const intoCase = fc.record({
  aead: fc.constantFrom(...SUITES),
  size: fc.integer({ min: 0, max: 2000 }),
  outLen: fc.integer({ min: 0, max: 2100 }),
  offset: fc.integer({ min: -3, max: 2100 }),
  pad: fc.nat(65535),
});

Deno.test("sealInto(): any offset and output size gives seal()'s bytes there or a RangeError, touching nothing else", async () => {
  for (const { be, backend } of FUZZ) {
    guard.check();
    await fc.assert(
      fc.asyncProperty(intoCase, async (c) => {
        const opts = { backend, padding: { mode: "random", max: 100 } as const };
        const a = await createRecordSealer(c.aead, secretOf(91), {
          ...opts,
          random: u16Source([c.pad]),
        });
        if (!a.synchronous) return; // Web Crypto AES: covered in backend_test.ts
        const b = await createRecordSealer(c.aead, secretOf(91), {
          ...opts,
          random: u16Source([c.pad]),
        });
        const payload = pattern(c.size, 3);
        const want = await b.seal(payload);
        const out = arena(c.outLen, c.size);
        const before = out.slice();
        const r = await outcome(() => {
          const n = a.sealInto(payload, out, c.offset);
          return out.subarray(c.offset, c.offset + n);
        });
        const fits = c.offset >= 0 && c.offset <= c.outLen && c.outLen - c.offset >= want.length;
        if (fits) {
          assert.deepEqual(r, { ok: want }, be);
          assert.ok(untouchedOutside(out, before, c.offset, c.offset + want.length));
          assert.equal(a.recordsSealed, 1);
        } else {
          assert.deepEqual(r, { error: "RangeError" }, be);
          assert.deepEqual(out, before);
          assert.equal(a.recordsSealed, 0);
        }
      }),
      { numRuns: RUNS },
    );
  }
});

Deno.test("the guard saw the calls (the properties above ran through it) and refused none", () => {
  assert.ok(guard.calls() > 1000, `${guard.calls()} calls`);
  guard.check();
});
