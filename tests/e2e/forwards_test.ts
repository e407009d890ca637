/**
 * `forwards:` in the client profile, like `ssh -L`: ssh through a TCP
 * forward to a real sshd; a UDP forward carrying hundreds of datagrams from
 * two sources to a UDP echo, each source getting exactly its own replies,
 * its association closed when idle; and a forward whose associations cannot
 * open logs that at most once per 5 s however many datagrams arrive; a flood
 * from 400 source ports holds at most `max_sources` streams while curl
 * through the SOCKS5 port still gets its answers.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { test, waitFor, withDeadline } from "../support/deadline.ts";
import { expectClosed, readExact } from "../support/socks_client.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { socksCurl } from "../support/nitro_process.ts";
import { startUdpEcho } from "../support/udp_echo.ts";
import { freePort, run, startEchoServer, startPair, text } from "./_harness.ts";
import { canRunSshd, SSH_OPTIONS, startSshd } from "./_sshd.ts";

const sshd = await canRunSshd();

/** A profile's `forwards:` with one forward from 127.0.0.1:0 to `to`, with more `key: value` lines. */
function forwardYaml(to: string, ...more: string[]): string {
  return [
    "forwards:",
    '  - listen: "127.0.0.1:0"',
    `    to: "${to}"`,
    ...more.map((l) => `    ${l}`),
  ]
    .join("\n");
}

test.slow({
  name: "ssh through a TCP forward logs in to a real sshd, dialed by the server",
  ignore: !sshd,
  fn: async () => {
    const server = await startSshd();
    try {
      await using pair = await startPair({
        transport: "tcp",
        profileYaml: forwardYaml(`127.0.0.1:${server.port}`),
      });
      const [forward] = pair.client!.forwards;
      assert.equal(forward!.protocol, "tcp");
      const r = await run("ssh", [
        ...SSH_OPTIONS,
        "-i",
        server.identity,
        "-p",
        String(forward!.addr.port),
        "root@127.0.0.1",
        "echo through-the-forward-$((6 * 7)); head -c 300000 /dev/zero | wc -c",
      ], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(text(r).trim().split("\n"), ["through-the-forward-42", "300000"]);
      const opened = pair.serverEvents.of(
        "stream_open",
        (e) => e.target === `127.0.0.1:${server.port}`,
      );
      assert.equal(opened.length, 1, "one tunnel stream to sshd");
    } finally {
      await server.close();
    }
  },
});

/** `n` datagrams tagged `name`, sizes 9..1400, sent `window` at a time; the replies, in order. */
async function exchange(
  sock: Deno.DatagramConn,
  to: Deno.NetAddr,
  name: string,
  n: number,
  window = 16,
): Promise<Uint8Array[]> {
  const sent: Uint8Array[] = [];
  const got: Uint8Array[] = [];
  for (let i = 0; i < n; i += window) {
    const batch = Math.min(window, n - i);
    for (let k = i; k < i + batch; k++) {
      const size = 9 + (k * 7919) % (1400 - 9 + 1);
      const d = new Uint8Array(size).map((_, j) => (k + j) & 0xff);
      d.set(new TextEncoder().encode(`${name}${String(k).padStart(7, "0")}`));
      sent.push(d);
      await sock.send(d, to);
    }
    for (let k = 0; k < batch; k++) {
      const [d] = await withDeadline(sock.receive(), 10_000, `${name}'s reply ${got.length}`);
      got.push(d);
    }
  }
  const tag = (d: Uint8Array) => new TextDecoder().decode(d.subarray(0, 8));
  got.sort((a, b) => tag(a).localeCompare(tag(b)));
  assert.equal(got.length, sent.length);
  for (let k = 0; k < n; k++) assert.deepEqual(got[k], sent[k], `${name}: datagram ${k}`);
  return got;
}

test("a UDP forward: hundreds of datagrams from two sources, each gets exactly its own replies", async () => {
  await using echo = startUdpEcho();
  await using pair = await startPair({
    transport: "tcp",
    profileYaml: forwardYaml(`127.0.0.1:${echo.port}`, "protocol: udp", "idle_timeout: 1s"),
  });
  const [forward] = pair.client!.forwards;
  assert.equal(forward!.protocol, "udp");
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: forward!.addr.port };
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const b = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await Promise.all([exchange(a, to, "A", 300), exchange(b, to, "B", 300)]);
    assert.equal(echo.received, 600);
    // One association per source, each closed after 1 s without a datagram.
    const opens = pair.clientEvents.of("udp_open");
    assert.equal(opens.length, 2);
    assert.ok(opens.every((e) => e.relay === `127.0.0.1:${forward!.addr.port}`));
    const closes = await pair.clientEvents.waitFor("udp_close", { count: 2 });
    assert.deepEqual(closes.map((e) => [e.out, e.in, e.dropped]), [[300, 300, 0], [300, 300, 0]]);
    assert.ok(
      closes.every((e) => /idle for 1 s/.test(e.reason)),
      closes.map((e) => e.reason).join(),
    );
    await pair.serverEvents.waitFor("udp_close", { count: 2 });
    // A source that comes back gets a new association.
    await exchange(a, to, "C", 5);
    assert.equal(pair.clientEvents.of("udp_open").length, 3);
  } finally {
    a.close();
    b.close();
  }
});

test("a TCP forward with idle_timeout closes a connection that moved nothing for that long", async () => {
  await using target = startEchoServer();
  await using pair = await startPair({
    transport: "tcp",
    profileYaml: forwardYaml(`127.0.0.1:${target.port}`, "idle_timeout: 500ms"),
  });
  const port = pair.client!.forwards[0]!.addr.port;
  using idle = await Deno.connect({ hostname: "127.0.0.1", port });
  using busy = await Deno.connect({ hostname: "127.0.0.1", port });
  const ping = async (c: Deno.Conn, s: string) => {
    await c.write(new TextEncoder().encode(s));
    assert.equal(new TextDecoder().decode(await readExact(c, s.length)), s);
  };
  await ping(idle, "first");
  // The busy connection moves a byte every 100 ms for three idle periods and stays open.
  for (let i = 0; i < 15; i++) {
    await ping(busy, `b${i % 10}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The idle one was closed: end of stream (or a reset) within the deadline.
  await expectClosed(idle, 10_000, "the idle connection to close");
  await ping(busy, "still open");
});

test("datagrams whose association cannot open are dropped, and say so in one log line per 5 s", async () => {
  // The client's server is a closed port: no session, so no association.
  await using pair = await startPair({
    transport: "tcp",
    lazy: true,
    client: { server: { host: "127.0.0.1", port: freePort() } },
    profileYaml: forwardYaml("127.0.0.1:9", "protocol: udp"),
  });
  const to: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: pair.client!.forwards[0]!.addr.port,
  };
  const sources = Array.from(
    { length: 20 },
    () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
  );
  try {
    const pattern = /datagrams to 127\.0\.0\.1:9 dropped: cannot open a UDP association/;
    for (let round = 0; round < 10; round++) {
      for (const s of sources) await s.send(new TextEncoder().encode(`q${round}`), to);
    }
    await waitFor("the first refusal in the log", () => pair.logs.grep(pattern).length > 0, 10_000);
    // 200 datagrams from 20 sources, each source trying at most once a second: one line.
    await new Promise((r) => setTimeout(r, 1_500));
    for (const s of sources) await s.send(new TextEncoder().encode("again"), to);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(pair.logs.grep(pattern).length, 1, pair.logs.grep(pattern).join("\n"));
    assert.equal(pair.serverStreams(), 0);
  } finally {
    for (const s of sources) s.close();
  }
});

test("a UDP forward's association survives a resumption: the same one carries datagrams after it", async () => {
  await using echo = startUdpEcho();
  await using pair = await startPair({
    transport: "tcp",
    profileYaml: forwardYaml(`127.0.0.1:${echo.port}`, "protocol: udp"),
  });
  const to: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: pair.client!.forwards[0]!.addr.port,
  };
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await exchange(a, to, "A", 20);
    pair.client!.dropConnection("test: drop the link");
    await pair.clientEvents.waitFor("resume");
    await exchange(a, to, "B", 20);
    assert.equal(pair.clientEvents.of("udp_open").length, 1, "one association throughout");
    assert.equal(pair.serverEvents.of("udp_open").length, 1);
  } finally {
    a.close();
  }
});

test("a forward or dns.listen on a port in use stops the start with an error naming the address", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  await assert.rejects(
    startPair({
      transport: "tcp",
      profileYaml: forwardYaml("127.0.0.1:9").replace(":0", `:${port}`),
    }),
    (e: unknown) =>
      e instanceof Deno.errors.AddrInUse &&
      e.message ===
        `Cannot listen for forward to 127.0.0.1:9 on 127.0.0.1:${port}: the address is in use ` +
          "(pick another port in the profile, or stop what holds it)",
  );
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const udpPort = (udp.addr as Deno.NetAddr).port;
    await assert.rejects(
      startPair({
        transport: "tcp",
        profileYaml: `dns:\n  listen: "127.0.0.1:${udpPort}"\n  upstream: "127.0.0.1:53"\n`,
      }),
      (e: unknown) =>
        e instanceof Deno.errors.AddrInUse &&
        e.message.startsWith(
          `Cannot listen for DNS (UDP) on 127.0.0.1:${udpPort}: the address is in use`,
        ),
    );
  } finally {
    udp.close();
  }
});

test("a UDP forward flooded by 400 sources holds at most max_sources streams; curl through SOCKS5 still works", async () => {
  await using echo = startUdpEcho();
  await using target = await startHttpTarget();
  // 64 streams for the whole client; without max_sources the flood would take them all.
  await using pair = await startPair({
    transport: "tcp",
    clientLimits: { max_streams: "64" },
    profileYaml: forwardYaml(`127.0.0.1:${echo.port}`, "protocol: udp", "max_sources: 8"),
  });
  const forward = pair.client!.forwards[0]!;
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: forward.addr.port };
  const sources = Array.from(
    { length: 400 },
    () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
  );
  let flooding = true;
  let rounds = 0;
  const flood = (async () => {
    const d = new TextEncoder().encode("flood");
    while (flooding || rounds < 3) {
      for (const s of sources) await s.send(d, to);
      rounds++;
    }
  })();
  try {
    await waitFor("the forward to reach max_sources", () => forward.counters!.sources >= 8, 10_000);
    for (let i = 0; i < 5; i++) {
      const r = await socksCurl(`127.0.0.1:${pair.socksPort}`, `${target.url}/hello`, 30);
      assert.equal(r.code, 0, `curl ${i} during the flood: ${r.stderr}`);
      assert.equal(r.body, "hello from target\n");
    }
  } finally {
    flooding = false;
    await withDeadline(flood, 30_000, "the flood to stop");
    for (const s of sources) s.close();
  }
  const c = forward.counters!;
  assert.ok(rounds >= 3, `${rounds} rounds of 400 datagrams`);
  assert.equal(c.peakSources, 8);
  assert.ok(c.evicted > 0, "new sources took the places of idle ones");
  // On the server, associations open at once never passed 8 either.
  let open = 0;
  let peak = 0;
  for (const e of pair.serverEvents.events) {
    if (e.type === "udp_open") peak = Math.max(peak, ++open);
    else if (e.type === "udp_close") open--;
  }
  assert.ok(peak >= 1 && peak <= 8, `${peak} associations at once on the server`);
  // Evictions are logged at most once per 5 s.
  const lines = pair.logs.grep(/8 sources \(max_sources\) reached: the source idle longest/);
  assert.ok(lines.length >= 1 && lines.length <= 4, lines.join("\n"));
  console.log(
    `flood: ${rounds} rounds x 400 sources, ${c.evicted} evicted, ${c.refused} refused, ` +
      `peak ${c.peakSources} sources, ${pair.serverEvents.of("udp_open").length} associations`,
  );
});
