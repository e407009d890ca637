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
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { reloadUsers } from "../../lib/cli/server_cmd.ts";
import type { ServerHandle } from "../../lib/tunnel/server.ts";
import { test, withDeadline } from "../support/deadline.ts";
import { Logs, startConfiguredServer } from "./_harness.ts";

interface Server extends AsyncDisposable {
  server: ServerHandle;
  profile: ClientConfig;
  events: EventLog;
  logs: Logs;
}

/** A TCP server with alice, server.yml edited by `edit`. */
async function startServer(edit: (yml: string) => string): Promise<Server> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-lockout-" });
  const hub = new EventHub();
  const events = new EventLog(hub);
  const logs = new Logs();
  const yml = join(dir, "server.yml");
  let server: ServerHandle | undefined;
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
    const text = (await Deno.readTextFile(yml)).replace(/^transport: tls$/m, "transport: tcp");
    await Deno.writeTextFile(yml, edit(text));
    const config = await loadServerConfig(yml);
    server = await startConfiguredServer(config, logs.logger("server"), hub);
    const out = join(dir, "alice.yml");
    await addUser("alice", { dir, out, server: `127.0.0.1:${server.addr.port}` });
    await reloadUsers(server, config.usersFile, logs.logger("server"));
    const profile = await loadClientConfig(out);
    const s = server;
    return {
      server: s,
      profile,
      events,
      logs,
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
  /** What the client makes of it. */
  failure: string | undefined;
}

/** One raw login over TCP, recording what the server sends and when it closes. */
async function attempt(port: number, profile: ClientConfig, token: Uint8Array): Promise<Attempt> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const hs = new ClientHandshake({
      serverPublicKey: profile.serverKey,
      credentials: { userId: profile.user, clientKey: profile.key, token },
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
      hs.push(buf.subarray(0, n));
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const N = 15;

test.slow(
  "a locked-out login with the right token looks like any failed login: same bytes, alike time",
  async () => {
    await using s = await startServer((yml) =>
      yml.replace(/failures: 10\n/, `failures: ${N + 1}\n`).replace(
        /handshakes_per_second: 20/,
        "handshakes_per_second: 1000",
      )
    );
    const port = s.server.addr.port;
    const wrong = new Uint8Array(32).fill(9);
    const ordinary: Attempt[] = [];
    for (let i = 0; i < N; i++) ordinary.push(await attempt(port, s.profile, wrong));
    assert.equal(s.events.of("limit").length, 0, "not locked yet");
    // The (N+1)th failure locks the source and the user.
    await attempt(port, s.profile, wrong);
    const locks = await s.events.waitFor("limit", { count: 2, timeoutMs: 5_000 });
    assert.deepEqual(locks.map((e) => e.limit), ["auth.lockout", "auth.lockout"]);
    const locked: Attempt[] = [];
    for (let i = 0; i < N; i++) locked.push(await attempt(port, s.profile, s.profile.token!));

    for (const a of [...ordinary, ...locked]) {
      // A ServerHello (which the client verified), then nothing but the close.
      assert.equal(a.received, a.serverHello);
      assert.equal(a.failure, "login_refused");
    }
    const refusals = s.events.of("refusal", (e) => e.reason === "auth_failed");
    assert.equal(refusals.length, 2 * N + 1);
    assert.ok(refusals.slice(N + 1).every((e) => /locked out until/.test(e.detail)));
    assert.equal(s.events.of("login").length, 0, "the right token did not get in");

    const ms = (xs: Attempt[]) => xs.map((a) => a.closeMs);
    const fmt = (xs: number[]) =>
      `median ${median(xs).toFixed(2)} ms, min ${Math.min(...xs).toFixed(2)}, max ${
        Math.max(...xs).toFixed(2)
      }`;
    console.log(`close after Response, wrong token: ${fmt(ms(ordinary))}`);
    console.log(`close after Response, locked out:  ${fmt(ms(locked))}`);
    console.log(
      `ServerHello sizes (random padding), wrong: ${
        ordinary.map((a) => a.serverHello).join(",")
      }; locked: ${locked.map((a) => a.serverHello).join(",")}`,
    );
  },
);

test("a connection over limits.per_ip.connections gets the fallback web server, like a probe", async () => {
  await using s = await startServer((yml) => yml.replace(/connections: 64/, "connections: 1"));
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
