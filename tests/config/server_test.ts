import assert from "node:assert/strict";
import { parseServerConfig } from "../../lib/config/mod.ts";
import { assertAt, CERT, configError, files, k, KEY, SERVER_FILES } from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

const MINIMAL = "identity: keys/server.key\ntls: {cert: tls/server.crt, key: tls/server.key}\n";

Deno.test("parseServerConfig() applies every default to a minimal file", () => {
  const cfg = parseServerConfig(MINIMAL, "etc/server.yml", SERVER_FILES);
  assert.equal(cfg.file, "etc/server.yml");
  assert.equal(cfg.dir, "etc");
  assert.deepEqual(cfg.listen, { host: "0.0.0.0", port: 8443 });
  assert.equal(cfg.transport, "tls");
  assert.deepEqual(cfg.tls, { certPem: CERT, keyPem: KEY, alpn: ["h2", "http/1.1"] });
  assert.deepEqual(cfg.identity, new Uint8Array(64).fill(7));
  assert.equal(cfg.usersFile, "etc/users.yml");
  assert.deepEqual(cfg.fallback, { mode: "decoy" });
  assert.deepEqual(cfg.handshake, {
    clockWindowS: 120,
    replayCache: 100_000,
    kex: ["x25519-mlkem768", "x25519"],
    aead: ["aes-256-gcm", "chacha20-poly1305", "aes-128-gcm"],
  });
  assert.deepEqual(cfg.limits, {
    maxStreamsPerTunnel: 1024,
    streamWindow: 8 << 20,
    sessionWindow: 64 << 20,
    idleTimeoutS: 300,
    udpIdleTimeoutS: 60,
    connectTimeoutS: 10,
    maxTunnels: 256,
    perIp: { connections: 64, handshakesPerSecond: 20 },
    handshakeTimeoutS: 15,
    preLogin: { max: 4096, perIp: 32, minAgeMs: 5000 },
    cookieAfter: 64,
  });
  assert.deepEqual(cfg.auth, {
    lockout: { failures: 10, windowS: 600, durationS: 900 },
    jwt: { secrets: [], publicKeys: [], leewayS: 30 },
  });
  assert.deepEqual(cfg.socks5Direct, { enabled: false, listen: { host: "127.0.0.1", port: 1081 } });
  assert.deepEqual(cfg.crypto, { backend: "auto" });
  assert.deepEqual(cfg.log, { level: "info" });
});

Deno.test("parseServerConfig() reads crypto.backend and resolves crypto.library like other paths", () => {
  const at = (crypto: string) =>
    parseServerConfig(`${MINIMAL}crypto: ${crypto}\n`, "etc/server.yml", SERVER_FILES).crypto;
  assert.deepEqual(at("{backend: webcrypto}"), { backend: "webcrypto" });
  assert.deepEqual(at("{backend: openssl, library: lib/libcrypto.so.3}"), {
    backend: "openssl",
    library: "etc/lib/libcrypto.so.3",
  });
  assert.deepEqual(at("{library: /opt/ssl/libcrypto.so.3}"), {
    backend: "auto",
    library: "/opt/ssl/libcrypto.so.3",
  });
  // A bare file name is for the system loader to find.
  assert.deepEqual(at("{library: libcrypto-3-x64.dll}"), {
    backend: "auto",
    library: "libcrypto-3-x64.dll",
  });
});

Deno.test("parseServerConfig() refuses an unknown crypto backend, listing the choices", () => {
  const e = configError(() =>
    parseServerConfig(`${MINIMAL}crypto:\n  backend: boringssl\n`, "etc/server.yml", SERVER_FILES)
  );
  assertAt(e, "etc/server.yml", 4, 12);
  assert.equal(e.key, "crypto.backend");
  assert.match(e.message, /Invalid crypto\.backend/);
  assert.match(e.message + (e.hint ?? ""), /auto.*openssl.*webcrypto/);
  const k = configError(() =>
    parseServerConfig(`${MINIMAL}crypto:\n  libary: x\n`, "etc/server.yml", SERVER_FILES)
  );
  assert.equal(k.hint, 'did you mean "library"?');
});

Deno.test("parseServerConfig() reads sizes, durations and addresses", () => {
  const text = `listen: "[::]:443"
transport: tcp
identity: keys/server.key
users: /abs/users.yml
fallback: {mode: upstream, upstream: "127.0.0.1:8080"}
handshake: {clock_window: 2m, replay_cache: 5000, kex: [x25519], aead: [chacha20-poly1305]}
limits:
  stream_window: 256KiB
  session_window: 10MB
  idle_timeout: 1h30m
  udp_idle_timeout: 2m
  connect_timeout: 500ms
socks5_direct: {enabled: true, listen: "127.0.0.1:0"}
log: {level: debug}
`;
  const cfg = parseServerConfig(text, "etc/server.yml", SERVER_FILES);
  assert.deepEqual(cfg.listen, { host: "::", port: 443 });
  assert.equal(cfg.tls, undefined);
  assert.equal(cfg.usersFile, "/abs/users.yml");
  assert.deepEqual(cfg.fallback, { mode: "upstream", upstream: { host: "127.0.0.1", port: 8080 } });
  assert.equal(cfg.handshake.clockWindowS, 120);
  assert.deepEqual(cfg.handshake.kex, ["x25519"]);
  assert.equal(cfg.limits.streamWindow, 256 * 1024);
  assert.equal(cfg.limits.sessionWindow, 10_000_000);
  assert.equal(cfg.limits.idleTimeoutS, 5400);
  assert.equal(cfg.limits.udpIdleTimeoutS, 120);
  assert.equal(cfg.limits.connectTimeoutS, 0.5);
  assert.deepEqual(cfg.socks5Direct, { enabled: true, listen: { host: "127.0.0.1", port: 0 } });
});

Deno.test("parseServerConfig() returns a frozen object", () => {
  const cfg = parseServerConfig(MINIMAL, "etc/server.yml", SERVER_FILES);
  assert.ok(
    Object.isFrozen(cfg) && Object.isFrozen(cfg.limits) && Object.isFrozen(cfg.handshake.kex),
  );
  assertThrowsWith(
    () => {
      (cfg.limits as { maxTunnels: number }).maxTunnels = 1;
    },
    TypeError,
    "read only property 'maxTunnels'",
  );
});

Deno.test("parseServerConfig() refuses an unknown key with a did-you-mean hint", () => {
  const e = configError(() =>
    parseServerConfig(`${MINIMAL}limits:\n  max_tunnel: 5\n`, "etc/server.yml", SERVER_FILES)
  );
  assertAt(e, "etc/server.yml", 4, 3);
  assert.equal(e.key, "limits.max_tunnel");
  assert.equal(e.hint, 'did you mean "max_tunnels"?');
  assert.match(e.message, /Unknown key "limits.max_tunnel" \(did you mean "max_tunnels"\?\)$/);
});

Deno.test("parseServerConfig() matches camelCase mistakes to snake_case keys", () => {
  const e = configError(() =>
    parseServerConfig(`${MINIMAL}socksDirect: {}\n`, "etc/server.yml", SERVER_FILES)
  );
  assertAt(e, "etc/server.yml", 3, 1);
  assert.equal(e.hint, 'did you mean "socks5_direct"?');
});

Deno.test("parseServerConfig() lists the choices when nothing is close", () => {
  const e = configError(() => parseServerConfig(`${MINIMAL}zzz: 1\n`, "s.yml", SERVER_FILES));
  assert.match(e.hint ?? "", /^expected one of: listen, transport, tls, identity/);
});

Deno.test("parseServerConfig() refuses wrong types at the value's position", () => {
  const cases: [string, number, number, RegExp][] = [
    ["limits:\n  max_tunnels: lots\n", 4, 16, /Invalid limits.max_tunnels: expected an integer/],
    ["limits:\n  max_tunnels: 0\n", 4, 16, /0 is out of range 1..1000000/],
    ["limits: [1]\n", 3, 9, /Invalid limits: expected a mapping/],
    ["socks5_direct: {enabled: yes}\n", 3, 26, /expected true or false, got "yes"/],
    ["limits: {stream_window: 1 MiBs}\n", 3, 25, /expected a size/],
    ["limits: {stream_window: 1kb}\n", 3, 25, /expected a size/],
    ["limits: {idle_timeout: 5 minutes}\n", 3, 24, /expected a duration/],
    // The mux's bounds (MUX_LIMITS): 32KiB passed once and then failed every tunnel.
    ["limits: {stream_window: 32KiB}\n", 3, 25, /32768 bytes is out of range 65536\.\.1073741824/],
    ["limits: {session_window: 512KiB}\n", 3, 26, /524288 bytes is out of range 1048576\./],
    ["limits: {session_window: 2GiB}\n", 3, 26, /out of range 1048576\.\.1073741824/],
    ["limits: {max_streams_per_tunnel: 1000001}\n", 3, 34, /out of range 1\.\.1000000/],
    ["session: {resend_buffer: 128KiB}\n", 3, 26, /out of range 262144\.\./],
    [
      "session: {keepalive: 30s, dead_after: 45s}\n",
      3,
      39,
      /Invalid session.dead_after: 45s is less than twice session.keepalive \(30s\)/,
    ],
    [
      "limits: {udp_idle_timeout: 0s}\n",
      3,
      28,
      /udp_idle_timeout: 0s is out of range 1s\.\.86400s/,
    ],
    [
      "limits: {stream_window: 1GiB, session_window: 1MiB}\n",
      3,
      47,
      /smaller than limits.stream_window/,
    ],
    [
      "handshake: {kex: [x25519, x448]}\n",
      3,
      27,
      /Invalid handshake.kex\[1\]: expected one of "x25519-mlkem768", "x25519"/,
    ],
    [
      "handshake: {aead: [aes-256-gcm, aes-256-gcm]}\n",
      3,
      33,
      /handshake.aead\[1\]: "aes-256-gcm" is listed twice/,
    ],
    ["handshake: {aead: []}\n", 3, 19, /expected 1..10000 items, got 0/],
    ["log: {level: verbose}\n", 3, 14, /Invalid log.level/],
    ["transport: quic\n", 3, 12, /Invalid transport: expected one of "tls", "tcp"/],
  ];
  for (const [extra, line, column, re] of cases) {
    const e = configError(() => parseServerConfig(MINIMAL + extra, "s.yml", SERVER_FILES));
    assertAt(e, "s.yml", line, column);
    assert.match(e.message, re);
  }
});

Deno.test("parseServerConfig() refuses bad host:port strings", () => {
  for (
    const bad of [
      "8443",
      "0.0.0.0",
      "::1:8443",
      "host:99999",
      "bad host:1",
      "1.2.3.4.5:80",
      "[zz::1]:80",
    ]
  ) {
    const e = configError(() =>
      parseServerConfig(`listen: "${bad}"\n${MINIMAL}`, "s.yml", SERVER_FILES)
    );
    assertAt(e, "s.yml", 1, 9);
    assert.equal(e.key, "listen");
    assert.match(e.message, /expected HOST:PORT/);
  }
  const e = configError(() =>
    parseServerConfig(
      `${MINIMAL}fallback: {mode: upstream, upstream: "x:0"}\n`,
      "s.yml",
      SERVER_FILES,
    )
  );
  assertAt(e, "s.yml", 3, 38);
});

Deno.test("parseServerConfig() requires keys that have no default", () => {
  let e = configError(() => parseServerConfig("tls: {cert: a}\n", "s.yml", SERVER_FILES));
  assertAt(e, "s.yml", 1, 1);
  assert.match(e.message, /Missing required key "tls.key"/);
  e = configError(() => parseServerConfig("listen: 0.0.0.0:1\n", "s.yml", SERVER_FILES));
  assert.match(e.message, /Missing required key "identity"/);
  e = configError(() =>
    parseServerConfig("identity: keys/server.key\n", "etc/s.yml", SERVER_FILES)
  );
  assert.match(e.message, /Missing required key "tls": transport is "tls"/);
  e = configError(() =>
    parseServerConfig(`${MINIMAL}fallback:\n  mode: upstream\n`, "etc/s.yml", SERVER_FILES)
  );
  assertAt(e, "etc/s.yml", 4, 9);
  assert.match(e.message, /fallback.upstream/);
});

Deno.test("parseServerConfig() reports a missing referenced file at the key naming it", () => {
  const e = configError(() =>
    parseServerConfig("transport: tcp\nidentity: keys/nope.key\n", "etc/server.yml", SERVER_FILES)
  );
  assertAt(e, "etc/server.yml", 2, 11);
  assert.match(e.message, /Cannot read identity file "etc\/keys\/nope.key": file not found/);
  const e2 = configError(() =>
    parseServerConfig(
      "identity: keys/server.key\ntls:\n  cert: tls/server.crt\n  key: tls/missing.key\n",
      "etc/server.yml",
      SERVER_FILES,
    )
  );
  assertAt(e2, "etc/server.yml", 4, 8);
});

Deno.test("parseServerConfig() refuses an identity file of the wrong length without echoing it", () => {
  const secret = k(32, 9);
  const read = files({ "etc/keys/server.key": secret });
  const e = configError(() =>
    parseServerConfig("transport: tcp\nidentity: keys/server.key\n", "etc/server.yml", read)
  );
  assertAt(e, "etc/keys/server.key", 1, 1);
  assert.match(e.message, /expected 64 bytes of unpadded base64url, got 32 bytes/);
  assert.match(e.hint ?? "", /named by etc\/server.yml:2:11/);
  assert.ok(!e.message.includes(secret));
});

Deno.test("parseServerConfig() refuses files that are not PEM", () => {
  const read = files({ "keys/server.key": k(64), "c.pem": "hello", "k.pem": KEY });
  const e = configError(() =>
    parseServerConfig(
      "identity: keys/server.key\ntls: {cert: c.pem, key: k.pem}\n",
      "server.yml",
      read,
    )
  );
  assertAt(e, "server.yml", 2, 13);
  assert.match(e.message, /is not a PEM certificate/);
});

Deno.test("socks5_direct.listen beyond loopback is refused at its line, with what to do", () => {
  const parse = (extra: string) =>
    parseServerConfig(MINIMAL + extra, "etc/server.yml", SERVER_FILES);
  for (const [host, column] of [["0.0.0.0", 11], ["192.0.2.7", 11], ["[::]", 11]] as const) {
    const e = configError(() =>
      parse(`socks5_direct:\n  enabled: true\n  listen: "${host}:1081"\n`)
    );
    assertAt(e, "etc/server.yml", 5, column);
    assert.match(e.message, /is not a loopback address, and the direct SOCKS5 port has no auth/);
    assert.match(e.hint ?? "", /listen on "127\.0\.0\.1:1081"/);
  }
  // Also when not enabled: the key has no other use, and turning it on later must not open it.
  const off = configError(() => parse('socks5_direct: {listen: "0.0.0.0:1081"}\n'));
  assertAt(off, "etc/server.yml", 3, 25);
  for (const ok of ["127.0.0.2:1081", "[::1]:0", "localhost:1081"]) {
    const cfg = parse(`socks5_direct: {enabled: true, listen: "${ok}"}\n`);
    assert.equal(cfg.socks5Direct.enabled, true);
  }
});

Deno.test("parseServerConfig() reads store: file by default, a Redis URL with its password and CA files", () => {
  assert.deepEqual(parseServerConfig(MINIMAL, "etc/server.yml", SERVER_FILES).store, {
    kind: "file",
  });
  const read = files({
    "etc/keys/server.key": k(64, 7),
    "etc/tls/server.crt": CERT,
    "etc/tls/server.key": KEY,
    "etc/redis.pass": "s3cret-pass\n",
    "etc/redis-ca.crt": CERT,
  });
  const cfg = parseServerConfig(
    `${MINIMAL}store:\n  url: "rediss://10.0.0.5:6380/2"\n  password_file: redis.pass\n` +
      `  tls_ca: redis-ca.crt\n  prefix: "fleet-a:"\n`,
    "etc/server.yml",
    read,
  );
  assert.deepEqual(cfg.store, {
    kind: "redis",
    url: "rediss://10.0.0.5:6380/2",
    password: "s3cret-pass",
    tlsCaPem: CERT,
    prefix: "fleet-a:",
    users: false,
  });
});

Deno.test("parseServerConfig() refuses a store URL with a password, and Redis options without Redis", () => {
  const withPassword = configError(() =>
    parseServerConfig(
      `${MINIMAL}store:\n  url: "redis://:hunter2@10.0.0.5:6379"\n`,
      "etc/server.yml",
      SERVER_FILES,
    )
  );
  assert.equal(withPassword.key, "store.url");
  assert.doesNotMatch(withPassword.message, /hunter2/);
  assert.match(withPassword.hint ?? "", /store\.password_file/);
  const noRedis = configError(() =>
    parseServerConfig(`${MINIMAL}store:\n  password_file: x\n`, "etc/server.yml", SERVER_FILES)
  );
  assert.equal(noRedis.key, "store.password_file");
  assert.match(noRedis.message, /store\.url is "file"/);
  const plainCa = configError(() =>
    parseServerConfig(
      `${MINIMAL}store:\n  url: "redis://10.0.0.5:6379"\n  tls_ca: ca.crt\n`,
      "etc/server.yml",
      SERVER_FILES,
    )
  );
  assert.equal(plainCa.key, "store.tls_ca");
  assert.match(plainCa.hint ?? "", /rediss:\/\//);
});

Deno.test("parseServerConfig() reads store.ticket_rotation, and refuses it beside session.ticket_keys", () => {
  const read = files({
    "etc/keys/server.key": k(64, 7),
    "etc/tls/server.crt": CERT,
    "etc/tls/server.key": KEY,
    "etc/ticket.keys": "1:" + k(32) + "\n",
  });
  const store = 'store:\n  url: "redis://10.0.0.5:6379"\n  ticket_rotation: 12h\n';
  const cfg = parseServerConfig(MINIMAL + store, "etc/server.yml", read);
  assert.equal(cfg.store.kind === "redis" ? cfg.store.ticketRotationS : 0, 43_200);
  const both = configError(() =>
    parseServerConfig(
      `${MINIMAL}${store}session:\n  ticket_keys: ticket.keys\n`,
      "etc/server.yml",
      read,
    )
  );
  assert.equal(both.key, "store.ticket_rotation");
  assert.match(both.hint ?? "", /keep the ticket keys in one place/);
});

Deno.test("parseServerConfig() reads store.users, and refuses it without Redis", () => {
  const cfg = parseServerConfig(
    `${MINIMAL}store:\n  url: "redis://10.0.0.5:6379"\n  users: true\n`,
    "etc/server.yml",
    SERVER_FILES,
  );
  assert.equal(cfg.store.kind === "redis" && cfg.store.users, true);
  const noRedis = configError(() =>
    parseServerConfig(`${MINIMAL}store:\n  users: true\n`, "etc/server.yml", SERVER_FILES)
  );
  assert.equal(noRedis.key, "store.users");
  assert.match(noRedis.message, /store\.url is "file"/);
});
