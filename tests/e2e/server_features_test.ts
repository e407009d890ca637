/**
 * Server features on real sockets: the server's own direct SOCKS5 port
 * (seed 002's 1081), and users.yml reloads that apply at once without
 * dropping the live sessions of users who stay, end those of a removed
 * user, and are never half-applied.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadClientConfig, loadServerConfig } from "../../lib/config/mod.ts";
import { connectLink, startClient, TunnelError } from "../../lib/tunnel/client.ts";
import { addUser, initServerDir, removeUser } from "../../lib/provision/mod.ts";
import { ConfigError } from "../../lib/errors.ts";
import { ReleaseReason } from "../../lib/session/mod.ts";
import { Logs, LOOPBACK_ROUTES, run, startConfiguredServer, startPair } from "./_harness.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { test } from "../support/deadline.ts";

function curl(socksPort: number, url: string): Promise<{ code: number; body: string }> {
  return run("curl", [
    "-sS",
    "--max-time",
    "20",
    "--socks5-hostname",
    `127.0.0.1:${socksPort}`,
    url,
  ], {
    timeoutMs: 30_000,
  }).then((r) => ({ code: r.code, body: new TextDecoder().decode(r.stdout) }));
}

test("the server's direct SOCKS5 port proxies without a tunnel when enabled", async () => {
  await using target = await startHttpTarget();
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-direct-" });
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0" });
    const yml = join(dir, "server.yml");
    const text = await Deno.readTextFile(yml);
    const edited = text.replace(
      /socks5_direct:\n(\s+)enabled: false\n(\s+)listen: "[^"]*"/,
      'socks5_direct:\n$1enabled: true\n$2listen: "127.0.0.1:0"',
    );
    assert.notEqual(edited, text, "server.yml has a socks5_direct section to enable");
    await Deno.writeTextFile(yml, edited);
    const logs = new Logs();
    const server = await startConfiguredServer(await loadServerConfig(yml), logs.logger("server"));
    try {
      assert.ok(server.directAddr !== undefined, "the direct port is listening");
      const r = await curl(server.directAddr.port, `${target.url}/hello`);
      assert.equal(r.code, 0);
      assert.equal(r.body, "hello from target\n");
      assert.equal(server.sessions.size, 0, "no tunnel was involved");
    } finally {
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("users.yml reloads apply at once, keep live sessions, revoke removed users, refuse broken files", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const before = await curl(pair.socksPort, `${target.url}/hello`);
  assert.equal(before.body, "hello from target\n");
  const session = [...pair.server.sessions][0]!;

  // A new user works as soon as users.yml is reloaded.
  const bobProfile = join(pair.dir, "bob.yml");
  await addUser("bob", {
    dir: pair.dir,
    out: bobProfile,
    server: `127.0.0.1:${pair.serverPort}`,
    routes: [...LOOPBACK_ROUTES],
  });
  await pair.reloadUsers();
  assert.equal(pair.logs.grep(/reloaded 2 users/).length, 1);
  const bob = await startClient({
    profile: await loadClientConfig(bobProfile),
    log: pair.logs.logger("bob"),
    socks: { host: "127.0.0.1", port: 0 },
  });
  try {
    const r = await curl(bob.socksAddr.port, `${target.url}/hello`);
    assert.equal(r.body, "hello from target\n");
  } finally {
    await bob.close();
  }

  // The reload kept alice's session: same tunnel, still carrying new streams.
  const kept = await curl(pair.socksPort, `${target.url}/hello`);
  assert.equal(kept.body, "hello from target\n");
  assert.equal([...pair.server.sessions][0], session);
  assert.ok(!session.isClosed);

  // Removing alice revokes her at once: her live session ends (NOTICE REVOKED, so
  // her client says why), her next full login is refused, and no new stream opens.
  const ended = pair.clientEvents.waitFor("release", { timeoutMs: 5_000 });
  await removeUser("alice", pair.dir);
  await pair.reloadUsers();
  const [notice] = await ended;
  assert.equal(notice!.notice, ReleaseReason.REVOKED);
  assert.equal(pair.serverEvents.of("limit", (e) => e.limit === "removed").length, 1);
  await session.ended;
  assert.ok(session.isClosed, "the removed user's live session ended");
  const refused = await connectLink(pair.profile, {
    server: { host: "127.0.0.1", port: pair.serverPort },
    serverName: pair.profile.serverName,
    transport: pair.profile.transport,
    ...(pair.profile.caPem === undefined ? {} : { caPem: pair.profile.caPem }),
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(refused instanceof TunnelError, String(refused));
  assert.match(refused.message, /refused the login/);
  const opened = pair.serverEvents.of("stream_open").length;
  const during = await curl(pair.socksPort, `${target.url}/hello`);
  assert.notEqual(during.code, 0, "a revoked user opens no new stream");
  assert.equal(pair.serverEvents.of("stream_open").length, opened);

  // A broken users.yml is refused with its position, and the users in force stay.
  const reloads = pair.logs.grep(/reloaded/).length;
  await Deno.writeTextFile(join(pair.dir, "users.yml"), "users:\n  carol: [unclosed\n");
  const err = await pair.reloadUsers().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ConfigError, String(err));
  assert.match(err.message, /users\.yml:\d+:\d+/);
  assert.equal(pair.logs.grep(/reloaded/).length, reloads, "the broken file was not applied");
});
