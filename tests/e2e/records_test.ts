/**
 * What one short connection costs on the wire: with fast open and delayed
 * ACKs a request/answer exchange takes about three records each way (open
 * + data, answer, close), not one more per direction for every ACK, and
 * the application's first bytes leave without waiting for the REPLY.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { readExact, socksConnect } from "../support/socks_client.ts";
import { startFaultRelay } from "../support/fault_relay.ts";
import { startEchoServer, startPair } from "./_harness.ts";
import { test } from "../support/deadline.ts";

const N = 40;

async function exchange(socksPort: number, echoPort: number): Promise<void> {
  const conn = await socksConnect(socksPort, "127.0.0.1", echoPort);
  try {
    await conn.write(new TextEncoder().encode("ping"));
    assert.equal(new TextDecoder().decode(await readExact(conn, 4)), "ping");
  } finally {
    conn.close();
  }
}

test(`${N} short connections cost about three records each way, no ACK-only records`, async () => {
  await using echo = startEchoServer();
  await using pair = await startPair({ transport: "tcp" });
  const session = await pair.client!.tunnel();
  await exchange(pair.socksPort, echo.port); // warm up: windows, first ACKs
  await new Promise((r) => setTimeout(r, 100));
  const out0 = session.stats.recordsOut;
  const in0 = session.stats.recordsIn;
  for (let i = 0; i < N; i++) await exchange(pair.socksPort, echo.port);
  // Let the last closes and any delayed ACK go out.
  await new Promise((r) => setTimeout(r, 200));
  const out = session.stats.recordsOut - out0;
  const inn = session.stats.recordsIn - in0;
  // OPEN (+ the window update and maybe the first bytes), data, FIN: 3 per
  // connection; an ACK-only record after each received record made it 5-6.
  assert.ok(out <= 3.5 * N, `client sent ${out} records for ${N} connections`);
  assert.ok(inn <= 3.5 * N, `client received ${inn} records for ${N} connections`);
  assert.ok(out >= 2 * N && inn >= 2 * N, `implausibly few records: ${out} / ${inn}`);
});

for (const fastOpen of [true, false]) {
  test(
    `fast_open: ${fastOpen}: the SOCKS reply ${
      fastOpen ? "comes at once" : "waits a round trip"
    } over a 300 ms path`,
    async () => {
      await using echo = startEchoServer();
      await using pair = await startPair({
        transport: "tcp",
        fastOpen,
        via: (s) => startFaultRelay({ port: s.port }, [{ kind: "delay", dir: "down", ms: 300 }]),
      });
      await pair.client!.tunnel();
      const t0 = performance.now();
      const conn = await socksConnect(pair.socksPort, "127.0.0.1", echo.port);
      const replyMs = performance.now() - t0;
      try {
        await conn.write(new TextEncoder().encode("ping"));
        assert.equal(new TextDecoder().decode(await readExact(conn, 4)), "ping");
      } finally {
        conn.close();
      }
      const totalMs = performance.now() - t0;
      if (fastOpen) {
        // No server→client byte could have arrived yet: the reply was local.
        assert.ok(replyMs < 300, `reply after ${replyMs.toFixed(0)} ms`);
        assert.ok(totalMs >= 300 && totalMs < 600, `exchange took ${totalMs.toFixed(0)} ms`);
      } else {
        assert.ok(replyMs >= 300, `reply after ${replyMs.toFixed(0)} ms`);
        assert.ok(totalMs >= 600, `exchange took ${totalMs.toFixed(0)} ms`);
      }
    },
  );
}
