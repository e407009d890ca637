/**
 * `server.yml`: where the server listens, its keys and certificate, which
 * users file to use, and its limits. Parsed to a frozen object or refused
 * with a `ConfigError` (file:line:column, key path, hint).
 *
 * @module
 */
import { dirname } from "node:path";
import { ConfigError } from "../errors.ts";
import { fromBase64Url } from "../crypto/mod.ts";
import { type HostPort, isLoopbackHost } from "../wire/host_port.ts";
import { MUX_LIMITS } from "../mux/mod.ts";
import {
  boolean,
  configError,
  duration,
  type Field,
  hostPort,
  integer,
  key,
  list,
  locate,
  object,
  oneOf,
  optional,
  refine,
  required,
  type Schema,
  schemaKeys,
  secretBytes,
  section,
  size,
  string,
  withDefault,
} from "./_schema.ts";
import type { YamlNode } from "./_yaml.ts";
import { JWT_MIN_SECRET_BYTES } from "../crypto/jwt.ts";
import {
  AEAD_NAMES,
  type AeadName,
  CRYPTO_BACKEND_NAMES,
  type CryptoBackendName,
  deepFreeze,
  DEFAULT_AEAD,
  DEFAULT_KEX,
  DEFAULT_PADDING,
  GiB,
  ioReason,
  KEX_NAMES,
  type KexName,
  MiB,
  PADDING_NAMES,
  type PaddingName,
  parseWith,
  readConfigText,
  resolveRef,
} from "./_shared.ts";
import { DEFAULT_EGRESS_BLOCK, egressEntryError } from "./egress.ts";

export type { HostPort };

/** The parsed `server.yml`. */
export interface ServerConfig {
  /** The config file as given. */
  file: string;
  /** Its directory; relative paths in the file are resolved against it. */
  dir: string;
  /** Where tunnels are accepted. */
  listen: HostPort;
  /**
   * "tls" (looks like HTTPS), "tcp" (plain TCP, e.g. behind a TLS-terminating
   * proxy), "ws" (WebSocket over plain HTTP, behind a web front or CDN) or
   * "wss" (WebSocket over this server's TLS).
   */
  transport: TransportName;
  /** Present when `transport` is "tls" or "wss". */
  tls?: {
    certPem: string;
    keyPem: string;
    alpn: string[];
    /**
     * `tls.client_ca`: CA certificate(s), PEM. When set, clients must present
     * a TLS certificate it signed whose common name is the user logging in.
     */
    clientCaPem?: string;
  };
  /** `ws.path`: where the WebSocket is served; present when `transport` is "ws" or "wss". */
  ws?: { path: string };
  /** Read a PROXY v2 header from a TCP front (HAProxy `send-proxy-v2`) on every connection. */
  proxyProtocol: boolean;
  /**
   * The resolved paths `tls.cert` and `tls.key` were read from (present with
   * `transport: tls`): the server watches them and reloads the certificate on change.
   */
  tlsFiles?: { cert: string; key: string };
  /** The 64-byte server private key (Ed25519 seed ‖ X25519 private key). */
  identity: Uint8Array;
  /** Path of the identity file (resolved). */
  identityFile: string;
  /** Path of the users file (resolved). */
  usersFile: string;
  /** Where a connection that is not a NitroSocks client is handed. */
  fallback: { mode: "decoy" | "upstream" | "close"; upstream?: HostPort };
  /** Clock window (s), replay cache size, and the key exchanges and ciphers accepted. */
  handshake: {
    clockWindowS: number;
    replayCache: number;
    kex: KexName[];
    aead: AeadName[];
  };
  /** Per-tunnel and server-wide limits (windows in bytes, timeouts in s). */
  limits: {
    maxStreamsPerTunnel: number;
    streamWindow: number;
    sessionWindow: number;
    idleTimeoutS: number;
    /** A UDP association's socket that moved nothing for this long is closed (s). */
    udpIdleTimeoutS: number;
    connectTimeoutS: number;
    maxTunnels: number;
    /** Per source address (IPv6: per /64): concurrent connections and new connections per second. */
    perIp: { connections: number; handshakesPerSecond: number };
    /** From accept to a finished login (s); a handshake still running then is closed. */
    handshakeTimeoutS: number;
    /**
     * Connections that have not logged in (handshakes, probes at the fallback) at once: in all
     * (`max`) and per source address (`perIp`); one more evicts the oldest, at `max` only one
     * at least `minAgeMs` old (or the busiest source's), else it is refused.
     */
    preLogin: { max: number; perIp: number; minAgeMs: number };
    /** More handshakes than this in progress: Hellos must carry a cookie (section 15). */
    cookieAfter: number;
  };
  /** Failed-login lockout per source address and per user (`auth.lockout`); JWT keys (`auth.jwt`). */
  auth: {
    lockout: { failures: number; windowS: number; durationS: number };
    /** Keys and checks for every JWT user's tokens (users may add their own keys). */
    jwt: { secrets: Uint8Array[]; publicKeys: Uint8Array[]; audience?: string; leewayS: number };
  };
  /** The server's own plain SOCKS5 port, for local tools. */
  socks5Direct: { enabled: boolean; listen: HostPort };
  /** Session timers and buffers, resumption and tickets. */
  session: SessionSettings & {
    /** How long a broken tunnel stays resumable (s). */
    resumeGraceS: number;
    /** Ticket keys file text (lines `id:base64url-key`), when tickets are on. */
    ticketKeysText?: string;
  };
  /** Which AEAD implementation seals and opens records (`crypto.backend`, `crypto.library`). */
  crypto: CryptoSettings;
  /**
   * Record padding of the server's records (`padding:`): a client that asks
   * for a mode gets the stronger of the two, both ways.
   */
  padding: PaddingName;
  /** The least severe log level written. */
  log: { level: "debug" | "info" | "warn" | "error" };
  /** The admin HTTP listener (`/metrics`, `/status`, `/kick`). */
  admin: AdminSettings;
  /** Where the counters are kept across restarts, and how often they are written. */
  accounting: AccountingSettings;
  /** Which addresses tunnels may not reach, and how target names are resolved. */
  egress: EgressSettings;
  /** Where state shared by a fleet of servers lives (`store:`): this process, or one Redis. */
  store: StoreSettings;
}

/**
 * `store:` in server.yml: `file` keeps everything in this process and its
 * state file; a Redis URL shares the replay cache, tunnel leases, kicks and
 * counters with every server that names the same Redis and prefix.
 */
export type StoreSettings =
  | { kind: "file" }
  | {
    kind: "redis";
    /** `redis://HOST:PORT[/DB]`, without a password. */
    url: string;
    /** The password (`store.password_file`), when Redis asks for one. Never logged. */
    password?: string;
    /** `rediss://`: the CA certificate(s) Redis's certificate must chain to (`store.tls_ca`); default the system's. */
    tlsCaPem?: string;
    /** Prepended to every key and channel, so fleets can share one Redis. */
    prefix: string;
    /**
     * `store.ticket_rotation`: the fleet keeps its ticket keys in Redis and
     * makes a new one this often (s), instead of `session.ticket_keys`.
     */
    ticketRotationS?: number;
    /**
     * `store.users`: the users live in Redis (one users.yml document the
     * servers reload when it changes) instead of each server's users.yml.
     */
    users: boolean;
  };

/** `egress:` in server.yml. */
export interface EgressSettings {
  /**
   * Addresses and ranges (and `self`, the server's own listening addresses)
   * that only an explicit address route reaches (lib/config/egress.ts).
   */
  block: string[];
  /** A DNS server (`HOST:PORT`) to resolve target names with instead of the system's. */
  resolver?: HostPort;
}

/** `admin:` in server.yml. */
export interface AdminSettings {
  /** Where the admin listener serves; off when absent. Loopback unless `token` is set. */
  listen?: HostPort;
  /** The bearer token every request must carry, when set. Never logged. */
  token?: string;
}

/** `accounting:` in server.yml. */
export interface AccountingSettings {
  /** The JSON state file (resolved against the config file's directory). */
  stateFile: string;
  /** How often counters are written to it (s). */
  flushIntervalS: number;
}

/** The shortest admin token accepted (characters). */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/** Which crypto backend seals and opens records (shared by server and client configs). */
export interface CryptoSettings {
  /** `auto`: OpenSSL when `--allow-ffi` is granted and it loads, else Web Crypto. */
  backend: CryptoBackendName;
  /**
   * The OpenSSL 3 libcrypto to load instead of the usual names: a path
   * (relative to the config file's directory) or a bare file name the
   * system loader searches.
   */
  library?: string;
}

/** `padding:`, shared with the client profile. */
export const paddingField: Field<PaddingName> = withDefault(
  oneOf(PADDING_NAMES),
  DEFAULT_PADDING,
);

/** The `crypto:` section's schema fields, shared with the client profile. */
export const cryptoFields = {
  backend: withDefault(oneOf(CRYPTO_BACKEND_NAMES), "auto"),
  library: optional(string({ what: "a library path or file name" })),
};

/**
 * Converts a parsed `crypto:` section to {@link CryptoSettings}: a library
 * path with a directory part is resolved against the config file's
 * directory; a bare file name is left for the system loader.
 */
export function cryptoSettings(
  raw: { backend: CryptoBackendName; library: string | undefined },
  file: string,
): CryptoSettings {
  const lib = raw.library;
  if (lib === undefined) return { backend: raw.backend };
  return { backend: raw.backend, library: /[\\/]/.test(lib) ? resolveRef(file, lib) : lib };
}

/** Session timers and buffers, shared by server and client configs. */
export interface SessionSettings {
  /** Send a PING after this much silence (s). */
  keepaliveS: number;
  /** Declare the connection dead after this much silence (s). */
  deadAfterS: number;
  /** Full re-key with fresh DH after this long (s). */
  rekeyIntervalS: number;
  /** Full re-key with fresh DH after this many bytes. */
  rekeyBytes: number;
  /** Bound on sent-but-unacknowledged data kept for resending (bytes). */
  resendBuffer: number;
  /** Mean quiet time before cover traffic (s); 0 = none. */
  coverTrafficS: number;
}

/** Window and stream-count bounds, from the mux that enforces them (shared with the client). */
export const windowFields = {
  stream_window: withDefault(
    size(MUX_LIMITS.streamWindow.min, MUX_LIMITS.streamWindow.max),
    8 * MiB,
  ),
  session_window: withDefault(
    size(MUX_LIMITS.sessionWindow.min, MUX_LIMITS.sessionWindow.max),
    64 * MiB,
  ),
};

/** A stream count: what one mux may hold open at once. */
export const streamCount = (): Schema<number> =>
  integer(MUX_LIMITS.maxStreams.min, MUX_LIMITS.maxStreams.max);

/** Shortest mean quiet time before cover traffic that `session.cover_traffic` accepts (s). */
export const MIN_COVER_TRAFFIC_S = 0.1;

/** The `session:` section's schema fields, shared with the client profile. */
export const sessionFields = {
  keepalive: withDefault(duration(0.05, 3600), 15),
  dead_after: withDefault(duration(0.1, 86400), 45),
  rekey_interval: withDefault(duration(1, 7 * 86400), 3600),
  rekey_bytes: withDefault(size(MiB, 1024 * GiB), 64 * GiB),
  resend_buffer: withDefault(
    size(MUX_LIMITS.resendBufferBytes.min, MUX_LIMITS.resendBufferBytes.max),
    8 * MiB,
  ),
  cover_traffic: withDefault(duration(0, 3600), 0),
};

/**
 * Checks what the schema cannot see key by key: the session window holds a
 * stream window, and a quiet link is probed (a PING every `keepalive`)
 * well before `dead_after` declares it dead. Shared with the client profile.
 */
export function checkLimits(
  raw: {
    limits: { stream_window: number; session_window: number };
    session: { keepalive: number; dead_after: number; cover_traffic: number };
  },
  root: YamlNode,
  file: string,
): void {
  if (raw.limits.session_window < raw.limits.stream_window) {
    throw configError(
      { file, path: "limits.session_window" },
      locate(root, ["limits", "session_window"]),
      `Invalid limits.session_window: ${raw.limits.session_window} is smaller than limits.stream_window ${raw.limits.stream_window}`,
    );
  }
  const { keepalive, dead_after, cover_traffic } = raw.session;
  if (cover_traffic > 0 && cover_traffic < MIN_COVER_TRAFFIC_S) {
    throw configError(
      { file, path: "session.cover_traffic" },
      locate(root, ["session", "cover_traffic"]),
      `Invalid session.cover_traffic: ${cover_traffic}s is below ${MIN_COVER_TRAFFIC_S}s`,
      "give 0 (no cover traffic) or a mean quiet time such as 30s",
    );
  }
  if (dead_after < 2 * keepalive) {
    throw configError(
      { file, path: "session.dead_after" },
      locate(root, ["session", "dead_after"]),
      `Invalid session.dead_after: ${dead_after}s is less than twice session.keepalive (${keepalive}s)`,
      "a quiet connection is probed every keepalive; give the answer time before calling it dead",
    );
  }
}

/** Converts a parsed `session:` section to {@link SessionSettings}. */
export function sessionSettings(raw: {
  keepalive: number;
  dead_after: number;
  rekey_interval: number;
  rekey_bytes: number;
  resend_buffer: number;
  cover_traffic: number;
}): SessionSettings {
  return {
    keepaliveS: raw.keepalive,
    deadAfterS: raw.dead_after,
    rekeyIntervalS: raw.rekey_interval,
    rekeyBytes: raw.rekey_bytes,
    resendBuffer: raw.resend_buffer,
    coverTrafficS: raw.cover_traffic,
  };
}

const path = () => string({ what: "a file path" });

/** An `egress.block` entry: an address, a range or `self`. */
const egressEntry = () =>
  refine(string({ what: "an address, a range ADDR/LEN or self" }), (s) => {
    const why = egressEntryError(s);
    return why === undefined ? undefined : {
      detail: `${JSON.stringify(s)}: ${why}`,
      hint: 'e.g. "10.0.0.0/8", "169.254.169.254", "fc00::/7", "self"',
    };
  });

/** Key-exchange preference list (shared with the client schema). */
export const kexList = () => list(oneOf(KEX_NAMES), { min: 1, unique: true });
/** AEAD preference list (shared with the client schema). */
export const aeadList = () => list(oneOf(AEAD_NAMES), { min: 1, unique: true });

/** The transports a server or a client profile may name. */
export const TRANSPORT_NAMES = ["tls", "tcp", "ws", "wss"] as const;
/** One of {@linkcode TRANSPORT_NAMES}. */
export type TransportName = typeof TRANSPORT_NAMES[number];

/** `ws.path`: an absolute URL path without query or fragment. */
export const wsPathSchema = () =>
  string({
    pattern: /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%\/]{0,254}$/,
    what: 'an absolute URL path such as "/assets/ws" (no query or fragment)',
  });

const serverSchema = object({
  listen: withDefault(hostPort(0), { host: "0.0.0.0", port: 8443 }),
  transport: withDefault(oneOf(TRANSPORT_NAMES), "tls"),
  tls: optional(object({
    cert: required(path()),
    key: required(path()),
    alpn: withDefault(
      list(string({ pattern: /^[\x21-\x7e]{1,255}$/, what: "an ALPN protocol id" }), {
        min: 1,
        unique: true,
      }),
      ["h2", "http/1.1"],
    ),
    client_ca: optional(path()),
  })),
  identity: required(path()),
  users: withDefault(path(), "users.yml"),
  fallback: section(object({
    mode: withDefault(oneOf(["decoy", "upstream", "close"] as const), "decoy"),
    upstream: optional(hostPort()),
  })),
  handshake: section(object({
    clock_window: withDefault(duration(1, 3600), 120),
    replay_cache: withDefault(integer(1000, 10_000_000), 100_000),
    kex: withDefault(kexList(), [...DEFAULT_KEX]),
    aead: withDefault(aeadList(), [...DEFAULT_AEAD]),
  })),
  limits: section(object({
    max_streams_per_tunnel: withDefault(streamCount(), 1024),
    ...windowFields,
    idle_timeout: withDefault(duration(1, 7 * 86400), 300),
    udp_idle_timeout: withDefault(duration(1, 86400), 60),
    connect_timeout: withDefault(duration(0.1, 300), 10),
    max_tunnels: withDefault(integer(1, 1_000_000), 256),
    per_ip: section(object({
      connections: withDefault(integer(1, 1_000_000), 64),
      handshakes_per_second: withDefault(integer(1, 1_000_000), 20),
    })),
    handshake_timeout: withDefault(duration(1, 300), 15),
    cookie_after: withDefault(integer(0, 1_000_000), 64),
    pre_login: section(object({
      max: withDefault(integer(1, 1_000_000), 4096),
      per_ip: withDefault(integer(1, 1_000_000), 32),
      min_age: withDefault(duration(0, 300), 5),
    })),
  })),
  auth: section(object({
    lockout: section(object({
      failures: withDefault(integer(0, 1_000_000), 10),
      window: withDefault(duration(1, 86400), 600),
      duration: withDefault(duration(1, 7 * 86400), 900),
    })),
    jwt: section(object({
      secrets: withDefault(list(secretBytes(JWT_MIN_SECRET_BYTES, 256), { min: 0 }), []),
      public_keys: withDefault(list(key(32), { min: 0 }), []),
      audience: optional(string({ pattern: /^[\x21-\x7e]{1,255}$/, what: "an audience string" })),
      leeway: withDefault(duration(0, 300), 30),
    })),
  })),
  socks5_direct: section(object({
    enabled: withDefault(boolean(), false),
    listen: withDefault(hostPort(0), { host: "127.0.0.1", port: 1081 }),
  })),
  session: section(object({
    ...sessionFields,
    resume_grace: withDefault(duration(0, 86400), 300),
    ticket_keys: optional(path()),
  })),
  crypto: section(object(cryptoFields)),
  padding: paddingField,
  log: section(object({
    level: withDefault(oneOf(["debug", "info", "warn", "error"] as const), "info"),
  })),
  admin: section(object({
    listen: optional(hostPort(0)),
    token: optional(string({
      pattern: new RegExp(`^[\\x21-\\x7e]{${MIN_ADMIN_TOKEN_LENGTH},256}$`),
      what: `a token of ${MIN_ADMIN_TOKEN_LENGTH} to 256 printable ASCII characters, no spaces`,
      secret: true,
      hint: "make one with: openssl rand -base64 32",
    })),
  })),
  accounting: section(object({
    state_file: withDefault(path(), "state.json"),
    flush_interval: withDefault(duration(0.1, 3600), 5),
  })),
  egress: section(object({
    block: withDefault(list(egressEntry(), { unique: true }), [...DEFAULT_EGRESS_BLOCK]),
    resolver: optional(hostPort(1)),
  })),
  ws: optional(object({ path: required(wsPathSchema()) })),
  proxy_protocol: withDefault(boolean(), false),
  store: section(object({
    url: withDefault(
      string({
        pattern: /^(file|rediss?:\/\/[A-Za-z0-9.\-\[\]:]+(\/[0-9]{1,2})?)$/,
        what:
          '"file" or a Redis URL "redis://HOST:PORT[/DB]" or "rediss://…" (TLS), no password in it',
        hint: 'e.g. "redis://10.0.0.5:6379/0"; put a password in store.password_file',
        // Not quoted back: a URL with a password in it would show it.
        secret: true,
      }),
      "file",
    ),
    password_file: optional(path()),
    tls_ca: optional(path()),
    ticket_rotation: optional(duration(1, 30 * 86400)),
    prefix: withDefault(
      string({
        pattern: /^[A-Za-z0-9_.:-]{1,64}$/,
        what: "a key prefix of 1 to 64 [A-Za-z0-9_.:-]",
      }),
      "nitrosocks:",
    ),
    users: withDefault(boolean(), false),
  })),
});

/** Every key path `server.yml` accepts, e.g. `limits.stream_window` (see `schemaKeys`). */
export const SERVER_CONFIG_KEYS: readonly string[] = Object.freeze(schemaKeys(serverSchema));

/**
 * Parses `server.yml` text. `readFile` reads the files it names (identity,
 * TLS certificate and key), already resolved against the file's directory.
 *
 * @example
 * ```ts
 * import { parseServerConfig } from "./server.ts";
 * const files: Record<string, string> = { "keys/server.key": "A".repeat(86) };
 * const cfg = parseServerConfig("transport: tcp\nidentity: keys/server.key\n", "server.yml", (p) => files[p]!);
 * console.log(cfg.listen.port); // 8443
 * ```
 */
export function parseServerConfig(
  text: string,
  file: string,
  readFile: (path: string) => string,
): ServerConfig {
  const { raw, root } = parseWith(text, file, serverSchema);
  const at = (p: string) => ({ file, path: p });
  const read = (key: string[], ref: string, what: string): { text: string; path: string } => {
    const p = resolveRef(file, ref);
    try {
      return { text: readFile(p), path: p };
    } catch (e) {
      throw configError(
        at(key.join(".")),
        locate(root, key),
        `Cannot read ${what} ${JSON.stringify(p)}: ${ioReason(e)}`,
      );
    }
  };
  /** Reads a file that must hold PEM certificates. */
  const readCerts = (key: string[], ref: string, what: string): { text: string; path: string } => {
    const f = read(key, ref, what);
    if (!/-----BEGIN CERTIFICATE-----/.test(f.text)) {
      throw configError(
        at(key.join(".")),
        locate(root, key),
        `Invalid ${key.join(".")}: ${JSON.stringify(f.path)} is not a PEM certificate`,
      );
    }
    return f;
  };

  if (raw.fallback.mode === "upstream" && raw.fallback.upstream === undefined) {
    throw configError(
      at("fallback.upstream"),
      locate(root, ["fallback", "mode"]),
      'Missing required key "fallback.upstream": mode is "upstream"',
      'add upstream: "127.0.0.1:8080"',
    );
  }
  checkLimits(raw, root, file);

  const admin = raw.admin;
  if (
    admin.listen !== undefined && admin.token === undefined && !isLoopbackHost(admin.listen.host)
  ) {
    throw configError(
      at("admin.listen"),
      locate(root, ["admin", "listen"]),
      `Invalid admin.listen: ${
        JSON.stringify(admin.listen.host)
      } is not a loopback address and admin.token is not set`,
      'listen on "127.0.0.1:PORT", or set admin.token (a bearer token) to serve beyond this machine',
    );
  }

  // The direct SOCKS5 port has no authentication: beyond loopback it is an open proxy.
  const direct = raw.socks5_direct.listen;
  if (!isLoopbackHost(direct.host)) {
    throw configError(
      at("socks5_direct.listen"),
      locate(root, ["socks5_direct", "listen"]),
      `Invalid socks5_direct.listen: ${
        JSON.stringify(direct.host)
      } is not a loopback address, and the direct SOCKS5 port has no authentication`,
      `listen on "127.0.0.1:${direct.port}" (or "[::1]:${direct.port}"); ` +
        "give other machines a user in users.yml and a tunnel instead",
    );
  }

  // Identity: base64url of the 64 private bytes.
  const id = read(["identity"], raw.identity, "identity file");
  let identity: Uint8Array;
  try {
    identity = fromBase64Url(id.text.trim());
  } catch {
    identity = new Uint8Array(0);
  }
  if (identity.length !== 64) {
    const idPos = locate(root, ["identity"]);
    throw new ConfigError(
      `Invalid identity file: expected 64 bytes of unpadded base64url, got ${
        identity.length === 0 ? "something else" : `${identity.length} bytes`
      }`,
      {
        file: id.path,
        line: 1,
        column: 1,
        key: "identity",
        hint: `named by ${file}:${idPos.line}:${idPos.column}; regenerate with "nitrosocks init"`,
      },
    );
  }

  const isWs = raw.transport === "ws" || raw.transport === "wss";
  if (isWs && raw.ws === undefined) {
    throw configError(
      at("ws"),
      locate(root, ["transport"]),
      `Missing required key "ws.path": transport is "${raw.transport}"`,
      'add ws: {path: "/some/path"}: the path the front proxies to this server',
    );
  }
  if (!isWs && raw.ws !== undefined) {
    throw configError(
      at("ws"),
      locate(root, ["ws"]),
      `Invalid ws: transport is "${raw.transport}", not "ws" or "wss"`,
      "remove ws: or set transport: ws (or wss)",
    );
  }
  let tls: ServerConfig["tls"];
  let tlsFiles: ServerConfig["tlsFiles"];
  if (raw.transport === "tls" || raw.transport === "wss") {
    if (raw.tls === undefined) {
      throw configError(
        at("tls"),
        locate(root, ["transport"]),
        `Missing required key "tls": transport is "${raw.transport}"`,
        `add tls: {cert: ..., key: ...} or set transport: ${
          raw.transport === "tls" ? "tcp" : "ws"
        }`,
      );
    }
    const cert = readCerts(["tls", "cert"], raw.tls.cert, "certificate");
    const key = read(["tls", "key"], raw.tls.key, "private key");
    if (!/-----BEGIN (EC |RSA )?PRIVATE KEY-----/.test(key.text)) {
      throw configError(
        at("tls.key"),
        locate(root, ["tls", "key"]),
        `Invalid tls.key: ${JSON.stringify(key.path)} is not a PEM private key`,
      );
    }
    tls = { certPem: cert.text, keyPem: key.text, alpn: raw.tls.alpn };
    if (raw.tls.client_ca !== undefined) {
      tls.clientCaPem = readCerts(["tls", "client_ca"], raw.tls.client_ca, "client CA certificate")
        .text;
    }
    if (raw.transport === "tls") tlsFiles = { cert: cert.path, key: key.path };
  }

  let store: StoreSettings = { kind: "file" };
  if (raw.store.url !== "file") {
    let password: string | undefined;
    if (raw.store.password_file !== undefined) {
      password = read(["store", "password_file"], raw.store.password_file, "Redis password").text
        .replace(/\r?\n$/, "");
    }
    let tlsCaPem: string | undefined;
    if (raw.store.tls_ca !== undefined) {
      if (!raw.store.url.startsWith("rediss://")) {
        throw configError(
          at("store.tls_ca"),
          locate(root, ["store", "tls_ca"]),
          "Invalid store.tls_ca: store.url is not a rediss:// (TLS) URL",
          'use "rediss://HOST:PORT" to reach Redis over TLS, or remove tls_ca',
        );
      }
      tlsCaPem = readCerts(["store", "tls_ca"], raw.store.tls_ca, "Redis CA certificate").text;
    }
    if (raw.store.ticket_rotation !== undefined && raw.session.ticket_keys !== undefined) {
      throw configError(
        at("store.ticket_rotation"),
        locate(root, ["store", "ticket_rotation"]),
        "Invalid store.ticket_rotation: session.ticket_keys is set too",
        "keep the ticket keys in one place: remove session.ticket_keys or store.ticket_rotation",
      );
    }
    store = {
      kind: "redis",
      url: raw.store.url,
      ...(password === undefined ? {} : { password }),
      ...(tlsCaPem === undefined ? {} : { tlsCaPem }),
      prefix: raw.store.prefix,
      ...(raw.store.ticket_rotation === undefined
        ? {}
        : { ticketRotationS: raw.store.ticket_rotation }),
      users: raw.store.users,
    };
  } else {
    for (const key of ["password_file", "tls_ca", "ticket_rotation"] as const) {
      if (raw.store[key] === undefined) continue;
      throw configError(
        at(`store.${key}`),
        locate(root, ["store", key]),
        `Invalid store.${key}: store.url is "file"`,
        `set store.url to your Redis ("redis://HOST:PORT"), or remove ${key}`,
      );
    }
    if (raw.store.users) {
      throw configError(
        at("store.users"),
        locate(root, ["store", "users"]),
        'Invalid store.users: store.url is "file"',
        'set store.url to your Redis ("redis://HOST:PORT") to share users, or remove users',
      );
    }
  }

  let ticketKeysText: string | undefined;
  if (raw.session.ticket_keys !== undefined) {
    ticketKeysText = read(["session", "ticket_keys"], raw.session.ticket_keys, "ticket keys").text;
  }
  const cfg: ServerConfig = {
    file,
    dir: dirname(file),
    listen: raw.listen,
    transport: raw.transport,
    ...(tls === undefined ? {} : { tls }),
    ...(raw.ws === undefined ? {} : { ws: { path: raw.ws.path } }),
    proxyProtocol: raw.proxy_protocol,
    ...(tlsFiles === undefined ? {} : { tlsFiles }),
    identity,
    identityFile: resolveRef(file, raw.identity),
    usersFile: resolveRef(file, raw.users),
    fallback: {
      mode: raw.fallback.mode,
      ...(raw.fallback.upstream === undefined ? {} : { upstream: raw.fallback.upstream }),
    },
    handshake: {
      clockWindowS: raw.handshake.clock_window,
      replayCache: raw.handshake.replay_cache,
      kex: raw.handshake.kex,
      aead: raw.handshake.aead,
    },
    limits: {
      maxStreamsPerTunnel: raw.limits.max_streams_per_tunnel,
      streamWindow: raw.limits.stream_window,
      sessionWindow: raw.limits.session_window,
      idleTimeoutS: raw.limits.idle_timeout,
      udpIdleTimeoutS: raw.limits.udp_idle_timeout,
      connectTimeoutS: raw.limits.connect_timeout,
      maxTunnels: raw.limits.max_tunnels,
      perIp: {
        connections: raw.limits.per_ip.connections,
        handshakesPerSecond: raw.limits.per_ip.handshakes_per_second,
      },
      handshakeTimeoutS: raw.limits.handshake_timeout,
      preLogin: {
        max: raw.limits.pre_login.max,
        perIp: raw.limits.pre_login.per_ip,
        minAgeMs: raw.limits.pre_login.min_age * 1000,
      },
      cookieAfter: raw.limits.cookie_after,
    },
    auth: {
      lockout: {
        failures: raw.auth.lockout.failures,
        windowS: raw.auth.lockout.window,
        durationS: raw.auth.lockout.duration,
      },
      jwt: {
        secrets: raw.auth.jwt.secrets,
        publicKeys: raw.auth.jwt.public_keys,
        ...(raw.auth.jwt.audience === undefined ? {} : { audience: raw.auth.jwt.audience }),
        leewayS: raw.auth.jwt.leeway,
      },
    },
    socks5Direct: { enabled: raw.socks5_direct.enabled, listen: raw.socks5_direct.listen },
    session: {
      ...sessionSettings(raw.session),
      resumeGraceS: raw.session.resume_grace,
      ...(ticketKeysText === undefined ? {} : { ticketKeysText }),
    },
    crypto: cryptoSettings(raw.crypto, file),
    padding: raw.padding,
    log: { level: raw.log.level },
    admin: {
      ...(admin.listen === undefined ? {} : { listen: admin.listen }),
      ...(admin.token === undefined ? {} : { token: admin.token }),
    },
    accounting: {
      stateFile: resolveRef(file, raw.accounting.state_file),
      flushIntervalS: raw.accounting.flush_interval,
    },
    egress: {
      block: raw.egress.block,
      ...(raw.egress.resolver === undefined ? {} : { resolver: raw.egress.resolver }),
    },
    store,
  };
  return deepFreeze(cfg);
}

/**
 * Reads and parses `server.yml` and the files it names.
 *
 * @example
 * ```ts ignore
 * import { loadServerConfig } from "./server.ts";
 * const cfg = await loadServerConfig("/etc/nitrosocks/server.yml");
 * ```
 */
export async function loadServerConfig(path: string): Promise<ServerConfig> {
  const text = await readConfigText(path);
  return parseServerConfig(text, path, (p) => Deno.readTextFileSync(p));
}
