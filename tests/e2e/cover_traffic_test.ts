/**
 * `session.cover_traffic` on the wire: a quiet tunnel whose client sends
 * cover traffic shows records of varied sizes going up at irregular gaps,
 * and nothing coming back (the server reads PADDING frames and ignores
 * them: no ACK, no answer); without it the same quiet tunnel is silent.
 * A TLS record tap between client and server sees what an observer sees.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { type SeenRecord, startTlsTap, type TlsTap } from "../support/tls_tap.ts";
import { startPair } from "./_harness.ts";
import { test } from "../support/deadline.ts";

/** Keepalive out of the way (an hour), so only cover traffic can move. */
const QUIET = { keepalive: "1h", dead_after: "2h" };
const WATCH_MS = 3_000;

/** Application-data records each way while a tunnel sits idle for `WATCH_MS`. */
async function idleRecords(cover: string): Promise<{ up: SeenRecord[]; down: SeenRecord[] }> {
  let tap: TlsTap | undefined;
  await using pair = await startPair({
    via: (s) => (tap = startTlsTap({ hostname: "127.0.0.1", port: s.port })),
    clientSession: { ...QUIET, cover_traffic: cover },
    serverSession: QUIET,
  });
  await pair.client!.tunnel();
  await new Promise((r) => setTimeout(r, 300)); // the login's last records and ACKs
  tap!.clear();
  await new Promise((r) => setTimeout(r, WATCH_MS));
  return { up: tap!.appData("client_to_server"), down: tap!.appData("server_to_client") };
}

test("session.cover_traffic 200ms: a quiet client sends records of varied size at varied gaps; the server stays silent", async () => {
  const { up, down } = await idleRecords("200ms");
  const sizes = up.map((r) => r.length);
  const gaps = up.slice(1).map((r, i) => Math.round(r.atMs - up[i]!.atMs));
  console.log(`cover: ${up.length} records up in ${WATCH_MS} ms, sizes ${sizes.join(" ")}`);
  console.log(`gaps ${gaps.join(" ")} ms`);
  // Mean gap 200 ms (cut to 20 ms..1 s, checked every 50 ms): about 10 to 15 in 3 s.
  assert.ok(up.length >= 5 && up.length <= 40, `${up.length} cover records`);
  assert.ok(new Set(sizes).size >= Math.min(5, up.length), `sizes ${sizes}`);
  assert.ok(new Set(gaps).size >= 3, `gaps ${gaps}`);
  assert.deepEqual(down.map((r) => r.length), [], "the server answers nothing");
});

test("session.cover_traffic 0 (the default): the same quiet tunnel sends nothing", async () => {
  const { up, down } = await idleRecords("0");
  assert.deepEqual(up.map((r) => r.length), []);
  assert.deepEqual(down.map((r) => r.length), []);
});
