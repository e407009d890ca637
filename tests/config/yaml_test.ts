import assert from "node:assert/strict";
import { parseClientConfig, parseServerConfig, parseUsers } from "../../lib/config/mod.ts";
import { assertAt, configError, k, SERVER_FILES } from "./_helpers.ts";

Deno.test("broken YAML is a ConfigError at the parser's position", () => {
  let e = configError(() => parseUsers("users:\n  alice: [1, 2\n  bob: 3\n", "u.yml"));
  assertAt(e, "u.yml", 3, 3);
  assert.match(e.message, /^u.yml:3:3: Cannot parse YAML: /);
  assert.ok(!e.message.includes("\n"));
  e = configError(() => parseServerConfig('listen: "0.0.0.0:1\n', "s.yml", SERVER_FILES));
  assert.equal(e.file, "s.yml");
  assert.match(e.message, /Cannot parse YAML/);
  e = configError(() => parseServerConfig("a:\n\tb: 1\n", "s.yml", SERVER_FILES));
  assertAt(e, "s.yml", 2, 1);
});

Deno.test("duplicate keys are refused", () => {
  const e = configError(() =>
    parseServerConfig("identity: a\ntransport: tcp\nidentity: b\n", "s.yml", SERVER_FILES)
  );
  assertAt(e, "s.yml", 3, 1);
  assert.match(e.message, /Map keys must be unique/);
});

Deno.test("several documents in one file are refused", () => {
  const e = configError(() => parseUsers("users: {}\n---\nusers: {}\n", "u.yml"));
  assert.equal(e.file, "u.yml");
  assert.equal(e.line, 2);
});

Deno.test("a top level that is not a mapping is refused", () => {
  const e = configError(() => parseUsers("- a\n- b\n", "u.yml"));
  assertAt(e, "u.yml", 1, 1);
  assert.match(e.message, /Invalid document: expected a mapping/);
});

Deno.test("aliases resolve and alias bombs are refused", () => {
  const cfg = parseClientConfig(
    `server: &s "h.example:1"\nserver_name: h.example\nserver_key: ${k(64)}\nuser: a\nkey: &k ${
      k(32)
    }\ntoken: *k\n`,
    "c.yml",
  );
  assert.deepEqual(cfg.token, cfg.key);
  let bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (let i = 1; i < 9; i++) {
    bomb += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]\n`;
  }
  const e = configError(() => parseUsers(bomb, "u.yml"));
  assert.match(e.message, /too large/);
});
