/**
 * UDP through the tunnel with real clients: PySocks (Debian python3-socks)
 * UDP ASSOCIATE to a UDP echo server, dnspython through it to a real
 * dnsmasq, an association carried across a resumption, a destination the
 * routes refuse, a flood that stays bounded, and RFC 1928 section 7's
 * rules (fragments dropped, only the application's address accepted, the
 * association ending with its control connection) with a hand-made client.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { updateUserInYaml } from "../../lib/config/mod.ts";
import { freePort, type Pair, run, startEchoServer, startPair, text } from "./_harness.ts";
import { readExact, socksConnect } from "../support/socks_client.ts";
import { associate, receiveWithin, udpPacket } from "../support/socks_udp.ts";
import { PYTHON } from "../support/programs.ts";
import { startDnsmasq } from "./_dnsmasq.ts";
import { startUdpEcho } from "../support/udp_echo.ts";
import { test, waitFor, withDeadline } from "../support/deadline.ts";

/** Runs a Python script (argv after it) with Debian's python3; its stdout. */
async function python(script: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run(PYTHON, ["-c", script, ...args], { timeoutMs });
  assert.equal(r.code, 0, `python failed: ${r.stderr}`);
  return text(r);
}

/**
 * PySocks: N datagrams of sizes 1..1400 (a deterministic pattern with a
 * tag), each echoed back exactly; prints "ok N".
 */
const PYSOCKS_ECHO = `
import socket, sys, socks
proxy_port, host, port, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port)
s.settimeout(10)
for i in range(n):
    size = 8 + (i * 7919) % (1400 - 8 + 1)
    tag = ("%08d" % i).encode()
    body = bytes((i + j) & 0xff for j in range(size - 8))
    msg = tag + body
    s.sendto(msg, (host, port))
    while True:
        data, frm = s.recvfrom(2048)
        if data[:8] == tag:
            break
    if data != msg:
        sys.exit("datagram %d differs: sent %d bytes, got %d" % (i, len(msg), len(data)))
print("ok", n)
`;

async function pysocksEcho(pair: Pair, host: string, port: number, n: number): Promise<void> {
  const out = await python(PYSOCKS_ECHO, [String(pair.socksPort), host, String(port), String(n)]);
  assert.equal(out.trim(), `ok ${n}`);
}

test.slow("PySocks UDP ASSOCIATE: hundreds of datagrams up to 1400 bytes come back exact, over IPv4, IPv6 and a name", async () => {
  await using echo = startUdpEcho();
  await using echo6 = startUdpEcho("::1");
  await using pair = await startPair({ transport: "tcp" });
  await pysocksEcho(pair, "127.0.0.1", echo.port, 400);
  assert.equal(echo.received, 400);
  await pysocksEcho(pair, "::1", echo6.port, 50);
  assert.equal(echo6.received, 50);
  await pysocksEcho(pair, "localhost", echo.port, 50);
  // Each association ended with its control connection, on both sides.
  const closes = await pair.serverEvents.waitFor("udp_close", { count: 3 });
  assert.deepEqual(closes.map((e) => e.out), [400, 50, 50]);
  assert.ok(closes.every((e) => e.strangers === 0 && e.dropped === 0));
  const client = await pair.clientEvents.waitFor("udp_close", { count: 3 });
  assert.deepEqual(client.map((e) => e.in), [400, 50, 50]);
});

test("dnspython through PySocks UDP ASSOCIATE asks a real dnsmasq on loopback", async () => {
  await using dns = await startDnsmasq({ "example.test": ["10.1.2.3", "fd00::1:2:3"] });
  const dnsPort = dns.port;
  await using pair = await startPair({
    transport: "tcp",
    routes: ["tcp:127.0.0.1", `udp:127.0.0.1:${dnsPort}`],
  });
  const script = `
import socket, sys, socks, time
import dns.message, dns.query, dns.rdatatype
proxy_port, dns_port = int(sys.argv[1]), int(sys.argv[2])
answers = []
for name, qtype in (("www.example.test", "A"), ("example.test", "AAAA"), ("a.b.example.test", "A")):
    for attempt in range(50):
        s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port)
        try:
            r = dns.query.udp(dns.message.make_query(name, qtype), "127.0.0.1", port=dns_port, timeout=2, sock=s)
            break
        except (dns.exception.Timeout, ConnectionRefusedError):
            time.sleep(0.1)  # dnsmasq still starting
        finally:
            s.close()
    answers.append("%s %s %s" % (name, qtype, " ".join(sorted(rr.to_text() for rrset in r.answer for rr in rrset))))
print("\\n".join(answers))
`;
  const out = await python(script, [String(pair.socksPort), String(dnsPort)]);
  assert.deepEqual(out.trim().split("\n"), [
    "www.example.test A 10.1.2.3",
    "example.test AAAA fd00::1:2:3",
    "a.b.example.test A 10.1.2.3",
  ]);
});

/**
 * A TCP relay in front of the server that stops reading from the client
 * after `after` bytes (and never drops them): the client's writes back up
 * into its socket, as on a congested path.
 */
function startPausingRelay(port: number, after: number): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(client, server);
      client.readable.pipeTo(
        new WritableStream(
          {
            seen: 0,
            async write(chunk: Uint8Array) {
              await server.write(chunk);
              this.seen += chunk.length;
              if (this.seen >= after) await released; // stop reading: backpressure
            },
          } as UnderlyingSink<Uint8Array> & { seen: number },
        ),
      ).catch(() => {});
      server.readable.pipeTo(client.writable).catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      release();
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // closed
        }
      }
      return Promise.resolve();
    },
  };
}

test("UDP ASSOCIATE: fragments and other sources are dropped and counted; the association ends with its control connection", async () => {
  await using echo = startUdpEcho();
  await using pair = await startPair({ transport: "tcp" });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const other = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const appPort = (app.addr as Deno.NetAddr).port;
  try {
    // DST.PORT names the application's port: only it may use the relay.
    const { control, relay } = await associate(
      pair.socksPort,
      Uint8Array.of(1, 127, 0, 0, 1, appPort >> 8, appPort & 0xff),
    );
    await other.send(udpPacket(echo.port, new TextEncoder().encode("stranger")), relay);
    await app.send(udpPacket(echo.port, new TextEncoder().encode("fragment"), 1), relay);
    await app.send(udpPacket(echo.port, new TextEncoder().encode("whole")), relay);
    const back = await withDeadline(app.receive(), 10_000, "the echo of the whole datagram");
    const [packet] = back;
    assert.deepEqual(packet.subarray(0, 10), udpPacket(echo.port, new Uint8Array(0)));
    assert.equal(new TextDecoder().decode(packet.subarray(10)), "whole");
    assert.equal(echo.received, 1);
    control.close();
    const [closed] = await pair.clientEvents.waitFor("udp_close");
    assert.equal(closed!.fragments, 1);
    assert.equal(closed!.strangers, 1);
    assert.equal(closed!.out, 1);
    assert.equal(closed!.in, 1);
    assert.match(closed!.reason, /control connection closed/);
    // The server let go of the association too, and the relay socket is gone.
    await pair.serverEvents.waitFor("udp_close");
    await app.send(udpPacket(echo.port, new TextEncoder().encode("late")), relay);
    assert.equal(await receiveWithin(app, 300), null);
    assert.equal(echo.received, 1);
  } finally {
    app.close();
    other.close();
  }
});

test("UDP to a destination the routes do not allow is refused, others on the same association go through", async () => {
  await using allowed = startUdpEcho();
  await using refused = startUdpEcho();
  await using pair = await startPair({
    transport: "tcp",
    routes: ["tcp:127.0.0.1", `udp:127.0.0.1:${allowed.port}`],
  });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const { control, relay } = await associate(pair.socksPort);
    await app.send(udpPacket(refused.port, new TextEncoder().encode("no")), relay);
    const [ev] = await pair.serverEvents.waitFor("udp_refused");
    assert.equal(ev!.target, `127.0.0.1:${refused.port}`);
    assert.equal(ev!.reason, `route udp:127.0.0.1:${refused.port} not allowed`);
    await app.send(udpPacket(allowed.port, new TextEncoder().encode("yes")), relay);
    const [packet] = await withDeadline(app.receive(), 10_000, "the allowed echo");
    assert.equal(new TextDecoder().decode(packet.subarray(10)), "yes");
    assert.equal(refused.received, 0);
    control.close();
    const [closed] = await pair.serverEvents.waitFor("udp_close");
    assert.equal(closed!.refused, 1);
    assert.equal(closed!.out, 1);
  } finally {
    app.close();
  }
});

test("egress.block applies to UDP: with routes `*` loopback is refused, by address, in IPv6 forms and by a name resolving to it", async () => {
  await using echo = startUdpEcho();
  await using echo6 = startUdpEcho("::1");
  await using pair = await startPair({ transport: "tcp", routes: ["tcp:127.0.0.1:*", "udp:*"] });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const { control, relay } = await associate(pair.socksPort);
    await app.send(udpPacket(echo.port, new TextEncoder().encode("by address")), relay);
    const [byAddress] = await pair.serverEvents.waitFor("udp_refused");
    assert.equal(byAddress!.target, `127.0.0.1:${echo.port}`);
    // ATYP 3: the name "localhost", resolved on the server to a loopback address.
    const name = new TextEncoder().encode("localhost");
    const byName = Uint8Array.of(
      0,
      0,
      0,
      3,
      name.length,
      ...name,
      echo.port >> 8,
      echo.port & 0xff,
      ...new TextEncoder().encode("by name"),
    );
    await app.send(byName, relay);
    await pair.serverEvents.waitFor("udp_refused", {
      match: (e) => e.target === `localhost:${echo.port}`,
    });
    // ATYP 4: ::1, and 127.0.0.1 IPv4-mapped (::ffff:127.0.0.1) and IPv4-compatible (::127.0.0.1).
    const v6 = (addr: number[], port: number) =>
      Uint8Array.of(0, 0, 0, 4, ...addr, port >> 8, port & 0xff, ...new TextEncoder().encode("v6"));
    const zeros = (n: number) => new Array<number>(n).fill(0);
    await app.send(v6([...zeros(15), 1], echo6.port), relay);
    await app.send(v6([...zeros(10), 0xff, 0xff, 127, 0, 0, 1], echo.port), relay);
    await app.send(v6([...zeros(12), 127, 0, 0, 1], echo.port), relay);
    await pair.serverEvents.waitFor("udp_refused", { count: 5 });
    control.close();
    const [closed] = await pair.serverEvents.waitFor("udp_close");
    assert.equal(closed!.refused, 5);
    assert.equal(closed!.out, 0);
    assert.equal(echo.received, 0, "nothing reached the loopback echo");
    assert.equal(echo6.received, 0, "nothing reached the ::1 echo");
  } finally {
    app.close();
  }
});

test("UDP names resolve through egress.resolver, and every address they resolve to is judged", async () => {
  await using dns = await startDnsmasq({
    "echo.test": ["127.0.0.2"],
    "both.test": ["127.0.0.1", "127.0.0.2"],
    "loop.test": ["127.0.0.1"],
  });
  await using echo1 = startUdpEcho("127.0.0.1");
  await using echo2 = startUdpEcho("127.0.0.2");
  // Names only dnsmasq knows; 127.0.0.2 named by a route, 127.0.0.1 only by `udp:*`.
  await using pair = await startPair({
    transport: "tcp",
    routes: ["tcp:127.0.0.1", "udp:127.0.0.2:*", "udp:*"],
    serverYaml: `egress:\n  resolver: "127.0.0.1:${dns.port}"`,
  });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const { control, relay } = await associate(pair.socksPort);
    const send = (name: string, port: number, tag: string) =>
      app.send(udpPacket(port, new TextEncoder().encode(tag), 0, name), relay);
    for (const [name, tag] of [["echo.test", "echo-one"], ["both.test", "both-one"]]) {
      await send(name!, echo2.port, tag!);
      const back = await withDeadline(app.receive(), 10_000, `the echo of ${name}`);
      // ATYP 1 127.0.0.2: the reply came from the one address the routes allow.
      assert.deepEqual([...back[0].subarray(3, 8)], [1, 127, 0, 0, 2]);
      assert.equal(new TextDecoder().decode(back[0].subarray(10)), tag);
    }
    assert.equal(echo2.received, 2);
    await send("loop.test", echo1.port, "loop-one");
    const [refused] = await pair.serverEvents.waitFor("udp_refused", {
      match: (e) => e.target === `loop.test:${echo1.port}`,
    });
    // The same reason, and log line, a refused TCP stream gets.
    const reason = `egress udp:loop.test:${echo1.port} refused: loop.test resolved to 127.0.0.1; ` +
      "127.0.0.1 is in egress.block (127.0.0.0/8) and no route names it";
    assert.equal(refused!.reason, reason);
    assert.equal(
      pair.logs.lines.filter((l) => l.endsWith(`udp association ${refused!.stream}: ${reason}`))
        .length,
      1,
      pair.logs.lines.join("\n"),
    );
    control.close();
    const [closed] = await pair.serverEvents.waitFor("udp_close");
    assert.equal(closed!.refused, 1);
    assert.equal(closed!.out, 2);
    assert.equal(echo1.received, 0, "nothing reached 127.0.0.1, which only `udp:*` covers");
  } finally {
    app.close();
  }
});

test("a UDP association survives a resumption; datagrams are never resent", async () => {
  await using echo = startUdpEcho();
  await using pair = await startPair({ transport: "tcp" });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const enc = new TextEncoder();
  const roundTrip = async (tag: string) => {
    await app.send(udpPacket(echo.port, enc.encode(tag)), relay);
    // Echoes of the burst may still arrive first: skip them.
    await withDeadline(
      async () => {
        for (;;) {
          const [p] = await app.receive();
          if (new TextDecoder().decode(p.subarray(10)) === tag) return;
        }
      },
      10_000,
      `the echo of ${tag}`,
    );
  };
  const { control, relay } = await associate(pair.socksPort);
  try {
    for (let i = 0; i < 20; i++) await roundTrip(`before${String(i).padStart(2, "0")}`);
    // Datagrams sent right before the link breaks are in the last records: a
    // resend after the resumption would deliver them twice.
    for (let i = 0; i < 50; i++) {
      await app.send(udpPacket(echo.port, enc.encode(`burst${i}`)), relay);
    }
    pair.client!.dropConnection("test: drop the link");
    await pair.clientEvents.waitFor("resume");
    for (let i = 0; i < 20; i++) await roundTrip(`after_${String(i).padStart(2, "0")}`);
    // Nothing twice, the association and its relay socket are the same ones.
    for (const [tag, n] of echo.seen) assert.equal(n, 1, `${tag} arrived ${n} times`);
    assert.equal(pair.clientEvents.of("udp_close").length, 0);
    assert.equal(pair.serverEvents.of("udp_open").length, 1);
    const session = await pair.client!.tunnel();
    assert.equal(session.muxStats().datagramsQueued, 0);
  } finally {
    control.close();
    app.close();
  }
});

test("a datagram flood into a stalled tunnel stays bounded: the oldest datagrams are dropped, the application never waits", async () => {
  // The tunnel stops moving client-to-server bytes once the association is up
  // (at 64 KiB): the client's writer blocks, its datagram queue fills, and
  // only the queue's bound keeps memory in check.
  await using pair = await startPair({
    transport: "tcp",
    via: (s) => startPausingRelay(s.port, 64 * 1024),
  });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const { control, relay } = await associate(pair.socksPort);
    const session = await pair.client!.tunnel();
    const packet = udpPacket(9, new Uint8Array(1200));
    const total = 20_000;
    let maxQueued = 0;
    let maxBytes = 0;
    await withDeadline(
      async () => {
        for (let i = 0; i < total; i++) {
          await app.send(packet, relay);
          if (i % 16 === 0) {
            // Let the relay loop take what the kernel holds, as a live application would.
            await new Promise((r) => setTimeout(r, 0));
            const st = session.muxStats();
            maxQueued = Math.max(maxQueued, st.datagramsQueued);
            maxBytes = Math.max(maxBytes, st.datagramQueueBytes);
          }
        }
      },
      60_000,
      `${total} datagrams of 1200 bytes sent to the relay`,
    );
    const st = session.muxStats();
    assert.ok(maxQueued <= 1024, `queued ${maxQueued}`);
    assert.ok(maxBytes <= 256 * 1024, `queued ${maxBytes} bytes`);
    // The pressure was real: the queue filled and dropped its oldest.
    assert.ok(st.datagramsDropped > 0, "no datagram was dropped: the tunnel did not stall");
    control.close();
    const [closed] = await pair.clientEvents.waitFor("udp_close");
    // Every datagram the relay took is sent, dropped by the queue, or still queued.
    assert.ok(closed!.out > 0 && closed!.out <= total);
    const end = session.muxStats();
    assert.equal(
      end.datagramsSent + end.datagramsDropped + end.datagramsQueued,
      closed!.out,
    );
  } finally {
    app.close();
  }
});

test("the server's UDP sockets expire after udp_idle_timeout, and only peers the client sent to get through", async () => {
  // The echo records where each datagram came from: the association's NAT socket.
  const echo = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const echoPort = (echo.addr as Deno.NetAddr).port;
  const sources: Deno.NetAddr[] = [];
  (async () => {
    for (;;) {
      const [d, from] = await echo.receive();
      sources.push(from as Deno.NetAddr);
      await echo.send(d, from);
    }
  })().catch(() => {});
  const stranger = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  await using pair = await startPair({
    transport: "tcp",
    editServer: (t) => t.replace(/^ {2}udp_idle_timeout: .*$/m, "  udp_idle_timeout: 1s"),
  });
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const enc = new TextEncoder();
  try {
    const { control, relay } = await associate(pair.socksPort);
    await app.send(udpPacket(echoPort, enc.encode("one")), relay);
    await withDeadline(app.receive(), 10_000, "the first echo");
    const nat = sources[0]!;
    // A peer the client never sent to: dropped at the server, never reaches the application.
    await stranger.send(enc.encode("let me in"), nat);
    assert.equal(await receiveWithin(app, 300), null);
    // Idle past 1 s: the socket is closed; the next datagram leaves from a new one.
    await new Promise((r) => setTimeout(r, 2_500));
    await app.send(udpPacket(echoPort, enc.encode("two")), relay);
    const [back] = await withDeadline(app.receive(), 10_000, "the echo after the idle time");
    assert.equal(new TextDecoder().decode(back.subarray(10)), "two");
    assert.equal(sources.length, 2);
    assert.notEqual(sources[1]!.port, nat.port, "a new NAT socket after the idle timeout");
    control.close();
    const [closed] = await pair.serverEvents.waitFor("udp_close");
    assert.equal(closed!.strangers, 1);
    assert.equal(closed!.out, 2);
    assert.equal(closed!.in, 2);
  } finally {
    app.close();
    stranger.close();
    echo.close();
  }
});

test("UDP ASSOCIATE while the tunnel is down: each is refused, and the log says so once per 5 s", async () => {
  // The client's server is a closed port: no session, so no association.
  await using pair = await startPair({
    transport: "tcp",
    lazy: true,
    client: { server: { host: "127.0.0.1", port: freePort() } },
  });
  for (let i = 0; i < 20; i++) {
    const control = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
    try {
      await control.write(Uint8Array.of(5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0));
      assert.deepEqual(await readExact(control, 2), Uint8Array.of(5, 0));
      const reply = await readExact(control, 10);
      assert.equal(reply[1], 1, "general failure");
    } finally {
      control.close();
    }
  }
  const lines = pair.logs.grep(/UDP ASSOCIATE: /);
  assert.equal(lines.length, 1, lines.join("\n"));
});

/** A UDP peer on 127.0.0.1 counting the payload bytes it receives, sending nothing back. */
function startUdpSink() {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sink = { port: (conn.addr as Deno.NetAddr).port, bytes: 0, close: () => conn.close() };
  (async () => {
    for (;;) sink.bytes += (await conn.receive())[0].length;
  })().catch(() => {});
  return sink;
}

/** Calls `send` `n` times, 5 at a time every 10 ms (1000-byte datagrams: 500 kB/s). */
async function offer(n: number, send: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i += 5) {
    for (let k = 0; k < 5; k++) await send();
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("bandwidth applies to UDP: datagrams over the user's rate are dropped, each way", async () => {
  const RATE = 100_000;
  /** The bucket's burst: 100 ms of the rate. */
  const BURST = RATE / 10;
  const DATAGRAM = 1000;
  await using pair = await startPair({
    transport: "tcp",
    routes: ["tcp:127.0.0.1", "udp:127.0.0.1:*"],
  });
  const users = join(pair.dir, "users.yml");
  await Deno.writeTextFile(
    users,
    updateUserInYaml(await Deno.readTextFile(users), users, "alice", { bandwidth: "100KB/s" }),
  );
  await pair.reloadUsers();
  const sink = startUdpSink();
  // A peer that answers a datagram with 1000 datagrams of 1000 bytes at 500 kB/s.
  const blaster = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  (async () => {
    const [, from] = await blaster.receive();
    await offer(1000, () => blaster.send(new Uint8Array(DATAGRAM), from));
  })().catch(() => {});
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const { control, relay } = await associate(pair.socksPort);
    // Up: 1000 datagrams at five times the rate.
    const t0 = performance.now();
    await offer(1000, () => app.send(udpPacket(sink.port, new Uint8Array(DATAGRAM)), relay));
    await new Promise((r) => setTimeout(r, 500));
    const upSeconds = (performance.now() - t0) / 1000;
    console.log(
      `UDP up at 100KB/s: ${sink.bytes} of ${1000 * DATAGRAM} bytes in ${upSeconds.toFixed(2)} s`,
    );
    assert.ok(sink.bytes <= RATE * upSeconds + BURST + DATAGRAM, `${sink.bytes} bytes went up`);
    assert.ok(sink.bytes >= 0.5 * RATE * (upSeconds - 0.5), `only ${sink.bytes} bytes went up`);
    // Down: the blaster's 1000 datagrams, counted for as long as they come.
    let down = 0;
    const t1 = performance.now();
    const blasterPort = (blaster.addr as Deno.NetAddr).port;
    await app.send(udpPacket(blasterPort, new Uint8Array(8)), relay);
    for (;;) {
      const d = await receiveWithin(app, 1000);
      if (d === null) break;
      down += d.length - 10;
    }
    const downSeconds = (performance.now() - t1) / 1000;
    console.log(
      `UDP down at 100KB/s: ${down} of ${1000 * DATAGRAM} bytes in ${downSeconds.toFixed(2)} s`,
    );
    assert.ok(down <= RATE * downSeconds + BURST + DATAGRAM, `${down} bytes came down`);
    assert.ok(down >= 0.5 * RATE * (downSeconds - 1), `only ${down} bytes came down`);
    control.close();
    const [closed] = await pair.serverEvents.waitFor("udp_close");
    assert.ok(closed!.dropped >= 1000, `the server dropped ${closed!.dropped} datagrams`);
  } finally {
    app.close();
    blaster.close();
    sink.close();
  }
});

test("a UDP ASSOCIATE over the user's max_streams gets reply 2, and the client logs why", async () => {
  await using echo = startEchoServer();
  await using pair = await startPair({ transport: "tcp", fastOpen: false });
  const users = join(pair.dir, "users.yml");
  await Deno.writeTextFile(
    users,
    updateUserInYaml(await Deno.readTextFile(users), users, "alice", { maxStreams: 1 }),
  );
  await pair.reloadUsers();
  const held = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
  const control = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
  try {
    await control.write(Uint8Array.of(5, 1, 0));
    assert.deepEqual(await readExact(control, 2), Uint8Array.of(5, 0));
    await control.write(Uint8Array.of(5, 3, 0, 1, 0, 0, 0, 0, 0, 0));
    const reply = await readExact(control, 2);
    assert.equal(reply[1], 2, "SOCKS5 reply 2, not allowed by ruleset");
    await waitFor(
      "the client's log line saying why",
      () =>
        pair.logs.grep(/\[client.*too many streams for this user \(max 1 over all tunnels\)/)
          .length === 1,
      5_000,
    );
  } finally {
    control.close();
    held.close();
  }
});
