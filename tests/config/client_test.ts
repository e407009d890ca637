import assert from "node:assert/strict";
import {
  encodeShareLink,
  formatClientProfile,
  loadClientConfig,
  parseClientConfig,
} from "../../lib/config/mod.ts";
import { assertAt, CERT, configError, k } from "./_helpers.ts";

const MINIMAL = `server: "nitro.example:8443"
server_key: ${k(64)}
user: alice
key: ${k(32, 2)}
token: ${k(32, 3)}
`;

Deno.test("parseClientConfig() applies every default to a minimal profile", () => {
  const cfg = parseClientConfig(MINIMAL, "alice.yml");
  assert.equal(cfg.file, "alice.yml");
  assert.deepEqual(cfg.server, { host: "nitro.example", port: 8443 });
  assert.equal(cfg.serverName, "nitro.example");
  assert.equal(cfg.transport, "tls");
  assert.deepEqual(cfg.serverKey, new Uint8Array(64).fill(1));
  assert.equal(cfg.user, "alice");
  assert.deepEqual(cfg.key, new Uint8Array(32).fill(2));
  assert.deepEqual(cfg.token, new Uint8Array(32).fill(3));
  assert.deepEqual(cfg.socks5, { listen: { host: "127.0.0.1", port: 1080 }, fastOpen: true });
  assert.equal(cfg.httpConnect, undefined);
  assert.equal(cfg.caPem, undefined);
  assert.deepEqual(cfg.kex, ["x25519-mlkem768", "x25519"]);
  assert.deepEqual(cfg.aead, ["aes-256-gcm", "chacha20-poly1305", "aes-128-gcm"]);
  assert.deepEqual(cfg.limits, {
    streamWindow: 8 << 20,
    sessionWindow: 64 << 20,
    maxStreams: 1024,
    connectTimeoutS: 10,
  });
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.socks5));
});

Deno.test("parseClientConfig() reads crypto.backend (default auto) and crypto.library", () => {
  assert.deepEqual(parseClientConfig(MINIMAL, "alice.yml").crypto, { backend: "auto" });
  const cfg = parseClientConfig(
    `${MINIMAL}crypto:\n  backend: openssl\n  library: ../ssl/libcrypto.3.dylib\n`,
    "home/alice.yml",
  );
  assert.deepEqual(cfg.crypto, { backend: "openssl", library: "ssl/libcrypto.3.dylib" });
  const e = configError(() => parseClientConfig(`${MINIMAL}crypto: {backend: fast}\n`, "a.yml"));
  assert.equal(e.key, "crypto.backend");
});

Deno.test("parseClientConfig() reads optional sections", () => {
  const cfg = parseClientConfig(
    `${MINIMAL}server_name: cdn.example\nca: |\n  ${CERT.trim().replace(/\n/g, "\n  ")}\n` +
      `socks5:\n  listen: "[::1]:1080"\n  fast_open: false\n  users: {app: 1234, b: "pw"}\nhttp_connect: {listen: "127.0.0.1:8118"}\n` +
      `aead: [chacha20-poly1305]\nlimits: {max_streams: 8, connect_timeout: 3s}\n`,
    "c.yml",
  );
  assert.equal(cfg.serverName, "cdn.example");
  assert.equal(cfg.caPem, CERT);
  assert.deepEqual(cfg.socks5.listen, { host: "::1", port: 1080 });
  assert.equal(cfg.socks5.fastOpen, false);
  assert.deepEqual([...cfg.socks5.users!], [["app", "1234"], ["b", "pw"]]);
  assert.deepEqual(cfg.httpConnect, { listen: { host: "127.0.0.1", port: 8118 } });
  assert.deepEqual(cfg.aead, ["chacha20-poly1305"]);
  assert.equal(cfg.limits.maxStreams, 8);
  assert.equal(cfg.limits.connectTimeoutS, 3);
});

Deno.test("parseClientConfig() refuses a fast_open that is not a boolean, at its position", () => {
  const e = configError(() =>
    parseClientConfig(`${MINIMAL}socks5:\n  fast_open: sometimes\n`, "c.yml")
  );
  assertAt(e, "c.yml", 7, 14);
  assert.match(e.message, /fast_open/);
});

Deno.test("parseClientConfig() refuses a server key of the wrong length", () => {
  const e = configError(() => parseClientConfig(MINIMAL.replace(k(64), k(32)), "c.yml"));
  assertAt(e, "c.yml", 2, 13);
  assert.match(
    e.message,
    /Invalid server_key: expected 64 bytes of unpadded base64url, got 32 bytes/,
  );
});

Deno.test("parseClientConfig() refuses a bad server address, CA and socks5 password", () => {
  let e = configError(() =>
    parseClientConfig(MINIMAL.replace("nitro.example:8443", "nitro.example"), "c.yml")
  );
  assertAt(e, "c.yml", 1, 9);
  e = configError(() => parseClientConfig(`${MINIMAL}ca: hello\n`, "c.yml"));
  assertAt(e, "c.yml", 6, 5);
  assert.match(e.message, /not a PEM certificate/);
  e = configError(() => parseClientConfig(`${MINIMAL}socks5: {users: {app: [x]}}\n`, "c.yml"));
  assertAt(e, "c.yml", 6, 23);
  assert.equal(e.key, "socks5.users.app");
  e = configError(() => parseClientConfig(`${MINIMAL}socks5: {listn: "127.0.0.1:1"}\n`, "c.yml"));
  assertAt(e, "c.yml", 6, 10);
  assert.equal(e.hint, 'did you mean "listen"?');
  e = configError(() => parseClientConfig(MINIMAL.replace("user: alice", "user: al ice"), "c.yml"));
  assertAt(e, "c.yml", 3, 7);
});

Deno.test("formatClientProfile() output parses back to the same values", () => {
  const profile = {
    server: { host: "::1", port: 8443 },
    serverName: "localhost",
    transport: "tls" as const,
    serverKey: new Uint8Array(64).fill(5),
    caPem: CERT,
    user: "true",
    key: new Uint8Array(32).fill(6),
    token: new Uint8Array(32).fill(7),
    totpSecret: new Uint8Array(20).fill(8),
  };
  const text = formatClientProfile(profile);
  const cfg = parseClientConfig(text, "p.yml");
  assert.deepEqual(cfg.server, profile.server);
  assert.equal(cfg.serverName, "localhost");
  assert.deepEqual(cfg.serverKey, profile.serverKey);
  assert.equal(cfg.caPem, CERT);
  assert.equal(cfg.user, "true");
  assert.deepEqual(cfg.key, profile.key);
  assert.deepEqual(cfg.token, profile.token);
  assert.deepEqual(cfg.totpSecret, profile.totpSecret);
});

Deno.test("loadClientConfig() accepts a share link, a file holding one, and reports a missing file", async () => {
  const fields = {
    server: { host: "nitro.example", port: 8443 },
    serverName: "nitro.example",
    transport: "tls" as const,
    serverKey: new Uint8Array(64).fill(1),
    user: "alice",
    key: new Uint8Array(32).fill(2),
    token: new Uint8Array(32).fill(3),
  };
  const link = encodeShareLink(fields);
  assert.deepEqual(await loadClientConfig(link), parseClientConfig(MINIMAL, "<share link>"));
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, `${link}\n`);
    assert.deepEqual(await loadClientConfig(file), parseClientConfig(MINIMAL, file));
  } finally {
    await Deno.remove(file);
  }
  // A link that names the CA by hash cannot load without fetching it: the error says how.
  await assert.rejects(
    loadClientConfig(encodeShareLink({ ...fields, caPem: CERT }, { pinCa: true })),
    /names the server's CA by its SHA-256.*nitrosocks profile import/,
  );
  await assert.rejects(
    loadClientConfig("/nonexistent/alice.yml"),
    /\/nonexistent\/alice.yml: Cannot read config file: file not found/,
  );
});

Deno.test("parseClientConfig() reads forwards: (defaults per protocol) and dns:", () => {
  const none = parseClientConfig(MINIMAL, "a.yml");
  assert.deepEqual(none.forwards, []);
  assert.equal(none.dns, undefined);
  const cfg = parseClientConfig(
    `${MINIMAL}forwards:\n` +
      `  - {listen: "127.0.0.1:2222", to: "git.example:22"}\n` +
      `  - {listen: "[::1]:5060", to: "10.0.0.7:5060", protocol: udp}\n` +
      `  - {listen: "127.0.0.1:0", to: "h.example:1", protocol: tcp, idle_timeout: 90s}\n` +
      `  - {listen: "127.0.0.1:0", to: "h.example:2", protocol: udp, idle_timeout: 0}\n` +
      `  - {listen: "127.0.0.1:0", to: "h.example:3", protocol: udp, max_sources: 1000}\n` +
      `dns: {listen: "127.0.0.1:5353", upstream: "9.9.9.9:53"}\n`,
    "a.yml",
  );
  const fwd = (
    listen: [string, number],
    to: [string, number],
    protocol: string,
    idle: number,
    maxSources: number,
  ) => ({
    listen: { host: listen[0], port: listen[1] },
    to: { host: to[0], port: to[1] },
    protocol,
    idleTimeoutS: idle,
    maxSources,
  });
  assert.deepEqual(cfg.forwards, [
    fwd(["127.0.0.1", 2222], ["git.example", 22], "tcp", 0, 0),
    fwd(["::1", 5060], ["10.0.0.7", 5060], "udp", 60, 256),
    fwd(["127.0.0.1", 0], ["h.example", 1], "tcp", 90, 0),
    fwd(["127.0.0.1", 0], ["h.example", 2], "udp", 0, 256),
    fwd(["127.0.0.1", 0], ["h.example", 3], "udp", 60, 1000),
  ]);

  assert.deepEqual(cfg.dns, {
    listen: { host: "127.0.0.1", port: 5353 },
    upstream: { host: "9.9.9.9", port: 53 },
    idleTimeoutS: 10,
  });
  // max_sources defaults to a quarter of a lower limits.max_streams.
  const low = parseClientConfig(
    `${MINIMAL}limits: {max_streams: 40}\nforwards:\n  - {listen: "127.0.0.1:0", to: "h.example:2", protocol: udp}\n` +
      `dns: {listen: "127.0.0.1:0", upstream: "9.9.9.9:53", idle_timeout: 2m}\n`,
    "a.yml",
  );
  assert.equal(low.forwards[0]!.maxSources, 10);
  assert.equal(low.dns!.idleTimeoutS, 120);
});

Deno.test("parseClientConfig() refuses bad forwards and dns, naming the key", () => {
  const bad = (yaml: string) => configError(() => parseClientConfig(`${MINIMAL}${yaml}`, "a.yml"));
  assert.equal(bad(`forwards:\n  - {to: "a.example:1"}\n`).key, "forwards[0].listen");
  assert.equal(
    bad(`forwards:\n  - {listen: "127.0.0.1:1", to: "a.example:0"}\n`).key,
    "forwards[0].to",
  );
  assert.equal(
    bad(`forwards:\n  - {listen: "127.0.0.1:1", to: "a.example:1", protocol: sctp}\n`).key,
    "forwards[0].protocol",
  );
  assert.equal(
    bad(`forwards:\n  - {listen: "127.0.0.1:1", to: "a.example:1", idle_timeout: soon}\n`).key,
    "forwards[0].idle_timeout",
  );
  assert.equal(
    bad(`forwards:\n  - {listen: "127.0.0.1:1", to: "a.example:1", port: 3}\n`).key,
    "forwards[0].port",
  );
  const tcpSources = bad(
    `forwards:\n  - {listen: "127.0.0.1:1", to: "a.example:1", max_sources: 9}\n`,
  );
  assert.equal(tcpSources.key, "forwards[0].max_sources");
  assert.match(tcpSources.message, /max_sources applies to UDP forwards only/);
  const all = bad(
    `limits: {max_streams: 100}\nforwards:\n  - {listen: "127.0.0.1:1", to: "a.example:1", protocol: udp, max_sources: 100}\n`,
  );
  assert.equal(all.key, "forwards[0].max_sources");
  assert.match(all.message, /max_sources 100 is not below limits\.max_streams 100/);
  assert.equal(
    bad(`dns: {listen: "127.0.0.1:53", upstream: "9.9.9.9:53", idle_timeout: 0}\n`).key,
    "dns.idle_timeout",
  );
  assert.equal(bad(`dns: {listen: "127.0.0.1:53"}\n`).key, "dns.upstream");
  assert.equal(bad(`dns: {upstream: "9.9.9.9:53"}\n`).key, "dns.listen");
});
