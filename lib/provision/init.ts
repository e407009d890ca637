/**
 * `init`: makes a working server directory in one step — server key,
 * private CA and TLS certificate (or the user's own certificate, e.g. from
 * an ACME client), commented `server.yml` and an empty `users.yml`; and
 * `renewServerCert`, which issues a fresh certificate from that CA.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { join, resolve } from "node:path";
import { toBase64Url } from "../crypto/mod.ts";
import { loadServerConfig, loadUsers } from "../config/mod.ts";
import { encodeServerIdentity, generateServerIdentity, serverPublicKey } from "../handshake/mod.ts";
import {
  certificateNames,
  DEFAULT_SERVER_CERT_DAYS,
  generateCa,
  issueServerCert,
  MAX_SERVER_CERT_DAYS,
} from "../pki/mod.ts";
import { formatHostPort, invalidHostPortMessage, parseHostPort } from "../wire/host_port.ts";
import { exists, replaceFile, writeNewFile } from "./_files.ts";
import { ProvisionInputError } from "./errors.ts";

/** Options for {@link initServerDir}. */
export interface InitOptions {
  /** HOST:PORT to listen on; default "0.0.0.0:8443". */
  listen?: string;
  /** DNS name for the TLS certificate; default "localhost". */
  name?: string;
  /** Replace existing files. */
  force?: boolean;
  /**
   * A certificate chain (PEM) the user already has, e.g. from an ACME
   * client; with `keyFile`. No CA is made; `server.yml` names these files
   * (absolute paths) and the server reloads them when they change.
   */
  certFile?: string;
  /** The private key (PEM) of `certFile`. */
  keyFile?: string;
}

/** What {@link initServerDir} made. */
export interface InitResult {
  /** Paths written, relative to the directory. */
  files: string[];
  /** The 64-byte server public key clients pin. */
  serverPublicKey: Uint8Array;
}

/** The files `init` writes, relative to DIR, and their modes (without `certFile`, all of them). */
export const INIT_FILES: readonly { path: string; mode: number }[] = [
  { path: "server.yml", mode: 0o600 },
  { path: "users.yml", mode: 0o600 },
  { path: "keys/server.key", mode: 0o600 },
  { path: "tls/ca.crt", mode: 0o644 },
  { path: "tls/ca.key", mode: 0o600 },
  { path: "tls/server.crt", mode: 0o644 },
  { path: "tls/server.key", mode: 0o600 },
];

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** The CA and certificate files `init` leaves out when the user brings a certificate. */
const OWN_CA_FILES = new Set(["tls/ca.crt", "tls/ca.key", "tls/server.crt", "tls/server.key"]);

/**
 * A CA name that says nothing about this software: "<Label> Issuing CA"
 * with the organization "<Label>", the label taken from the server name
 * (its registrable part: "vpn.example.co.uk" → "Example"), as a company's
 * private CA would be called.
 */
export function neutralCaName(serverName: string): { name: string; organization: string } {
  const labels = serverName.toLowerCase().split(".").filter((l) => l.length > 0);
  let label = labels.length >= 2 ? labels[labels.length - 2]! : labels[0] ?? "local";
  if (labels.length >= 3 && label.length <= 3) label = labels[labels.length - 3]!;
  if (label === "localhost") label = "local";
  const org = label.split("-").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ");
  return { name: `${org} Issuing CA`, organization: org };
}

function isLoopback(host: string): boolean {
  return host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A path as a YAML scalar: bare when it is plain (the files init makes), else quoted. */
function yamlPath(path: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(path) ? path : JSON.stringify(path);
}

function serverYaml(listen: string, tls: { cert: string; key: string }): string {
  return `# NitroSocks server configuration, written by "nitrosocks init".
# Every key is described in docs/CONFIG.md; relative paths are relative to
# this file's directory.

# Address and port to accept tunnels on.
listen: ${JSON.stringify(listen)}

# "tls" (looks like an HTTPS server) or "tcp" (plain TCP, e.g. behind a
# TLS-terminating proxy). The tunnel is end-to-end encrypted either way.
transport: tls

tls:
  # Reloaded when either file changes (new connections get the new one).
  cert: ${yamlPath(tls.cert)}
  key: ${yamlPath(tls.key)}
  # ALPN protocols offered, as an ordinary web server would.
  alpn: [h2, http/1.1]

# The server's private key (base64url: Ed25519 seed || X25519 key). Keep it
# secret; clients pin the matching public key.
identity: keys/server.key

# Who may connect. Manage with "nitrosocks user add|list|remove".
users: users.yml

# Where a connection that fails the probe gate (a scanner, a probe) is
# handed: decoy (built-in decoy site), upstream (fallback.upstream), close.
fallback:
  mode: decoy
  # upstream: "127.0.0.1:8080"

# Record padding: none, random (small records get 0..255 bytes more, and the
# first records of each connection are sized like a page load's) or bucket
# (records rounded up to 64, 128, ... 16384 bytes). A client asking for more
# gets more: the session uses the stronger of the two settings.
padding: random

handshake:
  # How far a client's clock may be off.
  clock_window: 120s
  # How many recent handshakes are remembered to refuse replays.
  replay_cache: 100000
  # Preference order; the first one both sides support wins.
  kex: [x25519-mlkem768, x25519]
  aead: [aes-256-gcm, chacha20-poly1305, aes-128-gcm]

limits:
  max_streams_per_tunnel: 1024
  stream_window: 8MiB
  session_window: 64MiB
  idle_timeout: 5m
  udp_idle_timeout: 60s
  connect_timeout: 10s
  max_tunnels: 256
  # Per source address (IPv6: per /64). A connection over either cap is handed
  # to the fallback like a probe.
  per_ip:
    connections: 64
    handshakes_per_second: 20
  # From accept to a finished login; a handshake still running then is closed.
  handshake_timeout: 15s
  # Connections that have not logged in (handshakes, probes the fallback is
  # answering), in all and per source; one more closes the oldest of them. At
  # max, only one at least min_age old (or the busiest address's, for a quieter
  # one); else the newcomer is closed at once.
  pre_login:
    max: 4096
    per_ip: 32
    min_age: 5s
  # More handshakes than this in progress at once: clients must first fetch a
  # cookie for their address (one more round trip, done by the client itself).
  cookie_after: 64

# Failed logins: this many within the window lock out the source address and
# the user for the duration (0 failures turns it off). A locked-out login
# fails exactly like a wrong password; only this server's log says why.
auth:
  lockout:
    failures: 10
    window: 10m
    duration: 15m
  # JWT logins (users added with --jwt): keys that may sign any JWT user's
  # tokens, besides the user's own (base64url: HS256 secrets of 32+ bytes,
  # Ed25519 public keys), and the clock leeway for exp and nbf. A session
  # ends when its token stops being accepted (exp + leeway).
  jwt:
    secrets: []
    public_keys: []
    leeway: 30s

# A plain SOCKS5 proxy on the server itself, for local tools; no auth, so
# keep it on loopback.
socks5_direct:
  enabled: false
  listen: "127.0.0.1:1081"

# Addresses no tunnel reaches unless the user's routes name the address or
# its range ("127.0.0.1:*", "10.0.0.0/8:22"); "*" and name globs never do.
# The default blocks loopback, private, link-local (cloud metadata), CGNAT,
# multicast, unspecified and this server's own addresses ("self"); see
# docs/CONFIG.md. Names resolve through the system unless resolver is set.
# egress:
#   block: [127.0.0.0/8, "::1/128", 10.0.0.0/8, 169.254.0.0/16, self]
#   resolver: "127.0.0.1:53"

# Who seals and opens records: auto (the system's OpenSSL 3 when the process
# may load it, else Web Crypto), openssl or webcrypto.
crypto:
  backend: auto

log:
  level: info
`;
}

const USERS_YAML = `# NitroSocks users. Manage with:
#   nitrosocks user add NAME --dir DIR     (writes the client profile)
#   nitrosocks user list --dir DIR
#   nitrosocks user remove NAME --dir DIR
# Each user has a client public key and one second factor, a token or a
# password (user add --password; only its SCRAM verifier is stored), and
# optionally: totp (base32), routes (default ["*"]), bandwidth ("10MB/s"),
# max_streams, expires (2027-01-01T00:00:00Z), disabled. See docs/CONFIG.md.
# This file holds secrets: keep it mode 0600.
users: {}
`;

/**
 * Creates the server directory. Refuses (before writing anything) when any
 * of the files exists, unless `force`. Throws `ProvisionInputError` for a
 * bad listen address or name.
 *
 * @example
 * ```ts
 * import { initServerDir } from "./init.ts";
 * const dir = await Deno.makeTempDir();
 * const { files, serverPublicKey } = await initServerDir(dir, { name: "nitro.example" });
 * console.log(files.includes("server.yml"), serverPublicKey.length); // true 64
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function initServerDir(dir: string, opts: InitOptions = {}): Promise<InitResult> {
  const listenText = opts.listen ?? "0.0.0.0:8443";
  const listen = parseHostPort(listenText);
  if (listen === undefined) {
    throw new ProvisionInputError(invalidHostPortMessage(listenText, "listen address"));
  }
  const name = (opts.name ?? "localhost").toLowerCase();
  if (!DNS_NAME.test(name)) {
    throw new ProvisionInputError(
      `Invalid name "${opts.name}": expected a DNS name such as nitro.example`,
    );
  }
  if ((opts.certFile === undefined) !== (opts.keyFile === undefined)) {
    throw new ProvisionInputError(
      "--cert and --key go together: pass both the certificate chain and its private key",
    );
  }
  const own = opts.certFile !== undefined && opts.keyFile !== undefined
    ? await readOwnCertificate(opts.certFile, opts.keyFile)
    : undefined;
  const files = INIT_FILES.filter((f) => own === undefined || !OWN_CA_FILES.has(f.path));
  if (!opts.force) {
    const existing: string[] = [];
    for (const f of files) {
      if (await exists(join(dir, f.path))) existing.push(join(dir, f.path));
    }
    if (existing.length > 0) {
      throw new Error(
        `Refusing to overwrite ${existing.map((p) => `"${p}"`).join(", ")}: ${
          existing.length === 1 ? "it already exists" : "they already exist"
        } (use --force to replace, which makes new keys and empties users.yml; ` +
          `"nitrosocks cert renew" renews only the certificate)`,
      );
    }
  }

  const id = generateServerIdentity();
  const publicKey = serverPublicKey(id);
  const contents: Record<string, string> = {
    "server.yml": serverYaml(
      formatHostPort(listen.host, listen.port),
      own === undefined
        ? { cert: "tls/server.crt", key: "tls/server.key" }
        : { cert: own.certFile, key: own.keyFile },
    ),
    "users.yml": USERS_YAML,
    "keys/server.key": toBase64Url(encodeServerIdentity(id)) + "\n",
  };
  if (own === undefined) {
    // Loopback names only for a server that is itself on loopback (a test,
    // a local front): a public server's certificate names the server alone.
    const local = isLoopback(listen.host) || name === "localhost";
    const ips = local
      ? [...new Set([isLoopback(listen.host) ? listen.host : "127.0.0.1", "::1"])]
      : [];
    const caName = neutralCaName(name);
    const ca = await generateCa(caName.name, { organization: caName.organization });
    const cert = await issueServerCert(ca, { dnsNames: [name], ips });
    contents["tls/ca.crt"] = ca.certPem;
    contents["tls/ca.key"] = ca.keyPem;
    contents["tls/server.crt"] = serverChain(cert.certPem, ca.certPem);
    contents["tls/server.key"] = cert.keyPem;
  }

  await Deno.mkdir(join(dir, "keys"), { recursive: true, mode: 0o700 });
  if (own === undefined) await Deno.mkdir(join(dir, "tls"), { recursive: true, mode: 0o700 });
  for (const f of files) {
    const path = join(dir, f.path);
    await writeNewFile(path, contents[f.path]!, { overwrite: opts.force === true, mode: f.mode });
  }
  // What we wrote must load; if not, that is a bug worth failing loudly on.
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  await loadUsers(cfg.usersFile);
  return { files: files.map((f) => f.path), serverPublicKey: publicKey };
}

/**
 * The chain the server sends: its certificate, then the CA's. A share link
 * can then name the CA by its SHA-256 alone, and the client fetch the CA
 * from the handshake (docs/CONFIG.md, "Share links"); an ACME client's
 * fullchain.pem is sent the same way.
 */
function serverChain(leafPem: string, caPem: string): string {
  return `${leafPem.trimEnd()}\n${caPem.trimEnd()}\n`;
}

/** Checks the user's own certificate and key before `init` names them. */
async function readOwnCertificate(
  certFile: string,
  keyFile: string,
): Promise<{ certFile: string; keyFile: string }> {
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new ProvisionInputError(
        `Cannot read the ${what} "${path}": ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  };
  const certPem = await read(certFile, "certificate");
  const keyPem = await read(keyFile, "private key");
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new ProvisionInputError(
      `Invalid --cert "${certFile}": not a PEM certificate (pass the full chain, leaf first)`,
    );
  }
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    throw new ProvisionInputError(`Invalid --key "${keyFile}": not a PEM private key`);
  }
  if (!matches) {
    throw new ProvisionInputError(
      `--key "${keyFile}" is not the private key of --cert "${certFile}": pass the matching pair`,
    );
  }
  return { certFile: resolve(certFile), keyFile: resolve(keyFile) };
}

/** Options for {@link renewServerCert}. */
export interface RenewOptions {
  /** Validity in days, default 90, at most 825. */
  days?: number;
  /** Issue as of this time (tests). */
  now?: Date;
}

/** What {@link renewServerCert} wrote. */
export interface RenewResult {
  /** The certificate file replaced (as named by `server.yml`). */
  certFile: string;
  /** The names the new certificate carries (the old one's). */
  dnsNames: string[];
  ips: string[];
  /** The new certificate's last day. */
  notAfter: Date;
}

/**
 * Issues a fresh server certificate (new key, same names) from the
 * directory's own CA (`tls/ca.crt`, `tls/ca.key`) and replaces the files
 * `server.yml` names, each atomically: a running server picks them up for
 * new connections; clients keep trusting the same CA. Refuses for a
 * directory made with `--cert` (renew that with its ACME client).
 *
 * @example
 * ```ts
 * import { initServerDir, renewServerCert } from "./init.ts";
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir, { name: "nitro.example" });
 * const { dnsNames } = await renewServerCert(dir);
 * console.log(dnsNames); // ["nitro.example"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function renewServerCert(dir: string, opts: RenewOptions = {}): Promise<RenewResult> {
  const days = opts.days ?? DEFAULT_SERVER_CERT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_SERVER_CERT_DAYS) {
    throw new ProvisionInputError(
      `Invalid --days ${days}: expected a whole number of days, 1..${MAX_SERVER_CERT_DAYS}`,
    );
  }
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  if (cfg.tls === undefined || cfg.tlsFiles === undefined) {
    throw new ProvisionInputError(
      `"${join(dir, "server.yml")}" has no tls: section (transport is not tls): nothing to renew`,
    );
  }
  const caCert = join(dir, "tls", "ca.crt");
  const caKey = join(dir, "tls", "ca.key");
  if (!(await exists(caCert)) || !(await exists(caKey))) {
    throw new ProvisionInputError(
      `"${dir}" has no tls/ca.crt and tls/ca.key: its certificate is your own ` +
        "(init --cert); renew it with the tool that issued it, the server reloads it by itself",
    );
  }
  const ca = { certPem: await Deno.readTextFile(caCert), keyPem: await Deno.readTextFile(caKey) };
  const names = certificateNames(cfg.tls.certPem);
  const cert = await issueServerCert(ca, {
    ...names,
    days,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  });
  // Key first: a reload that sees the new certificate finds its key too.
  await replaceFile(cfg.tlsFiles.key, cert.keyPem);
  await replaceFile(cfg.tlsFiles.cert, serverChain(cert.certPem, ca.certPem), 0o644);
  return {
    certFile: cfg.tlsFiles.cert,
    ...names,
    notAfter: new Date(new X509Certificate(cert.certPem).validTo),
  };
}
