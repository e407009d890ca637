/**
 * `dns:` in the client profile: a local DNS server whose queries go through
 * the tunnel (DATAGRAM frames for UDP, a stream for TCP) to a real dnsmasq
 * that answers names nobody else knows. Asked by `dig` over UDP and TCP and
 * by dnspython, including two applications that pick the same query ID at
 * the same time; an idle TCP connection closed after `dns.idle_timeout`.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { test } from "../support/deadline.ts";
import { expectClosed, readExact } from "../support/socks_client.ts";
import { PYTHON } from "../support/programs.ts";
import { startDnsmasq } from "./_dnsmasq.ts";
import { type Pair, run, startPair, text } from "./_harness.ts";

/** dnsmasq answering names only it knows, and a pair whose client has `dns:` pointed at it. */
async function startDnsPair(upstreamPort: number): Promise<Pair> {
  return await startPair({
    transport: "tcp",
    profileYaml: `dns:\n  listen: "127.0.0.1:0"\n  upstream: "127.0.0.1:${upstreamPort}"\n`,
  });
}

async function dig(port: number, ...args: string[]): Promise<string> {
  const r = await run("dig", [
    "@127.0.0.1",
    "-p",
    String(port),
    "+short",
    "+time=5",
    "+tries=2",
    ...args,
  ], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `dig ${args.join(" ")}: ${text(r)} ${r.stderr}`);
  return text(r).trim();
}

test("dig over UDP and over TCP asks dns.listen; the answers come from the upstream through the tunnel", async () => {
  await using upstream = await startDnsmasq({
    "only-upstream.test": ["10.9.8.7", "fd00::9:8:7"],
  });
  await using pair = await startDnsPair(upstream.port);
  const dns = pair.client!.dnsAddr!;
  assert.equal(await dig(dns.port, "only-upstream.test", "A"), "10.9.8.7");
  assert.equal(await dig(dns.port, "www.only-upstream.test", "AAAA"), "fd00::9:8:7");
  // UDP went as datagrams on one association the server opened for the client.
  await pair.serverEvents.waitFor("udp_open");
  assert.equal(pair.serverEvents.of("udp_open").length, 1, "one association for both queries");
  assert.equal(await dig(dns.port, "+tcp", "only-upstream.test", "A"), "10.9.8.7");
  // TCP went as a stream the server dialed to the upstream.
  const tcp = pair.serverEvents.of("stream_open", (e) => e.target === `127.0.0.1:${upstream.port}`);
  assert.equal(tcp.length, 1);
  // A name the upstream does not know has no address (dnsmasq's NXDOMAIN comes back through).
  assert.equal(await dig(dns.port, "elsewhere.example", "A"), "");
});

/**
 * dnspython: a query over UDP and one over TCP; then two sockets send
 * queries for different names with the same ID at once, and each gets the
 * answer to its own name with its own ID.
 */
const DNSPYTHON = `
import socket, sys
import dns.message, dns.query
port = int(sys.argv[1])
def addrs(r):
    return " ".join(sorted(rr.to_text() for rrset in r.answer for rr in rrset))
print("udp", addrs(dns.query.udp(dns.message.make_query("a.test", "A"), "127.0.0.1", port=port, timeout=5)))
print("tcp", addrs(dns.query.tcp(dns.message.make_query("b.test", "A"), "127.0.0.1", port=port, timeout=5)))
socks = []
for name in ("a.test", "b.test"):
    q = dns.message.make_query(name, "A")
    q.id = 4242
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(q.to_wire(), ("127.0.0.1", port))
    socks.append((name, s))
for name, s in socks:
    r = dns.message.from_wire(s.recv(4096))
    print("same-id", name, r.id, addrs(r))
`;

test("dnspython over UDP and TCP, and two applications using the same query ID at once", async () => {
  await using upstream = await startDnsmasq({ "a.test": ["10.0.0.1"], "b.test": ["10.0.0.2"] });
  await using pair = await startDnsPair(upstream.port);
  const r = await run(PYTHON, ["-c", DNSPYTHON, String(pair.client!.dnsAddr!.port)], {
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(text(r).trim().split("\n"), [
    "udp 10.0.0.1",
    "tcp 10.0.0.2",
    "same-id a.test 4242 10.0.0.1",
    "same-id b.test 4242 10.0.0.2",
  ]);
});

test("after the session carrying the shared association ends, the next query opens a new one", async () => {
  await using upstream = await startDnsmasq({ "again.test": ["10.7.7.7"] });
  await using pair = await startDnsPair(upstream.port);
  const port = pair.client!.dnsAddr!.port;
  assert.equal(await dig(port, "again.test"), "10.7.7.7");
  // Kicked: the session and its association end; the client opens a new session.
  assert.equal(await pair.server.kick("alice"), 1);
  await pair.serverEvents.waitFor("udp_close");
  assert.equal(await dig(port, "again.test"), "10.7.7.7");
  assert.equal(pair.serverEvents.of("udp_open").length, 2);
});

/** A DNS query for `name`, type A, with ID `id`, framed for TCP (RFC 1035 section 4.2.2). */
function tcpQuery(id: number, name: string): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  const msg = [id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, 1, 0, 1];
  return new Uint8Array([msg.length >> 8, msg.length & 0xff, ...msg]);
}

test("dns.idle_timeout closes a TCP DNS connection idle that long, and its tunnel stream", async () => {
  await using upstream = await startDnsmasq({ "idle.test": ["10.6.6.6"] });
  await using pair = await startPair({
    transport: "tcp",
    profileYaml: `dns:\n  listen: "127.0.0.1:0"\n  upstream: "127.0.0.1:${upstream.port}"\n` +
      `  idle_timeout: 1s\n`,
  });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.client!.dnsAddr!.port });
  // Queries every 300 ms for three idle periods: each answered, the connection stays open.
  for (let i = 0; i < 10; i++) {
    await conn.write(tcpQuery(0x4200 + i, "idle.test"));
    const head = await readExact(conn, 2);
    const answer = await readExact(conn, (head[0]! << 8) | head[1]!);
    assert.deepEqual([...answer.subarray(0, 2)], [0x42, i]);
    assert.deepEqual([...answer.subarray(answer.length - 4)], [10, 6, 6, 6]);
    await new Promise((r) => setTimeout(r, 300));
  }
  // Then idle: closed (end of stream or a reset) well before the default 10 s, let alone dnsmasq's own.
  await expectClosed(conn, 6_000, "the idle DNS connection to close");
  const tcp = pair.serverEvents.of("stream_open", (e) => e.target === `127.0.0.1:${upstream.port}`);
  assert.equal(tcp.length, 1, "one stream for all ten queries");
  // The tunnel stream ended with it: the server closed its side to the upstream.
  await pair.serverEvents.waitFor("stream_close", {
    match: (e) => e.session === tcp[0]!.session && e.stream === tcp[0]!.stream,
  });
});
