/** Password users (SCRAM-SHA-256) in users.yml and password profiles: docs/CONFIG.md. */
import assert from "node:assert/strict";
import {
  addUserToYaml,
  formatClientProfile,
  parseClientConfig,
  parseUsers,
} from "../../lib/config/mod.ts";
import { assertAt, configError, k } from "./_helpers.ts";

const PASSWORD_USER = `users:
  carol:
    public_key: ${k(32, 1)}
    password:
      salt: ${k(16, 5)}
      iterations: 4096
      stored_key: ${k(32, 6)}
      server_key: ${k(32, 7)}
`;

Deno.test("parseUsers() reads a password user's SCRAM verifier and no token", () => {
  const carol = parseUsers(PASSWORD_USER, "users.yml").users.get("carol")!;
  assert.equal(carol.token, undefined);
  assert.deepEqual(carol.password, {
    salt: new Uint8Array(16).fill(5),
    iterations: 4096,
    storedKey: new Uint8Array(32).fill(6),
    serverKey: new Uint8Array(32).fill(7),
  });
});

Deno.test("parseUsers() refuses a user with both factors, or neither, at the user's line", () => {
  const both = PASSWORD_USER.replace("    password:", `    token: ${k(32, 2)}\n    password:`);
  const e = configError(() => parseUsers(both, "users.yml"));
  assertAt(e, "users.yml", 3, 5);
  assert.match(e.message, /both token and password; a user has exactly one/);
  const neither = `users:\n  dave:\n    public_key: ${k(32, 1)}\n`;
  const e2 = configError(() => parseUsers(neither, "users.yml"));
  assert.match(e2.message, /Invalid users\.dave: no second factor/);
});

Deno.test("parseUsers() refuses fewer than 4096 iterations and a short stored key", () => {
  const few = configError(() =>
    parseUsers(PASSWORD_USER.replace("iterations: 4096", "iterations: 4095"), "users.yml")
  );
  assertAt(few, "users.yml", 6, 19);
  assert.match(few.message, /users\.carol\.password\.iterations/);
  const short = configError(() =>
    parseUsers(PASSWORD_USER.replace(`stored_key: ${k(32, 6)}`, `stored_key: ${k(31, 6)}`), "u.yml")
  );
  assert.match(short.message, /users\.carol\.password\.stored_key: expected 32 bytes/);
});

Deno.test("addUserToYaml() writes a password user that parses back the same", () => {
  const password = {
    salt: new Uint8Array(16).fill(9),
    iterations: 600_000,
    storedKey: new Uint8Array(32).fill(10),
    serverKey: new Uint8Array(32).fill(11),
  };
  const text = addUserToYaml("users: {}\n", "users.yml", {
    name: "erin",
    publicKey: new Uint8Array(32).fill(8),
    password,
  });
  assert.doesNotMatch(text, /token:/);
  const erin = parseUsers(text, "users.yml").users.get("erin")!;
  assert.deepEqual(erin.password, password);
});

const PROFILE = `server: "nitro.example:8443"
server_key: ${k(64)}
user: carol
key: ${k(32, 2)}
password:
  salt: ${k(16, 5)}
  iterations: 4096
`;

Deno.test("parseClientConfig() reads a password profile, with or without the password", () => {
  const cfg = parseClientConfig(PROFILE, "carol.yml");
  assert.equal(cfg.token, undefined);
  assert.deepEqual(cfg.password, { salt: new Uint8Array(16).fill(5), iterations: 4096 });
  const withValue = parseClientConfig(PROFILE + '  value: "correct horse"\n', "carol.yml");
  assert.equal(withValue.password?.value, "correct horse");
});

Deno.test("parseClientConfig() refuses a profile with both factors and never echoes the password", () => {
  const e = configError(() => parseClientConfig(PROFILE + `token: ${k(32, 3)}\n`, "carol.yml"));
  assert.match(e.message, /both token and password; give exactly one/);
  const bad = configError(() => parseClientConfig(PROFILE + "  value: [hunter2]\n", "carol.yml"));
  assert.doesNotMatch(bad.message, /hunter2/);
});

Deno.test("formatClientProfile() writes the salt and count, and reads back the same", () => {
  const cfg = parseClientConfig(PROFILE, "carol.yml");
  const text = formatClientProfile({ ...cfg });
  assert.doesNotMatch(text, /^token:/m);
  assert.deepEqual(parseClientConfig(text, "again.yml").password, cfg.password);
});
