/**
 * A server that stops says so (NOTICE 2, shutting down) and its clients
 * wait: the real `nitrosocks client` dials again only with doubling waits,
 * however many requests applications make meanwhile, logs the outage in a
 * few lines, and serves again once the server is back.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startHttpTarget } from "../support/http_target.ts";
import { startFaultRelay } from "../support/fault_relay.ts";
import { clientReady, setUpServer, socksCurl, startNitrosocks } from "../support/nitro_process.ts";
import { step, test } from "../support/deadline.ts";

test.slow("a stopping server's NOTICE makes the client back off, not dial per request", async () => {
  const dir = await Deno.makeTempDir();
  await using target = await startHttpTarget();
  const { port, srv, profile } = await setUpServer(dir, "--routes", "127.0.0.1:*");
  // The client dials through a relay that counts its connections.
  const relay = startFaultRelay({ port });
  const config = join(srv, "server.yml");
  let server = startNitrosocks(["server", "--config", config]);
  await using client = startNitrosocks([
    "client",
    "--config",
    profile,
    "--socks",
    "127.0.0.1:0",
    "--server",
    `127.0.0.1:${relay.port}`,
  ]);
  try {
    await server.waitForOutput(/listening on/, "the server to listen");
    const socks = await clientReady(client);
    const first = await socksCurl(socks, `${target.url}/before`, 20);
    assert.equal(first.code, 0, first.stderr + client.output());

    server.signal("SIGTERM");
    assert.equal((await step("the server to stop", server.status)).code, 0);
    await server.close();
    await client.waitForOutput(
      /the server is shutting down \(it said so\)/,
      "the client to hear the shutdown notice",
    );
    // Twenty requests while the server is away: none of them dials it.
    const dialsBefore = relay.connections;
    const started = performance.now();
    const during = await Promise.all(
      Array.from({ length: 20 }, (_, i) => socksCurl(socks, `${target.url}/during${i}`, 3)),
    );
    const seconds = (performance.now() - started) / 1000;
    assert.ok(during.every((r) => r.code !== 0), "nothing is served while the server is down");
    const dials = relay.connections - dialsBefore;
    // Waits of about 1, 2, 4 s: at most a handful of dials in those seconds, not twenty.
    assert.ok(dials <= 4, `${dials} dials in ${seconds.toFixed(1)} s`);

    server = startNitrosocks(["server", "--config", config]);
    await server.waitForOutput(/listening on/, "the server to listen again");
    // The request waits for the client's next attempt (at most 30 s away) and goes through.
    const after = await socksCurl(socks, `${target.url}/after`, 45);
    assert.equal(after.code, 0, after.stderr + client.output());
    assert.ok(after.body.length > 0);
    const out = client.output();
    assert.match(out, /the server is back: \d+ attempts? failed since \d{4}-/);
    const downLines = out.match(/the server is still down/g)?.length ?? 0;
    assert.ok(downLines <= 4, `${downLines} lines about the outage:\n${out}`);
    assert.doesNotMatch(out, /\[client socks5\] .*Cannot reach the server/, "no dial per request");
  } finally {
    await server.close();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});
