/**
 * What an on-path attacker can and cannot do: a TLS interceptor with a CA
 * the client trusts sees neither payload nor destination, cannot pose as
 * the server, and cannot flip a bit without ending the tunnel; a prober
 * (or a replayed first message) only ever meets an ordinary web server;
 * a wrong CA is a clear TLS error.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { connectLink, TunnelError } from "../../lib/tunnel/client.ts";
import { createCa } from "../support/certs.ts";
import { expectedSha256, patternBytes } from "../support/http_target.ts";
import {
  containsBytes,
  type MitmRelay,
  startMitmRelay,
  startTcpRelay,
  type Tamper,
} from "../support/mitm_relay.ts";
import { exchange } from "../support/io.ts";
import {
  firstMismatch,
  type Pair,
  run,
  type ServerInfo,
  startPair,
  startRelayedPair,
  text,
} from "./_harness.ts";
import { test } from "../support/deadline.ts";

const MiB = 1024 * 1024;
const enc = new TextEncoder();

function mitm(s: ServerInfo, tamper?: Tamper): Promise<MitmRelay> {
  return startMitmRelay({
    upstream: { hostname: "127.0.0.1", port: s.port, caPem: s.caPem!, serverName: "localhost" },
    serverName: "localhost",
    ...(tamper === undefined ? {} : { tamper }),
  });
}

function curlSocks(pair: Pair): string[] {
  return ["-sS", "--max-time", "60", "--socks5-hostname", `127.0.0.1:${pair.socksPort}`];
}

test("through a trusted TLS interceptor the tunnel works and hides payload and destinations", async () => {
  await using setup = await startRelayedPair((s) => mitm(s));
  const { target, pair, relay } = setup;
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-mitm-" });
  try {
    // A download, checked end to end.
    const n = 4 * MiB;
    const out = join(tmp, "body");
    let r = await run("curl", [...curlSocks(pair), "-o", out, `${target.url}/bytes/${n}`], {
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const sum = await run("sha256sum", [out]);
    assert.equal(text(sum).slice(0, 64), expectedSha256(n));

    // A distinctive marker both ways (upload echoed back), and a page.
    const marker = `NITRO-MARKER-${crypto.randomUUID()}`;
    const upload = join(tmp, "upload");
    await Deno.writeTextFile(upload, marker.repeat(2000));
    r = await run("curl", [
      ...curlSocks(pair),
      "-H",
      "Expect:",
      "--data-binary",
      `@${upload}`,
      `${target.url}/echo`,
    ], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(text(r), marker.repeat(2000));
    r = await run("curl", [...curlSocks(pair), `${target.url}/page`], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(text(r), /NitroSocks test page/);

    // The interceptor really sat in the path and decrypted TLS…
    assert.ok(relay !== undefined && relay.connections() >= 1, "the client dialed the relay");
    const c2s = relay.seenClientToServer();
    const s2c = relay.seenServerToClient();
    assert.ok(s2c.length > n, `relay saw ${s2c.length} plaintext bytes from the server`);
    // …yet learned neither payload nor destination nor user.
    const p = target.port;
    const secrets: [string, Uint8Array][] = [
      ["marker", enc.encode(marker)],
      ["page title", enc.encode("NitroSocks test page")],
      ["download content", patternBytes(MiB, 64)],
      ["target host:port", enc.encode(`127.0.0.1:${p}`)],
      ["target address (SOCKS5 IPv4)", Uint8Array.of(1, 127, 0, 0, 1, p >> 8, p & 0xff)],
      ["target address (SOCKS5 name)", Uint8Array.of(3, 9, ...enc.encode("127.0.0.1"), p >> 8)],
      ["path", enc.encode("/bytes/")],
      ["user id", enc.encode("alice")],
    ];
    for (const [what, needle] of secrets) {
      assert.ok(!containsBytes(c2s, needle), `${what} visible client→server`);
      assert.ok(!containsBytes(s2c, needle), `${what} visible server→client`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("a different NitroSocks server at the profile's address is refused with a message about the server key", async () => {
  await using pair = await startPair({ noClient: true });
  // Another init: other keys, other CA. The client trusts its TLS
  // certificate, so only the pinned key can tell the two servers apart.
  await using other = await startPair({ noClient: true });
  const err = await connectLink(pair.profile, {
    server: { host: "127.0.0.1", port: other.serverPort },
    serverName: pair.profile.serverName,
    transport: pair.profile.transport,
    caPem: await Deno.readTextFile(join(other.dir, "tls", "ca.crt")),
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof TunnelError, String(err));
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${other.serverPort}`));
  assert.match(err.message, /server key/);
  // It could not open our first message (sealed to the pinned key), so it
  // answered as its decoy web site and never saw a credential.
  assert.equal(other.server.sessions.size, 0);
  assert.deepEqual(
    other.serverEvents.of("refusal").map((e) => [e.reason, e.remote]),
    [["probe", "127.0.0.1"]],
    "it saw only a probe",
  );
  assert.equal(other.serverEvents.of("login").length, 0);
});

test("a client trusting another CA fails with a clear TLS error", async () => {
  await using pair = await startPair({ noClient: true });
  const stranger = await createCa({ commonName: "Some Other CA" });
  const err = await connectLink(pair.profile, {
    server: { host: "127.0.0.1", port: pair.serverPort },
    serverName: pair.profile.serverName,
    transport: pair.profile.transport,
    caPem: stranger.certPem,
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof TunnelError, String(err));
  assert.match(err.message, /TLS certificate not trusted by the profile's CA/);
  assert.match(err.message, /check the profile's ca/);
  assert.equal(pair.server.sessions.size, 0);
});

/** Flips one bit of `dir` traffic at byte `at` of the first connection. */
function flipAt(dir: "client_to_server" | "server_to_client", at: number): Tamper {
  let conn = 0;
  let flipped = false;
  return (d, chunk, offset) => {
    if (offset === 0 && d === "client_to_server") conn++;
    if (flipped || d !== dir || conn !== 1) return chunk;
    if (offset <= at && at < offset + chunk.length) {
      chunk[at - offset]! ^= 0x10;
      flipped = true;
    }
    return chunk;
  };
}

async function assertExact(file: string, n: number): Promise<void> {
  const got = await Deno.readFile(file);
  assert.equal(got.length, n, `the whole transfer arrived (${got.length} of ${n})`);
  assert.equal(firstMismatch(got, patternBytes(0, got.length)), -1, "a corrupted byte arrived");
}

// A tampered record fails authentication: the connection that carried it is
// dropped (no corrupted byte reaches an application), and the session resumes
// on a fresh connection, resending what the peer missed. The relay tampers
// only with its first connection, so the transfer completes exactly.

test("one flipped bit on the wire (plain TCP) kills only that connection: the session resumes and the download is exact", async () => {
  const at = 2 * MiB + 12345;
  const tamper = flipAt("server_to_client", at);
  await using setup = await startRelayedPair(
    (s) => startTcpRelay({ upstream: { hostname: "127.0.0.1", port: s.port }, tamper }),
    { transport: "tcp" },
  );
  const { target, pair } = setup;
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-tamper-" });
  try {
    const n = 16 * MiB;
    const out = join(tmp, "body");
    const r = await run("curl", [...curlSocks(pair), "-o", out, `${target.url}/bytes/${n}`], {
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, r.stderr);
    await assertExact(out, n);
    const down = pair.clientEvents.of("link_down");
    assert.deepEqual(down.map((e) => e.tampered), [true], pair.logs.lines.join("\n"));
    assert.match(down[0]!.reason, /^record failed: DECRYPT_FAILED/);
    assert.equal(pair.clientEvents.of("resume").length, 1);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("one flipped bit inside intercepted TLS (upload) kills only that connection: the upload is exact", async () => {
  const at = 3 * MiB + 777;
  await using setup = await startRelayedPair((s) => mitm(s, flipAt("client_to_server", at)));
  const { target, pair } = setup;
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-tamper-" });
  try {
    const n = 16 * MiB;
    const upload = join(tmp, "upload");
    await Deno.writeFile(upload, patternBytes(0, n));
    const out = join(tmp, "echoed");
    const r = await run("curl", [
      ...curlSocks(pair),
      "-H",
      "Expect:",
      "--data-binary",
      `@${upload}`,
      "-o",
      out,
      `${target.url}/echo`,
    ], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    // What the target received is what it echoed: exactly the upload.
    await assertExact(out, n);
    const down = pair.serverEvents.of(
      "link_down",
      (e) => e.tampered && e.reason.startsWith("record failed: DECRYPT_FAILED"),
    );
    assert.equal(down.length, 1, pair.logs.lines.join("\n"));
    assert.deepEqual(pair.serverEvents.of("resume").map((e) => e.user), ["alice"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("a probe of the server with curl gets the decoy web site", async () => {
  await using pair = await startPair({ noClient: true });
  for (const v of ["--http1.1", "--http2"]) {
    const r = await run("curl", [
      "-sSk",
      "--max-time",
      "30",
      v,
      "-D",
      "-",
      `https://127.0.0.1:${pair.serverPort}/`,
    ], { timeoutMs: 45_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(text(r), /server: nginx/i);
    assert.match(text(r), /<title>Welcome to nginx!<\/title>/);
  }
  assert.ok(
    pair.serverEvents.of("refusal", (e) => e.reason === "probe" && e.remote === "127.0.0.1")
      .length >= 2,
  );
});

/** Writes `bytes` over a fresh TLS connection to the server and returns all it answers. */
async function probeWith(pair: Pair, bytes: Uint8Array): Promise<string> {
  const ca = await Deno.readTextFile(join(pair.dir, "tls", "ca.crt"));
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: pair.serverPort,
    caCerts: [ca],
    alpnProtocols: ["http/1.1"],
  });
  // The decoy may skip close_notify: a read error is the end.
  const opts = { ms: 15_000, what: "the decoy's whole answer", endOnError: true };
  return new TextDecoder().decode(await exchange(conn, bytes, opts));
}

function statusLine(s: string): string {
  return s.split("\r\n")[0] ?? "";
}

test("a replayed client hello is handed to the web site like any other probe", async () => {
  let s2cSeen = false;
  const hello: number[] = [];
  await using pair = await startPair({
    noClient: true,
    via: (s) =>
      mitm(s, (dir, chunk) => {
        if (dir === "server_to_client") s2cSeen = true;
        else if (!s2cSeen) hello.push(...chunk); // the client's first message, before any answer
        return chunk;
      }),
  });
  // A real client logs in through the relay: its Hello is recorded.
  const { link } = await connectLink(pair.profile, {
    server: { host: "127.0.0.1", port: pair.via!.port },
    serverName: pair.profile.serverName,
    transport: pair.profile.transport,
    caPem: pair.via!.caPem!,
  });
  link.conn.close();
  assert.ok(hello.length >= 64, `recorded a hello of ${hello.length} bytes`);

  const replayed = await probeWith(pair, Uint8Array.from(hello));
  const garbage = await probeWith(pair, crypto.getRandomValues(new Uint8Array(hello.length)));
  // The answer is the web server's, the same as to random bytes: no ServerHello.
  assert.match(statusLine(replayed), /^HTTP\/1\.1 4\d\d /);
  assert.equal(statusLine(replayed), statusLine(garbage));
  assert.equal(
    pair.serverEvents.of(
      "refusal",
      (e) => e.reason === "probe" && /replayed hello nonce/.test(e.detail),
    )
      .length,
    1,
  );
  // The decoy page itself is what a prober that speaks HTTP gets.
  const page = await probeWith(
    pair,
    enc.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
  );
  assert.match(page, /Welcome to nginx!/);
});
