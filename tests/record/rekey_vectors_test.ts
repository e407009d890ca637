/**
 * tests/vectors/record_rekey_v1.json: DH re-key exchanges and records across
 * DH re-key epochs (docs/PROTOCOL.md part 4 (re-key and release) section 6).
 *
 * The reference below is built only on `@noble/*` and the record reference
 * (`_reference.ts`), sharing no code with `lib/record` or `lib/session`.
 * Regenerate with
 *   deno run --allow-write=tests/vectors tests/record/rekey_vectors_test.ts
 *   deno fmt tests/vectors/record_rekey_v1.json
 *
 * @module
 */
import assert from "node:assert/strict";
import { x25519 } from "@noble/curves/ed25519.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { createRecordOpener, createRecordSealer } from "../../lib/record/mod.ts";
import { BACKENDS, join, u16Source } from "./_helpers.ts";
import { hex, refMask, refNonce, type Suite, unhex } from "./_reference.ts";

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);

function label(l: string, ctx: Uint8Array = EMPTY): Uint8Array {
  const a = enc.encode(`ns1 ${l}`);
  const out = new Uint8Array(a.length + ctx.length);
  out.set(a);
  out.set(ctx, a.length);
  return out;
}

/** Section 2.2: the mixin of one exchange. */
function refMixin(dh: Uint8Array, initPub: Uint8Array, replyPub: Uint8Array): Uint8Array {
  const prk = extract(sha256, dh, enc.encode("ns1 rekey"));
  const ctx = new Uint8Array(64);
  ctx.set(initPub);
  ctx.set(replyPub, 32);
  return expand(sha256, prk, label("rekey mixin", ctx), 32);
}

interface RefEpochKeys {
  n: number;
  kind: "initial" | "ratchet" | "rekey";
  secret: Uint8Array;
  key: Uint8Array;
  iv: Uint8Array;
}

/** docs/PROTOCOL.md part 3 (record layer) section 3 and 35-rekey-release.md section 3, literally. */
function refSchedule(
  suite: Suite,
  secret0: Uint8Array,
  steps: readonly (Uint8Array | "ratchet")[],
): RefEpochKeys[] {
  const keys = (n: number, kind: RefEpochKeys["kind"], secret: Uint8Array): RefEpochKeys => ({
    n,
    kind,
    secret,
    key: expand(sha256, secret, label("record key"), suite === "aes-128-gcm" ? 16 : 32),
    iv: expand(sha256, secret, label("record iv"), 12),
  });
  const out = [keys(0, "initial", secret0)];
  for (const step of steps) {
    const prev = out.at(-1)!;
    const chain = expand(sha256, prev.secret, label("traffic upd"), 32);
    if (step === "ratchet") {
      out.push(keys(prev.n + 1, "ratchet", chain));
    } else {
      const prk = extract(sha256, step, chain); // salt = chain, ikm = mixin
      out.push(keys(prev.n + 1, "rekey", expand(sha256, prk, label("traffic rekey"), 32)));
    }
  }
  return out;
}

/** A record with the full 3-bit-field header: epoch bit, re-key bit, 22-bit length. */
function refSeal(
  suite: Suite,
  lenKey: Uint8Array,
  ep: RefEpochKeys,
  rekeyBit: number,
  seq: bigint,
  payload: Uint8Array,
  padLen: number,
): Uint8Array {
  const inner = new Uint8Array(2 + payload.length + padLen);
  new DataView(inner.buffer).setUint16(0, padLen);
  inner.set(payload, 2);
  const header = ((ep.n % 2) << 23) | (rekeyBit << 22) | (inner.length + 16);
  const m = refMask(lenKey, seq);
  const aad = Uint8Array.of(
    ((header >>> 16) & 0xff) ^ m[0]!,
    ((header >>> 8) & 0xff) ^ m[1]!,
    (header & 0xff) ^ m[2]!,
  );
  const nonce = refNonce(ep.iv, seq);
  const c = suite === "chacha20-poly1305"
    ? chacha20poly1305(ep.key, nonce, aad)
    : gcm(ep.key, nonce, aad);
  const ct = c.encrypt(inner);
  const rec = new Uint8Array(3 + ct.length);
  rec.set(aad);
  rec.set(ct, 3);
  return rec;
}

const secret0 = Uint8Array.from({ length: 32 }, (_, i) => i);

/** Two exchanges: the client starts the first, the server the second. */
const exchanges = [
  { initiator: "client", init: 0x11, reply: 0x22 },
  { initiator: "server", init: 0x33, reply: 0x44 },
].map((x) => {
  const initPriv = new Uint8Array(32).fill(x.init);
  const replyPriv = new Uint8Array(32).fill(x.reply);
  const initPub = x25519.getPublicKey(initPriv);
  const replyPub = x25519.getPublicKey(replyPriv);
  const dh = x25519.getSharedSecret(initPriv, replyPub);
  assert.deepEqual(dh, x25519.getSharedSecret(replyPriv, initPub));
  return {
    initiator: x.initiator,
    init_private: hex(initPriv),
    reply_private: hex(replyPriv),
    init_body: "01" + hex(initPub),
    reply_body: "02" + hex(replyPub),
    dh: hex(dh),
    mixin: hex(refMixin(dh, initPub, replyPub)),
  };
});

/** One direction: before each record, nothing, a hash ratchet, or a DH re-key with mixin i. */
const script: { step?: "ratchet" | 0 | 1; payload: Uint8Array; pad: number }[] = [
  { payload: enc.encode("before"), pad: 0 },
  { payload: enc.encode("rekey reply in here"), pad: 5 },
  { step: 0, payload: enc.encode("first DH epoch"), pad: 0 },
  { payload: Uint8Array.from({ length: 40 }, (_, i) => i), pad: 17 },
  { step: "ratchet", payload: enc.encode("hash ratchet after DH"), pad: 0 },
  { step: 1, payload: enc.encode("second DH epoch"), pad: 2 },
  { payload: new Uint8Array(0), pad: 0 },
];

function suiteVectors(suite: Suite) {
  const mixins = exchanges.map((x) => unhex(x.mixin));
  const steps = script.filter((r) => r.step !== undefined).map((r) =>
    r.step === "ratchet" ? "ratchet" as const : mixins[r.step!]!
  );
  const epochs = refSchedule(suite, secret0, steps);
  const lenKey = expand(sha256, secret0, label("record len"), 32);
  let e = 0;
  return {
    aead: suite,
    len_key: hex(lenKey),
    epochs: epochs.map((ep) => ({
      epoch: ep.n,
      kind: ep.kind,
      secret: hex(ep.secret),
      key: hex(ep.key),
      iv: hex(ep.iv),
    })),
    records: script.map((r, seq) => {
      if (r.step !== undefined) e++;
      const rekeyBit = typeof r.step === "number" ? 1 : 0;
      return {
        seq,
        epoch: e,
        step: r.step === undefined ? null : r.step === "ratchet" ? "ratchet" : `rekey ${r.step}`,
        rekey_bit: rekeyBit,
        payload: hex(r.payload),
        pad_len: r.pad,
        record: hex(refSeal(suite, lenKey, epochs[e]!, rekeyBit, BigInt(seq), r.payload, r.pad)),
      };
    }),
  };
}

const doc = {
  description:
    "NitroSocks DH re-key vectors (docs/PROTOCOL.md part 4 (re-key and release) section 6). " +
    "'exchanges': REKEY INIT/REPLY bodies from fixed ephemeral private keys and the mixin. " +
    "'suites': one direction from traffic secret 00..1f; 'step' says what the sender did " +
    "before that record: a hash ratchet, or sealer.rekey(mixin of exchange i). 'record' is " +
    "the whole wire record; header = epoch_bit << 23 | rekey_bit << 22 | ciphertext_length.",
  traffic_secret: hex(secret0),
  exchanges,
  suites: (["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"] as const).map(suiteVectors),
};

const path = new URL("../vectors/record_rekey_v1.json", import.meta.url);

if (import.meta.main) {
  await Deno.writeTextFile(path, JSON.stringify(doc, null, 2) + "\n");
  console.log(`wrote ${path.pathname}`);
} else {
  const stored = JSON.parse(await Deno.readTextFile(path)) as typeof doc;

  Deno.test("record_rekey_v1.json: the reference reproduces the stored file", () => {
    assert.deepEqual(stored, doc);
  });

  for (const v of stored.suites) {
    const mixins = stored.exchanges.map((x) => unhex(x.mixin));

    for (const { be, backend } of BACKENDS) {
      Deno.test(`record_rekey_v1.json ${be} ${v.aead}: createRecordSealer() produces every record byte for byte`, async () => {
        const sealer = await createRecordSealer(v.aead, unhex(stored.traffic_secret), {
          backend,
          padding: { mode: "random", max: 255 },
          random: u16Source(v.records.map((r) => r.pad_len)),
        });
        for (const r of v.records) {
          if (r.step === "ratchet") sealer.ratchetNow();
          else if (r.step !== null) sealer.rekey(mixins[Number(r.step.slice(6))]!);
          assert.equal(hex(await sealer.seal(unhex(r.payload))), r.record, `seq ${r.seq}`);
          assert.equal(sealer.epoch, r.epoch);
        }
      });

      Deno.test(`record_rekey_v1.json ${be} ${v.aead}: createRecordOpener() opens the stream, mixins early and late`, async () => {
        const opener = await createRecordOpener(v.aead, unhex(stored.traffic_secret), { backend });
        const recs = v.records.map((r) => unhex(r.record));
        opener.provideMixin(mixins[0]!); // early, before its epoch is framed
        const first = await Promise.all(opener.push(join(recs.slice(0, 5))));
        // The second DH epoch is framed before its mixin: it waits.
        const rest = opener.push(join(recs.slice(5)));
        assert.equal(opener.awaitingMixin, true);
        opener.provideMixin(mixins[1]!);
        assert.equal(opener.awaitingMixin, false);
        const got = [...first, ...await Promise.all(rest)];
        assert.deepEqual(got.map(hex), v.records.map((r) => r.payload));
        assert.equal(opener.epoch, v.records.at(-1)!.epoch);
      });
    }
  }
}
