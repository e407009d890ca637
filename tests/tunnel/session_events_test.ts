/**
 * The events a session reports (lib/observe/events.ts), over the in-memory
 * pipe on a fake clock: `stream_close` with each stream's bytes and how it
 * ended, `link_down`, `rekey`, `release` (three-step, unanswered, NOTICE)
 * and `bytes` (deltas, at most once a second, only when bytes moved).
 * Tests assert on events, not on log text.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { Mux } from "../../lib/mux/mod.ts";
import { createRecordOpener, createRecordSealer } from "../../lib/record/mod.ts";
import { encodeReply, encodeRequest, Reply } from "../../lib/socks5/mod.ts";
import { type ByteStream, memoryPipe, writeAll } from "../../lib/transport/mod.ts";
import { Session, type SessionOptions } from "../../lib/tunnel/session.ts";
import { EventHub, EventLog, silentLogger } from "../../lib/observe/mod.ts";
import { FakeScheduler, settle, until } from "../support/fake_scheduler.ts";

const AEAD = "aes-256-gcm";
const KiB = 1024;
const HOUR = 3_600_000;
/** Session numbers in events. */
const CLIENT_NO = 4;
const SERVER_NO = 9;

type Extra = Partial<Omit<SessionOptions, "role" | "mux" | "log" | "scheduler" | "events">>;

interface Rig {
  clock: FakeScheduler;
  client: Session;
  server: Session;
  /** Everything both sessions reported (each with its own session number). */
  events: EventLog;
  close(): Promise<void>;
}

/** Both sessions report to one hub stamped by the fake clock; the server echoes every stream. */
async function startRig(client: Extra = {}, server: Extra = {}): Promise<Rig> {
  const clock = new FakeScheduler();
  const hub = new EventHub(() => clock.now());
  const events = new EventLog(hub);
  const [cConn, sConn] = memoryPipe(1024 * KiB);
  const c2s = crypto.getRandomValues(new Uint8Array(32));
  const s2c = crypto.getRandomValues(new Uint8Array(32));
  const releaseKey = crypto.getRandomValues(new Uint8Array(32));
  const quiet = { keepaliveMs: HOUR, deadAfterMs: 2 * HOUR };
  const s: Session = new Session({
    role: "server",
    mux: new Mux({ role: "server", resume: true }),
    log: silentLogger,
    scheduler: clock,
    events: hub,
    sessionNo: SERVER_NO,
    user: "alice",
    resumable: true,
    releaseKey,
    ...quiet,
    onOpen(id) {
      const [end, app] = memoryPipe(256 * KiB);
      s.reply(id, encodeReply(Reply.SUCCEEDED));
      s.attach(id, end);
      (async () => {
        const buf = new Uint8Array(64 * KiB);
        for (let n = await app.read(buf); n !== null; n = await app.read(buf)) {
          await writeAll(app, buf.subarray(0, n));
        }
        await app.closeWrite();
      })().catch(() => {}).finally(() => app.close());
    },
    ...server,
  });
  const c = new Session({
    role: "client",
    mux: new Mux({ role: "client", resume: true }),
    log: silentLogger,
    scheduler: clock,
    events: hub,
    sessionNo: CLIENT_NO,
    user: "alice",
    resumable: true,
    releaseKey,
    ...quiet,
    ...client,
  });
  c.run();
  s.run();
  s.attachLink({
    conn: sConn,
    sealer: await createRecordSealer(AEAD, s2c),
    opener: await createRecordOpener(AEAD, c2s),
    label: "client-side",
  });
  c.attachLink({
    conn: cConn,
    sealer: await createRecordSealer(AEAD, c2s),
    opener: await createRecordOpener(AEAD, s2c),
    label: "server-side",
  });
  return {
    clock,
    client: c,
    server: s,
    events,
    async close() {
      c.close("test done");
      s.close("test done");
      await Promise.all([c.ended, s.ended]);
      events.close();
      await settle();
    },
  };
}

const REQUEST = encodeRequest({ command: "connect", addressType: "domain", host: "echo", port: 7 });

/** Opens a stream to the echo target; returns its id and the application's end. */
async function openEcho(client: Session): Promise<{ id: number; app: ByteStream }> {
  const { id, reply } = await client.open(REQUEST, 10_000);
  assert.equal(reply[1], Reply.SUCCEEDED);
  const [end, app] = memoryPipe(256 * KiB);
  client.attach(id, end);
  return { id, app };
}

async function readToEnd(s: ByteStream): Promise<number> {
  const buf = new Uint8Array(64 * KiB);
  let n = 0;
  for (let k = await s.read(buf); k !== null; k = await s.read(buf)) n += k;
  return n;
}

Deno.test("session events: stream_close reports each stream's bytes both ways and how it ended", async () => {
  const rig = await startRig();
  try {
    const { id, app } = await openEcho(rig.client);
    const data = new Uint8Array(100 * KiB).fill(7);
    const [, back] = await Promise.all([
      writeAll(app, data).then(() => app.closeWrite()),
      readToEnd(app),
    ]);
    assert.equal(back, data.length);
    await until("both stream_close events", () => rig.events.of("stream_close").length === 2);
    const atClient = rig.events.of("stream_close", (e) => e.session === CLIENT_NO);
    const atServer = rig.events.of("stream_close", (e) => e.session === SERVER_NO);
    assert.deepEqual(
      atClient.map((e) => [e.stream, e.bytesIn, e.bytesOut, e.reason]),
      [[id, data.length, data.length, "finished"]],
    );
    assert.deepEqual(
      atServer.map((e) => [e.stream, e.bytesIn, e.bytesOut, e.reason]),
      [[id, data.length, data.length, "finished"]],
    );
    app.close();
  } finally {
    await rig.close();
  }
});

Deno.test("session events: an idle stream is never cut; a tunnel without streams for tunnelIdleMs ends with tunnel_idle", async () => {
  const rig = await startRig({}, { tunnelIdleMs: 20_000 });
  try {
    const { id, app } = await openEcho(rig.client);
    // Five idle timeouts without a byte: the stream lives on (TCP-like), and still carries data.
    for (let i = 0; i < 5; i++) {
      await rig.clock.advance(20_000);
      await settle(4);
    }
    assert.equal(rig.events.of("stream_close").length, 0, "an idle stream is not reset");
    assert.equal(rig.events.of("tunnel_idle").length, 0, "a tunnel with a stream is not idle");
    const ping = new TextEncoder().encode("still there?");
    await writeAll(app, ping);
    const buf = new Uint8Array(64);
    assert.equal(await app.read(buf), ping.length, "the idle stream still echoes");
    await app.closeWrite();
    assert.equal(await readToEnd(app), 0);
    app.close();
    await until("both stream_close events", () => rig.events.of("stream_close").length === 2);
    const [closed] = rig.events.of("stream_close", (e) => e.session === SERVER_NO);
    assert.deepEqual([closed?.stream, closed?.reason], [id, "finished"]);
    // No stream now: the tunnel is idle after tunnelIdleMs, not before.
    await rig.clock.advance(19_000);
    await settle(4);
    assert.equal(rig.events.of("tunnel_idle").length, 0, "not idle long enough");
    await rig.clock.advance(2_000);
    await until("the server's tunnel_idle", () => rig.events.of("tunnel_idle").length === 1);
    const [idle] = rig.events.of("tunnel_idle");
    assert.deepEqual([idle?.session, idle?.user, idle?.idleMs], [SERVER_NO, "alice", 20_000]);
    // It ends with the three-step release, by the server; the client hears it from its peer.
    const { reason } = await rig.server.ended;
    assert.match(reason, /releas/);
    await rig.client.ended;
    assert.deepEqual(
      rig.events.of("release").map((e) => [e.session, e.by]).sort(),
      [[CLIENT_NO, "peer"], [SERVER_NO, "us"]],
    );
  } finally {
    await rig.close();
  }
});

Deno.test("session events: link_down names the session, the reason and the peer, once", async () => {
  const downs: string[] = [];
  const rig = await startRig({ onLinkDown: (e) => downs.push(e.reason) });
  try {
    await settle(4);
    rig.client.dropLink("cut by the test");
    const mine = rig.events.of("link_down", (e) => e.session === CLIENT_NO);
    assert.deepEqual(mine.map((e) => [e.reason, e.tampered, e.peer]), [
      ["cut by the test", false, "server-side"],
    ]);
    assert.deepEqual(downs, ["cut by the test"], "onLinkDown hears the same");
    // The server sees its end of the pipe close.
    await until(
      "the server's link_down",
      () => rig.events.of("link_down", (e) => e.session === SERVER_NO).length === 1,
    );
    const [theirs] = rig.events.of("link_down", (e) => e.session === SERVER_NO);
    assert.equal(theirs?.peer, "client-side");
    assert.equal(theirs?.tampered, false);
  } finally {
    await rig.close();
  }
});

Deno.test("session events: a due re-key is reported by both sides", async () => {
  const rekey = { bytes: 2 ** 40, ms: 60_000 };
  const rig = await startRig({ rekey }, { rekey });
  try {
    await rig.clock.advance(59_000);
    await settle(4);
    assert.equal(rig.events.of("rekey").length, 0);
    await rig.clock.advance(1_500);
    await until("both rekey events", () => rig.events.of("rekey").length === 2);
    assert.deepEqual(rig.events.of("rekey").map((e) => e.session).sort(), [CLIENT_NO, SERVER_NO]);
  } finally {
    await rig.close();
  }
});

Deno.test("session events: the three-step release: by us on the client, by the peer on the server", async () => {
  const rig = await startRig();
  try {
    await settle(4);
    await rig.client.release(5_000);
    await until("the server's release", () => rig.events.of("release").length === 2);
    // The client's exchange completes first (the CHALLENGE), then the server's (the CONFIRM).
    assert.deepEqual(
      rig.events.of("release").map((e) => [e.session, e.by, e.reason, e.notice]),
      [
        [CLIENT_NO, "us", "released", undefined],
        [SERVER_NO, "peer", "released by peer", undefined],
      ],
    );
  } finally {
    await rig.close();
  }
});

Deno.test("session events: an unanswered release is a NO_RESPONSE notice from us", async () => {
  const clock = new FakeScheduler();
  const hub = new EventHub(() => clock.now());
  const events = new EventLog(hub);
  const [conn, silent] = memoryPipe(1024 * KiB);
  const client = new Session({
    role: "client",
    mux: new Mux({ role: "client", resume: true }),
    log: silentLogger,
    scheduler: clock,
    events: hub,
    sessionNo: CLIENT_NO,
    resumable: true,
    releaseKey: new Uint8Array(32).fill(1),
    keepaliveMs: HOUR,
    deadAfterMs: 2 * HOUR,
  });
  const ended = client.run();
  client.attachLink({
    conn,
    sealer: await createRecordSealer(AEAD, new Uint8Array(32).fill(2)),
    opener: await createRecordOpener(AEAD, new Uint8Array(32).fill(3)),
  });
  try {
    await settle(4);
    const releasing = client.release(5_000);
    await clock.advance(4_900);
    assert.equal(events.of("release").length, 0, "still waiting for an answer");
    await clock.advance(200);
    assert.deepEqual(
      events.of("release").map((e) => [e.session, e.by, e.reason, e.notice]),
      [[CLIENT_NO, "us", "released (peer did not answer)", 1]],
    );
    await clock.advance(1_000); // the flush of the notice, at most 500 ms
    await releasing;
    assert.deepEqual(await ended, { reason: "released (peer did not answer)", graceful: true });
  } finally {
    client.close("test done");
    silent.close();
    events.close();
    await settle();
  }
});

Deno.test("session events: a shutdown NOTICE: from us on the server, by the peer on the client", async () => {
  const rig = await startRig();
  try {
    await settle(4);
    const closing = rig.server.notifyAndClose("server shutting down");
    // The clock moves in steps until both sides have told of the release, so
    // a loaded machine that sends the NOTICE late still sees its timers run.
    for (let i = 0; i < 20 && rig.events.of("release").length < 2; i++) {
      await rig.clock.advance(100);
      await settle();
    }
    await closing;
    await until("the client's release", () => rig.events.of("release").length === 2);
    const [server] = rig.events.of("release", (e) => e.session === SERVER_NO);
    const [client] = rig.events.of("release", (e) => e.session === CLIENT_NO);
    assert.deepEqual(server, {
      type: "release",
      session: SERVER_NO,
      by: "us",
      reason: "server shutting down",
      notice: 2,
      time: server?.time,
    });
    assert.deepEqual([client?.by, client?.reason, client?.notice], [
      "peer",
      "peer ended the session (notice 2: shutting down)",
      2,
    ]);
  } finally {
    await rig.close();
  }
});

Deno.test("session events: bytes deltas at most once a second, only when bytes moved, adding up to the totals", async () => {
  const rig = await startRig();
  try {
    const { app } = await openEcho(rig.client);
    const data = new Uint8Array(300 * KiB).fill(3);
    // Traffic while the clock runs in 100 ms steps.
    const moving = Promise.all([writeAll(app, data).then(() => app.closeWrite()), readToEnd(app)]);
    for (let i = 0; i < 40; i++) await rig.clock.advance(100);
    await moving;
    app.close();
    await until("the stream to close", () => rig.events.of("stream_close").length === 2);
    await rig.clock.advance(1_000); // the rest is reported
    for (const [no, session] of [[CLIENT_NO, rig.client], [SERVER_NO, rig.server]] as const) {
      const bytes = rig.events.of("bytes", (e) => e.session === no);
      assert.ok(bytes.length >= 1, `session ${no} reported bytes`);
      for (const e of bytes) {
        assert.ok(e.in + e.out > 0, "never an empty report");
        assert.equal(e.user, "alice");
      }
      for (let i = 1; i < bytes.length; i++) {
        assert.ok(bytes[i]!.time - bytes[i - 1]!.time >= 1000, "at most one a second");
      }
      const sumIn = bytes.reduce((n, e) => n + e.in, 0);
      const sumOut = bytes.reduce((n, e) => n + e.out, 0);
      assert.equal(sumIn, session.stats.bytesIn);
      assert.equal(sumOut, session.stats.bytesOut);
      assert.ok(sumIn > data.length && sumOut > data.length);
    }
    // Idle: no more reports.
    const before = rig.events.of("bytes").length;
    await rig.clock.advance(5_000);
    await settle(4);
    assert.equal(rig.events.of("bytes").length, before);
  } finally {
    await rig.close();
  }
});
