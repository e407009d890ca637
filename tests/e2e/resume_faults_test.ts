/**
 * Sessions survive their connections: curl transfers through a
 * fault-injecting relay between client and server — resets at random
 * offsets, stalls, truncations, flipped bits, duplicated chunks — complete
 * with exactly the bytes sent, because each fault only costs a connection:
 * the client resumes the session on a new one and the mux resends what the
 * peer missed.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { expectedSha256 } from "../support/http_target.ts";
import { type Fault, type FaultRelay, startFaultRelay } from "../support/fault_relay.ts";
import { startRelayedPair } from "./_harness.ts";
import { curlDownload, curlEcho, prng, writePatternFile } from "./_resume.ts";
import { test } from "../support/deadline.ts";

const MiB = 1024 * 1024;
/** Short timers, so a stalled connection is found dead within about a second. */
const FAST = { keepalive: "200ms", dead_after: "1s" };

/** `kinds` in order, alternating directions, at seeded random offsets in [min, min + span). */
function script(
  seed: number,
  plan: [Fault["kind"], "down" | "up"][],
  range: { down: [number, number]; up: [number, number] },
): Fault[] {
  const rand = prng(seed);
  return plan.map(([kind, dir]) => {
    const [min, span] = range[dir];
    return { kind, dir, at: min + Math.floor(rand() * span) } as Fault;
  });
}

function describeScript(faults: Fault[]): string {
  return faults.map((f) =>
    f.kind === "none"
      ? "none"
      : f.kind === "delay"
      ? `delay ${f.dir} ${f.ms} ms`
      : `${f.kind} ${f.dir}@${f.at}`
  ).join(", ");
}

/** Every scripted fault fired (each one ends its connection) and the client resumed after each. */
function assertAllFired(relay: FaultRelay, faults: Fault[], resumptions: number, log: string) {
  assert.ok(
    relay.connections > faults.length,
    `only ${relay.connections} connections for ${faults.length} faults\n${log}`,
  );
  assert.ok(resumptions >= faults.length, `${resumptions} resumptions\n${log}`);
}

test.slow("256 MiB down and 256 MiB up through curl survive ten faults of every kind (plain TCP)", async () => {
  const n = 256 * MiB;
  const faults = script(0x5eed01, [
    ["reset", "down"],
    ["stall", "up"],
    ["truncate", "down"],
    ["flip", "up"],
    ["duplicate", "down"],
    ["reset", "up"],
    ["flip", "down"],
    ["truncate", "up"],
    ["stall", "down"],
    ["duplicate", "up"],
  ], { down: [2 * MiB, 22 * MiB], up: [2 * MiB, 14 * MiB] });
  expectedSha256(n); // hashed now, not while the session's timers run
  await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
    transport: "tcp",
    // The server also re-keys (fresh X25519) every 16 MiB, across the faults.
    serverSession: { ...FAST, rekey_bytes: "16MiB" },
    clientSession: FAST,
  });
  const { target, pair, relay } = setup;
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-resume-" });
  try {
    const upload = join(tmp, "upload");
    await writePatternFile(upload, n);
    const session = await pair.client!.tunnel();
    const t0 = performance.now();
    const [down, echo] = await Promise.all([
      curlDownload(pair.socksPort, `${target.url}/bytes/${n}`),
      curlEcho(pair.socksPort, `${target.url}/echo`, upload),
    ]);
    const secs = (performance.now() - t0) / 1000;
    const log = `faults: ${describeScript(faults)}\n${pair.logs.lines.join("\n")}`;
    assert.equal(down.code, 0, `download: ${down.stderr}\n${log}`);
    assert.equal(down.sha256, expectedSha256(n), "download is exact");
    assert.equal(echo.code, 0, `upload: ${echo.stderr}\n${log}`);
    assert.equal(echo.sha256, expectedSha256(n), "upload (as echoed) is exact");
    assertAllFired(relay!, faults, pair.client!.resumptions, log);
    // One session all along: the server never started another.
    assert.equal(pair.serverEvents.of("login", (e) => e.user === "alice" && !e.resumed).length, 1);
    assert.equal(
      pair.serverEvents.of("session_end").length + pair.clientEvents.of("session_end").length +
        pair.serverEvents.of("refusal", (e) => /released/.test(e.detail)).length,
      0,
    );
    assert.ok(session.stats.rekeys > 0, "re-keyed along the way");
    console.log(
      `  768 MiB moved (256 down, 256 up + 256 echoed) in ${secs.toFixed(1)} s across ` +
        `${faults.length} faults, ${pair.client!.resumptions} resumptions, ` +
        `${session.stats.rekeys} re-keys`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test.slow("TLS passing through the fault relay: a download and an upload survive every kind of fault", async () => {
  const n = 48 * MiB;
  const faults = script(0x5eed02, [
    ["reset", "down"],
    ["flip", "up"],
    ["stall", "down"],
    ["duplicate", "up"],
    ["truncate", "down"],
    ["flip", "down"],
  ], { down: [MiB, 7 * MiB], up: [MiB, 5 * MiB] });
  expectedSha256(n);
  await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
    serverSession: FAST,
    clientSession: FAST,
  });
  const { target, pair, relay } = setup;
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-resume-" });
  try {
    const upload = join(tmp, "upload");
    await writePatternFile(upload, n);
    const [down, echo] = await Promise.all([
      curlDownload(pair.socksPort, `${target.url}/bytes/${n}`),
      curlEcho(pair.socksPort, `${target.url}/echo`, upload),
    ]);
    const log = `faults: ${describeScript(faults)}\n${pair.logs.lines.join("\n")}`;
    assert.equal(down.code, 0, `download: ${down.stderr}\n${log}`);
    assert.equal(down.sha256, expectedSha256(n));
    assert.equal(echo.code, 0, `upload: ${echo.stderr}\n${log}`);
    assert.equal(echo.sha256, expectedSha256(n));
    assertAllFired(relay!, faults, pair.client!.resumptions, log);
    assert.equal(pair.serverEvents.of("login", (e) => e.user === "alice" && !e.resumed).length, 1);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test.slow("16 parallel curl downloads survive faults of every kind on the shared connection", async () => {
  const each = 24 * MiB;
  const count = 16;
  // While only downloading, the client sends little (requests, ACKs, window
  // updates: about 80 bytes per MiB received), so faults in its direction sit
  // at small offsets, past the handshake (under 3 KiB).
  const faults = script(0x5eed03, [
    ["reset", "down"],
    ["flip", "down"],
    ["reset", "up"],
    ["stall", "down"],
    ["truncate", "down"],
    ["duplicate", "down"],
    ["flip", "up"],
  ], { down: [2 * MiB, 10 * MiB], up: [4096, 4096] });
  expectedSha256(each);
  await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
    transport: "tcp",
    serverSession: FAST,
    clientSession: FAST,
  });
  const { target, pair, relay } = setup;
  const results = await Promise.all(
    Array.from(
      { length: count },
      () => curlDownload(pair.socksPort, `${target.url}/bytes/${each}`),
    ),
  );
  const log = `faults: ${describeScript(faults)}\n${pair.logs.lines.join("\n")}`;
  results.forEach((r, i) => {
    assert.equal(r.code, 0, `download ${i}: ${r.stderr}\n${log}`);
    assert.equal(r.sha256, expectedSha256(each), `download ${i} is exact`);
  });
  assertAllFired(relay!, faults, pair.client!.resumptions, log);
});
