import assert from "node:assert/strict";
import {
  formatClientProfile,
  formatServerUrl,
  parseClientConfig,
  parseServerConfig,
  parseServerUrl,
} from "../../lib/config/mod.ts";
import { assertAt, configError, k } from "./_helpers.ts";

Deno.test("parseServerUrl() reads the four schemes with their default ports and paths", () => {
  const table: [string, unknown][] = [
    ["tls://nitro.example:8443", {
      transport: "tls",
      server: { host: "nitro.example", port: 8443 },
    }],
    ["tls://nitro.example", { transport: "tls", server: { host: "nitro.example", port: 443 } }],
    ["tcp://[::1]:9000/", { transport: "tcp", server: { host: "::1", port: 9000 } }],
    [
      "wss://cdn.example/assets/ws",
      { transport: "wss", server: { host: "cdn.example", port: 443 }, path: "/assets/ws" },
    ],
    ["ws://127.0.0.1:8080", {
      transport: "ws",
      server: { host: "127.0.0.1", port: 8080 },
      path: "/",
    }],
    ["wss://[2001:db8::1]/x", {
      transport: "wss",
      server: { host: "2001:db8::1", port: 443 },
      path: "/x",
    }],
  ];
  for (const [text, want] of table) {
    assert.deepEqual(parseServerUrl(text), want, text);
    const u = parseServerUrl(text);
    assert.ok(typeof u !== "string");
    assert.deepEqual(parseServerUrl(formatServerUrl(u)), u, `${text} round trip`);
  }
});

Deno.test("parseServerUrl() says what is wrong with a bad URL", () => {
  const table: [string, RegExp][] = [
    ["http://a.example/", /unknown scheme "http:\/\/"/],
    ["tcp://a.example", /tcp:\/\/ needs a port/],
    ["tls://a.example:443/path", /takes no path/],
    ["wss://a.example/ws?x=1", /not a URL/],
    ["wss://user@a.example/ws", /no user name/],
    ["wss://a.example:0/ws", /port must be 1..65535/],
    ["wss://bad_host!/ws", /not a DNS name/],
    ["a.example:443", /not a URL/],
  ];
  for (const [text, want] of table) {
    const r = parseServerUrl(text);
    assert.ok(typeof r === "string" && want.test(r), `${text}: ${JSON.stringify(r)}`);
  }
});

const REST = `server_key: ${k(64)}
user: alice
key: ${k(32, 2)}
token: ${k(32, 3)}
`;

Deno.test("a client profile names its way in as a URL; the old server + transport form still loads", () => {
  const ws = parseClientConfig(`server: "wss://cdn.example/assets/ws"\n${REST}`, "a.yml");
  assert.equal(ws.transport, "wss");
  assert.equal(ws.path, "/assets/ws");
  assert.deepEqual(ws.server, { host: "cdn.example", port: 443 });
  assert.equal(ws.serverName, "cdn.example");
  const old = parseClientConfig(`server: "nitro.example:8443"\ntransport: tcp\n${REST}`, "a.yml");
  assert.equal(old.transport, "tcp");
  assert.equal(old.path, undefined);
  const same = parseClientConfig(
    `server: "tcp://nitro.example:8443"\ntransport: tcp\n${REST}`,
    "a.yml",
  );
  assert.equal(same.transport, "tcp");
});

Deno.test("endpoints take URLs too, and inherit the main way in otherwise", () => {
  const cfg = parseClientConfig(
    `server: "wss://cdn.example/ws"\n${REST}endpoints:\n` +
      `  - server: "tls://direct.example:8443"\n` +
      `  - server: "other-cdn.example:443"\n` +
      `  - server: "ws://127.0.0.1:8080/alt"\n` +
      `  - "tcp://[::1]:9000"\n`,
    "a.yml",
  );
  assert.deepEqual(
    cfg.endpoints.map((e) => [e.transport, e.server.host, e.server.port, e.path]),
    [
      ["tls", "direct.example", 8443, undefined],
      ["wss", "other-cdn.example", 443, "/ws"],
      ["ws", "127.0.0.1", 8080, "/alt"],
      ["tcp", "::1", 9000, undefined],
    ],
  );
});

Deno.test("a bare endpoint must be a URL", () => {
  const e = configError(() =>
    parseClientConfig(
      `server: "tls://a.example"\n${REST}endpoints:\n  - "b.example:443"\n`,
      "a.yml",
    )
  );
  assertAt(e, "a.yml", 7, 5);
  assert.match(e.message, /Invalid endpoints\[0\]: a bare endpoint is a URL/);
});

Deno.test("a profile refuses a bad URL, a transport contradicting it, and ws without a path, at file:line:column", () => {
  const bad = configError(() =>
    parseClientConfig(`${REST}server: "http://cdn.example/ws"\n`, "a.yml")
  );
  assertAt(bad, "a.yml", 5, 9);
  assert.match(bad.message, /Invalid server: unknown scheme "http:\/\/"/);
  const contra = configError(() =>
    parseClientConfig(`server: "wss://cdn.example/ws"\ntransport: tls\n${REST}`, "a.yml")
  );
  assertAt(contra, "a.yml", 2, 12);
  assert.match(contra.message, /"tls" contradicts the server URL's scheme "wss:\/\/"/);
  const noPath = configError(() =>
    parseClientConfig(`server: "cdn.example:443"\ntransport: wss\n${REST}`, "a.yml")
  );
  assert.match(noPath.message, /transport "wss" needs a path: write the server as a URL/);
});

Deno.test("formatClientProfile() writes the URL, and it reads back", () => {
  const text = formatClientProfile({
    server: { host: "cdn.example", port: 443 },
    serverName: "cdn.example",
    transport: "wss",
    path: "/assets/ws",
    serverKey: new Uint8Array(64).fill(1),
    user: "alice",
    key: new Uint8Array(32).fill(2),
    token: new Uint8Array(32).fill(3),
  });
  assert.match(text, /^server: "wss:\/\/cdn\.example:443\/assets\/ws"$/m);
  assert.doesNotMatch(text, /^transport:/m);
  const cfg = parseClientConfig(text, "a.yml");
  assert.equal(cfg.transport, "wss");
  assert.equal(cfg.path, "/assets/ws");
});

const FILES = (p: string) => {
  if (p.endsWith("server.key")) return k(64);
  throw new Deno.errors.NotFound(p);
};

Deno.test("server.yml: transport ws needs ws.path, ws.path needs a ws transport, proxy_protocol defaults off", () => {
  const cfg = parseServerConfig(
    `transport: ws\nws:\n  path: /assets/ws\nproxy_protocol: true\nidentity: keys/server.key\n`,
    "etc/server.yml",
    FILES,
  );
  assert.equal(cfg.transport, "ws");
  assert.deepEqual(cfg.ws, { path: "/assets/ws" });
  assert.equal(cfg.proxyProtocol, true);
  const plain = parseServerConfig("transport: tcp\nidentity: keys/server.key\n", "s.yml", FILES);
  assert.equal(plain.proxyProtocol, false);
  assert.equal(plain.ws, undefined);
  const missing = configError(() =>
    parseServerConfig("transport: ws\nidentity: keys/server.key\n", "s.yml", FILES)
  );
  assertAt(missing, "s.yml", 1, 12);
  assert.match(missing.message, /Missing required key "ws.path": transport is "ws"/);
  const stray = configError(() =>
    parseServerConfig(
      "transport: tcp\nws:\n  path: /x\nidentity: keys/server.key\n",
      "s.yml",
      FILES,
    )
  );
  assert.match(stray.message, /Invalid ws: transport is "tcp", not "ws" or "wss"/);
  const badPath = configError(() =>
    parseServerConfig(
      "transport: ws\nws:\n  path: ws?x\nidentity: keys/server.key\n",
      "s.yml",
      FILES,
    )
  );
  assertAt(badPath, "s.yml", 3, 9);
  const wssNoTls = configError(() =>
    parseServerConfig(
      "transport: wss\nws:\n  path: /x\nidentity: keys/server.key\n",
      "s.yml",
      FILES,
    )
  );
  assert.match(wssNoTls.message, /Missing required key "tls": transport is "wss"/);
});
