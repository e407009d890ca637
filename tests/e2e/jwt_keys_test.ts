/**
 * The keys that verify JWT logins, end to end: server.yml's
 * `auth.jwt.secrets`, `auth.jwt.public_keys` and `auth.jwt.audience`, and
 * users.yml's per-user `jwt.public_key`. Each test logs in with a real client
 * over a real TCP server and shows the key's value deciding the login: a
 * token signed with the configured key gets through, the same token with
 * another key (or another audience) is refused as auth_failed, naming why in
 * the server's refusal event.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadClientConfig, loadServerConfig } from "../../lib/config/mod.ts";
import { type JwtSigningKey, signJwt } from "../../lib/crypto/jwt.ts";
import { ed25519PublicKey } from "../../lib/crypto/keys.ts";
import { randomBytes, toBase64Url } from "../../lib/crypto/mod.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { reloadUsers } from "../../lib/cli/server_cmd.ts";
import { startClient } from "../../lib/tunnel/client.ts";
import type { ServerHandle } from "../../lib/tunnel/server.ts";
import { socksConnect } from "../support/socks_client.ts";
import { startEchoServer } from "../support/serve.ts";
import { test, waitFor } from "../support/deadline.ts";
import { Logs, startConfiguredServer } from "./_harness.ts";

const AUDIENCE = "nitro-e2e";

/** The server-wide keys in server.yml, and one key that is nowhere in it. */
const KEYS = {
  serverSecret: randomBytes(32),
  serverSeed: randomBytes(32),
  userSeed: randomBytes(32),
  strangerSecret: randomBytes(32),
};

interface Setup extends AsyncDisposable {
  dir: string;
  server: ServerHandle;
  events: EventLog;
  logs: Logs;
  /** Logs in as `user` with `token`; true when an echo went through the tunnel. */
  login(user: string, token: string): Promise<boolean>;
}

/**
 * A TCP server whose `auth.jwt` holds one HS256 secret, one Ed25519 public
 * key and (when `audience`) an audience; erin verified by those keys only
 * (`user add --jwt`), frank also by his own `jwt.public_key` (`--jwt-key`).
 */
async function setup(audience: boolean): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-jwt-keys-" });
  const hub = new EventHub();
  const events = new EventLog(hub);
  const logs = new Logs();
  let server: ServerHandle | undefined;
  const echo = startEchoServer();
  const close = async () => {
    events.close();
    await server?.close();
    await echo.close();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
    const yml = join(dir, "server.yml");
    const jwt = [
      "  jwt:",
      `    secrets: ["${toBase64Url(KEYS.serverSecret)}"]`,
      `    public_keys: ["${toBase64Url(ed25519PublicKey(KEYS.serverSeed))}"]`,
      ...(audience ? [`    audience: "${AUDIENCE}"`] : []),
      "    leeway: 0s",
    ].join("\n");
    const text0 = await Deno.readTextFile(yml);
    const text1 = text0
      .replace(/^transport: tls$/m, "transport: tcp")
      // Refusals are the point here: no lockout between them.
      .replace(/^ {4}failures: \d+$/m, "    failures: 0")
      .replace(/^ {2}jwt:\n(?: {4}.*\n)+/m, `${jwt}\n`);
    assert.notEqual(text1, text0);
    assert.ok(text1.includes(toBase64Url(KEYS.serverSecret)), "server.yml has auth.jwt.secrets");
    await Deno.writeTextFile(yml, text1);
    const config = await loadServerConfig(yml);
    server = await startConfiguredServer(config, logs.logger("server"), hub);
    const port = server.addr.port;
    for (
      const [name, jwtOpt] of [["erin", {}], ["frank", {
        publicKey: ed25519PublicKey(KEYS.userSeed),
      }]] as const
    ) {
      await addUser(name, {
        dir,
        out: join(dir, `${name}.yml`),
        server: `127.0.0.1:${port}`,
        routes: ["127.0.0.1:*"],
        jwt: jwtOpt,
      });
    }
    await reloadUsers(server, config.usersFile, logs.logger("server"));
    return {
      dir,
      server,
      events,
      logs,
      async login(user, token) {
        await Deno.writeTextFile(join(dir, `${user}.jwt`), `${token}\n`);
        const client = await startClient({
          profile: await loadClientConfig(join(dir, `${user}.yml`)),
          log: logs.logger(`client ${user}`),
          socks: { host: "127.0.0.1", port: 0 },
          lazy: true,
        });
        try {
          const conn = await socksConnect(client.socksAddr.port, "127.0.0.1", echo.port);
          try {
            await conn.write(new TextEncoder().encode("hi"));
            const buf = new Uint8Array(2);
            const n = await conn.read(buf);
            return n === 2 && new TextDecoder().decode(buf) === "hi";
          } finally {
            conn.close();
          }
        } catch {
          return false;
        } finally {
          await client.close();
        }
      },
      [Symbol.asyncDispose]: close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

function sign(key: JwtSigningKey, sub: string, extra: Record<string, unknown> = {}): string {
  return signJwt(key, { sub, exp: Math.floor(Date.now() / 1000) + 3600, ...extra });
}

/** Waits for the server's auth_failed refusal whose detail matches `re`. */
async function refused(s: Setup, re: RegExp): Promise<void> {
  await waitFor(
    `a refusal auth_failed matching ${re}`,
    () => s.events.of("refusal", (e) => e.reason === "auth_failed" && re.test(e.detail)).length > 0,
    10_000,
  );
}

test("auth.jwt.secrets: an HS256 token signed with the server's secret logs in; another secret does not", async () => {
  await using s = await setup(false);
  assert.equal(
    await s.login("erin", sign({ alg: "HS256", secret: KEYS.serverSecret }, "erin")),
    true,
  );
  assert.equal(
    await s.login("erin", sign({ alg: "HS256", secret: KEYS.strangerSecret }, "erin")),
    false,
  );
  await refused(s, /HS256 signature does not verify/);
});

test("auth.jwt.public_keys: an EdDSA token signed by the server-wide key logs in any JWT user", async () => {
  await using s = await setup(false);
  const key: JwtSigningKey = { alg: "EdDSA", seed: KEYS.serverSeed };
  assert.equal(await s.login("erin", sign(key, "erin")), true);
  assert.equal(await s.login("frank", sign(key, "frank")), true);
  // A key that is in neither server.yml nor users.yml.
  assert.equal(await s.login("erin", sign({ alg: "EdDSA", seed: randomBytes(32) }, "erin")), false);
  await refused(s, /EdDSA signature does not verify/);
});

test("users.*.jwt.public_key: a user's own Ed25519 key logs in that user only", async () => {
  await using s = await setup(false);
  const key: JwtSigningKey = { alg: "EdDSA", seed: KEYS.userSeed };
  assert.equal(await s.login("frank", sign(key, "frank")), true);
  // erin has no such key: the same signer cannot log her in.
  assert.equal(await s.login("erin", sign(key, "erin")), false);
  await refused(s, /EdDSA signature does not verify/);
});

test("auth.jwt.audience: a token whose aud lacks the server's audience is refused; one with it logs in", async () => {
  await using s = await setup(true);
  const key: JwtSigningKey = { alg: "HS256", secret: KEYS.serverSecret };
  assert.equal(await s.login("erin", sign(key, "erin", { aud: "another-server" })), false);
  await refused(s, /aud does not include the server's audience/);
  assert.equal(await s.login("erin", sign(key, "erin")), false);
  assert.equal(await s.login("erin", sign(key, "erin", { aud: ["x", AUDIENCE] })), true);
  assert.equal(await s.login("erin", sign(key, "erin", { aud: AUDIENCE })), true);
});
