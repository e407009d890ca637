/**
 * Stateless resumption across servers: two server processes' worth of
 * configuration sharing one identity, one users file and one ticket key
 * file, behind a round-robin TCP balancer. When the client's link is cut,
 * its reconnect lands on the other server, which accepts the resumption by
 * ticket: the login carries over (no credentials again), the live streams
 * do not (they lived on the first server) and are reset; new requests on
 * the same client session work, and the session still re-keys.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { loadClientConfig, loadServerConfig } from "../../lib/config/mod.ts";
import { encodeTicketKeys, generateTicketKey } from "../../lib/handshake/ticket.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { startClient } from "../../lib/tunnel/client.ts";
import type { ServerHandle } from "../../lib/tunnel/server.ts";
import { expectedSha256, startHttpTarget } from "../support/http_target.ts";
import { socksConnect } from "../support/socks_client.ts";
import { startTcpBalancer } from "../support/tcp_balancer.ts";
import { Logs, LOOPBACK_ROUTES, startConfiguredServer, startEchoServer } from "./_harness.ts";
import { sha256File, startCurl, waitFor } from "./_paths.ts";
import { test, withDeadline } from "../support/deadline.ts";

const MiB = 1024 * 1024;

/** Resolves to null at end of stream, "error" on a reset, or the bytes read. */
function readOnce(conn: Deno.Conn, ms: number): Promise<Uint8Array | null | "error"> {
  const buf = new Uint8Array(1024);
  return withDeadline(
    conn.read(buf).then((n) => (n === null ? null : buf.slice(0, n)), () => "error" as const),
    ms,
    "the stream to answer or end",
  );
}

test("tickets: a reconnect that lands on the other server resumes the login, not the streams", async () => {
  await using target = await startHttpTarget();
  await using echo = startEchoServer();
  const root = await Deno.makeTempDir({ prefix: "nitrosocks-tickets-" });
  const logs = new Logs();
  const servers: ServerHandle[] = [];
  let closeClient = () => Promise.resolve();
  try {
    // Server A: a directory as `init` makes it; server B: its own server.yml
    // naming A's identity, users file and TLS files. Both share the ticket keys.
    const dirA = join(root, "a"), dirB = join(root, "b");
    await Deno.mkdir(dirA);
    await Deno.mkdir(dirB);
    await initServerDir(dirA, { listen: "127.0.0.1:0", name: "localhost" });
    const profilePath = join(root, "alice.yml");
    await addUser("alice", {
      dir: dirA,
      out: profilePath,
      server: "127.0.0.1:9",
      routes: [...LOOPBACK_ROUTES],
    });
    const keysFile = join(root, "ticket.keys");
    await Deno.writeTextFile(keysFile, encodeTicketKeys([generateTicketKey(1)]), { mode: 0o600 });
    const session = `\nsession:\n  ticket_keys: ${JSON.stringify(keysFile)}\n`;
    const ymlA = await Deno.readTextFile(join(dirA, "server.yml"));
    await Deno.writeTextFile(join(dirA, "server.yml"), ymlA + session);
    const ymlB = ymlA
      .replace(
        /^( {2}cert: )tls\/server\.crt$/m,
        `$1${JSON.stringify(join(dirA, "tls/server.crt"))}`,
      )
      .replace(
        /^( {2}key: )tls\/server\.key$/m,
        `$1${JSON.stringify(join(dirA, "tls/server.key"))}`,
      )
      .replace(
        /^identity: keys\/server\.key$/m,
        `identity: ${JSON.stringify(join(dirA, "keys/server.key"))}`,
      )
      .replace(/^users: users\.yml$/m, `users: ${JSON.stringify(join(dirA, "users.yml"))}`);
    assert.equal((ymlB.match(new RegExp(dirA, "g")) ?? []).length, 4, "B names A's four files");
    await Deno.writeTextFile(join(dirB, "server.yml"), ymlB + session);
    const cfgA = await loadServerConfig(join(dirA, "server.yml"));
    const cfgB = await loadServerConfig(join(dirB, "server.yml"));
    assert.equal(cfgA.session.ticketKeysText, cfgB.session.ticketKeysText);
    const hubA = new EventHub(), hubB = new EventHub(), clientHub = new EventHub();
    const eventsA = new EventLog(hubA), eventsB = new EventLog(hubB);
    const clientEvents = new EventLog(clientHub);
    const a = await startConfiguredServer(cfgA, logs.logger("server-a"), hubA);
    servers.push(a);
    const b = await startConfiguredServer(cfgB, logs.logger("server-b"), hubB);
    servers.push(b);
    await using lb = startTcpBalancer([{ port: a.addr.port }, { port: b.addr.port }]);

    const client = await startClient({
      profile: await loadClientConfig(profilePath),
      log: logs.logger("client"),
      events: clientHub,
      server: { host: "127.0.0.1", port: lb.port },
      socks: { host: "127.0.0.1", port: 0 },
    });
    closeClient = () => client.close();
    const tunnel = await client.tunnel();
    assert.deepEqual(lb.picks, [0], "the login went to server A");
    // (A reports the login when the client's last handshake message arrives.)
    const [login] = await eventsA.waitFor("login", { timeoutMs: 5_000 });
    assert.deepEqual([login?.user, login?.resumed], ["alice", false]);

    // A live stream on server A.
    const conn = await socksConnect(client.socksAddr.port, "127.0.0.1", echo.port);
    try {
      await conn.write(new TextEncoder().encode("ping"));
      assert.deepEqual(await readOnce(conn, 5_000), new TextEncoder().encode("ping"));

      // The path breaks; round robin sends the reconnect to server B.
      lb.dropAll();
      await waitFor("a resumption", () => client.resumptions >= 1, 10_000);
      const log = () => logs.lines.join("\n");
      assert.deepEqual(lb.picks, [0, 1], log());
      await eventsB.waitFor("session_start", {
        match: (e) => e.user === "alice" && e.restarted === true,
        timeoutMs: 5_000,
      }).catch((e) => {
        throw new Error(`${e}\n${log()}`);
      });
      // The login carried over: B never saw a full login.
      assert.deepEqual(
        eventsB.of("login").map((e) => [e.user, e.resumed]),
        [["alice", true]],
        log(),
      );
      const authFailed = (e: { reason: string }) => e.reason === "auth_failed";
      assert.equal(
        [...eventsA.of("refusal", authFailed), ...eventsB.of("refusal", authFailed)].length,
        0,
        log(),
      );
      // The live stream did not: the client resets it and says so.
      await clientEvents.waitFor("stream_close", {
        match: (e) => e.reason === "lost: the server no longer holds it",
        timeoutMs: 5_000,
      });
      const after = await readOnce(conn, 5_000);
      assert.ok(after === null || after === "error", `the old stream ended (${String(after)})`);
    } finally {
      conn.close();
    }

    // A new request on the same client session works, served by B.
    assert.equal(await client.tunnel(), tunnel, "the same client session");
    const tmp = join(root, "body");
    const n = 4 * MiB;
    const r = await startCurl(client.socksAddr.port, `${target.url}/bytes/${n}`, tmp).done;
    assert.equal(r.code, 0, `${r.stderr}\n${logs.lines.join("\n")}`);
    assert.equal(await sha256File(tmp), expectedSha256(n));
    assert.equal(b.sessions.size, 1);
    const onB = [...b.sessions][0]!;
    assert.ok(onB.stats.streams >= 1, "B carried the new request");
    assert.equal(lb.connections, 2, "no further connection (no new login)");
    assert.equal(
      [...eventsA.of("login"), ...eventsB.of("login")].filter((e) => !e.resumed).length,
      1,
      "one full login in all",
    );

    // The session resumed by ticket still re-keys (both ends agree on the link).
    const c0 = tunnel.stats.rekeys, s0 = onB.stats.rekeys;
    onB.rekeyNow();
    await waitFor(
      "a re-key on B's session",
      () => tunnel.stats.rekeys > c0 && onB.stats.rekeys > s0,
      5_000,
    ).catch((e) => {
      throw new Error(`${e}\n${logs.lines.join("\n")}`);
    });
    const r2 = await startCurl(client.socksAddr.port, `${target.url}/bytes/${n}`, tmp).done;
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await sha256File(tmp), expectedSha256(n), "exact after the re-key");

    // Closing releases the session B resumed (its release key came with the ticket resumption).
    closeClient = () => Promise.resolve();
    await client.close();
    await waitFor("B's session to end", () => b.sessions.size === 0, 5_000);
    assert.deepEqual(
      clientEvents.of("session_end").map((e) => [e.reason, e.graceful]),
      [["released", true]],
      logs.lines.join("\n"),
    );
  } finally {
    await closeClient();
    for (const s of servers) await s.close();
    await Deno.remove(root, { recursive: true });
  }
});
