/**
 * Accounting and operations end to end, over real sockets and real tools:
 * counters after a real curl download, `/metrics` checked by the real
 * `promtool check metrics`, the state file across a restart (in-process and
 * `deno run main.ts server` stopped by SIGINT), `/status` and kick ending a
 * live download within 1 s, the `status` and `kick` commands as
 * subprocesses, and the audit log lines.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadServerConfig, updateUserInYaml } from "../../lib/config/mod.ts";
import { fetchStatus, kickUser } from "../../lib/admin/mod.ts";
import { toBase64Url } from "../../lib/crypto/mod.ts";
import { startClient } from "../../lib/tunnel/client.ts";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { promtoolCheck } from "../support/promtool.ts";
import {
  freePort,
  run,
  type RunResult,
  startConfiguredServer,
  startEchoServer,
  startPair,
  text,
} from "./_harness.ts";
import { socksConnect } from "../support/socks_client.ts";
import { test, waitFor } from "../support/deadline.ts";

const MiB = 1024 * 1024;
const ROOT = new URL("../..", import.meta.url).pathname;
const ADMIN_AUTO = 'admin:\n  listen: "127.0.0.1:0"';
const TOKEN = "e2e-admin-token-0123456789";

function curlArgs(socksPort: number, ...more: string[]): string[] {
  return ["-sS", "--max-time", "60", "--socks5-hostname", `127.0.0.1:${socksPort}`, ...more];
}

/** The value of one sample line of the exposition text, or undefined. */
function sample(metrics: string, series: string): number | undefined {
  for (const line of metrics.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function getText(url: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  assert.equal(r.status, 200);
  return await r.text();
}

function nitrosocks(args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return run(Deno.execPath(), ["run", "--quiet", ...PERMISSION_FLAGS, "main.ts", ...args], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    timeoutMs,
  });
}

/**
 * A curl download that still runs when the test acts on it: 1 GiB at full
 * speed (curl reads at once, so nothing waits in its socket when the
 * tunnel ends), or rate-limited (`slow`) for steps that take seconds.
 */
function download(
  socksPort: number,
  url: string,
  slow = false,
): Promise<RunResult & { endedAt: number }> {
  const limit = slow ? ["--limit-rate", "2M"] : [];
  return run("curl", curlArgs(socksPort, ...limit, "-o", "/dev/null", url), {
    timeoutMs: 90_000,
  }).then((r) => ({ ...r, endedAt: performance.now() }));
}

test("a curl download is counted for its user; /metrics passes promtool check metrics", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ serverYaml: ADMIN_AUTO });
  const n = 8 * MiB;
  const r = await run(
    "curl",
    curlArgs(pair.socksPort, "-o", "/dev/null", `${target.url}/bytes/${n}`),
    {
      timeoutMs: 90_000,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const admin = pair.server.adminAddr;
  assert.ok(admin !== undefined, "admin.listen is set: the admin listener serves");
  const metrics = await getText(`http://127.0.0.1:${admin.port}/metrics`);
  const out = sample(metrics, 'nitrosocks_user_bytes_total{user="alice",direction="out"}');
  const inn = sample(metrics, 'nitrosocks_user_bytes_total{user="alice",direction="in"}');
  assert.ok(out !== undefined && out >= n, `alice's bytes out: ${out}`);
  assert.ok(out < n * 1.1, `tunnel overhead stays small: ${out}`);
  assert.ok(inn !== undefined && inn > 0 && inn < n / 10, `alice's bytes in: ${inn}`);
  assert.equal(sample(metrics, 'nitrosocks_user_streams_total{user="alice",result="opened"}'), 1);
  assert.equal(sample(metrics, 'nitrosocks_user_logins_total{user="alice",result="ok"}'), 1);
  assert.equal(sample(metrics, 'nitrosocks_sessions_live{user="alice"}'), 1);
  assert.equal(sample(metrics, 'nitrosocks_bytes_total{direction="out"}'), out);
  assert.equal(sample(metrics, "nitrosocks_users"), 1);
  assert.ok((sample(metrics, "nitrosocks_uptime_seconds") ?? -1) >= 0);
  const alice = pair.server.accountant.user("alice");
  assert.equal(alice?.streamsOpened, 1);
  assert.equal(alice?.bytesOut, out);

  const check = await promtoolCheck(metrics);
  if (check === undefined) {
    console.warn(
      "SKIPPED promtool check metrics: promtool is not installed (Debian package prometheus)",
    );
    return;
  }
  assert.equal(check.code, 0, `promtool check metrics:\n${check.output}\n${metrics}`);
  assert.equal(check.output.trim(), "", "promtool found nothing to lint");
});

test("counters survive a restart: the state file is written at shutdown and counting continues", async () => {
  await using target = await startHttpTarget();
  // A flush interval of an hour: only the write at shutdown can carry the counters.
  await using pair = await startPair({ serverYaml: "accounting:\n  flush_interval: 1h" });
  const n = 4 * MiB;
  const url = `${target.url}/bytes/${n}`;
  const first = await run("curl", curlArgs(pair.socksPort, "-o", "/dev/null", url));
  assert.equal(first.code, 0, first.stderr);
  await pair.client!.close();
  await pair.server.close();
  const stateFile = join(pair.dir, "state.json");
  const saved = JSON.parse(await Deno.readTextFile(stateFile));
  const before = saved.users.alice;
  assert.equal(before.loginsOk, 1);
  assert.equal(before.streamsOpened, 1);
  assert.ok(before.bytesOut >= n, `state file: ${JSON.stringify(before)}`);
  assert.equal(before.sessionsLive, 0, "the session ended with the server");

  const log = pair.logs.logger("server2");
  const server = await startConfiguredServer(
    await loadServerConfig(join(pair.dir, "server.yml")),
    log,
  );
  const loggedIn = server.events.next("login", { timeoutMs: 20_000 });
  const client = await startClient({
    profile: pair.profile,
    log: pair.logs.logger("client2"),
    server: { host: "127.0.0.1", port: server.addr.port },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: false,
  });
  try {
    await loggedIn;
    const loaded = server.accountant.user("alice");
    assert.equal(loaded?.bytesOut, before.bytesOut, "loaded from the state file");
    assert.equal(loaded?.loginsOk, 2, "the new client's login counts on top");
    const again = await run("curl", curlArgs(client.socksAddr.port, "-o", "/dev/null", url));
    assert.equal(again.code, 0, again.stderr);
  } finally {
    await client.close();
    await server.close();
  }
  const after = JSON.parse(await Deno.readTextFile(stateFile)).users.alice;
  assert.equal(after.loginsOk, 2);
  assert.equal(after.streamsOpened, 2);
  assert.ok(after.bytesOut >= before.bytesOut + n, `${after.bytesOut} after ${before.bytesOut}`);
  const leftovers = [...Deno.readDirSync(pair.dir)].filter((e) => e.name.endsWith(".tmp"));
  assert.deepEqual(leftovers, [], "no temporary file is left");
});

/** alice's `streamsOpened` in the pair's state file as it is on disk now (0 when absent). */
async function streamsOnDisk(dir: string): Promise<number> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, "state.json"));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  return JSON.parse(text).users?.alice?.streamsOpened ?? 0;
}

/** One echoed byte through the pair's client: alice's stream, counted by the accountant. */
async function oneStream(socksPort: number, echoPort: number): Promise<void> {
  const conn = await socksConnect(socksPort, "127.0.0.1", echoPort);
  try {
    await conn.write(new Uint8Array([7]));
    assert.equal(await conn.read(new Uint8Array(1)), 1);
  } finally {
    conn.close();
  }
}

test("accounting.flush_interval: 200ms puts a live stream in the state file while the server runs; 1h does not", async () => {
  await using echo = startEchoServer();
  {
    await using pair = await startPair({ serverYaml: "accounting:\n  flush_interval: 200ms" });
    await oneStream(pair.socksPort, echo.port);
    await waitFor(
      "alice's stream in state.json",
      async () => await streamsOnDisk(pair.dir) === 1,
      3_000,
    );
  }
  {
    await using pair = await startPair({ serverYaml: "accounting:\n  flush_interval: 1h" });
    await oneStream(pair.socksPort, echo.port);
    await waitFor(
      "alice's stream counted",
      () => pair.server.accountant.user("alice")?.streamsOpened === 1,
      10_000,
    );
    // Longer than the default interval (5 s): only the configured hour keeps the file as it was.
    await new Promise((r) => setTimeout(r, 6_000));
    assert.equal(await streamsOnDisk(pair.dir), 0, "no write before the hour is up");
    await pair.client!.close();
    await pair.server.close();
    assert.equal(await streamsOnDisk(pair.dir), 1, "the write at shutdown");
  }
});

test("/status shows the live session; kick ends a live download within 1 s", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ serverYaml: ADMIN_AUTO });
  const events = pair.server.events;
  const opened = events.next("stream_open", { timeoutMs: 20_000 });
  const live = download(pair.socksPort, `${target.url}/bytes/${1024 * MiB}`);
  await opened;
  await new Promise((r) => setTimeout(r, 300));
  const adminTarget = { listen: { host: "127.0.0.1", port: pair.server.adminAddr!.port } };
  const report = await fetchStatus(adminTarget);
  assert.equal(report.sessions.length, 1, JSON.stringify(report));
  const s = report.sessions[0]!;
  assert.equal(s.user, "alice");
  assert.equal(s.source, "127.0.0.1");
  assert.equal(s.via, "127.0.0.1");
  assert.equal(s.connected, true);
  assert.equal(s.streams, 1);
  assert.ok(s.bytesOut > 100_000, `bytes out so far: ${s.bytesOut}`);
  assert.ok(Date.now() - Date.parse(s.since) < 60_000, s.since);
  assert.ok(s.rttMs === null || s.rttMs >= 0);

  const kicked = events.next("kick", { timeoutMs: 5_000 });
  const ended = events.next("session_end", { timeoutMs: 5_000 });
  const t0 = performance.now();
  assert.deepEqual(await kickUser(adminTarget, "alice"), { user: "alice", sessions: 1 });
  const endedMs = performance.now() - t0;
  const r = await live;
  const ms = r.endedAt - t0;
  assert.notEqual(r.code, 0, "curl saw its download cut");
  assert.ok(ms < 1000, `the download ended ${ms.toFixed(0)} ms after the kick`);
  const k = await kicked;
  assert.deepEqual([k.user, k.sessions, k.by], ["alice", 1, "admin 127.0.0.1"]);
  assert.equal((await ended).reason, "kicked by the operator");
  assert.equal(pair.server.sessions.size, 0, "no session of alice's is left");
  assert.equal(pair.server.accountant.user("alice")?.kicks, 1);
  assert.equal(
    pair.logs.grep(/user "alice" kicked by admin 127\.0\.0\.1: 1 session ended$/).length,
    1,
  );
  console.log(
    `kick → session ended: ${endedMs.toFixed(0)} ms; → curl exit: ${
      ms.toFixed(0)
    } ms (curl exit code ${r.code})`,
  );
});

test("nitrosocks status and kick (subprocesses) against a running server with a token", async () => {
  await using target = await startHttpTarget();
  const port = freePort();
  await using pair = await startPair({
    serverYaml: `admin:\n  listen: "127.0.0.1:${port}"\n  token: ${TOKEN}`,
  });
  const opened = pair.server.events.next("stream_open", { timeoutMs: 20_000 });
  const live = download(pair.socksPort, `${target.url}/bytes/${64 * MiB}`, true);
  await opened;

  const st = await nitrosocks(["status", "--dir", pair.dir]);
  assert.equal(st.code, 0, st.stderr);
  const out = text(st);
  assert.match(out, /^SESSION +USER +SOURCE +SINCE +IN +OUT +STREAMS +RTT +PATH$/m);
  assert.match(
    out,
    /^1 +alice +127\.0\.0\.1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(\d+s\) .* 1 \(1 total\) .* via 127\.0\.0\.1$/m,
  );
  assert.match(out, /^1 live session \(server up \d+s, 1 user\)\.$/m);
  const js = await nitrosocks(["status", "--dir", pair.dir, "--json"]);
  assert.equal(js.code, 0, js.stderr);
  assert.equal(JSON.parse(text(js)).sessions[0].user, "alice");

  const kick = await nitrosocks(["kick", "alice", "--dir", pair.dir]);
  assert.equal(kick.code, 0, kick.stderr);
  assert.equal(text(kick).trim(), 'Ended 1 session of user "alice".');
  const r = await live;
  assert.notEqual(r.code, 0, "the download was cut");

  // Clear errors: a wrong token, no admin.listen, a bad name.
  const other = await Deno.makeTempDir({ prefix: "nitrosocks-admin-cli-" });
  try {
    const yml = await Deno.readTextFile(join(pair.dir, "server.yml"));
    for (const f of ["keys/server.key", "tls/server.crt", "tls/server.key"]) {
      await Deno.mkdir(join(other, f, ".."), { recursive: true });
      await Deno.copyFile(join(pair.dir, f), join(other, f));
    }
    await Deno.writeTextFile(join(other, "server.yml"), yml.replace(TOKEN, `${TOKEN}-stale`));
    const wrong = await nitrosocks(["status", "--dir", other]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the request \(401\): admin\.token does not match/);
    await Deno.writeTextFile(join(other, "server.yml"), yml.replace(/\nadmin:[\s\S]*$/, "\n"));
    const unset = await nitrosocks(["kick", "alice", "--dir", other]);
    assert.equal(unset.code, 1);
    assert.equal(
      unset.stderr.trim(),
      `nitrosocks kick: admin.listen is not set in ${
        join(other, "server.yml")
      }: add \`admin: { listen: 127.0.0.1:9090 }\` and restart the server`,
    );
    const bad = await nitrosocks(["kick", "no/such", "--dir", other]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid user name "no\/such"/);
  } finally {
    await Deno.remove(other, { recursive: true });
  }
  assert.ok(!pair.logs.lines.some((l) => l.includes(TOKEN)), "the admin token is never logged");
});

test("deno run main.ts server writes the final counters when stopped by SIGINT", async () => {
  const port = freePort();
  await using pair = await startPair({
    noClient: true,
    serverYaml: `admin:\n  listen: "127.0.0.1:${port}"\naccounting:\n  flush_interval: 1h`,
  });
  await pair.server.close();
  const stateFile = join(pair.dir, "state.json");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...PERMISSION_FLAGS,
      "main.ts",
      "server",
      "--config",
      join(pair.dir, "server.yml"),
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    const adminTarget = { listen: { host: "127.0.0.1", port } };
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await fetchStatus(adminTarget, { timeoutMs: 2_000 });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const kick = await nitrosocks(["kick", "alice", "--dir", pair.dir]);
    assert.equal(kick.code, 0, kick.stderr);
    assert.equal(text(kick).trim(), 'User "alice" has no live session: nothing to end.');
    child.kill("SIGINT");
    const out = await output;
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.match(stderr, /user "alice" kicked by admin 127\.0\.0\.1: 0 sessions ended/);
    const saved = JSON.parse(await Deno.readTextFile(stateFile));
    assert.equal(saved.server.kicks, 1, "written at shutdown");
    assert.equal(saved.users.alice.kicks, 1);
  } finally {
    clearTimeout(killer);
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await output.catch(() => {});
  }
});

test("audit lines: one each for a login, a failed login, a probe refusal, a limit hit and a kick, no secrets", async () => {
  await using echo = startEchoServer();
  await using pair = await startPair({ serverYaml: ADMIN_AUTO, fastOpen: false });
  const users = join(pair.dir, "users.yml");
  await Deno.writeTextFile(
    users,
    updateUserInYaml(await Deno.readTextFile(users), users, "alice", { maxStreams: 1 }),
  );
  await pair.reloadUsers();
  await pair.client!.tunnel();
  // A login with the wrong token: the same client key, another second factor.
  const wrongToken = new Uint8Array(32).fill(7);
  const wrong = await startClient({
    profile: { ...pair.profile, token: wrongToken },
    log: pair.logs.logger("wrong"),
    server: { host: "127.0.0.1", port: pair.serverPort },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: true,
  });
  try {
    await assert.rejects(wrong.tunnel());
  } finally {
    await wrong.close();
  }
  // A browser-like probe of the tunnel port is refused and handed to the fallback site.
  const refused = pair.server.events.next("refusal", {
    match: (e) => e.reason === "probe",
    timeoutMs: 20_000,
  });
  const probe = await run("curl", [
    "-sk",
    "--max-time",
    "10",
    "-o",
    "/dev/null",
    `https://127.0.0.1:${pair.serverPort}/`,
  ]);
  assert.equal(probe.code, 0, probe.stderr);
  await refused;
  // A real limit hit: alice's one stream is open, a second is refused.
  const held = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
  try {
    const second = await socksConnect(pair.socksPort, "127.0.0.1", echo.port).then(
      (c) => (c.close(), "connected"),
      () => "refused",
    );
    assert.equal(second, "refused");
  } finally {
    held.close();
  }
  await pair.server.kick("alice", "the test");
  const one = (re: RegExp) =>
    assert.equal(pair.logs.grep(re).length, 1, `${re}\n${pair.logs.lines.join("\n")}`);
  one(/\[server conn \d+\] user "alice" connected from 127\.0\.0\.1 \(/);
  one(/\[server conn \d+\] authentication failed from 127\.0\.0\.1: wrong token for user "alice"$/);
  one(/\[server conn \d+\] probe from 127\.0\.0\.1: .*; handing to fallback$/);
  one(
    /\[server conn \d+ alice\] limit max_streams: too many streams for this user \(max 1 over all tunnels\)$/,
  );
  one(/\[server\] user "alice" kicked by the test: 1 session ended$/);
  assert.equal(pair.server.accountant.server().limits.get("max_streams"), 1);
  assert.equal(pair.server.accountant.server().refusals.get("probe"), 1);
  for (const secret of [toBase64Url(pair.profile.token!), toBase64Url(wrongToken)]) {
    assert.ok(!pair.logs.lines.some((l) => l.includes(secret)), "no token is ever logged");
  }
});
