/**
 * The embedded store on a real file system: counters survive reopening,
 * writes are atomic (a write that dies halfway never replaces the state,
 * temporary files a crash left are removed), and a state file that cannot
 * be used stops the start instead of resetting counters.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FileStore, StateFileError } from "../../lib/accounting/mod.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-state-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ONE_LOGIN = {
  server: { loginsOk: 1 },
  users: new Map([["alice", { loginsOk: 1, bytesOut: 1000, sessionsLive: 1 }]]),
};

Deno.test("FileStore keeps counters across a reopen, in a 0600 file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "state.json");
    const a = await FileStore.open(path);
    assert.equal((await a.snapshot()).users.size, 0);
    await a.add(ONE_LOGIN);
    await a.add(ONE_LOGIN);
    await a.close();
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const b = await FileStore.open(path);
    const alice = await b.user("alice");
    assert.equal(alice?.loginsOk, 2);
    assert.equal(alice?.bytesOut, 2000);
    assert.equal(alice?.sessionsLive, 0, "no session outlives the process");
    assert.equal((await b.snapshot()).server.loginsOk, 2);
    await b.forget(["alice"]);
    await b.close();
    const c = await FileStore.open(path);
    assert.equal(await c.user("alice"), undefined);
    await c.close();
  });
});

Deno.test("a write that dies halfway leaves the previous state file whole; the next write carries it", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "state.json");
    const good = await FileStore.open(path);
    await good.add(ONE_LOGIN);
    await good.close();
    const before = await Deno.readTextFile(path);

    let fail = true;
    const temps: string[] = [];
    const store = await FileStore.open(path, {
      async writeTemp(tmp, data) {
        temps.push(tmp);
        const f = await Deno.open(tmp, { write: true, createNew: true });
        await f.write(data.subarray(0, data.length >> 1));
        f.close();
        if (fail) throw new Error("disk full (simulated)");
        await Deno.writeFile(tmp, data);
      },
    });
    await assert.rejects(store.add(ONE_LOGIN), (e: unknown) => {
      assert.ok(e instanceof StateFileError);
      assert.match(e.message, /write failed: disk full \(simulated\)/);
      return true;
    });
    assert.equal(await Deno.readTextFile(path), before, "the state file was not touched");
    assert.ok(temps[0]!.startsWith(`${path}.`) && temps[0]!.endsWith(".tmp"));
    await assert.rejects(Deno.stat(temps[0]!), Deno.errors.NotFound, "the half file is removed");
    assert.equal((await store.user("alice"))?.loginsOk, 2, "the batch is kept in memory");
    fail = false;
    await store.add({ server: {}, users: new Map([["alice", { kicks: 1 }]]) });
    await store.close();
    const again = await FileStore.open(path);
    const alice = await again.user("alice");
    assert.equal(alice?.loginsOk, 2, "the failed batch was written with the next one");
    assert.equal(alice?.kicks, 1);
    await again.close();
  });
});

Deno.test("a temporary file a crash left behind never replaces the state and is removed at start", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "state.json");
    const s = await FileStore.open(path);
    await s.add(ONE_LOGIN);
    await s.close();
    const leftover = `${path}.4242-1.tmp`;
    await Deno.writeTextFile(leftover, '{"format":"nitrosocks-state","version":1,"server":{"logi');
    const other = join(dir, "other.json.1.tmp");
    await Deno.writeTextFile(other, "not ours");
    const t = await FileStore.open(path);
    assert.equal((await t.user("alice"))?.loginsOk, 1);
    await assert.rejects(Deno.stat(leftover), Deno.errors.NotFound);
    assert.equal(
      await Deno.readTextFile(other),
      "not ours",
      "only the state file's temporaries go",
    );
    await t.close();
  });
});

Deno.test("concurrent adds never interleave writes and all reach the file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "state.json");
    let writing = 0;
    let most = 0;
    const s = await FileStore.open(path, {
      async writeTemp(tmp, data) {
        most = Math.max(most, ++writing);
        await new Promise((r) => setTimeout(r, 5));
        await Deno.writeFile(tmp, data, { createNew: true });
        writing--;
      },
    });
    await Promise.all(
      Array.from({ length: 20 }, () => s.add({ server: { kicks: 1 }, users: new Map() })),
    );
    await s.close();
    assert.equal(most, 1);
    const back = await FileStore.open(path);
    assert.equal((await back.snapshot()).server.kicks, 20);
    await back.close();
  });
});

Deno.test("a state file that is not valid stops the start, saying where and what to do", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "state.json");
    await Deno.writeTextFile(path, "{ this is not json");
    await assert.rejects(FileStore.open(path), (e: unknown) => {
      assert.ok(e instanceof StateFileError);
      assert.equal(e.path, path);
      assert.match(e.message, /^Cannot use state file ".*state\.json": Not JSON: /);
      assert.match(e.message, /move it away to start with fresh counters/);
      return true;
    });
    assert.equal(await Deno.readTextFile(path), "{ this is not json", "left as it was");
  });
});
