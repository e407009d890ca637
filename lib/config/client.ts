/**
 * `client.yml`, the profile `nitrosocks user add` writes: which server, its
 * pinned key, the user's credentials, and the local SOCKS5/HTTP listeners.
 * A `nitrosocks://` share link (`share_link.ts`) loads as the profile it carries.
 *
 * @module
 */
import { SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS, SCRAM_SALT_BYTES } from "../crypto/scram.ts";
import { ConfigError } from "../errors.ts";
import { toBase64Url } from "../crypto/mod.ts";
import { formatHostPort, isHost } from "../wire/host_port.ts";
import {
  type At,
  base32Secret,
  boolean,
  configError,
  duration,
  hostPort,
  integer,
  key,
  list,
  locate,
  object,
  oneOf,
  optional,
  record,
  refine,
  required,
  type Schema,
  schemaKeys,
  section,
  string,
  withDefault,
} from "./_schema.ts";
import type { Pos } from "./_yaml.ts";
import {
  type AeadName,
  deepFreeze,
  DEFAULT_AEAD,
  DEFAULT_KEX,
  type KexName,
  type PaddingName,
  parseWith,
  readConfigText,
  resolveRef,
  USER_NAME_PATTERN,
} from "./_shared.ts";
import { encodeBase32 } from "./base32.ts";
import {
  aeadList,
  checkLimits,
  cryptoFields,
  type CryptoSettings,
  cryptoSettings,
  type HostPort,
  kexList,
  paddingField,
  sessionFields,
  type SessionSettings,
  sessionSettings,
  streamCount,
  TRANSPORT_NAMES,
  type TransportName,
  windowFields,
} from "./server.ts";
import { formatServerUrl, parseServerUrl } from "./server_url.ts";
import {
  dnsSchema,
  type DnsSettings,
  dnsSettings,
  type Forward,
  forwardSettings,
  forwardsSchema,
} from "./forwards.ts";
import { decodeShareLink, SHARE_SCHEME, type SharedProfile } from "./share_link.ts";

/** The parsed client profile. */
export interface ClientConfig {
  /** The profile file as given (or "<share link>"). */
  file: string;
  /** The server to connect to. */
  server: HostPort;
  /** TLS server name (SNI and certificate check); defaults to the server host. */
  serverName: string;
  /**
   * "tls" (looks like HTTPS), "tcp" (plain TCP, e.g. behind a TLS-terminating
   * proxy), "wss" or "ws" (WebSocket at `path`, e.g. through a CDN).
   */
  transport: TransportName;
  /** `ws`/`wss`: the WebSocket's path (from the server URL). */
  path?: string;
  /** The server's 64-byte public key (Ed25519 ‖ X25519), pinned. */
  serverKey: Uint8Array;
  /** CA certificate(s) to trust for the server's TLS certificate. */
  caPem?: string;
  /** The user name the server knows this client by. */
  user: string;
  /** Client X25519 private key, 32 bytes. */
  key: Uint8Array;
  /** The user's 32-byte token, when the user's second factor is a token. */
  token?: Uint8Array;
  /**
   * The user's password factor (SCRAM-SHA-256), when the user's second factor
   * is a password: the salt and iteration count the server chose, and the
   * password itself when the profile holds it (else the client asks for it).
   */
  password?: ClientPassword;
  /**
   * The user's JWT factor: the token itself (`jwt`), or the file it is read
   * from at every login (`jwt_file`, resolved next to the profile), so a
   * token renewed on disk is used by the next connection. Never logged.
   */
  jwt?: { token: string } | { file: string };
  /** The user's TOTP secret, when the server requires a TOTP code. */
  totpSecret?: Uint8Array;
  /** A TLS client certificate and key (PEM), for a server with `tls.client_ca`. */
  tlsClient?: { certPem: string; keyPem: string };
  /**
   * `fastOpen`: answer CONNECT with success at once and send the
   * application's first bytes behind the OPEN (one round trip less); false
   * waits for the server's reply so applications get exact SOCKS5 errors.
   */
  socks5: { listen: HostPort; fastOpen: boolean; users?: Map<string, string> };
  /** The local HTTP CONNECT listener, when enabled. */
  httpConnect?: { listen: HostPort };
  /** Fixed local ports to fixed destinations through the tunnel (`forwards:`). */
  forwards: Forward[];
  /** The local DNS server (`dns:`), when enabled. */
  dns?: DnsSettings;
  /** Key exchanges offered, in order of preference. */
  kex: KexName[];
  /** Record ciphers offered, in order of preference. */
  aead: AeadName[];
  /** Flow-control credit (bytes), stream count and connect timeout (s). */
  limits: {
    streamWindow: number;
    sessionWindow: number;
    maxStreams: number;
    connectTimeoutS: number;
  };
  /**
   * More ways to reach the same server (other addresses, untrusted relays),
   * tried by health after `server`; the live session moves between them.
   */
  endpoints: Endpoint[];
  /** Session timers and buffers. */
  session: SessionSettings & {
    /** Move the session to a fresh connection about this often (s); 0 = never. */
    rotateS: number;
  };
  /** Which AEAD implementation seals and opens records (`crypto.backend`, `crypto.library`). */
  crypto: CryptoSettings;
  /**
   * The record padding mode to ask for (`padding:`); the session uses the
   * stronger of this and the server's.
   */
  padding: PaddingName;
}

/** A profile's password factor (`password:` in the profile). */
export interface ClientPassword {
  /** The salt the server chose (16 bytes; not secret). */
  salt: Uint8Array;
  /** PBKDF2 iteration count the server chose. */
  iterations: number;
  /** The password; absent when the client asks for it at start. Never logged. */
  value?: string;
}

/** One way to reach the server. */
export interface Endpoint {
  /** Where to dial. */
  server: HostPort;
  /** TLS server name (SNI and certificate check). */
  serverName: string;
  /** "tls", "tcp", "wss" or "ws". */
  transport: TransportName;
  /** `ws`/`wss`: the WebSocket's path. */
  path?: string;
  /** CA certificate(s) to trust for this endpoint's TLS certificate. */
  caPem?: string;
}

const pem = refine(
  string({ what: "a PEM certificate" }),
  (s) =>
    /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(s)
      ? undefined
      : { detail: "not a PEM certificate", hint: "paste the CA certificate after ca: |" },
);

/** A compact JWS: three base64url parts (the signature may be empty, and is then refused later). */
const JWT_PATTERN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const privateKeyPem = refine(
  string({ what: "a PEM private key", secret: true }),
  (s) =>
    /-----BEGIN (EC |RSA )?PRIVATE KEY-----[\s\S]+-----END (EC |RSA )?PRIVATE KEY-----/.test(s)
      ? undefined
      : { detail: "not a PEM private key", hint: "paste the key after key: |" },
);

/** `server_name`: the TLS name checked, a DNS name (or an IP address). */
const serverName = optional(
  refine(
    string({ what: "a DNS name" }),
    (s) =>
      isHost(s) ? undefined : { detail: `${JSON.stringify(s)} is not a DNS name or IP address` },
  ),
);

/** `server:` as "HOST:PORT" (with `transport:`) or as a URL ("wss://cdn.example/ws"). */
interface ServerAddress {
  server: HostPort;
  /** Present in the URL form: the scheme's transport and, for ws/wss, the path. */
  url?: { transport: TransportName; path?: string };
}

function serverAddress(): Schema<ServerAddress> {
  const plain = hostPort();
  const text = string({ what: 'HOST:PORT or a URL such as "wss://cdn.example/ws"' });
  return {
    parse(node, at) {
      if (node.kind !== "scalar" || typeof node.value !== "string" || !node.value.includes("://")) {
        return { server: plain.parse(node, at) };
      }
      const u = parseServerUrl(text.parse(node, at));
      if (typeof u === "string") {
        throw configError(
          at,
          node.pos,
          `Invalid ${at.path}: ${u}`,
          "write tls://HOST:PORT, tcp://HOST:PORT, wss://HOST:PORT/PATH or ws://HOST:PORT/PATH",
        );
      }
      return {
        server: u.server,
        url: { transport: u.transport, ...(u.path === undefined ? {} : { path: u.path }) },
      };
    },
  };
}

/** The transport and path of a `server:` and the `transport:` beside it; one of them names it. */
function wayIn(
  addr: ServerAddress,
  transport: TransportName | undefined,
  fallback: { transport: TransportName; path?: string },
  where: { at: At; pos: Pos },
): { transport: TransportName; path?: string } {
  if (addr.url !== undefined) {
    if (transport !== undefined && transport !== addr.url.transport) {
      throw configError(
        where.at,
        where.pos,
        `Invalid ${where.at.path}: "${transport}" contradicts the server URL's scheme "${addr.url.transport}://"`,
        "remove transport: (the URL's scheme names it)",
      );
    }
    return addr.url;
  }
  const t = transport ?? fallback.transport;
  if (t === "ws" || t === "wss") {
    if (transport === undefined && fallback.path !== undefined) return fallback;
    throw configError(
      where.at,
      where.pos,
      `Invalid ${where.at.path}: transport "${t}" needs a path: write the server as a URL`,
      `server: "${t}://HOST:PORT/PATH"`,
    );
  }
  return { transport: t };
}

/** One of `endpoints`: a mapping, or just the server as a URL (`- "wss://cdn.example/ws"`). */
function endpointItem() {
  const mapping = object({
    server: required(serverAddress()),
    server_name: serverName,
    transport: optional(oneOf(TRANSPORT_NAMES)),
    ca: optional(pem),
  });
  const address = serverAddress();
  return {
    // A bare URL or the mapping: the keys are the mapping's.
    ...(mapping.shape === undefined ? {} : { shape: mapping.shape }),
    parse(node: Parameters<typeof mapping.parse>[0], at: At): ReturnType<typeof mapping.parse> {
      if (node.kind === "scalar" && typeof node.value === "string") {
        const server = address.parse(node, at);
        if (server.url === undefined) {
          throw configError(
            at,
            node.pos,
            `Invalid ${at.path}: a bare endpoint is a URL such as "wss://cdn.example/ws"`,
            "write a URL, or a mapping with server: HOST:PORT",
          );
        }
        return { server, server_name: undefined, transport: undefined, ca: undefined };
      }
      return mapping.parse(node, at);
    },
  };
}

const clientSchema = object({
  server: required(serverAddress()),
  server_name: serverName,
  transport: optional(oneOf(TRANSPORT_NAMES)),
  server_key: required(key(64)),
  ca: optional(pem),
  user: required(
    string({ pattern: USER_NAME_PATTERN, what: "a user name (1-64 of A-Z a-z 0-9 . _ -)" }),
  ),
  key: required(key(32)),
  token: optional(key(32)),
  password: optional(object({
    salt: required(key(SCRAM_SALT_BYTES)),
    iterations: required(integer(SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS)),
    value: optional(
      string({
        pattern: /^[\s\S]{1,1024}$/,
        what: "a password of 1-1024 characters",
        secret: true,
      }),
    ),
  })),
  jwt: optional(
    string({ pattern: JWT_PATTERN, what: "a JWT (header.payload.signature)", secret: true }),
  ),
  jwt_file: optional(string({ what: "a file path" })),
  totp: optional(base32Secret(16, 64)),
  tls_client: optional(object({ cert: required(pem), key: required(privateKeyPem) })),
  socks5: section(object({
    listen: withDefault(hostPort(0), { host: "127.0.0.1", port: 1080 }),
    fast_open: withDefault(boolean(), true),
    users: optional(record(
      string({ pattern: /^[\s\S]{1,255}$/, what: "a password of 1-255 characters", secret: true }),
      {
        keyPattern: /^[^\s:]{1,255}$/,
        keyWhat: "a SOCKS5 user name of 1-255 characters without spaces",
      },
    )),
  })),
  http_connect: optional(object({ listen: required(hostPort(0)) })),
  forwards: withDefault(forwardsSchema, []),
  dns: optional(dnsSchema),
  endpoints: withDefault(list(endpointItem(), { min: 0 }), []),
  session: section(object({
    ...sessionFields,
    rotate: withDefault(duration(0, 7 * 86400), 0),
  })),
  crypto: section(object(cryptoFields)),
  padding: paddingField,
  kex: withDefault(kexList(), [...DEFAULT_KEX]),
  aead: withDefault(aeadList(), [...DEFAULT_AEAD]),
  limits: section(object({
    ...windowFields,
    max_streams: withDefault(streamCount(), 1024),
    connect_timeout: withDefault(duration(0.1, 300), 10),
  })),
});

/** Every key path a client profile accepts, e.g. `limits.stream_window` (see `schemaKeys`). */
export const CLIENT_CONFIG_KEYS: readonly string[] = Object.freeze(schemaKeys(clientSchema));

/**
 * Parses client profile text.
 *
 * @example
 * ```ts ignore
 * import { parseClientConfig } from "./client.ts";
 * const cfg = parseClientConfig(Deno.readTextFileSync("alice.yml"), "alice.yml");
 * console.log(cfg.socks5.listen); // { host: "127.0.0.1", port: 1080 }
 * ```
 */
export function parseClientConfig(text: string, file: string): ClientConfig {
  const { raw, root } = parseWith(text, file, clientSchema);
  checkLimits(raw, root, file);
  const main = wayIn(raw.server, raw.transport, { transport: "tls" }, {
    at: { file, path: "transport" },
    pos: locate(root, raw.transport === undefined ? ["server"] : ["transport"]),
  });
  const factors = [
    raw.token === undefined ? undefined : "token",
    raw.password === undefined ? undefined : "password",
    raw.jwt === undefined ? undefined : "jwt",
    raw.jwt_file === undefined ? undefined : "jwt_file",
  ].filter((f) => f !== undefined);
  if (factors.length !== 1) {
    throw configError(
      { file, path: "" },
      locate(root, []),
      `Invalid profile: ${
        factors.length === 0 ? "no second factor" : `both ${factors.join(" and ")}`
      }; give exactly one, token, password, jwt or jwt_file`,
      "use the profile that `nitrosocks user add` wrote for this user",
    );
  }
  const pw = raw.password;
  const cfg: ClientConfig = {
    file,
    server: raw.server.server,
    serverName: raw.server_name ?? raw.server.server.host,
    transport: main.transport,
    ...(main.path === undefined ? {} : { path: main.path }),
    serverKey: raw.server_key,
    ...(raw.ca === undefined ? {} : { caPem: raw.ca }),
    user: raw.user,
    key: raw.key,
    ...(raw.token === undefined ? {} : { token: raw.token }),
    ...(raw.jwt === undefined ? {} : { jwt: { token: raw.jwt } }),
    ...(raw.jwt_file === undefined ? {} : { jwt: { file: resolveRef(file, raw.jwt_file) } }),
    ...(pw === undefined ? {} : {
      password: {
        salt: pw.salt,
        iterations: pw.iterations,
        ...(pw.value === undefined ? {} : { value: pw.value }),
      },
    }),
    ...(raw.totp === undefined ? {} : { totpSecret: raw.totp }),
    ...(raw.tls_client === undefined
      ? {}
      : { tlsClient: { certPem: raw.tls_client.cert, keyPem: raw.tls_client.key } }),
    socks5: {
      listen: raw.socks5.listen,
      fastOpen: raw.socks5.fast_open,
      ...(raw.socks5.users === undefined ? {} : { users: raw.socks5.users }),
    },
    ...(raw.http_connect === undefined ? {} : { httpConnect: { listen: raw.http_connect.listen } }),
    forwards: forwardSettings(raw.forwards, { file, root, maxStreams: raw.limits.max_streams }),
    ...(raw.dns === undefined ? {} : { dns: dnsSettings(raw.dns) }),
    kex: raw.kex,
    aead: raw.aead,
    limits: {
      streamWindow: raw.limits.stream_window,
      sessionWindow: raw.limits.session_window,
      maxStreams: raw.limits.max_streams,
      connectTimeoutS: raw.limits.connect_timeout,
    },
    endpoints: raw.endpoints.map((e, i) => {
      const caPem = e.ca ?? raw.ca;
      const way = wayIn(e.server, e.transport, main, {
        at: { file, path: `endpoints[${i}].transport` },
        pos: locate(root, ["endpoints", i, e.transport === undefined ? "server" : "transport"]),
      });
      return {
        server: e.server.server,
        serverName: e.server_name ?? e.server.server.host,
        transport: way.transport,
        ...(way.path === undefined ? {} : { path: way.path }),
        ...(caPem === undefined ? {} : { caPem }),
      };
    }),
    session: { ...sessionSettings(raw.session), rotateS: raw.session.rotate },
    crypto: cryptoSettings(raw.crypto, file),
    padding: raw.padding,
  };
  return deepFreeze(cfg);
}

/**
 * The profile text a share link carries, as `user add` would have written
 * it. A link that names the CA by its hash needs the CA itself (`caPem`,
 * fetched from the server and checked against the hash by
 * `resolveShareLink` in `lib/tunnel/profile_source.ts`); without it this
 * throws `ConfigError` saying how to load such a link.
 *
 * @example
 * ```ts ignore
 * const yaml = shareLinkProfile(decodeShareLink(link));
 * ```
 */
export function shareLinkProfile(shared: SharedProfile, caPem?: string): string {
  if (shared.caSha256 !== undefined && caPem === undefined) {
    throw new ConfigError(
      "This share link names the server's CA by its SHA-256: the CA is fetched from the server",
      { hint: "use nitrosocks profile import, or nitrosocks client --link -" },
    );
  }
  return formatClientProfile({ ...shared.profile, ...(caPem === undefined ? {} : { caPem }) });
}

/**
 * Reads and parses a client profile. `path` may also be a `nitrosocks://`
 * share link, or a file holding one (a link that names the CA by its hash
 * needs `resolveShareLink` of `lib/tunnel/profile_source.ts` instead).
 */
export async function loadClientConfig(path: string): Promise<ClientConfig> {
  if (path.startsWith(SHARE_SCHEME)) {
    return parseClientConfig(shareLinkProfile(decodeShareLink(path)), "<share link>");
  }
  const text = await readConfigText(path);
  if (text.trimStart().startsWith(SHARE_SCHEME)) {
    return parseClientConfig(shareLinkProfile(decodeShareLink(text)), path);
  }
  return parseClientConfig(text, path);
}

/** What {@link formatClientProfile} writes. */
export interface ClientProfileFields extends
  Pick<
    ClientConfig,
    | "server"
    | "serverName"
    | "transport"
    | "path"
    | "serverKey"
    | "caPem"
    | "user"
    | "key"
    | "token"
    | "password"
    | "jwt"
    | "totpSecret"
    | "tlsClient"
  > {
  /** The local SOCKS5 address; default 127.0.0.1:1080. */
  socks5Listen?: HostPort;
}

function hp(h: HostPort): string {
  return JSON.stringify(formatHostPort(h.host, h.port));
}

/**
 * Renders a commented client profile that {@link parseClientConfig} reads
 * back to the same values.
 *
 * @example
 * ```ts ignore
 * import { formatClientProfile } from "./client.ts";
 * Deno.writeTextFileSync("alice.yml", formatClientProfile(profile), { mode: 0o600 });
 * ```
 */
export function formatClientProfile(p: ClientProfileFields): string {
  const lines = [
    `# NitroSocks client profile for user ${JSON.stringify(p.user)}.`,
    "# Keep it secret: it holds the user's private key and token.",
    "# Every key is described in docs/CONFIG.md.",
    "",
    "# The way in, as a URL (tls://, tcp://, wss://HOST:PORT/PATH, ws://…), and the",
    "# name its TLS certificate is checked against.",
    `server: ${
      JSON.stringify(formatServerUrl({
        transport: p.transport,
        server: p.server,
        ...(p.path === undefined ? {} : { path: p.path }),
      }))
    }`,
    `server_name: ${JSON.stringify(p.serverName)}`,
    "",
    "# The server's public key (Ed25519 ‖ X25519). The tunnel is authenticated by",
    "# this pinned key even when the TLS connection is intercepted.",
    `server_key: ${JSON.stringify(toBase64Url(p.serverKey))}`,
  ];
  if (p.caPem !== undefined) {
    lines.push("", "# CA that signed the server's TLS certificate.", "ca: |");
    for (const l of p.caPem.trim().split(/\r?\n/)) lines.push(`  ${l}`);
  }
  lines.push(
    "",
    `# This user's credentials: X25519 private key and ${
      p.password !== undefined
        ? "password (SCRAM-SHA-256)"
        : p.jwt !== undefined
        ? "JWT"
        : "pre-shared token"
    }.`,
    `user: ${JSON.stringify(p.user)}`,
    `key: ${JSON.stringify(toBase64Url(p.key))}`,
  );
  if (p.token !== undefined) lines.push(`token: ${JSON.stringify(toBase64Url(p.token))}`);
  if (p.jwt !== undefined) {
    lines.push(
      "# The login's JSON Web Token (from whoever issues this user's tokens).",
      "token" in p.jwt
        ? `jwt: ${JSON.stringify(p.jwt.token)}`
        : `jwt_file: ${JSON.stringify(p.jwt.file)}`,
    );
  }
  if (p.password !== undefined) {
    lines.push(
      "# The password's salt and iteration count (from the server; not secret). The",
      '# client asks for the password at start; or add `value: "..."` here.',
      "password:",
      `  salt: ${JSON.stringify(toBase64Url(p.password.salt))}`,
      `  iterations: ${p.password.iterations}`,
    );
    if (p.password.value !== undefined) {
      lines.push(`  value: ${JSON.stringify(p.password.value)}`);
    }
  }
  if (p.totpSecret !== undefined) {
    lines.push(
      "# TOTP secret (base32); also add it to an authenticator app if you like.",
      `totp: ${JSON.stringify(encodeBase32(p.totpSecret))}`,
    );
  }
  if (p.tlsClient !== undefined) {
    lines.push(
      "",
      "# TLS client certificate and key (the server has tls.client_ca).",
      "tls_client:",
    );
    lines.push("  cert: |", ...p.tlsClient.certPem.trim().split(/\r?\n/).map((l) => `    ${l}`));
    lines.push("  key: |", ...p.tlsClient.keyPem.trim().split(/\r?\n/).map((l) => `    ${l}`));
  }
  lines.push(
    "",
    "# Local SOCKS5 proxy for applications (no authentication; loopback only).",
    "socks5:",
    `  listen: ${hp(p.socks5Listen ?? { host: "127.0.0.1", port: 1080 })}`,
    "  # Answer CONNECT at once and send the first bytes behind it (one round trip",
    "  # less); false waits for the server so applications get exact SOCKS5 errors.",
    "  fast_open: true",
    "",
    "# Optional HTTP CONNECT proxy:",
    "# http_connect:",
    '#   listen: "127.0.0.1:8118"',
    "",
  );
  return lines.join("\n");
}
