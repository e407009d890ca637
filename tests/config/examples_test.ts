import assert from "node:assert/strict";
import { loadClientConfig, loadUsers, parseServerConfig } from "../../lib/config/mod.ts";
import { CERT, files, k, KEY } from "./_helpers.ts";

const dir = new URL("../../examples/", import.meta.url).pathname;

Deno.test("examples/server.yml parses, with every key set to its default", async () => {
  const file = `${dir}server.yml`;
  const text = await Deno.readTextFile(file);
  const read = files({
    [`${dir}keys/server.key`]: k(64),
    [`${dir}tls/server.crt`]: CERT,
    [`${dir}tls/server.key`]: KEY,
  });
  const cfg = parseServerConfig(text, file, read);
  const minimal = parseServerConfig(
    "identity: keys/server.key\ntls: {cert: tls/server.crt, key: tls/server.key}\n",
    file,
    read,
  );
  assert.deepEqual(cfg.fallback.upstream, { host: "127.0.0.1", port: 8080 });
  assert.deepEqual({ ...cfg, fallback: { mode: cfg.fallback.mode } }, minimal);
});

Deno.test("examples/users.yml parses", async () => {
  const cfg = await loadUsers(`${dir}users.yml`);
  assert.deepEqual([...cfg.users.keys()], ["alice", "bob"]);
  assert.equal(cfg.users.get("alice")!.bandwidth, 10_000_000);
  assert.equal(cfg.users.get("alice")!.routes.length, 3);
});

Deno.test("examples/client.yml parses", async () => {
  const cfg = await loadClientConfig(`${dir}client.yml`);
  assert.equal(cfg.user, "alice");
  assert.equal(cfg.serverKey.length, 64);
  assert.ok(cfg.caPem?.includes("BEGIN CERTIFICATE"));
  assert.deepEqual(cfg.httpConnect, { listen: { host: "127.0.0.1", port: 8118 } });
  assert.equal(cfg.socks5.users?.get("browser"), "correct horse battery staple");
  assert.deepEqual(cfg.forwards.map((f) => [f.protocol, f.to.port, f.idleTimeoutS]), [
    ["tcp", 22, 0],
    ["udp", 5060, 300],
  ]);
  assert.deepEqual(cfg.dns?.upstream, { host: "9.9.9.9", port: 53 });
});
