/**
 * lib/session/rekey.ts: the exchange in both directions, simultaneous INIT,
 * mixin equality, body codecs, the policy helper, and the exchange driving
 * real record sealers and openers as the tunnel will.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  createRecordOpener,
  createRecordSealer,
  type RecordOpener,
  type RecordSealer,
} from "../../lib/record/mod.ts";
import {
  decodeRekeyBody,
  DEFAULT_REKEY_BYTES,
  DEFAULT_REKEY_MS,
  encodeRekeyBody,
  REKEY_BODY_BYTES,
  rekeyDue,
  RekeyState,
} from "../../lib/session/mod.ts";
import { isProtocolError } from "../support/assert.ts";

/** A random source that hands out the given buffers, then throws. */
function fixed(...bufs: Uint8Array[]): (n: number) => Uint8Array {
  return (n) => {
    const b = bufs.shift();
    if (b === undefined || b.length !== n) throw new Error(`unexpected draw of ${n}`);
    return b;
  };
}

function hex(b: Uint8Array): string {
  return Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
}

for (const initiator of ["client", "server"] as const) {
  Deno.test(`RekeyState: a ${initiator}-initiated exchange gives both sides the same mixin`, () => {
    const responder = initiator === "client" ? "server" : "client";
    const a = new RekeyState(initiator), b = new RekeyState(responder);
    assert.equal(a.pending, false);
    const init = a.start();
    assert.equal(a.pending, true);
    assert.equal(init.length, REKEY_BODY_BYTES);
    assert.equal(decodeRekeyBody(init).type, "init");
    const r = b.consume(init);
    assert.equal(b.pending, false);
    assert.ok(r.reply !== undefined && r.mixin !== undefined);
    assert.equal(decodeRekeyBody(r.reply).type, "reply");
    const done = a.consume(r.reply);
    assert.equal(a.pending, false);
    assert.equal(done.reply, undefined);
    assert.deepEqual(done.mixin, r.mixin);
    // A second exchange gives a fresh mixin.
    const again = b.consume(a.start());
    assert.notDeepEqual(again.mixin, r.mixin);
    assert.deepEqual(a.consume(again.reply!).mixin, again.mixin);
  });
}

Deno.test("RekeyState: simultaneous INITs: the server's wins on both sides", () => {
  const client = new RekeyState("client"), server = new RekeyState("server");
  const ci = client.start(), si = server.start();
  assert.deepEqual(server.consume(ci), {}); // ignored
  assert.equal(server.pending, true);
  const r = client.consume(si); // the client abandons its own and answers
  assert.equal(client.pending, false);
  assert.ok(r.reply !== undefined && r.mixin !== undefined);
  assert.deepEqual(server.consume(r.reply).mixin, r.mixin);
  assert.equal(server.pending, false);
  // The abandoned INIT leaves nothing behind: a stray REPLY is refused.
  assert.throws(() => client.consume(r.reply!), isProtocolError("BAD_STATE"));
});

Deno.test("RekeyState: refuses a REPLY without INIT, a second start(), bad bodies and low-order keys", () => {
  const a = new RekeyState("client"), b = new RekeyState("server");
  const reply = b.consume(new RekeyState("server").start()).reply!;
  assert.throws(() => a.consume(reply), isProtocolError("BAD_STATE"));
  a.start();
  assert.throws(() => a.start(), isProtocolError("BAD_STATE"));
  assert.throws(() => a.consume(new Uint8Array(32)), isProtocolError("MALFORMED"));
  assert.throws(() => a.consume(new Uint8Array(34)), isProtocolError("MALFORMED"));
  assert.throws(() => a.consume(new Uint8Array(33).fill(3, 0, 1)), isProtocolError("MALFORMED"));
  // The all-zero point has low order: X25519 gives zero.
  assert.throws(
    () => b.consume(encodeRekeyBody({ type: "init", publicKey: new Uint8Array(32) })),
    isProtocolError("MALFORMED"),
  );
  assert.throws(
    () => a.consume(encodeRekeyBody({ type: "reply", publicKey: new Uint8Array(32) })),
    isProtocolError("MALFORMED"),
  );
  assert.throws(() => new RekeyState("peer" as "client"), TypeError);
});

Deno.test("RekeyState: ephemeral private keys are wiped after use or abandonment", () => {
  const privs = [new Uint8Array(32).fill(0x51), new Uint8Array(32).fill(0x52)];
  const [p1, p2] = privs as [Uint8Array, Uint8Array];
  const client = new RekeyState("client", fixed(p1, p2));
  const server = new RekeyState("server", fixed(new Uint8Array(32).fill(0x53)));
  const ci = client.start();
  const si = server.start();
  const r = client.consume(si); // abandons p1, uses p2 for the reply
  assert.ok(p1.every((b) => b === 0));
  assert.ok(p2.every((b) => b === 0));
  server.consume(ci);
  server.consume(r.reply!);
  assert.equal(server.pending, false);
  const p3 = new Uint8Array(32).fill(0x54);
  const c2 = new RekeyState("client", fixed(p3));
  c2.start();
  c2.wipe();
  assert.ok(p3.every((b) => b === 0));
  assert.equal(c2.pending, false);
});

Deno.test("RekeyState reproduces the exchanges of record_rekey_v1.json", async () => {
  const doc = JSON.parse(
    await Deno.readTextFile(new URL("../vectors/record_rekey_v1.json", import.meta.url)),
  ) as {
    exchanges: {
      initiator: "client" | "server";
      init_private: string;
      reply_private: string;
      init_body: string;
      reply_body: string;
      mixin: string;
    }[];
  };
  const unhex = (s: string) => Uint8Array.from(s.match(/../g)!, (h) => parseInt(h, 16));
  for (const x of doc.exchanges) {
    const a = new RekeyState(x.initiator, fixed(unhex(x.init_private)));
    const b = new RekeyState(
      x.initiator === "client" ? "server" : "client",
      fixed(unhex(x.reply_private)),
    );
    const init = a.start();
    assert.equal(hex(init), x.init_body);
    const r = b.consume(init);
    assert.equal(hex(r.reply!), x.reply_body);
    assert.equal(hex(r.mixin!), x.mixin);
    assert.equal(hex(a.consume(r.reply!).mixin!), x.mixin);
  }
});

Deno.test("encodeRekeyBody()/decodeRekeyBody() round-trip and refuse every other length", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("init" as const, "reply" as const),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (type, publicKey) => {
        const enc = encodeRekeyBody({ type, publicKey });
        assert.equal(enc.length, 33);
        assert.deepEqual(decodeRekeyBody(enc), { type, publicKey });
      },
    ),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      const ok = bytes.length === 33 && (bytes[0] === 1 || bytes[0] === 2);
      try {
        const d = decodeRekeyBody(bytes);
        assert.ok(ok);
        assert.deepEqual(encodeRekeyBody(d), bytes);
      } catch (e) {
        assert.ok(!ok);
        assert.ok(isProtocolError("MALFORMED")(e));
      }
    }),
  );
  assert.throws(() => encodeRekeyBody({ type: "init", publicKey: new Uint8Array(31) }), RangeError);
  assert.throws(
    () => encodeRekeyBody({ type: "x" as "init", publicKey: new Uint8Array(32) }),
    TypeError,
  );
});

Deno.test("rekeyDue() uses 4 GiB and 60 minutes by default and honours a policy", () => {
  assert.equal(DEFAULT_REKEY_BYTES, 2 ** 32);
  assert.equal(DEFAULT_REKEY_MS, 3_600_000);
  assert.equal(rekeyDue({ bytesSinceRekey: 2 ** 32 - 1, msSinceRekey: 3_599_999 }), false);
  assert.equal(rekeyDue({ bytesSinceRekey: 2 ** 32, msSinceRekey: 0 }), true);
  assert.equal(rekeyDue({ bytesSinceRekey: 0, msSinceRekey: 3_600_000 }), true);
  assert.equal(rekeyDue({ bytesSinceRekey: 100, msSinceRekey: 0 }, { bytes: 100 }), true);
  assert.equal(rekeyDue({ bytesSinceRekey: 0, msSinceRekey: 999 }, { ms: 1000 }), false);
  assert.throws(() => rekeyDue({ bytesSinceRekey: 0, msSinceRekey: 0 }, { ms: 0 }), RangeError);
  assert.throws(
    () => rekeyDue({ bytesSinceRekey: 0, msSinceRekey: 0 }, { bytes: NaN }),
    RangeError,
  );
});

// ---- the exchange driving real record layers, as the tunnel does ----------

const DATA = 0, REKEY = 1;

/** One side: its sealer, the peer's opener, its rekey state, what it received. */
class Peer {
  readonly out: Promise<Uint8Array>[] = [];
  readonly got: string[] = [];
  #rx: Promise<void> = Promise.resolve();
  constructor(
    readonly sealer: RecordSealer,
    readonly opener: RecordOpener,
    readonly rekey: RekeyState,
  ) {}

  /** Seals one message (kind byte ‖ body) in call order. */
  send(kind: number, body: Uint8Array): void {
    const p = new Uint8Array(1 + body.length);
    p[0] = kind;
    p.set(body, 1);
    this.out.push(this.sealer.seal(p));
  }

  sendText(s: string): void {
    this.send(DATA, new TextEncoder().encode(s));
  }

  startRekey(): void {
    this.send(REKEY, this.rekey.start());
  }

  /** The bytes sealed so far, in order (what a write loop would write). */
  async flush(): Promise<Uint8Array> {
    const recs = await Promise.all(this.out.splice(0));
    const all = new Uint8Array(recs.reduce((n, r) => n + r.length, 0));
    let o = 0;
    for (const r of recs) all.set(r, (o += r.length) - r.length);
    return all;
  }

  /** Pushes a chunk; handles the payloads in order, as a receive loop would. */
  receive(chunk: Uint8Array): Promise<void> {
    for (const p of this.opener.push(chunk)) {
      this.#rx = this.#rx.then(async () => {
        const payload = await p;
        const body = payload.subarray(1);
        if (payload[0] === DATA) {
          this.got.push(new TextDecoder().decode(body));
          return;
        }
        const { reply, mixin } = this.rekey.consume(body);
        if (reply !== undefined) this.send(REKEY, reply); // sealed before the switch
        if (mixin !== undefined) {
          this.sealer.rekey(mixin);
          this.opener.provideMixin(mixin);
          mixin.fill(0);
        }
      });
    }
    return this.#rx;
  }
}

async function peers(aead: "aes-256-gcm" | "chacha20-poly1305"): Promise<[Peer, Peer]> {
  const c2s = new Uint8Array(32).fill(1), s2c = new Uint8Array(32).fill(2);
  const client = new Peer(
    await createRecordSealer(aead, c2s),
    await createRecordOpener(aead, s2c),
    new RekeyState("client"),
  );
  const server = new Peer(
    await createRecordSealer(aead, s2c),
    await createRecordOpener(aead, c2s),
    new RekeyState("server"),
  );
  return [client, server];
}

for (const aead of ["aes-256-gcm", "chacha20-poly1305"] as const) {
  Deno.test(`${aead}: exchanges started by either side, and at once, switch both directions`, async () => {
    const [c, s] = await peers(aead);
    // Server-initiated (PROTOCOL.md part 4 section 2), with data in flight both ways.
    s.startRekey();
    s.sendText("s1");
    c.sendText("c1");
    await c.receive(await s.flush()); // client replies, switches its sending keys
    c.sendText("c2");
    s.sendText("s2");
    await s.receive(await c.flush()); // REPLY, then c2 in the client's DH epoch
    await c.receive(await s.flush());
    assert.equal(c.sealer.epoch, 1);
    assert.equal(s.opener.epoch, 1);
    // The server switches with its next record (s2 went before the REPLY arrived).
    assert.equal(s.sealer.rekeyPending, true);
    assert.equal(c.opener.epoch, 0);
    // Client-initiated: the server's REPLY is the first record of its pending DH
    // epoch, and the next record starts another one.
    assert.equal(s.sealer.epoch, 0);
    c.startRekey();
    await s.receive(await c.flush());
    s.sendText("s3");
    await c.receive(await s.flush());
    c.sendText("c3");
    await s.receive(await c.flush());
    assert.equal(c.sealer.epoch, 2);
    assert.equal(s.sealer.epoch, 2);
    assert.equal(c.opener.epoch, 2);
    assert.equal(s.opener.epoch, 2);
    // Simultaneous: both INITs cross; one exchange happens, the server's.
    c.startRekey();
    s.startRekey();
    const [cw, sw] = [await c.flush(), await s.flush()];
    await Promise.all([s.receive(cw), c.receive(sw)]);
    await s.receive(await c.flush()); // the client's REPLY
    s.sendText("s4");
    c.sendText("c4");
    await Promise.all([c.receive(await s.flush()), s.receive(await c.flush())]);
    assert.equal(c.rekey.pending, false);
    assert.equal(s.rekey.pending, false);
    assert.equal(c.sealer.epoch, 3);
    assert.equal(s.sealer.epoch, 3);
    assert.equal(c.opener.awaitingMixin || s.opener.awaitingMixin, false);
    assert.deepEqual(c.got, ["s1", "s2", "s3", "s4"]);
    assert.deepEqual(s.got, ["c1", "c2", "c3", "c4"]);
  });
}
