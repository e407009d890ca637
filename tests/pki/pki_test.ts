import assert from "node:assert/strict";
import {
  certificateNames,
  DEFAULT_SERVER_CERT_DAYS,
  generateCa,
  issueServerCert,
  MAX_SERVER_CERT_DAYS,
} from "../../lib/pki/mod.ts";
import { test } from "../support/deadline.ts";
import { assertRejectsWith } from "../support/assert.ts";

const ca = await generateCa("Example Issuing CA", { organization: "Example" });
const server = await issueServerCert(ca, {
  dnsNames: ["nitro.example"],
  ips: ["10.9.8.7", "127.0.0.1", "::1"],
});

async function roundTrip(
  listenHost: string,
  connectHost: string,
  caCerts: string[],
): Promise<string> {
  using listener = Deno.listenTls({
    hostname: listenHost,
    port: 0,
    cert: server.certPem,
    key: server.keyPem,
  });
  const accepted = (async () => {
    const conn = await listener.accept();
    try {
      await conn.handshake();
      await conn.write(new TextEncoder().encode("hello"));
    } catch {
      // the client refused us; nothing to send
    } finally {
      conn.close();
    }
  })();
  try {
    const conn = await Deno.connectTls({
      hostname: connectHost,
      port: listener.addr.port,
      caCerts,
    });
    try {
      const buf = new Uint8Array(5);
      let n = 0;
      while (n < 5) {
        const r = await conn.read(buf.subarray(n));
        if (r === null) break;
        n += r;
      }
      return new TextDecoder().decode(buf.subarray(0, n));
    } finally {
      conn.close();
    }
  } finally {
    await accepted;
  }
}

test("issueServerCert() works for a real TLS connection on 127.0.0.1", async () => {
  assert.equal(await roundTrip("127.0.0.1", "127.0.0.1", [ca.certPem]), "hello");
});

test("issueServerCert() works for a real TLS connection on ::1", async () => {
  assert.equal(await roundTrip("::1", "::1", [ca.certPem]), "hello");
});

test("a client that does not trust the CA refuses the certificate", async () => {
  const other = await generateCa("Other CA");
  await assertRejectsWith(
    roundTrip("127.0.0.1", "127.0.0.1", [other.certPem]),
    Deno.errors.InvalidData,
    "invalid peer certificate: UnknownIssuer",
  );
});

test("issueServerCert() puts the names it is given, and only those, in subjectAltName", async () => {
  const publicOnly = await issueServerCert(ca, { dnsNames: ["nitro.example"] });
  assert.deepEqual(certificateNames(publicOnly.certPem), { dnsNames: ["nitro.example"], ips: [] });
  assert.deepEqual(certificateNames(server.certPem), {
    dnsNames: ["nitro.example"],
    ips: ["10.9.8.7", "127.0.0.1", "::1"],
  });
  assert.match(server.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
});

test("issueServerCert() lasts 90 days by default, caps validity at 825 and refuses bad names", async () => {
  await assertRejectsWith(
    issueServerCert(ca, { days: MAX_SERVER_CERT_DAYS + 1 }),
    RangeError,
    "Invalid validity: 826 days exceeds maximum 825",
  );
  await assertRejectsWith(
    issueServerCert(ca, { dnsNames: ["bad name"] }),
    TypeError,
    'Invalid DNS name "bad name"',
  );
  await assertRejectsWith(
    issueServerCert(ca, { ips: ["300.1.1.1"] }),
    TypeError,
    'Invalid IP address "300.1.1.1"',
  );
  const now = new Date("2030-01-01T00:00:00Z");
  const c = await issueServerCert(ca, { dnsNames: ["nitro.example"], now });
  const { X509Certificate } = await import("node:crypto");
  const x = new X509Certificate(c.certPem);
  const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86400_000;
  assert.equal(days, DEFAULT_SERVER_CERT_DAYS);
  assert.ok(Date.parse(x.validFrom) < now.getTime());
  const longest = new X509Certificate(
    (await issueServerCert(ca, { dnsNames: ["nitro.example"], days: MAX_SERVER_CERT_DAYS }))
      .certPem,
  );
  assert.equal(
    (Date.parse(longest.validTo) - Date.parse(longest.validFrom)) / 86400_000,
    MAX_SERVER_CERT_DAYS,
  );
  await assertRejectsWith(
    issueServerCert(ca, {}),
    TypeError,
    "Cannot issue a server certificate without a DNS name or IP address",
  );
});
