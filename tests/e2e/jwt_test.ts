/**
 * JWT logins end to end: `nitrosocks user add --jwt-secret` and `user token`
 * as the CLI runs them, a real server and client, a live connection ended
 * when the token expires, a fresh token on disk letting the client back in,
 * a `routes` claim narrowing the user's routes on every address dialled
 * (TCP by address and by name, UDP datagrams), and a short-lived token
 * renewed in-band from the client's `jwt_file` while a download runs
 * across its expiry (and a renewal the server refuses).
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadClientConfig, loadServerConfig, loadUsers } from "../../lib/config/mod.ts";
import { signJwt } from "../../lib/crypto/jwt.ts";
import { jwtExpiresMs } from "../../lib/tunnel/jwt_session.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { initServerDir, issueUserToken } from "../../lib/provision/mod.ts";
import { reloadUsers } from "../../lib/cli/server_cmd.ts";
import { type ClientHandle, startClient } from "../../lib/tunnel/client.ts";
import type { ServerHandle } from "../../lib/tunnel/server.ts";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { socksConnect, SocksReplyError } from "../support/socks_client.ts";
import { startEchoServer } from "../support/serve.ts";
import { associate, receiveWithin, udpPacket } from "../support/socks_udp.ts";
import { startUdpEcho } from "../support/udp_echo.ts";
import { test, waitFor, withDeadline } from "../support/deadline.ts";
import { Logs, run, startConfiguredServer, text } from "./_harness.ts";
import { curlDownload } from "./_resume.ts";
import { expectedSha256, startHttpTarget } from "../support/http_target.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function nitrosocks(args: string[]) {
  return run(Deno.execPath(), ["run", "--quiet", ...PERMISSION_FLAGS, "main.ts", ...args], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    timeoutMs: 60_000,
  });
}

interface Setup extends AsyncDisposable {
  dir: string;
  server: ServerHandle;
  serverEvents: EventLog;
  profilePath: string;
  jwtFile: string;
  logs: Logs;
  startClient(): Promise<{ client: ClientHandle; events: EventLog }>;
}

/** A TCP server with dave, a JWT user added by the CLI (`user add dave --jwt-secret`). */
async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-jwt-" });
  const hub = new EventHub();
  const serverEvents = new EventLog(hub);
  const logs = new Logs();
  const clients: { client: ClientHandle; events: EventLog }[] = [];
  let server: ServerHandle | undefined;
  const close = async () => {
    for (const c of clients) {
      await c.client.close();
      c.events.close();
    }
    serverEvents.close();
    await server?.close();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
    const yml = join(dir, "server.yml");
    const text0 = await Deno.readTextFile(yml);
    await Deno.writeTextFile(
      yml,
      text0.replace(/^transport: tls$/m, "transport: tcp").replace("leeway: 30s", "leeway: 0s"),
    );
    const config = await loadServerConfig(yml);
    server = await startConfiguredServer(config, logs.logger("server"), hub);
    const profilePath = join(dir, "dave.yml");
    const add = await nitrosocks([
      "user",
      "add",
      "dave",
      "--dir",
      dir,
      "--out",
      profilePath,
      "--server",
      `127.0.0.1:${server.addr.port}`,
      "--routes",
      "127.0.0.1",
      "--jwt-secret",
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(text(add), /Wrote a first JWT \(valid 24 h\)/);
    await reloadUsers(server, config.usersFile, logs.logger("server"));
    const s = server;
    return {
      dir,
      server: s,
      serverEvents,
      profilePath,
      jwtFile: join(dir, "dave.jwt"),
      logs,
      async startClient() {
        const hubC = new EventHub();
        const events = new EventLog(hubC);
        const client = await startClient({
          profile: await loadClientConfig(profilePath),
          log: logs.logger("client"),
          events: hubC,
          socks: { host: "127.0.0.1", port: 0 },
        });
        clients.push({ client, events });
        return { client, events };
      },
      [Symbol.asyncDispose]: close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

async function token(s: Setup, args: string[]): Promise<void> {
  const r = await nitrosocks([
    "user",
    "token",
    "dave",
    "--dir",
    s.dir,
    "--out",
    s.jwtFile,
    ...args,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

async function echoOnce(conn: Deno.TcpConn, msg: string): Promise<string> {
  await conn.write(new TextEncoder().encode(msg));
  const buf = new Uint8Array(msg.length);
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return new TextDecoder().decode(buf.subarray(0, got));
}

test.slow("a JWT login works, its session ends at exp, and a fresh token on disk gets back in", async () => {
  await using s = await setup();
  await using echo = startEchoServer();
  const users = await Deno.readTextFile(join(s.dir, "users.yml"));
  assert.match(users.slice(users.indexOf("dave:")), /jwt:\n\s+secret: /);
  assert.match(await Deno.readTextFile(s.profilePath), /^jwt_file: "dave\.jwt"$/m);

  // A token that expires in 2-3 s (exp has whole seconds).
  await token(s, ["--ttl", "3s"]);
  const { client } = await s.startClient();
  const conn = await socksConnect(client.socksAddr.port, "127.0.0.1", echo.port);
  try {
    assert.equal(await echoOnce(conn, "hello"), "hello");
    const [login] = await s.serverEvents.waitFor("login", { timeoutMs: 5_000 });
    assert.equal(login!.user, "dave");
    // The live session ends at exp: NOTICE, then release; the connection through it closes.
    const [exp] = await s.serverEvents.waitFor("limit", {
      match: (e) => e.limit === "jwt.exp",
      timeoutMs: 10_000,
    });
    assert.equal(exp!.user, "dave");
    const [end] = await s.serverEvents.waitFor("session_end", { timeoutMs: 5_000 });
    assert.equal(end!.user, "dave");
    const buf = new Uint8Array(16);
    const n = await withDeadline(conn.read(buf).catch(() => null), 10_000, "the stream to end");
    assert.equal(n, null, "the stream through the expired session ends");
  } finally {
    conn.close();
  }

  // The next request logs in again with whatever token is on disk: an expired one is refused...
  const tryEcho = () =>
    socksConnect(client.socksAddr.port, "127.0.0.1", echo.port).then(async (c) => {
      try {
        return await echoOnce(c, "x");
      } finally {
        c.close();
      }
    }, (e: unknown) => `failed: ${e}`);
  assert.notEqual(await tryEcho(), "x");
  await waitFor(
    "the expired token's refusal",
    () =>
      s.serverEvents.of("refusal", (e) => e.reason === "auth_failed" && /expired/.test(e.detail))
        .length > 0,
    15_000,
  );
  // ...and a fresh one gets in (a new login, a new session).
  await token(s, ["--ttl", "1h"]);
  const again = await socksConnect(client.socksAddr.port, "127.0.0.1", echo.port);
  try {
    assert.equal(await echoOnce(again, "again"), "again");
  } finally {
    again.close();
  }
  assert.ok(!s.logs.lines.some((l) => l.includes((Deno.readTextFileSync(s.jwtFile)).trim())));
});

test("a routes claim narrows the user's routes for that session", async () => {
  await using s = await setup();
  await using echo = startEchoServer();
  await using other = startEchoServer();
  await token(s, ["--ttl", "1h", "--routes", `127.0.0.1:${echo.port}`]);
  const { client } = await s.startClient();
  const conn = await socksConnect(client.socksAddr.port, "127.0.0.1", echo.port);
  try {
    assert.equal(await echoOnce(conn, "in"), "in");
  } finally {
    conn.close();
  }
  // The user's own routes allow 127.0.0.1 on any port; the token's claim does not.
  const profile = await loadClientConfig(s.profilePath);
  assert.equal(profile.socks5.fastOpen, true);
  const refused = await socksConnect(client.socksAddr.port, "127.0.0.1", other.port).then(
    async (c) => {
      // fast_open: the refusal shows as a closed connection.
      const n = await c.read(new Uint8Array(4)).catch(() => null);
      c.close();
      return n === null ? "closed" : "open";
    },
    (e: unknown) => (e instanceof SocksReplyError ? "refused" : String(e)),
  );
  assert.notEqual(refused, "open");
  await waitFor(
    "the route refusal",
    () => s.serverEvents.of("stream_refused").length > 0,
    5_000,
  );
});

/** Opens `host:port` through the client: "open" when it echoes, "refused" or "closed" when not. */
async function tryTcp(client: ClientHandle, host: string, port: number): Promise<string> {
  try {
    const c = await socksConnect(client.socksAddr.port, host, port);
    try {
      return await echoOnce(c, "hi").then(
        (got) => (got === "hi" ? "open" : "closed"),
        () => "closed",
      );
    } finally {
      c.close();
    }
  } catch (e) {
    return e instanceof SocksReplyError ? "refused" : String(e);
  }
}

test("a hostname routes claim goes through the egress check on the address the name resolves to", async () => {
  await using s = await setup();
  await using echo = startEchoServer();
  // The user's routes name 127.0.0.1 explicitly; the claim names only a host name. The name
  // resolves to 127.0.0.1 (/etc/hosts), which is in egress.block: a name glob never reaches it.
  await token(s, ["--ttl", "1h", "--routes", `localhost:${echo.port}`]);
  const { client } = await s.startClient();
  assert.notEqual(await tryTcp(client, "localhost", echo.port), "open");
  const [refused] = await s.serverEvents.waitFor("stream_refused", { timeoutMs: 5_000 });
  assert.equal(refused!.cause, "egress");
  assert.match(
    refused!.reason,
    /^egress tcp:localhost:\d+ refused: localhost resolved to .*127\.0\.0\.1 is in egress\.block \(127\.0\.0\.0\/8\) and no route of the JWT routes claim names it/,
  );
  assert.equal(echo.accepted(), 0, "nothing was dialled");
});

test("an address routes claim lets a name through to that address, and its deny rules hold", async () => {
  await using s = await setup();
  await using echo = startEchoServer();
  await using other = startEchoServer();
  // An address claim matches the address a name resolved to, CIDR and deny forms as in users.yml.
  await token(s, ["--ttl", "1h", "--routes", `!127.0.0.1:${other.port},127.0.0.0/8`]);
  const { client } = await s.startClient();
  assert.equal(await tryTcp(client, "localhost", echo.port), "open");
  assert.notEqual(await tryTcp(client, "localhost", other.port), "open");
  const [refused] = await s.serverEvents.waitFor("stream_refused", { timeoutMs: 5_000 });
  assert.match(refused!.reason, /denied by route "!127\.0\.0\.1:\d+" of the JWT routes claim/);
  assert.equal(other.accepted(), 0);
});

test("a udp: routes claim narrows every datagram, by address and by name", async () => {
  await using s = await setup();
  await using allowed = startUdpEcho();
  await using blocked = startUdpEcho();
  await token(s, ["--ttl", "1h", "--routes", `udp:127.0.0.1:${allowed.port},udp:localhost:*`]);
  const { client } = await s.startClient();
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const { control, relay } = await associate(client.socksAddr.port);
  try {
    const send = (port: number, tag: string, host?: string) =>
      app.send(udpPacket(port, new TextEncoder().encode(tag), 0, host), relay);
    // The claim's address: through, and back.
    await send(allowed.port, "allowed1");
    const back = await withDeadline(app.receive(), 10_000, "the echo of the allowed datagram");
    assert.match(new TextDecoder().decode(back[0]), /allowed1$/);
    // Another port of the same address, which the user's routes allow: dropped by the claim.
    await send(blocked.port, "blocked1");
    // `udp:localhost:*` names a host, not an address: localhost's 127.0.0.1 is in egress.block.
    await send(blocked.port, "byname01", "localhost");
    assert.equal(await receiveWithin(app, 1_000), null);
    // The claim's address rule matches the address the name resolved to: through.
    await send(allowed.port, "byname02", "localhost");
    const byName = await withDeadline(app.receive(), 10_000, "the echo of the datagram by name");
    assert.match(new TextDecoder().decode(byName[0]), /byname02$/);
  } finally {
    control.close();
    app.close();
  }
  assert.equal(blocked.received, 0, "no datagram reached the other port");
  assert.equal(allowed.received, 2);
});

/** Writes a token for dave to the profile's jwt_file as `user token` does (in-process: timing). */
async function writeToken(s: Setup, ttlS: number, routes?: string[]): Promise<void> {
  const t = await issueUserToken("dave", {
    dir: s.dir,
    ttlS,
    ...(routes === undefined ? {} : { routes }),
  });
  await Deno.writeTextFile(s.jwtFile, `${t}\n`);
}

/**
 * A JWT session for dave (a first token valid `ttlS`) and a download of `n`
 * bytes through it, sent by the target at 300 kB/s (so it lasts n / 300 000 s).
 */
async function downloadWithToken(s: Setup, ttlS: number, n: number) {
  const target = await startHttpTarget();
  await writeToken(s, ttlS);
  const { client } = await s.startClient();
  const download = curlDownload(client.socksAddr.port, `${target.url}/bytes/${n}?rate=300000`, {
    timeoutMs: 60_000,
  }).finally(() => target.close());
  const [login] = await s.serverEvents.waitFor("login", { timeoutMs: 10_000 });
  return { download, login: login! };
}

test.slow("a short-lived JWT renewed in-band from jwt_file keeps a download running across its old exp", async () => {
  await using s = await setup();
  // 3.6 MB at 300 kB/s: about 12 s, well past the first token's exp (7-8 s from now).
  const n = 3_600_000;
  const { download, login } = await downloadWithToken(s, 8, n);
  const firstToken = (await Deno.readTextFile(s.jwtFile)).trim();
  const firstExpMs = jwtExpiresMs(firstToken)!;
  // While the download runs, a fresh token lands in the file (as a renewal job would put it).
  await writeToken(s, 3600);
  const [renewal] = await s.serverEvents.waitFor("jwt_renewal", { timeoutMs: 10_000 });
  assert.equal(renewal!.ok, true, renewal!.detail);
  assert.equal(renewal!.session, login.session);
  assert.ok(renewal!.expiresMs > Date.now() + 3_000_000, "the session now ends at the new exp");
  const r = await download;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.sha256, expectedSha256(n));
  const late = Date.now() - firstExpMs;
  assert.ok(late > 1_000, `the download ran past the old exp (it ended ${late} ms after it)`);
  // One login, one session, never ended at the old exp.
  assert.equal(s.serverEvents.of("login").length, 1);
  assert.equal(s.serverEvents.of("limit", (e) => e.limit === "jwt.exp").length, 0);
  assert.equal(s.serverEvents.of("session_end").length, 0);
  assert.ok(s.logs.lines.some((l) => /sent a fresh JWT from ".*dave\.jwt"/.test(l)));
  assert.ok(s.logs.lines.some((l) => /JWT renewed in-band: exp moved from/.test(l)));
  assert.ok(!s.logs.lines.some((l) => l.includes(firstToken)), "no token in the logs");
});

test.slow("a refused in-band renewal is logged and the session still ends at the old exp", async () => {
  await using s = await setup();
  // About 10 s at 300 kB/s: cut at the old exp (3-4 s from now).
  const { download } = await downloadWithToken(s, 4, 3_000_000);
  // A later exp, but another routes claim: a renewal keeps the login's routes.
  await writeToken(s, 3600, ["127.0.0.1:*"]);
  const [renewal] = await s.serverEvents.waitFor("jwt_renewal", { timeoutMs: 10_000 });
  assert.equal(renewal!.ok, false);
  assert.match(renewal!.detail, /its routes claim differs from the login's \(null\)/);
  const [exp] = await s.serverEvents.waitFor("limit", {
    match: (e) => e.limit === "jwt.exp",
    timeoutMs: 10_000,
  });
  assert.equal(exp!.user, "dave");
  assert.ok(renewal!.expiresMs <= Date.now(), "it ended at the old exp");
  const r = await download;
  assert.notEqual(r.code, 0, "the download was cut with the session");
  assert.ok(s.logs.lines.some((l) => /JWT renewal refused: its routes claim differs/.test(l)));
});

test("a token whose routes claim does not parse is refused at login, the log naming the pattern", async () => {
  await using s = await setup();
  await using echo = startEchoServer();
  // `user token` would refuse to sign it; a token from elsewhere may still carry one.
  const config = await loadServerConfig(join(s.dir, "server.yml"));
  const secret = (await loadUsers(config.usersFile)).users.get("dave")!.jwt!.secret!;
  const bad = signJwt({ alg: "HS256", secret }, {
    sub: "dave",
    exp: Math.floor(Date.now() / 1000) + 3600,
    routes: [`127.0.0.1:${echo.port}`, "10.0.0.1/8"],
  });
  await Deno.writeTextFile(s.jwtFile, `${bad}\n`);
  const { client } = await s.startClient();
  assert.notEqual(await tryTcp(client, "127.0.0.1", echo.port), "open");
  const [refusal] = await s.serverEvents.waitFor("refusal", {
    match: (e) => e.reason === "auth_failed",
    timeoutMs: 10_000,
  });
  assert.match(
    refusal!.detail,
    /^JWT for user "dave" refused: routes claim pattern "10\.0\.0\.1\/8" is refused: Invalid route/,
  );
  // The client sees an ordinary refused login, nothing about why.
  assert.ok(s.logs.lines.some((l) => /refused the login/.test(l)));
  assert.equal(echo.accepted(), 0);
});
