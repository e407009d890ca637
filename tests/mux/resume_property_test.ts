/**
 * Two resumable Muxes back to back over a lossy "connection": random opens,
 * sends, finishes, resets, consumes, pulls, deliveries and ACK flushes, with
 * the connection cut at random points (a random prefix of what is in flight
 * each way arrives, the rest is lost; each side may keep pulling into the
 * dead connection until it notices), the app working on while the peer is
 * away, then a resume with each side's resumeState(). Every stream's bytes
 * arrive exactly once, in order; FIN arrives iff finish() was called; every
 * stream ends in exactly one closed event per side; the resend buffer never
 * exceeds its limit.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Buffer } from "node:buffer";
import { MIN_PULL_BYTES, Mux, type MuxEvent, ResetReason } from "../../lib/mux/mod.ts";
import { concatAll, pattern, REPLY_OK, REQUEST } from "./_helpers.ts";

const POOL = pattern(1_000_000, 7);
const MAX_SEND = 300_000;
/** Mirrors RESEND_ENTRY_OVERHEAD in lib/mux/_ledger.ts. */
const ENTRY_OVERHEAD = 128;

type Side = "c" | "s";

interface Half {
  sent: Uint8Array[];
  recv: Uint8Array[];
  finished: boolean;
  finRecv: boolean;
  unconsumed: number;
  closed: number;
}

interface StreamModel {
  id: number;
  half: Record<Side, Half>;
  reset: boolean;
  replied: boolean;
  serverOpened: boolean;
}

type Op =
  | { op: "open" }
  | { op: "send"; side: Side; s: number; len: number }
  | { op: "finish"; side: Side; s: number }
  | { op: "reset"; side: Side; s: number }
  | { op: "consume"; side: Side; s: number; frac: number }
  | { op: "pull"; side: Side; max: number }
  | { op: "deliver"; side: Side; n: number }
  | { op: "flush"; side: Side }
  | { op: "cut"; keepC: number; keepS: number }
  | { op: "notice"; side: Side }
  | { op: "resume" };

interface Opts {
  streamWindow: number;
  sessionWindow: number;
  quantum: number;
  maxRecordPayload: number;
  resendBufferBytes: number;
  ackPayloads: number;
  ackBytes: number;
  resets: boolean;
}

const side = fc.constantFrom<Side>("c", "s");
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant("open" as const) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("send" as const),
      side,
      s: fc.nat(),
      len: fc.oneof(
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: MAX_SEND }),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("finish" as const), side, s: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("reset" as const), side, s: fc.nat() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("consume" as const),
      side,
      s: fc.nat(),
      frac: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant("pull" as const),
      side,
      max: fc.oneof(
        fc.constant(MIN_PULL_BYTES),
        fc.integer({ min: MIN_PULL_BYTES, max: 5000 }),
        fc.integer({ min: MIN_PULL_BYTES, max: 300_000 }),
      ),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("deliver" as const),
      side,
      n: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("flush" as const), side }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("cut" as const), keepC: fc.nat(), keepS: fc.nat() }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("notice" as const), side }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("resume" as const) }) },
);

const optsArb: fc.Arbitrary<Opts> = fc.record({
  streamWindow: fc.constantFrom(65536, 100_000, 1 << 20),
  sessionWindow: fc.constantFrom(1 << 20, 3 << 20),
  quantum: fc.constantFrom(256, 700, 16384),
  maxRecordPayload: fc.constantFrom(MIN_PULL_BYTES, 4096, 256 << 10),
  resendBufferBytes: fc.constantFrom(256 << 10, 300_000, 8 << 20),
  ackPayloads: fc.constantFrom(1, 4, 16),
  ackBytes: fc.constantFrom(1024, 128 << 10),
  resets: fc.boolean(),
});

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(
    Buffer.from(b.buffer, b.byteOffset, b.length),
  );
}

function newHalf(): Half {
  return { sent: [], recv: [], finished: false, finRecv: false, unconsumed: 0, closed: 0 };
}

const other = (x: Side): Side => (x === "c" ? "s" : "c");

function run(opts: Opts, ops: Op[]): void {
  const common = {
    resume: true,
    streamWindow: opts.streamWindow,
    sessionWindow: opts.sessionWindow,
    quantum: opts.quantum,
    maxRecordPayload: opts.maxRecordPayload,
    resendBufferBytes: opts.resendBufferBytes,
    ackPayloads: opts.ackPayloads,
    ackBytes: opts.ackBytes,
  };
  const mux: Record<Side, Mux> = {
    c: new Mux({ role: "client", maxStreams: 8, ...common }),
    s: new Mux({ role: "server", maxStreams: opts.resets ? 4 : 8, ...common }),
  };
  /** Payloads pulled by the key side and not yet delivered to the other. */
  const wire: Record<Side, Uint8Array[]> = { c: [], s: [] };
  let up = true;
  const noticed: Record<Side, boolean> = { c: false, s: false };
  const streams: StreamModel[] = [];
  const byId = new Map<number, StreamModel>();
  let seed = 0;
  let cuts = 0;

  function onEvents(at: Side, evs: MuxEvent[]): void {
    const from = other(at);
    for (const ev of evs) {
      if (ev.type === "pong" || ev.type === "goaway") continue;
      const m = byId.get(ev.id);
      assert.ok(m, `event ${ev.type} for unknown stream ${ev.id}`);
      switch (ev.type) {
        case "open":
          assert.equal(at, "s");
          assert.ok(!m.serverOpened, "OPEN delivered twice");
          m.serverOpened = true;
          mux.s.reply(ev.id, REPLY_OK);
          m.replied = true;
          break;
        case "reply":
          assert.equal(at, "c");
          break;
        case "data":
          assert.ok(!m.half[from].finRecv, "data after fin");
          m.half[from].recv.push(ev.data.slice());
          m.half[from].unconsumed += ev.data.length;
          break;
        case "fin":
          assert.ok(m.half[from].finished, "fin that was never sent");
          assert.ok(!m.half[from].finRecv, "fin twice");
          m.half[from].finRecv = true;
          break;
        case "reset":
          m.reset = true;
          m.half[from].unconsumed = 0;
          break;
        case "closed":
          m.half[at].closed++;
          assert.equal(m.half[at].closed, 1, "closed twice");
          break;
      }
    }
  }

  function pick(i: number): StreamModel | undefined {
    return streams.length === 0 ? undefined : streams[i % streams.length];
  }

  function pull(from: Side, max?: number): boolean {
    const r = mux[from].pull(max);
    if (noticed[from]) assert.equal(r, null, "pull() while lost");
    if (r === null) return false;
    if (up) wire[from].push(r);
    return true; // else: into a dead connection
  }

  function deliver(from: Side, n: number): void {
    for (let i = 0; i < n && wire[from].length > 0; i++) {
      const to = other(from);
      onEvents(to, mux[to].receive(wire[from].shift()!, 0));
    }
  }

  function resume(): void {
    for (const x of ["c", "s"] as const) {
      if (!noticed[x]) mux[x].connectionLost();
    }
    const rc = mux.c.resumeState().received;
    const rs = mux.s.resumeState().received;
    mux.c.onPeerResumed(rs);
    mux.s.onPeerResumed(rc);
    noticed.c = noticed.s = false;
    up = true;
  }

  for (const o of ops) {
    switch (o.op) {
      case "open": {
        if (mux.c.streamCount >= 8) break;
        const id = mux.c.open(REQUEST);
        const m: StreamModel = {
          id,
          half: { c: newHalf(), s: newHalf() },
          reset: false,
          replied: false,
          serverOpened: false,
        };
        streams.push(m);
        byId.set(id, m);
        break;
      }
      case "send": {
        const m = pick(o.s);
        if (m === undefined || m.half[o.side].finished || m.reset) break;
        if (o.side === "s" && !m.replied) break;
        const credit = mux[o.side].credit(m.id);
        const off = (seed++ * 7919) % (POOL.length - MAX_SEND);
        const data = POOL.subarray(off, off + o.len);
        const n = mux[o.side].send(m.id, data);
        assert.equal(n, Math.min(credit, o.len));
        m.half[o.side].sent.push(data.subarray(0, n));
        break;
      }
      case "finish": {
        const m = pick(o.s);
        if (m === undefined || m.half[o.side].finished || m.reset) break;
        if (o.side === "s" && !m.replied) break;
        mux[o.side].finish(m.id);
        m.half[o.side].finished = true;
        break;
      }
      case "reset": {
        const m = pick(o.s);
        if (!opts.resets || m === undefined || m.reset) break;
        if (o.side === "s" && !m.serverOpened) break;
        mux[o.side].reset(m.id, ResetReason.CANCEL, "test");
        m.reset = true;
        m.half[other(o.side)].unconsumed = 0;
        break;
      }
      case "consume": {
        const m = pick(o.s);
        if (m === undefined) break;
        const h = m.half[other(o.side)];
        const n = Math.floor(h.unconsumed * o.frac);
        mux[o.side].consumed(m.id, n);
        h.unconsumed -= n;
        break;
      }
      case "pull":
        pull(o.side, o.max);
        break;
      case "deliver":
        deliver(o.side, o.n);
        break;
      case "flush":
        if (!noticed[o.side]) mux[o.side].flushAck();
        break;
      case "cut": {
        if (!up) break;
        cuts++;
        // TCP delivers a prefix of what was written; the rest dies with the connection.
        deliver("c", o.keepC % (wire.c.length + 1));
        deliver("s", o.keepS % (wire.s.length + 1));
        wire.c.length = wire.s.length = 0;
        up = false;
        break;
      }
      case "notice":
        if (!up && !noticed[o.side]) {
          mux[o.side].connectionLost();
          noticed[o.side] = true;
        }
        break;
      case "resume":
        if (!up) resume();
        break;
    }
    onEvents("c", mux.c.takeEvents());
    onEvents("s", mux.s.takeEvents());
    for (const x of ["c", "s"] as const) {
      const st = mux[x].stats();
      assert.ok(st.unackedBytes + ENTRY_OVERHEAD * st.unackedPayloads <= opts.resendBufferBytes);
      assert.ok(st.queuedBytes <= opts.sessionWindow);
    }
  }

  // Reconnect if needed, then finish the conversation over a reliable link.
  if (!up) resume();
  for (let round = 0;; round++) {
    assert.ok(round < 1_000_000, "no progress");
    for (const m of streams) {
      for (const x of ["c", "s"] as const) {
        const h = m.half[other(x)];
        if (h.unconsumed > 0) {
          mux[x].consumed(m.id, h.unconsumed);
          h.unconsumed = 0;
        }
      }
    }
    deliver("c", Infinity);
    deliver("s", Infinity);
    let moved = pull("c") || pull("s");
    if (!moved) moved = mux.c.flushAck() || mux.s.flushAck();
    onEvents("c", mux.c.takeEvents());
    onEvents("s", mux.s.takeEvents());
    if (!moved && wire.c.length === 0 && wire.s.length === 0) break;
  }
  for (const x of ["c", "s"] as const) {
    assert.equal(mux[x].pendingBytes, 0);
    assert.equal(mux[x].stats().unackedPayloads, 0, `${x}: everything acknowledged`);
    assert.equal(mux[x].stats().unackedBytes, 0);
  }
  if (Deno.env.get("MUX_PROP_DEBUG")) {
    let bytes = 0;
    for (const m of streams) {
      bytes += concatAll(m.half.c.recv).length + concatAll(m.half.s.recv).length;
    }
    console.log(`ops ${ops.length} streams ${streams.length} cuts ${cuts} bytes ${bytes}`);
  }

  for (const m of streams) {
    for (const x of ["c", "s"] as const) {
      const h = m.half[x];
      const sent = concatAll(h.sent);
      const recv = concatAll(h.recv);
      if (m.reset) {
        assert.ok(
          sameBytes(recv, sent.subarray(0, recv.length)),
          `stream ${m.id} ${x}: not a prefix`,
        );
      } else {
        assert.equal(recv.length, sent.length, `stream ${m.id} ${x}: length`);
        assert.ok(sameBytes(recv, sent), `stream ${m.id} ${x}: bytes`);
        assert.equal(h.finRecv, h.finished, `stream ${m.id} ${x}: fin`);
      }
    }
    const done = m.reset || (m.half.c.finished && m.half.s.finished);
    assert.equal(m.half.c.closed, done ? 1 : 0, `stream ${m.id}: client closed`);
    assert.equal(m.half.s.closed, done && m.serverOpened ? 1 : 0, `stream ${m.id}: server closed`);
  }
}

Deno.test("resumable Muxes deliver every stream's bytes exactly once, in order, across random cuts", () => {
  fc.assert(
    fc.property(
      optsArb.map((o) => ({ ...o, resets: false })),
      fc.array(opArb, { maxLength: 150, size: "max" }),
      run,
    ),
    { numRuns: 500, endOnFailure: true },
  );
});

Deno.test("resumable Muxes stay exact across random cuts with resets and refusals mixed in", () => {
  fc.assert(
    fc.property(
      optsArb.map((o) => ({ ...o, resets: true })),
      fc.array(opArb, { maxLength: 150, size: "max" }),
      run,
    ),
    { numRuns: 500, endOnFailure: true },
  );
});

Deno.test("resumable Muxes survive a cut after every few operations", () => {
  const dense = fc.array(
    fc.oneof(
      { weight: 6, arbitrary: opArb },
      {
        weight: 1,
        arbitrary: fc.record({ op: fc.constant("cut" as const), keepC: fc.nat(), keepS: fc.nat() }),
      },
      { weight: 1, arbitrary: fc.record({ op: fc.constant("resume" as const) }) },
    ),
    { maxLength: 200, size: "max" },
  );
  fc.assert(fc.property(optsArb, dense, run), { numRuns: 400, endOnFailure: true });
});
