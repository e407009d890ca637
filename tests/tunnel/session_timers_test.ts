/**
 * The session's timers on a fake clock (`tests/support/fake_scheduler.ts`),
 * over the in-memory pipe with the real record layer and mux: a keepalive
 * PING after the keepalive time, a silent link declared dead after
 * dead_after, a session without a link ending after the grace time, and a
 * server re-key when due. Minutes of session time, no real waiting.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { Mux } from "../../lib/mux/mod.ts";
import {
  createRecordOpener,
  createRecordSealer,
  type CryptoBackend,
  webCryptoBackend,
} from "../../lib/record/mod.ts";
import { loadCryptoBackend } from "../../lib/openssl/mod.ts";
import { encodeReply, encodeRequest, Reply } from "../../lib/socks5/mod.ts";
import { type ByteStream, memoryPipe, writeAll } from "../../lib/transport/mod.ts";
import { type LinkEnd, Session, type SessionOptions } from "../../lib/tunnel/session.ts";
import { SessionTimers } from "../../lib/tunnel/_timers.ts";
import type { LinkState } from "../../lib/tunnel/_link_state.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import { FakeScheduler, settle, until } from "../support/fake_scheduler.ts";
import { test } from "../support/deadline.ts";

const AEAD = "aes-256-gcm";
const KiB = 1024;
const HOUR = 3_600_000;

type Extra = Partial<Omit<SessionOptions, "role" | "mux" | "log" | "scheduler">>;

/** The re-key test runs on both backends: asynchronous (Web Crypto AES) and synchronous (OpenSSL) loops. */
const BACKENDS: [string, CryptoBackend][] = [
  ["webcrypto", webCryptoBackend],
  ["openssl", loadCryptoBackend("openssl")],
];

interface Keys {
  c2s: Uint8Array;
  s2c: Uint8Array;
}

function keys(): Keys {
  return {
    c2s: crypto.getRandomValues(new Uint8Array(32)),
    s2c: crypto.getRandomValues(new Uint8Array(32)),
  };
}

async function clientLink(conn: ByteStream, k: Keys, be: { backend?: CryptoBackend } = {}) {
  return {
    conn,
    sealer: await createRecordSealer(AEAD, k.c2s, be),
    opener: await createRecordOpener(AEAD, k.s2c, be),
    linkId: 7,
  };
}

async function serverLink(conn: ByteStream, k: Keys, be: { backend?: CryptoBackend }) {
  return {
    conn,
    sealer: await createRecordSealer(AEAD, k.s2c, be),
    opener: await createRecordOpener(AEAD, k.c2s, be),
    linkId: 7,
  };
}

function newClient(clock: FakeScheduler, extra: Extra = {}): Session {
  return new Session({
    role: "client",
    mux: new Mux({ role: "client", resume: true }),
    log: silentLogger,
    scheduler: clock,
    resumable: true,
    ...extra,
  });
}

/** An echo target behind every stream the server accepts. */
function newServer(clock: FakeScheduler, extra: Extra = {}): Session {
  const server: Session = new Session({
    role: "server",
    mux: new Mux({ role: "server", resume: true }),
    log: silentLogger,
    scheduler: clock,
    resumable: true,
    onOpen(id) {
      const [end, app] = memoryPipe(256 * KiB);
      server.reply(id, encodeReply(Reply.SUCCEEDED));
      server.attach(id, end);
      (async () => {
        const buf = new Uint8Array(64 * KiB);
        for (let n = await app.read(buf); n !== null; n = await app.read(buf)) {
          await writeAll(app, buf.subarray(0, n));
        }
        await app.closeWrite();
      })().catch(() => {}).finally(() => app.close());
    },
    ...extra,
  });
  return server;
}

/**
 * A client and a server session joined by an in-memory pipe, both on
 * `clock`, sealing and opening on `backend` (default the process-wide one,
 * Web Crypto).
 */
async function startPair(
  clock: FakeScheduler,
  client: Extra,
  server: Extra,
  backend?: CryptoBackend,
) {
  const be = backend === undefined ? {} : { backend };
  const [cConn, sConn] = memoryPipe(1024 * KiB);
  const k = keys();
  const c = newClient(clock, client);
  const s = newServer(clock, server);
  c.run();
  s.run();
  s.attachLink(await serverLink(sConn, k, be));
  c.attachLink(await clientLink(cConn, k, be));
  return {
    client: c,
    server: s,
    async close() {
      c.close("test done");
      s.close("test done");
      await Promise.all([c.ended, s.ended]);
      await settle();
    },
  };
}

async function readExactly(s: ByteStream, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let o = 0;
  while (o < n) {
    const k = await s.read(out.subarray(o));
    if (k === null) throw new Error(`EOF after ${o} of ${n} bytes`);
    o += k;
  }
  return out;
}

/** Sends `n` bytes through a new stream to the echo target and checks they come back. */
async function echo(client: Session, n: number, seed: number): Promise<void> {
  const raw = encodeRequest({ command: "connect", addressType: "domain", host: "echo", port: 7 });
  const { id, reply } = await client.open(raw, 10_000);
  assert.equal(reply[1], Reply.SUCCEEDED);
  const [end, app] = memoryPipe(256 * KiB);
  client.attach(id, end);
  const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
  const [, back] = await Promise.all([writeAll(app, data), readExactly(app, n)]);
  assert.deepEqual(back, data);
  app.close();
}

test("session timers: a link idle for keepalive gets a PING (and the peer's PONG), not before", async () => {
  const clock = new FakeScheduler();
  const pair = await startPair(
    clock,
    // Every draw at the top of [keepalive/2, keepalive]: the PING waits the whole keepalive time.
    { keepaliveMs: 15_000, deadAfterMs: HOUR, jitter: () => 1 },
    { keepaliveMs: 10 * 60_000, deadAfterMs: HOUR },
  );
  try {
    // The first records each way (and the delayed ACK for them) leave; then the link is idle.
    await settle(4);
    await clock.advance(100);
    await settle(4);
    const sent0 = pair.client.stats.recordsOut;
    // The check runs every 250 ms and wants more than 15 s of silence.
    await clock.advance(14_900);
    await settle(4);
    assert.equal(pair.client.stats.recordsOut, sent0, "no PING within the keepalive time");
    assert.equal(pair.client.stats.rttMs, undefined);
    await clock.advance(250);
    await until("the PONG", () => pair.client.stats.rttMs !== undefined);
    assert.equal(pair.client.stats.recordsOut, sent0 + 1, "one record: the PING");
    assert.ok(pair.server.stats.recordsIn > sent0, "the server received it");
    // The PONG is acknowledged (a delayed ACK); then the next PING waits another keepalive time.
    await clock.advance(100);
    await until("the ACK of the PONG", () => pair.client.stats.recordsOut === sent0 + 2);
    await clock.advance(14_500);
    await settle(4);
    assert.equal(
      pair.client.stats.recordsOut,
      sent0 + 2,
      "no second PING within 15 s of the first",
    );
    await clock.advance(1_000);
    // (Its PONG's delayed ACK may have left too by now.)
    await until("the second PING", () => pair.client.stats.recordsOut >= sent0 + 3);
  } finally {
    await pair.close();
  }
});

/** The timing's uniform source: `first` in order, then `cycle` over and over. */
function draws(first: number[], cycle: number[]): () => number {
  let i = 0;
  return () => {
    const k = i++;
    return k < first.length ? first[k]! : cycle[(k - first.length) % cycle.length]!;
  };
}

/** The idle client's records out at each tick for `ms` of fake time: when each one left. */
async function sendTimes(
  pair: { client: Session },
  clock: FakeScheduler,
  ms: number,
): Promise<number[]> {
  const times: number[] = [];
  let seen = pair.client.stats.recordsOut;
  for (let t = 0; t < ms; t += 250) {
    await clock.advance(250);
    await settle(4);
    const n = pair.client.stats.recordsOut;
    for (; seen < n; seen++) times.push(t + 250);
  }
  return times;
}

/** A pair whose first records each way (and the delayed ACK for them) are out: an idle link. */
async function idlePair(clock: FakeScheduler, client: Extra, server: Extra) {
  const pair = await startPair(clock, client, server);
  await settle(4);
  await clock.advance(100);
  await settle(4);
  return pair;
}

test("session timers: keepalive PINGs wait a drawn time in [keepalive/2, keepalive]: a draw of 0 pings after half", async () => {
  const clock = new FakeScheduler();
  const pair = await idlePair(
    clock,
    // Draws: 0 (7.5 s), 0.5 (11.25 s), then 1 (15 s) for every later PING.
    { keepaliveMs: 15_000, deadAfterMs: HOUR, jitter: draws([0, 0.5], [1]) },
    { keepaliveMs: HOUR, deadAfterMs: 2 * HOUR },
  );
  try {
    const pings = () => pair.client.stats.rttMs;
    assert.equal(pings(), undefined);
    // The first draw (0) was taken at start: a PING after 7.5 s of silence, not 15 s.
    const times = await sendTimes(pair, clock, 7_000);
    assert.deepEqual(times, [], "nothing before 7.5 s");
    await clock.advance(750);
    await until("the first PING's PONG", () => pings() !== undefined);
  } finally {
    await pair.close();
  }
});

/**
 * SessionTimers alone for `ms` of fake time, on a host whose peer answers
 * every PING at once: when the PINGs went out.
 */
async function pingTimes(
  ms: number,
  settings: { keepaliveMs: number; random?: () => number },
): Promise<number[]> {
  const clock = new FakeScheduler();
  const link = { alive: true, ready: true, lastSend: clock.now(), lastRecv: clock.now() };
  const t0 = clock.now();
  const pings: number[] = [];
  const host = {
    closed: false,
    link: link as unknown as LinkState,
    linkDownSince: 0,
    graceExpired() {},
    linkDead() {},
    ping(now: number) {
      pings.push(now - t0);
      link.lastSend = link.lastRecv = now;
    },
    cover() {},
    rekeyCheck() {},
    openStreams: 1,
    lastStreamOpened: 0,
    tunnelIdle() {},
    reportBytes: () => false,
    flushAck() {},
  };
  const timers = new SessionTimers(host, clock, {
    deadAfterMs: HOUR,
    tunnelIdleMs: Infinity,
    graceMs: HOUR,
    ...settings,
  });
  timers.start();
  await clock.advance(ms);
  timers.stop();
  return pings;
}

test("session timers: each keepalive draw sets the next PING: draws 0, 1/2, 1 give 7.5 s, 11.25 s, 15 s", async () => {
  // The tick is 250 ms: each PING leaves at the first tick past its drawn time.
  const pings = await pingTimes(50_000, { keepaliveMs: 15_000, random: draws([0, 0.5], [1]) });
  assert.deepEqual(pings, [7_750, 19_250, 34_500, 49_750]);
});

test("session timers: with the CSPRNG's draws, PINGs on an idle link come at varied gaps, never over keepalive", async () => {
  const pings = await pingTimes(120_000, { keepaliveMs: 4_000 });
  const gaps = pings.slice(1).map((t, i) => t - pings[i]!);
  assert.ok(gaps.length >= 28, `only ${gaps.length} PINGs in 120 s`);
  // The tick is 1 s / 4 = 250 ms: a PING leaves at the first tick past its drawn time.
  for (const g of gaps) assert.ok(g >= 2_000 && g <= 4_250, `gap ${g} ms`);
  assert.ok(new Set(gaps).size >= 5, `gaps ${gaps.join(", ")}: not varied`);
});

test("session timers: cover traffic: a quiet link sends a PADDING record after each drawn gap, which the peer ignores", async () => {
  const clock = new FakeScheduler();
  const pair = await idlePair(
    clock,
    // At start the keepalive draws 1 (the full hour) and the cover gap 1 - 1/e (its mean,
    // 10 s); after each cover record, its size 0.25 (256 bytes) and the next gap.
    {
      keepaliveMs: HOUR,
      deadAfterMs: 2 * HOUR,
      coverMs: 10_000,
      jitter: draws([1, 1 - Math.exp(-1)], [0.25, 1 - Math.exp(-1)]),
    },
    { keepaliveMs: HOUR, deadAfterMs: 2 * HOUR },
  );
  try {
    const out0 = pair.client.stats.recordsOut;
    const serverIn0 = pair.server.stats.recordsIn;
    const times = await sendTimes(pair, clock, 60_000);
    // One cover record every 10 s (the first tick past it), nothing else: no PING, no ACK.
    assert.deepEqual(times, [10_250, 20_500, 30_750, 41_000, 51_250]);
    assert.equal(pair.client.stats.recordsOut - out0, 5);
    assert.equal(pair.server.stats.recordsIn - serverIn0, 5, "the server read and ignored them");
    assert.equal(pair.client.stats.rttMs, undefined, "no PING");
    // The session still works.
    await echo(pair.client, 1000, 3);
  } finally {
    await pair.close();
  }
});

test("session timers: a link silent for dead_after is dropped; the resumable session waits", async () => {
  const clock = new FakeScheduler();
  const [conn, silent] = memoryPipe(1024 * KiB);
  const downs: LinkEnd[] = [];
  const client = newClient(clock, {
    keepaliveMs: 15_000,
    deadAfterMs: 45_000,
    onLinkDown: (e) => downs.push(e),
  });
  client.run();
  const linkEnded = client.attachLink(await clientLink(conn, keys()));
  try {
    await clock.advance(45_000);
    assert.equal(downs.length, 0, "alive at exactly dead_after");
    assert.equal(client.connected, true);
    assert.ok(client.stats.recordsOut >= 2, "keepalive PINGs went out meanwhile");
    await clock.advance(250);
    assert.equal(downs.length, 1);
    assert.match(downs[0]!.reason, /^peer silent for 45\.\d s$/);
    assert.equal(downs[0]!.tampered, false);
    assert.equal((await linkEnded).reason, downs[0]!.reason);
    assert.equal(client.connected, false);
    assert.equal(client.isClosed, false, "the session waits for another link");
  } finally {
    client.close("test done");
    silent.close();
    await settle();
  }
});

test("session timers: a session without a link ends after the grace time", async () => {
  const clock = new FakeScheduler();
  const [conn, other] = memoryPipe(64 * KiB);
  const client = newClient(clock, { graceMs: 60_000, keepaliveMs: 15_000, deadAfterMs: HOUR });
  const ended = client.run();
  client.attachLink(await clientLink(conn, keys()));
  try {
    await clock.advance(10_000);
    client.dropLink("cut by the test");
    assert.equal(client.connected, false);
    await clock.advance(60_000);
    assert.equal(client.isClosed, false, "still within the grace time");
    await clock.advance(250);
    assert.equal(client.isClosed, true);
    assert.deepEqual(await ended, { reason: "no connection for 60 s", graceful: false });
  } finally {
    client.close("test done");
    other.close();
    await settle();
  }
});

for (const [be, backend] of BACKENDS) {
  test(`session timers: the server re-keys when rekey_interval has passed; data flows under the new keys (${be})`, async () => {
    const clock = new FakeScheduler();
    const rekey = { bytes: 2 ** 40, ms: 60_000 };
    const pair = await startPair(
      clock,
      { rekey, keepaliveMs: 15_000, deadAfterMs: HOUR },
      { rekey, keepaliveMs: 15_000, deadAfterMs: HOUR },
      backend,
    );
    try {
      await echo(pair.client, 48 * KiB, 1);
      await clock.advance(59_000);
      await settle(4);
      assert.equal(pair.server.stats.rekeys, 0, "not due yet");
      assert.equal(pair.client.stats.rekeys, 0);
      await clock.advance(1_250);
      await until(
        "both sides to re-key",
        () => pair.server.stats.rekeys === 1 && pair.client.stats.rekeys === 1,
      );
      await echo(pair.client, 48 * KiB, 2);
      // Not again until another interval has passed.
      await clock.advance(50_000);
      await settle(4);
      assert.equal(pair.server.stats.rekeys, 1);
      await clock.advance(11_000);
      await until("the second re-key", () => pair.client.stats.rekeys === 2);
      await echo(pair.client, 16 * KiB, 3);
    } finally {
      await pair.close();
    }
  });
}

test("session timers: an OPEN without a REPLY times out at the first tick after its deadline", async () => {
  const clock = new FakeScheduler();
  const opened: number[] = [];
  // The server hears the OPEN and never answers it.
  const pair = await startPair(clock, { keepaliveMs: HOUR, deadAfterMs: HOUR }, {
    keepaliveMs: HOUR,
    deadAfterMs: HOUR,
    onOpen: (id: number) => void opened.push(id),
  });
  try {
    const raw = encodeRequest({ command: "connect", addressType: "domain", host: "x", port: 7 });
    let outcome = "pending";
    pair.client.open(raw, 2_000).then(
      () => (outcome = "replied"),
      (e: unknown) => (outcome = e instanceof Deno.errors.TimedOut ? "timed out" : String(e)),
    );
    await until("the server to hear the OPEN", () => opened.length === 1);
    await clock.advance(1_900);
    await settle(4);
    assert.equal(outcome, "pending", "not before the deadline");
    // The check runs at the session's tick (every 250 ms here): at most one tick late.
    await clock.advance(350);
    await until("the open to time out", () => outcome !== "pending");
    assert.equal(outcome, "timed out");
  } finally {
    await pair.close();
  }
});
