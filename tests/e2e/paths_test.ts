/**
 * Several paths and untrusted relays: the live session moves to
 * another endpoint when the path in use dies; `nitrosocks relay` forwards
 * TLS to the server as a real subprocess holding no NitroSocks key; and an
 * evil relay that flips a bit on every connection only costs its own path:
 * the client marks it bad and the download completes byte for byte.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { expectedSha256, patternBytes, startHttpTarget } from "../support/http_target.ts";
import { type FaultRelay, startFaultRelay } from "../support/fault_relay.ts";
import { containsBytes, type MitmRelay, startMitmRelay } from "../support/mitm_relay.ts";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { generateCa } from "../../lib/pki/mod.ts";
import { freePort, type Pair, run, startPair, text } from "./_harness.ts";
import {
  endpointYaml,
  type EndpointYamlOptions,
  fileSize,
  replaceCa,
  sha256File,
  startCurl,
  startEditedClient,
  startFailoverClient,
  startRelayProcess,
  waitFor,
} from "./_paths.ts";
import { test, withDeadline } from "../support/deadline.ts";

const MiB = 1024 * 1024;
const ROOT = new URL("../..", import.meta.url).pathname;

test.slow("failover: killing the relay in use moves the live session to the other endpoint", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ noClient: true });
  const relay: FaultRelay = startFaultRelay({ port: pair.serverPort });
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-paths-" });
  // Endpoint 1: a relay in front of the server; endpoint 2: the server itself.
  const client = await startFailoverClient(pair, relay.port);
  try {
    const session = await client.tunnel();
    assert.equal(relay.connections, 1, "the tunnel starts on the first endpoint (the relay)");
    const n = 48 * MiB;
    const out = join(tmp, "body");
    const dl = startCurl(client.socksAddr.port, `${target.url}/bytes/${n}`, out, {
      limitRate: "24M",
    });
    await waitFor("8 MiB downloaded", async () => (await fileSize(out)) >= 8 * MiB, 20_000);
    const killedAt = performance.now();
    const sizeAtKill = await fileSize(out);
    await relay.close(); // the path in use dies: its connections and its port
    await waitFor("a resumption", () => client.resumptions >= 1, 10_000);
    const failoverMs = performance.now() - killedAt;
    const r = await dl.done;
    const log = pair.logs.lines.join("\n");
    assert.equal(r.code, 0, `${r.stderr}\n${log}`);
    assert.equal(await sha256File(out), expectedSha256(n), "identical SHA-256 after the switch");
    assert.equal(await client.tunnel(), session, "the same session carried on");
    assert.equal(client.resumptions, 1);
    assert.ok(sizeAtKill < n, "the relay died in the middle of the download");
    const relayAt = `127.0.0.1:${relay.port}`, serverAt = `127.0.0.1:${pair.serverPort}`;
    // The link to the relay went down once, and the session moved from it to the server.
    const down = client.recorded.of("link_down");
    const via = client.recorded.of("resume");
    assert.deepEqual(down.map((e) => [e.session, e.tampered]), [[via[0]?.session, false]], log);
    assert.deepEqual(via.map((e) => e.via), [serverAt], log);
    assert.deepEqual(
      client.recorded.of("path_change").map((e) => [e.from, e.to]),
      [[undefined, relayAt], [relayAt, serverAt]],
      log,
    );
    assert.equal(
      pair.serverEvents.of("login", (e) => e.user === "alice" && !e.resumed).length,
      1,
      "one login",
    );
    console.log(
      `failover after ${(sizeAtKill / MiB).toFixed(1)} MiB: resumed on the other endpoint in ${
        failoverMs.toFixed(0)
      } ms (session resumed via ${via[0]!.via} after ${via[0]!.afterMs} ms)`,
    );
  } finally {
    await client.close();
    await relay.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

test.slow("nitrosocks relay (subprocess, TLS both sides) carries the tunnel without any NitroSocks key", async () => {
  await using target = await startHttpTarget();
  let relayArgs: string[] = [];
  let relay: Awaited<ReturnType<typeof startRelayProcess>> | undefined;
  await using pair = await startPair({
    via: async (s) => {
      relayArgs = [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        `127.0.0.1:${s.port}`,
        "--cert",
        join(s.dir, "tls", "server.crt"),
        "--key",
        join(s.dir, "tls", "server.key"),
        "--upstream-ca",
        join(s.dir, "tls", "ca.crt"),
        "--upstream-name",
        "localhost",
      ];
      relay = await startRelayProcess(relayArgs);
      const r = relay;
      return { port: r.port, close: () => r.close().then(() => {}) };
    },
  });
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-relay-" });
  try {
    const n = 16 * MiB;
    const out = join(tmp, "body");
    const r = await startCurl(pair.socksPort, `${target.url}/bytes/${n}`, out).done;
    assert.equal(r.code, 0, `${r.stderr}\n${relay!.stderr()}\n${pair.logs.lines.join("\n")}`);
    assert.equal(await sha256File(out), expectedSha256(n));
    assert.ok(pair.serverStreams() >= 1, "the request reached the server");
    const relayLog = relay!.stderr();
    assert.match(
      relayLog,
      new RegExp(
        `relaying tls://127\\.0\\.0\\.1:${relay!.port} -> tls://127\\.0\\.0\\.1:${pair.serverPort}`,
      ),
    );
    // The relay was given TLS material only: no identity, no users, no profile.
    for (const a of relayArgs) assert.doesNotMatch(a, /keys\/server\.key|users\.yml|alice/);
    assert.doesNotMatch(relayLog, /bytes\/|alice|PermissionDenied|NotCapable/);
    assert.equal(await relay!.close(), 0, "SIGTERM stops the relay cleanly");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test.slow("nitrosocks relay --help exits 0; missing flags exit 2 with the usage", async () => {
  const relay = (...args: string[]) =>
    run(Deno.execPath(), ["run", "--quiet", ...PERMISSION_FLAGS, "main.ts", "relay", ...args], {
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      timeoutMs: 60_000,
    });
  const help = await relay("--help");
  assert.equal(help.code, 0, help.stderr);
  assert.match(text(help), /^Usage: nitrosocks relay --listen HOST:PORT --upstream HOST:PORT/m);
  const cases: [string[], RegExp][] = [
    [[], /Missing --listen HOST:PORT/],
    [["--listen", "127.0.0.1:0"], /Missing --upstream HOST:PORT/],
    [["--upstream", "127.0.0.1:1"], /Missing --listen HOST:PORT/],
    [["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"], /needs --cert FILE and --key FILE/],
    [["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--cert", "x.crt"], /--key FILE/],
  ];
  for (const [args, msg] of cases) {
    const r = await relay(...args);
    assert.equal(r.code, 2, `relay ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.match(r.stderr, /Usage: nitrosocks relay/);
  }
});

test("evil relay: a bit flipped on every connection only costs that path", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ noClient: true });
  const serverCa = await Deno.readTextFile(join(pair.dir, "tls", "ca.crt"));
  const flipAt = 4 * MiB;
  const flips: number[] = [];
  // Path 1: a TLS-terminating relay (the client trusts its CA: an untrusted
  // relay operator with a valid certificate) that flips one bit of what the
  // server sends, 4 MiB into every connection.
  const evil: MitmRelay = await startMitmRelay({
    upstream: { hostname: "127.0.0.1", port: pair.serverPort, caPem: serverCa },
    serverName: "localhost",
    maxRecordBytes: 8 * MiB,
    tamper(dir, chunk, offset) {
      if (dir === "server_to_client" && offset <= flipAt && flipAt < offset + chunk.length) {
        chunk[flipAt - offset]! ^= 0x01;
        flips.push(offset);
      }
      return chunk;
    },
  });
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-evil-" });
  // Path 2: the server directly, with its own CA.
  const client = await startEditedClient(
    pair,
    (p) =>
      replaceCa(p.replace(/^server: .*$/m, `server: "127.0.0.1:${evil.port}"`), evil.caPem) +
      `\nendpoints:\n${endpointYaml(pair.serverPort, { caPem: serverCa })}\n`,
  );
  try {
    await client.tunnel();
    assert.equal(evil.connections(), 1, "the tunnel starts through the evil relay");
    const n = 48 * MiB;
    const out = join(tmp, "body");
    const r = await startCurl(client.socksAddr.port, `${target.url}/bytes/${n}`, out).done;
    const log = pair.logs.lines.join("\n");
    assert.equal(r.code, 0, `${r.stderr}\n${log}`);
    assert.equal(await sha256File(out), expectedSha256(n), "no corrupted byte came out");
    assert.equal(flips.length, 1, "the relay did tamper");
    assert.equal(client.resumptions, 1, log);
    assert.equal(evil.connections(), 1, "the evil path is not tried again");
    const evilAt = `127.0.0.1:${evil.port}`, serverAt = `127.0.0.1:${pair.serverPort}`;
    const tampered = client.recorded.of("link_down", (e) => e.tampered);
    assert.equal(tampered.length, 1, log);
    assert.match(tampered[0]!.reason, /^record failed: /);
    // The client avoids the evil endpoint and leaves it because it tampered.
    assert.deepEqual(
      client.recorded.of("path_avoided").map((e) => [e.endpoint, e.reason]),
      [[evilAt, "tampered with the tunnel"]],
      log,
    );
    assert.deepEqual(
      client.recorded.of("path_change").map((e) => [e.from, e.to, e.reason]),
      [
        [undefined, evilAt, "new session"],
        [evilAt, serverAt, "the last endpoint tampered with the tunnel"],
      ],
      log,
    );
    assert.deepEqual(client.recorded.of("resume").map((e) => e.via), [serverAt], log);
    // What the relay saw in clear (inside its own TLS) is NitroSocks records only.
    const down = evil.seenServerToClient();
    const up = evil.seenClientToServer();
    assert.ok(down.length >= flipAt, `the relay carried ${down.length} bytes`);
    assert.ok(!containsBytes(down, patternBytes(3 * MiB, 32)), "no payload visible to the relay");
    assert.ok(!containsBytes(down, patternBytes(1234, 32)), "no payload visible to the relay");
    assert.ok(!containsBytes(up, new TextEncoder().encode("/bytes/")), "no request visible");
    console.log(
      `evil relay: tampering at ${flipAt / MiB} MiB detected, session resumed via ${
        client.recorded.of("resume")[0]!.via
      } after ${client.recorded.of("resume")[0]!.afterMs} ms; ${n / MiB} MiB exact`,
    );
  } finally {
    await client.close();
    await evil.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

/**
 * Starts a client on alice's profile rewritten by `edit`, waits for its
 * tunnel and closes it: "logged in", or the error of its last failed
 * connect to `at` ("host:port").
 */
async function tunnelOutcome(pair: Pair, edit: (p: string) => string, at: string): Promise<string> {
  const client = await startEditedClient(pair, edit);
  try {
    return await withDeadline(
      client.tunnel().then(
        () => "logged in",
        () => client.recorded.of("connect_failed", (e) => e.endpoint === at).at(-1)?.error ?? "",
      ),
      20_000,
      `the client's tunnel (${at})`,
    );
  } finally {
    await client.close();
  }
}

/** The profile's `server:` line replaced by `server: "127.0.0.1:PORT"` (plus `more` lines). */
function dialing(profile: string, port: number, more = ""): string {
  const out = profile.replace(/^server: .*$/m, `server: "127.0.0.1:${port}"${more}`);
  if (out === profile) throw new Error("the profile has no server line");
  return out;
}

test("server, transport and socks5.listen: a client on the profile alone dials its server over its transport and serves SOCKS5 where it says", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ transport: "tcp", noClient: true });
  const serverAt = `127.0.0.1:${pair.serverPort}`;
  const socksPort = freePort();
  // No URL: the address in server and the way in in transport.
  const own = (p: string) =>
    dialing(p, pair.serverPort, "\ntransport: tcp").replace(
      /^socks5:\n {2}listen: .*$/m,
      `socks5:\n  listen: "127.0.0.1:${socksPort}"`,
    );
  const client = await startEditedClient(pair, own, { ownSocks: true });
  try {
    assert.equal(client.socksAddr.port, socksPort);
    const r = await run("curl", [
      "-sS",
      "--max-time",
      "30",
      "--socks5-hostname",
      `127.0.0.1:${socksPort}`,
      `${target.url}/bytes/1000`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, 1000);
    assert.deepEqual(client.recorded.of("path_change").map((e) => e.to), [serverAt]);
  } finally {
    await client.close();
  }
  // Another address, another transport: each is what the client tries, and fails with.
  const dead = freePort();
  assert.match(
    await tunnelOutcome(pair, (p) => dialing(p, dead, "\ntransport: tcp"), `127.0.0.1:${dead}`),
    /connection refused/i,
  );
  assert.match(
    await tunnelOutcome(pair, (p) => dialing(p, pair.serverPort, "\ntransport: tls"), serverAt),
    /does not speak TLS/,
  );
  assert.equal(pair.serverEvents.of("login").length, 1, "only the profile's own way in logged in");
});

test("endpoints[]: an endpoint's own server_name and ca reach the server when the profile's way in fails", async () => {
  await using pair = await startPair({ noClient: true });
  const serverCa = await Deno.readTextFile(join(pair.dir, "tls", "ca.crt"));
  const other = await generateCa("Other Issuing CA");
  const serverAt = `127.0.0.1:${pair.serverPort}`;
  // The profile's own way in: a port nobody listens on, another server name, another CA.
  const dead = freePort();
  const base = (p: string) =>
    replaceCa(
      dialing(p, dead).replace(/^server_name: .*$/m, 'server_name: "not-the-server.example"'),
      other.certPem,
    );
  const via = (e: EndpointYamlOptions) =>
    tunnelOutcome(
      pair,
      (p) => `${base(p)}\nendpoints:\n${endpointYaml(pair.serverPort, e)}\n`,
      serverAt,
    );
  assert.equal(await via({ serverName: "localhost", caPem: serverCa }), "logged in");
  // Another server_name on the same endpoint: the certificate is not for it.
  assert.match(
    await via({ serverName: "not-localhost.example", caPem: serverCa }),
    /not valid for name "not-localhost\.example"/,
  );
  // Without its own ca it trusts the profile's, which did not sign the server's certificate.
  assert.match(await via({ serverName: "localhost" }), /certificate|issuer/i);
  assert.equal(
    pair.serverEvents.of("login").length,
    1,
    "one login, through the endpoint's own values",
  );
});

test("endpoints[].transport: an endpoint's own transport reaches a tcp server when the profile's is tls", async () => {
  await using pair = await startPair({ transport: "tcp", noClient: true });
  const serverAt = `127.0.0.1:${pair.serverPort}`;
  const dead = freePort();
  const via = (e: EndpointYamlOptions) =>
    tunnelOutcome(
      pair,
      (p) =>
        `${dialing(p, dead, "\ntransport: tls")}\nendpoints:\n${
          endpointYaml(pair.serverPort, e)
        }\n`,
      serverAt,
    );
  assert.equal(await via({ transport: "tcp" }), "logged in");
  // Without its own transport the endpoint takes the profile's.
  assert.match(await via({}), /does not speak TLS/);
  assert.equal(pair.serverEvents.of("login").length, 1);
});
