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
import { loadServerConfig } from "../../lib/config/mod.ts";
import { initServerDir } from "../../lib/provision/mod.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { connectLink, TunnelError } from "../../lib/tunnel/client.ts";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { onTimeout, scaledMs, step, test, waitFor, withDeadline } from "../support/deadline.ts";
import { Logs, run, startConfiguredServer, startPair, text } from "./_harness.ts";

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

/** `nitrosocks client` as a process, the password piped on stdin; resolves once it is ready. */
async function startClientProcess(profile: string, password: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...PERMISSION_FLAGS,
      "main.ts",
      "client",
      "--config",
      profile,
      "--socks",
      "127.0.0.1:0",
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  const forget = onTimeout(kill);
  let out = "";
  let err = "";
  const errDone = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (s) => void (err += s) }),
  ).catch(() => {});
  const w = child.stdin.getWriter();
  await w.write(enc.encode(`${password}\n`));
  await w.close();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(kill, scaledMs(30_000));
  let port: number | undefined;
  try {
    await step("nitrosocks client to say it is ready", async () => {
      while (port === undefined) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
        const m = /SOCKS5 proxy ready on [^\s]+:(\d+)/.exec(out);
        if (m !== null) port = Number(m[1]);
      }
    });
  } finally {
    clearTimeout(timer);
  }
  const outDone = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: "", done: true }));
      if (done) break;
      out += value;
    }
  })();
  if (port === undefined) {
    kill();
    await child.status;
    await errDone;
    forget();
    throw new Error(`nitrosocks client did not start:\n${out}\n${err}`);
  }
  return {
    port,
    output: () => out + err,
    async close() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      const t = setTimeout(kill, scaledMs(5_000));
      await child.status;
      clearTimeout(t);
      await Promise.all([errDone, outDone]);
      forget();
    },
  };
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

      const client = await startClientProcess(profile, PASSWORD);
      try {
        const r = await run("curl", [
          "-sS",
          "--max-time",
          "30",
          "--socks5-hostname",
          `127.0.0.1:${client.port}`,
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
  const err = await withDeadline(
    connectLink(wrong, {
      server: { host: "127.0.0.1", port: pair.serverPort },
      serverName: pair.profile.serverName,
      transport: "tcp",
    }).then(() => undefined, (e: unknown) => e),
    10_000,
    "the refused login",
  );
  assert.ok(err instanceof TunnelError, String(err));
  const refused = () => pair.serverEvents.of("refusal", (e) => e.reason === "auth_failed");
  await waitFor("the server's refusal", () => refused().length === 1, 5_000);
  assert.match(refused()[0]!.detail, /wrong password for user "alice"/);
  assert.equal(pair.serverEvents.of("login").length, 1, "only the right password logged in");
  assert.ok(!pair.logs.lines.some((l) => l.includes("correct horse")), "no password is logged");
});
