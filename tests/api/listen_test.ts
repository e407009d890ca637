/**
 * `listen()`: a server from a path or a parsed configuration, stopped by
 * `close()`, an `AbortSignal` or `await using`.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { ConfigError, connect, EventHub, listen, Socks5Error } from "../../mod.ts";
import { loadClientConfig, loadServerConfig } from "../../lib/config/mod.ts";
import { initServerDir } from "../../lib/provision/mod.ts";
import { startServer } from "./_setup.ts";
import { step, test } from "../support/deadline.ts";
import { assertRejectsWith } from "../support/assert.ts";

async function refusesConnections(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) return true;
    throw e;
  }
}

test("listen() from a path serves clients; close() stops it and finished resolves", async () => {
  await using setup = await startServer();
  await step("a server from a path", async () => {
    const { server } = setup;
    assert.equal(server.addr.transport, "tcp");
    assert.equal(server.addr.hostname, "127.0.0.1");
    assert.ok(server.addr.port > 0);
    // alice's profile (and its parsed form) log in.
    await (await connect(setup.profilePath)).close();
    await (await connect(await loadClientConfig(setup.profilePath))).close();
    const closing = server.close();
    assert.equal(server.close(), closing, "close() is idempotent");
    await closing;
    await server.finished;
    assert.ok(await refusesConnections(server.addr.port));
  });
});

test("listen() from a parsed configuration stops when its signal aborts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-api-" });
  try {
    await step("a server to stop on abort", async () => {
      await initServerDir(dir, { listen: "127.0.0.1:0" });
      const config = await loadServerConfig(join(dir, "server.yml"));
      const events = new EventHub();
      const controller = new AbortController();
      const server = await listen(config, { signal: controller.signal, events, log: "error" });
      assert.equal(server.events, events);
      assert.equal(await refusesConnections(server.addr.port), false);
      controller.abort();
      await server.finished;
      assert.ok(await refusesConnections(server.addr.port));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("listen() refuses a bad file, a bad log level and an aborted signal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-api-" });
  try {
    await step("listen() to refuse", async () => {
      await assertRejectsWith(
        listen(join(dir, "missing.yml")),
        ConfigError,
        "Cannot read config file: file not found",
      );
      await Deno.writeTextFile(join(dir, "server.yml"), "listen: 127.0.0.1:0\nlisn: 1\n");
      await assertRejectsWith(
        listen(join(dir, "server.yml")),
        ConfigError,
        'Unknown key "lisn" (expected one of: listen, transport,',
      );
      await Deno.remove(join(dir, "server.yml"));
      await initServerDir(dir, { listen: "127.0.0.1:0" });
      const path = join(dir, "server.yml");
      await assertRejectsWith(
        // @ts-expect-error: not a level
        listen(path, { log: "loud" }),
        TypeError,
        'Invalid log level "loud": expected "debug", "info", "warn" or "error"',
      );
      const reason = new Error("stop");
      await assert.rejects(
        listen(path, { signal: AbortSignal.abort(reason) }),
        (e) => e === reason,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("await using stops the server", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-api-" });
  try {
    await step("a server to stop at the end of its block", async () => {
      await initServerDir(dir, { listen: "127.0.0.1:0" });
      let port: number;
      {
        await using server = await listen(join(dir, "server.yml"));
        port = server.addr.port;
        assert.equal(await refusesConnections(port), false);
      }
      assert.ok(await refusesConnections(port));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("server.events reports alice's login, her stream and a probe's refusal", async () => {
  // Plain TCP, so the probe below can speak HTTP to the port without TLS.
  await using setup = await startServer({ transport: "tcp" });
  await step("server events", async () => {
    const { server } = setup;
    const login = server.events.next("login", { timeoutMs: 10_000 });
    const tunnel = await connect(setup.profilePath);
    try {
      const ev = await login;
      assert.equal(ev.user, "alice");
      assert.equal(ev.resumed, false);
      // A stream to a port nobody listens on: the server reports its decision.
      const refused = server.events.next("stream_refused", { timeoutMs: 10_000 });
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      await assertRejectsWith(
        tunnel.dial({ hostname: "127.0.0.1", port }),
        Socks5Error,
        `Cannot dial 127.0.0.1:${port}: the server answered "connection refused"`,
      );
      const r = await refused;
      assert.equal(r.target, `127.0.0.1:${port}`);
      assert.equal(r.reply, 5);
    } finally {
      await tunnel.close();
    }
    // Anything that is not a Hello is a probe, and the event says so.
    const probe = server.events.next("refusal", { timeoutMs: 10_000 });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      assert.equal((await probe).reason, "probe");
    } finally {
      conn.close();
    }
  });
});
