/**
 * Test-only X.509 helpers: a throwaway certificate authority and leaf
 * certificates for `Deno.listenTls` / `Deno.connectTls`. ECDSA P-256 keys
 * from Web Crypto, certificates from `@peculiar/x509`. This is NOT the
 * product's PKI (`lib/pki`); tests must not depend on it for product code.
 *
 * Exports:
 * - `createCa(opts?)` → `TestCa` (`certPem`, `keyPem`, `name`, signing key)
 * - `issueCert(ca, opts)` → `TestCert` (`certPem`, `keyPem`) for DNS names
 *   and IP addresses, `serverAuth`, optionally already expired
 * - `createTlsFixture(names?)` → `{ ca, server }` in one call (the common case)
 *
 * @example
 * ```ts
 * import { createTlsFixture } from "./certs.ts";
 * const { ca, server } = await createTlsFixture(["localhost", "127.0.0.1"]);
 * const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: server.certPem, key: server.keyPem });
 * const conn = await Deno.connectTls({ hostname: "127.0.0.1", port: listener.addr.port, caCerts: [ca.certPem] });
 * ```
 *
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

const KEY_ALG: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGN_ALG: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const DAY_MS = 86_400_000;

/** A certificate authority able to issue test certificates. */
export interface TestCa {
  /** Subject common name. */
  readonly name: string;
  /** The CA certificate, PEM. Give this to the client as its trust anchor. */
  readonly certPem: string;
  /** The CA private key, PKCS#8 PEM. */
  readonly keyPem: string;
  /** The parsed CA certificate. */
  readonly cert: x509.X509Certificate;
  /** The CA's Web Crypto key pair (private key signs issued certificates). */
  readonly keys: CryptoKeyPair;
}

/** A leaf certificate and its key, ready for `Deno.listenTls`. */
export interface TestCert {
  /** Leaf certificate, PEM. */
  readonly certPem: string;
  /** Leaf private key, PKCS#8 PEM. */
  readonly keyPem: string;
  /** Leaf followed by the issuing CA, PEM. */
  readonly chainPem: string;
}

/** Options for {@linkcode createCa}. */
export interface CreateCaOptions {
  /** Common name; default "NitroSocks Test CA <random>". */
  commonName?: string;
}

/** Options for {@linkcode issueCert}. */
export interface IssueCertOptions {
  /** DNS subject alternative names, e.g. `["localhost"]`. */
  dnsNames?: string[];
  /** IP subject alternative names, e.g. `["127.0.0.1", "::1"]`. */
  ipAddresses?: string[];
  /** Common name; default the first DNS name or IP. */
  commonName?: string;
  /** Issue a certificate whose validity ended yesterday. */
  expired?: boolean;
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f | 0x01; // positive, no leading zero byte
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function keyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(pkcs8, "PRIVATE KEY");
}

/**
 * Generates a fresh self-signed CA (ECDSA P-256, valid from yesterday for 30 days).
 *
 * @example
 * ```ts
 * import { createCa } from "./certs.ts";
 * const ca = await createCa({ commonName: "Forged CA" });
 * ca.certPem.startsWith("-----BEGIN CERTIFICATE-----"); // true
 * ```
 */
export async function createCa(opts: CreateCaOptions = {}): Promise<TestCa> {
  const name = opts.commonName ?? `NitroSocks Test CA ${randomSerial().slice(0, 8)}`;
  const keys = await crypto.subtle.generateKey(KEY_ALG, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [name] }],
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 30 * DAY_MS),
    signingAlgorithm: SIGN_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, certPem: cert.toString("pem"), keyPem: await keyPem(keys.privateKey), cert, keys };
}

/**
 * Issues a server certificate signed by `ca`.
 *
 * @example
 * ```ts
 * import { createCa, issueCert } from "./certs.ts";
 * const ca = await createCa();
 * const leaf = await issueCert(ca, { dnsNames: ["example.test"], ipAddresses: ["127.0.0.1"] });
 * ```
 */
export async function issueCert(ca: TestCa, opts: IssueCertOptions): Promise<TestCert> {
  const dnsNames = opts.dnsNames ?? [];
  const ips = opts.ipAddresses ?? [];
  if (dnsNames.length + ips.length === 0) {
    throw new TypeError("Cannot issue certificate: no DNS name or IP address given");
  }
  const cn = opts.commonName ?? dnsNames[0] ?? ips[0]!;
  const keys = await crypto.subtle.generateKey(KEY_ALG, true, ["sign", "verify"]);
  const now = Date.now();
  const notBefore = opts.expired ? new Date(now - 30 * DAY_MS) : new Date(now - DAY_MS);
  const notAfter = opts.expired ? new Date(now - DAY_MS) : new Date(now + 30 * DAY_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [cn] }],
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN_ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...ips.map((value) => ({ type: "ip" as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  const certPem = cert.toString("pem");
  return { certPem, keyPem: await keyPem(keys.privateKey), chainPem: `${certPem}\n${ca.certPem}` };
}

/**
 * A CA and one server certificate for `names` (IP literals go into IP SANs).
 *
 * @example
 * ```ts
 * import { createTlsFixture } from "./certs.ts";
 * const { ca, server } = await createTlsFixture(["localhost", "127.0.0.1", "::1"]);
 * ```
 */
export async function createTlsFixture(
  names: string[] = ["localhost", "127.0.0.1", "::1"],
): Promise<{ ca: TestCa; server: TestCert }> {
  const ca = await createCa();
  const isIp = (n: string) => /^[0-9.]+$/.test(n) || n.includes(":");
  const server = await issueCert(ca, {
    dnsNames: names.filter((n) => !isIp(n)),
    ipAddresses: names.filter(isIp),
  });
  return { ca, server };
}
