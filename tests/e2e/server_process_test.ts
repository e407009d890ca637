/**
 * The server.yml keys only `nitrosocks server` itself reads, on the real
 * command in a child process with a real client process and curl: `users`
 * (which file holds the users) and `log.level` (which lines it writes).
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { startHttpTarget } from "../support/http_target.ts";
import {
  clientReady,
  type NitroProcess,
  setUpServer,
  socksCurl,
  startNitrosocks,
} from "../support/nitro_process.ts";
import { step, test } from "../support/deadline.ts";
import { waitListening } from "../support/process.ts";

/** `text` with server.yml's top-level `key: value` line set to `value`. */
function setKey(text: string, line: RegExp, value: string): string {
  assert.match(text, line);
  return text.replace(line, value);
}

/** alice's client process, curl through it to `url`: its body (the test fails if curl does). */
async function fetchAsAlice(profile: string, url: string, server: NitroProcess): Promise<string> {
  await using client = startNitrosocks(["client", "--config", profile, "--socks", "127.0.0.1:0"]);
  const r = await socksCurl(await clientReady(client), url);
  assert.equal(r.code, 0, `${r.stderr}\n${client.output()}\n${server.output()}`);
  return r.body;
}

test.slow("server.yml's users: the server serves the users of the file it names, not users.yml beside it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using target = await startHttpTarget();
    const { srv, profile } = await setUpServer(dir, "--routes", "127.0.0.1:*");
    // alice moves to people.yml; users.yml beside server.yml is left with nobody.
    await Deno.rename(join(srv, "users.yml"), join(srv, "people.yml"));
    await Deno.writeTextFile(join(srv, "users.yml"), "users: {}\n", { mode: 0o600 });
    const yml = join(srv, "server.yml");
    const text = await Deno.readTextFile(yml);
    await Deno.writeTextFile(yml, setKey(text, /^users: users\.yml$/m, "users: people.yml"));
    {
      await using server = startNitrosocks(["server", "--config", yml]);
      await server.waitForOutput(/listening on/, "the server to listen");
      assert.equal(
        await fetchAsAlice(profile, `${target.url}/hello`, server),
        "hello from target\n",
      );
      await server.waitForOutput(/user "alice" connected from 127\.0\.0\.1/, "alice's login");
    }
    // A file that is not there: the server does not start, and names it.
    await Deno.writeTextFile(yml, setKey(text, /^users: users\.yml$/m, "users: nobody.yml"));
    await using refused = startNitrosocks(["server", "--config", yml]);
    const { code } = await step("the server to exit", refused.status);
    assert.equal(code, 1, refused.output());
    assert.ok(refused.output().includes(join(srv, "nobody.yml")), refused.output());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test.slow("server.yml's log.level: debug logs each stream's destination; warn keeps a warning and drops the info lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using target = await startHttpTarget();
    const { port, srv, profile } = await setUpServer(dir, "--routes", "127.0.0.1:*");
    const yml = join(srv, "server.yml");
    const text = await Deno.readTextFile(yml);
    const level = /^ {2}level: info$/m;
    await Deno.writeTextFile(yml, setKey(text, level, "  level: debug"));
    {
      await using server = startNitrosocks(["server", "--config", yml]);
      await server.waitForOutput(/listening on/, "the server to listen");
      await fetchAsAlice(profile, `${target.url}/hello`, server);
      await server.waitForOutput(
        /^\S+ debug \[server[^\]]*\] stream \d+: connected to 127\.0\.0\.1:\d+$/m,
        "the debug line of alice's stream",
      );
    }
    // warn: users.yml open to its group is warned about; the listening and login lines are info.
    await Deno.chmod(join(srv, "users.yml"), 0o640);
    await Deno.writeTextFile(yml, setKey(text, level, "  level: warn"));
    await using server = startNitrosocks(["server", "--config", yml]);
    await server.waitForOutput(/^\S+ warn .*users\.yml is open to its group/m, "the warning");
    await waitListening("127.0.0.1", port, "the server");
    await fetchAsAlice(profile, `${target.url}/hello`, server);
    await new Promise((r) => setTimeout(r, 300));
    assert.doesNotMatch(server.output(), /^\S+ (info|debug) /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
