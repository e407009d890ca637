/**
 * Rotation, of connections and of keys: with `session.rotate` the client
 * moves the live session to a fresh connection every second or so during
 * a transfer without losing a byte; with `session.rekey_interval` the
 * server re-keys the live link with fresh X25519 during a transfer (both
 * sides count it, the bytes stay exact); and on the wire, records after a
 * re-key cannot be opened with the keys from before it.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { createRecordOpener, createRecordSealer } from "../../lib/record/mod.ts";
import { Mux } from "../../lib/mux/mod.ts";
import { encodeReply, encodeRequest, Reply } from "../../lib/socks5/mod.ts";
import { type ByteStream, memoryPipe, writeAll } from "../../lib/transport/mod.ts";
import { Session } from "../../lib/tunnel/session.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import { expectedSha256, patternBytes, startHttpTarget } from "../support/http_target.ts";
import { containsBytes, startTcpRelay } from "../support/mitm_relay.ts";
import { firstMismatch, startPair } from "./_harness.ts";
import { fileSize, sha256File, startCurl, waitFor } from "./_paths.ts";
import { test } from "../support/deadline.ts";
import { concat } from "../../lib/wire/bytes.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

test.slow("connection rotation: session.rotate 1s moves a live transfer across fresh connections with no loss", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ clientSession: { rotate: "1s" } });
  const client = pair.client!;
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-rotate-" });
  try {
    const session = await client.tunnel();
    // About 6-8 s at curl's 8M limit; each connection lives a log-normal time (median 1 s,
    // between 1/3 s and 3 s; lib/tunnel/_shaping.ts), so 3 or more rotations in the transfer.
    const n = 64 * MiB;
    const out = join(tmp, "body");
    const before = client.resumptions;
    const t0 = performance.now();
    const r = await startCurl(pair.socksPort, `${target.url}/bytes/${n}`, out, {
      limitRate: "8M",
    }).done;
    const secs = (performance.now() - t0) / 1000;
    const log = pair.logs.lines.join("\n");
    assert.equal(r.code, 0, `${r.stderr}\n${log}`);
    assert.equal(await sha256File(out), expectedSha256(n), "zero loss across rotations");
    assert.equal(await client.tunnel(), session, "one session throughout");
    const rotations = client.resumptions - before;
    assert.ok(secs >= 4.5, `the transfer took ${secs.toFixed(1)} s`);
    assert.ok(rotations >= 3, `${rotations} rotations in ${secs.toFixed(1)} s\n${log}`);
    // Each rotation drops the link on purpose and resumes the session on a fresh connection.
    assert.ok(
      pair.clientEvents.of("link_down", (e) => e.reason === "connection lifetime rotation")
        .length >= rotations,
      log,
    );
    assert.ok(
      pair.serverEvents.of("resume", (e) => e.user === "alice").length >= rotations,
      log,
    );
    assert.equal(
      pair.serverEvents.of("login", (e) => e.user === "alice" && !e.resumed).length,
      1,
      "one login only",
    );
    console.log(`${rotations} rotations during a ${secs.toFixed(1)} s transfer, SHA-256 exact`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** Re-keys each side counted during a 40 MiB download at 8 MB/s, checked exact and in place. */
async function rekeysDuringDownload(
  opts: Parameters<typeof startPair>[0],
): Promise<{ client: number; server: number }> {
  await using target = await startHttpTarget();
  await using pair = await startPair(opts);
  const client = await pair.client!.tunnel();
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-rekey-" });
  try {
    await waitFor("the server's session", () => pair.server.sessions.size === 1, 5_000);
    const server = [...pair.server.sessions][0]!;
    const n = 40 * MiB;
    const out = join(tmp, "body");
    const dl = startCurl(pair.socksPort, `${target.url}/bytes/${n}`, out, { limitRate: "8M" });
    // Counted from the first body byte to the last, so the re-keys fall inside the transfer.
    await waitFor("the first MiB", async () => (await fileSize(out)) >= MiB, 10_000);
    const c0 = client.stats.rekeys, s0 = server.stats.rekeys;
    const r = await dl.done;
    const c1 = client.stats.rekeys, s1 = server.stats.rekeys;
    const log = pair.logs.lines.join("\n");
    assert.equal(r.code, 0, `${r.stderr}\n${log}`);
    assert.equal(await sha256File(out), expectedSha256(n), "exact across re-keys");
    // Each exchange completes on both sides (the initiator may be one ahead mid-exchange).
    assert.ok(Math.abs(c1 - s1) <= 1, `client ${c1}, server ${s1}\n${log}`);
    // The keys changed in place: no reconnection was involved.
    assert.equal(client.stats.links, 1);
    assert.equal(server.stats.links, 1);
    assert.equal(pair.client!.resumptions, 0);
    console.log(`${c1 - c0} re-keys (client), ${s1 - s0} (server) during the transfer`);
    return { client: c1 - c0, server: s1 - s0 };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

test.slow("key rotation: session.rekey_interval 1s re-keys the live link on both sides during a transfer", async () => {
  const n = await rekeysDuringDownload({ serverSession: { rekey_interval: "1s" } });
  assert.ok(n.client >= 2 && n.server >= 2, JSON.stringify(n));
});

// The profile's policy alone (the server keeps its defaults, 1 h and 64 GiB) re-keys the link.
test.slow("key rotation: the profile's session.rekey_interval 1s re-keys from the client's side", async () => {
  const n = await rekeysDuringDownload({ clientSession: { rekey_interval: "1s" } });
  assert.ok(n.client >= 2 && n.server >= 1, JSON.stringify(n));
});

test.slow("key rotation: the profile's session.rekey_bytes 4MiB re-keys from the client's side", async () => {
  const n = await rekeysDuringDownload({ clientSession: { rekey_bytes: "4MiB" } });
  assert.ok(n.client >= 2 && n.server >= 1, JSON.stringify(n));
});

async function readExactly(s: ByteStream, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let o = 0;
  while (o < n) {
    const got = await s.read(out.subarray(o));
    if (got === null) throw new Error(`end of stream after ${o} of ${n} bytes`);
    o += got;
  }
  return out;
}

/** Resolved payloads of `promises` within `ms`, in order, stopping at the first still pending. */
async function settledPrefix(promises: Promise<Uint8Array>[], ms: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const p of promises) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      p.then((v) => v, () => null),
      new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), ms))),
    ]);
    clearTimeout(timer);
    if (r === undefined || r === null) break;
    out.push(r);
  }
  return out;
}

/**
 * What an opener holding only `secret` (the keys before any re-key) reads
 * of a recorded byte stream: the payloads it opens, and whether it was left
 * waiting for a DH mixin it cannot know. Pushed in 64-byte pieces, since a
 * second re-key epoch while the first still waits makes push() throw.
 */
async function shadowRead(
  secret: Uint8Array,
  wire: Uint8Array,
): Promise<{ opened: Uint8Array; waiting: boolean; records: number }> {
  const shadow = await createRecordOpener("aes-256-gcm", secret);
  const records: Promise<Uint8Array>[] = [];
  let waiting = false;
  for (let o = 0; o < wire.length; o += 64) {
    try {
      records.push(...shadow.push(wire.slice(o, o + 64)));
    } catch (e) {
      assert.match(String(e), /second re-key epoch started before the mixin/);
      break;
    }
    waiting ||= shadow.awaitingMixin;
  }
  return {
    opened: concat(await settledPrefix(records, 200)),
    waiting,
    records: records.length,
  };
}

test("re-keyed records on the wire cannot be opened with the keys from before the re-key", async () => {
  // Two sessions over real loopback TCP, through a tap that records the raw bytes;
  // we hold the traffic secrets, so a "shadow" opener can read what the old keys can.
  const aead = "aes-256-gcm" as const;
  const c2s = crypto.getRandomValues(new Uint8Array(32));
  const s2c = crypto.getRandomValues(new Uint8Array(32));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using tap = startTcpRelay({
    upstream: { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port },
  });
  const [clientConn, serverConn] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: tap.port }),
    listener.accept(),
  ]);
  listener.close();
  const clientSealer = await createRecordSealer(aead, c2s);
  const clientOpener = await createRecordOpener(aead, s2c);
  const serverSealer = await createRecordSealer(aead, s2c);
  const serverOpener = await createRecordOpener(aead, c2s);
  const [serverApp, serverEnd] = memoryPipe(4 * MiB);
  const server: Session = new Session({
    role: "server",
    mux: new Mux({ role: "server", resume: true }),
    log: silentLogger,
    resumable: true,
    onOpen(id) {
      server.reply(id, encodeReply(Reply.SUCCEEDED));
      server.attach(id, serverEnd);
    },
  });
  const client = new Session({
    role: "client",
    mux: new Mux({ role: "client", resume: true }),
    log: silentLogger,
    resumable: true,
  });
  server.run();
  client.run();
  server.attachLink({ conn: serverConn, sealer: serverSealer, opener: serverOpener });
  client.attachLink({ conn: clientConn, sealer: clientSealer, opener: clientOpener });
  try {
    const raw = encodeRequest({ command: "connect", addressType: "domain", host: "x", port: 1 });
    const { id, reply } = await client.open(raw, 10_000);
    assert.equal(reply[1], Reply.SUCCEEDED);
    const [clientApp, clientEnd] = memoryPipe(4 * MiB);
    client.attach(id, clientEnd);
    const chunk = MiB;
    const probe = (k: number) => patternBytes(k * chunk + 4321, 32);
    // Chunk 0 under the first keys; the server re-keys; chunk 1; the client re-keys; chunk 2.
    const steps: (() => void)[] = [() => server.rekeyNow(), () => client.rekeyNow()];
    for (let k = 0; k < 3; k++) {
      const [, got] = await Promise.all([
        writeAll(serverApp, patternBytes(k * chunk, chunk)),
        readExactly(clientApp, chunk),
      ]);
      assert.equal(firstMismatch(got, patternBytes(k * chunk, chunk)), -1, `chunk ${k} exact`);
      const step = steps[k];
      if (step !== undefined) {
        step();
        await waitFor(
          `re-key ${k + 1}`,
          () => client.stats.rekeys === k + 1 && server.stats.rekeys === k + 1,
          5_000,
        );
      }
    }
    // And one upload chunk under the newest keys.
    const [, uploaded] = await Promise.all([
      writeAll(clientApp, patternBytes(0, 256 * KiB)),
      readExactly(serverApp, 256 * KiB),
    ]);
    assert.equal(firstMismatch(uploaded, patternBytes(0, 256 * KiB)), -1);
    await waitFor(
      "the tap to see everything",
      () => tap.seenServerToClient().length > 3 * chunk,
      5_000,
    );

    // Each sealer moved two epochs: one DH re-key per exchange (no hash ratchet is due yet).
    assert.equal(serverSealer.epoch, 2);
    assert.equal(clientSealer.epoch, 2);
    assert.equal(clientOpener.epoch, 2);
    assert.equal(serverOpener.epoch, 2);

    // Shadow openers holding the initial secrets read the wire up to the first re-key only.
    const down = await shadowRead(s2c, tap.seenServerToClient());
    assert.ok(containsBytes(down.opened, probe(0)), "the old keys open chunk 0 (sanity)");
    assert.ok(!containsBytes(down.opened, probe(1)), "chunk 1 is not readable with the old keys");
    assert.ok(!containsBytes(down.opened, probe(2)), "chunk 2 is not readable with the old keys");
    assert.ok(down.waiting, "the server's records after the re-key need the DH mixin");
    const up = await shadowRead(c2s, tap.seenClientToServer());
    assert.ok(up.records > 0);
    assert.ok(!containsBytes(up.opened, patternBytes(1000, 32)), "the upload needs the new keys");
    assert.ok(up.waiting, "the client's records after the re-key need the DH mixin");
    console.log(
      `old keys open ${down.opened.length} of ${tap.seenServerToClient().length} bytes sent down; sealer epochs ${serverSealer.epoch}/${clientSealer.epoch}`,
    );
  } finally {
    client.close("test done");
    server.close("test done");
    await Promise.all([client.ended, server.ended]);
    serverApp.close();
  }
});
