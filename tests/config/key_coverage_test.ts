/**
 * Config-key coverage: every key of `server.yml`, `users.yml` and the client
 * profile is read on the runtime path, or this test fails.
 *
 * How it works, and why it cannot simply be satisfied by a list:
 *
 * - The keys come from the schemas themselves (`SERVER_CONFIG_KEYS`,
 *   `USERS_CONFIG_KEYS`, `CLIENT_CONFIG_KEYS`, walked by `schemaKeys` in
 *   lib/config/_schema.ts), not from a copy: a key added to a schema is a
 *   key this test knows about at once, and a key without a row below fails.
 * - Each row names the **runtime consumer**: a file under `lib/` outside
 *   `lib/config/` (which only parses) and the code in it that reads the
 *   parsed value (e.g. `limits.idleTimeoutS * 1000` in
 *   lib/tunnel/acceptor.ts). The test strips comments from that file and
 *   checks the code is there, so a key whose only reader is deleted, or
 *   that is only mentioned in a comment or in lib/config, fails.
 * - Where a test proves the key's **effect** through a real server and
 *   client (or the runtime component the value is handed to), the row names
 *   it (`proof`: file and test name) and the test checks that such a test
 *   exists. Reviewers extend proofs; the reader check is what cannot be
 *   skipped.
 * - A row for a key the schema does not have fails too (stale rows), and so
 *   does a pending key that gained a row or left the schema.
 *
 * `PENDING` lists the keys whose enforcement another part of issue 10 is
 * building right now; the lead empties it at merge.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { fileURLToPath } from "node:url";
import { SERVER_CONFIG_KEYS } from "../../lib/config/server.ts";
import { USERS_CONFIG_KEYS } from "../../lib/config/users.ts";
import { CLIENT_CONFIG_KEYS } from "../../lib/config/client.ts";
import { test } from "../support/deadline.ts";

/** Where a key's parsed value is read at run time, and what proves its effect. */
interface Use {
  /** A file under lib/, outside lib/config/. */
  file: string;
  /** Code in that file (comments do not count) that reads the parsed value. */
  reads: string;
  /** A test (file, exact name) that shows the key's effect. */
  proof?: [file: string, name: string];
}

const SERVER = "lib/tunnel/server.ts";
const KEEPALIVE_PROOF: [string, string] = [
  "tests/tunnel/session_timers_test.ts",
  "session timers: each keepalive draw sets the next PING: draws 0, 1/2, 1 give 7.5 s, 11.25 s, 15 s",
];
const ACCEPTOR = "lib/tunnel/acceptor.ts";
const OPS = "lib/tunnel/server_ops.ts";
const CLIENT_TUNNEL = "lib/tunnel/client_tunnel.ts";
const LINK = "lib/tunnel/link.ts";
const FRONT = "lib/tunnel/client.ts";
const FORWARDS = "lib/tunnel/forwards.ts";
const DNS = "lib/tunnel/dns.ts";
const UDP_FORWARD_PROOF: [string, string] = [
  "tests/e2e/forwards_test.ts",
  "a UDP forward: hundreds of datagrams from two sources, each gets exactly its own replies",
];
const DNS_PROOF: [string, string] = [
  "tests/e2e/dns_test.ts",
  "dig over UDP and over TCP asks dns.listen; the answers come from the upstream through the tunnel",
];

const CREDENTIALS_PROOF: [string, string] = [
  "tests/e2e/logins_test.ts",
  "user, key and token: the profile's own log in; another user's name, key or token is refused",
];
const PROFILE_ALONE_PROOF: [string, string] = [
  "tests/e2e/paths_test.ts",
  "server, transport and socks5.listen: a client on the profile alone dials its server over its transport and serves SOCKS5 where it says",
];
const ENDPOINT_TLS_PROOF: [string, string] = [
  "tests/e2e/paths_test.ts",
  "endpoints[]: an endpoint's own server_name and ca reach the server when the profile's way in fails",
];
const CLIENT_CRYPTO_PROOF: [string, string] = [
  "tests/e2e/crypto_backends_test.ts",
  "main.ts client: the profile's crypto.backend and crypto.library choose its record crypto; a library that cannot load stops it",
];
const KEX_AEAD_PROOF: [string, string] = [
  "tests/e2e/logins_test.ts",
  "kex and aead: the profile's lists choose the session's key exchange and cipher",
];

const SERVER_KEX_AEAD_PROOF: [string, string] = [
  "tests/e2e/handshake_settings_test.ts",
  "handshake.kex and handshake.aead: a real client gets the server's first choice that it offers",
];

const LIMITS_PROOF: [string, string] = [
  "tests/e2e/limits_test.ts",
  "every window limit at its schema minimum and maximum moves real bytes through a real pair",
];

/**
 * Pending: keys parsed today that no runtime code reads yet, each with the
 * issue that gives it a reader. A key here that gains a row fails the test,
 * so the list only shrinks.
 */
const PENDING: Record<string, string> = {};

const SERVER_KEYS: Record<string, Use> = {
  "listen": {
    file: SERVER,
    reads: "port: options.listen.port",
    proof: [
      "tests/e2e/curl_test.ts",
      "curl downloads 100 MiB through the tunnel with the same SHA-256",
    ],
  },
  "transport": {
    file: SERVER,
    reads: "getTransport(options.transport)",
    proof: [
      "tests/e2e/interception_test.ts",
      "one flipped bit on the wire (plain TCP) kills only that connection: the session resumes and the download is exact",
    ],
  },
  "tls.cert": {
    file: SERVER,
    reads: "certPem: options.tls.certPem",
    proof: [
      "tests/cli/init_user_test.ts",
      "user add profile reaches the server over TLS with its CA and server name",
    ],
  },
  "tls.key": {
    file: SERVER,
    reads: "keyPem: options.tls.keyPem",
    proof: [
      "tests/cli/init_user_test.ts",
      "user add profile reaches the server over TLS with its CA and server name",
    ],
  },
  "tls.alpn": {
    file: SERVER,
    reads: "alpn: options.tls.alpn",
    proof: [
      "tests/e2e/h2_preface_test.ts",
      "tls.alpn: a server that offers only http/1.1 chooses it for an h2 client and sends no preface",
    ],
  },
  "identity": {
    file: SERVER,
    reads: "decodeServerIdentity(options.identity)",
    proof: [
      "tests/e2e/interception_test.ts",
      "a different NitroSocks server at the profile's address is refused with a message about the server key",
    ],
  },
  "users": {
    file: "lib/cli/server_cmd.ts",
    reads: "loadUsers(config.usersFile)",
    proof: [
      "tests/e2e/server_process_test.ts",
      "server.yml's users: the server serves the users of the file it names, not users.yml beside it",
    ],
  },
  "fallback.mode": {
    file: SERVER,
    reads: 'options.fallback.mode === "decoy"',
    proof: [
      "tests/e2e/interception_test.ts",
      "a probe of the server with curl gets the decoy web site",
    ],
  },
  "fallback.upstream": {
    file: SERVER,
    reads: "hostname: options.fallback.upstream.host",
    proof: [
      "tests/e2e/h2_preface_test.ts",
      "fallback.upstream over h2: a prober gets one preface (nginx's), then the real web server's answer",
    ],
  },
  "handshake.clock_window": {
    file: SERVER,
    reads: "windowMs: options.handshake.clockWindowS",
    proof: [
      "tests/e2e/handshake_settings_test.ts",
      "handshake.clock_window: a clock 90 s off is refused with 60s; one 150 s off logs in with 200s",
    ],
  },
  "handshake.replay_cache": {
    file: SERVER,
    reads: "capacity: options.handshake.replayCache",
    proof: [
      "tests/e2e/handshake_settings_test.ts",
      "handshake.replay_cache: after 1000 newer Hellos a cache of 1000 has let the first go, and refuses it as older than its floor",
    ],
  },
  "padding": {
    file: SERVER,
    reads: "recordPadding: options.padding ?? DEFAULT_PADDING",
    proof: [
      "tests/e2e/padding_test.ts",
      "the session pads with the stronger of the two settings, both ways; random when neither says",
    ],
  },
  "handshake.kex": {
    file: SERVER,
    reads: "kex: options.handshake.kex",
    proof: SERVER_KEX_AEAD_PROOF,
  },
  "handshake.aead": {
    file: SERVER,
    reads: "aead: options.handshake.aead",
    proof: SERVER_KEX_AEAD_PROOF,
  },
  "limits.max_streams_per_tunnel": {
    file: ACCEPTOR,
    reads: "limits.maxStreamsPerTunnel)",
    proof: LIMITS_PROOF,
  },
  "limits.stream_window": {
    file: ACCEPTOR,
    reads: "streamWindow: limits.streamWindow",
    proof: LIMITS_PROOF,
  },
  "limits.session_window": {
    file: ACCEPTOR,
    reads: "sessionWindow: limits.sessionWindow",
    proof: LIMITS_PROOF,
  },
  "limits.udp_idle_timeout": {
    file: SERVER,
    reads: "udpIdleMs: options.limits.udpIdleTimeoutS * 1000",
    proof: [
      "tests/e2e/udp_test.ts",
      "the server's UDP sockets expire after udp_idle_timeout, and only peers the client sent to get through",
    ],
  },
  "limits.idle_timeout": {
    file: ACCEPTOR,
    reads: "tunnelIdleMs: limits.idleTimeoutS * 1000",
    proof: [
      "tests/e2e/idle_test.ts",
      "an ssh session idle past idle_timeout lives on; a tunnel with no streams then closes, with an event",
    ],
  },
  "limits.connect_timeout": {
    file: SERVER,
    reads: "connectTimeoutMs: options.limits.connectTimeoutS * 1000",
    proof: [
      "tests/e2e/connect_timeout_test.ts",
      "limits.connect_timeout: a name slower to resolve than it is refused (reply 4); a longer timeout reaches it",
    ],
  },
  "tls.client_ca": {
    file: SERVER,
    reads: "clientCaPem: options.tls.clientCaPem",
    proof: [
      "tests/e2e/mtls_test.ts",
      "tls.client_ca: a client certificate for the user logs in; none, or another user's, does not",
    ],
  },
  "limits.per_ip.connections": {
    file: "lib/tunnel/login_guard.ts",
    reads: "st.open >= this.#s.connections",
    proof: [
      "tests/e2e/lockout_test.ts",
      "a connection over limits.per_ip.connections gets the fallback web server, like a probe",
    ],
  },
  "limits.handshake_timeout": {
    file: ACCEPTOR,
    reads: "const handshakeMs = this.#o.settings.limits.handshakeTimeoutS * 1000;",
    proof: [
      "tests/e2e/hostile_test.ts",
      "limits.handshake_timeout: a client that stalls after the ServerHello is closed when it passes",
    ],
  },
  "limits.pre_login.max": {
    file: "lib/tunnel/login_guard.ts",
    reads: "if (this.#all.size >= this.#s.max)",
    proof: [
      "tests/e2e/hostile_test.ts",
      "limits.pre_login.max: 500 idle connections keep 200, the oldest 300 are closed, and a client still logs in",
    ],
  },
  "limits.pre_login.per_ip": {
    file: "lib/tunnel/login_guard.ts",
    reads: "mine.size >= this.#s.perIp",
    proof: [
      "tests/e2e/hostile_test.ts",
      "limits.pre_login.per_ip: 120 idle connections from one source keep 50, the oldest closed first, and a client from it still logs in",
    ],
  },
  "limits.pre_login.min_age": {
    file: "lib/tunnel/login_guard.ts",
    reads: "now - oldest.since >= this.#s.minAgeMs",
    proof: [
      "tests/e2e/hostile_test.ts",
      "limits.pre_login.min_age: 250 connections reconnecting from 5 addresses for 4 s evict a bounded number, and a client still logs in",
    ],
  },
  "limits.cookie_after": {
    file: ACCEPTOR,
    reads: "this.#handshaking <= this.#o.settings.limits.cookieAfter",
    proof: [
      "tests/e2e/hostile_test.ts",
      "limits.cookie_after: a real client behind a Hello flood logs in through the cookie; probers still see the web server",
    ],
  },
  "limits.per_ip.handshakes_per_second": {
    file: "lib/tunnel/login_guard.ts",
    reads: "const rate = this.#s.handshakesPerSecond",
    proof: [
      "tests/e2e/lockout_test.ts",
      "a source over limits.per_ip.handshakes_per_second gets the fallback web server, like a probe",
    ],
  },
  "auth.lockout.failures": {
    file: "lib/tunnel/login_guard.ts",
    reads: "const { failures, windowS, durationS } = this.#s;",
    proof: [
      "tests/e2e/lockout_test.ts",
      "a locked-out login looks like an ordinary failed one: same bytes, medians within 50 ms",
    ],
  },
  "auth.lockout.window": {
    file: "lib/tunnel/login_guard.ts",
    reads: "const from = now - windowS * 1000;",
    proof: [
      "tests/e2e/lockout_test.ts",
      "a locked-out login looks like an ordinary failed one: same bytes, medians within 50 ms",
    ],
  },
  "auth.lockout.duration": {
    file: "lib/tunnel/login_guard.ts",
    reads: "const { failures, windowS, durationS } = this.#s;",
    proof: [
      "tests/e2e/lockout_test.ts",
      "a locked-out login looks like an ordinary failed one: same bytes, medians within 50 ms",
    ],
  },
  "auth.jwt.secrets": {
    file: SERVER,
    reads: "...(j?.secrets ?? [])",
    proof: [
      "tests/e2e/jwt_keys_test.ts",
      "auth.jwt.secrets: an HS256 token signed with the server's secret logs in; another secret does not",
    ],
  },
  "auth.jwt.public_keys": {
    file: SERVER,
    reads: "...(j?.publicKeys ?? [])",
    proof: [
      "tests/e2e/jwt_keys_test.ts",
      "auth.jwt.public_keys: an EdDSA token signed by the server-wide key logs in any JWT user",
    ],
  },
  "auth.jwt.audience": {
    file: SERVER,
    reads: "{ audience: j.audience }",
    proof: [
      "tests/e2e/jwt_keys_test.ts",
      "auth.jwt.audience: a token whose aud lacks the server's audience is refused; one with it logs in",
    ],
  },
  "auth.jwt.leeway": {
    file: SERVER,
    reads: "leewayS: j?.leewayS ?? 0",
    proof: [
      "tests/e2e/jwt_test.ts",
      "a JWT login works, its session ends at exp, and a fresh token on disk gets back in",
    ],
  },
  "socks5_direct.enabled": {
    file: SERVER,
    reads: "options.socks5Direct.enabled",
    proof: [
      "tests/e2e/server_features_test.ts",
      "the server's direct SOCKS5 port proxies without a tunnel when enabled",
    ],
  },
  "socks5_direct.listen": {
    file: SERVER,
    reads: "serveDirectSocks(options.socks5Direct.listen",
    proof: [
      "tests/e2e/server_features_test.ts",
      "the server's direct SOCKS5 port proxies without a tunnel when enabled",
    ],
  },
  "ws.path": {
    file: SERVER,
    reads: "path: options.ws.path",
    proof: [
      "tests/e2e/fronts_test.ts",
      "transport wss without a front: the server's own TLS, exact bytes, and its other paths get the decoy over TLS",
    ],
  },
  "proxy_protocol": {
    file: SERVER,
    reads: "options.proxyProtocol ? { proxyProtocol: true }",
    proof: [
      "tests/e2e/fronts_test.ts",
      "behind HAProxy (TCP mode, send-proxy-v2) with proxy_protocol: the server sees the real client address; a connection without the header is a probe",
    ],
  },
  "limits.max_tunnels": {
    file: SERVER,
    reads: "maxTunnels: options.limits.maxTunnels",
    proof: [
      "tests/e2e/user_limits_test.ts",
      "limits.max_tunnels: a login over the server's limit is ended with NOTICE LIMIT",
    ],
  },
  "egress.block": {
    file: SERVER,
    reads: "options.egress?.block ?? DEFAULT_EGRESS_BLOCK",
    proof: [
      "tests/e2e/egress_test.ts",
      "egress.block from server.yml: [self] blocks only the server's own address",
    ],
  },
  "egress.resolver": {
    file: SERVER,
    reads: "options.egress?.resolver",
    proof: [
      "tests/e2e/egress_test.ts",
      "a name that resolves to loopback is refused after resolution (no DNS-rebinding bypass)",
    ],
  },
  "session.keepalive": {
    file: ACCEPTOR,
    reads: "keepaliveMs: s.keepaliveS * 1000",
    proof: KEEPALIVE_PROOF,
  },
  "session.cover_traffic": {
    file: ACCEPTOR,
    reads: "coverMs: s.coverTrafficS * 1000",
    proof: [
      "tests/tunnel/session_timers_test.ts",
      "session timers: cover traffic: a quiet link sends a PADDING record after each drawn gap, which the peer ignores",
    ],
  },
  "session.dead_after": {
    file: ACCEPTOR,
    reads: "deadAfterMs: s.deadAfterS * 1000",
    proof: [
      "tests/e2e/resume_outage_test.ts",
      "session.dead_after on the server: a link silent for 1 s is dropped by the server, whose client would wait 2 h",
    ],
  },
  "session.rekey_interval": {
    file: ACCEPTOR,
    reads: "ms: s.rekeyIntervalS * 1000",
    proof: [
      "tests/e2e/rotation_test.ts",
      "key rotation: session.rekey_interval 1s re-keys the live link on both sides during a transfer",
    ],
  },
  "session.rekey_bytes": {
    file: ACCEPTOR,
    reads: "rekey: { bytes: s.rekeyBytes",
    proof: LIMITS_PROOF,
  },
  "session.resend_buffer": {
    file: ACCEPTOR,
    reads: "resendBufferBytes: s.resendBuffer",
    proof: LIMITS_PROOF,
  },
  "session.resume_grace": {
    file: SERVER,
    reads: "options.session.resumeGraceS * 1000",
    proof: [
      "tests/e2e/resume_test.ts",
      "a session not resumed within resume_grace expires on the server and can no longer be resumed",
    ],
  },
  "session.ticket_keys": {
    file: SERVER,
    reads: "decodeTicketKeys(options.session.ticketKeysText",
    proof: [
      "tests/e2e/tickets_test.ts",
      "tickets: a reconnect that lands on the other server resumes the login, not the streams",
    ],
  },
  "crypto.backend": {
    file: "lib/cli/server_cmd.ts",
    reads: "useCryptoBackend(config.crypto)",
    proof: [
      "tests/e2e/crypto_backends_test.ts",
      "main.ts server with crypto.backend: openssl and no --allow-ffi exits 1 saying to grant it",
    ],
  },
  "crypto.library": {
    file: "lib/cli/crypto.ts",
    reads: "library: settings.library",
    proof: [
      "tests/e2e/crypto_backends_test.ts",
      "main.ts server with crypto.library: a copy of libcrypto at another path is the one it loads; a missing file stops it, named",
    ],
  },
  "log.level": {
    file: "lib/cli/server_cmd.ts",
    reads: "logLevelFlag(p, config.log.level)",
    proof: [
      "tests/e2e/server_process_test.ts",
      "server.yml's log.level: debug logs each stream's destination; warn keeps a warning and drops the info lines",
    ],
  },
  "admin.listen": {
    file: OPS,
    reads: "options.admin?.listen",
    proof: [
      "tests/e2e/accounting_test.ts",
      "a curl download is counted for its user; /metrics passes promtool check metrics",
    ],
  },
  "admin.token": {
    file: OPS,
    reads: "token: options.admin.token",
    proof: [
      "tests/e2e/accounting_test.ts",
      "nitrosocks status and kick (subprocesses) against a running server with a token",
    ],
  },
  "accounting.state_file": {
    file: OPS,
    reads: "FileStore.open(options.accounting.stateFile)",
    proof: [
      "tests/e2e/accounting_test.ts",
      "counters survive a restart: the state file is written at shutdown and counting continues",
    ],
  },
  "accounting.flush_interval": {
    file: OPS,
    reads: "options.accounting.flushIntervalS * 1000",
    proof: [
      "tests/e2e/accounting_test.ts",
      "accounting.flush_interval: 200ms puts a live stream in the state file while the server runs; 1h does not",
    ],
  },
  "store.url": {
    file: "lib/tunnel/fleet_store.ts",
    reads: "url: settings.url",
    proof: [
      "tests/e2e/fleet_test.ts",
      "a Hello recorded on one server and replayed to another server of the fleet gets the decoy",
    ],
  },
  "store.password_file": {
    file: "lib/tunnel/fleet_store.ts",
    reads: "password: settings.password",
    proof: [
      "tests/e2e/fleet_test.ts",
      "store.password_file: a fleet logs in to a Redis that asks for a password; a wrong one stops the server",
    ],
  },
  "store.tls_ca": {
    file: "lib/tunnel/fleet_store.ts",
    reads: "tlsCaPem: settings.tlsCaPem",
    proof: [
      "tests/e2e/fleet_test.ts",
      "store.tls_ca: a fleet reaches Redis over TLS (rediss://) through its own CA; another CA stops the server",
    ],
  },
  "store.ticket_rotation": {
    file: SERVER,
    reads: "options.store.ticketRotationS",
    proof: [
      "tests/e2e/fleet_test.ts",
      "store.ticket_rotation: the fleet's own ticket keys resume a login on another server, across a rotation",
    ],
  },
  "store.users": {
    file: SERVER,
    reads: "!options.store.users",
    proof: [
      "tests/e2e/fleet_users_test.ts",
      "store.users: user set --disable ends the user's tunnels on every server, and the next login is refused on every server",
    ],
  },
  "store.prefix": {
    file: "lib/tunnel/fleet_store.ts",
    reads: "prefix: settings.prefix",
    proof: [
      "tests/fleet/fleet_test.ts",
      "two prefixes on one Redis are two fleets: nonces and leases do not mix",
    ],
  },
};

const USERS_KEYS: Record<string, Use> = {
  "users.*.public_key": { file: SERVER, reads: "publicKey: u.publicKey", proof: CREDENTIALS_PROOF },
  "users.*.token": { file: SERVER, reads: "r.token = u.token", proof: CREDENTIALS_PROOF },
  "users.*.password.salt": {
    file: "lib/provision/users.ts",
    reads: "scramVerifier(password, current.salt, current.iterations)",
    proof: [
      "tests/e2e/logins_test.ts",
      "user set --password re-derives with the stored salt: the same profile logs in with the new password only",
    ],
  },
  "users.*.password.iterations": {
    file: "lib/provision/users.ts",
    reads: "scramVerifier(password, current.salt, current.iterations)",
    proof: [
      "tests/e2e/logins_test.ts",
      "user set --password re-derives with the stored salt: the same profile logs in with the new password only",
    ],
  },
  "users.*.password.stored_key": {
    file: SERVER,
    reads: "storedKey: u.password.storedKey",
    proof: [
      "tests/e2e/logins_test.ts",
      "a wrong password is refused as auth_failed, a right one logs in; neither is logged",
    ],
  },
  "users.*.password.server_key": {
    file: SERVER,
    reads: "serverKey: u.password.serverKey",
    proof: [
      "tests/e2e/logins_test.ts",
      "a wrong password is refused as auth_failed, a right one logs in; neither is logged",
    ],
  },
  "users.*.jwt.secret": {
    file: SERVER,
    reads: "[u.jwt.secret]",
    proof: [
      "tests/e2e/jwt_test.ts",
      "a JWT login works, its session ends at exp, and a fresh token on disk gets back in",
    ],
  },
  "users.*.jwt.public_key": {
    file: SERVER,
    reads: "[u.jwt.publicKey]",
    proof: [
      "tests/e2e/jwt_keys_test.ts",
      "users.*.jwt.public_key: a user's own Ed25519 key logs in that user only",
    ],
  },
  "users.*.bandwidth": {
    file: "lib/tunnel/user_limits.ts",
    reads: "const bw = u?.bandwidth",
    proof: [
      "tests/e2e/user_limits_test.ts",
      "bandwidth: a curl download through the tunnel runs at 1 MB/s ±10 %",
    ],
  },
  "users.*.quota": {
    file: "lib/tunnel/user_limits.ts",
    reads: "const { used, until } = this.#usage(user, u.quota, Date.now());",
    proof: [
      "tests/e2e/user_limits_test.ts",
      "quota: the download that uses it up ends within 1 s; later streams say until when",
    ],
  },
  "users.*.max_tunnels": {
    file: "lib/tunnel/user_limits.ts",
    reads: "this.#o.users.get(user)?.maxTunnels",
    proof: [
      "tests/e2e/user_limits_test.ts",
      "max_tunnels: a login over the user's limit is ended with NOTICE LIMIT",
    ],
  },
  "users.*.max_streams": {
    file: "lib/tunnel/user_limits.ts",
    reads: "if (n > u.maxStreams) {",
    proof: [
      "tests/e2e/user_limits_test.ts",
      "max_streams counts streams over all of a user's tunnels",
    ],
  },
  "users.*.expires": {
    file: "lib/tunnel/user_limits.ts",
    reads: "u.expires.getTime() <= now",
    proof: [
      "tests/e2e/user_limits_test.ts",
      "an expiring user's live download ends within 1 s of `expires`, by the timer",
    ],
  },
  "users.*.disabled": {
    file: "lib/tunnel/user_limits.ts",
    reads: "if (u.disabled) return",
    proof: [
      "tests/e2e/user_limits_test.ts",
      "a disabled user's live download ends within 1 s (NOTICE REVOKED)",
    ],
  },
  "users.*.totp": {
    file: SERVER,
    reads: "r.totpSecret = u.totpSecret",
    proof: [
      "tests/e2e/logins_test.ts",
      "totp: the profile's TOTP secret logs in; another secret or none is refused",
    ],
  },
  "users.*.routes": {
    file: "lib/tunnel/stream_policy.ts",
    reads: "return u.routes;",
    proof: [
      "tests/api/connect_test.ts",
      "dial() to a target the routes do not allow rejects with Socks5Error NOT_ALLOWED",
    ],
  },
};

const CLIENT_KEYS: Record<string, Use> = {
  "server": {
    file: CLIENT_TUNNEL,
    reads: "options.server ?? profile.server",
    proof: PROFILE_ALONE_PROOF,
  },
  "server_name": {
    file: CLIENT_TUNNEL,
    reads: "serverName: profile.serverName",
    proof: [
      "tests/cli/init_user_test.ts",
      "user add profile reaches the server over TLS with its CA and server name",
    ],
  },
  "transport": {
    file: LINK,
    reads: "getTransport(endpoint.transport)",
    proof: PROFILE_ALONE_PROOF,
  },
  "server_key": {
    file: LINK,
    reads: "serverPublicKey: config.serverKey",
    proof: [
      "tests/e2e/interception_test.ts",
      "a different NitroSocks server at the profile's address is refused with a message about the server key",
    ],
  },
  "ca": {
    file: CLIENT_TUNNEL,
    reads: "options.caPem ?? profile.caPem",
    proof: [
      "tests/e2e/interception_test.ts",
      "a client trusting another CA fails with a clear TLS error",
    ],
  },
  "user": { file: LINK, reads: "userId: config.user", proof: CREDENTIALS_PROOF },
  "key": { file: LINK, reads: "clientKey: config.key", proof: CREDENTIALS_PROOF },
  "token": { file: LINK, reads: "credentials.token = config.token", proof: CREDENTIALS_PROOF },
  "password.salt": {
    file: LINK,
    reads: "saltedPassword(value, pw.salt, pw.iterations)",
    proof: [
      "tests/e2e/logins_test.ts",
      "a wrong password is refused as auth_failed, a right one logs in; neither is logged",
    ],
  },
  "password.iterations": {
    file: LINK,
    reads: "saltedPassword(value, pw.salt, pw.iterations)",
    proof: [
      "tests/e2e/logins_test.ts",
      "a wrong password is refused as auth_failed, a right one logs in; neither is logged",
    ],
  },
  "password.value": {
    file: LINK,
    reads: "const value = pw.value;",
    proof: [
      "tests/e2e/logins_test.ts",
      "a wrong password is refused as auth_failed, a right one logs in; neither is logged",
    ],
  },
  "jwt": {
    file: LINK,
    reads: '"token" in jwt ? jwt.token',
    proof: [
      "tests/e2e/jwt_test.ts",
      "a JWT login works, its session ends at exp, and a fresh token on disk gets back in",
    ],
  },
  "jwt_file": {
    file: LINK,
    reads: "await readJwtFile(config.user, jwt.file)",
    proof: [
      "tests/e2e/jwt_test.ts",
      "a JWT login works, its session ends at exp, and a fresh token on disk gets back in",
    ],
  },
  "tls_client.cert": {
    file: LINK,
    reads: "clientCertPem: config.tlsClient.certPem",
    proof: [
      "tests/e2e/mtls_test.ts",
      "tls.client_ca: a client certificate for the user logs in; none, or another user's, does not",
    ],
  },
  "tls_client.key": {
    file: LINK,
    reads: "clientKeyPem: config.tlsClient.keyPem",
    proof: [
      "tests/e2e/mtls_test.ts",
      "tls.client_ca: a client certificate for the user logs in; none, or another user's, does not",
    ],
  },
  "totp": {
    file: LINK,
    reads: "credentials.totpSecret = config.totpSecret",
    proof: [
      "tests/e2e/logins_test.ts",
      "totp: the profile's TOTP secret logs in; another secret or none is refused",
    ],
  },
  "socks5.listen": {
    file: FRONT,
    reads: "options.socks ?? profile.socks5.listen",
    proof: PROFILE_ALONE_PROOF,
  },
  "socks5.fast_open": {
    file: FRONT,
    reads: "fastOpen: profile.socks5.fastOpen",
    proof: [
      "tests/e2e/errors_test.ts",
      "SOCKS5: a closed port on the server's side gets reply 5 (connection refused)",
    ],
  },
  "socks5.users": {
    file: FRONT,
    reads: "users: profile.socks5.users",
    proof: [
      "tests/e2e/errors_test.ts",
      "SOCKS5: a wrong password gets RFC 1929 status 1, the right one connects",
    ],
  },
  "http_connect.listen": {
    file: FRONT,
    reads: "serveHttpConnect(profile.httpConnect.listen",
    proof: ["tests/e2e/curl_test.ts", "curl -p -x through the client's HTTP CONNECT port"],
  },
  "forwards[].listen": {
    file: FORWARDS,
    reads: "Deno.listen({ hostname: listen.host, port: listen.port })",
    proof: [
      "tests/e2e/forwards_test.ts",
      "ssh through a TCP forward logs in to a real sshd, dialed by the server",
    ],
  },
  "forwards[].to": {
    file: FORWARDS,
    reads: "datagramAddress(to.host, to.port)",
    proof: UDP_FORWARD_PROOF,
  },
  "forwards[].protocol": {
    file: FORWARDS,
    reads: 'forward.protocol === "tcp"',
    proof: UDP_FORWARD_PROOF,
  },
  "forwards[].idle_timeout": {
    file: FORWARDS,
    reads: "forward.idleTimeoutS * 1000",
    proof: [
      "tests/e2e/forwards_test.ts",
      "a TCP forward with idle_timeout closes a connection that moved nothing for that long",
    ],
  },
  "forwards[].max_sources": {
    file: FORWARDS,
    reads: "const max = forward.maxSources",
    proof: [
      "tests/e2e/forwards_test.ts",
      "a UDP forward flooded by 400 sources holds at most max_sources streams; curl through SOCKS5 still works",
    ],
  },
  "dns.listen": {
    file: DNS,
    reads: 'Deno.listenDatagram({ transport: "udp", hostname: listen.host, port: listen.port })',
    proof: DNS_PROOF,
  },
  "dns.upstream": {
    file: DNS,
    reads: "datagramAddress(upstream.host, upstream.port)",
    proof: DNS_PROOF,
  },
  "dns.idle_timeout": {
    file: DNS,
    reads: "idleTimeoutS: s.idleTimeoutS",
    proof: [
      "tests/e2e/dns_test.ts",
      "dns.idle_timeout closes a TCP DNS connection idle that long, and its tunnel stream",
    ],
  },
  "endpoints[].server": {
    file: CLIENT_TUNNEL,
    reads: "new PathSelector([first, ...profile.endpoints]",
    proof: [
      "tests/e2e/paths_test.ts",
      "failover: killing the relay in use moves the live session to the other endpoint",
    ],
  },
  "endpoints[].server_name": {
    file: LINK,
    reads: "serverName: endpoint.serverName",
    proof: ENDPOINT_TLS_PROOF,
  },
  "endpoints[].transport": {
    file: LINK,
    reads: "getTransport(endpoint.transport)",
    proof: [
      "tests/e2e/paths_test.ts",
      "endpoints[].transport: an endpoint's own transport reaches a tcp server when the profile's is tls",
    ],
  },
  "endpoints[].ca": { file: LINK, reads: "caPems: [endpoint.caPem]", proof: ENDPOINT_TLS_PROOF },
  "session.keepalive": {
    file: CLIENT_TUNNEL,
    reads: "keepaliveMs: profile.session.keepaliveS",
    proof: KEEPALIVE_PROOF,
  },
  "session.cover_traffic": {
    file: CLIENT_TUNNEL,
    reads: "coverMs: profile.session.coverTrafficS * 1000",
    proof: [
      "tests/e2e/cover_traffic_test.ts",
      "session.cover_traffic 200ms: a quiet client sends records of varied size at varied gaps; the server stays silent",
    ],
  },
  "session.dead_after": {
    file: CLIENT_TUNNEL,
    reads: "deadAfterMs: profile.session.deadAfterS",
    proof: [
      "tests/e2e/resume_outage_test.ts",
      "a stalled connection is found dead by the keepalive timers and the download resumes exactly",
    ],
  },
  "session.rekey_interval": {
    file: CLIENT_TUNNEL,
    reads: "ms: profile.session.rekeyIntervalS * 1000",
    proof: [
      "tests/e2e/rotation_test.ts",
      "key rotation: the profile's session.rekey_interval 1s re-keys from the client's side",
    ],
  },
  "session.rekey_bytes": {
    file: CLIENT_TUNNEL,
    reads: "bytes: profile.session.rekeyBytes",
    proof: [
      "tests/e2e/rotation_test.ts",
      "key rotation: the profile's session.rekey_bytes 4MiB re-keys from the client's side",
    ],
  },
  "session.resend_buffer": {
    file: CLIENT_TUNNEL,
    reads: "resendBufferBytes: profile.session.resendBuffer",
    proof: [
      "tests/e2e/resume_outage_test.ts",
      "while the server is unreachable the client buffers no more than its resend buffer and the peer's credit, then the upload completes exactly",
    ],
  },
  "session.rotate": {
    file: CLIENT_TUNNEL,
    reads: "this.#profile.session.rotateS",
    proof: [
      "tests/e2e/rotation_test.ts",
      "connection rotation: session.rotate 1s moves a live transfer across fresh connections with no loss",
    ],
  },
  "crypto.backend": {
    file: "lib/cli/client_cmd.ts",
    reads: "useCryptoBackend(config.crypto)",
    proof: CLIENT_CRYPTO_PROOF,
  },
  "crypto.library": {
    file: "lib/cli/crypto.ts",
    reads: "library: settings.library",
    proof: CLIENT_CRYPTO_PROOF,
  },
  "padding": {
    file: LINK,
    reads: "recordPadding: config.padding",
    proof: [
      "tests/e2e/padding_test.ts",
      "the session pads with the stronger of the two settings, both ways; random when neither says",
    ],
  },
  "kex": { file: LINK, reads: "kex: config.kex", proof: KEX_AEAD_PROOF },
  "aead": { file: LINK, reads: "aead: config.aead", proof: KEX_AEAD_PROOF },
  "limits.stream_window": {
    file: CLIENT_TUNNEL,
    reads: "streamWindow: profile.limits.streamWindow",
    proof: LIMITS_PROOF,
  },
  "limits.session_window": {
    file: CLIENT_TUNNEL,
    reads: "sessionWindow: profile.limits.sessionWindow",
    proof: LIMITS_PROOF,
  },
  "limits.max_streams": {
    file: CLIENT_TUNNEL,
    reads: "maxStreams: profile.limits.maxStreams",
    proof: LIMITS_PROOF,
  },
  "limits.connect_timeout": {
    file: LINK,
    reads: "timeoutMs: config.limits.connectTimeoutS * 1000",
    proof: [
      "tests/api/connect_test.ts",
      "the profile's limits.connect_timeout bounds connecting to the server (TCP and TLS)",
    ],
  },
};

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The file's text without comments (line and block), so a mention in a comment is no reader. */
function codeOf(path: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(ROOT + path);
  } catch {
    return "";
  }
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

/** Every problem with one file's table, as lines for the failure message. */
function problems(
  fileName: string,
  schemaKeys: readonly string[],
  table: Record<string, Use>,
): string[] {
  const out: string[] = [];
  const inSchema = new Set(schemaKeys);
  for (const key of schemaKeys) {
    const pending = PENDING[`${fileName} ${key}`] !== undefined;
    const use = table[key];
    if (pending && use !== undefined) {
      out.push(`${fileName} ${key}: has a reader now; take it off PENDING`);
    } else if (!pending && use === undefined) {
      out.push(
        `${fileName} ${key}: no runtime code reads it (add a row, implement it or remove it)`,
      );
    }
  }
  for (const [key, use] of Object.entries(table)) {
    if (!inSchema.has(key)) out.push(`${fileName} ${key}: not in the schema; remove its row`);
    if (!use.file.startsWith("lib/") || use.file.startsWith("lib/config/")) {
      out.push(`${fileName} ${key}: ${use.file} is not runtime code (lib/, outside lib/config/)`);
      continue;
    }
    if (!codeOf(use.file).includes(use.reads)) {
      out.push(`${fileName} ${key}: ${use.file} no longer reads it (${JSON.stringify(use.reads)})`);
    }
    if (use.proof !== undefined) {
      const [file, name] = use.proof;
      const text = codeOf(file);
      const named = [`"${name}"`, `\`${name}\``].some((q) => text.includes(q));
      if (!/_test\.ts$/.test(file) || !named) {
        out.push(`${fileName} ${key}: proof test ${JSON.stringify(name)} not found in ${file}`);
      }
    }
  }
  return out;
}

test("every config key is read on the runtime path (or is pending in issue 10)", () => {
  const found = [
    ...problems("server.yml", SERVER_CONFIG_KEYS, SERVER_KEYS),
    ...problems("users.yml", USERS_CONFIG_KEYS, USERS_KEYS),
    ...problems("client profile", CLIENT_CONFIG_KEYS, CLIENT_KEYS),
  ];
  for (const id of Object.keys(PENDING)) {
    const [fileName, key] = id.split(" ") as [string, string];
    const keys = fileName === "server.yml"
      ? SERVER_CONFIG_KEYS
      : fileName === "users.yml"
      ? USERS_CONFIG_KEYS
      : CLIENT_CONFIG_KEYS;
    if (!keys.includes(key)) found.push(`PENDING ${id}: not in the schema; remove it`);
  }
  assert.deepEqual(found, []);
});

test("the coverage check fails for a key nobody reads, a stale row and a reader that is gone", () => {
  const table: Record<string, Use> = {
    "a": { file: SERVER, reads: "getTransport(options.transport)" },
    "gone": { file: SERVER, reads: "options.noSuchSetting" },
    "parsed_only": { file: "lib/config/server.ts", reads: "limits" },
  };
  const found = problems("x.yml", ["a", "b", "parsed_only"], table);
  assert.deepEqual(found, [
    "x.yml b: no runtime code reads it (add a row, implement it or remove it)",
    "x.yml gone: not in the schema; remove its row",
    'x.yml gone: lib/tunnel/server.ts no longer reads it ("options.noSuchSetting")',
    "x.yml parsed_only: lib/config/server.ts is not runtime code (lib/, outside lib/config/)",
  ]);
});
