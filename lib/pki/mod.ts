/**
 * A tiny private CA for the server's TLS certificate: ECDSA P-256 keys via
 * Web Crypto, X.509 via `@peculiar/x509`. The tunnel itself is authenticated
 * by the pinned server key, so this certificate only has to make TLS work
 * and look ordinary.
 *
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

/** Most days a server certificate may be valid (CA/Browser Forum, Apple). */
export const MAX_SERVER_CERT_DAYS = 825;
/**
 * Default server certificate lifetime in days: what an ACME CA (Let's
 * Encrypt) issues, so the certificate looks like any small site's. Renew
 * with `nitrosocks cert renew`.
 */
export const DEFAULT_SERVER_CERT_DAYS = 90;
/** Default CA lifetime in days. */
export const DEFAULT_CA_DAYS = 3650;

/** A PEM certificate and its PKCS#8 PEM private key. */
export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

/** Options for certificate validity (tests pass `now`). */
export interface ValidityOptions {
  days?: number;
  now?: Date;
}

/** Options for {@linkcode generateCa}. */
export interface CaOptions extends ValidityOptions {
  /** The subject's organization (O), before the common name. */
  organization?: string;
}

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const DNS_NAME =
  /^(?=.{1,253}$)(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function unpem(text: string, label: string): Uint8Array<ArrayBuffer> {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`).exec(text);
  if (!m) throw new TypeError(`Cannot read PEM: no "${label}" block`);
  const bin = atob(m[1]!.replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f | 0x01; // positive, no leading zero byte
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function validity(opts: ValidityOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const days = opts.days ?? defaultDays;
  if (!Number.isInteger(days) || days < 1) throw new RangeError(`Invalid validity: ${days} days`);
  const now = opts.now ?? new Date();
  // Start an hour early so a peer whose clock lags a little still accepts it.
  const notBefore = new Date(now.getTime() - 3600_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86400_000) };
}

async function exportKey(key: CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", key));
}

/**
 * Creates a self-signed CA (ECDSA P-256, SHA-256) named `name` (the subject
 * CN; `organization` adds an O before it): basicConstraints CA:TRUE with
 * path length 0, keyUsage keyCertSign and cRLSign, subject key identifier.
 *
 * @example
 * ```ts
 * import { generateCa } from "./mod.ts";
 * const ca = await generateCa("Example Issuing CA");
 * console.log(ca.certPem.startsWith("-----BEGIN CERTIFICATE-----")); // true
 * ```
 */
export async function generateCa(name: string, opts: CaOptions = {}): Promise<CertAndKey> {
  const keys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: opts.organization === undefined
      ? [{ CN: [name] }]
      : [{ O: [opts.organization] }, { CN: [name] }],
    ...validity(opts, DEFAULT_CA_DAYS),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await exportKey(keys.privateKey) };
}

/** Names a server certificate is valid for. */
export interface ServerNames {
  dnsNames?: string[];
  ips?: string[];
}

/**
 * Issues a server certificate signed by `ca` for `dnsNames` and `ips` (at
 * least one name; nothing else is added, so loopback addresses appear only
 * when the caller passes them). The subject is the first DNS name (or the
 * first IP) as CN and nothing else; the extensions are the usual ones:
 * basicConstraints CA:FALSE, keyUsage digitalSignature, extKeyUsage
 * serverAuth, subjectAltName, subject and authority key identifiers.
 * Validity defaults to 90 days and may not exceed 825.
 *
 * @example
 * ```ts
 * import { generateCa, issueServerCert } from "./mod.ts";
 * const ca = await generateCa("Example Issuing CA");
 * const server = await issueServerCert(ca, { dnsNames: ["nitro.example"] });
 * ```
 */
export async function issueServerCert(
  ca: CertAndKey,
  names: ServerNames & ValidityOptions,
): Promise<CertAndKey> {
  const days = names.days ?? DEFAULT_SERVER_CERT_DAYS;
  if (days > MAX_SERVER_CERT_DAYS) {
    throw new RangeError(`Invalid validity: ${days} days exceeds maximum ${MAX_SERVER_CERT_DAYS}`);
  }
  const dnsNames = [...new Set((names.dnsNames ?? []).map((n) => n.toLowerCase()))];
  for (const n of dnsNames) {
    if (!DNS_NAME.test(n)) throw new TypeError(`Invalid DNS name "${n}"`);
  }
  const ips = [...new Set((names.ips ?? []).map(normalizeIp))];
  if (dnsNames.length === 0 && ips.length === 0) {
    throw new TypeError("Cannot issue a server certificate without a DNS name or IP address");
  }
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await crypto.subtle.importKey("pkcs8", unpem(ca.keyPem, "PRIVATE KEY"), EC, false, [
    "sign",
  ]);
  const keys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [dnsNames[0] ?? ips[0]!] }],
    issuer: caCert.subjectName,
    ...validity({ ...names, days }, DEFAULT_SERVER_CERT_DAYS),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...ips.map((value) => ({ type: "ip" as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(await caCert.publicKey.export()),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await exportKey(keys.privateKey) };
}

/** Longest validity of a client certificate (days). */
export const MAX_CLIENT_CERT_DAYS = 825;

/**
 * Issues a TLS client certificate signed by `ca` whose subject CN is
 * `user` (extended key usage: client authentication), for a server with
 * `tls.client_ca`. Validity defaults to, and may not exceed, 825 days.
 *
 * @example
 * ```ts
 * import { generateCa, issueClientCert } from "./mod.ts";
 * const ca = await generateCa("NitroSocks CA");
 * const alice = await issueClientCert(ca, "alice");
 * ```
 */
export async function issueClientCert(
  ca: CertAndKey,
  user: string,
  opts: ValidityOptions = {},
): Promise<CertAndKey> {
  const days = opts.days ?? MAX_CLIENT_CERT_DAYS;
  if (days > MAX_CLIENT_CERT_DAYS) {
    throw new RangeError(`Invalid validity: ${days} days exceeds maximum ${MAX_CLIENT_CERT_DAYS}`);
  }
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(user)) throw new TypeError(`Invalid user name "${user}"`);
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await crypto.subtle.importKey("pkcs8", unpem(ca.keyPem, "PRIVATE KEY"), EC, false, [
    "sign",
  ]);
  const keys = await crypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [user] }],
    issuer: caCert.subjectName,
    ...validity({ ...opts, days }, MAX_CLIENT_CERT_DAYS),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(await caCert.publicKey.export()),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await exportKey(keys.privateKey) };
}

function normalizeIp(ip: string): string {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip) && ip.split(".").every((o) => Number(o) <= 255)) return ip;
  if (/^[0-9A-Fa-f:.]+$/.test(ip) && ip.includes(":")) {
    try {
      return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    } catch { /* fall through */ }
  }
  throw new TypeError(`Invalid IP address "${ip}"`);
}

/**
 * The DNS names and IP addresses in a certificate's subjectAltName.
 *
 * @example
 * ```ts ignore
 * import { certificateNames } from "./mod.ts";
 * certificateNames(Deno.readTextFileSync("tls/server.crt")).dnsNames; // ["nitro.example"]
 * ```
 */
export function certificateNames(certPem: string): { dnsNames: string[]; ips: string[] } {
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const dnsNames: string[] = [];
  const ips: string[] = [];
  for (const n of san?.names.items ?? []) {
    if (n.type === "dns") dnsNames.push(n.value);
    if (n.type === "ip") ips.push(n.value);
  }
  return { dnsNames, ips };
}
