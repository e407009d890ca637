/**
 * The server's and the client's events over real sockets: logins, refusals
 * (a browser-like probe, a wrong token), the streams the server opens or
 * refuses, and a session that loses its path and resumes on another
 * endpoint. Also the answer to a stream OPEN the tunnel does not answer in
 * time, through the real client: SOCKS5 reply 6, HTTP CONNECT 504.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadServerConfig, loadUsers } from "../../lib/config/mod.ts";
import { EventHub, EventLog, silentLogger } from "../../lib/observe/mod.ts";
import { ClientTunnel, connectLink, startClient, TunnelError } from "../../lib/tunnel/client.ts";
import { startServer } from "../../lib/tunnel/server.ts";
import { Reply } from "../../lib/socks5/mod.ts";
import { startFaultRelay } from "../support/fault_relay.ts";
import {
  httpConnect,
  HttpConnectError,
  readExact,
  socksConnect,
  SocksReplyError,
} from "../support/socks_client.ts";
import { freePort, type Pair, startEchoServer, startPair } from "./_harness.ts";
import { startFailoverClient, waitFor } from "./_paths.ts";
import { type GateRelay, startGateRelay } from "./_resume.ts";
import { test, withDeadline as within } from "../support/deadline.ts";
import { readToEnd as readAll } from "../support/io.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };
const enc = new TextEncoder();

/** The SOCKS5 reply code the client's port gives for `host:port` (0 = success). */
async function socksReply(pair: Pair, host: string, port: number): Promise<number> {
  const r = await within(
    socksConnect(pair.socksPort, host, port).then((c) => {
      c.close();
      return 0;
    }, (e: unknown) => e),
    10_000,
    `the SOCKS5 reply for ${host}:${port}`,
  );
  if (typeof r === "number") return r;
  assert.ok(r instanceof SocksReplyError, String(r));
  return r.reply;
}

/** Everything the peer sends until it closes (10 s at most), as text. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const bytes = await readAll(conn, { ms: 10_000, what: "the peer to answer and close" });
  return new TextDecoder().decode(bytes);
}

test(
  "events: the server reports the login and the session, the streams it opens and refuses",
  SANITIZE,
  async () => {
    await using echo = startEchoServer();
    await using pair = await startPair({ lazy: true, fastOpen: false });
    const server = new EventLog(pair.server.events);
    const client = new EventLog(pair.client!.events);
    try {
      await within(pair.client!.tunnel(), 10_000, "the tunnel");
      const serverStart = await pair.server.events.next("session_start", { timeoutMs: 5_000 });

      const [login] = server.of("login");
      assert.ok(login !== undefined, "a login event");
      assert.equal(login.user, "alice");
      assert.equal(login.remote, "127.0.0.1");
      assert.equal(login.resumed, false);
      assert.equal(typeof login.conn, "number");
      assert.ok(login.kex.length > 0 && login.aead.length > 0);
      assert.equal(serverStart.session, login.session);
      assert.equal(serverStart.user, "alice");
      assert.equal(serverStart.restarted, undefined);

      const [start] = client.of("session_start");
      assert.equal(start?.user, "alice");
      assert.equal(start?.peer, `127.0.0.1:${pair.serverPort}`);
      assert.equal(start?.kex, login.kex);
      assert.deepEqual(
        client.of("path_change").map((e) => [e.from, e.to]),
        [[undefined, `127.0.0.1:${pair.serverPort}`]],
      );

      // A stream the routes allow: opened, and it carries bytes.
      const conn = await within(
        socksConnect(pair.socksPort, "127.0.0.1", echo.port),
        10_000,
        "a stream to the echo server",
      );
      try {
        await conn.write(enc.encode("ping"));
        assert.deepEqual(await within(readExact(conn, 4), 10_000, "the echo"), enc.encode("ping"));
      } finally {
        conn.close();
      }
      const [open] = server.of("stream_open");
      assert.equal(open?.session, login.session);
      assert.equal(open?.target, `127.0.0.1:${echo.port}`);
      assert.equal(open?.user, "alice");

      // A target the routes do not allow, and one nobody listens on.
      assert.equal(await socksReply(pair, "10.1.2.3", 80), Reply.NOT_ALLOWED);
      const closed = freePort();
      assert.equal(await socksReply(pair, "127.0.0.1", closed), Reply.CONNECTION_REFUSED);
      const refused = server.of("stream_refused");
      assert.deepEqual(refused.map((e) => [e.target, e.reply]), [
        ["10.1.2.3:80", Reply.NOT_ALLOWED],
        [`127.0.0.1:${closed}`, Reply.CONNECTION_REFUSED],
      ]);
      assert.match(refused[0]!.reason, /^route tcp:10\.1\.2\.3:80 not allowed$/);
      assert.match(refused[1]!.reason, /^dial 127\.0\.0\.1:\d+ failed: /);
      assert.ok(refused.every((e) => e.session === login.session));
      assert.equal(server.of("stream_open").length, 1, "refused streams are not opened");

      // The client's release ends both sides' sessions gracefully.
      const serverEnd = pair.server.events.next("session_end", { timeoutMs: 10_000 });
      await pair.client!.close();
      const end = await serverEnd;
      assert.equal(end.session, login.session);
      assert.equal(end.user, "alice");
      assert.equal(end.graceful, true);
      assert.ok(end.bytesIn > 0 && end.bytesOut > 0);
      const [clientEnd] = client.of("session_end");
      assert.equal(clientEnd?.graceful, true);
      assert.equal(clientEnd?.reason, "released");
    } finally {
      server.close();
      client.close();
    }
  },
);

test(
  "events: an HTTP request is a probe refusal, a wrong token an auth_failed refusal",
  SANITIZE,
  async () => {
    await using pair = await startPair({ transport: "tcp", noClient: true });
    const server = new EventLog(pair.server.events);
    try {
      // A browser-like request: the decoy answers, the server reports a probe.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort });
      await conn.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      const page = await readToEnd(conn);
      conn.close();
      assert.match(page, /^HTTP\/1\.1 200 /);
      const probe = server.of("refusal");
      assert.equal(probe.length, 1);
      assert.equal(probe[0]!.reason, "probe");
      assert.equal(probe[0]!.remote, "127.0.0.1");

      // alice's profile with another token: the login is refused.
      const wrong = { ...pair.profile, token: new Uint8Array(32).fill(7) };
      const err = await within(
        connectLink(wrong, {
          server: { host: "127.0.0.1", port: pair.serverPort },
          serverName: pair.profile.serverName,
          transport: pair.profile.transport,
        }).then(() => undefined, (e: unknown) => e),
        10_000,
        "the refused login",
      );
      assert.ok(err instanceof TunnelError, String(err));
      const others = () => server.of("refusal", (e) => e.reason !== "probe");
      await waitFor("the server's refusal", () => others().length > 0, 5_000);
      const refusal = others()[0];
      assert.equal(refusal?.reason, "auth_failed");
      assert.equal(refusal?.remote, "127.0.0.1");
      assert.ok(refusal !== undefined && refusal.detail.length > 0);
      assert.equal(server.of("login").length, 0, "nobody logged in");
    } finally {
      server.close();
    }
  },
);

test(
  "events: a session that loses its endpoint reports link_down, connect_failed, path_change, resume",
  SANITIZE,
  async () => {
    await using pair = await startPair({ noClient: true });
    const server = new EventLog(pair.server.events);
    const relay = startFaultRelay({ port: pair.serverPort });
    // Endpoint 1: a relay in front of the server; endpoint 2: the server itself.
    const client = await startFailoverClient(pair, relay.port);
    const events = new EventLog(client.events);
    try {
      await within(client.tunnel(), 10_000, "the tunnel");
      // The server holds the session once our Finish arrived.
      await waitFor("the server's session", () => server.of("session_start").length === 1, 5_000);
      const relayAt = `127.0.0.1:${relay.port}`;
      const serverAt = `127.0.0.1:${pair.serverPort}`;
      await relay.close(); // the path in use dies: its connections and its port
      await waitFor("the resumption", () => events.of("resume").length === 1, 10_000);
      await waitFor("the server's resume", () => server.of("resume").length === 1, 5_000);

      const [resumed] = events.of("resume");
      assert.equal(resumed?.via, serverAt);
      assert.equal(resumed?.user, "alice");
      assert.ok(resumed?.afterMs !== undefined && resumed.afterMs >= 0);
      assert.equal(client.resumptions, 1);

      const [down] = events.of("link_down");
      assert.equal(down?.session, resumed.session);
      assert.equal(down?.tampered, false);
      // (The relay may or may not be tried first: the server has no failures and no connect time yet.)
      const failed = events.of("connect_failed");
      assert.ok(failed.every((e) => e.endpoint === relayAt && e.next === serverAt));
      assert.deepEqual(
        events.of("path_change").map((e) => [e.session, e.from, e.to]),
        [[resumed.session, relayAt, serverAt]],
      );

      const [atServer] = server.of("resume");
      assert.equal(atServer?.user, "alice");
      assert.equal(atServer?.via, "127.0.0.1");
      assert.equal(atServer?.session, server.of("session_start")[0]!.session);
      assert.equal(typeof atServer?.conn, "number");
    } finally {
      events.close();
      server.close();
      await client.close();
      await relay.close();
    }
  },
);

test(
  "a stream OPEN the tunnel does not answer in time: SOCKS5 reply 6, HTTP CONNECT 504",
  SANITIZE,
  async () => {
    await using echo = startEchoServer();
    let gate: GateRelay | undefined;
    await using pair = await startPair({
      transport: "tcp",
      fastOpen: false,
      httpConnect: true,
      client: { openTimeoutMs: 300 },
      via: (s) => (gate = startGateRelay(s.port)),
    });
    assert.equal(await socksReply(pair, "127.0.0.1", echo.port), Reply.SUCCEEDED);
    // The path dies and stays dead: the session waits for a link, the OPENs for an answer.
    gate!.cut();
    try {
      assert.equal(await socksReply(pair, "127.0.0.1", echo.port), Reply.TTL_EXPIRED);
      const err = await within(
        httpConnect(pair.httpPort!, "127.0.0.1", echo.port).then((c) => {
          c.close();
          return undefined;
        }, (e: unknown) => e),
        10_000,
        "the HTTP CONNECT response",
      );
      assert.ok(err instanceof HttpConnectError, String(err));
      assert.equal(err.status, 504);
    } finally {
      gate!.restore();
    }
  },
);

test(
  "ClientTunnel: a dead first endpoint is a connect_failed naming the next; the session starts there",
  SANITIZE,
  async () => {
    await using pair = await startPair({ noClient: true });
    const dead = freePort();
    const serverAt = `127.0.0.1:${pair.serverPort}`;
    const profile = {
      ...pair.profile,
      endpoints: [{
        server: { host: "127.0.0.1", port: pair.serverPort },
        serverName: pair.profile.serverName,
        transport: pair.profile.transport,
        ...(pair.profile.caPem === undefined ? {} : { caPem: pair.profile.caPem }),
      }],
    };
    const hub = new EventHub();
    const events = new EventLog(hub);
    const tunnel = new ClientTunnel({
      profile,
      log: pair.logs.logger("client"),
      events: hub,
      server: { host: "127.0.0.1", port: dead },
    });
    try {
      assert.equal(tunnel.events, hub);
      const session = await within(tunnel.session(), 10_000, "the session");
      assert.equal(await tunnel.session(), session, "the same session while it lives");
      assert.deepEqual(
        events.of("connect_failed").map((e) => [e.endpoint, e.next]),
        [[`127.0.0.1:${dead}`, serverAt]],
      );
      assert.match(events.of("connect_failed")[0]!.error, /Cannot reach the server/);
      assert.deepEqual(events.of("path_change").map((e) => [e.from, e.to]), [[
        undefined,
        serverAt,
      ]]);
      const [start] = events.of("session_start");
      assert.equal(start?.peer, serverAt);
      // The log observer the tunnel subscribed words the failure as before.
      assert.equal(
        pair.logs.grep(new RegExp(`\\[client\\] endpoint 127\\.0\\.0\\.1:${dead}: Cannot reach`))
          .length,
        1,
      );
    } finally {
      await tunnel.close();
      events.close();
    }
    assert.equal(events.of("session_end")[0]?.reason, "released");
    await assert.rejects(tunnel.session(), TunnelError);
  },
);

test(
  "events: server and client report where they listen on the hub they were given",
  SANITIZE,
  async () => {
    await using pair = await startPair({ transport: "tcp", noClient: true });
    const hub = new EventHub();
    const seen = new EventLog(hub);
    const client = await startClient({
      profile: pair.profile,
      log: pair.logs.logger("client"),
      events: hub,
      socks: { host: "127.0.0.1", port: 0 },
      lazy: true,
    });
    try {
      assert.equal(client.events, hub);
      assert.deepEqual(seen.of("listening").map((e) => [e.kind, e.addr]), [
        ["socks5", client.socksAddr],
      ]);
      assert.equal(
        pair.logs.grep(/\[client socks5\] SOCKS5 listening on 127\.0\.0\.1:\d+$/).length,
        1,
      );
    } finally {
      await client.close();
      seen.close();
    }
    const serverHub = new EventHub();
    const serverSeen = new EventLog(serverHub);
    const { users } = await loadUsers(join(pair.dir, "users.yml"));
    const config = await loadServerConfig(join(pair.dir, "server.yml"));
    const server = await startServer({ ...config, users, log: silentLogger, events: serverHub });
    try {
      assert.equal(server.events, serverHub);
      assert.deepEqual(serverSeen.of("listening").map((e) => [e.kind, e.addr, e.transport]), [
        ["tunnel", server.addr, "tcp"],
      ]);
    } finally {
      await server.close();
      serverSeen.close();
    }
  },
);
