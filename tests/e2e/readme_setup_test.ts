/**
 * README's "Real set-up", followed literally: the server's commands with
 * `--listen 0.0.0.0:8443 --name vpn.example.org`, the share link pasted into
 * `profile import` on "the laptop", the client, and curl to
 * https://example.com/ through it. It runs in a network, mount and PID
 * namespace of its own (`_readme_setup.ts`): the names resolve through a
 * hosts file, vpn.example.org to loopback and example.com to a namespace of
 * its own behind a veth pair, so nothing leaves the machine, and 8443 and
 * 1080 are free whatever else runs here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { test } from "../support/deadline.ts";
import { run, text } from "./_harness.ts";
import { realSetUpBlocks } from "./_readme_setup.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Namespaces of each kind the test makes, and a veth pair inside one. */
const canUnshare = (await run("unshare", [
  "-n",
  "-m",
  "-p",
  "-f",
  "sh",
  "-c",
  "ip link add v0 type veth peer name v1",
], { timeoutMs: 10_000 }).catch(() => null))?.code === 0;

test("README's real set-up names vpn.example.org and has the commands this test runs", async () => {
  const blocks = realSetUpBlocks(await Deno.readTextFile(`${ROOT}/README.md`));
  const all = blocks.flat();
  assert.ok(all.includes(
    "deno task nitrosocks init ./srv --listen 0.0.0.0:8443 --name vpn.example.org",
  ));
  for (const cmd of ["user add alice", "server --config", "profile import", "client --config"]) {
    assert.ok(all.some((l) => l.includes(cmd)), cmd);
  }
  assert.ok(all.some((l) => l.startsWith("curl --socks5-hostname 127.0.0.1:1080 https://")));
});

test.slow({
  name:
    "README's real set-up, followed literally, gets a request through; git ignores what it made",
  ignore: !canUnshare,
  async fn() {
    const work = await Deno.makeTempDir();
    const hosts = `${work}/hosts`;
    await Deno.writeTextFile(
      hosts,
      "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 vpn.example.org\n198.51.100.7 example.com\n",
    );
    try {
      const r = await run("unshare", [
        "--net",
        "--mount",
        "--pid",
        "--fork",
        // Its own /proc: the web server's PID (from inside this PID namespace) must name the same
        // process in /proc/PID/ns/net and in `ip link … netns PID`, not a host process.
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
        'ip link set lo up && mount --bind "$1" /etc/hosts && exec "$0" run -A "$2" "$3"',
        Deno.execPath(),
        hosts,
        new URL("./_readme_setup.ts", import.meta.url).pathname,
        work,
      ], { timeoutMs: 200_000, cwd: ROOT });
      const lines = text(r).trim().split("\n");
      const out = JSON.parse(lines.at(-1) ?? "{}") as Record<string, unknown>;
      assert.equal(
        out.error,
        undefined,
        `${out.error}\n${(out.logs as string[] ?? []).join("\n")}\n${r.stderr}`,
      );
      assert.equal(out.ok, true, r.stderr);
      // user add chose the name clients can reach, not 127.0.0.1 …
      assert.equal(out.clientsDial, "vpn.example.org:8443");
      assert.ok((out.linkLength as number) <= 400, `link of ${out.linkLength} characters`);
      assert.equal(out.profileMode, 0o600);
      // … and the request went through the tunnel to example.com.
      assert.equal(out.curl, "hello from example.com!\n");
      assert.deepEqual(
        out.untracked,
        { server: "", laptop: "" },
        "git ignores what the commands made",
      );
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
