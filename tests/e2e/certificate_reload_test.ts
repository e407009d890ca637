/**
 * A running server serves a renewed certificate to new connections without
 * a restart: `cert renew` on an `init` directory, and an ACME client's
 * symlink swap on a directory made with `init --cert/--key`. The served
 * certificate is read with `openssl s_client`, as a prober would.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { loadServerConfig } from "../../lib/config/mod.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { initServerDir, renewServerCert } from "../../lib/provision/mod.ts";
import { createCa, issueCert } from "../support/certs.ts";
import { step, test } from "../support/deadline.ts";
import { spawnWithDeadline } from "../support/process.ts";
import { Logs, startConfiguredServer, startPair } from "./_harness.ts";

/** The serial of the leaf certificate `openssl s_client` is served on `port`. */
async function servedSerial(port: number): Promise<string> {
  const out = await spawnWithDeadline("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }, 20_000).output;
  const text = new TextDecoder().decode(out.stdout);
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text);
  assert.ok(pem, `no certificate in openssl s_client's output:\n${text}`);
  return new X509Certificate(pem[0]).serialNumber;
}

async function fileSerial(path: string): Promise<string> {
  return new X509Certificate(await Deno.readTextFile(path)).serialNumber;
}

test("cert renew on a running server: new connections get the new certificate at once", async () => {
  await using pair = await startPair({ noClient: true });
  const certFile = join(pair.dir, "tls", "server.crt");
  const first = await fileSerial(certFile);
  assert.equal(await servedSerial(pair.serverPort), first);
  await renewServerCert(pair.dir);
  const renewed = await fileSerial(certFile);
  assert.notEqual(renewed, first);
  await pair.serverEvents.waitFor("certificate", {
    match: (e) => e.action === "reloaded" && e.file === certFile,
    timeoutMs: 10_000,
  });
  assert.equal(await servedSerial(pair.serverPort), renewed);
  assert.equal(pair.serverEvents.of("certificate", (e) => e.action === "rejected").length, 0);
});

test("an ACME-style symlink swap of --cert/--key files is served; a mismatched pair is refused and the old one kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-acme-" });
  const hub = new EventHub();
  const events = new EventLog(hub);
  const logs = new Logs();
  try {
    // certbot's layout: live/NAME/*.pem are symlinks into archive/NAME/*N.pem.
    const ca = await createCa({ commonName: "Some ACME CA" });
    const archive = join(dir, "archive");
    const live = join(dir, "live");
    await Deno.mkdir(archive);
    await Deno.mkdir(live);
    const issue = async (n: number) => {
      const c = await issueCert(ca, { dnsNames: ["localhost"] });
      await Deno.writeTextFile(join(archive, `fullchain${n}.pem`), c.certPem + ca.certPem);
      await Deno.writeTextFile(join(archive, `privkey${n}.pem`), c.keyPem);
      return c;
    };
    /** Points live/NAME at archive/NAME(n), atomically (a new link renamed over the old). */
    const point = async (name: string, n: number) => {
      const tmp = join(live, `.${name}.new`);
      await Deno.symlink(join(archive, `${name}${n}.pem`), tmp);
      await Deno.rename(tmp, join(live, `${name}.pem`));
    };
    await issue(1);
    await point("fullchain", 1);
    await point("privkey", 1);
    const srv = join(dir, "srv");
    await initServerDir(srv, {
      listen: "127.0.0.1:0",
      certFile: join(live, "fullchain.pem"),
      keyFile: join(live, "privkey.pem"),
    });
    const config = await loadServerConfig(join(srv, "server.yml"));
    const server = await startConfiguredServer(config, logs.logger("server"), hub);
    try {
      const port = server.addr.port;
      const first = await fileSerial(join(archive, "fullchain1.pem"));
      assert.equal(await servedSerial(port), first);

      // Renewal: new files in archive/, then the key link, then the certificate link.
      const second = await issue(2);
      await point("privkey", 2);
      await point("fullchain", 2);
      await events.waitFor("certificate", {
        match: (e) => e.action === "reloaded",
        timeoutMs: 10_000,
      });
      assert.equal(await servedSerial(port), new X509Certificate(second.certPem).serialNumber);

      // A certificate whose key is another one's: refused, the served one stays.
      await issue(3);
      await Deno.copyFile(join(archive, "privkey2.pem"), join(archive, "privkey3.pem"));
      await point("fullchain", 3);
      await point("privkey", 3);
      const [refused] = await events.waitFor("certificate", {
        match: (e) => e.action === "rejected",
        timeoutMs: 10_000,
      });
      assert.match(refused!.detail, /key/i);
      assert.equal(await servedSerial(port), new X509Certificate(second.certPem).serialNumber);
    } finally {
      await step("the server to close", server.close());
    }
  } finally {
    events.close();
    await Deno.remove(dir, { recursive: true });
  }
});
