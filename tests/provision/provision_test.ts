import assert from "node:assert/strict";
import { join } from "node:path";
import {
  addUser,
  checkUserName,
  INIT_FILES,
  initServerDir,
  listUsers,
  ProvisionInputError,
  removeUser,
} from "../../lib/provision/mod.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-provision-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("initServerDir() refuses a bad listen address or name before writing anything", async () => {
  await withDir(async (dir) => {
    for (const listen of ["8443", "a b:80", "[example.com]:80", "127.0.0.1:65536"]) {
      await assert.rejects(
        initServerDir(dir, { listen }),
        ProvisionInputError,
        `Invalid listen address "${listen}": expected HOST:PORT`,
      );
    }
    await assert.rejects(
      initServerDir(dir, { name: "bad name" }),
      ProvisionInputError,
      'Invalid name "bad name"',
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("initServerDir() writes every INIT_FILES entry, the private ones at 0600", async () => {
  await withDir(async (dir) => {
    const { files, serverPublicKey } = await initServerDir(dir, { listen: "[::1]:0" });
    assert.deepEqual(files, INIT_FILES.map((f) => f.path));
    assert.equal(serverPublicKey.length, 64);
    for (const f of INIT_FILES.filter((f) => f.mode === 0o600)) {
      assert.equal((await Deno.stat(join(dir, f.path))).mode! & 0o777, f.mode, f.path);
    }
    assert.match(await Deno.readTextFile(join(dir, "server.yml")), /^listen: "\[::1\]:0"$/m);
  });
});

Deno.test("addUser(), listUsers() and removeUser() manage users.yml", async () => {
  await withDir(async (dir) => {
    await initServerDir(dir, { listen: "127.0.0.1:8443" });
    const out = join(dir, "alice.yml");
    const r = await addUser("alice", { dir, out, routes: ["127.0.0.1"] });
    assert.equal(r.profilePath, out);
    assert.match(r.profileYaml, /server: "tls:\/\/127\.0\.0\.1:8443"/);
    assert.ok(r.link.startsWith("nitrosocks://"));
    assert.deepEqual((await listUsers(dir)).map((u) => [u.name, u.routes]), [
      ["alice", ["127.0.0.1"]],
    ]);
    assert.equal(await removeUser("alice", dir), join(dir, "users.yml"));
    assert.deepEqual(await listUsers(dir), []);
  });
});

Deno.test("addUser() and removeUser() refuse a bad name, address or route as input errors", async () => {
  await withDir(async (dir) => {
    await initServerDir(dir, { listen: "127.0.0.1:8443" });
    const out = join(dir, "x.yml");
    await assert.rejects(addUser("a/b", { dir, out }), ProvisionInputError, 'user name "a/b"');
    await assert.rejects(
      addUser("bob", { dir, out, server: "nohost" }),
      ProvisionInputError,
      'Invalid server address "nohost"',
    );
    await assert.rejects(
      addUser("bob", { dir, out, routes: ["tcp:bad pattern"] }),
      ProvisionInputError,
    );
    await assert.rejects(removeUser("a b", dir), ProvisionInputError);
    assert.throws(() => checkUserName(""), ProvisionInputError);
    assert.equal(checkUserName("a.b_c-1"), "a.b_c-1");
    assert.deepEqual(await listUsers(dir), []);
  });
});
