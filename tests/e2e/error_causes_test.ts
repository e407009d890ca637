/**
 * Errors that name their cause, with the real programs: secret files open to
 * other users are warned about (as ssh does), a TOTP failure names clock
 * skew on both sides, a port that is not TLS is reported as such (not "check
 * the ca"), a busy port names its address, a missing Deno permission is
 * named as one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeBase32 } from "../../lib/config/mod.ts";
import { startHttpTarget } from "../support/http_target.ts";
import { clientReady, setUpServer, startNitrosocks } from "../support/nitro_process.ts";
import { step, test } from "../support/deadline.ts";
import { run } from "./_harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

test.slow("secret files open to others are warned about with the chmod that fixes them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { srv, profile } = await setUpServer(dir);
    {
      // As init and user add wrote them (0600): no warning.
      await using server = startNitrosocks(["server", "--config", join(srv, "server.yml")]);
      await server.waitForOutput(/listening on/, "the server to listen");
      await using client = startNitrosocks([
        "client",
        "--config",
        profile,
        "--socks",
        "127.0.0.1:0",
      ]);
      await clientReady(client);
      assert.doesNotMatch(server.output() + client.output(), /chmod 600/);
    }
    for (const f of ["keys/server.key", "users.yml", "tls/server.key"]) {
      await Deno.chmod(join(srv, f), 0o644);
    }
    await Deno.chmod(profile, 0o640);
    await using server = startNitrosocks(["server", "--config", join(srv, "server.yml")]);
    await server.waitForOutput(/listening on/, "the server to listen");
    const exposed: [string, string][] = [
      ["keys/server.key", "the server's private key"],
      ["users.yml", "the users' tokens"],
      ["tls/server.key", "the TLS certificate's private key"],
    ];
    for (const [f, holds] of exposed) {
      assert.match(
        server.output(),
        new RegExp(
          `warn .*${
            join(srv, f).replace(/[.]/g, "\\.")
          } is open to other users \\(mode 0644\\): it holds ${holds}.*; run: chmod 600 `,
        ),
      );
    }
    await using client = startNitrosocks(["client", "--config", profile, "--socks", "127.0.0.1:0"]);
    await clientReady(client);
    assert.match(
      client.output(),
      /alice\.yml is open to its group \(mode 0640\): it holds user "alice"'s private key; run: chmod 600 /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test.slow("a wrong TOTP code names clock skew in the server's log and the client's", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { srv, profile } = await setUpServer(dir, "--totp");
    const text = await Deno.readTextFile(profile);
    // Another secret: every code the client makes is wrong, as with a clock minutes off.
    const other = encodeBase32(new Uint8Array(20).fill(9));
    await Deno.writeTextFile(profile, text.replace(/^totp: .*$/m, `totp: "${other}"`));
    await using server = startNitrosocks(["server", "--config", join(srv, "server.yml")]);
    await server.waitForOutput(/listening on/, "the server to listen");
    await using client = startNitrosocks(["client", "--config", profile, "--socks", "127.0.0.1:0"]);
    await client.waitForOutput(
      /refused the login: .*this profile sends TOTP codes, which the server accepts only within 30 s of its clock, so a clock off here or on the server is the likely cause/,
      "the client to name clock skew",
    );
    await server.waitForOutput(
      /wrong TOTP code for user "alice": codes are accepted within 30 s of this server's clock, so a clock off on the client or here is the likely cause/,
      "the server to name clock skew",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test.slow("a port that is not TLS, a busy port and a missing permission are named as such", async () => {
  const dir = await Deno.makeTempDir();
  await using web = await startHttpTarget();
  try {
    const { profile } = await setUpServer(dir);
    // The profile pointed at a plain HTTP server.
    await using client = startNitrosocks([
      "client",
      "--config",
      profile,
      "--socks",
      "127.0.0.1:0",
      "--server",
      `127.0.0.1:${web.port}`,
    ]);
    const said = await client.waitForOutput(
      /Cannot reach the server at [^\n]*/,
      "the client to explain the failed dial",
    );
    assert.match(
      said[0],
      new RegExp(
        `127\\.0\\.0\\.1:${web.port} does not speak TLS: .*check the profile's server address and port`,
      ),
    );
    assert.doesNotMatch(said[0], /check the profile's ca/);

    // A SOCKS5 port already taken: the address is in the error.
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const busy = startNitrosocks([
        "client",
        "--config",
        profile,
        "--socks",
        `127.0.0.1:${taken.addr.port}`,
      ]);
      assert.equal((await step("the client to refuse the busy port", busy.status)).code, 1);
      await busy.close();
      assert.match(
        busy.output(),
        new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${taken.addr.port}: address already in use`),
      );
    } finally {
      taken.close();
    }

    // Without --allow-net: the missing permission is named, with the flags it needs.
    const r = await run(Deno.execPath(), [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-env=LOG_TOKENS,LOG_STREAM",
      "main.ts",
      "client",
      "--config",
      profile,
    ], { cwd: ROOT, env: { NO_COLOR: "1" } });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^nitrosocks client: a Deno permission is missing: Requires net access to .*nitrosocks needs --allow-net --allow-read/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
