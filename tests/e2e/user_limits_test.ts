/**
 * Per-user limits on a live server, over real sockets with real curl:
 * a disabled, an expired, a removed and an over-quota user each lose a
 * running download within 1 s (NOTICE, then release); `max_streams` over
 * all of a user's tunnels and `max_tunnels` refuse with a reason the client
 * logs; `bandwidth` holds a curl download and upload within ±10 %.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { removeUserFromYaml, updateUserInYaml, type UserChanges } from "../../lib/config/mod.ts";
import { loadClientConfig, loadServerConfig } from "../../lib/config/mod.ts";
import { connectLink, startClient } from "../../lib/tunnel/client.ts";
import { watchUsers } from "../../lib/cli/server_cmd.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { ReleaseReason } from "../../lib/session/mod.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { type Pair, run, type RunResult, startConfiguredServer, startPair } from "./_harness.ts";
import { step, test, waitFor } from "../support/deadline.ts";

const MiB = 1024 * 1024;

function curlArgs(socksPort: number, ...more: string[]): string[] {
  return ["-sS", "--max-time", "90", "--socks5-hostname", `127.0.0.1:${socksPort}`, ...more];
}

/** A curl download through the pair's client, with the time it ended. */
function download(
  socksPort: number,
  url: string,
  more: string[] = [],
): Promise<RunResult & { endedAt: number }> {
  return run("curl", curlArgs(socksPort, ...more, "-o", "/dev/null", url), { timeoutMs: 120_000 })
    .then((r) => ({ ...r, endedAt: performance.now() }));
}

/** Edits a user in the pair's users.yml (comments kept). */
async function editUser(pair: Pair, name: string, changes: UserChanges): Promise<void> {
  const file = join(pair.dir, "users.yml");
  const text = await Deno.readTextFile(file);
  await Deno.writeTextFile(file, updateUserInYaml(text, file, name, changes));
}

/**
 * Starts a large download, waits until bytes flow, runs `act`, and returns
 * how long after `act` the download (and the session) ended.
 */
async function cutDuringDownload(
  pair: Pair,
  act: () => Promise<void>,
): Promise<
  { curl: RunResult; curlMs: number; sessionMs: number; clientMs: number; reason: string }
> {
  await using target = await startHttpTarget();
  const opened = pair.serverEvents.waitFor("stream_open", { timeoutMs: 20_000 });
  const live = download(pair.socksPort, `${target.url}/bytes/${1024 * MiB}`, [
    "--limit-rate",
    "20M",
  ]);
  await opened;
  await new Promise((r) => setTimeout(r, 300));
  const ended = pair.serverEvents.waitFor("session_end", { timeoutMs: 10_000 });
  const clientEnded = pair.clientEvents.waitFor("session_end", { timeoutMs: 10_000 });
  const t0 = Date.now();
  const p0 = performance.now();
  await act();
  const [end] = await ended;
  const [clientEnd] = await clientEnded;
  const curl = await step("curl to end", live);
  return {
    curl,
    curlMs: curl.endedAt - p0,
    sessionMs: end!.time - t0,
    clientMs: clientEnd!.time - t0,
    reason: end!.reason,
  };
}

/**
 * The user's tunnel ends within 1 s on both sides (server and client
 * `session_end`, whose closing of the local sockets is what curl sees); curl
 * itself must have exited within 2 s (process exit under a loaded machine).
 */
function assertEndedInTime(
  what: string,
  r: { sessionMs: number; clientMs: number; curlMs: number },
): void {
  console.log(
    `${what}: server session ended ${r.sessionMs} ms, client ${r.clientMs} ms, curl exited ${
      r.curlMs.toFixed(0)
    } ms after`,
  );
  assert.ok(r.sessionMs < 1000, `${what}: the server's session ended after ${r.sessionMs} ms`);
  assert.ok(r.clientMs < 1000, `${what}: the client's session ended after ${r.clientMs} ms`);
  assert.ok(r.curlMs < 2000, `${what}: curl exited after ${r.curlMs.toFixed(0)} ms`);
}

/** A user made inactive during a live download: how it is done and what the server says. */
interface Revocation {
  name: string;
  act: (p: Pair) => Promise<void>;
  reason: RegExp;
  limit: string;
}

/** Runs `c.act` during a download; the session ends within 1 s with NOTICE REVOKED. */
async function revokedDuringDownload(c: Revocation): Promise<void> {
  await using pair = await startPair();
  const notice = pair.clientEvents.waitFor("release", { timeoutMs: 10_000 });
  const r = await cutDuringDownload(pair, () => c.act(pair));
  assert.notEqual(r.curl.code, 0, "curl saw its download cut");
  assert.match(r.reason, c.reason);
  assertEndedInTime(c.name, r);
  const [n] = await notice;
  assert.equal(n!.notice, ReleaseReason.REVOKED);
  assert.equal(n!.by, "peer");
  const [l] = pair.serverEvents.of("limit");
  assert.equal(l?.limit, c.limit);
  assert.equal(pair.server.sessions.size, 0);
}

test("a disabled user's live download ends within 1 s (NOTICE REVOKED)", () =>
  revokedDuringDownload({
    name: "disabled",
    act: (p) => editUser(p, "alice", { disabled: true }).then(() => p.reloadUsers()),
    reason: /is disabled/,
    limit: "disabled",
  }));

test("a removed user's live download ends within 1 s (NOTICE REVOKED)", () =>
  revokedDuringDownload({
    name: "removed",
    act: async (p) => {
      const file = join(p.dir, "users.yml");
      await Deno.writeTextFile(
        file,
        removeUserFromYaml(await Deno.readTextFile(file), file, "alice"),
      );
      await p.reloadUsers();
    },
    reason: /removed/,
    limit: "removed",
  }));

test("an expiring user's live download ends within 1 s of `expires`, by the timer", async () => {
  await using pair = await startPair();
  await using target = await startHttpTarget();
  const expires = new Date(Date.now() + 3_000);
  await editUser(pair, "alice", { expires });
  await pair.reloadUsers();
  const ended = pair.serverEvents.waitFor("session_end", { timeoutMs: 15_000 });
  const clientEnded = pair.clientEvents.waitFor("session_end", { timeoutMs: 15_000 });
  const live = download(pair.socksPort, `${target.url}/bytes/${1024 * MiB}`, [
    "--limit-rate",
    "20M",
  ]);
  const [end] = await ended;
  const [clientEnd] = await clientEnded;
  const curl = await step("curl to end", live);
  const at = expires.getTime();
  assert.notEqual(curl.code, 0);
  assert.match(end!.reason, /expired at/);
  assert.ok(end!.time >= at, `ended ${at - end!.time} ms before expires`);
  assert.equal(pair.serverEvents.of("limit")[0]?.limit, "expires");
  assertEndedInTime("expires", {
    sessionMs: end!.time - at,
    clientMs: clientEnd!.time - at,
    curlMs: curl.endedAt - performance.now() + Date.now() - at,
  });
});

test("quota: the download that uses it up ends within 1 s; later streams say until when", async () => {
  await using pair = await startPair();
  await using target = await startHttpTarget();
  await editUser(pair, "alice", { quota: "20MB/1d" });
  await pair.reloadUsers();
  const limit = pair.serverEvents.waitFor("limit", { timeoutMs: 30_000 });
  const ended = pair.serverEvents.waitFor("session_end", { timeoutMs: 30_000 });
  const live = download(pair.socksPort, `${target.url}/bytes/${1024 * MiB}`, [
    "--limit-rate",
    "20M",
  ]);
  const clientEnded = pair.clientEvents.waitFor("session_end", { timeoutMs: 30_000 });
  const [hit] = await limit;
  const [end] = await ended;
  const [clientEnd] = await clientEnded;
  const curl = await step("curl to end", live);
  assert.notEqual(curl.code, 0);
  assert.equal(hit!.limit, "quota");
  assert.match(end!.reason, /data quota used up until \d{4}-\d\d-\d\dT/);
  const used = pair.server.accountant.user("alice")?.period;
  console.log(`quota 20 MB: the period counted ${JSON.stringify(used)} when the session ended`);
  assert.ok(used !== undefined && used.bytesIn + used.bytesOut >= 20e6, JSON.stringify(used));
  assert.ok(
    used.bytesIn + used.bytesOut < 20e6 + 8 * MiB,
    `stopped soon after: ${used.bytesOut}`,
  );
  assertEndedInTime("quota", {
    sessionMs: end!.time - hit!.time,
    clientMs: clientEnd!.time - hit!.time,
    curlMs: curl.endedAt - performance.now() + Date.now() - hit!.time,
  });
  const [n] = await pair.clientEvents.waitFor("release", { timeoutMs: 5_000 });
  assert.equal(n!.notice, ReleaseReason.QUOTA);
  // A new tunnel comes up, but every stream is refused with the reason.
  const again = await run("curl", curlArgs(pair.socksPort, `${target.url}/hello`), {
    timeoutMs: 30_000,
  });
  assert.notEqual(again.code, 0);
  const [closed] = await pair.clientEvents.waitFor("stream_close", {
    match: (e) => e.reason.includes("data quota used up until"),
    timeoutMs: 10_000,
  });
  assert.match(closed!.reason, /reset by peer: data quota used up until .*\(20 MB per 1d\)/);
});

test("quota: the bytes of the period are counted across a server restart", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  await editUser(pair, "alice", { quota: "20MB/1d" });
  await pair.reloadUsers();
  const first = await download(pair.socksPort, `${target.url}/bytes/${12_000_000}`);
  assert.equal(first.code, 0, first.stderr);
  await pair.client!.close();
  await pair.server.close();
  const hub = new EventHub();
  const events = new EventLog(hub);
  const server = await startConfiguredServer(
    await loadServerConfig(join(pair.dir, "server.yml")),
    pair.logs.logger("server2"),
    hub,
  );
  const client = await startClient({
    profile: pair.profile,
    log: pair.logs.logger("client2"),
    server: { host: "127.0.0.1", port: server.addr.port },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: false,
  });
  try {
    const period = server.accountant.user("alice")?.period;
    assert.ok(period !== undefined && period.bytesOut >= 12_000_000, JSON.stringify(period));
    // 12 MB more would pass 20 MB: the second download is cut where the quota runs out.
    // (--limit-rate: the quota is checked every 250 ms, so a loopback download at full speed
    // would pass it by more than the test allows before the check sees it.)
    const second = await download(client.socksAddr.port, `${target.url}/bytes/${12_000_000}`, [
      "--limit-rate",
      "20M",
    ]);
    assert.notEqual(second.code, 0, "the download that passes the quota is cut");
    const [hit] = await events.waitFor("limit", { timeoutMs: 5_000 });
    assert.equal(hit!.limit, "quota");
    const used = server.accountant.user("alice")!.period!;
    assert.ok(used.bytesIn + used.bytesOut < 20e6 + 8 * MiB, JSON.stringify(used));
  } finally {
    await client.close();
    await server.close();
    events.close();
  }
});

test("max_streams counts streams over all of a user's tunnels", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ lazy: true });
  await editUser(pair, "alice", { maxStreams: 2 });
  await pair.reloadUsers();
  // A second tunnel of alice's: another client with the same profile.
  const hub = new EventHub();
  const second = await startClient({
    profile: await loadClientConfig(pair.profilePath),
    log: pair.logs.logger("client2"),
    events: hub,
    server: { host: "127.0.0.1", port: pair.serverPort },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: true,
  });
  const secondEvents = new EventLog(hub);
  try {
    const slow = ["--limit-rate", "200K"];
    const a = download(pair.socksPort, `${target.url}/bytes/${2 * MiB}`, slow);
    const b = download(second.socksAddr.port, `${target.url}/bytes/${2 * MiB}`, slow);
    await pair.serverEvents.waitFor("stream_open", { count: 2, timeoutMs: 20_000 });
    assert.equal(pair.server.sessions.size, 2, "two tunnels");
    const refused = await run(
      "curl",
      curlArgs(second.socksAddr.port, "-o", "/dev/null", `${target.url}/hello`),
      { timeoutMs: 30_000 },
    );
    assert.notEqual(refused.code, 0, "a third stream is refused");
    const [l] = await pair.serverEvents.waitFor("limit", { timeoutMs: 5_000 });
    assert.equal(l!.limit, "max_streams");
    const [c] = await secondEvents.waitFor("stream_close", {
      match: (e) => e.reason.includes("too many streams"),
      timeoutMs: 5_000,
    });
    assert.match(c!.reason, /too many streams for this user \(max 2 over all tunnels\)/);
    a.catch(() => {});
    b.catch(() => {});
  } finally {
    await second.close();
    secondEvents.close();
  }
});

test("max_tunnels: a login over the user's limit is ended with NOTICE LIMIT", async () => {
  await using pair = await startPair();
  await editUser(pair, "alice", { maxTunnels: 1 });
  await pair.reloadUsers();
  await pair.serverEvents.waitFor("session_start", { timeoutMs: 10_000 });
  const hub = new EventHub();
  const events = new EventLog(hub);
  const second = await startClient({
    profile: await loadClientConfig(pair.profilePath),
    log: pair.logs.logger("client2"),
    events: hub,
    server: { host: "127.0.0.1", port: pair.serverPort },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: false,
  });
  try {
    const [rel] = await events.waitFor("release", { timeoutMs: 10_000 });
    assert.equal(rel!.notice, ReleaseReason.LIMIT);
    assert.match(rel!.reason, /too many tunnels/);
    const [l] = await pair.serverEvents.waitFor("limit", { timeoutMs: 5_000 });
    assert.equal(l!.limit, "max_tunnels");
    assert.equal(l!.detail, "too many tunnels for this user (max 1)");
    const [end] = await pair.serverEvents.waitFor("session_end", { timeoutMs: 5_000 });
    assert.equal(end!.session, l!.session, "the refused tunnel ended");
    assert.equal(pair.server.sessions.size, 1, "the first tunnel stays");
  } finally {
    await second.close();
    events.close();
  }
});

test("max_tunnels: a tunnel that lost its link gives its place to a new login", async () => {
  await using pair = await startPair({ noClient: true });
  await editUser(pair, "alice", { maxTunnels: 1 });
  await pair.reloadUsers();
  // A first tunnel whose connection then breaks: the server keeps it for resumption.
  const first = await connectLink(pair.profile, {
    server: { host: "127.0.0.1", port: pair.serverPort },
    serverName: pair.profile.serverName,
    transport: pair.profile.transport,
    ...(pair.profile.caPem === undefined ? {} : { caPem: pair.profile.caPem }),
  });
  const [started] = await pair.serverEvents.waitFor("session_start", { timeoutMs: 10_000 });
  first.link.conn.close();
  await pair.serverEvents.waitFor("link_down", { timeoutMs: 10_000 });
  assert.equal(pair.server.sessions.size, 1, "kept for resumption");
  const client = await startClient({
    profile: pair.profile,
    log: pair.logs.logger("client2"),
    server: { host: "127.0.0.1", port: pair.serverPort },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: false,
  });
  try {
    const [end] = await pair.serverEvents.waitFor("session_end", { timeoutMs: 10_000 });
    assert.equal(end!.session, started!.session);
    assert.equal(end!.reason, "replaced by a new login");
    await pair.serverEvents.waitFor("session_start", { count: 2, timeoutMs: 10_000 });
    assert.deepEqual(pair.serverEvents.of("limit"), [], "the new login was not refused");
    assert.equal(pair.server.sessions.size, 1);
  } finally {
    await client.close();
  }
});

test("limits.max_tunnels: a login over the server's limit is ended with NOTICE LIMIT", async () => {
  await using pair = await startPair({
    serverLimits: { max_tunnels: "1" },
    extraUsers: [{ name: "bob" }],
  });
  await pair.serverEvents.waitFor("session_start", { timeoutMs: 10_000 });
  const hub = new EventHub();
  const events = new EventLog(hub);
  const bob = await startClient({
    profile: await loadClientConfig(pair.extraProfiles.get("bob")!),
    log: pair.logs.logger("bob"),
    events: hub,
    server: { host: "127.0.0.1", port: pair.serverPort },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: false,
  });
  try {
    const [rel] = await events.waitFor("release", { timeoutMs: 10_000 });
    assert.equal(rel!.notice, ReleaseReason.LIMIT);
    const [l] = await pair.serverEvents.waitFor("limit", { timeoutMs: 5_000 });
    assert.deepEqual([l!.limit, l!.user, l!.detail], [
      "limits.max_tunnels",
      "bob",
      "too many tunnels on this server (max 1)",
    ]);
    await pair.serverEvents.waitFor("session_end", { timeoutMs: 5_000 });
    assert.deepEqual([...pair.server.sessions].length, 1, "alice's tunnel stays");
  } finally {
    await bob.close();
    events.close();
  }
});

const RATE = 1_000_000;
/** Bytes moved in each bandwidth check: 10 s at `RATE`. */
const PACED_BYTES = 10 * RATE;
/** curl's own figures: bytes moved and the whole transfer's time. */
const CURL_FIGURES = "%{size_download} %{size_upload} %{time_total}\n";

function figures(r: RunResult): { down: number; up: number; seconds: number } {
  assert.equal(r.code, 0, r.stderr);
  const [down, up, seconds] = new TextDecoder().decode(r.stdout).trim().split(/\s+/).map(Number);
  return { down: down!, up: up!, seconds: seconds! };
}

function assertRate(what: string, bytes: number, seconds: number): number {
  const rate = bytes / seconds;
  const err = (rate - RATE) / RATE;
  console.log(
    `${what}: ${bytes} bytes in ${seconds.toFixed(2)} s = ${(rate / 1e6).toFixed(3)} MB/s (${
      (err * 100).toFixed(1)
    } % off 1 MB/s)`,
  );
  assert.ok(Math.abs(err) <= 0.10, `${what}: ${rate.toFixed(0)} B/s is not within 10 % of ${RATE}`);
  return err;
}

test.slow("bandwidth: a curl download through the tunnel runs at 1 MB/s ±10 %", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  await editUser(pair, "alice", { bandwidth: "1MB/s" });
  await pair.reloadUsers();
  const r = await run(
    "curl",
    curlArgs(
      pair.socksPort,
      "-o",
      "/dev/null",
      "-w",
      CURL_FIGURES,
      `${target.url}/bytes/${PACED_BYTES}`,
    ),
    { timeoutMs: 60_000 },
  );
  const f = figures(r);
  assert.equal(f.down, PACED_BYTES);
  assertRate("download", f.down, f.seconds);
});

test.slow("bandwidth: a curl upload through the tunnel runs at 1 MB/s ±10 %", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  await editUser(pair, "alice", { bandwidth: "1MB/s" });
  await pair.reloadUsers();
  const file = join(pair.dir, "upload.bin");
  await Deno.writeFile(file, new Uint8Array(PACED_BYTES).fill(0x5a));
  const r = await run(
    "curl",
    curlArgs(
      pair.socksPort,
      "-H",
      "Expect:",
      "--data-binary",
      `@${file}`,
      "-o",
      "/dev/null",
      "-w",
      CURL_FIGURES,
      `${target.url}/echo`,
    ),
    { timeoutMs: 60_000 },
  );
  const f = figures(r);
  assert.equal(f.up, PACED_BYTES);
  assertRate("upload", f.up, f.seconds);
});

test.slow("bandwidth is shared by a user's tunnels, fairly: two curls each get half", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  await editUser(pair, "alice", { bandwidth: "1MB/s" });
  await pair.reloadUsers();
  const second = await startClient({
    profile: await loadClientConfig(pair.profilePath),
    log: pair.logs.logger("client2"),
    server: { host: "127.0.0.1", port: pair.serverPort },
    socks: { host: "127.0.0.1", port: 0 },
    lazy: false,
  });
  try {
    const half = PACED_BYTES / 2;
    const get = (port: number) =>
      run(
        "curl",
        curlArgs(port, "-o", "/dev/null", "-w", CURL_FIGURES, `${target.url}/bytes/${half}`),
        { timeoutMs: 60_000 },
      );
    const [a, b] = (await Promise.all([get(pair.socksPort), get(second.socksAddr.port)])).map(
      figures,
    );
    assert.equal(pair.server.sessions.size, 2, "two tunnels");
    // Together they moved PACED_BYTES in the time the slower one took.
    assertRate("two tunnels together", a!.down + b!.down, Math.max(a!.seconds, b!.seconds));
    // Fair: each ran about as long as the other.
    const ratio = Math.min(a!.seconds, b!.seconds) / Math.max(a!.seconds, b!.seconds);
    console.log(`each: ${a!.seconds} s and ${b!.seconds} s`);
    assert.ok(ratio > 0.9, `the two downloads took ${a!.seconds} s and ${b!.seconds} s`);
  } finally {
    await second.close();
  }
});

test("users.yml is watched: an editor's rename-replace applies within 2 s; a broken file changes nothing", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const file = join(pair.dir, "users.yml");
  const watch = watchUsers(pair.server, file, pair.logs.logger("server"));
  try {
    // A file that does not parse: nothing changes, the log names line and column.
    const good = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, `${good}\n  broken: [\n`);
    await waitFor(
      "the parse error to be logged",
      () => pair.logs.grep(/users\.yml not reloaded: .*users\.yml:\d+:\d+: /).length > 0,
      5_000,
    );
    const ok = await run("curl", curlArgs(pair.socksPort, `${target.url}/hello`), {
      timeoutMs: 30_000,
    });
    assert.equal(ok.code, 0, "alice still works after a broken file");
    // A file caught half-written by an editor that truncates, then writes: empty,
    // it would remove every user; it changes nothing and alice's tunnel stays up.
    const live = [...pair.server.sessions][0]!;
    await Deno.writeTextFile(file, "");
    await waitFor(
      "the empty file to be refused in the log",
      () => pair.logs.grep(/users\.yml not reloaded: .*No users: key in the file/).length > 0,
      5_000,
    );
    assert.ok(!live.isClosed, "alice's live session survived the empty file");
    assert.equal(pair.serverEvents.of("limit").length, 0, "no user was removed");
    await Deno.writeTextFile(file, good);
    await waitFor(
      "the good file to be reloaded",
      () => pair.logs.grep(/reloaded 1 users/).length > 0,
      5_000,
    );
    assert.ok(!live.isClosed);
    // Save the way editors do: write a new file, rename it over the old one.
    const r = await cutDuringDownload(pair, async () => {
      const tmp = `${file}.swp`;
      await Deno.writeTextFile(tmp, updateUserInYaml(good, file, "alice", { disabled: true }));
      await Deno.rename(tmp, file);
    });
    assert.match(r.reason, /is disabled/);
    console.log(`file watch: session ended ${r.sessionMs} ms after the rename`);
    assert.ok(r.sessionMs < 2000, `session ended ${r.sessionMs} ms after the save`);
  } finally {
    watch.close();
  }
});
