/**
 * Two muxes back to back: random opens, sends, finishes, resets, consumes
 * and pulls of random sizes. Every byte sent arrives once, in order, on its
 * stream; FIN arrives iff finish() was called; nobody exceeds a window
 * (the receiving mux would throw); every stream ends in exactly one closed
 * event per side.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { MIN_PULL_BYTES, Mux, type MuxEvent, ResetReason } from "../../lib/mux/mod.ts";
import { Buffer } from "node:buffer";
import { concatAll, pattern, REPLY_OK, REQUEST } from "./_helpers.ts";

/** Send payloads are windows of one pattern, so building them costs nothing. */
const POOL = pattern(1_000_000, 1);
const MAX_SEND = 400_000;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(
    Buffer.from(b.buffer, b.byteOffset, b.length),
  );
}

type Side = "c" | "s";

interface Half {
  sent: Uint8Array[];
  recv: Uint8Array[];
  finished: boolean;
  finRecv: boolean;
  unconsumed: number;
  closed: number;
  writable: boolean;
}

interface StreamModel {
  id: number;
  /** c: client → server, s: server → client; keyed by the sending side. */
  half: Record<Side, Half>;
  /** The receiving side's half for data sent by `side`. */
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
  | { op: "pump"; side: Side };

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
  { weight: 2, arbitrary: fc.record({ op: fc.constant("pump" as const), side }) },
  {
    weight: 6,
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
);

const optsArb: fc.Arbitrary<Opts> = fc.record({
  streamWindow: fc.constantFrom(65536, 100_000, 1 << 20, 2 << 20),
  sessionWindow: fc.constantFrom(1 << 20, 3 << 20),
  quantum: fc.constantFrom(256, 700, 16384),
  maxRecordPayload: fc.constantFrom(MIN_PULL_BYTES, 4096, 256 << 10),
  clientMax: fc.integer({ min: 1, max: 8 }),
  serverMax: fc.integer({ min: 1, max: 8 }),
});

function newHalf(): Half {
  return {
    sent: [],
    recv: [],
    finished: false,
    finRecv: false,
    unconsumed: 0,
    closed: 0,
    writable: false,
  };
}

interface Opts {
  streamWindow: number;
  sessionWindow: number;
  quantum: number;
  maxRecordPayload: number;
  clientMax: number;
  serverMax: number;
}

function run(opts: Opts, ops: Op[], resetsAllowed: boolean): void {
  const common = {
    streamWindow: opts.streamWindow,
    sessionWindow: opts.sessionWindow,
    quantum: opts.quantum,
    maxRecordPayload: opts.maxRecordPayload,
  };
  const mux: Record<Side, Mux> = {
    c: new Mux({ role: "client", maxStreams: opts.clientMax, ...common }),
    // without resets the server takes every stream the client may open
    s: new Mux({ role: "server", maxStreams: resetsAllowed ? opts.serverMax : 8, ...common }),
  };
  const streams: StreamModel[] = [];
  const byId = new Map<number, StreamModel>();
  let seed = 0;
  const other = (x: Side): Side => (x === "c" ? "s" : "c");

  function onEvents(at: Side, evs: MuxEvent[]): void {
    const from = other(at);
    for (const ev of evs) {
      if (ev.type === "pong" || ev.type === "goaway") continue;
      const m = byId.get(ev.id);
      assert.ok(m, `event ${ev.type} for unknown stream ${ev.id}`);
      switch (ev.type) {
        case "open":
          assert.equal(at, "s");
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
          m.half[from].finRecv = true;
          break;
        case "reset":
          m.reset = true;
          m.half[from].unconsumed = 0;
          break;
        case "writable":
          m.half[at].writable = true;
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

  function pullOnce(from: Side, max?: number): boolean {
    const r = mux[from].pull(max);
    if (r === null) return false;
    assert.ok(r.length <= Math.min(max ?? Infinity, opts.maxRecordPayload));
    onEvents(other(from), mux[other(from)].receive(r, 0));
    return true;
  }

  for (const o of ops) {
    switch (o.op) {
      case "open": {
        if (mux.c.streamCount >= opts.clientMax) {
          assert.throws(() => mux.c.open(REQUEST), /limit of/);
          break;
        }
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
        assert.ok(n <= credit, `send took ${n} with credit ${credit}`);
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
        if (!resetsAllowed || m === undefined || m.reset) break;
        if (o.side === "s" && !m.serverOpened) break;
        mux[o.side].reset(m.id, ResetReason.CANCEL, "test");
        m.reset = true;
        m.half[other(o.side)].unconsumed = 0; // forgotten by the mux
        break;
      }
      case "consume": {
        const m = pick(o.s);
        if (m === undefined) break;
        const h = m.half[other(o.side)]; // data the consuming side received
        const n = Math.floor(h.unconsumed * o.frac);
        mux[o.side].consumed(m.id, n);
        h.unconsumed -= n;
        break;
      }
      case "pull":
        pullOnce(o.side, o.max);
        break;
      case "pump":
        while (pullOnce(o.side));
        break;
    }
    onEvents("c", mux.c.takeEvents());
    onEvents("s", mux.s.takeEvents());
    for (const x of ["c", "s"] as const) {
      // what a side has queued never exceeds what the peer granted it
      assert.ok(mux[x].stats().queuedBytes <= opts.sessionWindow);
    }
  }

  // Finish the conversation: consume everything, move every record.
  for (let round = 0; round < 1_000_000; round++) {
    for (const m of streams) {
      for (const x of ["c", "s"] as const) {
        const h = m.half[other(x)];
        if (h.unconsumed > 0) {
          mux[x].consumed(m.id, h.unconsumed);
          h.unconsumed = 0;
        }
      }
    }
    const moved = pullOnce("c") || pullOnce("s");
    onEvents("c", mux.c.takeEvents());
    onEvents("s", mux.s.takeEvents());
    if (!moved && mux.c.pendingBytes === 0 && mux.s.pendingBytes === 0) break;
  }
  assert.equal(mux.c.pendingBytes + mux.s.pendingBytes, 0);

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
    // the server never saw streams the client reset before OPEN reached it... it still saw the OPEN
    assert.equal(m.half.s.closed, done && m.serverOpened ? 1 : 0, `stream ${m.id}: server closed`);
  }
  const open = streams.filter((m) => !(m.reset || (m.half.c.finished && m.half.s.finished))).length;
  assert.equal(mux.c.streamCount, open);
}

Deno.test("two Muxes back to back deliver exactly the bytes sent per stream, in order", () => {
  fc.assert(
    fc.property(
      optsArb,
      fc.array(opArb, { maxLength: 150, size: "max" }),
      (opts, ops) => run(opts, ops, false),
    ),
    { numRuns: 300 },
  );
});

Deno.test("two Muxes back to back stay consistent with resets and refusals mixed in", () => {
  fc.assert(
    fc.property(
      optsArb,
      fc.array(opArb, { maxLength: 150, size: "max" }),
      (opts, ops) => run(opts, ops, true),
    ),
    { numRuns: 300 },
  );
});
