/**
 * `init`: makes a working server directory in one step — server key,
 * private CA and TLS certificate, commented `server.yml` and an empty
 * `users.yml`.
 *
 * @module
 */
import { join } from "node:path";
import { toBase64Url } from "../crypto/mod.ts";
import { loadServerConfig, loadUsers } from "../config/mod.ts";
import { encodeServerIdentity, generateServerIdentity, serverPublicKey } from "../handshake/mod.ts";
import { generateCa, issueServerCert } from "../pki/mod.ts";
import {
  formatHostPort,
  invalidHostPortMessage,
  isIpAddress,
  parseHostPort,
} from "../wire/host_port.ts";
import { exists } from "./_files.ts";
import { ProvisionInputError } from "./errors.ts";

/** Options for {@link initServerDir}. */
export interface InitOptions {
  /** HOST:PORT to listen on; default "0.0.0.0:8443". */
  listen?: string;
  /** DNS name for the TLS certificate; default "localhost". */
  name?: string;
  /** Replace existing files. */
  force?: boolean;
}

/** What {@link initServerDir} made. */
export interface InitResult {
  /** Paths written, relative to the directory. */
  files: string[];
  /** The 64-byte server public key clients pin. */
  serverPublicKey: Uint8Array;
}

/** The files `init` writes, relative to DIR, and their modes. */
export const INIT_FILES: readonly { path: string; mode: number }[] = [
  { path: "server.yml", mode: 0o644 },
  { path: "users.yml", mode: 0o600 },
  { path: "keys/server.key", mode: 0o600 },
  { path: "tls/ca.crt", mode: 0o644 },
  { path: "tls/ca.key", mode: 0o600 },
  { path: "tls/server.crt", mode: 0o644 },
  { path: "tls/server.key", mode: 0o600 },
];

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function serverYaml(listen: string): string {
  return `# NitroSocks server configuration, written by "nitrosocks init".
# Every key is described in docs/CONFIG.md; relative paths are relative to
# this file's directory.

# Address and port to accept tunnels on.
listen: ${JSON.stringify(listen)}

# "tls" (looks like an HTTPS server) or "tcp" (plain TCP, e.g. behind a
# TLS-terminating proxy). The tunnel is end-to-end encrypted either way.
transport: tls

tls:
  cert: tls/server.crt
  key: tls/server.key
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
  if (!opts.force) {
    const existing: string[] = [];
    for (const f of INIT_FILES) {
      if (await exists(join(dir, f.path))) existing.push(join(dir, f.path));
    }
    if (existing.length > 0) {
      throw new Error(
        `Refusing to overwrite ${existing.map((p) => `"${p}"`).join(", ")}: ${
          existing.length === 1 ? "it already exists" : "they already exist"
        } (use --force to replace, which makes new keys and empties users.yml)`,
      );
    }
  }

  const id = generateServerIdentity();
  const publicKey = serverPublicKey(id);
  const ips = isIpAddress(listen.host) && listen.host !== "0.0.0.0" && listen.host !== "::"
    ? [listen.host]
    : [];
  const ca = await generateCa(`NitroSocks CA for ${name}`);
  const cert = await issueServerCert(ca, { dnsNames: [name], ips });
  const contents: Record<string, string> = {
    "server.yml": serverYaml(formatHostPort(listen.host, listen.port)),
    "users.yml": USERS_YAML,
    "keys/server.key": toBase64Url(encodeServerIdentity(id)) + "\n",
    "tls/ca.crt": ca.certPem,
    "tls/ca.key": ca.keyPem,
    "tls/server.crt": cert.certPem,
    "tls/server.key": cert.keyPem,
  };

  await Deno.mkdir(join(dir, "keys"), { recursive: true, mode: 0o700 });
  await Deno.mkdir(join(dir, "tls"), { recursive: true, mode: 0o700 });
  for (const f of INIT_FILES) {
    const path = join(dir, f.path);
    await Deno.writeTextFile(path, contents[f.path]!, { mode: f.mode, createNew: !opts.force });
    if (opts.force) await Deno.chmod(path, f.mode);
  }
  // What we wrote must load; if not, that is a bug worth failing loudly on.
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  await loadUsers(cfg.usersFile);
  return { files: INIT_FILES.map((f) => f.path), serverPublicKey: publicKey };
}
