/**
 * Record padding on the wire (`padding:` in server.yml and the profile;
 * docs/PROTOCOL.md part 2 (handshake) section 4.7, part 3 (record layer)
 * section 8), seen the way an observer of the TLS connection sees it: a
 * relay between client and server parses the TLS record headers while a
 * SOCKS client exchanges many small messages with an echo server.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { readExact, socksConnect } from "../support/socks_client.ts";
import { writeAll } from "../support/io.ts";
import { startTlsTap, type TlsTap } from "../support/tls_tap.ts";
import { FIRST_FLIGHT_RECORDS } from "../../lib/record/mod.ts";
import { type Pair, startEchoServer, startPair } from "./_harness.ts";
import { test } from "../support/deadline.ts";

const MESSAGES = 80;
/** TLS 1.3 record body around one NitroSocks record: content type 1 + tag 16. */
const TLS_OVERHEAD = 17;
/** A NitroSocks record around payload + padding: header 3, pad_len 2, tag 16. */
const RECORD_OVERHEAD = 21;

/**
 * A pair with a TLS tap between client and server. `server` replaces the
 * `padding:` line init wrote (undefined removes it: the default); `client`
 * adds one to the profile.
 */
async function tappedPair(
  server: string | undefined,
  client: string | undefined,
): Promise<{ pair: Pair; tap: TlsTap } & AsyncDisposable> {
  let tap: TlsTap | undefined;
  const pair = await startPair({
    editServer: (t) =>
      t.replace(/^padding: random\n/m, server === undefined ? "" : `padding: ${server}\n`),
    ...(client === undefined ? {} : { profileYaml: `padding: ${client}` }),
    via: (s) => (tap = startTlsTap({ hostname: "127.0.0.1", port: s.port })),
  });
  await pair.client!.tunnel();
  return { pair, tap: tap!, [Symbol.asyncDispose]: () => pair.close() };
}

/** What the observer saw of MESSAGES 12-byte echoes, each way, with these padding settings. */
async function echoRecords(
  server: string | undefined,
  client: string | undefined,
): Promise<{ up: number[]; down: number[] }> {
  await using echo = startEchoServer();
  await using t = await tappedPair(server, client);
  const { pair, tap } = t;
  const conn = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
  try {
    // Warm up past the OPEN, the first window updates and the first flight (whose sizes the
    // flight's table sets, lib/record/_padding.ts), then measure the mode itself.
    for (let i = 0; i < FIRST_FLIGHT_RECORDS + 8; i++) {
      await conn.write(new TextEncoder().encode("warm up 1234"));
      await readExact(conn, 12);
    }
    await new Promise((r) => setTimeout(r, 100));
    tap.clear();
    for (let i = 0; i < MESSAGES; i++) {
      const msg = new TextEncoder().encode(`message ${String(i).padStart(4, "0")}`);
      await conn.write(msg);
      assert.deepEqual(await readExact(conn, msg.length), msg);
    }
  } finally {
    conn.close();
  }
  return {
    up: tap.appData("client_to_server").map((r) => r.length),
    down: tap.appData("server_to_client").map((r) => r.length),
  };
}

function distinct(xs: number[]): number {
  return new Set(xs).size;
}

/** The bucket sizes payload + padding is rounded up to, up to 16 KiB. */
const BUCKETS = new Set([64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]);

function inBuckets(lengths: number[]): boolean {
  return lengths.every((n) => BUCKETS.has(n - TLS_OVERHEAD - RECORD_OVERHEAD));
}

function show(name: string, r: { up: number[]; down: number[] }): void {
  console.log(
    `${name}: ${r.up.length} records up (${distinct(r.up)} sizes: ${r.up.slice(0, 8)} ...), ` +
      `${r.down.length} down (${distinct(r.down)} sizes: ${r.down.slice(0, 8)} ...)`,
  );
}

test("padding: none, random and bucket give different record sizes on the wire", async () => {
  const none = await echoRecords("none", "none");
  const random = await echoRecords("random", "random");
  const bucket = await echoRecords("bucket", "bucket");
  show("none", none);
  show("random", random);
  show("bucket", bucket);
  for (const r of [none, random, bucket]) {
    assert.ok(r.up.length >= MESSAGES && r.down.length >= MESSAGES, "a record per message");
  }
  // none: every echo is the same few sizes, the message length plain to see.
  assert.ok(distinct(none.up) <= 3 && distinct(none.down) <= 3);
  assert.ok(!inBuckets(none.up) && !inBuckets(none.down));
  // random: 0..255 bytes more on each small record, so sizes spread.
  assert.ok(distinct(random.up) >= MESSAGES / 2, `random up: ${distinct(random.up)} sizes`);
  assert.ok(distinct(random.down) >= MESSAGES / 2, `random down: ${distinct(random.down)} sizes`);
  // bucket: every record is a bucket, here the smallest (64 bytes of payload and padding).
  assert.ok(inBuckets(bucket.up) && inBuckets(bucket.down));
  assert.equal(distinct(bucket.up), 1);
  assert.equal(bucket.up[0], 64 + RECORD_OVERHEAD + TLS_OVERHEAD);
});

test("the session pads with the stronger of the two settings, both ways; random when neither says", async () => {
  // The server is set to bucket, the client asks for none: both directions use buckets.
  const serverWins = await echoRecords("bucket", "none");
  show("server bucket, client none", serverWins);
  assert.ok(inBuckets(serverWins.up) && inBuckets(serverWins.down));
  // The client asks for bucket from a server set to none.
  const clientWins = await echoRecords("none", "bucket");
  show("server none, client bucket", clientWins);
  assert.ok(inBuckets(clientWins.up) && inBuckets(clientWins.down));
  // Neither file names padding: the default, random, both ways.
  const defaults = await echoRecords(undefined, undefined);
  show("defaults", defaults);
  assert.ok(distinct(defaults.up) >= MESSAGES / 2, `default up: ${distinct(defaults.up)} sizes`);
  assert.ok(distinct(defaults.down) >= MESSAGES / 2);
});

/** Wire bytes (TLS records, headers included) and time of a session through the tap. */
async function cost(padding: string, exchanges: number, bulk: number) {
  await using echo = startEchoServer();
  await using t = await tappedPair(padding, padding);
  const { pair, tap } = t;
  const conn = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
  const wire = () => tap.records.reduce((n, r) => n + 5 + r.length, 0);
  let flight = 0, interactive = 0, bulkMs = 0, bulkWire = 0;
  try {
    for (let i = 0; i < exchanges; i++) {
      if (i === FIRST_FLIGHT_RECORDS + 8) flight = wire();
      const msg = new TextEncoder().encode(`keystroke ${String(i).padStart(4, "0")}`);
      await conn.write(msg);
      await readExact(conn, msg.length);
    }
    interactive = wire();
    const chunk = new Uint8Array(64 * 1024).fill(7);
    const t0 = performance.now();
    const writing = (async () => {
      for (let sent = 0; sent < bulk; sent += chunk.length) await writeAll(conn, chunk);
    })();
    await readExact(conn, bulk);
    await writing;
    bulkMs = performance.now() - t0;
    bulkWire = wire() - interactive;
  } finally {
    conn.close();
  }
  return { flight, interactive, bulkWire, bulkMs };
}

test.slow("what padding costs: wire bytes of small exchanges and of bulk, and bulk time, by mode", async () => {
  const exchanges = 300, bulk = 32 << 20;
  const r: Record<string, Awaited<ReturnType<typeof cost>>> = {};
  await cost("none", 10, bulk); // warm up (the first run is the JIT's)
  const steady = exchanges - FIRST_FLIGHT_RECORDS - 8;
  for (const mode of ["none", "random", "bucket"]) {
    r[mode] = await cost(mode, exchanges, bulk);
    const x = r[mode]!;
    const after = (x.interactive - x.flight) / steady;
    console.log(
      `${mode.padEnd(6)} login + first ${FIRST_FLIGHT_RECORDS + 8} exchanges: ${x.flight} B; ` +
        `then ${after.toFixed(0)} B per 14 B exchange (${
          (after / ((r.none!.interactive - r.none!.flight) / steady)).toFixed(2)
        }× none); ${bulk >> 20} MiB each way: ${x.bulkWire} B (${
          ((x.bulkWire / r.none!.bulkWire - 1) * 100).toFixed(2)
        }% over none) at ${(2 * bulk / 1e6 / (x.bulkMs / 1000)).toFixed(0)} MB/s`,
    );
  }
  // random pads small records only, so bulk costs at most the first flight more than none.
  assert.ok(r.random!.bulkWire < r.none!.bulkWire * 1.03, "random: bulk within 3% of none");
  // Small exchanges cost more with padding on, and bucket's smallest bucket is 64 bytes.
  assert.ok(r.random!.interactive > r.none!.interactive);
  assert.ok(r.bucket!.interactive > r.none!.interactive);
});

test("the first flight on the wire: the server's first records include whole 16 KiB TLS records, even for 14-byte echoes", async () => {
  for (const padding of ["random", "none"]) {
    await using echo = startEchoServer();
    await using t = await tappedPair(padding, padding);
    const { pair, tap } = t;
    const conn = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
    try {
      for (let i = 0; i < 40; i++) {
        const msg = new TextEncoder().encode(`keystroke ${String(i).padStart(4, "0")}`);
        await conn.write(msg);
        assert.deepEqual(await readExact(conn, msg.length), msg);
      }
    } finally {
      conn.close();
    }
    const down = tap.appData("server_to_client").map((r) => r.length);
    const up = tap.appData("client_to_server").map((r) => r.length);
    // 16363 + 21 record bytes + 17 TLS bytes: a whole TLS record (16384 bytes of plaintext).
    const whole = down.filter((n) => n === 16384 + TLS_OVERHEAD).length;
    console.log(
      `${padding}: ${whole} whole TLS records down of ${down.length}; up ${up.slice(0, 12)}`,
    );
    if (padding === "none") {
      assert.equal(whole, 0, "nothing pads a 14-byte echo to 16 KiB");
    } else {
      // The server's deck deals 12 whole records among its first 32 (its handshake messages are
      // not records, so all 12 fall among the echoes' answers); records written together may
      // make one more.
      assert.ok(whole >= 12 && whole <= 16, `server records: ${down}`);
      // The client's deck is small records: none above 2000 + 21 + 17 bytes.
      assert.ok(up.every((n) => n <= 2000 + RECORD_OVERHEAD + TLS_OVERHEAD), `client: ${up}`);
    }
  }
});
