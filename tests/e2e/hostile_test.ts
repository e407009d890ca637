/**
 * Hostile load on a real server: idle connections that never log in are
 * capped (`limits.pre_login`, in all and per source) and the oldest is
 * closed to make room, so hundreds of them stay bounded and a real client
 * still logs in and carries a request while the table is full; a handshake
 * that does not finish in `limits.handshake_timeout` is closed.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import * as net from "node:net";
import { ClientHandshake, COOKIE_REPLY_BYTES } from "../../lib/handshake/mod.ts";
import { credentialsOf } from "../../lib/tunnel/link.ts";
import { test, withDeadline } from "../support/deadline.ts";
import { readExact, socksConnect } from "../support/socks_client.ts";
import { type Pair, run, startEchoServer, startPair } from "./_harness.ts";

const enc = new TextEncoder();

/** Opens `n` TCP connections to `port`, one after another (so the server accepts them in order). */
async function openIdle(port: number, n: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  return conns;
}

/** Which of `conns` the server closed: a read sees the end (or a reset) within `ms`. */
async function closedByServer(conns: Deno.TcpConn[], ms: number): Promise<boolean[]> {
  return await Promise.all(conns.map(async (c) => {
    const buf = new Uint8Array(64);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"open">((r) => timer = setTimeout(() => r("open"), ms));
    const read = c.read(buf).then((n) => (n === null ? "closed" : "data"), () => "closed");
    const r = await Promise.race([read, timeout]);
    clearTimeout(timer);
    return r === "closed";
  }));
}

/** A request through alice's tunnel to an echo server: the login and a stream work. */
async function echoThroughTunnel(pair: Pair): Promise<void> {
  await using echo = startEchoServer();
  const conn = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
  try {
    await conn.write(enc.encode("still here"));
    assert.deepEqual(await readExact(conn, 10), enc.encode("still here"));
  } finally {
    conn.close();
  }
}

/** `text` with each `[from, to]` replaced; throws if a `from` is not there. */
function replaceAll(text: string, edits: [string, string][]): string {
  for (const [from, to] of edits) {
    if (!text.includes(from)) throw new Error(`server.yml has no ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  }
  return text;
}

async function evictionScenario(
  o: { preLogin: string; open: number; cap: number },
): Promise<void> {
  await using pair = await startPair({
    transport: "tcp",
    lazy: true,
    editServer: (text) =>
      replaceAll(text, [
        ["    max: 4096\n    per_ip: 32\n    min_age: 5s\n", o.preLogin],
        ["    connections: 64\n", "    connections: 100000\n"],
        ["    handshakes_per_second: 20\n", "    handshakes_per_second: 100000\n"],
      ]),
  });
  const conns = await withDeadline(
    openIdle(pair.serverPort, o.open),
    30_000,
    `${o.open} idle connections to open`,
  );
  try {
    const over = o.open - o.cap;
    // Oldest first: exactly the first `over` connections are closed by the server.
    await withDeadline(
      Promise.all(conns.slice(0, over).map((c) => c.read(new Uint8Array(64)).catch(() => null))),
      20_000,
      `the oldest ${over} connections to be closed`,
    );
    const closed = await closedByServer(conns, 1_500);
    assert.deepEqual(
      closed.map((c, i) => (c ? i : -1)).filter((i) => i >= 0),
      Array.from({ length: over }, (_, i) => i),
      "exactly the oldest connections were closed",
    );
    // Each eviction is a refusal "evicted" unless the connection was refused before (a silent
    // one is handed to the fallback as a probe after 2 s), numbered in accept order.
    const evicted = pair.serverEvents.of("refusal", (e) => e.reason === "evicted");
    assert.ok(evicted.length > 0);
    assert.ok(evicted.every((e) => (e.conn ?? Infinity) <= over), JSON.stringify(evicted[0]));
    assert.match(evicted[0]!.detail, /limits\.pre_login/);

    // The table is full of idle connections: a real client logs in and its stream works.
    await withDeadline(
      echoThroughTunnel(pair),
      20_000,
      "a request through the tunnel while the pre-login table is full",
    );
    assert.equal(pair.serverEvents.of("login").length, 1);
    // Its login took the place of the oldest idle connection left.
    assert.equal((await closedByServer([conns[over]!], 1_500))[0], true);
    assert.equal((await closedByServer(conns.slice(over + 1), 500)).some((c) => c), false);
  } finally {
    for (const c of conns) c.close();
  }
}

test.slow(
  "limits.pre_login.max: 500 idle connections keep 200, the oldest 300 are closed, and a client still logs in",
  () =>
    evictionScenario({
      preLogin: "    max: 200\n    per_ip: 100000\n    min_age: 0s\n",
      open: 500,
      cap: 200,
    }),
);

test.slow(
  "limits.pre_login.per_ip: 120 idle connections from one source keep 50, the oldest closed first, and a client from it still logs in",
  () =>
    evictionScenario({
      preLogin: "    max: 100000\n    per_ip: 50\n    min_age: 5s\n",
      open: 120,
      cap: 50,
    }),
);

test("limits.handshake_timeout: a client that stalls after the ServerHello is closed when it passes", async () => {
  await using pair = await startPair({
    transport: "tcp",
    lazy: true,
    serverLimits: { handshake_timeout: "1s" },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort });
  try {
    const hs = new ClientHandshake({
      serverPublicKey: pair.profile.serverKey,
      credentials: await credentialsOf(pair.profile),
      now: Date.now,
    });
    const started = Date.now();
    await conn.write(hs.hello());
    const buf = new Uint8Array(65536);
    for (let step = hs.push(new Uint8Array(0)); step.type !== "send";) {
      const n = await withDeadline(conn.read(buf), 10_000, "the ServerHello");
      assert.notEqual(n, null, "the server closed before its ServerHello");
      step = hs.push(buf.subarray(0, n!));
    }
    // The Response is never sent.
    const [closed] = await closedByServer([conn], 10_000);
    assert.equal(closed, true);
    const [refusal] = await pair.serverEvents.waitFor("refusal", { timeoutMs: 5_000 });
    assert.equal(refusal!.reason, "timeout");
    assert.match(refusal!.detail, /within 1 s \(limits\.handshake_timeout\)/);
    // 1 s after the accept, not the default 15 s.
    assert.ok(Date.now() - started < 8_000, `closed after ${Date.now() - started} ms`);
  } finally {
    conn.close();
  }
});

/** What a web client sees on the server's port: curl's status line and Server header. */
async function curlSees(port: number): Promise<string> {
  const r = await run("curl", ["-s", "-i", "--max-time", "10", `http://127.0.0.1:${port}/`], {
    timeoutMs: 20_000,
  });
  const head = new TextDecoder().decode(r.stdout).split("\r\n\r\n")[0]!;
  const lines = head.split("\r\n");
  return `${lines[0]} | ${lines.find((l) => /^server:/i.test(l)) ?? "no Server header"}`;
}

/** The server's answer to `bytes` sent as a first message (until it closes, at most 4 KiB). */
async function answerTo(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await c.write(bytes);
    const out: number[] = [];
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await withDeadline(c.read(buf), 15_000, "the server's answer");
      if (n === null) break;
      out.push(...buf.subarray(0, n));
      if (out.length >= 4096) break;
    }
    return Uint8Array.from(out);
  } finally {
    c.close();
  }
}

test.slow(
  "limits.cookie_after: 0 asks every Hello for a cookie: the client fetches one by itself and logs in; probers see the web server",
  async () => {
    await using pair = await startPair({
      transport: "tcp",
      lazy: true,
      editServer: (text) => replaceAll(text, [["  cookie_after: 64\n", "  cookie_after: 0\n"]]),
    });
    await withDeadline(echoThroughTunnel(pair), 20_000, "a request through the tunnel");
    const cookies = pair.serverEvents.of("refusal", (e) => e.reason === "cookie");
    assert.equal(cookies.length, 1, "one cookie reply: the client's first Hello");
    assert.equal(pair.serverEvents.of("login").length, 1);
    // Probers get the decoy web server, not a cookie reply.
    assert.equal(await curlSees(pair.serverPort), "HTTP/1.1 200 OK | Server: nginx");
    const junk = await answerTo(pair.serverPort, crypto.getRandomValues(new Uint8Array(200)));
    assert.match(new TextDecoder().decode(junk), /^HTTP\/1\.1 400 Bad Request\r\nServer: nginx/);
    assert.equal(pair.serverEvents.of("refusal", (e) => e.reason === "cookie").length, 1);
  },
);

test.slow(
  "limits.cookie_after: a real client behind a Hello flood logs in through the cookie; probers still see the web server",
  async () => {
    await using pair = await startPair({
      transport: "tcp",
      lazy: true,
      editServer: (text) =>
        replaceAll(text, [
          ["  cookie_after: 64\n", "  cookie_after: 4\n"],
          ["    connections: 64\n", "    connections: 100000\n"],
          ["    handshakes_per_second: 20\n", "    handshakes_per_second: 100000\n"],
          ["    max: 4096\n    per_ip: 32\n", "    max: 100000\n    per_ip: 100000\n"],
        ]),
    });
    // The flooding peer knows the server's key: real Hellos, each on its own connection,
    // never answered (so each handshake stays pending) and never retried with a cookie.
    const credentials = await credentialsOf(pair.profile);
    const hellos = Array.from(
      { length: 200 },
      () =>
        new ClientHandshake({ serverPublicKey: pair.profile.serverKey, credentials, now: Date.now })
          .hello(),
    );
    const held: Deno.TcpConn[] = [];
    let cookieReplies = 0, serverHellos = 0;
    const flood = Promise.all(hellos.map(async (hello) => {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort });
      held.push(c);
      await c.write(hello);
      const buf = new Uint8Array(4096);
      let got = 0;
      for (;;) {
        const n = await c.read(buf).catch(() => null);
        if (n === null) break;
        got += n;
        if (got > COOKIE_REPLY_BYTES) break;
      }
      if (got === COOKIE_REPLY_BYTES) cookieReplies++;
      else if (got > COOKIE_REPLY_BYTES) serverHellos++;
    }));
    try {
      // Wait until the flood holds more pending handshakes than the threshold.
      await pair.serverEvents.waitFor("refusal", {
        match: (e) => e.reason === "cookie",
        timeoutMs: 20_000,
      });
      const before = pair.serverEvents.of("refusal", (e) => e.reason === "cookie").length;
      await withDeadline(
        echoThroughTunnel(pair),
        20_000,
        "a request through the tunnel under the flood",
      );
      assert.equal(pair.serverEvents.of("login").length, 1);
      assert.ok(
        pair.serverEvents.of("refusal", (e) => e.reason === "cookie").length > before,
        "the client's first Hello got a cookie reply too",
      );
      assert.equal(await curlSees(pair.serverPort), "HTTP/1.1 200 OK | Server: nginx");
    } finally {
      for (const c of held) c.close();
      await withDeadline(flood, 20_000, "the flood to end");
    }
    assert.ok(cookieReplies > 0, `cookie replies to the flood: ${cookieReplies}`);
    assert.ok(serverHellos <= 10, `ServerHellos to the flood: ${serverHellos}`);
  },
);

/**
 * `loops` TCP connections to `port` from the sources `from` (round robin), each opened again
 * 50 ms after the server closes it, until `stop()`: how many times they connected in all.
 */
function reconnectLoops(
  port: number,
  from: string[],
  loops: number,
): { stop(): Promise<number> } {
  let running = true;
  let connects = 0;
  const open: net.Socket[] = [];
  const one = async (source: string) => {
    while (running) {
      await new Promise<void>((done) => {
        const s = net.connect({ host: "127.0.0.1", port, localAddress: source });
        open.push(s);
        s.on("connect", () => connects++);
        s.on("data", () => {});
        s.on("error", () => {});
        s.on("close", () => {
          open.splice(open.indexOf(s), 1);
          done();
        });
      });
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const all = Promise.all(Array.from({ length: loops }, (_, i) => one(from[i % from.length]!)));
  return {
    async stop() {
      running = false;
      for (const s of [...open]) s.destroy();
      await all;
      return connects;
    },
  };
}

test.slow(
  "limits.pre_login.min_age: 250 connections reconnecting from 5 addresses for 4 s evict a bounded number, and a client still logs in",
  async () => {
    const max = 100, minAgeS = 2, seconds = 4;
    await using pair = await startPair({
      transport: "tcp",
      lazy: true,
      editServer: (text) =>
        replaceAll(text, [
          [
            "    max: 4096\n    per_ip: 32\n    min_age: 5s\n",
            `    max: ${max}\n    per_ip: 100000\n    min_age: ${minAgeS}s\n`,
          ],
          ["    connections: 64\n", "    connections: 100000\n"],
          ["    handshakes_per_second: 20\n", "    handshakes_per_second: 100000\n"],
        ]),
    });
    const sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"];
    const started = Date.now();
    const loops = reconnectLoops(pair.serverPort, sources, 250);
    let connects = 0;
    try {
      // The table fills and newcomers are refused.
      await pair.serverEvents.waitFor("refusal", {
        match: (e) => e.reason === "full",
        timeoutMs: 20_000,
      });
      // A client from another address gets in at once: the busiest source gives up a place.
      await withDeadline(
        echoThroughTunnel(pair),
        20_000,
        "a request through the tunnel while connections reconnect",
      );
      assert.equal(pair.serverEvents.of("login").length, 1);
      const left = started + seconds * 1000 - Date.now();
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    } finally {
      connects = await withDeadline(loops.stop(), 20_000, "the reconnecting connections to stop");
    }
    const ran = (Date.now() - started) / 1000;
    const evicted = pair.serverEvents.of("refusal", (e) => e.reason === "evicted");
    const full = pair.serverEvents.of("refusal", (e) => e.reason === "full");
    const seen = `${connects} connects in ${ran.toFixed(1)} s, ${evicted.length} evicted, ` +
      `${full.length} refused at once`;
    // Without min_age every reconnect evicts one (thousands). With it: at most `max` per
    // `min_age` by age, plus the few fair-share evictions (the client's among them).
    assert.ok(connects > 2_000, `the loops reconnected: ${seen}`);
    assert.ok(evicted.length <= max * (Math.ceil(ran / minAgeS) + 1) + 50, seen);
    assert.ok(full.length > connects / 2, seen);
    assert.match(full[0]!.detail, /limits\.pre_login\.min_age/);
    console.log(`  ${seen}`);
  },
);
