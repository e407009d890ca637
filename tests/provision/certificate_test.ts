/**
 * The certificates `init` makes look like any small site's (checked with
 * the openssl CLI, as a prober would read them), `init --cert/--key` uses
 * the user's own, and `renewServerCert` issues a fresh one from the same CA.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadServerConfig } from "../../lib/config/mod.ts";
import {
  initServerDir,
  neutralCaName,
  ProvisionInputError,
  renewServerCert,
} from "../../lib/provision/mod.ts";
import { assertRejectsWith } from "../support/assert.ts";
import { createCa, issueCert } from "../support/certs.ts";
import { test } from "../support/deadline.ts";
import { spawnWithDeadline } from "../support/process.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-cert-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function openssl(...args: string[]): Promise<string> {
  const out = await spawnWithDeadline("openssl", { args, stdout: "piped", stderr: "piped" }, 20_000)
    .output;
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  return text;
}

/** `openssl x509 -text` of a PEM file, without the hex dumps. */
async function x509Text(file: string): Promise<string> {
  return (await openssl("x509", "-in", file, "-noout", "-text"))
    .split("\n").filter((l) => !/^\s+([0-9a-f]{2}:)+[0-9a-f]{0,2}$/.test(l)).join("\n");
}

function field(text: string, label: string): string {
  const m = new RegExp(`^\\s*${label}:?\\s*(critical)?\\n?\\s*(.*)$`, "m").exec(text);
  assert.ok(m, `no "${label}" in:\n${text}`);
  return `${m[1] === undefined ? "" : "critical "}${m[2]!.trim()}`;
}

function validityDays(text: string): number {
  const nb = Date.parse(/Not Before: (.*)/.exec(text)![1]!);
  const na = Date.parse(/Not After : (.*)/.exec(text)![1]!);
  return (na - nb) / 86_400_000;
}

test("init's certificate for a public name: the server name alone, a neutral issuer, 90 days, usual extensions", async () => {
  await withDir(async (dir) => {
    await initServerDir(dir, { listen: "0.0.0.0:8443", name: "vpn.example.net" });
    const leaf = await x509Text(join(dir, "tls", "server.crt"));
    const ca = await x509Text(join(dir, "tls", "ca.crt"));
    // Nothing in either certificate names the software.
    assert.doesNotMatch(leaf + ca, /nitro/i);
    assert.match(leaf, /^\s*Subject: CN = vpn\.example\.net$/m);
    assert.match(leaf, /^\s*Issuer: O = Example, CN = Example Issuing CA$/m);
    assert.match(ca, /^\s*Subject: O = Example, CN = Example Issuing CA$/m);
    assert.equal(field(leaf, "X509v3 Subject Alternative Name"), "DNS:vpn.example.net");
    assert.doesNotMatch(leaf, /IP Address/);
    assert.equal(validityDays(leaf), 90);
    assert.equal(field(leaf, "X509v3 Basic Constraints"), "critical CA:FALSE");
    assert.equal(field(leaf, "X509v3 Key Usage"), "critical Digital Signature");
    assert.equal(field(leaf, "X509v3 Extended Key Usage"), "TLS Web Server Authentication");
    assert.match(leaf, /X509v3 Subject Key Identifier/);
    assert.match(leaf, /X509v3 Authority Key Identifier/);
    assert.match(leaf, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.equal(field(ca, "X509v3 Basic Constraints"), "critical CA:TRUE, pathlen:0");
    assert.equal(field(ca, "X509v3 Key Usage"), "critical Certificate Sign, CRL Sign");
    const verified = await openssl(
      "verify",
      "-CAfile",
      join(dir, "tls", "ca.crt"),
      "-purpose",
      "sslserver",
      join(dir, "tls", "server.crt"),
    );
    assert.match(verified, /: OK$/m);
  });
});

test("init adds loopback addresses only for a loopback listen address or the name localhost", async () => {
  for (
    const [opts, san] of [
      [
        { listen: "127.0.0.1:0" },
        "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
      ],
      [{ listen: "[::1]:0", name: "a.example" }, "DNS:a.example, IP Address:0:0:0:0:0:0:0:1"],
      [{ listen: "0.0.0.0:443", name: "a.example" }, "DNS:a.example"],
      [{ listen: "192.0.2.7:443", name: "a.example" }, "DNS:a.example"],
    ] as const
  ) {
    await withDir(async (dir) => {
      await initServerDir(dir, opts);
      const leaf = await x509Text(join(dir, "tls", "server.crt"));
      assert.equal(field(leaf, "X509v3 Subject Alternative Name"), san, JSON.stringify(opts));
    });
  }
});

test("neutralCaName() takes the registrable label of the server name", () => {
  assert.deepEqual(neutralCaName("vpn.example.co.uk"), {
    name: "Example Issuing CA",
    organization: "Example",
  });
  assert.equal(neutralCaName("my-shop.example").name, "My Shop Issuing CA");
  assert.equal(neutralCaName("www.my-shop.com").name, "My Shop Issuing CA");
  assert.equal(neutralCaName("localhost").name, "Local Issuing CA");
});

test("renewServerCert() issues a new key and certificate with the same names from the same CA", async () => {
  await withDir(async (dir) => {
    await initServerDir(dir, { listen: "127.0.0.1:8443", name: "vpn.example.net" });
    const certFile = join(dir, "tls", "server.crt");
    const before = await x509Text(certFile);
    const serialBefore = await openssl("x509", "-in", certFile, "-noout", "-serial");
    const keyBefore = await Deno.readTextFile(join(dir, "tls", "server.key"));
    const later = new Date(Date.now() + 80 * 86_400_000);
    const r = await renewServerCert(dir, { now: later });
    const after = await x509Text(certFile);
    assert.equal(r.certFile, certFile);
    assert.deepEqual(r.dnsNames, ["vpn.example.net"]);
    assert.notEqual(await openssl("x509", "-in", certFile, "-noout", "-serial"), serialBefore);
    assert.notEqual(await Deno.readTextFile(join(dir, "tls", "server.key")), keyBefore);
    assert.equal(
      field(after, "X509v3 Subject Alternative Name"),
      field(before, "X509v3 Subject Alternative Name"),
    );
    assert.ok(
      Math.abs(r.notAfter.getTime() - (later.getTime() + 89 * 86_400_000 - 3600_000)) <
        2000 + 86_400_000,
    );
    assert.match(
      await openssl(
        "verify",
        "-attime",
        String(Math.floor(later.getTime() / 1000) + 60),
        "-CAfile",
        join(dir, "tls", "ca.crt"),
        certFile,
      ),
      /: OK$/m,
    );
    // The pair loads: the new key is the new certificate's.
    const cfg = await loadServerConfig(join(dir, "server.yml"));
    const { X509Certificate, createPrivateKey } = await import("node:crypto");
    assert.ok(
      new X509Certificate(cfg.tls!.certPem).checkPrivateKey(createPrivateKey(cfg.tls!.keyPem)),
    );
    await assertRejectsWith(
      renewServerCert(dir, { days: 826 }),
      ProvisionInputError,
      "Invalid --days 826",
    );
  });
});

test("init --cert/--key uses the user's own certificate: no CA, server.yml names the files", async () => {
  await withDir(async (dir) => {
    const ca = await createCa({ commonName: "Some ACME CA" });
    const own = await issueCert(ca, { dnsNames: ["own.example"] });
    const other = await issueCert(ca, { dnsNames: ["own.example"] });
    await Deno.writeTextFile(join(dir, "fullchain.pem"), own.certPem + ca.certPem);
    await Deno.writeTextFile(join(dir, "privkey.pem"), own.keyPem);
    await Deno.writeTextFile(join(dir, "other.pem"), other.keyPem);
    const srv = join(dir, "srv");
    await assertRejectsWith(
      initServerDir(srv, { certFile: join(dir, "fullchain.pem") }),
      ProvisionInputError,
      "--cert and --key go together",
    );
    await assertRejectsWith(
      initServerDir(srv, { certFile: join(dir, "fullchain.pem"), keyFile: join(dir, "other.pem") }),
      ProvisionInputError,
      "is not the private key of --cert",
    );
    await assertRejectsWith(
      initServerDir(srv, { certFile: join(dir, "privkey.pem"), keyFile: join(dir, "privkey.pem") }),
      ProvisionInputError,
      "not a PEM certificate",
    );
    const r = await initServerDir(srv, {
      listen: "0.0.0.0:443",
      name: "own.example",
      certFile: join(dir, "fullchain.pem"),
      keyFile: join(dir, "privkey.pem"),
    });
    assert.deepEqual(r.files, ["server.yml", "users.yml", "keys/server.key"]);
    assert.equal(await Deno.stat(join(srv, "tls")).catch(() => undefined), undefined);
    const cfg = await loadServerConfig(join(srv, "server.yml"));
    assert.deepEqual(cfg.tlsFiles, {
      cert: join(dir, "fullchain.pem"),
      key: join(dir, "privkey.pem"),
    });
    assert.equal(cfg.tls!.certPem, own.certPem + ca.certPem);
    await assertRejectsWith(renewServerCert(srv), ProvisionInputError, "renew it with the tool");
  });
});
