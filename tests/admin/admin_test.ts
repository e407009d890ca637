/**
 * The admin listener over real loopback sockets, with a stand-in session
 * directory: the loopback rule, the bearer token, the routes and methods,
 * refusals of web pages and of DNS-rebound Host names, and the client's
 * errors.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Accountant, MemoryStore } from "../../lib/accounting/mod.ts";
import {
  AdminRequestError,
  fetchStatus,
  kickUser,
  type LiveSession,
  type SessionDirectory,
  startAdmin,
} from "../../lib/admin/mod.ts";
import { createLogger, EventHub, EventLog } from "../../lib/observe/mod.ts";
import { test } from "../support/deadline.ts";

const TOKEN = "test-token-0123456789abcdef";

class FakeSessions implements SessionDirectory {
  kicked: [string, string][] = [];
  sessions: LiveSession[] = [{
    session: 3,
    user: "alice",
    source: "192.0.2.7",
    since: "2026-01-01T00:00:00.000Z",
    via: "192.0.2.7",
    connected: true,
    bytesIn: 10,
    bytesOut: 20,
    streams: 1,
    streamsTotal: 4,
    rttMs: 1.5,
  }];
  list() {
    return this.sessions;
  }
  streamsLive() {
    return 1;
  }
  kick(user: string, by: string) {
    this.kicked.push([user, by]);
    return Promise.resolve(user === "alice" ? 1 : 0);
  }
}

async function setup(listen = { host: "127.0.0.1", port: 0 }, token?: string) {
  const hub = new EventHub();
  const events = new EventLog(hub);
  const lines: string[] = [];
  const accountant = await Accountant.start(hub, {
    store: new MemoryStore(),
    users: { get: (n) => (n === "alice" ? {} : undefined) },
  });
  const sessions = new FakeSessions();
  const admin = startAdmin({
    listen,
    ...(token === undefined ? {} : { token }),
    accountant,
    sessions,
    users: { size: 1 },
    log: createLogger("debug", "admin", (l) => lines.push(l)),
    events: hub,
  });
  const base = `http://127.0.0.1:${admin.addr.port}`;
  return {
    hub,
    events,
    lines,
    sessions,
    admin,
    base,
    async [Symbol.asyncDispose]() {
      await admin.close();
      await accountant.close();
      events.close();
    },
  };
}

async function get(url: string, init: RequestInit = {}) {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

test("startAdmin() refuses an address beyond loopback without a token", async () => {
  const hub = new EventHub();
  const accountant = await Accountant.start(hub, { store: new MemoryStore(), users: new Map() });
  try {
    for (const host of ["0.0.0.0", "::", "192.0.2.1"]) {
      assert.throws(
        () =>
          startAdmin({
            listen: { host, port: 0 },
            accountant,
            sessions: new FakeSessions(),
            users: { size: 0 },
            log: createLogger("error", "admin", () => {}),
          }),
        (e: unknown) => {
          assert.ok(e instanceof TypeError);
          assert.match(e.message, /without admin\.token: it is not a loopback address/);
          return true;
        },
      );
    }
  } finally {
    await accountant.close();
  }
});

test("with a token, every request needs Authorization: Bearer (401 without, 200 with)", async () => {
  await using s = await setup({ host: "0.0.0.0", port: 0 }, TOKEN);
  const none = await get(`${s.base}/metrics`);
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), 'Bearer realm="nitrosocks"');
  assert.ok(!none.body.includes("nitrosocks_"), "nothing is served without the token");
  for (const auth of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, "Basic abc"]) {
    assert.equal((await get(`${s.base}/status`, { headers: { authorization: auth } })).status, 401);
  }
  const wrongKick = await get(`${s.base}/kick?user=alice`, {
    method: "POST",
    headers: { authorization: "Bearer nope-nope-nope-nope" },
  });
  assert.equal(wrongKick.status, 401);
  assert.deepEqual(s.sessions.kicked, [], "no kick without the token");
  const ok = await get(`${s.base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(ok.status, 200);
  assert.match(ok.body, /^nitrosocks_uptime_seconds /m);
  const lower = await get(`${s.base}/status`, { headers: { authorization: `bearer ${TOKEN}` } });
  assert.equal(lower.status, 200);
  assert.ok(
    s.lines.some((l) => /refused GET \/metrics from 127\.0\.0\.1: missing or wrong token/.test(l)),
  );
  assert.ok(!s.lines.some((l) => l.includes(TOKEN)), "the token is never logged");
  // The client sends it from server.yml's admin.token.
  const target = { listen: { host: "0.0.0.0", port: s.admin.addr.port } };
  await assert.rejects(fetchStatus(target), (e: unknown) => {
    assert.ok(e instanceof AdminRequestError);
    assert.equal(e.status, 401);
    assert.match(e.message, /it wants a bearer token, and admin\.token is not set/);
    return true;
  });
  await assert.rejects(fetchStatus({ ...target, token: `${TOKEN}-old` }), /does not match/);
  assert.equal((await fetchStatus({ ...target, token: TOKEN })).sessions.length, 1);
});

test("/metrics, /status and /kick answer with the right types, methods and errors", async () => {
  await using s = await setup();
  s.hub.emit({ type: "stream_open", session: 3, stream: 1, target: "h:1", user: "alice" });
  const m = await get(`${s.base}/metrics`);
  assert.equal(m.status, 200);
  assert.equal(m.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.match(m.body, /^nitrosocks_user_streams_total\{user="alice",result="opened"\} 1$/m);
  assert.match(m.body, /^nitrosocks_streams_live 1$/m);
  assert.match(m.body, /^nitrosocks_users 1$/m);

  const st = await get(`${s.base}/status`);
  assert.equal(st.status, 200);
  assert.match(st.headers.get("content-type") ?? "", /^application\/json/);
  const report = JSON.parse(st.body);
  assert.deepEqual(report.sessions, s.sessions.sessions);
  assert.equal(report.server.users, 1);

  const k = await get(`${s.base}/kick?user=alice`, { method: "POST" });
  assert.equal(k.status, 200);
  assert.deepEqual(JSON.parse(k.body), { user: "alice", sessions: 1 });
  assert.deepEqual(s.sessions.kicked, [["alice", "admin 127.0.0.1"]]);
  assert.deepEqual(
    await kickUser({ listen: { host: "127.0.0.1", port: s.admin.addr.port } }, "bob"),
    {
      user: "bob",
      sessions: 0,
    },
  );

  const cases: [string, RequestInit, number, RegExp][] = [
    ["/kick?user=alice", {}, 405, /takes POST/],
    ["/kick", { method: "POST" }, 400, /give \?user=NAME/],
    ["/kick?user=a%20b", { method: "POST" }, 400, /give \?user=NAME/],
    ["/metrics", { method: "POST" }, 405, /takes GET/],
    ["/nothing", {}, 404, /GET \/metrics, GET \/status, POST \/kick/],
    ["/constructor", {}, 404, /Not found/],
  ];
  for (const [path, init, status, body] of cases) {
    const r = await get(`${s.base}${path}`, init);
    assert.equal(r.status, status, path);
    assert.match(r.body, body, path);
  }
  const head = await fetch(`${s.base}/kick?user=x`, { method: "PUT" });
  await head.body?.cancel();
  assert.equal(head.headers.get("allow"), "POST");
  assert.equal(s.sessions.kicked.length, 2, "only the two POSTs kicked");
});

test("a web page cannot use the admin listener: Origin refused, a rebound Host refused", async () => {
  await using s = await setup();
  const fromPage = await get(`${s.base}/kick?user=alice`, {
    method: "POST",
    headers: { origin: "https://evil.example" },
  });
  assert.equal(fromPage.status, 403);
  // DNS rebinding: evil.example resolves to 127.0.0.1, so the browser sends Host: evil.example.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.admin.addr.port });
  try {
    await conn.write(
      new TextEncoder().encode(
        "GET /status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
      ),
    );
    const buf = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.match(text, /^HTTP\/1\.1 403 /);
    assert.ok(!text.includes("alice"));
  } finally {
    conn.close();
  }
  assert.deepEqual(s.sessions.kicked, []);
});

test("the listening event names the admin address; a taken port is a clear error", async () => {
  await using s = await setup();
  const ev = s.events.of("listening", (e) => e.kind === "admin");
  assert.deepEqual(ev.map((e) => e.addr), [{ hostname: "127.0.0.1", port: s.admin.addr.port }]);
  const accountant = await Accountant.start(new EventHub(), {
    store: new MemoryStore(),
    users: new Map(),
  });
  try {
    assert.throws(
      () =>
        startAdmin({
          listen: { host: "127.0.0.1", port: s.admin.addr.port },
          accountant,
          sessions: new FakeSessions(),
          users: { size: 0 },
          log: createLogger("error", "admin", () => {}),
        }),
      (e: unknown) => {
        assert.ok(e instanceof Deno.errors.AddrInUse);
        assert.equal(
          e.message,
          `Cannot listen for admin on 127.0.0.1:${s.admin.addr.port}: the address is in use`,
        );
        return true;
      },
    );
  } finally {
    await accountant.close();
  }
});

test("the client says when nothing listens", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(fetchStatus({ listen: { host: "127.0.0.1", port } }), (e: unknown) => {
    assert.ok(e instanceof AdminRequestError);
    assert.equal(
      e.message,
      `Cannot reach the admin listener at http://127.0.0.1:${port}: connection refused (is the server running with this server.yml?)`,
    );
    return true;
  });
});
