/**
 * Failed-login lockout (`auth.lockout`) and per-source caps
 * (`limits.per_ip`) on a real server: a locked-out login, even with the
 * right credentials, gets the same bytes as any failed login (a ServerHello,
 * then a close after the Response) and takes alike time; a connection over
 * the caps gets the fallback web server, like a probe.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { type ClientConfig, loadClientConfig, loadServerConfig } from "../../lib/config/mod.ts";
import { ClientHandshake } from "../../lib/handshake/mod.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { addUser, initServerDir, removeUser, setUser } from "../../lib/provision/mod.ts";
import { reloadUsers } from "../../lib/cli/server_cmd.ts";
import type { ServerHandle } from "../../lib/tunnel/server.ts";
import { step, test, withDeadline } from "../support/deadline.ts";
import { Logs, startConfiguredServer } from "./_harness.ts";

interface Server extends AsyncDisposable {
  server: ServerHandle;
  dir: string;
  /** alice's and bob's profiles. */
  alice: ClientConfig;
  bob: ClientConfig;
  events: EventLog;
  logs: Logs;
  /** Re-reads users.yml (after `setUser`, `removeUser`). */
  reload(): Promise<void>;
}

/**
 * A TCP server with alice and bob, listening on [::] (so 127.0.0.1 and ::1
 * are two sources), `auth.lockout.failures` set to `failures`, per-source
 * handshake rate high enough for the test.
 */
async function startServer(
  failures: number,
  edit: (yml: string) => string = (yml) => yml,
): Promise<Server> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-lockout-" });
  const hub = new EventHub();
  const events = new EventLog(hub);
  const logs = new Logs();
  const yml = join(dir, "server.yml");
  let server: ServerHandle | undefined;
  try {
    await initServerDir(dir, { listen: "[::]:0", name: "localhost" });
    const text = (await Deno.readTextFile(yml)).replace(/^transport: tls$/m, "transport: tcp")
      .replace(/failures: 10\n/, `failures: ${failures}\n`)
      .replace(/handshakes_per_second: 20/, "handshakes_per_second: 1000");
    await Deno.writeTextFile(yml, edit(text));
    const config = await loadServerConfig(yml);
    server = await startConfiguredServer(config, logs.logger("server"), hub);
    const profiles: ClientConfig[] = [];
    for (const name of ["alice", "bob"]) {
      const out = join(dir, `${name}.yml`);
      await addUser(name, { dir, out, server: `127.0.0.1:${server.addr.port}` });
      profiles.push(await loadClientConfig(out));
    }
    const s = server;
    const reload = () => reloadUsers(s, config.usersFile, logs.logger("server"));
    await reload();
    return {
      server: s,
      dir,
      alice: profiles[0]!,
      bob: profiles[1]!,
      events,
      logs,
      reload,
      async [Symbol.asyncDispose]() {
        events.close();
        await s.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (e) {
    events.close();
    await server?.close();
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
}

interface Attempt {
  /** Every byte the server sent. */
  received: number;
  /** The ServerHello's length (what the client consumed before answering). */
  serverHello: number;
  /** From our Response to the server's close (ms). */
  closeMs: number;
  /** What the client makes of it; undefined when it logged in. */
  failure: string | undefined;
}

/** What an attempt changes in a profile's credentials. */
interface Wrong {
  token?: Uint8Array;
  clientKey?: Uint8Array;
}

/**
 * One raw login over TCP from `from` (127.0.0.1 or ::1), recording what the
 * server sends and when it closes; a login that succeeds is closed at once.
 */
async function attempt(
  s: Server,
  from: "127.0.0.1" | "::1",
  profile: ClientConfig,
  wrong: Wrong = {},
): Promise<Attempt> {
  const conn = await Deno.connect({ hostname: from, port: s.server.addr.port });
  try {
    const hs = new ClientHandshake({
      serverPublicKey: profile.serverKey,
      credentials: {
        userId: profile.user,
        clientKey: wrong.clientKey ?? profile.key,
        token: wrong.token ?? profile.token!,
      },
      now: Date.now,
    });
    await conn.write(hs.hello());
    const buf = new Uint8Array(65536);
    let received = 0;
    let response: Uint8Array | undefined;
    while (response === undefined) {
      const n = await conn.read(buf);
      assert.notEqual(n, null, "the server closed before its ServerHello");
      received += n!;
      const step = hs.push(buf.subarray(0, n!));
      if (step.type === "send") response = step.bytes;
    }
    const serverHello = received;
    const t0 = performance.now();
    await conn.write(response);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      received += n;
      if (hs.push(buf.subarray(0, n)).type === "done") {
        return { received, serverHello, closeMs: NaN, failure: undefined };
      }
    }
    const closeMs = performance.now() - t0;
    const failure = hs.closed().authFailure;
    return { received, serverHello, closeMs, failure };
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

/** `n` attempts, one after another; each refused like any failed login. */
async function refused(
  s: Server,
  n: number,
  from: "127.0.0.1" | "::1",
  profile: ClientConfig,
  wrong: Wrong = {},
): Promise<Attempt[]> {
  const out: Attempt[] = [];
  for (let i = 0; i < n; i++) {
    const a = await step(`attempt ${i + 1} of ${n} from ${from}`, attempt(s, from, profile, wrong));
    // A ServerHello (which the client verified), then nothing but the close.
    assert.equal(a.received, a.serverHello);
    assert.equal(a.failure, "login_refused");
    out.push(a);
  }
  return out;
}

async function loginOk(s: Server, from: "127.0.0.1" | "::1", profile: ClientConfig) {
  const a = await step(`${profile.user} to log in from ${from}`, attempt(s, from, profile));
  assert.equal(a.failure, undefined, `${profile.user} from ${from} was refused`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const WRONG_TOKEN = new Uint8Array(32).fill(9);
const WRONG_KEY = new Uint8Array(32).fill(7);
const lockouts = (s: Server) => s.events.of("limit", (e) => e.limit === "auth.lockout");

test("a wrong static key counts against the source only: the named user is not locked out", async () => {
  await using s = await startServer(3);
  await refused(s, 3, "::1", s.alice, { clientKey: WRONG_KEY });
  await s.events.waitFor("limit", { timeoutMs: 5_000 });
  assert.deepEqual(lockouts(s).map((e) => [e.user, /^source ::1 locked out/.test(e.detail)]), [
    [undefined, true],
  ]);
  // Not alice's failures: neither her lock nor her failed-login counter.
  assert.equal(s.server.accountant.user("alice")?.loginsFailed ?? 0, 0);
  assert.equal(s.server.accountant.server().loginsFailed, 3);
  const ref = s.events.of("refusal", (e) => e.reason === "auth_failed");
  assert.ok(ref.every((e) => e.user === undefined && /wrong client key/.test(e.detail)));
  await loginOk(s, "127.0.0.1", s.alice);
  // The locked source stays locked, for the right key too.
  await refused(s, 1, "::1", s.alice);
});

test("a wrong second factor after a proven key counts against the user and the source", async () => {
  await using s = await startServer(3);
  await refused(s, 3, "::1", s.alice, { token: WRONG_TOKEN });
  await s.events.waitFor("limit", { count: 2, timeoutMs: 5_000 });
  assert.deepEqual(lockouts(s).map((e) => e.user).sort(), ["alice", undefined]);
  assert.equal(s.server.accountant.user("alice")?.loginsFailed, 3);
  // alice is locked out from everywhere, even with the right token; bob is not.
  await refused(s, 1, "127.0.0.1", s.alice);
  await loginOk(s, "127.0.0.1", s.bob);
  assert.match(s.events.of("refusal").at(-1)?.detail ?? "", /user "alice" is locked out until/);
});

test("a disabled, expired or removed user's reconnects are refused without locking their address out", async () => {
  await using s = await startServer(3);
  await setUser("alice", s.dir, { disabled: true });
  await s.reload();
  await refused(s, 5, "127.0.0.1", s.alice);
  const disabled = s.events.of("refusal", (e) => e.reason === "auth_failed");
  assert.ok(disabled.every((e) => /user "alice" refused: disabled in users\.yml/.test(e.detail)));
  await setUser("alice", s.dir, { disabled: false, expires: new Date(Date.now() - 1_000) });
  await s.reload();
  await refused(s, 5, "127.0.0.1", s.alice);
  const expired = s.events.of("refusal", (e) => e.reason === "auth_failed").slice(5);
  assert.ok(expired.every((e) => /user "alice" refused: expired at /.test(e.detail)));
  await removeUser("alice", s.dir);
  await s.reload();
  await refused(s, 5, "127.0.0.1", s.alice);
  const removed = s.events.of("refusal", (e) => e.reason === "auth_failed").slice(10);
  assert.ok(removed.every((e) => /user "alice" refused: removed from users\.yml/.test(e.detail)));
  assert.equal(lockouts(s).length, 0, "no lockout");
  assert.equal(s.server.accountant.user("alice")?.loginsFailed ?? 0, 0);
  // Others on the same address log in as ever.
  await loginOk(s, "127.0.0.1", s.bob);
  // A guess at the removed user's name with another key still counts.
  await refused(s, 3, "127.0.0.1", s.alice, { clientKey: WRONG_KEY });
  await s.events.waitFor("limit", { timeoutMs: 5_000 });
});

const PAIRS = 15;

test.slow(
  "a locked-out login looks like an ordinary failed one: same bytes, medians within 50 ms",
  async () => {
    // alice gets locked out from ::1; then from 127.0.0.1 (not locked), pairs of attempts
    // alternate: alice with the right token (locked out) and bob with a wrong one (ordinary).
    await using s = await startServer(PAIRS + 1);
    await refused(s, PAIRS + 1, "::1", s.alice, { token: WRONG_TOKEN });
    await s.events.waitFor("limit", { count: 2, timeoutMs: 5_000 });
    const locked: Attempt[] = [];
    const ordinary: Attempt[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const lockedFirst = i % 2 === 0;
      for (const which of lockedFirst ? ["locked", "ordinary"] : ["ordinary", "locked"]) {
        if (which === "locked") locked.push(...await refused(s, 1, "127.0.0.1", s.alice));
        else ordinary.push(...await refused(s, 1, "127.0.0.1", s.bob, { token: WRONG_TOKEN }));
      }
    }
    const refusals = s.events.of("refusal", (e) => e.reason === "auth_failed").slice(PAIRS + 1);
    assert.equal(refusals.length, 2 * PAIRS);
    assert.equal(refusals.filter((e) => /locked out until/.test(e.detail)).length, PAIRS);
    assert.equal(s.events.of("login").length, 0, "the right token did not get in");
    assert.equal(lockouts(s).length, 2, "bob's failures did not lock 127.0.0.1");

    const ms = (xs: Attempt[]) => xs.map((a) => a.closeMs);
    const fmt = (xs: number[]) =>
      `median ${median(xs).toFixed(2)} ms, min ${Math.min(...xs).toFixed(2)}, max ${
        Math.max(...xs).toFixed(2)
      }`;
    console.log(`close after Response, wrong token: ${fmt(ms(ordinary))}`);
    console.log(`close after Response, locked out:  ${fmt(ms(locked))}`);
    // ServerHello sizes vary with random padding, alike for both.
    const sizes = (xs: Attempt[]) => xs.map((a) => a.serverHello).join(",");
    console.log(`ServerHello sizes, wrong: ${sizes(ordinary)}; locked: ${sizes(locked)}`);
    const diff = Math.abs(median(ms(locked)) - median(ms(ordinary)));
    assert.ok(diff < 50, `medians differ by ${diff.toFixed(2)} ms`);
  },
);

test("a connection over limits.per_ip.connections gets the fallback web server, like a probe", async () => {
  await using s = await startServer(10, (yml) => yml.replace(/connections: 64/, "connections: 1"));
  const port = s.server.addr.port;
  // One connection holds the only slot (a handshake in progress).
  const first = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await first.write(new Uint8Array([1]));
    const second = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await second.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      const buf = new Uint8Array(64);
      const n = await withDeadline(second.read(buf), 10_000, "the fallback's answer");
      assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 /);
    } finally {
      second.close();
    }
    const over = s.events.of("refusal", (e) => e.reason === "rate_limited");
    assert.equal(over.length, 1);
    assert.match(over[0]!.detail, /1 connections open \(limits\.per_ip\.connections 1\)/);
  } finally {
    first.close();
  }
});

test("a source over limits.per_ip.handshakes_per_second gets the fallback web server, like a probe", async () => {
  await using s = await startServer(
    10,
    (yml) => yml.replace(/handshakes_per_second: 1000/, "handshakes_per_second: 2"),
  );
  const port = s.server.addr.port;
  // Two new connections use up this second's budget; the third is handed on.
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(c);
      await c.write(new Uint8Array([1]));
    }
    const third = await Deno.connect({ hostname: "127.0.0.1", port });
    held.push(third);
    await third.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const buf = new Uint8Array(64);
    const n = await withDeadline(third.read(buf), 10_000, "the fallback's answer");
    assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 /);
    const over = s.events.of("refusal", (e) => e.reason === "rate_limited");
    assert.equal(over.length, 1);
    assert.match(over[0]!.detail, /more than 2 new connections per second/);
  } finally {
    for (const c of held) c.close();
  }
});
