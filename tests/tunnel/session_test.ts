/**
 * The tunnel engine (`Session`) over an in-memory pipe with the real
 * handshake, record layer and mux: many streams both ways, half-close,
 * backpressure bounded by the credit windows, resets, and cleanup when the
 * session ends.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import {
  ClientHandshake,
  generateClientKey,
  generateServerIdentity,
  generateToken,
  ReplayGuard,
  ServerHandshake,
  serverPublicKey,
  type SessionSecrets,
} from "../../lib/handshake/mod.ts";
import {
  createRecordOpener,
  createRecordSealer,
  type CryptoBackend,
  webCryptoBackend,
} from "../../lib/record/mod.ts";
import { loadCryptoBackend } from "../../lib/openssl/mod.ts";
import { Mux } from "../../lib/mux/mod.ts";
import { decodeRequest, encodeReply, encodeRequest, Reply } from "../../lib/socks5/mod.ts";
import { type ByteStream, memoryPipe, writeAll } from "../../lib/transport/mod.ts";
import { Session } from "../../lib/tunnel/session.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import { patternBytes } from "../support/http_target.ts";
import { test } from "../support/deadline.ts";

/**
 * Every test runs on both record backends: Web Crypto AES-GCM seals and
 * opens through promises (the link writer's and reader's asynchronous
 * loops), OpenSSL synchronously (their synchronous loops).
 */
const BACKENDS: [string, CryptoBackend][] = [
  ["webcrypto", webCryptoBackend],
  ["openssl", loadCryptoBackend("openssl")],
];

const KiB = 1024;
const MiB = 1024 * KiB;

/** Ports the test server understands. */
const ECHO = 7;
const SINK = 9;
const SOURCE = 19;
const HALF = 13;
/** Capacity of the pipes between the session and an application or target: a read may return up to 64 KiB. */
const APP_PIPE = 256 * KiB;

interface RigOptions {
  streamWindow?: number;
  sessionWindow?: number;
  /** Bytes buffered per direction by the tunnel pipe. */
  pipeCapacity?: number;
  /** The crypto backend both sides seal and open with. */
  backend: CryptoBackend;
}

interface Target {
  /** Bytes the target has written into its side so far. */
  written: number;
  /** Settles when the target's handler is done (rejects on a write error). */
  done: Promise<void>;
}

interface Rig {
  client: Session;
  server: Session;
  clientMux: Mux;
  serverMux: Mux;
  targets: Map<number, Target>;
  close(): Promise<void>;
}

async function readAll(s: ByteStream, max = 256 * MiB): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * KiB);
  for (;;) {
    const n = await s.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
    total += n;
    if (total > max) throw new RangeError(`read more than ${max} bytes`);
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function safeClose(s: ByteStream): void {
  try {
    s.close();
  } catch {
    // already closed
  }
}

/** One side's result of the handshake. */
interface Established {
  secrets: SessionSecrets;
  /** Bytes read after the handshake (records already on their way). */
  rest: Uint8Array;
}

/** Runs the handshake over the pipe itself, as client.ts and server.ts do. */
async function handshakeOver(
  clientConn: ByteStream,
  serverConn: ByteStream,
): Promise<{ client: Established; server: Established }> {
  const identity = generateServerIdentity();
  const key = generateClientKey();
  const token = generateToken();
  const ch = new ClientHandshake({
    serverPublicKey: serverPublicKey(identity),
    credentials: { userId: "alice", clientKey: key.privateKey, token },
    now: Date.now,
  });
  const sh = new ServerHandshake({
    identity,
    lookupUser: (id) =>
      id === "alice" ? { userId: id, publicKey: key.publicKey, token } : undefined,
    replay: new ReplayGuard(),
    now: Date.now,
  });
  const buf = new Uint8Array(16 * KiB);
  const serverSide = (async () => {
    for (;;) {
      const n = await serverConn.read(buf);
      if (n === null) throw new Error("client went away during the handshake");
      const step = sh.push(buf.slice(0, n));
      if (step.type === "need_more") continue;
      if (step.type === "send") {
        await writeAll(serverConn, step.bytes);
        continue;
      }
      if (step.type !== "done") throw new Error(`server handshake: ${step.type}`);
      return { secrets: step.secrets, rest: step.rest };
    }
  })();
  await writeAll(clientConn, ch.hello());
  const cbuf = new Uint8Array(16 * KiB);
  const clientSide = (async () => {
    for (;;) {
      const n = await clientConn.read(cbuf);
      if (n === null) throw new Error("server went away during the handshake");
      const step = ch.push(cbuf.slice(0, n));
      if (step.type === "need_more") continue;
      if (step.type === "send") {
        await writeAll(clientConn, step.bytes);
        continue;
      }
      if (step.type === "cookie") throw new Error("a cookie reply from a server not under load");
      await writeAll(clientConn, step.send);
      return { secrets: step.secrets, rest: step.rest };
    }
  })();
  const [client, server] = await Promise.all([clientSide, serverSide]);
  return { client, server };
}

/** A target on the "server" side: what a dialed TCP destination would do. */
function runTarget(port: number, host: string, app: ByteStream, t: Target): Promise<void> {
  switch (port) {
    case ECHO:
      return (async () => {
        const buf = new Uint8Array(32 * KiB);
        for (;;) {
          const n = await app.read(buf);
          if (n === null) break;
          await writeAll(app, buf.subarray(0, n));
          t.written += n;
        }
        await app.closeWrite();
      })();
    case SINK:
    case HALF:
      return (async () => {
        const got = await readAll(app);
        // The write direction is still open after the peer's half-close.
        const answer = new TextEncoder().encode(`got ${got.length} bytes`);
        await writeAll(app, port === SINK ? answer : patternBytes(0, got.length));
        await app.closeWrite();
      })();
    case SOURCE:
      return (async () => {
        const n = Number(/^src-(\d+)$/.exec(host)?.[1] ?? 0);
        for (let o = 0; o < n; o += 16 * KiB) {
          const chunk = patternBytes(o, Math.min(16 * KiB, n - o));
          await writeAll(app, chunk);
          t.written += chunk.length;
        }
        await app.closeWrite();
      })();
    default:
      return Promise.resolve();
  }
}

async function startRig(opts: RigOptions): Promise<Rig> {
  const [clientConn, serverConn] = memoryPipe(opts.pipeCapacity ?? 64 * KiB);
  const { client: c, server: s } = await handshakeOver(clientConn, serverConn);
  const windows = {
    streamWindow: opts.streamWindow ?? 256 * KiB,
    sessionWindow: opts.sessionWindow ?? 4 * MiB,
  };
  const clientMux = new Mux({ role: "client", ...windows });
  const serverMux = new Mux({ role: "server", ...windows });
  const targets = new Map<number, Target>();
  const client = new Session({ role: "client", mux: clientMux, log: silentLogger });
  const be = { backend: opts.backend };
  const clientLink = {
    conn: clientConn,
    sealer: await createRecordSealer(c.secrets.aead, c.secrets.clientToServer, be),
    opener: await createRecordOpener(c.secrets.aead, c.secrets.serverToClient, be),
    initial: c.rest,
  };
  const serverLink = {
    conn: serverConn,
    sealer: await createRecordSealer(s.secrets.aead, s.secrets.serverToClient, be),
    opener: await createRecordOpener(s.secrets.aead, s.secrets.clientToServer, be),
    initial: s.rest,
  };
  const server: Session = new Session({
    role: "server",
    mux: serverMux,
    log: silentLogger,
    onOpen(id, request) {
      const req = decodeRequest(request);
      if (![ECHO, SINK, SOURCE, HALF].includes(req.port)) {
        server.refuse(id, encodeReply(Reply.CONNECTION_REFUSED), 1, "refused");
        return;
      }
      const [sessEnd, app] = memoryPipe(APP_PIPE);
      const t: Target = { written: 0, done: Promise.resolve() };
      t.done = runTarget(req.port, req.host, app, t).finally(() => safeClose(app));
      t.done.catch(() => {});
      targets.set(id, t);
      server.reply(id, encodeReply(Reply.SUCCEEDED, { host: "127.0.0.1", port: req.port }));
      server.attach(id, sessEnd);
    },
  });
  client.run();
  server.run();
  client.attachLink(clientLink);
  server.attachLink(serverLink);
  return {
    client,
    server,
    clientMux,
    serverMux,
    targets,
    async close() {
      client.close("test done");
      server.close("test done");
      await Promise.all([client.ended, server.ended]);
      await Promise.allSettled([...targets.values()].map((t) => t.done));
    },
  };
}

/** Opens a stream to `host:port` and returns the application's end of it. */
async function openStream(rig: Rig, host: string, port: number): Promise<ByteStream> {
  const raw = encodeRequest({ command: "connect", addressType: "domain", host, port });
  const { id, reply } = await rig.client.open(raw, 10_000);
  assert.equal(reply[1], Reply.SUCCEEDED, `reply ${reply[1]}`);
  const [sessEnd, app] = memoryPipe(APP_PIPE);
  rig.client.attach(id, sessEnd);
  return app;
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function sameBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) assert.fail(`${what}: byte ${i} differs`);
  }
}

for (const [be, backend] of BACKENDS) {
  test(`Session carries many concurrent streams both ways through a shared session window (${be})`, async () => {
    // A session window no larger than one stream's makes streams compete for
    // credit: a read sized by the credit seen before it may no longer fit
    // when it completes (the rest must wait, not reset the stream).
    const rig = await startRig({ streamWindow: 1 * MiB, sessionWindow: 1 * MiB, backend });
    try {
      const jobs: Promise<void>[] = [];
      for (let i = 0; i < 40; i++) {
        const size = 64 * KiB + i * 7919;
        const data = patternBytes(i * 1000, size);
        jobs.push((async () => {
          const s = await openStream(rig, `echo-${i}`, ECHO);
          const [, back] = await Promise.all([
            writeAll(s, data).then(() => s.closeWrite()),
            readAll(s),
          ]);
          sameBytes(back, data, `echo stream ${i}`);
          s.close();
        })());
      }
      for (let i = 0; i < 12; i++) {
        const size = 384 * KiB + i;
        jobs.push((async () => {
          const s = await openStream(rig, `src-${size}`, SOURCE);
          await s.closeWrite();
          sameBytes(await readAll(s), patternBytes(0, size), `download ${i}`);
          s.close();
        })());
        jobs.push((async () => {
          const s = await openStream(rig, `sink-${i}`, SINK);
          await writeAll(s, patternBytes(0, size));
          await s.closeWrite();
          assert.equal(new TextDecoder().decode(await readAll(s)), `got ${size} bytes`);
          s.close();
        })());
      }
      await Promise.all(jobs);
      await until(
        () => rig.client.streamCount === 0 && rig.server.streamCount === 0,
        "streams freed",
      );
      assert.equal(rig.clientMux.stats().streams, 0);
      assert.equal(rig.serverMux.stats().streams, 0);
      assert.equal(rig.client.stats.streams, 64);
      assert.equal(rig.client.isClosed, false);
    } finally {
      await rig.close();
    }
  });
}

for (const [be, backend] of BACKENDS) {
  test(`Session propagates half-close: the other direction stays open until it finishes (${be})`, async () => {
    const rig = await startRig({ backend });
    try {
      const s = await openStream(rig, "half", HALF);
      const data = patternBytes(0, 100 * KiB);
      await writeAll(s, data);
      await s.closeWrite(); // the target sees EOF only now, then answers
      const back = await readAll(s);
      sameBytes(back, data, "answer after half-close");
      await until(
        () => rig.client.streamCount === 0 && rig.server.streamCount === 0,
        "stream freed",
      );
      await rig.targets.values().next().value!.done;
      s.close();
    } finally {
      await rig.close();
    }
  });
}

for (const [be, backend] of BACKENDS) {
  test(`Session backpressure: a reader that stops holds the sender to the stream window (${be})`, async () => {
    const streamWindow = 256 * KiB;
    const rig = await startRig({
      streamWindow,
      sessionWindow: 4 * MiB,
      pipeCapacity: 64 * KiB,
      backend,
    });
    try {
      const n = 64 * MiB;
      const s = await openStream(rig, `src-${n}`, SOURCE);
      await s.closeWrite();
      // Read nothing for a while: the target may only get about a window ahead.
      await until(() => rig.targets.size === 1, "target started");
      const target = rig.targets.values().next().value!;
      await new Promise((r) => setTimeout(r, 300));
      const stalled = target.written;
      // Window + the server's one read + the target's pipe + the client's pipe to the app.
      const inFlightLimit = streamWindow + 64 * KiB + 2 * APP_PIPE;
      assert.ok(stalled > 0, "the target started sending");
      assert.ok(
        stalled <= inFlightLimit,
        `target ran ${stalled} bytes ahead (limit ${inFlightLimit})`,
      );
      assert.ok(
        // The window plus what the app's pipe took (written out = consumed), plus framing.
        rig.client.stats.bytesIn <= streamWindow + APP_PIPE + 16 * KiB,
        `client received ${rig.client.stats.bytesIn} tunnel bytes while its reader stalled`,
      );
      const serverStats = rig.serverMux.stats();
      assert.equal(serverStats.blockedStreams, 1, "the server's stream waits for credit");
      assert.ok(serverStats.queuedBytes <= streamWindow);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(target.written, stalled, "no progress while the reader stalls");

      // Reading again lets everything through, intact.
      const got = await readAll(s, n);
      assert.equal(got.length, n);
      sameBytes(got.subarray(n - MiB), patternBytes(n - MiB, MiB), "tail");
      sameBytes(got.subarray(0, MiB), patternBytes(0, MiB), "head");
      s.close();
    } finally {
      await rig.close();
    }
  });
}

for (const [be, backend] of BACKENDS) {
  test(`Session resets: a refused open, and an application that vanishes mid-stream (${be})`, async () => {
    const rig = await startRig({ backend });
    try {
      // Refused by the server: the reply says why, the stream is gone both sides.
      const raw = encodeRequest({
        command: "connect",
        addressType: "ipv4",
        host: "127.0.0.1",
        port: 1,
      });
      const { reply } = await rig.client.open(raw, 10_000);
      assert.equal(reply[1], Reply.CONNECTION_REFUSED);
      await until(
        () => rig.client.streamCount === 0 && rig.server.streamCount === 0,
        "refused freed",
      );

      // The client's application closes while the target is still sending.
      const echo = await openStream(rig, "keep", ECHO);
      const n = 32 * MiB;
      const s = await openStream(rig, `src-${n}`, SOURCE);
      const first = new Uint8Array(1000);
      assert.ok((await s.read(first))! > 0);
      s.close();
      const target = [...rig.targets.values()].at(-1)!;
      await assert.rejects(target.done, "the target's writes fail once the stream is reset");
      assert.ok(target.written < n);
      await until(
        () => rig.server.streamCount === 1 && rig.client.streamCount === 1,
        "reset freed",
      );

      // The other stream and the session are unaffected.
      await writeAll(echo, new TextEncoder().encode("still here"));
      await echo.closeWrite();
      assert.equal(new TextDecoder().decode(await readAll(echo)), "still here");
      echo.close();
      assert.equal(rig.client.isClosed, false);
      assert.equal(rig.server.isClosed, false);
    } finally {
      await rig.close();
    }
  });
}

for (const [be, backend] of BACKENDS) {
  test(`Session end closes every stream and both sides notice (${be})`, async () => {
    const rig = await startRig({ backend });
    const a = await openStream(rig, "a", ECHO);
    const b = await openStream(rig, `src-${64 * MiB}`, SOURCE);
    await writeAll(a, new Uint8Array([1, 2, 3]));
    const buf = new Uint8Array(3);
    assert.equal(await a.read(buf), 3);
    const pendingRead = a.read(new Uint8Array(10));
    rig.client.close("user quit");
    const [clientEnd, serverEnd] = await Promise.all([rig.client.ended, rig.server.ended]);
    assert.deepEqual({ reason: clientEnd.reason, graceful: clientEnd.graceful }, {
      reason: "user quit",
      graceful: true,
    });
    assert.equal(serverEnd.reason, "connection closed by peer");
    assert.equal(await pendingRead, null, "an application waiting to read sees the end");
    assert.equal(rig.client.streamCount, 0);
    assert.equal(rig.server.streamCount, 0);
    await assert.rejects(
      rig.client.open(
        encodeRequest({ command: "connect", addressType: "domain", host: "x", port: ECHO }),
        1000,
      ),
      /closed/,
    );
    for (const t of rig.targets.values()) await t.done.catch(() => {});
    // Every application end sees the end of data (possibly after a prefix).
    await readAll(b).catch(() => new Uint8Array(0));
    a.close();
    b.close();
    await rig.close();
  });
}
