import assert from "node:assert/strict";
import {
  addUserToYaml,
  loadUsers,
  parseUsers,
  reloadUsersFile,
  removeUserFromYaml,
  updateUserInYaml,
} from "../../lib/config/mod.ts";
import { ConfigError } from "../../lib/errors.ts";
import { assertAt, configError, k } from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

Deno.test("parseUsers() reads every field and applies defaults", () => {
  const text = `users:
  alice:
    public_key: ${k(32, 1)}
    token: ${k(32, 2)}
    totp: JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP
    routes: ["tcp:*.example.com:443", "[::1]:22"]
    bandwidth: 10MB/s
    max_streams: 64
    expires: 2027-01-01T00:00:00Z
    disabled: true
  bob: {public_key: ${k(32, 3)}, token: ${k(32, 4)}}
`;
  const cfg = parseUsers(text, "users.yml");
  const alice = cfg.users.get("alice")!;
  assert.equal(alice.name, "alice");
  assert.deepEqual(alice.publicKey, new Uint8Array(32).fill(1));
  assert.deepEqual(alice.token, new Uint8Array(32).fill(2));
  assert.equal(alice.totpSecret?.length, 20);
  assert.deepEqual(alice.routes, ["tcp:*.example.com:443", "[::1]:22"]);
  assert.equal(alice.bandwidth, 10_000_000);
  assert.equal(alice.maxStreams, 64);
  assert.equal(alice.expires?.toISOString(), "2027-01-01T00:00:00.000Z");
  assert.equal(alice.disabled, true);
  const bob = cfg.users.get("bob")!;
  assert.deepEqual(bob.routes, ["*"]);
  assert.equal(bob.disabled, false);
  assert.ok(!("totpSecret" in bob) && !("bandwidth" in bob) && !("expires" in bob));
  assert.deepEqual([...cfg.users.keys()], ["alice", "bob"]);
  assert.ok(Object.isFrozen(alice) && Object.isFrozen(alice.routes));
});

Deno.test("reloadUsersFile() refuses a file with no users: key, takes users: {}", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-reload-" });
  try {
    const file = `${dir}/users.yml`;
    for (const text of ["", "\n", "# users being rewritten\n"]) {
      await Deno.writeTextFile(file, text);
      const e = await reloadUsersFile(file).then(() => undefined, (e: unknown) => e);
      assert.ok(e instanceof ConfigError, `${JSON.stringify(text)}: ${String(e)}`);
      assert.match(
        e.message,
        /No users: key in the file .*write "users: \{\}" to remove every user/,
      );
      assert.equal((await loadUsers(file)).users.size, 0, "at start-up it is an empty list");
    }
    for (const text of ["users: {}\n", "# nobody\nusers:\n", "{users: {}}\n"]) {
      await Deno.writeTextFile(file, text);
      assert.equal((await reloadUsersFile(file)).users.size, 0, text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseUsers() accepts an empty file, an empty map and a bare key", () => {
  assert.equal(parseUsers("", "u.yml").users.size, 0);
  assert.equal(parseUsers("users: {}\n", "u.yml").users.size, 0);
  assert.equal(parseUsers("# nobody\nusers:\n", "u.yml").users.size, 0);
});

Deno.test("parseUsers() refuses keys of the wrong length without echoing them", () => {
  const short = k(31, 5);
  const e = configError(() =>
    parseUsers(`users:\n  alice:\n    public_key: ${short}\n    token: ${k(32)}\n`, "u.yml")
  );
  assertAt(e, "u.yml", 3, 17);
  assert.equal(e.key, "users.alice.public_key");
  assert.match(e.message, /expected 32 bytes of unpadded base64url, got 31 bytes/);
  assert.ok(!e.message.includes(short));
  const e2 = configError(() =>
    parseUsers(`users:\n  alice:\n    public_key: ${k(32)}\n    token: "not base64!"\n`, "u.yml")
  );
  assertAt(e2, "u.yml", 4, 12);
  assert.ok(!e2.message.includes("not base64"));
});

Deno.test("parseUsers() points at the bad route by index", () => {
  const e = configError(() =>
    parseUsers(
      `users:\n  alice:\n    public_key: ${k(32)}\n    token: ${
        k(32)
      }\n    routes:\n      - "*"\n      - tcp:a.com:443\n      - tcp:::1:22\n`,
      "u.yml",
    )
  );
  assertAt(e, "u.yml", 8, 9);
  assert.equal(e.key, "users.alice.routes[2]");
  assert.match(
    e.message,
    /Invalid users.alice.routes\[2\]: "tcp:::1:22": IPv6 addresses go in brackets/,
  );
});

Deno.test("parseUsers() refuses bad names, missing credentials and shared keys", () => {
  let e = configError(() =>
    parseUsers(`users:\n  "bad name": {public_key: ${k(32)}, token: ${k(32)}}\n`, "u.yml")
  );
  assertAt(e, "u.yml", 2, 3);
  assert.match(e.message, /Invalid name "bad name" in users/);
  e = configError(() => parseUsers(`users:\n  alice:\n    token: ${k(32)}\n`, "u.yml"));
  assertAt(e, "u.yml", 2, 3);
  assert.match(e.message, /Missing required key "users.alice.public_key"/);
  e = configError(() => parseUsers(`users:\n  alice:\n`, "u.yml"));
  assertAt(e, "u.yml", 2, 3);
  e = configError(() =>
    parseUsers(
      `users:\n  a: {public_key: ${k(32)}, token: ${k(32)}}\n  b: {public_key: ${k(32)}, token: ${
        k(32, 2)
      }}\n`,
      "u.yml",
    )
  );
  assertAt(e, "u.yml", 3, 19);
  assert.match(e.message, /already used by user "a"/);
  e = configError(() =>
    parseUsers(
      `users:\n  a: {public_key: ${k(32)}, token: ${k(32)}, expires: "next year"}\n`,
      "u.yml",
    )
  );
  assert.match(e.message, /Invalid users.a.expires: expected a date/);
  e = configError(() =>
    parseUsers(`users:\n  a: {public_key: ${k(32)}, token: ${k(32)}, bandwidth: 10MB}\n`, "u.yml")
  );
  assert.match(e.message, /expected a rate/);
  e = configError(() =>
    parseUsers(`users:\n  a: {public_key: ${k(32)}, token: ${k(32)}, totp: "0189"}\n`, "u.yml")
  );
  assert.match(e.message, /expected a base32 secret/);
  e = configError(() => parseUsers(`user:\n  a: {}\n`, "u.yml"));
  assertAt(e, "u.yml", 1, 1);
  assert.equal(e.hint, 'did you mean "users"?');
});

Deno.test("loadUsers() reports a missing file with its path", async () => {
  await assert.rejects(loadUsers("/nonexistent/users.yml"), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.file, "/nonexistent/users.yml");
    assert.equal(e.message, "/nonexistent/users.yml: Cannot read config file: file not found");
    return true;
  });
});

const COMMENTED = `# Top comment stays.
users:
  # Alice is the admin.
  alice:
    public_key: ${k(32, 1)}
    token: ${k(32, 2)} # inline comment stays
`;

Deno.test("addUserToYaml() keeps comments and other users", () => {
  const out = addUserToYaml(COMMENTED, "u.yml", {
    name: "bob",
    publicKey: new Uint8Array(32).fill(3),
    token: new Uint8Array(32).fill(4),
    totpSecret: new Uint8Array(20).fill(5),
    routes: ["tcp:*.example.com:443"],
  });
  for (const s of ["# Top comment stays.", "# Alice is the admin.", "# inline comment stays"]) {
    assert.ok(out.includes(s), `lost ${s}`);
  }
  const cfg = parseUsers(out, "u.yml");
  assert.deepEqual([...cfg.users.keys()], ["alice", "bob"]);
  const bob = cfg.users.get("bob")!;
  assert.deepEqual(bob.publicKey, new Uint8Array(32).fill(3));
  assert.deepEqual(bob.totpSecret, new Uint8Array(20).fill(5));
  assert.deepEqual(bob.routes, ["tcp:*.example.com:443"]);
});

Deno.test("addUserToYaml() turns an empty flow map or a bare key into a block map", () => {
  for (const text of ["users: {}\n", "# x\nusers:\n", ""]) {
    const out = addUserToYaml(text, "u.yml", {
      name: "null",
      publicKey: new Uint8Array(32).fill(3),
      token: new Uint8Array(32).fill(4),
    });
    assert.match(out, /^users:\n {2}"null":\n {4}public_key: /m);
    assert.deepEqual([...parseUsers(out, "u.yml").users.keys()], ["null"]);
  }
});

Deno.test("addUserToYaml() refuses an existing name, a bad name and a broken file", () => {
  const user = { name: "alice", publicKey: new Uint8Array(32).fill(9), token: new Uint8Array(32) };
  assert.throws(() => addUserToYaml(COMMENTED, "u.yml", user), /User "alice" already exists/);
  assert.throws(
    () => addUserToYaml(COMMENTED, "u.yml", { ...user, name: "a/b" }),
    /Invalid user name/,
  );
  assertThrowsWith(
    () => addUserToYaml("users: [\n", "u.yml", { ...user, name: "x" }),
    ConfigError,
    "u.yml:2:1: Cannot parse YAML: ",
  );
  assert.throws(
    () =>
      addUserToYaml(COMMENTED, "u.yml", {
        ...user,
        name: "x",
        publicKey: new Uint8Array(32).fill(1),
      }),
    /already used by user "alice"/,
  );
});

Deno.test("removeUserFromYaml() removes one user and keeps the rest", () => {
  const two = addUserToYaml(COMMENTED, "u.yml", {
    name: "bob",
    publicKey: new Uint8Array(32).fill(3),
    token: new Uint8Array(32).fill(4),
  });
  const out = removeUserFromYaml(two, "u.yml", "bob");
  assert.deepEqual([...parseUsers(out, "u.yml").users.keys()], ["alice"]);
  assert.ok(out.includes("# Alice is the admin."));
  assert.throws(() => removeUserFromYaml(out, "u.yml", "bob"), /No user "bob"/);
});

Deno.test("parseUsers() returns a map that refuses changes", () => {
  const cfg = parseUsers(`users:\n  a: {public_key: ${k(32)}, token: ${k(32)}}\n`, "u.yml");
  assert.ok(cfg.users instanceof Map);
  assertThrowsWith(
    () => cfg.users.delete("a"),
    TypeError,
    "Cannot modify a parsed configuration map",
  );
  assertThrowsWith(
    () => cfg.users.set("b", cfg.users.get("a")!),
    TypeError,
    "Cannot modify a parsed configuration map",
  );
  assertThrowsWith(() => cfg.users.clear(), TypeError, "Cannot modify a parsed configuration map");
  assert.equal(cfg.users.size, 1);
});

Deno.test("users.yml: quota and max_tunnels parse; a bad quota names its line and column", () => {
  const text = `users:\n  a:\n    public_key: ${k(32)}\n    token: ${k(32)}\n` +
    "    quota: 50GB/30d\n    max_tunnels: 2\n";
  const a = parseUsers(text, "u.yml").users.get("a")!;
  assert.deepEqual([a.quota, a.maxTunnels], [{ bytes: 50e9, periodS: 30 * 86_400 }, 2]);
  const bad = (q: string) => configError(() => parseUsers(text.replace("50GB/30d", q), "u.yml"));
  for (const q of ["50GB", "fifty/30d", "50GB/forever"]) {
    const e = bad(q);
    assertAt(e, "u.yml", 5, 12);
    assert.match(e.message, /users\.a\.quota: expected a quota SIZE\/PERIOD/);
  }
  assert.match(bad("10B/1h").message, /at least 1024 bytes per at least 60s/);
  assert.match(bad("1GB/10s").message, /at least 1024 bytes per at least 60s/);
  const e = configError(() =>
    parseUsers(text.replace("max_tunnels: 2", "max_tunnels: 0"), "u.yml")
  );
  assertAt(e, "u.yml", 6, 18);
});

Deno.test("updateUserInYaml() sets and removes keys, keeping comments and other users", () => {
  const text = `# who may connect\nusers:\n  # the first user\n  a: {public_key: ${k(32)}, token: ${
    k(32)
  }, bandwidth: 1MB/s} # a\n  b: {public_key: ${k(32, 2)}, token: ${k(32, 2)}}\n`;
  const out = updateUserInYaml(text, "u.yml", "a", {
    bandwidth: null,
    quota: "1GB/1d",
    disabled: true,
    expires: new Date("2030-01-01T00:00:00Z"),
  });
  assert.ok(out.startsWith("# who may connect\n"), out);
  assert.ok(out.includes("# the first user"), out);
  const users = parseUsers(out, "u.yml").users;
  const a = users.get("a")!;
  assert.deepEqual(
    [a.bandwidth, a.quota, a.disabled, a.expires?.toISOString()],
    [undefined, { bytes: 1e9, periodS: 86_400 }, true, "2030-01-01T00:00:00.000Z"],
  );
  assert.deepEqual(users.get("b"), parseUsers(text, "u.yml").users.get("b"));
  assert.throws(() => updateUserInYaml(text, "u.yml", "zed", { disabled: true }), /No user "zed"/);
  const e = configError(() => updateUserInYaml(text, "u.yml", "a", { bandwidth: "fast" }));
  assert.match(e.message, /users\.a\.bandwidth/);
});
