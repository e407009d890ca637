import assert from "node:assert/strict";
import { openStream, pair, pump, REPLY_OK, REQUEST } from "./_helpers.ts";
import { test } from "../support/deadline.ts";
import { spawnWithDeadline } from "../support/process.ts";

const N = 10_000;

test("Mux opens and closes 10,000 streams and keeps no state afterwards", () => {
  const { client, server } = pair({ maxStreams: N }, { maxStreams: N });
  const ids: number[] = [];
  for (let i = 0; i < N; i++) ids.push(client.open(REQUEST));
  let opened = 0;
  for (const ev of pump(client, server)) {
    if (ev.type === "open") {
      opened++;
      server.reply(ev.id, REPLY_OK);
      server.send(ev.id, new Uint8Array([1, 2, 3]));
      server.finish(ev.id);
    }
  }
  assert.equal(opened, N);
  let closed = 0;
  for (const ev of pump(server, client)) {
    if (ev.type === "data") client.consumed(ev.id, ev.data.length);
    if (ev.type === "fin") client.finish(ev.id);
  }
  for (const ev of client.takeEvents()) if (ev.type === "closed") closed++;
  assert.equal(closed, N);
  for (const ev of pump(client, server)) if (ev.type === "closed") closed++;
  assert.equal(closed, 2 * N);
  for (const m of [client, server]) {
    const st = m.stats();
    assert.equal(m.streamCount, 0);
    assert.equal(m.pendingBytes, 0);
    assert.equal(st.queuedBytes, 0);
    assert.equal(st.blockedStreams, 0);
    assert.equal(st.owedStreams, 0);
    assert.equal(st.pendingEvents, 0);
    assert.equal(m.pull(), null);
    assert.deepEqual(m.idleStreams(1e12, 0), []);
  }
  // ids are never reused: the next stream gets a fresh one
  assert.equal(client.open(REQUEST), 2 * N + 1);
});

test("Mux pull() cost does not grow with the number of idle streams", () => {
  function timePulls(idle: number): number {
    const big = { maxStreams: idle + 1, streamWindow: 64 << 20, sessionWindow: 256 << 20 };
    const { client, server } = pair(big, big);
    for (let i = 0; i < idle; i++) client.open(REQUEST);
    for (const ev of pump(client, server)) if (ev.type === "open") server.reply(ev.id, REPLY_OK);
    pump(server, client);
    const busy = openStream(client, server);
    client.send(busy, new Uint8Array(60 << 20));
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) client.pull(4096); // small records: per-pull overhead dominates
    return performance.now() - t0;
  }
  timePulls(10); // warm up
  const few = timePulls(10);
  const many = timePulls(N);
  assert.ok(many < few * 5 + 20, `10 idle: ${few.toFixed(1)} ms, ${N} idle: ${many.toFixed(1)} ms`);
});

test("Mux holds under 1 KiB per idle stream", async () => {
  const probe = new URL("./_mem_probe.ts", import.meta.url);
  const out = await spawnWithDeadline(Deno.execPath(), {
    args: ["run", "--v8-flags=--expose-gc", probe.pathname, String(N)],
    stdout: "piped",
    stderr: "piped",
  }, 50_000).output;
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(r.streams, [N, N]);
  assert.ok(r.clientBytesPerStream < 1024, `client: ${r.clientBytesPerStream} bytes per stream`);
  assert.ok(r.serverBytesPerStream < 1024, `server: ${r.serverBytesPerStream} bytes per stream`);
});
