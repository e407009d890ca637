/**
 * `admin:` and `accounting:` in server.yml: defaults, the loopback rule
 * without a token, the token's form (never echoed), and `isLoopbackHost`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isLoopbackHost, parseServerConfig } from "../../lib/config/mod.ts";
import { assertAt, configError, SERVER_FILES } from "./_helpers.ts";

const MINIMAL = "identity: keys/server.key\ntls: {cert: tls/server.crt, key: tls/server.key}\n";
const parse = (extra: string) => parseServerConfig(MINIMAL + extra, "etc/server.yml", SERVER_FILES);

Deno.test("admin is off and counters go to state.json every 5 s by default", () => {
  const cfg = parse("");
  assert.deepEqual(cfg.admin, {});
  assert.deepEqual(cfg.accounting, { stateFile: "etc/state.json", flushIntervalS: 5 });
});

Deno.test("admin.listen on loopback needs no token; the form the CLI suggests parses", () => {
  assert.deepEqual(parse("admin: { listen: 127.0.0.1:9090 }\n").admin, {
    listen: { host: "127.0.0.1", port: 9090 },
  });
  assert.deepEqual(parse('admin: {listen: "[::1]:0"}\n').admin.listen, { host: "::1", port: 0 });
  assert.deepEqual(parse('admin: {listen: "localhost:9"}\n').admin.listen, {
    host: "localhost",
    port: 9,
  });
});

Deno.test("admin.listen beyond loopback without admin.token is refused at its line", () => {
  const e = configError(() => parse('log: {level: info}\nadmin:\n  listen: "0.0.0.0:9090"\n'));
  assertAt(e, "etc/server.yml", 5, 11);
  assert.match(e.message, /"0\.0\.0\.0" is not a loopback address and admin\.token is not set/);
  assert.match(e.hint ?? "", /set admin\.token/);
  const token = "s3cret-token-0123456789";
  const cfg = parse(`admin:\n  listen: "0.0.0.0:9090"\n  token: ${token}\n`);
  assert.deepEqual(cfg.admin, { listen: { host: "0.0.0.0", port: 9090 }, token });
});

Deno.test("admin.token must be 16..256 printable characters and is never echoed", () => {
  for (const bad of ["short-token", '"has a space in the middle of it"']) {
    const e = configError(() => parse(`admin: {listen: "127.0.0.1:1", token: ${bad}}\n`));
    assert.match(e.message, /Invalid admin\.token: expected a token of 16 to 256/);
    assert.ok(!e.message.includes(bad.replace(/"/g, "")), e.message);
  }
});

Deno.test("accounting.state_file resolves against the file's directory; flush_interval is a duration", () => {
  const cfg = parse("accounting: {state_file: var/counters.json, flush_interval: 250ms}\n");
  assert.deepEqual(cfg.accounting, { stateFile: "etc/var/counters.json", flushIntervalS: 0.25 });
  const e = configError(() => parse("accounting: {flush_interval: 2h}\n"));
  assert.match(e.message, /Invalid accounting\.flush_interval: 7200s is out of range/);
  const u = configError(() => parse("accounting: {statefile: x.json}\n"));
  assert.match(u.hint ?? "", /did you mean "state_file"/);
});

Deno.test("isLoopbackHost() knows localhost, 127/8, ::1 and mapped 127/8, and nothing else", () => {
  for (const h of ["localhost", "LOCALHOST.", "127.0.0.1", "127.255.0.9", "::1", "[::1]"]) {
    assert.ok(isLoopbackHost(h), h);
  }
  assert.ok(isLoopbackHost("::ffff:127.0.0.1"));
  for (
    const h of [
      "0.0.0.0",
      "::",
      "10.0.0.1",
      "128.0.0.1",
      "localhost.example",
      "::2",
      "::ffff:10.0.0.1",
      "1127.0.0.1",
    ]
  ) {
    assert.ok(!isLoopbackHost(h), h);
  }
});
