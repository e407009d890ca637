/**
 * The real `nitrosocks client` reloads its profile on SIGHUP and when the
 * file changes, instead of dying (exit 129): an unchanged profile changes
 * nothing, a broken one is refused with the reason while the old one keeps
 * serving, and a changed one takes effect (here: a new SOCKS5 port).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startHttpTarget } from "../support/http_target.ts";
import { setUpServer, socksCurl, startNitrosocks } from "../support/nitro_process.ts";
import { test } from "../support/deadline.ts";
import { freePort } from "./_harness.ts";

const curl = (port: number, url: string) => socksCurl(`127.0.0.1:${port}`, url);

test.slow("client reloads its profile on SIGHUP and on change; a broken one changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  await using target = await startHttpTarget();
  const { srv, profile } = await setUpServer(dir, "--routes", "127.0.0.1:*");
  const original = await Deno.readTextFile(profile);
  const [a, b] = [freePort(), freePort()];
  const listenAt = (p: number) =>
    original.replace('listen: "127.0.0.1:1080"', `listen: "127.0.0.1:${p}"`);
  await Deno.writeTextFile(profile, listenAt(a));
  await using server = startNitrosocks(["server", "--config", join(srv, "server.yml")]);
  await server.waitForOutput(/listening on/, "the server to listen");
  await using client = startNitrosocks(["client", "--config", profile]);
  try {
    await client.waitForOutput(new RegExp(`SOCKS5 proxy ready on 127\\.0\\.0\\.1:${a}`), "client");
    assert.equal((await curl(a, `${target.url}/one`)).code, 0, client.output());

    client.signal("SIGHUP");
    await client.waitForOutput(/SIGHUP: profile .* unchanged/, "the client to reload on SIGHUP");
    assert.equal((await curl(a, `${target.url}/two`)).code, 0, "still serving after SIGHUP");

    await Deno.writeTextFile(profile, listenAt(a).replace(/^server_key: .*$/m, 'server_key: "x"'));
    await client.waitForOutput(
      /file changed: profile .* not reloaded, keeping the running one: .*server_key/,
      "the client to refuse the broken profile",
    );
    assert.equal((await curl(a, `${target.url}/three`)).code, 0, "the old profile keeps serving");

    await Deno.writeTextFile(profile, listenAt(b));
    await client.waitForOutput(
      new RegExp(`SOCKS5 proxy ready on 127\\.0\\.0\\.1:${b}`),
      "the client to restart on the changed profile",
    );
    const moved = await curl(b, `${target.url}/four`);
    assert.equal(moved.code, 0, moved.stderr + client.output());
    assert.notEqual((await curl(a, `${target.url}/five`)).code, 0, "the old port is closed");
    assert.deepEqual(
      target.requests.map((r) => r.path),
      ["/one", "/two", "/three", "/four"],
    );
  } finally {
    await client.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
