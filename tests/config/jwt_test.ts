/** JWT users in users.yml, auth.jwt in server.yml, jwt and jwt_file in profiles: docs/CONFIG.md. */
import assert from "node:assert/strict";
import { parseClientConfig, parseServerConfig, parseUsers } from "../../lib/config/mod.ts";
import { configError, k, SERVER_FILES } from "./_helpers.ts";

Deno.test("parseUsers() reads a JWT user with and without their own keys", () => {
  const text = `users:
  dave:
    public_key: ${k(32, 1)}
    jwt: {secret: ${k(32, 5)}, public_key: ${k(32, 6)}}
  erin:
    public_key: ${k(32, 2)}
    jwt: {}
`;
  const users = parseUsers(text, "users.yml").users;
  assert.deepEqual(users.get("dave")?.jwt, {
    secret: new Uint8Array(32).fill(5),
    publicKey: new Uint8Array(32).fill(6),
  });
  assert.deepEqual(users.get("erin")?.jwt, {});
  assert.equal(users.get("erin")?.token, undefined);
});

Deno.test("parseUsers() refuses a short JWT secret without echoing it, and jwt with a token", () => {
  const short = configError(() =>
    parseUsers(
      `users:\n  d:\n    public_key: ${k(32, 1)}\n    jwt: {secret: ${k(16, 5)}}\n`,
      "u.yml",
    )
  );
  assert.match(short.message, /users\.d\.jwt\.secret: expected 32\.\.256 bytes/);
  assert.doesNotMatch(short.message, new RegExp(k(16, 5)));
  const both = configError(() =>
    parseUsers(
      `users:\n  d:\n    public_key: ${k(32, 1)}\n    token: ${k(32, 2)}\n    jwt: {}\n`,
      "u.yml",
    )
  );
  assert.match(both.message, /both token and jwt/);
});

Deno.test("parseServerConfig() reads auth.jwt", () => {
  const cfg = parseServerConfig(
    "identity: keys/server.key\ntls: {cert: tls/server.crt, key: tls/server.key}\n" +
      `auth:\n  jwt:\n    secrets: [${k(40, 3)}]\n    public_keys: [${k(32, 4)}]\n` +
      "    audience: nitro\n    leeway: 5s\n",
    "etc/server.yml",
    SERVER_FILES,
  );
  assert.deepEqual(cfg.auth.jwt, {
    secrets: [new Uint8Array(40).fill(3)],
    publicKeys: [new Uint8Array(32).fill(4)],
    audience: "nitro",
    leewayS: 5,
  });
});

const PROFILE = `server: "nitro.example:8443"
server_key: ${k(64)}
user: dave
key: ${k(32, 2)}
`;

Deno.test("parseClientConfig() reads jwt, and jwt_file next to the profile", () => {
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkYXZlIn0.c2ln";
  assert.deepEqual(parseClientConfig(`${PROFILE}jwt: ${jwt}\n`, "p/dave.yml").jwt, { token: jwt });
  assert.deepEqual(parseClientConfig(`${PROFILE}jwt_file: dave.jwt\n`, "p/dave.yml").jwt, {
    file: "p/dave.jwt",
  });
  const both = configError(() =>
    parseClientConfig(`${PROFILE}jwt: ${jwt}\njwt_file: x\n`, "dave.yml")
  );
  assert.match(both.message, /both jwt and jwt_file/);
  const bad = configError(() => parseClientConfig(`${PROFILE}jwt: not-a-jwt\n`, "dave.yml"));
  assert.doesNotMatch(bad.message, /not-a-jwt/);
});
