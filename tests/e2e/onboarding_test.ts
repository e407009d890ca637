/**
 * One-paste onboarding with the real programs: `user add` prints a short
 * link; `profile import` and `client --link -` take it on standard input,
 * fetch the server's CA and check it against the link's hash, and curl
 * gets a page through the tunnel. A server that sends another CA is
 * refused.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connect } from "../../mod.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { createTlsFixture } from "../support/certs.ts";
import { clientReady, setUpServer, socksCurl, startNitrosocks } from "../support/nitro_process.ts";
import { step, test } from "../support/deadline.ts";

/** Runs a short nitrosocks command to completion; returns its exit code and output. */
async function nitrosocks(args: string[], opts: { stdin?: string; cwd?: string } = {}) {
  const p = startNitrosocks(args, opts);
  const status = await step(`nitrosocks ${args.slice(0, 2).join(" ")} to finish`, p.status);
  await p.close();
  return { code: status.code, out: p.output() };
}

/** A server directory on loopback named vpn.example.org, a running server, alice's link. */
async function serverWithAlice(dir: string) {
  const { srv, port, added } = await setUpServer(dir, "--routes", "127.0.0.1:*");
  const link = /^(nitrosocks:\/\/\S+)$/m.exec(added)![1]!;
  const server = startNitrosocks(["server", "--config", join(srv, "server.yml")]);
  await server.waitForOutput(/listening on/, "the server to listen");
  return { srv, port, link, server };
}

test.slow(
  "a share link on stdin: profile import writes a 0600 profile, client --link - carries curl",
  async () => {
    const dir = await Deno.makeTempDir();
    await using target = await startHttpTarget();
    const { srv, link, server } = await serverWithAlice(dir);
    try {
      assert.ok(link.length <= 400, `the link is ${link.length} characters`);

      const imported = join(dir, "imported.yml");
      const imp = await nitrosocks(["profile", "import", "--out", imported], {
        stdin: `${link}\n`,
      });
      assert.equal(imp.code, 0, imp.out);
      assert.match(imp.out, /Wrote client profile .*imported\.yml \(mode 0600\)/);
      assert.equal((await Deno.stat(imported)).mode! & 0o777, 0o600);
      const profile = await Deno.readTextFile(imported);
      const ca = (await Deno.readTextFile(join(srv, "tls/ca.crt"))).trim().split("\n");
      for (const line of ca) assert.ok(profile.includes(`  ${line}`), "the fetched CA is in it");

      // The link itself, on stdin: nothing secret in the client's argv.
      await using client = startNitrosocks(
        ["client", "--link", "-", "--socks", "127.0.0.1:0"],
        { stdin: `${link}\n` },
      );
      const curl = await socksCurl(await clientReady(client), `${target.url}/hello`);
      assert.equal(curl.code, 0, curl.stderr);
      assert.ok(curl.body.length > 0);
      assert.ok(target.requests.some((r) => r.path === "/hello"), "the request reached the target");

      // The library takes the link as well (connect() fetches and checks the CA the same way).
      {
        await using tunnel = await connect(link);
        using conn = await tunnel.dial({ hostname: "127.0.0.1", port: target.port });
        await conn.write(new TextEncoder().encode("GET /lib HTTP/1.0\r\nHost: x\r\n\r\n"));
        const head = new Uint8Array(7);
        await conn.readFull(head, { timeoutMs: 10_000 });
        assert.equal(new TextDecoder().decode(head), "HTTP/1.");
        assert.ok(target.requests.some((r) => r.path === "/lib"), "the target got it");
      }

      // The imported profile and a file holding the link work the same way.
      const linkFile = join(dir, "alice.link");
      await Deno.writeTextFile(linkFile, `${link}\n`, { mode: 0o600 });
      for (const config of [imported, linkFile]) {
        await using c = startNitrosocks(["client", "--config", config, "--socks", "127.0.0.1:0"]);
        const got = await socksCurl(await clientReady(c), `${target.url}/again`);
        assert.equal(got.code, 0, `${config}: ${got.stderr}\n${c.output()}`);
      }
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

test.slow("a share link whose server sends another CA is refused, and nothing is written", async () => {
  const dir = await Deno.makeTempDir();
  const { link, server } = await serverWithAlice(dir);
  const { server: other } = await createTlsFixture(["vpn.example.org", "127.0.0.1"]);
  const impostor = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: other.chainPem,
    key: other.keyPem,
  });
  const accepting = (async () => {
    for await (const c of impostor) c.handshake().catch(() => {}).finally(() => c.close());
  })();
  try {
    const out = join(dir, "x.yml");
    const r = await nitrosocks([
      "profile",
      "import",
      "--out",
      out,
      "--server",
      `127.0.0.1:${impostor.addr.port}`,
    ], { stdin: `${link}\n` });
    assert.equal(r.code, 1);
    assert.match(r.out, /did not send the CA this share link names/);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    // A damaged link is refused before anything is dialed.
    const bad = await nitrosocks(["profile", "import", "--out", out], {
      stdin: `${link.slice(0, -3)}\n`,
    });
    assert.equal(bad.code, 1);
    assert.match(bad.out, /Invalid share link: /);
  } finally {
    impostor.close();
    await accepting;
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

test.slow("a password user's link and password both on stdin: client --link - reads one line each", async () => {
  const dir = await Deno.makeTempDir();
  await using target = await startHttpTarget();
  const { srv } = await setUpServer(dir, "--routes", "127.0.0.1:*");
  const pw = "correct horse battery staple";
  const add = startNitrosocks([
    "user",
    "add",
    "pat",
    "--dir",
    srv,
    "--out",
    join(dir, "pat.yml"),
    "--routes",
    "127.0.0.1:*",
    "--password",
    "--iterations",
    "4096",
  ], { stdin: `${pw}\n` });
  assert.equal((await step("user add --password", add.status)).code, 0, add.output());
  await add.close();
  const link = /^(nitrosocks:\/\/\S+)$/m.exec(add.output())![1]!;
  await using server = startNitrosocks(["server", "--config", join(srv, "server.yml")]);
  await server.waitForOutput(/listening on/, "the server to listen");
  try {
    await using client = startNitrosocks(["client", "--link", "-", "--socks", "127.0.0.1:0"], {
      stdin: `${link}\n${pw}\n`,
    });
    const got = await socksCurl(await clientReady(client), `${target.url}/pat`);
    assert.equal(got.code, 0, got.stderr + client.output());
    assert.ok(target.requests.some((r) => r.path === "/pat"));
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
