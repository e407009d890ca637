/**
 * How a session behaves while its connection is gone: a stalled connection
 * is found dead by the keepalive timers and replaced; after a reset data
 * flows again within milliseconds; and while the peer is unreachable the
 * client holds no more than its resend buffer plus the peer's credit,
 * reading nothing more from its local sockets, then finishes exactly. The
 * server's own `session.dead_after` drops a link that went silent.
 * Recovery times are printed; only recovery and exact data are asserted.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import type { MuxStats } from "../../lib/mux/mod.ts";
import { expectedSha256 } from "../support/http_target.ts";
import { type Fault, startFaultRelay } from "../support/fault_relay.ts";
import { startTcpRelay } from "../support/mitm_relay.ts";
import { startPair, startRelayedPair } from "./_harness.ts";
import {
  curlDownload,
  curlEcho,
  median,
  prng,
  startGateRelay,
  watchFlow,
  writePatternFile,
} from "./_resume.ts";
import { test, waitFor as pollUntil } from "../support/deadline.ts";

const MiB = 1024 * 1024;

/** Polls `cond` every 10 ms until it holds; fails naming `what` after `ms`. */
function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  return pollUntil(what, cond, ms);
}

function ms(xs: number[]): string {
  return xs.map((x) => x.toFixed(0)).join(", ");
}

test.slow("a stalled connection is found dead by the keepalive timers and the download resumes exactly", async () => {
  const n = 96 * MiB;
  const rand = prng(0x57a11);
  const faults: Fault[] = Array.from({ length: 3 }, () => ({
    kind: "stall" as const,
    dir: "down" as const,
    at: 8 * MiB + Math.floor(rand() * 8 * MiB),
  }));
  const fast = { keepalive: "200ms", dead_after: "1s" };
  expectedSha256(n); // hashed now, not while timers run
  await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
    transport: "tcp",
    serverSession: fast,
    clientSession: fast,
  });
  const { target, pair, relay } = setup;
  const watch = watchFlow(await pair.client!.tunnel());
  try {
    const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
    assert.equal(r.code, 0, `${r.stderr}\n${pair.logs.lines.join("\n")}`);
    assert.equal(r.sha256, expectedSha256(n));
  } finally {
    watch.stop();
  }
  assert.equal(relay!.connections, faults.length + 1);
  // A stalled connection never ends by itself: the side whose timer fires first drops it.
  const silent = [...pair.serverEvents.of("link_down"), ...pair.clientEvents.of("link_down")]
    .filter((e) => e.reason.startsWith("peer silent for"));
  assert.ok(silent.length >= faults.length, `${silent.length} links dropped for silence`);
  const gaps = watch.gaps.map((g) => g.ms);
  assert.equal(gaps.length, faults.length, `gaps ${ms(gaps)}`);
  console.log(
    `  stall → data flowing again (keepalive 200 ms, dead_after 1 s): ${ms(gaps)} ms, ` +
      `median ${median(gaps).toFixed(0)} ms`,
  );
});

test.slow("a connection that stalls during the resume handshake is given up after dead_after, not 15 s", async () => {
  const n = 32 * MiB;
  const fast = { keepalive: "200ms", dead_after: "1s" };
  expectedSha256(n);
  const faults: Fault[] = [
    { kind: "stall", dir: "down", at: 8 * MiB },
    // The ServerHello of the resumption stops after 200 bytes.
    { kind: "stall", dir: "down", at: 200 },
  ];
  await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
    transport: "tcp",
    serverSession: fast,
    clientSession: fast,
  });
  const { target, pair } = setup;
  const t0 = performance.now();
  const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
  const secs = (performance.now() - t0) / 1000;
  assert.equal(r.code, 0, `${r.stderr}\n${pair.logs.lines.join("\n")}`);
  assert.equal(r.sha256, expectedSha256(n));
  assert.equal(
    pair.clientEvents.of(
      "connect_failed",
      (e) => /sent nothing for 1 s \(session\.dead_after\) during the handshake/.test(e.error),
    ).length,
    1,
  );
  assert.equal(pair.client!.resumptions, 1);
  assert.ok(secs < 10, `the download took ${secs.toFixed(1)} s`);
  console.log(
    `  two stalls, one inside the resume handshake: download done in ${secs.toFixed(1)} s`,
  );
});

test("session.dead_after on the server: a link silent for 1 s is dropped by the server, whose client would wait 2 h", async () => {
  let stalled = false;
  await using pair = await startPair({
    transport: "tcp",
    serverSession: { keepalive: "200ms", dead_after: "1s" },
    clientSession: { keepalive: "1h", dead_after: "2h" },
    // Once stalled, the relay forwards nothing either way and keeps both sockets open.
    via: (s) =>
      startTcpRelay({
        upstream: { hostname: "127.0.0.1", port: s.port },
        tamper: (_dir, chunk) => stalled ? new Uint8Array(0) : chunk,
      }),
  });
  await pair.serverEvents.waitFor("login", { timeoutMs: 10_000 });
  stalled = true;
  const [down] = await pair.serverEvents.waitFor("link_down", { timeoutMs: 10_000 });
  assert.match(down!.reason, /^peer silent for 1\.\d s$/);
  assert.equal(down!.tampered, false);
});

test.slow("after a reset data flows again within milliseconds (median of seven)", async () => {
  const n = 160 * MiB;
  const rand = prng(0x4e5e7);
  const faults: Fault[] = Array.from({ length: 7 }, () => ({
    kind: "reset" as const,
    dir: "down" as const,
    at: 6 * MiB + Math.floor(rand() * 12 * MiB),
  }));
  expectedSha256(n);
  await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
    transport: "tcp",
  });
  const { target, pair } = setup;
  const watch = watchFlow(await pair.client!.tunnel());
  try {
    const r = await curlDownload(pair.socksPort, `${target.url}/bytes/${n}`);
    assert.equal(r.code, 0, `${r.stderr}\n${pair.logs.lines.join("\n")}`);
    assert.equal(r.sha256, expectedSha256(n));
  } finally {
    watch.stop();
  }
  assert.equal(pair.client!.resumptions, faults.length);
  const gaps = watch.gaps.map((g) => g.ms);
  assert.equal(gaps.length, faults.length, `gaps ${ms(gaps)}`);
  console.log(`  reset → data flowing again: ${ms(gaps)} ms, median ${median(gaps).toFixed(0)} ms`);
});

test.slow("while the server is unreachable the client buffers no more than its resend buffer and the peer's credit, then the upload completes exactly", async () => {
  const n = 64 * MiB;
  const resend = 1 * MiB;
  const streamWindow = 8 * MiB; // the server's limits.stream_window (default): the client's credit
  const settings = { resend_buffer: "1MiB" };
  expectedSha256(n);
  await using setup = await startRelayedPair((s) => startGateRelay(s.port), {
    transport: "tcp",
    serverSession: settings,
    clientSession: settings,
  });
  const { target, pair, relay: gate } = setup;
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-outage-" });
  try {
    const upload = join(tmp, "upload");
    await writePatternFile(upload, n);
    const session = await pair.client!.tunnel();
    const echo = curlEcho(pair.socksPort, `${target.url}/echo`, upload);
    await waitFor(() => session.stats.bytesOut > 16 * MiB, 60_000, "16 MiB uploaded");
    gate!.cut();
    await waitFor(() => !session.connected, 5_000, "the client to see the link down");

    // Two seconds away: sample the client's (and the server's) mux.
    const client: MuxStats[] = [];
    const server: MuxStats[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 200 && Date.now() - t0 < 2_000; i++) {
      client.push(session.muxStats());
      for (const s of pair.server.sessions) server.push(s.muxStats());
      await new Promise((r) => setTimeout(r, 20));
    }
    const refusedWhileCut = gate!.refused;
    gate!.restore();
    const r = await echo;
    assert.equal(r.code, 0, `${r.stderr}\n${pair.logs.lines.join("\n")}`);
    assert.equal(r.sha256, expectedSha256(n), "the upload (as echoed) is exact");

    const max = (xs: MuxStats[], k: keyof MuxStats) => Math.max(...xs.map((s) => s[k]));
    const last = client.at(-1)!;
    const mid = client[client.length >> 1]!;
    console.log(
      `  away 2 s (${refusedWhileCut} reconnects refused): client unacked ≤ ${
        max(client, "unackedBytes")
      } B (resend buffer ${resend}), queued ≤ ${max(client, "queuedBytes")} B; server unacked ≤ ${
        max(server, "unackedBytes")
      } B, queued ≤ ${max(server, "queuedBytes")} B`,
    );
    assert.ok(client.length >= 20, `${client.length} samples`);
    assert.ok(refusedWhileCut >= 1, "the client tried to reconnect while the path was cut");
    assert.ok(max(client, "unackedBytes") <= resend);
    assert.ok(max(client, "queuedBytes") <= streamWindow);
    assert.ok(max(server, "unackedBytes") <= resend);
    // Reading from curl stopped once the credit was used: nothing more was
    // queued in the second half of the outage.
    assert.equal(last.queuedBytes, mid.queuedBytes, "the local socket was not read beyond credit");
    assert.equal(last.unackedBytes, mid.unackedBytes);
    assert.ok(pair.client!.resumptions >= 1);
    assert.deepEqual(pair.serverEvents.of("resume").map((e) => e.user), ["alice"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
