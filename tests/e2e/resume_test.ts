/**
 * When a session may and may not be resumed: a recorded resume message
 * replayed by an observer is only a probe; a released session and an
 * expired one are gone for good; the release exchange really releases on
 * the server, while a reset injected by a middlebox is a lost connection,
 * not a release.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import type { Endpoint } from "../../lib/config/mod.ts";
import { Mux } from "../../lib/mux/mod.ts";
import { deriveReleaseKey } from "../../lib/session/mod.ts";
import { connectLink, TunnelError } from "../../lib/tunnel/client.ts";
import { Session } from "../../lib/tunnel/session.ts";
import { expectedSha256, startHttpTarget } from "../support/http_target.ts";
import { type Fault, startFaultRelay } from "../support/fault_relay.ts";
import { exchange } from "../support/io.ts";
import { type Relay, startTcpRelay } from "../support/mitm_relay.ts";
import { readExact, socksConnect } from "../support/socks_client.ts";
import { startEchoServer, startPair, startRelayedPair } from "./_harness.ts";
import { curlDownload, startGateRelay } from "./_resume.ts";
import { test, waitFor as pollUntil } from "../support/deadline.ts";

const MiB = 1024 * 1024;

/** Polls `cond` every 10 ms until it holds; fails naming `what` after `ms`. */
function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  return pollUntil(what, cond, ms);
}

/** Writes `bytes` on a fresh TCP connection and returns everything answered until EOF (15 s max). */
async function sendRaw(port: number, bytes: Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const opts = { ms: 15_000, what: "the server's whole answer", endOnError: true };
  return new TextDecoder().decode(await exchange(conn, bytes, opts));
}

/** A raw SOCKS5 CONNECT request (RFC 1928 section 4) to 127.0.0.1:`port`. */
function connectRequest(port: number): Uint8Array {
  return Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff);
}

test("a recorded resume message replayed on a new connection is treated as a probe: the decoy answers", async () => {
  // Record, per connection, what the client sends before the server's first byte.
  const hellos: number[][] = [];
  let current: number[] | undefined;
  let relay: Relay | undefined;
  await using target = await startHttpTarget();
  await using pair = await startPair({
    transport: "tcp",
    via: (s) => (relay = startTcpRelay({
      upstream: { hostname: "127.0.0.1", port: s.port },
      tamper: (dir, chunk, offset) => {
        if (dir === "client_to_server" && offset === 0) hellos.push(current = []);
        else if (dir === "server_to_client" && offset === 0) current = undefined;
        current?.push(...chunk);
        return chunk;
      },
    })),
  });
  const client = pair.client!;
  client.dropConnection("test: make the client resume");
  await waitFor(() => client.resumptions === 1, 10_000, "a resumption");
  assert.equal(relay!.connections(), 2);
  const resumeHello = Uint8Array.from(hellos[1]!);
  assert.ok(resumeHello.length >= 64, `recorded a resume hello of ${resumeHello.length} bytes`);
  const session = [...pair.server.sessions][0]!;

  const replayed = await sendRaw(pair.serverPort, resumeHello);
  const garbage = await sendRaw(
    pair.serverPort,
    crypto.getRandomValues(new Uint8Array(resumeHello.length)),
  );
  // The same web answer as to random bytes: no ServerHello, no hint of a session.
  assert.match(replayed, /^HTTP\/1\.1 4\d\d /);
  assert.equal(replayed.split("\r\n")[0], garbage.split("\r\n")[0]);
  assert.equal(
    pair.serverEvents.of(
      "refusal",
      (e) => e.reason === "probe" && /replayed hello nonce/.test(e.detail),
    )
      .length,
    1,
  );
  assert.deepEqual(
    pair.serverEvents.of("resume").map((e) => e.user),
    ["alice"],
    "only the real one",
  );
  // The live session did not notice.
  assert.deepEqual([...pair.server.sessions], [session]);
  const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${MiB}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.sha256, expectedSha256(MiB));
});

test("client.close() releases the session: the server logs the release and drops it", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ transport: "tcp" });
  const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${MiB}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(pair.server.sessions.size, 1);
  await pair.client!.close();
  await waitFor(() => pair.server.sessions.size === 0, 5_000, "the server to drop the session");
  // A full exchange on both sides: "released", not "released (peer did not answer)" or a notice.
  assert.deepEqual(
    pair.serverEvents.of("session_end").map((e) => [e.session, e.user, e.reason, e.graceful]),
    [[
      pair.serverEvents.of("login", (e) => e.conn === 1)[0]?.session,
      "alice",
      "released by peer",
      true,
    ]],
  );
  assert.deepEqual(
    pair.clientEvents.of("session_end").map((e) => [e.reason, e.graceful]),
    [["released", true]],
    "a full exchange",
  );
});

test("a released session cannot be resumed: the resumption secret is refused", async () => {
  await using echo = await startHttpTarget();
  await using pair = await startPair({ transport: "tcp", noClient: true });
  const endpoint: Endpoint = {
    server: { host: "127.0.0.1", port: pair.serverPort },
    serverName: pair.profile.serverName,
    transport: "tcp",
  };
  const log = pair.logs.logger("manual");
  // What startClient does, by hand, so the test holds the resumption secret.
  const first = await connectLink(pair.profile, endpoint);
  assert.ok(first.secrets.resumable);
  const session = new Session({
    role: "client",
    mux: new Mux({ role: "client", resume: true }),
    log,
    resumable: true,
    releaseKey: deriveReleaseKey(first.secrets.resumptionSecret, first.secrets.sessionId),
  });
  const ended = session.run();
  session.attachLink(first.link);
  let resume = {
    sessionId: first.secrets.sessionId,
    resumptionSecret: first.secrets.resumptionSecret,
  };
  // While the session lives, its secret resumes it (and is replaced).
  const second = await connectLink(pair.profile, endpoint, resume);
  assert.equal(second.secrets.resumed, true);
  resume = {
    sessionId: second.secrets.sessionId,
    resumptionSecret: second.secrets.resumptionSecret,
  };
  session.setReleaseKey(deriveReleaseKey(resume.resumptionSecret, resume.sessionId));
  session.attachLink(second.link);
  const { reply } = await session.open(connectRequest(echo.port), 10_000);
  assert.equal(reply[1], 0, "the resumed session carries streams");

  await session.release(5_000);
  assert.deepEqual(await ended, { reason: "released", graceful: true });
  await waitFor(() => pair.server.sessions.size === 0, 5_000, "the server to drop the session");

  const err = await connectLink(pair.profile, endpoint, resume).then(() => undefined, (e) => e);
  assert.ok(err instanceof TunnelError, String(err));
  assert.match(err.message, /no longer has this session/);
  assert.equal(
    pair.serverEvents.of("session_end", (e) => e.reason === "released by peer").length,
    1,
  );
  const refused = await pair.serverEvents.waitFor("refusal", {
    match: (e) => e.reason === "auth_failed",
    timeoutMs: 5_000,
  });
  assert.deepEqual(refused.map((e) => e.remote), ["127.0.0.1"]);
  assert.match(refused[0]!.detail, /^session \S+ is unknown, expired or released$/);
});

test("a session not resumed within resume_grace expires on the server and can no longer be resumed", async () => {
  await using setup = await startRelayedPair((s) => startGateRelay(s.port), {
    transport: "tcp",
    serverSession: { resume_grace: "1s" },
  });
  const { target, pair, relay: gate } = setup;
  let r = await curlDownload(pair.socksPort, `${target.url}/bytes/${MiB}`);
  assert.equal(r.code, 0, r.stderr);
  // The path dies and stays dead longer than the grace: every reconnect is refused.
  const t0 = Date.now();
  gate!.cut();
  await waitFor(() => pair.server.sessions.size === 0, 10_000, "the server to end the session");
  const expiredAfter = Date.now() - t0;
  assert.ok(gate!.refused >= 1, "the client kept trying");
  assert.deepEqual(
    pair.serverEvents.of("session_end").map((e) => [e.session, e.user, e.reason]),
    [[
      pair.serverEvents.of("login", (e) => e.conn === 1)[0]?.session,
      "alice",
      "no connection for 1 s",
    ]],
  );
  gate!.restore();
  // The client's next resume attempt is refused; it gives the session up.
  const [gone] = await pair.clientEvents.waitFor("resume_refused", { timeoutMs: 15_000 });
  assert.equal(gone?.next, "give_up", "the client gives the session up");
  assert.equal(gone?.endpoint, `127.0.0.1:${pair.via!.port}`);
  const ended = await pair.clientEvents.waitFor("session_end", { timeoutMs: 5_000 });
  assert.deepEqual(
    ended.map((e) => [e.session, e.reason, e.graceful]),
    [[gone?.session, "server no longer has the session", false]],
  );
  assert.equal(pair.client!.resumptions, 0);
  const refusals = pair.serverEvents.of("refusal", (e) => e.reason === "auth_failed");
  assert.deepEqual(refusals.map((e) => e.remote), ["127.0.0.1"]);
  assert.match(refusals[0]!.detail, /^session \S+ is unknown, expired or released$/);
  // The next request opens a fresh session.
  r = await curlDownload(pair.socksPort, `${target.url}/bytes/${MiB}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.sha256, expectedSha256(MiB));
  assert.equal(pair.serverEvents.of("login", (e) => e.user === "alice" && !e.resumed).length, 2);
  console.log(`  session expired on the server ${expiredAfter} ms after the path was cut`);
});

test("a TCP reset injected by a middlebox is a lost connection, not a release: the session resumes", async () => {
  const n = 48 * MiB;
  const faults: Fault[] = [
    // The client sends under 2 KiB in its handshake, then about 80 bytes per MiB received.
    { kind: "reset", dir: "up", at: 3 * 1024 },
    { kind: "reset", dir: "down", at: 4 * MiB },
  ];
  await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
    transport: "tcp",
  });
  const { target, pair } = setup;
  await waitFor(() => pair.server.sessions.size === 1, 5_000, "the server's session");
  const session = [...pair.server.sessions][0]!;
  const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.sha256, expectedSha256(n));
  assert.equal(pair.client!.resumptions, 2);
  // The server kept the very same session and never took the reset for a release.
  assert.deepEqual([...pair.server.sessions], [session]);
  assert.ok(!session.isClosed);
  const [start] = pair.serverEvents.of("session_start");
  assert.deepEqual(pair.serverEvents.of("resume").map((e) => [e.session, e.user]), [
    [start?.session, "alice"],
    [start?.session, "alice"],
  ]);
  assert.equal(
    pair.serverEvents.of("session_end").length + pair.clientEvents.of("session_end").length,
    0,
  );
  // Neither side released the session.
  assert.equal(
    pair.serverEvents.of("release").length + pair.clientEvents.of("release").length,
    0,
  );
});

test("a resume whose Finish never reaches the server does not lose the session", async () => {
  // The client adopts the new resumption secret when it sends its Finish; the
  // server only when the Finish arrives. Corrupt the Finish of the first
  // resumption (third burst the client sends on connection 2): the server
  // refuses that connection and still expects the previous secret.
  let conn = 0;
  let bursts = 0;
  let lastDir = "";
  let corrupted = false;
  await using echo = startEchoServer();
  await using pair = await startPair({
    transport: "tcp",
    via: (s) =>
      startTcpRelay({
        upstream: { hostname: "127.0.0.1", port: s.port },
        tamper: (dir, chunk, offset) => {
          if (dir === "client_to_server" && offset === 0) {
            [conn, bursts, lastDir] = [conn + 1, 0, ""];
          }
          if (dir === "client_to_server" && lastDir !== dir) bursts++;
          lastDir = dir;
          if (conn !== 2 || bursts !== 3 || corrupted || dir !== "client_to_server") return chunk;
          corrupted = true;
          const out = chunk.slice();
          out[0]! ^= 0x10;
          return out;
        },
      }),
  });
  const stream = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
  try {
    const enc = new TextEncoder();
    await stream.write(enc.encode("before"));
    assert.deepEqual(await readExact(stream, 6), enc.encode("before"));
    pair.client!.dropConnection("test: make the client resume");
    await waitFor(() => pair.client!.resumptions === 2, 10_000, "two resumptions");
    assert.ok(corrupted);
    assert.equal(
      pair.serverEvents.of("refusal", (e) => /^Finish MAC does not match/.test(e.detail)).length,
      1,
    );
    assert.deepEqual(pair.clientEvents.of("resume_refused").map((e) => e.next), ["previous"]);
    // The stream opened before all this still works: the session survived.
    await stream.write(enc.encode("after"));
    assert.deepEqual(await readExact(stream, 5), enc.encode("after"));
    assert.equal(pair.serverEvents.of("login", (e) => !e.resumed).length, 1);
    assert.equal(pair.clientEvents.of("session_end").length, 0);
  } finally {
    stream.close();
  }
});
