/**
 * The egress policy end to end: curl and raw SOCKS5 requests through a real
 * client and server. With the default `egress.block`, a user whose routes
 * are `*` reaches nothing on the server's machine or network (loopback in
 * every form, the server's own ports, private and metadata addresses, a
 * name a local DNS server resolves to loopback); routes that name an
 * address or range reach it; deny rules and first-match order hold; the
 * refusal is SOCKS5 reply 2 without fast open and a closed connection with
 * it, logged on both sides.
 *
 * Private and metadata addresses are asked for in a child process whose
 * `--allow-net` is loopback only (`_egress_probe.ts`), so nothing can leave
 * the machine even if the policy broke. Names resolve through dnsmasq on a
 * loopback port (`egress.resolver`), which knows only the test's names.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { run, startEchoServer, startPair, text } from "./_harness.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { socksReplyFor } from "../support/socks_client.ts";
import { serveConnections } from "../support/serve.ts";
import { test, waitFor } from "../support/deadline.ts";
import { startDnsmasq } from "./_dnsmasq.ts";

/** curl's exit code when the SOCKS5 proxy refuses (CURLE_PROXY). */
const CURLE_PROXY = 97;

function curl(socksPort: number, url: string, opts: { remoteDns?: boolean } = {}) {
  return run("curl", [
    "-sS",
    "--max-time",
    "20",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    opts.remoteDns === false ? "--socks5" : "--socks5-hostname",
    `127.0.0.1:${socksPort}`,
    url,
  ], { timeoutMs: 30_000 });
}

/** A listener on 127.0.0.2 answering HTTP 200, counting connections. */
function startOn127_0_0_2() {
  const served = serveConnections(
    Deno.listen({ hostname: "127.0.0.2", port: 0 }),
    async (c) => {
      await c.write(new TextEncoder().encode("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
      c.close();
    },
  );
  return {
    port: served.port,
    accepted: () => served.accepted,
    [Symbol.asyncDispose]: served.close,
  };
}

test("SOCKS5 with routes `*`: loopback in every form and the server's own ports get reply 2", async () => {
  await using target = await startHttpTarget();
  await using target6 = await startHttpTarget({ hostname: "::1" });
  await using other = startOn127_0_0_2();
  await using pair = await startPair({
    routes: ["*"],
    fastOpen: false,
    editServer: (t) =>
      t.replace(
        /^socks5_direct:\n {2}enabled: false\n {2}listen: .*$/m,
        'socks5_direct:\n  enabled: true\n  listen: "127.0.0.1:0"',
      ),
  });
  const direct = pair.server.directAddr!;
  const asks: [string, number][] = [
    ["127.0.0.1", target.port],
    ["::1", target6.port],
    ["::ffff:127.0.0.1", target.port],
    ["::127.0.0.1", target.port],
    ["64:ff9b::7f00:1", target.port],
    ["127.0.0.2", other.port],
    ["0.0.0.0", target.port],
    ["::", target6.port],
    ["localhost", target.port],
    // The server's own tunnel port and its unauthenticated direct SOCKS5 port.
    ["127.0.0.1", pair.serverPort],
    ["127.0.0.1", direct.port],
  ];
  for (const [host, port] of asks) {
    assert.equal(await socksReplyFor(pair.socksPort, host, port), 2, `${host}:${port}`);
  }
  // Other spellings of 127.0.0.1 are not host names; they are refused before any lookup.
  for (const host of ["127.1", "2130706433", "0x7f.1"]) {
    assert.notEqual(await socksReplyFor(pair.socksPort, host, target.port), 0, host);
  }
  assert.equal(target.requests.length + target6.requests.length + other.accepted(), 0);
  const refused = pair.serverEvents.of("stream_refused");
  assert.equal(refused.length, asks.length);
  for (const e of refused) {
    assert.equal(e.cause, "egress", e.reason);
    assert.equal(e.reply, 2);
    assert.equal(e.user, "alice");
    assert.match(e.reason, /^egress tcp:.* refused: .* is in egress\.block \(.*\) and no route/);
  }
  assert.match(
    refused.find((e) => e.target === `localhost:${target.port}`)!.reason,
    /localhost resolved to 127\.0\.0\.1; 127\.0\.0\.1 is in egress\.block \(127\.0\.0\.0\/8\)/,
  );
  // The client logs each refusal too.
  await waitFor(
    "the client's log lines",
    () => pair.logs.grep(/^.*client.*connection not allowed by ruleset/).length >= asks.length,
    5_000,
  );
});

test("curl sees the SOCKS5 refusal (reply 2) for loopback, and fetches once routes name it", async () => {
  await using target = await startHttpTarget();
  await using target6 = await startHttpTarget({ hostname: "::1" });
  {
    await using pair = await startPair({ routes: ["*"], fastOpen: false });
    for (
      const url of [
        `${target.url}/hello`,
        `${target6.url}/hello`,
        `http://localhost:${target.port}/hello`,
      ]
    ) {
      const r = await curl(pair.socksPort, url);
      assert.equal(r.code, CURLE_PROXY, `${url}: ${r.stderr}`);
      // curl names the SOCKS5 reply code it got.
      assert.match(r.stderr, /Can't complete SOCKS5 connection to .*\(2\)/, `${url}: ${r.stderr}`);
    }
    const r = await curl(pair.socksPort, `http://[::ffff:127.0.0.1]:${target.port}/hello`, {
      remoteDns: false,
    });
    assert.equal(r.code, CURLE_PROXY, r.stderr);
    assert.equal(target.requests.length + target6.requests.length, 0);
  }
  {
    await using pair = await startPair({ routes: ["127.0.0.1:*", "[::1]:*"], fastOpen: false });
    for (
      const url of [
        `${target.url}/hello`,
        `${target6.url}/hello`,
        `http://localhost:${target.port}/hello`,
      ]
    ) {
      const r = await curl(pair.socksPort, url);
      assert.equal(r.code, 0, `${url}: ${r.stderr}`);
      assert.equal(text(r), "200");
    }
    const r = await curl(pair.socksPort, `http://[::ffff:127.0.0.1]:${target.port}/hello`, {
      remoteDns: false,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(text(r), "200");
    assert.equal(target.requests.length + target6.requests.length, 4);
    assert.equal(pair.serverEvents.of("stream_refused").length, 0);
  }
});

test("with fast open a refused stream closes; both sides log why", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ routes: ["*"], fastOpen: true });
  const r = await curl(pair.socksPort, `${target.url}/hello`);
  // The SOCKS5 success came first (fast open); then the connection closed with no response.
  assert.notEqual(r.code, 0);
  assert.notEqual(r.code, CURLE_PROXY);
  assert.equal(text(r), "000");
  const [e] = await pair.serverEvents.waitFor("stream_refused", { timeoutMs: 5_000 });
  assert.equal(e!.cause, "egress");
  assert.equal(target.requests.length, 0);
  await waitFor(
    "the client's log line",
    () =>
      pair.logs.grep(new RegExp(`client.*127\\.0\\.0\\.1:${target.port}: connection not allowed`))
        .length === 1,
    5_000,
  );
  assert.equal(
    pair.logs.grep(new RegExp(`server.*egress tcp:127\\.0\\.0\\.1:${target.port} refused`)).length,
    1,
  );
});

test("routes: explicit addresses and ranges, ports, deny rules and first-match order", async () => {
  await using echo = startEchoServer();
  await using target = await startHttpTarget();
  await using other = startOn127_0_0_2();
  const cases: [string[], [string, number, number][]][] = [
    // Only the named address: 127.0.0.2 is another loopback address, still blocked.
    [["127.0.0.1:*"], [["127.0.0.1", target.port, 0], ["127.0.0.2", other.port, 2]]],
    // A range names them all; a port narrows it.
    [["127.0.0.0/8:*"], [["127.0.0.2", other.port, 0], ["127.0.0.1", echo.port, 0]]],
    [[`127.0.0.0/8:${target.port}`], [["127.0.0.1", target.port, 0], ["127.0.0.1", echo.port, 2]]],
    // A deny before the range wins; after it, the range wins.
    [
      [`!127.0.0.1:${target.port}`, "127.0.0.0/8:*"],
      [["127.0.0.1", target.port, 2], ["127.0.0.1", echo.port, 0], ["localhost", target.port, 2]],
    ],
    [[`127.0.0.0/8:*`, `!127.0.0.1:${target.port}`], [["127.0.0.1", target.port, 0]]],
    // `*` first does not hide a later explicit rule; a name glob never reaches loopback.
    [["*", "127.0.0.2:*"], [["127.0.0.2", other.port, 0], ["127.0.0.1", echo.port, 2]]],
    [["localhost", "*"], [["localhost", echo.port, 2]]],
    // IPv6: ::1 is not 127.0.0.1; the mapped form is.
    [["127.0.0.1:*"], [["::1", echo.port, 2], ["::ffff:127.0.0.1", echo.port, 0]]],
    // Catch-all ranges are not explicit.
    [["0.0.0.0/0", "[::/0]"], [["127.0.0.1", echo.port, 2], ["::1", echo.port, 2]]],
  ];
  for (const [routes, asks] of cases) {
    await using pair = await startPair({ routes, fastOpen: false });
    for (const [host, port, want] of asks) {
      assert.equal(
        await socksReplyFor(pair.socksPort, host, port),
        want,
        `${routes} ${host}:${port}`,
      );
    }
    const causes = pair.serverEvents.of("stream_refused").map((e) => e.cause);
    const wanted = asks.filter(([, , w]) => w === 2).length;
    assert.equal(causes.length, wanted, `${routes}`);
    // Refused by a deny rule: "route"; by the block list: "egress".
    if (routes[0]!.startsWith("!")) assert.deepEqual(causes, ["route", "route"]);
    // The client is told the same either way (nothing about what a name resolved to).
    await waitFor(
      "the client's streams to close",
      () => pair.clientEvents.of("stream_close").length >= asks.length,
      5_000,
    );
    const told = pair.clientEvents.of("stream_close").map((e) => e.reason);
    assert.deepEqual(
      told.filter((r) => r !== "reset by peer: not allowed by the server's routes").length,
      asks.length - wanted,
      `${routes}: ${told}`,
    );
  }
});

test("a name that resolves to loopback is refused after resolution (no DNS-rebinding bypass)", async () => {
  await using target = await startHttpTarget();
  await using dns = await startDnsmasq({
    "rebind.test": ["127.0.0.1"],
    "rebind6.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "meta.test": ["169.254.169.254"],
  });
  const serverYaml = `egress:\n  resolver: "127.0.0.1:${dns.port}"`;
  {
    await using pair = await startPair({ routes: ["*"], fastOpen: false, serverYaml });
    for (const name of ["rebind.test", "rebind6.test", "mapped.test", "meta.test"]) {
      const r = await curl(pair.socksPort, `http://${name}:${target.port}/hello`);
      assert.equal(r.code, CURLE_PROXY, `${name}: ${r.stderr}`);
    }
    assert.equal(target.requests.length, 0);
    const reasons = pair.serverEvents.of("stream_refused").map((e) => [e.cause, e.reason]);
    assert.deepEqual(reasons, [
      [
        "egress",
        `egress tcp:rebind.test:${target.port} refused: rebind.test resolved to 127.0.0.1; ` +
        "127.0.0.1 is in egress.block (127.0.0.0/8) and no route names it",
      ],
      [
        "egress",
        `egress tcp:rebind6.test:${target.port} refused: rebind6.test resolved to ::1; ` +
        "::1 is in egress.block (::1/128) and no route names it",
      ],
      [
        "egress",
        `egress tcp:mapped.test:${target.port} refused: mapped.test resolved to 127.0.0.1; ` +
        "127.0.0.1 is in egress.block (127.0.0.0/8) and no route names it",
      ],
      [
        "egress",
        `egress tcp:meta.test:${target.port} refused: meta.test resolved to 169.254.169.254; ` +
        "169.254.169.254 is in egress.block (169.254.0.0/16) and no route names it",
      ],
    ]);
  }
  {
    // A name glob does not name the address; an address rule does, for the name too.
    await using pair = await startPair({ routes: ["*.test"], fastOpen: false, serverYaml });
    assert.equal(await socksReplyFor(pair.socksPort, "rebind.test", target.port), 2);
  }
  {
    await using pair = await startPair({ routes: ["127.0.0.1:*"], fastOpen: false, serverYaml });
    const r = await curl(pair.socksPort, `http://rebind.test:${target.port}/hello`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(text(r), "200");
    assert.equal(target.requests.length, 1);
  }
});

test("private and metadata addresses get reply 2 and are never dialled (loopback-only child)", async () => {
  const asks = [
    "10.1.2.3:22",
    "172.16.0.1:80",
    "192.168.1.1:80",
    "100.64.0.1:80",
    "100.100.100.200:80",
    "169.254.169.254:80",
    "169.254.170.2:80",
    "224.0.0.1:80",
    "[fd00:ec2::254]:80",
    "[fc00::1]:80",
    "[fe80::1]:80",
    "[ff02::1]:80",
    "[::ffff:169.254.169.254]:80",
    "[::ffff:10.0.0.1]:80",
    "[64:ff9b::a9fe:a9fe]:80",
    "[2002:a9fe:a9fe::1]:80",
  ];
  const script = new URL("./_egress_probe.ts", import.meta.url).pathname;
  const r = await run(Deno.execPath(), [
    "run",
    "--allow-net=127.0.0.1,[::1]",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    script,
    ...asks,
  ], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(text(r)) as {
    replies: Record<string, number>;
    refused: [string, number, string][];
  };
  assert.deepEqual(out.replies, Object.fromEntries(asks.map((a) => [a, 2])));
  // Refused by the policy before any dial (a dial would have been a "dial" refusal here).
  assert.deepEqual(out.refused, asks.map((a) => [a, 2, "egress"]));
});

test("egress.block from server.yml: [self] blocks only the server's own address", async () => {
  await using echo = startEchoServer();
  await using other = startOn127_0_0_2();
  // The pair's server listens on 127.0.0.1: that address is `self`; 127.0.0.2 is not.
  await using pair = await startPair({
    routes: ["*"],
    fastOpen: false,
    serverYaml: "egress:\n  block: [self]",
  });
  assert.equal(await socksReplyFor(pair.socksPort, "127.0.0.2", other.port), 0);
  assert.equal(await socksReplyFor(pair.socksPort, "127.0.0.1", echo.port), 2);
  assert.equal(await socksReplyFor(pair.socksPort, "127.0.0.1", pair.serverPort), 2);
  assert.equal(other.accepted(), 1);
  assert.equal(echo.accepted(), 0);
  const reasons = pair.serverEvents.of("stream_refused").map((e) => e.reason);
  assert.deepEqual(reasons, [
    `egress tcp:127.0.0.1:${echo.port} refused: 127.0.0.1 is in egress.block (self) and no route names it`,
    `egress tcp:127.0.0.1:${pair.serverPort} refused: 127.0.0.1 is in egress.block (self) and no route names it`,
  ]);
});

const canUnshare = (await run("unshare", ["-n", "true"], { timeoutMs: 10_000 }).catch(() => null))
  ?.code === 0;

test({
  name:
    "a server on 0.0.0.0 refuses its own addresses, also one added after it started (TCP and UDP)",
  ignore: !canUnshare,
  async fn() {
    // In a network namespace of its own, without --allow-sys (no interface list): the server
    // finds out by binding that 198.51.100.7 is this machine's, before any packet goes there.
    const r = await run("unshare", [
      "-n",
      "sh",
      "-c",
      'ip link set lo up && exec "$0" run --allow-net --allow-read --allow-write --allow-env --allow-run=ip "$1"',
      Deno.execPath(),
      new URL("./_netns_self.ts", import.meta.url).pathname,
    ], { timeoutMs: 60_000, cwd: new URL("../..", import.meta.url).pathname });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(text(r));
    assert.equal(out.reply, 2, "SOCKS5 reply 2 for the server's own address");
    assert.equal(out.accepted, 0, "refused before dialling");
    assert.equal(out.received, 0, "no datagram reached the server's own address");
    assert.deepEqual(out.refusedStreams.map((s: string[]) => s[1]), ["egress"]);
    const [to, why] = out.refusedDatagrams;
    assert.match(to, /^198\.51\.100\.7:\d+$/);
    assert.equal(
      why,
      `egress udp:${to} refused: 198.51.100.7 is in egress.block (self) and no route names it`,
    );
  },
});
