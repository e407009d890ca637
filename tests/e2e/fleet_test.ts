/**
 * A fleet: three servers on loopback sharing one real redis-server
 * (`store.url`), real clients. What one server saw or decided holds on the
 * others: a Hello replayed to another server is a probe, a user's
 * `max_tunnels` counts tunnels on every server, a kick on one server ends
 * the user's tunnels on all within 1 s, a quota counts bytes moved through
 * every server, and an outage of Redis is survived as docs/DEPLOY.md says.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadServerConfig, loadUsers } from "../../lib/config/mod.ts";
import { connectLink } from "../../lib/tunnel/client.ts";
import { RedisLink } from "../../lib/fleet/mod.ts";
import { promtoolCheck } from "../support/promtool.ts";
import { hasProgram, startHaproxy } from "../support/fronts.ts";
import { createCa, issueCert } from "../support/certs.ts";
import { startTcpBalancer } from "../support/tcp_balancer.ts";
import { socksConnect } from "../support/socks_client.ts";
import { startEchoServer } from "./_harness.ts";
import { startServer } from "../../lib/tunnel/server.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { ReleaseReason } from "../../lib/session/mod.ts";
import { startMitmRelay } from "../support/mitm_relay.ts";
import { exchange } from "../support/io.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { hasRedis, startRedis } from "../support/redis.ts";
import { run, text } from "./_harness.ts";
import { type Fleet, type FleetClient, startFleet } from "./_fleet.ts";
import { test, waitFor } from "../support/deadline.ts";

const MiB = 1024 * 1024;
const enc = new TextEncoder();
const ignore = !(await hasRedis());

/** Writes `bytes` over a fresh TLS connection to server `port` and returns its whole answer. */
async function probe(fleet: Fleet, port: number, bytes: Uint8Array): Promise<string> {
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [fleet.caPem],
    alpnProtocols: ["http/1.1"],
  });
  const opts = { ms: 15_000, what: "the decoy's whole answer", endOnError: true };
  return new TextDecoder().decode(await exchange(conn, bytes, opts));
}

function curl(socksPort: number, url: string, more: string[] = []) {
  return run("curl", [
    "-sS",
    "--max-time",
    "60",
    "--socks5-hostname",
    `127.0.0.1:${socksPort}`,
    ...more,
    "-o",
    "/dev/null",
    "-w",
    "%{size_download}",
    url,
  ], { timeoutMs: 90_000 });
}

/** A real client logs in to server `port` through a recording TLS interceptor: its Hello's bytes. */
async function recordHello(fleet: Fleet, port: number): Promise<Uint8Array> {
  let answered = false;
  const hello: number[] = [];
  await using relay = await startMitmRelay({
    upstream: { hostname: "127.0.0.1", port, caPem: fleet.caPem, serverName: "localhost" },
    serverName: "localhost",
    tamper: (dir, chunk) => {
      if (dir === "server_to_client") answered = true;
      else if (!answered) hello.push(...chunk);
      return chunk;
    },
  });
  const profile = await fleet.profile("alice");
  const { link } = await connectLink(profile, {
    server: { host: "127.0.0.1", port: relay.port },
    serverName: profile.serverName,
    transport: profile.transport,
    caPem: relay.caPem,
  });
  link.conn.close();
  assert.ok(hello.length >= 64, `recorded a hello of ${hello.length} bytes`);
  return Uint8Array.from(hello);
}

test("a Hello recorded on one server and replayed to another server of the fleet gets the decoy", {
  ignore,
}, async () => {
  await using redis = await startRedis();
  await using fleet = await startFleet(redis);
  const [a, b] = fleet.servers;
  const hello = await recordHello(fleet, a!.port);

  // Server B never saw it, but the fleet did: B answers as a web server, as to random bytes.
  const replayed = await probe(fleet, b!.port, hello);
  const garbage = await probe(fleet, b!.port, crypto.getRandomValues(new Uint8Array(hello.length)));
  assert.match(replayed, /^HTTP\/1\.1 4\d\d /);
  assert.equal(replayed.split("\r\n")[0], garbage.split("\r\n")[0]);
  const refused = b!.events.of(
    "refusal",
    (e) => e.reason === "probe" && /seen by another server of the fleet/.test(e.detail),
  );
  assert.equal(refused.length, 1, fleet.logs.lines.join("\n"));
  assert.equal(b!.events.of("login").length, 0);
  // A fresh login to B works.
  const page = await probe(
    fleet,
    b!.port,
    enc.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
  );
  assert.match(page, /Welcome to nginx!/);
});

test(
  "Redis restarted without persistence forgets the nonces: a Hello recorded before is still a probe on another server, a fresh client logs in",
  { ignore },
  async () => {
    await using redis = await startRedis({ persist: false });
    await using fleet = await startFleet(redis);
    const [a, b] = fleet.servers;
    const epochs = () => fleet.logs.lines.filter((l) => /had no replay epoch/.test(l)).length;
    assert.equal(epochs(), 1, "the first server to connect wrote the marker");
    const hello = await recordHello(fleet, a!.port);

    // Redis loses everything; the servers reconnect and one of them writes a new replay epoch.
    await redis.stop();
    await redis.start();
    await waitFor("a server to notice the lost replay epoch", () => epochs() === 2, 15_000);
    const check = await RedisLink.connect({ url: redis.url });
    try {
      assert.deepEqual(await check.run((c) => c.keys("nitrosocks:replay:*")), [], "nonces gone");
      assert.ok(Number(await check.run((c) => c.get("nitrosocks:replay_epoch"))) > 0);
    } finally {
      await check.close();
    }

    // The Hello's nonce is forgotten, but it is stamped before the epoch: B answers as a web server.
    const replayed = await probe(fleet, b!.port, hello);
    assert.match(replayed, /^HTTP\/1\.1 4\d\d /);
    const refused = b!.events.of(
      "refusal",
      (e) => e.reason === "probe" && /before the shared store's replay epoch/.test(e.detail),
    );
    assert.equal(refused.length, 1, fleet.logs.lines.join("\n"));
    assert.equal(b!.events.of("login").length, 0);
    // A fresh client stamps its Hello now, after the epoch: it logs in to B.
    await fleet.client("alice", 1);
    await b!.events.waitFor("login", { timeoutMs: 10_000 });
  },
);

test("a user capped at 2 tunnels cannot open a third through any server of the fleet", {
  ignore,
}, async () => {
  await using redis = await startRedis();
  await using fleet = await startFleet(redis, { users: [{ name: "alice", maxTunnels: 2 }] });
  const [a, b, c] = fleet.servers;
  await fleet.client("alice", 0);
  await a!.events.waitFor("session_start", { timeoutMs: 10_000 });
  await fleet.client("alice", 1);
  await b!.events.waitFor("session_start", { timeoutMs: 10_000 });
  const third = await fleet.client("alice", 2);
  const [rel] = await third.events.waitFor("release", { timeoutMs: 10_000 });
  assert.equal(rel!.notice, ReleaseReason.LIMIT);
  assert.match(rel!.reason, /too many tunnels/);
  const [l] = await c!.events.waitFor("limit", { timeoutMs: 5_000 });
  assert.equal(l!.limit, "max_tunnels");
  assert.equal(l!.detail, "too many tunnels for this user across the fleet (max 2)");
  await waitFor("server C to end the third tunnel", () => c!.handle.sessions.size === 0, 5_000);
  assert.equal(a!.handle.sessions.size + b!.handle.sessions.size, 2, "the first two stay");

  // One tunnel ends: its place is free at once, through any server.
  await [...a!.handle.sessions][0]!.notifyAndClose("test", ReleaseReason.SHUTDOWN);
  await waitFor("server A's tunnel to end", () => a!.handle.sessions.size === 0, 5_000);
  await new Promise((r) => setTimeout(r, 200)); // the lease is given back asynchronously
  const fourth = await fleet.client("alice", 2);
  await c!.events.waitFor("session_start", { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(fourth.events.of("release").length, 0, "the new tunnel stays");
  assert.equal(c!.handle.sessions.size, 1);
});

test("a kick on one server ends the user's tunnels on every server within 1 s", {
  ignore,
}, async () => {
  await using redis = await startRedis();
  await using fleet = await startFleet(redis, { users: [{ name: "alice" }, { name: "bob" }] });
  const [a, b, c] = fleet.servers;
  await fleet.client("alice", 1);
  await fleet.client("alice", 2);
  await fleet.client("bob", 2);
  await waitFor(
    "tunnels on B and C",
    () => b!.handle.sessions.size === 1 && c!.handle.sessions.size === 2,
    10_000,
  );
  const endedB = b!.events.waitFor("session_end", { timeoutMs: 5_000 });
  const endedC = c!.events.waitFor("session_end", { timeoutMs: 5_000 });
  const t0 = Date.now();
  assert.equal(await a!.handle.kick("alice", "test"), 0, "A itself has no tunnel of alice");
  const [eb] = await endedB;
  const [ec] = await endedC;
  const ms = Math.max(eb!.time, ec!.time) - t0;
  console.log(`kick on A ended alice's tunnels on B and C ${ms} ms later`);
  assert.ok(ms < 1000, `ended after ${ms} ms`);
  assert.equal(eb!.user, "alice");
  assert.equal(ec!.user, "alice");
  assert.match(eb!.reason, /kicked by the operator/);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c!.handle.sessions.size, 1, "bob's tunnel stays");
});

test("a quota is spent across the servers of the fleet", { ignore }, async () => {
  await using redis = await startRedis();
  await using target = await startHttpTarget();
  await using fleet = await startFleet(redis, {
    servers: 2,
    // Paced by the server (the client's buffers would take a whole download at once).
    users: [{ name: "alice", quota: "12MB/1d", bandwidth: "4MB/s" }],
    serverYaml: "accounting:\n  flush_interval: 200ms",
  });
  const [a, b] = fleet.servers;
  const first = await fleet.client("alice", 0);
  let r = await curl(first.socksPort, `${target.url}/bytes/${8 * MiB}`);
  assert.equal(r.code, 0, r.stderr);
  await first.close();
  // Server B learns A's bytes through Redis: its download stops at the quota, not after 8 MiB more.
  const second = await fleet.client("alice", 1);
  const cut = b!.events.waitFor("limit", { timeoutMs: 30_000, match: (e) => e.limit === "quota" });
  r = await curl(second.socksPort, `${target.url}/bytes/${8 * MiB}`);
  await cut;
  const got = Number(text(r));
  console.log(`through B after 8 MiB through A: ${got} bytes before the quota cut`);
  // The quota counts tunnel bytes (a little more than the payload): A used about 8.4 MB of the
  // 12 MB. B may overshoot by what moves while the fleet's counters travel (a flush, 200 ms,
  // and a quota check, 250 ms): at 4 MB/s, well under 2.5 MB.
  assert.ok(got < 12e6 - 8 * MiB + 2.5e6, `B let ${got} bytes through`);
  const bytes = (s: typeof a) => {
    const u = s!.handle.accountant.user("alice");
    return (u?.bytesIn ?? 0) + (u?.bytesOut ?? 0);
  };
  await waitFor("both servers to see the fleet's bytes", () => bytes(b) >= 12e6, 5_000);
});

test(
  "store.password_file: a fleet logs in to a Redis that asks for a password; a wrong one stops the server",
  {
    ignore,
  },
  async () => {
    const password = "fleet-test-password-1234";
    await using redis = await startRedis({ password });
    await using fleet = await startFleet(redis, {
      servers: 1,
      files: { "redis.pass": `${password}\n` },
      storeYaml: "  password_file: redis.pass\n",
    });
    await fleet.client("alice", 0);
    await fleet.servers[0]!.events.waitFor("session_start", { timeoutMs: 10_000 });

    // The same server.yml with a wrong password in the file: the server does not start.
    await Deno.writeTextFile(join(fleet.dir, "redis.pass"), "not-the-password\n");
    const config = await loadServerConfig(join(fleet.dir, "server.yml"));
    const { users } = await loadUsers(config.usersFile);
    await assert.rejects(
      startServer({ ...config, users, log: createLogger("error", "wrong") }),
      (e: Error) => {
        assert.match(
          e.message,
          /^Shared store unavailable: cannot connect to redis:\/\/127\.0\.0\.1:\d+/,
        );
        assert.match(e.message, /WRONGPASS|invalid username-password/i);
        assert.doesNotMatch(e.message, /not-the-password/);
        return true;
      },
    );
  },
);

/** A client of `user` on each server of a two-server fleet, once each holds its tunnel. */
async function clientOnEach(fleet: Fleet, user: string): Promise<[FleetClient, FleetClient]> {
  const clients: FleetClient[] = [];
  for (let i = 0; i < fleet.servers.length; i++) clients.push(await fleet.client(user, i));
  await waitFor(
    "a tunnel on each server",
    () => fleet.servers.every((s) => s.handle.sessions.size === 1),
    10_000,
  );
  return [clients[0]!, clients[1]!];
}

/** The server's /metrics text. */
async function metrics(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  return await r.text();
}

test.slow(
  "Redis stopped for 10 s and restarted: live tunnels go on, logins wait, counters reconcile",
  {
    ignore,
  },
  async () => {
    await using redis = await startRedis();
    await using target = await startHttpTarget();
    await using fleet = await startFleet(redis, {
      servers: 2,
      serverYaml: 'accounting:\n  flush_interval: 200ms\n\nadmin:\n  listen: "127.0.0.1:0"',
    });
    const [a, b] = fleet.servers;
    const adminA = a!.handle.adminAddr!.port;
    const live = await fleet.client("alice", 0);
    await a!.events.waitFor("session_start", { timeoutMs: 10_000 });
    assert.match(await metrics(adminA), /^nitrosocks_store_up\{store="redis"\} 1$/m);
    const profile = await fleet.profile("alice");
    const login = (port: number) =>
      connectLink(profile, {
        server: { host: "127.0.0.1", port },
        serverName: profile.serverName,
        transport: profile.transport,
        caPem: fleet.caPem,
      });

    const stoppedAt = performance.now();
    await redis.stop();
    await waitFor(
      "server A to see the store down",
      async () => /^nitrosocks_store_up\{store="redis"\} 0$/m.test(await metrics(adminA)),
      5_000,
      100,
    );
    const text = await metrics(adminA);
    const lint = await promtoolCheck(text);
    if (lint !== undefined) assert.equal(lint.code, 0, lint.output);

    // The live tunnel goes on: a download through it while Redis is down.
    const n = 4 * MiB;
    const r = await curl(live.socksPort, `${target.url}/bytes/${n}`);
    assert.equal(r.code, 0, r.stderr);
    // A new login is answered as a probe (fail closed), on any server.
    await assert.rejects(login(b!.port));
    await b!.events.waitFor("refusal", {
      timeoutMs: 5_000,
      match: (e) => e.reason === "probe" && /could not be checked \(fail closed\)/.test(e.detail),
    });
    assert.equal(b!.events.of("login").length, 0);

    // Redis back after about 10 s.
    const left = 10_000 - (performance.now() - stoppedAt);
    if (left > 0) await new Promise((res) => setTimeout(res, left));
    await redis.start();
    await waitFor(
      "server B to see the store back",
      async () =>
        /^nitrosocks_store_up\{store="redis"\} 1$/m.test(await metrics(b!.handle.adminAddr!.port)),
      10_000,
      100,
    );
    assert.match(await metrics(adminA), /^nitrosocks_store_outages_total\{store="redis"\} 1$/m);
    // (Right after its restart Redis may still be loading its data: a login may need a retry.)
    await waitFor(
      "a login through B with Redis back",
      async () => {
        try {
          (await login(b!.port)).link.conn.close();
          return true;
        } catch {
          return false;
        }
      },
      10_000,
      200,
    );
    // The bytes moved during the outage reached Redis once it was back.
    const check = await RedisLink.connect({ url: redis.url });
    try {
      await waitFor(
        "the outage's bytes in Redis",
        async () => {
          const out = Number(await check.run((c) => c.hGet("nitrosocks:user:alice", "bytesOut")));
          return out >= n;
        },
        5_000,
        100,
      );
    } finally {
      await check.close();
    }
    assert.equal(live.events.of("session_end").length, 0, "the live tunnel never ended");
  },
);

/**
 * The commands a server sends on the login path (a script's own commands run inside Redis and are
 * not trips, though `INFO commandstats` counts them: the replay claim's SET is one).
 */
const TRIP_COMMANDS = ["eval", "evalsha", "exec", "publish", "zrem", "zcount", "smembers"];

/** Calls per command since Redis started (`INFO commandstats`), e.g. `{ set: 120, eval: 130 }`. */
async function commandCalls(link: RedisLink): Promise<Record<string, number>> {
  const info = await link.run((c) => c.info("commandstats"));
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

test.slow(
  "a bounded load run: 120 logins through HAProxy (PROXY v2) over three servers, with Redis round trips per login",
  {
    ignore: ignore || !(await hasProgram("haproxy")),
  },
  async () => {
    await using redis = await startRedis();
    await using fleet = await startFleet(redis, {
      serverYaml: "proxy_protocol: true",
      editServer: (t) => t.replace(/handshakes_per_second: 20$/m, "handshakes_per_second: 10000"),
    });
    const ports = fleet.servers.map((s) => s.port);
    await using haproxy = await startHaproxy({
      upstreamPort: ports[0]!,
      moreUpstreamPorts: ports.slice(1),
    });
    const profile = await fleet.profile("alice");
    const login = async () => {
      const { link } = await connectLink(profile, {
        server: { host: "127.0.0.1", port: haproxy.port },
        serverName: profile.serverName,
        transport: profile.transport,
        caPem: fleet.caPem,
      });
      link.conn.close();
    };
    await login(); // warm up: every path compiled once
    const stats = await RedisLink.connect({ url: redis.url });
    try {
      const before = await commandCalls(stats);
      const n = 120;
      const concurrency = 6;
      let next = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          await login();
        }
      }));
      const seconds = (performance.now() - t0) / 1000;
      // The last lease is taken just after its client saw the login finish.
      let after = await commandCalls(stats);
      await waitFor(
        "the last logins' leases",
        async () => {
          after = await commandCalls(stats);
          // Two scripts per login: the replay claim (with its epoch check) and the lease.
          return (after.eval ?? 0) - (before.eval ?? 0) >= 2 * n;
        },
        5_000,
        50,
      );
      const delta = (c: string) => (after[c] ?? 0) - (before[c] ?? 0);
      // Round trips: commands the servers sent (a script's own commands run inside Redis).
      const trips = TRIP_COMMANDS.reduce((t, c) => t + delta(c), 0);
      console.log(
        `${n} logins in ${seconds.toFixed(2)} s = ${(n / seconds).toFixed(1)} logins/s ` +
          `(3 servers behind HAProxy, ${concurrency} clients at a time, hybrid key exchange); ` +
          `Redis round trips: ${delta("eval")} EVAL (replay claim and epoch, lease), ` +
          `${trips} in all = ${(trips / n).toFixed(2)} per login`,
      );
      assert.equal(delta("set"), n, "one replay claim per login (its SET NX, inside the script)");
      assert.ok(trips / n < 2.5, `${(trips / n).toFixed(2)} Redis round trips per login`);
      // Round-robin: every server took its share, and saw the client's own address (PROXY v2).
      for (const s of fleet.servers) {
        const logins = s.events.of("login");
        assert.ok(logins.length >= n / 3 - 1, `a server took ${logins.length} logins`);
        assert.ok(logins.every((e) => e.remote === "127.0.0.1"));
      }
    } finally {
      await stats.close();
    }
  },
);

test.slow(
  "Redis round trips per GiB: a 256 MiB download costs a few counter batches, not a round trip per record",
  {
    ignore,
  },
  async () => {
    await using redis = await startRedis();
    await using target = await startHttpTarget();
    await using fleet = await startFleet(redis, {
      servers: 1,
      serverYaml: "accounting:\n  flush_interval: 1s",
    });
    const client = await fleet.client("alice", 0);
    await fleet.servers[0]!.events.waitFor("session_start", { timeoutMs: 10_000 });
    const stats = await RedisLink.connect({ url: redis.url });
    try {
      const before = await commandCalls(stats);
      const n = 256 * MiB;
      const t0 = performance.now();
      const r = await curl(client.socksPort, `${target.url}/bytes/${n}`);
      const seconds = (performance.now() - t0) / 1000;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(Number(text(r)), n);
      const after = await commandCalls(stats);
      const delta = (c: string) => (after[c] ?? 0) - (before[c] ?? 0);
      const trips = TRIP_COMMANDS.reduce((t, c) => t + delta(c), 0);
      const perGiB = trips / (n / (1024 * MiB));
      console.log(
        `256 MiB in ${seconds.toFixed(2)} s (${(n / MiB / seconds).toFixed(0)} MiB/s): ` +
          `${trips} Redis round trips = ${perGiB.toFixed(1)} per GiB at this speed ` +
          "(one counter batch per flush_interval, one lease renewal per 5 s)",
      );
      // Time-bound, not byte-bound: at most a batch per second and a renewal per 5 s, plus slack.
      assert.ok(trips <= 2 * Math.ceil(seconds) + 4, `${trips} round trips in ${seconds} s`);
    } finally {
      await stats.close();
    }
  },
);

test.slow("a 4 MB/s user downloading through two servers at once gets 4 MB/s in total (±15 %)", {
  ignore,
}, async () => {
  await using redis = await startRedis();
  await using target = await startHttpTarget();
  await using fleet = await startFleet(redis, {
    servers: 2,
    users: [{ name: "alice", bandwidth: "4MB/s" }],
  });
  const [one, two] = await clientOnEach(fleet, "alice");
  const n = 12 * MiB;
  const t0 = performance.now();
  const [r1, r2] = await Promise.all([
    curl(one.socksPort, `${target.url}/bytes/${n}`),
    curl(two.socksPort, `${target.url}/bytes/${n}`),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(Number(text(r1)) + Number(text(r2)), 2 * n);
  const rate = 2 * n / seconds;
  console.log(
    `two downloads of ${n / MiB} MiB through two servers: ${seconds.toFixed(2)} s, ` +
      `${(rate / 1e6).toFixed(2)} MB/s in total for a 4 MB/s user (${
        ((rate / 4e6 - 1) * 100).toFixed(1)
      } %)`,
  );
  assert.ok(Math.abs(rate / 4e6 - 1) <= 0.15, `${(rate / 1e6).toFixed(2)} MB/s`);
});

test(
  "store.tls_ca: a fleet reaches Redis over TLS (rediss://) through its own CA; another CA stops the server",
  {
    ignore,
  },
  async () => {
    const ca = await createCa({ commonName: "Redis test CA" });
    const leaf = await issueCert(ca, { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    await using redis = await startRedis({ tls: { certPem: leaf.certPem, keyPem: leaf.keyPem } });
    assert.match(redis.url, /^rediss:\/\//);
    await using fleet = await startFleet(redis, {
      servers: 1,
      files: { "redis-ca.crt": ca.certPem },
      storeYaml: "  tls_ca: redis-ca.crt\n",
    });
    await fleet.client("alice", 0);
    await fleet.servers[0]!.events.waitFor("session_start", { timeoutMs: 10_000 });
    // The shared state really is in that Redis: the login's Hello nonce was claimed over TLS.
    const check = await RedisLink.connect({ url: redis.url, tlsCaPem: ca.certPem });
    try {
      assert.ok((await check.run((c) => c.keys("nitrosocks:replay:*"))).length >= 1);
    } finally {
      await check.close();
    }

    // The same server.yml with a CA that did not sign Redis's certificate: the server does not start.
    await Deno.writeTextFile(join(fleet.dir, "redis-ca.crt"), (await createCa()).certPem);
    const config = await loadServerConfig(join(fleet.dir, "server.yml"));
    const { users } = await loadUsers(config.usersFile);
    const t0 = performance.now();
    await assert.rejects(
      startServer({ ...config, users, log: createLogger("error", "wrong-ca") }),
      /^StoreUnavailableError: Shared store unavailable: cannot connect to rediss:\/\/127\.0\.0\.1:\d+.*certificate/i,
    );
    assert.ok(performance.now() - t0 < 4_000, "a certificate error fails at once");
  },
);

test(
  "auth.lockout counts failed logins across the fleet: 3 failures spread over two servers lock the source on both",
  {
    ignore,
  },
  async () => {
    await using redis = await startRedis();
    await using fleet = await startFleet(redis, {
      servers: 2,
      editServer: (t) => t.replace(/^( {4}failures:) 10$/m, "$1 3"),
    });
    const [a, b] = fleet.servers;
    const profile = await fleet.profile("alice");
    const login = (port: number, token = profile.token!) =>
      connectLink({ ...profile, token }, {
        server: { host: "127.0.0.1", port },
        serverName: profile.serverName,
        transport: profile.transport,
        caPem: fleet.caPem,
      });
    const wrong = new Uint8Array(32).fill(9);
    // Two failures on A, one on B: neither server alone reaches 3.
    for (const port of [a!.port, b!.port, a!.port]) await assert.rejects(login(port, wrong));
    await a!.events.waitFor("limit", {
      timeoutMs: 5_000,
      match: (e) => e.limit === "auth.lockout" && /on every server of the fleet/.test(e.detail),
    });
    // The right token is refused on B too, exactly like a wrong one (the lock came through Redis).
    await waitFor(
      "B to learn the lock",
      async () => {
        try {
          const { link } = await login(b!.port);
          link.conn.close();
          return false;
        } catch {
          return true;
        }
      },
      5_000,
      100,
    );
    assert.equal(b!.events.of("limit", (e) => e.limit === "auth.lockout").length, 0, "B counted 1");
    assert.equal(b!.events.of("login", (e) => !e.resumed).length, 0, "no login on B");
  },
);

test(
  "store.ticket_rotation: the fleet's own ticket keys resume a login on another server, across a rotation",
  {
    ignore,
  },
  async () => {
    await using redis = await startRedis();
    await using fleet = await startFleet(redis, {
      servers: 3,
      storeYaml: "  ticket_rotation: 2s\n",
    });
    const [a, b, c] = fleet.servers;
    // Round robin: the login goes to A, the first reconnect to B, the second to C.
    await using lb = startTcpBalancer([{ port: a!.port }, { port: b!.port }, { port: c!.port }]);
    const client = await fleet.client("alice", { port: lb.port });
    await a!.events.waitFor("session_start", { timeoutMs: 10_000 });
    const check = await RedisLink.connect({ url: redis.url });
    try {
      const ids = async () =>
        (await check.run((c) => c.lRange("nitrosocks:tickets", 0, -1))).map((k) =>
          JSON.parse(k).id
        );
      const first = await ids();
      assert.equal(first.length, 1, "one key, made by whichever server started first");
      // The path breaks: the reconnect lands on B, which opens the ticket A sealed.
      lb.dropAll();
      await waitFor("a resumption on B", () => client.handle.resumptions >= 1, 10_000);
      await b!.events.waitFor("login", { timeoutMs: 5_000, match: (e) => e.resumed });
      // A rotation: a newer key seals from now on; the ticket B sealed before it still opens.
      await waitFor("a rotation", async () => (await ids()).length >= 2, 10_000, 100);
      await new Promise((r) => setTimeout(r, 300)); // the servers reload on the rotation message
      lb.dropAll();
      await waitFor("a second resumption, on C", () => client.handle.resumptions >= 2, 10_000);
      await c!.events.waitFor("login", { timeoutMs: 5_000, match: (e) => e.resumed });
      const full = fleet.servers.flatMap((s) => s.events.of("login")).filter((e) => !e.resumed);
      assert.equal(full.length, 1, "one full login in all");
      assert.notEqual((await ids())[0], first[0], "a new key seals");
    } finally {
      await check.close();
    }
  },
);

test("max_streams counts a user's streams on every server of the fleet", { ignore }, async () => {
  await using redis = await startRedis();
  await using echo = startEchoServer();
  await using fleet = await startFleet(redis, {
    servers: 2,
    users: [{ name: "alice", maxStreams: 4 }],
  });
  const [a, b] = fleet.servers;
  const [one, two] = await clientOnEach(fleet, "alice");
  const limits = () => b!.events.of("limit", (e) => e.limit === "max_streams").length;
  const open: Deno.TcpConn[] = [];
  // (The client answers SOCKS5 at once (fast open); the server's refusal is its limit event.)
  const stream = async (port: number) => {
    open.push(await socksConnect(port, "127.0.0.1", echo.port));
  };
  try {
    for (let i = 0; i < 3; i++) await stream(one.socksPort);
    await a!.events.waitFor("stream_open", { count: 3, timeoutMs: 5_000 });
    // B learns A's three within a sync (250 ms); one more fits, the fifth does not.
    await new Promise((r) => setTimeout(r, 700));
    await stream(two.socksPort);
    await b!.events.waitFor("stream_open", { timeoutMs: 5_000 });
    await stream(two.socksPort);
    await b!.events.waitFor("limit", { timeoutMs: 5_000 });
    assert.equal(limits(), 1, "the fifth stream, over 4 across the fleet");
    assert.equal(b!.events.of("stream_open").length, 1);
    assert.equal(a!.events.of("limit").length, 0);
    // A's streams close: B's places come back once the counts travel.
    for (const c of open.splice(0, 3)) c.close();
    await new Promise((r) => setTimeout(r, 700));
    await stream(two.socksPort);
    await b!.events.waitFor("stream_open", { count: 2, timeoutMs: 5_000 });
    assert.equal(limits(), 1);
  } finally {
    for (const c of open) c.close();
  }
});
