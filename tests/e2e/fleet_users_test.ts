/**
 * `store.users: true`: the fleet's users live in one real redis-server, not
 * in each server's users.yml. `nitrosocks user add|set|remove|list`, run as
 * the real command on a server directory, writes there; every server of the
 * fleet applies a change within 2 s; a disabled user's tunnels end and their
 * next login is refused on every server; with Redis down a server keeps the
 * users it last read.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { LOOPBACK_ROUTES, startEchoServer } from "./_harness.ts";
import { type Fleet, startFleet } from "./_fleet.ts";
import { hasRedis, startRedis } from "../support/redis.ts";
import { startNitrosocks } from "../support/nitro_process.ts";
import { socksConnect } from "../support/socks_client.ts";
import { exchange } from "../support/io.ts";
import { step, test, waitFor } from "../support/deadline.ts";
import { parseDocument } from "yaml";

const ignore = !(await hasRedis());
const STORE_USERS = "  users: true\n";

/** Runs `nitrosocks user …` as the real command; resolves with its output (exit 0 asserted). */
async function userCommand(args: string[]): Promise<string> {
  const p = startNitrosocks(["user", ...args]);
  const status = await step(`nitrosocks user ${args[0]} to finish`, p.status);
  await p.close();
  assert.equal(status.code, 0, p.output());
  return p.output();
}

/** Adds `name` through the CLI on `dir`, with a profile next to the others. */
function addWithCli(dir: string, name: string): Promise<string> {
  return userCommand([
    "add",
    name,
    "--dir",
    dir,
    "--out",
    join(dir, `${name}.yml`),
    "--server",
    "127.0.0.1:1",
    "--routes",
    LOOPBACK_ROUTES.join(","),
  ]);
}

/** Adds bob with the CLI to a two-server fleet (alice alone before) and waits for both to serve him. */
async function addBob(fleet: Fleet): Promise<void> {
  await addWithCli(fleet.dir, "bob");
  await waitFor(
    "both servers to reload bob",
    () => fleet.logs.grep(/reloaded 2 users from the fleet's users/).length >= 2,
    5_000,
  );
}

/** Runs the real `redis-cli` against `port`; resolves with its output (exit 0 asserted). */
async function redisCli(port: number, args: string[]): Promise<string> {
  const out = await step(
    `redis-cli ${args[0]} ${args[1]}`,
    new Deno.Command("redis-cli", { args: ["-p", String(port), ...args], stderr: "piped" })
      .output(),
  );
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return text;
}

/** One echo round trip through a SOCKS5 port. */
async function echoThrough(socksPort: number, echoPort: number): Promise<string> {
  const conn = await socksConnect(socksPort, "127.0.0.1", echoPort);
  const got = await exchange(conn, new TextEncoder().encode("ping"), {
    ms: 10_000,
    what: "the echo",
    halfClose: true,
  });
  return new TextDecoder().decode(got);
}

test.slow(
  "store.users: a user added with the CLI on the fleet's directory logs in through another server; users.yml stays as it was",
  { ignore },
  async () => {
    await using redis = await startRedis();
    await using fleet = await startFleet(redis, { servers: 2, storeYaml: STORE_USERS });
    const [a, b] = fleet.servers;
    const usersFile = join(fleet.dir, "users.yml");
    const before = await Deno.readTextFile(usersFile);
    assert.doesNotMatch(before, /alice/, "alice (added by startFleet) went to the store");

    const out = await addWithCli(fleet.dir, "bob");
    const added = performance.now();
    assert.match(
      out,
      /Added user "bob" to the fleet's users in redis:\/\/127\.0\.0\.1:\d+ \(nitrosocks:users\)/,
    );
    assert.match(out, /within 2 s \(every server of the fleet\)/);
    assert.equal(await Deno.readTextFile(usersFile), before, "users.yml untouched");
    await waitFor(
      "both servers to reload bob",
      () => fleet.logs.grep(/reloaded 2 users from the fleet's users/).length >= 2,
      5_000,
    );
    const ms = performance.now() - added;
    console.log(`both servers served bob ${ms.toFixed(0)} ms after "user add" ended`);
    assert.ok(ms < 2_000, `${ms} ms`);

    const list = await userCommand(["list", "--dir", fleet.dir]);
    assert.match(list, /^alice /m);
    assert.match(list, /^bob /m);

    // bob logs in through server B (not the one whose directory is named: there is one directory,
    // and users.yml knows nothing of bob) and through A.
    await using echo = await startEchoServer();
    for (const [i, s] of [[1, b!], [0, a!]] as const) {
      const c = await fleet.client("bob", i);
      await s.events.waitFor("session_start", { timeoutMs: 10_000 });
      assert.equal(await echoThrough(c.socksPort, echo.port), "ping");
    }
  },
);

test.slow(
  "store.users: user set --disable ends the user's tunnels on every server, and the next login is refused on every server",
  { ignore },
  async () => {
    await using redis = await startRedis();
    await using fleet = await startFleet(redis, {
      servers: 3,
      storeYaml: STORE_USERS,
      users: [{ name: "alice" }, { name: "bob" }],
    });
    const [a, b, c] = fleet.servers;
    await fleet.client("bob", 0);
    await fleet.client("bob", 1);
    await fleet.client("alice", 2);
    await waitFor(
      "bob's tunnels on A and B, alice's on C",
      () =>
        a!.handle.sessions.size === 1 && b!.handle.sessions.size === 1 &&
        c!.handle.sessions.size === 1,
      10_000,
    );
    const endedA = a!.events.waitFor("session_end", { timeoutMs: 5_000 });
    const endedB = b!.events.waitFor("session_end", { timeoutMs: 5_000 });
    const t0 = Date.now();
    const out = await userCommand(["set", "bob", "--disable", "--dir", fleet.dir]);
    assert.match(out, /Changed user "bob" in the fleet's users in redis:/);
    const [[ea], [eb]] = await Promise.all([endedA, endedB]);
    const ms = Math.max(ea!.time, eb!.time) - t0;
    console.log(
      `"user set bob --disable" (command start) ended bob's tunnels on A and B ${ms} ms later`,
    );
    assert.ok(ms < 10_000, `${ms} ms`);
    assert.equal(ea!.user, "bob");
    assert.equal(eb!.user, "bob");
    assert.equal(c!.handle.sessions.size, 1, "alice's tunnel stays");

    // The next login of bob is refused by every server, each on its own view of the users: the
    // server names the reason (a disabled user, not a failed login), and no tunnel of bob opens.
    const disabled = (e: { reason: string; detail: string }) =>
      e.reason === "auth_failed" && e.detail === 'user "bob" refused: disabled in users.yml';
    for (const [i, s] of fleet.servers.entries()) {
      const before = fleet.servers.map((x) => x.events.of("refusal", disabled).length);
      const cl = await fleet.client("bob", i);
      await s.events.waitFor("refusal", {
        match: disabled,
        count: before[i]! + 1,
        timeoutMs: 5_000,
      });
      for (const [j, x] of fleet.servers.entries()) {
        if (j !== i) {
          assert.equal(x.events.of("refusal", disabled).length, before[j], `server ${j}`);
        }
      }
      assert.equal(s.handle.sessions.size, i === 2 ? 1 : 0, `server ${i}: no tunnel of bob`);
      await cl.close();
    }
    // Enabled again: he logs in.
    await userCommand(["set", "bob", "--enable", "--dir", fleet.dir]);
    await waitFor(
      "every server to reload bob enabled",
      () => fleet.logs.grep(/reloaded 2 users from the fleet's users/).length >= 6,
      5_000,
    );
    const back = await fleet.client("bob", 2);
    await waitFor("bob's new tunnel on C", () => c!.handle.sessions.size === 2, 10_000);
    await using echo = await startEchoServer();
    assert.equal(await echoThrough(back.socksPort, echo.port), "ping");
  },
);

test.slow(
  "store.users: with Redis down a server keeps the users it last read; when Redis is back changes reach it again",
  { ignore },
  async () => {
    await using redis = await startRedis();
    await using fleet = await startFleet(redis, { servers: 2, storeYaml: STORE_USERS });
    const [a] = fleet.servers;
    await addBob(fleet);
    const bob = await fleet.client("bob", 0);
    await a!.events.waitFor("session_start", { timeoutMs: 10_000 });
    await using echo = await startEchoServer();
    assert.equal(await echoThrough(bob.socksPort, echo.port), "ping");

    await redis.stop();
    await waitFor(
      "server A to see the store down",
      () => fleet.logs.grep(/unreachable/).length >= 1,
      5_000,
    );
    // Longer than two polls: the server keeps bob (a new stream checks his routes in its view).
    await new Promise((r) => setTimeout(r, 4_500));
    assert.equal(await echoThrough(bob.socksPort, echo.port), "ping");
    assert.equal(a!.handle.sessions.size, 1, "bob's tunnel lives on");

    await redis.start();
    await waitFor(
      "server A to see the store back",
      () => fleet.logs.grep(/back after/).length >= 2,
      10_000,
    );
    const ended = a!.events.waitFor("session_end", { timeoutMs: 5_000 });
    await userCommand(["set", "bob", "--disable", "--dir", fleet.dir]);
    const [e] = await ended;
    assert.equal(e!.user, "bob");
  },
);

test.slow(
  "store.users: a users document written to Redis without its announcement reaches every server by the 2 s version check",
  { ignore },
  async () => {
    await using redis = await startRedis();
    await using fleet = await startFleet(redis, { servers: 2, storeYaml: STORE_USERS });
    const [a, b] = fleet.servers;
    await addBob(fleet);
    await fleet.client("bob", 0);
    await fleet.client("bob", 1);
    await waitFor(
      "bob's tunnels on A and B",
      () => a!.handle.sessions.size === 1 && b!.handle.sessions.size === 1,
      10_000,
    );

    // Another writer (an older tool, a restore) changes the document and bumps its version, but
    // publishes nothing on the users channel: only the servers' version check can see it.
    const key = "nitrosocks:users";
    const doc = parseDocument(await redisCli(redis.port, ["HGET", key, "yaml"]));
    assert.equal(doc.getIn(["users", "bob", "disabled"]) ?? false, false);
    doc.setIn(["users", "bob", "disabled"], true);
    const version = Number(await redisCli(redis.port, ["HGET", key, "version"]));
    const endedA = a!.events.waitFor("session_end", { timeoutMs: 5_000 });
    const endedB = b!.events.waitFor("session_end", { timeoutMs: 5_000 });
    const reloads = fleet.logs.grep(/reloaded 2 users from the fleet's users/).length;
    const t0 = Date.now();
    await redisCli(redis.port, ["HSET", key, "yaml", doc.toString()]);
    assert.equal(
      Number(await redisCli(redis.port, ["HINCRBY", key, "version", "1"])),
      version + 1,
    );
    const [[ea], [eb]] = await Promise.all([endedA, endedB]);
    const ms = Math.max(ea!.time, eb!.time) - t0;
    console.log(`a silent write reached both servers ${ms} ms later (version check every 2 s)`);
    assert.ok(ms < 3_500, `${ms} ms`);
    assert.equal(ea!.user, "bob");
    assert.equal(eb!.user, "bob");
    // A server logs its reload after it has ended the sessions it revoked: wait for both lines.
    const reloadedNew = new RegExp(
      `reloaded 2 users from the fleet's users .*\\(version ${version + 1}\\)`,
    );
    await waitFor(
      "both servers' log lines for the reload of the new version",
      () => fleet.logs.grep(reloadedNew).length >= 2,
      3_000,
    );
    assert.equal(
      fleet.logs.grep(reloadedNew).length,
      2,
      "each server reloaded the new version once",
    );
    assert.ok(fleet.logs.grep(/reloaded 2 users from the fleet's users/).length === reloads + 2);
  },
);
