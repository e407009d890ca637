/**
 * UDP through the tunnel, alone and beside a bulk TCP download on the same
 * tunnel: starts a NitroSocks server and client as separate processes of
 * this checkout (throwaway keys, loopback, TLS), a UDP echo target and a TCP
 * source that sends without end (their own processes), then for each phase
 * keeps `--window` datagrams of `--size` bytes in flight through one SOCKS5
 * UDP ASSOCIATE for `--seconds`, and reports datagrams echoed per second,
 * loss (sent but not echoed within 2 s), round-trip time, and
 * the TCP download's rate. Measured, not asserted.
 *
 * Usage:
 *   deno run -A bench/udp_under_load.ts [--seconds 10] [--window 32] [--size 1200] [--json]
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort, provision, spawnPair, spawnTarget, stop, waitPort } from "./_procs.ts";
import { socksAssociate, socksConnect } from "./_socks.ts";

const UDP_ECHO_SRC = `
const c = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
console.log(c.addr.port);
for (;;) { const [d, a] = await c.receive(); c.send(d, a).catch(() => {}); }`;

const TCP_SOURCE_SRC = `
const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(l.addr.port);
const chunk = new Uint8Array(256 * 1024);
for await (const c of l) {
  (async () => { try { for (;;) await c.write(chunk); } catch {} try { c.close(); } catch {} })();
}`;

interface Phase {
  sent: number;
  echoed: number;
  perSecond: number;
  lossPct: number;
  rttMsP50: number;
  rttMsP99: number;
  tcpMbitPerSecond: number;
}

async function udpPhase(
  socksPort: number,
  echoPort: number,
  opts: { seconds: number; window: number; size: number },
  bulk: { bytes: number } | undefined,
): Promise<Phase> {
  const { control, relay } = await socksAssociate(socksPort);
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const header = Uint8Array.of(0, 0, 0, 1, 127, 0, 0, 1, echoPort >> 8, echoPort & 0xff);
  const packet = new Uint8Array(header.length + opts.size);
  packet.set(header);
  const sentAt = new Map<number, number>();
  const rtts: number[] = [];
  let sent = 0;
  let echoed = 0;
  let seq = 0;
  let stopSending = false;
  let wake: (() => void) | undefined;
  const view = new DataView(packet.buffer);
  const sendOne = () => {
    const n = seq++;
    view.setUint32(header.length, n);
    sentAt.set(n, performance.now());
    sent++;
    // A copy: the send is asynchronous, and the next one rewrites the sequence number.
    app.send(packet.slice(), relay).catch(() => {});
  };
  const receiving = (async () => {
    for (;;) {
      const [d] = await app.receive();
      const n = new DataView(d.buffer, d.byteOffset).getUint32(header.length);
      const t = sentAt.get(n);
      if (t === undefined) continue;
      sentAt.delete(n);
      echoed++;
      rtts.push(performance.now() - t);
      if (!stopSending) sendOne();
      wake?.();
    }
  })().catch(() => {});
  const bytesBefore = bulk?.bytes ?? 0;
  const t0 = performance.now();
  for (let i = 0; i < opts.window; i++) sendOne();
  // Lost datagrams would shrink the window for good: every 50 ms, one unanswered for 2 s is
  // counted lost and replaced.
  while (performance.now() - t0 < opts.seconds * 1000) {
    await new Promise((r) => setTimeout(r, 50));
    const now = performance.now();
    for (const [n, t] of sentAt) {
      if (now - t > 2000) {
        sentAt.delete(n); // counted as lost (a late echo is ignored); its slot goes to a new one
        sendOne();
      }
    }
  }
  stopSending = true;
  const elapsed = (performance.now() - t0) / 1000;
  const tcpBytes = (bulk?.bytes ?? 0) - bytesBefore;
  await new Promise((r) => setTimeout(r, 2000));
  app.close();
  control.close();
  await receiving;
  rtts.sort((a, b) => a - b);
  return {
    sent,
    echoed,
    perSecond: Math.round(echoed / elapsed),
    lossPct: Number((100 * (sent - echoed) / sent).toFixed(3)),
    rttMsP50: Number((rtts[Math.floor(rtts.length / 2)] ?? NaN).toFixed(2)),
    rttMsP99: Number((rtts[Math.floor(rtts.length * 0.99)] ?? NaN).toFixed(2)),
    tcpMbitPerSecond: Number((tcpBytes * 8 / elapsed / 1e6).toFixed(1)),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "10" },
      window: { type: "string", default: "32" },
      size: { type: "string", default: "1200" },
      json: { type: "boolean", default: false },
      debug: { type: "boolean", default: false },
    },
  });
  const opts = {
    seconds: Number(values.seconds),
    window: Number(values.window),
    size: Number(values.size),
  };
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-udp-bench-" });
  const sport = freePort();
  const cport = freePort();
  await provision(join(dir, "srv"), join(dir, "bench.yml"), sport, values.debug);
  const { server, client } = spawnPair(
    join(dir, "srv", "server.yml"),
    join(dir, "bench.yml"),
    cport,
    values.debug,
  );
  const echo = new Deno.Command("deno", {
    args: ["eval", "--unstable-net", UDP_ECHO_SRC],
    stdout: "piped",
  }).spawn();
  const reader = echo.stdout.getReader();
  const echoPort = Number(new TextDecoder().decode((await reader.read()).value).trim());
  reader.releaseLock();
  const source = await spawnTarget(TCP_SOURCE_SRC);
  try {
    await waitPort(cport, Date.now() + 30_000);
    await waitPort(sport, Date.now() + 30_000);
    // The client's first session may still be connecting: one association tried until it works.
    for (let i = 0;; i++) {
      try {
        (await socksAssociate(cport)).control.close();
        break;
      } catch (e) {
        if (i === 50) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const alone = await udpPhase(cport, echoPort, opts, undefined);
    // The bulk download runs through the same tunnel (one session) during the second phase.
    const tcp = await socksConnect(cport, source.port);
    const bulk = { bytes: 0 };
    let running = true;
    const draining = (async () => {
      const buf = new Uint8Array(256 * 1024);
      while (running) {
        const n = await tcp.read(buf);
        if (n === null) break;
        bulk.bytes += n;
      }
    })().catch(() => {});
    await new Promise((r) => setTimeout(r, 1000)); // let the download reach its pace
    const loaded = await udpPhase(cport, echoPort, opts, bulk);
    running = false;
    tcp.close();
    await draining;
    const result = { ...opts, alone, underBulkTcp: loaded };
    if (values.json) console.log(JSON.stringify(result));
    else {
      console.log(
        `UDP through the tunnel, ${opts.window} datagrams of ${opts.size} bytes in flight:`,
      );
      for (const [name, p] of [["alone", alone], ["beside a bulk TCP download", loaded]] as const) {
        console.log(
          `  ${name}: ${p.perSecond} datagrams/s echoed, loss ${p.lossPct} % (${
            p.sent - p.echoed
          } of ${p.sent}), RTT p50 ${p.rttMsP50} ms p99 ${p.rttMsP99} ms` +
            (name === "alone" ? "" : `, TCP ${p.tcpMbitPerSecond} Mbit/s`),
        );
      }
    }
  } finally {
    try {
      echo.kill("SIGKILL");
    } catch {
      // exited
    }
    await echo.status;
    await stop(source.child);
    await stop(client);
    await stop(server);
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
