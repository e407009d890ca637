/**
 * Peers on different crypto backends interoperate over real TLS on
 * loopback: the server runs as `main.ts server` in a child process under
 * the shipped permission flags with `crypto.backend` set in its server.yml
 * (and says which backend it uses at start-up), the client runs here on the
 * other backend. And `crypto.backend: openssl` without `--allow-ffi` stops
 * the server with a message saying to grant it; `crypto.library` names the
 * libcrypto file the server loads, and a missing one stops it, named.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { parseClientConfig } from "../../lib/config/mod.ts";
import { loadCryptoBackend } from "../../lib/openssl/mod.ts";
import {
  type CryptoBackend,
  cryptoBackend,
  type CryptoBackendName,
  setCryptoBackend,
} from "../../lib/record/mod.ts";
import { startClient } from "../../lib/tunnel/client.ts";
import { readExact, socksConnect } from "../support/socks_client.ts";
import { freePort, Logs, LOOPBACK_ROUTES, run, startEchoServer } from "./_harness.ts";
import { onTimeout, step, test, withDeadline } from "../support/deadline.ts";
import { startNitrosocks } from "../support/nitro_process.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
// Loaded before any test, as the CLI does at start-up: a library stays loaded for the process.
const BACKENDS: Record<CryptoBackendName, CryptoBackend> = {
  openssl: loadCryptoBackend("openssl"),
  webcrypto: loadCryptoBackend("webcrypto"),
};

/** A server directory (TLS, a free loopback port, user alice) whose server.yml says `backend`. */
async function serverDir(backend: CryptoBackendName): Promise<{ dir: string; profile: string }> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-crypto-" });
  await initServerDir(dir, { listen: `127.0.0.1:${freePort()}`, name: "localhost" });
  const yml = join(dir, "server.yml");
  const text = await Deno.readTextFile(yml);
  assert.match(text, /^ {2}backend: auto$/m);
  await Deno.writeTextFile(yml, text.replace(/^ {2}backend: auto$/m, `  backend: ${backend}`));
  const profile = join(dir, "alice.yml");
  await addUser("alice", { dir, out: profile, routes: [...LOOPBACK_ROUTES] });
  return { dir, profile };
}

/** `main.ts server` in a child process; resolves once it listens. */
async function startServerProcess(
  dir: string,
): Promise<{ log: () => string; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...PERMISSION_FLAGS,
      "main.ts",
      "server",
      "--config",
      join(dir, "server.yml"),
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  let listening: () => void = () => {};
  const up = new Promise<void>((r) => (listening = r));
  // Drains stderr for the child's whole life, so its pipe never fills.
  const drained = (async () => {
    for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += s;
      if (/listening on tls:\/\//.test(text)) listening();
    }
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, 10_000);
    await step("the server process to exit", child.status);
    clearTimeout(killer);
    await drained;
  };
  // A test that fails or runs out of time does not leave the process behind.
  const forget = onTimeout(() => child.kill("SIGKILL"));
  try {
    await withDeadline(
      Promise.race([
        up,
        child.status.then(() => {
          throw new Error(`server exited:\n${text}`);
        }),
      ]),
      60_000,
      "the server process to log its listening line",
    );
  } catch (e) {
    await stop();
    forget();
    throw e;
  }
  return {
    log: () => text,
    stop: async () => {
      await stop();
      forget();
    },
  };
}

/** Sends `n` bytes through the client's SOCKS5 port to the echo server and checks them. */
async function echoThrough(socksPort: number, echoPort: number, n: number): Promise<void> {
  const conn = await withDeadline(
    socksConnect(socksPort, "127.0.0.1", echoPort),
    30_000,
    "the SOCKS5 CONNECT reply",
  );
  try {
    const sent = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(sent.subarray(i, i + 65536));
    const [, got] = await withDeadline(
      Promise.all([
        (async () => {
          for (let o = 0; o < n;) o += await conn.write(sent.subarray(o, o + 65536));
        })(),
        readExact(conn, n),
      ]),
      30_000,
      `${n} bytes echoed through the tunnel`,
    );
    assert.ok(got.length === n && got.every((b, i) => b === sent[i]), "echo differs");
  } finally {
    conn.close();
  }
}

const PAIRS: [CryptoBackendName, CryptoBackendName][] = [["webcrypto", "openssl"], [
  "openssl",
  "webcrypto",
]];

for (const [serverBackend, clientBackend] of PAIRS) {
  test.slow(`a client on ${clientBackend} and a server process on ${serverBackend} carry data both ways over TLS`, async () => {
    await using echo = startEchoServer();
    const { dir, profile } = await serverDir(serverBackend);
    const before = cryptoBackend();
    const server = await startServerProcess(dir).catch(async (e) => {
      await Deno.remove(dir, { recursive: true });
      throw e;
    });
    try {
      assert.match(
        server.log(),
        new RegExp(`info  \\[server\\] crypto backend: ${serverBackend} \\(`),
      );
      assert.equal(setCryptoBackend(BACKENDS[clientBackend]).name, clientBackend);
      const text = await Deno.readTextFile(profile);
      for (const aead of ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"]) {
        const logs = new Logs();
        const config = parseClientConfig(
          `${
            text.replace(/^socks5:\n {2}listen: .*$/m, 'socks5:\n  listen: "127.0.0.1:0"')
          }\naead: [${aead}]\n`,
          profile,
        );
        const client = await startClient({ profile: config, log: logs.logger("client") });
        try {
          const session = await withDeadline(client.tunnel(), 30_000, `the tunnel (${aead})`);
          await echoThrough(client.socksAddr.port, echo.port, 3 << 20);
          assert.ok(session.stats.recordsIn > 10 && session.stats.recordsOut > 10);
        } finally {
          await client.close();
        }
        assert.match(
          server.log(),
          new RegExp(`user "alice" connected from 127\\.0\\.0\\.1 \\(\\S+, ${aead}\\)`),
        );
      }
    } finally {
      setCryptoBackend(before);
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
    assert.doesNotMatch(server.log(), /error|DECRYPT_FAILED|authentication failed/i);
  });
}

test("main.ts server with crypto.backend: openssl and no --allow-ffi exits 1 saying to grant it", async () => {
  const { dir } = await serverDir("openssl");
  try {
    const flags = PERMISSION_FLAGS.filter((f) => !f.startsWith("--allow-ffi"));
    assert.equal(flags.length, PERMISSION_FLAGS.length - 1);
    const r = await run(
      Deno.execPath(),
      ["run", "--quiet", ...flags, "main.ts", "server", "--config", join(dir, "server.yml")],
      { cwd: ROOT, env: { NO_COLOR: "1" }, timeoutMs: 60_000 },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^nitrosocks server: Cannot use crypto backend openssl: --allow-ffi is not granted/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Where the dynamic linker finds OpenSSL 3's libcrypto (`ldconfig -p`). */
async function systemLibcrypto(): Promise<string> {
  const r = await run("ldconfig", ["-p"], { timeoutMs: 10_000 });
  const path = new TextDecoder().decode(r.stdout).match(/^\s*libcrypto\.so\.3 \(.*\) => (\S+)$/m)
    ?.[1];
  if (r.code !== 0 || path === undefined) {
    throw new Error(`ldconfig -p names no libcrypto.so.3: ${r.stderr}`);
  }
  return path;
}

test("main.ts client: the profile's crypto.backend and crypto.library choose its record crypto; a library that cannot load stops it", async () => {
  const { dir, profile } = await serverDir("webcrypto");
  try {
    // A copy of the system's libcrypto under a name no default would find.
    const copy = join(dir, "nitro-test-libcrypto.so.3");
    await Deno.copyFile(await systemLibcrypto(), copy);
    const text = (await Deno.readTextFile(profile)).replace(
      /^socks5:\n {2}listen: .*$/m,
      'socks5:\n  listen: "127.0.0.1:0"',
    );
    const withCrypto = async (section: string) => {
      const path = join(dir, `alice-${crypto.randomUUID()}.yml`);
      await Deno.writeTextFile(path, `${text.trimEnd()}\n\ncrypto:\n${section}\n`, { mode: 0o600 });
      return startNitrosocks(["client", "--config", path]);
    };
    const said = async (section: string) => {
      await using client = await withCrypto(section);
      const m = await client.waitForOutput(/crypto backend: (.*)/, "the client's crypto backend");
      return m[1]!;
    };
    assert.match(await said("  backend: webcrypto"), /^webcrypto\b/);
    assert.match(await said("  backend: openssl"), /^openssl \(/);
    assert.match(
      await said(`  backend: openssl\n  library: ${JSON.stringify(copy)}`),
      new RegExp(`^openssl \\(${copy.replace(/[.]/g, "\\.")}, OpenSSL 3`),
    );
    // A library that is not there: the client does not start, and says which and why.
    const missing = join(dir, "no-such-libcrypto.so.3");
    await using bad = await withCrypto(`  backend: openssl\n  library: ${JSON.stringify(missing)}`);
    assert.equal((await step("the client to refuse the library", bad.status)).code, 1);
    assert.match(
      bad.output(),
      new RegExp(
        `Cannot use crypto backend openssl: cannot use "${
          missing.replace(/[.]/g, "\\.")
        }" .*: check crypto\\.library`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("main.ts server with crypto.library: a copy of libcrypto at another path is the one it loads; a missing file stops it, named", async () => {
  const { dir } = await serverDir("openssl");
  try {
    const yml = join(dir, "server.yml");
    const text = await Deno.readTextFile(yml);
    const withLibrary = (path: string) =>
      Deno.writeTextFile(
        yml,
        text.replace(
          /^ {2}backend: openssl$/m,
          `  backend: openssl\n  library: ${JSON.stringify(path)}`,
        ),
      );
    // A copy of the system's libcrypto under a name no default would find.
    const copy = join(dir, "libcrypto-copy.so.3");
    await Deno.copyFile(await systemLibcrypto(), copy);
    await withLibrary(copy);
    const server = await startServerProcess(dir);
    await server.stop();
    assert.match(
      server.log(),
      new RegExp(`crypto backend: openssl \\(${copy.replace(/[.]/g, "\\.")}, OpenSSL 3`),
    );

    const missing = join(dir, "no-such-libcrypto.so.3");
    await withLibrary(missing);
    const r = await run(
      Deno.execPath(),
      ["run", "--quiet", ...PERMISSION_FLAGS, "main.ts", "server", "--config", yml],
      { cwd: ROOT, env: { NO_COLOR: "1" }, timeoutMs: 60_000 },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^nitrosocks server: Cannot use crypto backend openssl: /m);
    assert.ok(r.stderr.includes(missing), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
