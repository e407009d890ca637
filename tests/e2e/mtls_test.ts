/**
 * `tls.client_ca` on a real server: Deno's node:tls asks for a client
 * certificate (`requestCert`) and the tunnel admits only clients whose
 * certificate the CA signed, for the user it names. Certificates are made by
 * lib/pki (`issueClientCert`) with the CA `nitrosocks init` wrote.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { type ClientConfig, loadClientConfig, loadServerConfig } from "../../lib/config/mod.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { issueClientCert } from "../../lib/pki/mod.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { reloadUsers } from "../../lib/cli/server_cmd.ts";
import { connectLink, TunnelError } from "../../lib/tunnel/client.ts";
import type { ServerHandle } from "../../lib/tunnel/server.ts";
import { test, waitFor, withDeadline } from "../support/deadline.ts";
import { Logs, startConfiguredServer } from "./_harness.ts";

async function withServer(
  fn: (
    s: { server: ServerHandle; profile: ClientConfig; dir: string; events: EventLog },
  ) => Promise<
    void
  >,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-mtls-" });
  const hub = new EventHub();
  const events = new EventLog(hub);
  const logs = new Logs();
  let server: ServerHandle | undefined;
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
    const yml = join(dir, "server.yml");
    const text = await Deno.readTextFile(yml);
    await Deno.writeTextFile(
      yml,
      text.replace("  alpn: [h2, http/1.1]\n", "  alpn: [h2, http/1.1]\n  client_ca: tls/ca.crt\n"),
    );
    const config = await loadServerConfig(yml);
    assert.ok(config.tls?.clientCaPem?.includes("BEGIN CERTIFICATE"));
    server = await startConfiguredServer(config, logs.logger("server"), hub);
    const out = join(dir, "alice.yml");
    await addUser("alice", { dir, out, server: `127.0.0.1:${server.addr.port}` });
    await reloadUsers(server, config.usersFile, logs.logger("server"));
    await fn({ server, profile: await loadClientConfig(out), dir, events });
  } finally {
    events.close();
    await server?.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function caOf(dir: string) {
  return {
    certPem: await Deno.readTextFile(join(dir, "tls", "ca.crt")),
    keyPem: await Deno.readTextFile(join(dir, "tls", "ca.key")),
  };
}

function login(profile: ClientConfig, port: number): Promise<unknown> {
  return withDeadline(
    connectLink(profile, {
      server: { host: "127.0.0.1", port },
      serverName: profile.serverName,
      transport: "tls",
      ...(profile.endpoints[0]?.caPem === undefined ? {} : { caPem: profile.endpoints[0].caPem }),
      ...(profile.caPem === undefined ? {} : { caPem: profile.caPem }),
    }).then((link) => {
      link.link.conn.close();
      return "ok";
    }, (e: unknown) => e),
    15_000,
    "the login",
  );
}

test("tls.client_ca: a client certificate for the user logs in; none, or another user's, does not", async () => {
  await withServer(async ({ server, profile, dir, events }) => {
    const port = server.addr.port;
    const ca = await caOf(dir);
    const alice = await issueClientCert(ca, "alice");
    const bob = await issueClientCert(ca, "bob");

    // With alice's certificate: logged in.
    const ok = await login({ ...profile, tlsClient: alice }, port);
    assert.equal(ok, "ok", String(ok));
    await waitFor("alice's login", () => events.of("login").length === 1, 5_000);

    // Without a certificate: the connection is a probe (the decoy answers the Hello).
    const none = await login(profile, port);
    assert.ok(none instanceof TunnelError, String(none));
    const probes = () => events.of("refusal", (e) => e.reason === "probe");
    await waitFor("the probe refusal", () => probes().length === 1, 5_000);
    assert.match(probes()[0]!.detail, /no TLS client certificate signed by tls\.client_ca/);

    // bob's certificate, alice's credentials: refused like any failed login.
    const other = await login({ ...profile, tlsClient: bob }, port);
    assert.ok(other instanceof TunnelError, String(other));
    const failed = () => events.of("refusal", (e) => e.reason === "auth_failed");
    await waitFor("the failed login", () => failed().length === 1, 5_000);
    assert.match(failed()[0]!.detail, /certificate names "bob", not this user/);
    assert.equal(events.of("login").length, 1);

    // user add --client-cert: the profile carries carol's certificate and logs in as is.
    const out = join(dir, "carol.yml");
    await addUser("carol", { dir, out, server: `127.0.0.1:${port}`, clientCert: true });
    await reloadUsers(server, join(dir, "users.yml"), new Logs().logger("server"));
    const carol = await loadClientConfig(out);
    assert.match(carol.tlsClient?.certPem ?? "", /BEGIN CERTIFICATE/);
    assert.equal(await login(carol, port), "ok");
    await waitFor(
      "carol's login",
      () => events.of("login", (e) => e.user === "carol").length === 1,
      5_000,
    );
  });
});
