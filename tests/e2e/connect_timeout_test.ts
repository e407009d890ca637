/**
 * server.yml's `limits.connect_timeout` end to end: the server's egress
 * resolver (`egress.resolver`) is a real dnsmasq behind a UDP relay that
 * holds every answer for a while, so reaching a name takes that long. A
 * stream whose server gives up sooner is refused (SOCKS5 reply 4, host
 * unreachable, as CONFIG.md says); with a longer timeout the same request
 * reaches the target.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { startEchoServer, startPair } from "./_harness.ts";
import { socksReplyFor } from "../support/socks_client.ts";
import { test, waitFor } from "../support/deadline.ts";
import { startDnsmasq } from "./_dnsmasq.ts";

/** How long the relay holds each DNS answer. */
const DELAY_MS = 2_500;

/** A UDP relay in front of a DNS server on 127.0.0.1 that holds each answer for `delayMs`. */
interface SlowResolver extends AsyncDisposable {
  port: number;
  /** Answers sent back so far. */
  answered(): number;
  /** Queries received so far. */
  asked(): number;
}

function startSlowResolver(upstreamPort: number, delayMs: number): SlowResolver {
  const front = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const back = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const upstream: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: upstreamPort };
  // DNS message ID (its first two bytes) → who asked.
  const askers = new Map<number, Deno.Addr>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let asked = 0;
  let answered = 0;
  const forward = (async () => {
    for await (const [msg, from] of front) {
      if (msg.length < 2) continue;
      asked++;
      askers.set((msg[0]! << 8) | msg[1]!, from);
      await back.send(msg, upstream);
    }
  })().catch(() => {});
  const answer = (async () => {
    for await (const [msg] of back) {
      if (msg.length < 2) continue;
      const to = askers.get((msg[0]! << 8) | msg[1]!);
      if (to === undefined) continue;
      const timer = setTimeout(() => {
        timers.delete(timer);
        front.send(msg, to).then(() => answered++, () => {});
      }, delayMs);
      timers.add(timer);
    }
  })().catch(() => {});
  return {
    port: (front.addr as Deno.NetAddr).port,
    answered: () => answered,
    asked: () => asked,
    async [Symbol.asyncDispose]() {
      for (const t of timers) clearTimeout(t);
      front.close();
      back.close();
      await Promise.all([forward, answer]);
    },
  };
}

test("limits.connect_timeout: a name slower to resolve than it is refused (reply 4); a longer timeout reaches it", async () => {
  await using echo = startEchoServer();
  await using dns = await startDnsmasq({ "slow.test": ["127.0.0.1"] });
  await using slow = startSlowResolver(dns.port, DELAY_MS);
  const serverYaml = `egress:\n  resolver: "127.0.0.1:${slow.port}"`;
  {
    await using pair = await startPair({
      fastOpen: false,
      serverYaml,
      serverLimits: { connect_timeout: "1s" },
    });
    assert.equal(await socksReplyFor(pair.socksPort, "slow.test", echo.port), 4);
    const [refused] = pair.serverEvents.of("stream_refused");
    assert.match(
      refused?.reason ?? "",
      /dial slow\.test:\d+ failed: .*Timed out resolving slow\.test/,
    );
    assert.equal(slow.answered(), 0, "refused before the resolver answered");
  }
  {
    await using pair = await startPair({
      fastOpen: false,
      serverYaml,
      serverLimits: { connect_timeout: "10s" },
    });
    assert.equal(await socksReplyFor(pair.socksPort, "slow.test", echo.port), 0);
    assert.equal(pair.serverEvents.of("stream_refused").length, 0);
  }
  // Every held answer has gone out, so no lookup of the server's is left waiting.
  await waitFor("the relay's held answers", () => slow.answered() >= slow.asked(), 10_000);
});
