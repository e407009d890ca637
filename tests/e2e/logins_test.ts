/**
 * Password logins (SCRAM-SHA-256) end to end: `nitrosocks user add
 * --password` reading the password from standard input, a real server, the
 * `nitrosocks client` process asking for the password on standard input, and
 * curl through it; a wrong password refused the way a wrong token is.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import {
  type ClientConfig,
  encodeBase32,
  loadClientConfig,
  loadServerConfig,
  loadUsers,
} from "../../lib/config/mod.ts";
import { scramVerifier } from "../../lib/crypto/scram.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { connectLink, TunnelError } from "../../lib/tunnel/client.ts";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { clientReady, startNitrosocks } from "../support/nitro_process.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { test, waitFor, withDeadline } from "../support/deadline.ts";
import { Logs, type Pair, run, startConfiguredServer, startPair, text } from "./_harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const enc = new TextEncoder();
const PASSWORD = "correct horse battery staple";

function nitrosocks(args: string[], stdin?: string) {
  return run(Deno.execPath(), ["run", "--quiet", ...PERMISSION_FLAGS, "main.ts", ...args], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    timeoutMs: 60_000,
    ...(stdin === undefined ? {} : { stdin: enc.encode(stdin) }),
  });
}

/**
 * One login with `profile` over TCP to the pair's server: `undefined` when
 * it logged in (the link is closed at once), else the error.
 */
function tryLogin(pair: Pair, profile: ClientConfig): Promise<unknown> {
  return withDeadline(
    connectLink(profile, {
      server: { host: "127.0.0.1", port: pair.serverPort },
      serverName: pair.profile.serverName,
      transport: "tcp",
    }).then((l) => {
      l.link.conn.close();
      return undefined;
    }, (e: unknown) => e),
    10_000,
    `a login as "${profile.user}"`,
  );
}

/** The server's account of each refused login so far (`refusal` events' `detail`). */
function refusals(pair: Pair): string[] {
  return pair.serverEvents.of("refusal", (e) => e.reason === "auth_failed").map((e) => e.detail);
}

test.slow(
  "user add --password reads stdin, stores no password; the client asks on stdin and curl works",
  async () => {
    await using target = await startHttpTarget();
    const dir = await Deno.makeTempDir({ prefix: "nitrosocks-logins-" });
    const hub = new EventHub();
    const events = new EventLog(hub);
    const logs = new Logs();
    let server: Awaited<ReturnType<typeof startConfiguredServer>> | undefined;
    try {
      await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
      const config = await loadServerConfig(join(dir, "server.yml"));
      server = await startConfiguredServer(config, logs.logger("server"), hub);
      const profile = join(dir, "bob.yml");
      const add = await nitrosocks([
        "user",
        "add",
        "bob",
        "--dir",
        dir,
        "--out",
        profile,
        "--server",
        `127.0.0.1:${server.addr.port}`,
        "--routes",
        "127.0.0.1",
        "--password",
        "--iterations",
        "4096",
      ], `${PASSWORD}\n`);
      assert.equal(add.code, 0, add.stderr);
      assert.match(text(add), /the password is not in it/);
      const users = await Deno.readTextFile(config.usersFile);
      const prof = await Deno.readTextFile(profile);
      for (const [name, t] of [["users.yml", users], ["profile", prof], ["output", text(add)]]) {
        assert.ok(!t!.includes(PASSWORD), `the password is not in the ${name}`);
      }
      assert.match(users, /stored_key: /);
      assert.match(users, /server_key: /);
      assert.match(users, /iterations: 4096/);
      assert.doesNotMatch(users.slice(users.indexOf("bob:")), /token: /);
      assert.match(prof, /^password:\n {2}salt: "[\w-]{22}"\n {2}iterations: 4096$/m);
      // The running server picks bob up on reload.
      const { reloadUsers } = await import("../../lib/cli/server_cmd.ts");
      await reloadUsers(server, config.usersFile, logs.logger("server"));

      // The password piped on stdin: the client reads it there.
      const client = startNitrosocks(["client", "--config", profile, "--socks", "127.0.0.1:0"], {
        stdin: `${PASSWORD}\n`,
      });
      try {
        const r = await run("curl", [
          "-sS",
          "--max-time",
          "30",
          "--socks5-hostname",
          await clientReady(client),
          `${target.url}/bytes/1000`,
        ]);
        assert.equal(r.code, 0, `${r.stderr}\n${client.output()}`);
        assert.equal(r.stdout.length, 1000);
        await events.waitFor("login", { match: (e) => e.user === "bob", timeoutMs: 10_000 });
      } finally {
        await client.close();
      }
      assert.ok(!client.output().includes(PASSWORD), "the client never prints the password");
      assert.ok(!logs.lines.some((l) => l.includes(PASSWORD)), "the server never logs it");
    } finally {
      events.close();
      await server?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

test("a wrong password is refused as auth_failed, a right one logs in; neither is logged", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ transport: "tcp", password: { value: PASSWORD } });
  const r = await run("curl", [
    "-sS",
    "--max-time",
    "30",
    "--socks5-hostname",
    `127.0.0.1:${pair.socksPort}`,
    `${target.url}/bytes/5000`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, 5000);
  assert.equal(pair.serverEvents.of("login", (e) => e.user === "alice").length, 1);

  // The same profile with a wrong password typed: refused like any failed login.
  const wrong = {
    ...pair.profile,
    password: { ...pair.profile.password!, value: "correct horse battery stapler" },
  };
  const err = await tryLogin(pair, wrong);
  assert.ok(err instanceof TunnelError, String(err));
  const refused = () => pair.serverEvents.of("refusal", (e) => e.reason === "auth_failed");
  await waitFor("the server's refusal", () => refused().length === 1, 5_000);
  assert.match(refused()[0]!.detail, /wrong password for user "alice"/);
  assert.equal(pair.serverEvents.of("login").length, 1, "only the right password logged in");
  assert.ok(!pair.logs.lines.some((l) => l.includes("correct horse")), "no password is logged");
});

test.slow(
  "user set --password re-derives with the stored salt: the same profile logs in with the new password only",
  async () => {
    await using pair = await startPair({ transport: "tcp", password: { value: PASSWORD } });
    const usersFile = join(pair.dir, "users.yml");
    const pw = async () => (await loadUsers(usersFile)).users.get("alice")!.password!;
    const before = await pw();
    const NEW = "tr0ub4dor & 3, but longer";
    const set = await nitrosocks(
      ["user", "set", "alice", "--dir", pair.dir, "--password"],
      `${NEW}\n`,
    );
    assert.equal(set.code, 0, set.stderr);
    assert.match(text(set), /password \(same salt and iterations: the profile stays valid\)/);
    assert.ok(!text(set).includes(NEW) && !(await Deno.readTextFile(usersFile)).includes(NEW));
    const after = await pw();
    // The salt (read from users.yml) and the count stay; the keys are the new password's.
    assert.deepEqual([after.salt, after.iterations], [before.salt, before.iterations]);
    assert.notDeepEqual(after.storedKey, before.storedKey);
    const expected = await scramVerifier(NEW, before.salt, before.iterations);
    assert.deepEqual([after.storedKey, after.serverKey], [expected.storedKey, expected.serverKey]);
    await pair.reloadUsers();

    // alice's profile file is untouched: with the new password typed it logs in, the old one not.
    const login = (value: string) =>
      tryLogin(pair, { ...pair.profile, password: { ...pair.profile.password!, value } });
    assert.equal(await login(NEW), undefined);
    assert.ok(await login(PASSWORD) instanceof TunnelError, "the old password is refused");
    const refused = () => pair.serverEvents.of("refusal", (e) => e.reason === "auth_failed");
    await waitFor("the server's refusal", () => refused().length === 1, 5_000);
    assert.match(refused()[0]!.detail, /wrong password for user "alice"/);

    // A token user has no salt to keep: refused, saying what to do instead.
    await addUser("tom", { dir: pair.dir, out: join(pair.dir, "tom.yml"), server: "127.0.0.1:1" });
    const token = await nitrosocks(["user", "set", "tom", "--dir", pair.dir, "--password"], "x\n");
    assert.notEqual(token.code, 0);
    assert.match(
      token.stderr,
      /User "tom" does not log in with a password .*user add tom --password/,
    );
  },
);

test("user, key and token: the profile's own log in; another user's name, key or token is refused", async () => {
  await using pair = await startPair({
    transport: "tcp",
    noClient: true,
    extraUsers: [{ name: "bob" }],
  });
  const alice = pair.profile;
  const bob = await loadClientConfig(pair.extraProfiles.get("bob")!);
  assert.notDeepEqual(bob.key, alice.key);
  assert.notEqual(bob.token, alice.token);
  // Each profile logs in as the user it names.
  assert.equal(await tryLogin(pair, alice), undefined);
  assert.equal(await tryLogin(pair, bob), undefined);
  const logins = () => pair.serverEvents.of("login").map((e) => e.user);
  await waitFor("both logins", () => logins().length === 2, 5_000);
  assert.deepEqual(logins().sort(), ["alice", "bob"]);
  // One value changed, one refusal each, for that value's reason.
  const wrong: [ClientConfig, RegExp][] = [
    [{ ...alice, user: "mallory" }, /^unknown user "mallory"/],
    [{ ...alice, key: bob.key }, /^wrong client key for user "alice"/],
    [{ ...alice, token: bob.token! }, /^wrong token for user "alice"/],
  ];
  for (const [i, [profile, why]] of wrong.entries()) {
    assert.ok(await tryLogin(pair, profile) instanceof TunnelError, String(why));
    await waitFor(`refusal ${i + 1}`, () => refusals(pair).length === i + 1, 5_000);
    assert.match(refusals(pair)[i]!, why);
  }
  assert.equal(logins().length, 2, "no other login");
});

test("totp: the profile's TOTP secret logs in; another secret or none is refused", async () => {
  await using pair = await startPair({ transport: "tcp", noClient: true });
  const out = join(pair.dir, "tina.yml");
  await addUser("tina", { dir: pair.dir, out, server: "127.0.0.1:1", totp: true });
  await pair.reloadUsers();
  const tina = await loadClientConfig(out);
  assert.ok(tina.totpSecret !== undefined);
  assert.equal(await tryLogin(pair, tina), undefined);
  await waitFor("tina's login", () => pair.serverEvents.of("login").length === 1, 5_000);
  const other = { ...tina, totpSecret: new Uint8Array(20).fill(9) };
  assert.notEqual(encodeBase32(other.totpSecret), encodeBase32(tina.totpSecret));
  const { totpSecret: _, ...none } = tina;
  const wrong: [ClientConfig, RegExp][] = [
    [other, /^wrong TOTP code for user "tina"/],
    [none, /^missing TOTP code for user "tina"/],
  ];
  for (const [i, [profile, why]] of wrong.entries()) {
    assert.ok(await tryLogin(pair, profile) instanceof TunnelError, String(why));
    await waitFor(`refusal ${i + 1}`, () => refusals(pair).length === i + 1, 5_000);
    assert.match(refusals(pair)[i]!, why);
  }
  assert.equal(pair.serverEvents.of("login").length, 1, "no other login");
});

test("kex and aead: the profile's lists choose the session's key exchange and cipher", async () => {
  await using pair = await startPair({ transport: "tcp", noClient: true });
  const chosen: [string, string][] = [];
  const offers: [ClientConfig["kex"], ClientConfig["aead"]][] = [
    [["x25519"], ["chacha20-poly1305"]],
    [["x25519-mlkem768"], ["aes-128-gcm"]],
    [["x25519", "x25519-mlkem768"], ["aes-128-gcm", "chacha20-poly1305"]],
  ];
  for (const [kex, aead] of offers) {
    assert.equal(await tryLogin(pair, { ...pair.profile, kex, aead }), undefined);
    await waitFor(
      "the login",
      () => pair.serverEvents.of("login").length === chosen.length + 1,
      5_000,
    );
    const login = pair.serverEvents.of("login").at(-1)!;
    chosen.push([login.kex, login.aead]);
  }
  // Only what the client offers; among that, the server's order (handshake.kex and aead).
  assert.deepEqual(chosen, [
    ["x25519", "chacha20-poly1305"],
    ["x25519-mlkem768", "aes-128-gcm"],
    ["x25519-mlkem768", "chacha20-poly1305"],
  ]);
});
