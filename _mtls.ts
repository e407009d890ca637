import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import tls from "node:tls";
import { generateCa, issueServerCert } from "./lib/pki/mod.ts";

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
function pem(label: string, der: ArrayBuffer) {
  const b = btoa(String.fromCharCode(...new Uint8Array(der))).replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b}\n-----END ${label}-----\n`;
}
const ca = await generateCa("test CA");
const srv = await issueServerCert(ca, { dnsNames: ["localhost"] });
const caCert = new x509.X509Certificate(ca.certPem);
const der = Uint8Array.from(atob(ca.keyPem.replace(/-----[^-]+-----|\s/g, "")), (c) => c.charCodeAt(0));
const caKey = await crypto.subtle.importKey("pkcs8", der, EC, false, ["sign"]);
const keys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
const cc = await x509.X509CertificateGenerator.create({
  serialNumber: "01", subject: "CN=alice", issuer: caCert.subjectName,
  notBefore: new Date(Date.now() - 60000), notAfter: new Date(Date.now() + 86400000),
  publicKey: keys.publicKey, signingKey: caKey, signingAlgorithm: SIGN,
  extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
});
const clientCert = cc.toString("pem") + "\n";
const clientKey = pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey));

const server = tls.createServer({ key: srv.keyPem, cert: srv.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.3" }, (s: tls.TLSSocket) => {
  const peer = s.getPeerCertificate();
  console.log("server: authorized", s.authorized, "authError", s.authorizationError, "peer CN", peer?.subject?.CN, "keys", Object.keys(peer ?? {}).length);
  s.end("bye");
});
server.on("tlsClientError", (e: Error) => console.log("tlsClientError", e.message));
await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
const port = (server.address() as { port: number }).port;
for (const withCert of [true, false]) {
  try {
    const c = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca.certPem], ...(withCert ? { cert: clientCert, key: clientKey } : {}) });
    const buf = new Uint8Array(10);
    const n = await c.read(buf);
    console.log("deno client withCert", withCert, "read", n);
    c.close();
  } catch (e) { console.log("deno client error", withCert, String(e)); }
  await new Promise((r) => setTimeout(r, 200));
}
// node client
await new Promise<void>((resolve) => {
  const s = tls.connect({ host: "127.0.0.1", port, ca: [ca.certPem], cert: clientCert, key: clientKey, servername: "localhost" }, () => { s.on("data", () => {}); s.on("end", () => { s.destroy(); resolve(); }); });
  s.on("error", (e) => { console.log("node client error", e.message); resolve(); });
});
await new Promise((r) => setTimeout(r, 200));
server.close();
