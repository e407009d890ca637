/**
 * A soak of mixed traffic with the resident memory of both processes
 * sampled every minute: starts a NitroSocks server and client as separate
 * processes of this checkout (throwaway keys, loopback, TLS), a TCP target
 * that sends as many bytes as asked, and a UDP echo target (their own
 * processes), then for `--minutes` runs, every second: short requests (a new
 * stream each, 1 KB back), every 5 s a 4 MiB download, every 2 s a burst of
 * UDP datagrams through one SOCKS5 UDP ASSOCIATE, and keeps a pool of idle
 * streams open, replacing a few of them every 10 s. Prints one line a
 * minute (RSS of each process, work done, failures) and, at the end, the
 * least-squares slope of each process's RSS over the second half of the run
 * (KiB per minute): a leak shows as a steady positive slope. Measured, not
 * asserted. Every loop is bounded by the run's end; every request has a 10 s
 * deadline.
 *
 * Usage:
 *   deno run -A bench/soak.ts [--minutes 30] [--requests 10] [--idle 50] [--json]
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort, provision, rssKiB, spawnPair, spawnTarget, stop, waitPort } from "./_procs.ts";
import { socksAssociate, socksConnect } from "./_socks.ts";

/** Reads a 4-byte length, sends that many bytes, closes. */
const TCP_TARGET_SRC = `
const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(l.addr.port);
const chunk = new Uint8Array(64 * 1024);
for await (const c of l) {
  (async () => {
    try {
      const h = new Uint8Array(4); let o = 0;
      while (o < 4) { const k = await c.read(h.subarray(o)); if (k === null) throw 0; o += k; }
      let n = new DataView(h.buffer).getUint32(0);
      while (n > 0) { const k = Math.min(n, chunk.length); await c.write(chunk.subarray(0, k)); n -= k; }
    } catch {}
    try { c.close(); } catch {}
  })();
}`;

const UDP_ECHO_SRC = `
const c = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
console.log(c.addr.port);
for (;;) { const [d, a] = await c.receive(); c.send(d, a).catch(() => {}); }`;

const REQUEST_DEADLINE_MS = 10_000;

/** Counters for one minute. */
interface Work {
  requests: number;
  downloads: number;
  datagramsSent: number;
  datagramsEchoed: number;
  idleReplaced: number;
  failures: number;
}

function newWork(): Work {
  return {
    requests: 0,
    downloads: 0,
    datagramsSent: 0,
    datagramsEchoed: 0,
    idleReplaced: 0,
    failures: 0,
  };
}

/** Runs `work` with a deadline; the connection it opened is closed on timeout. */
async function bounded<T>(work: (track: (c: Deno.Conn) => void) => Promise<T>): Promise<T> {
  let conn: Deno.Conn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work((c) => (conn = c)),
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => {
          try {
            conn?.close();
          } catch {
            // closed already
          }
          reject(new Error(`no answer within ${REQUEST_DEADLINE_MS} ms`));
        }, REQUEST_DEADLINE_MS)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One stream: ask the target for `bytes`, read them all, close. */
async function fetchBytes(socksPort: number, targetPort: number, bytes: number): Promise<void> {
  await bounded(async (track) => {
    const c = await socksConnect(socksPort, targetPort);
    track(c);
    try {
      const h = new Uint8Array(4);
      new DataView(h.buffer).setUint32(0, bytes);
      await c.write(h);
      const buf = new Uint8Array(64 * 1024);
      let got = 0;
      for (;;) {
        const k = await c.read(buf);
        if (k === null) break;
        got += k;
      }
      if (got !== bytes) throw new Error(`got ${got} of ${bytes} bytes`);
    } finally {
      try {
        c.close();
      } catch {
        // closed already
      }
    }
  });
}

/** A burst of `n` datagrams through one association; how many came back within 2 s. */
async function udpBurst(socksPort: number, echoPort: number, n: number): Promise<number> {
  const { control, relay } = await socksAssociate(socksPort);
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const header = Uint8Array.of(0, 0, 0, 1, 127, 0, 0, 1, echoPort >> 8, echoPort & 0xff);
  let echoed = 0;
  const receiving = (async () => {
    while (echoed < n) {
      await app.receive();
      echoed++;
    }
  })().catch(() => {});
  for (let i = 0; i < n; i++) {
    const p = new Uint8Array(header.length + 512);
    p.set(header);
    p[header.length] = i;
    await app.send(p, relay).catch(() => {});
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([receiving, new Promise((r) => (timer = setTimeout(r, 2000)))]);
  clearTimeout(timer);
  app.close();
  control.close();
  await receiving;
  return echoed;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return num / den;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      minutes: { type: "string", default: "30" },
      requests: { type: "string", default: "10" },
      idle: { type: "string", default: "50" },
      json: { type: "boolean", default: false },
      debug: { type: "boolean", default: false },
    },
  });
  const minutes = Number(values.minutes), perSecond = Number(values.requests);
  const idleCount = Number(values.idle);
  if (!(minutes > 0 && minutes <= 120)) throw new Error("--minutes must be 1…120");
  if (!(perSecond >= 0 && perSecond <= 200)) throw new Error("--requests must be 0…200");
  if (!(idleCount >= 0 && idleCount <= 2000)) throw new Error("--idle must be 0…2000");

  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-soak-" });
  const sport = freePort(), cport = freePort();
  await provision(join(dir, "srv"), join(dir, "bench.yml"), sport, values.debug);
  const { server, client } = spawnPair(
    join(dir, "srv", "server.yml"),
    join(dir, "bench.yml"),
    cport,
    values.debug,
  );
  const tcp = await spawnTarget(TCP_TARGET_SRC);
  const udp = await spawnTarget(UDP_ECHO_SRC);
  const idle: Deno.Conn[] = [];
  const samples: { minute: number; server: number; client: number; work: Work }[] = [];
  try {
    await waitPort(sport, Date.now() + 30_000);
    await waitPort(cport, Date.now() + 30_000);
    await fetchBytes(cport, tcp.port, 1000); // the tunnel is up
    const openIdle = async () => {
      const c = await socksConnect(cport, tcp.port);
      idle.push(c);
    };
    for (let i = 0; i < idleCount; i++) await openIdle();
    console.error(
      `soak: ${minutes} min; server pid ${server.pid}, client pid ${client.pid}; ` +
        `start RSS server ${rssKiB(server.pid)} KiB, client ${rssKiB(client.pid)} KiB`,
    );
    const t0 = Date.now(), end = t0 + minutes * 60_000;
    let work = newWork();
    let nextSample = t0 + 60_000;
    const pending = new Set<Promise<unknown>>();
    const track = (p: Promise<unknown>, ok: () => void) => {
      const q = p.then(ok, () => work.failures++).finally(() => pending.delete(q));
      pending.add(q);
    };
    for (let second = 0; Date.now() < end; second++) {
      const tick = Date.now();
      for (let i = 0; i < perSecond; i++) {
        const w = work;
        track(fetchBytes(cport, tcp.port, 1000), () => w.requests++);
      }
      if (second % 5 === 0) {
        const w = work;
        track(fetchBytes(cport, tcp.port, 4 << 20), () => w.downloads++);
      }
      if (second % 2 === 0) {
        const w = work;
        w.datagramsSent += 20;
        track(udpBurst(cport, udp.port, 20).then((n) => (w.datagramsEchoed += n)), () => {});
      }
      if (second % 10 === 0 && idle.length > 0) {
        const w = work;
        for (const c of idle.splice(0, Math.min(5, idle.length))) c.close();
        for (let i = 0; i < 5 && idle.length < idleCount; i++) {
          track(openIdle(), () => w.idleReplaced++);
        }
      }
      if (Date.now() >= nextSample) {
        const sample = {
          minute: Math.round((Date.now() - t0) / 60_000),
          server: rssKiB(server.pid),
          client: rssKiB(client.pid),
          work,
        };
        samples.push(sample);
        console.error(
          `minute ${sample.minute}: RSS server ${sample.server} KiB, client ${sample.client} KiB; ` +
            `${work.requests} requests, ${work.downloads} downloads, ` +
            `${work.datagramsEchoed}/${work.datagramsSent} datagrams, ` +
            `${work.idleReplaced} idle streams replaced, ${work.failures} failures`,
        );
        work = newWork();
        nextSample += 60_000;
      }
      // Pending work is bounded: never more than a few seconds' worth in flight.
      while (pending.size > perSecond * 5 + 10) await Promise.race(pending);
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - tick))));
    }
    await Promise.allSettled([...pending]);
  } finally {
    for (const c of idle) {
      try {
        c.close();
      } catch {
        // closed already
      }
    }
    await Promise.all([stop(client), stop(server), stop(tcp.child), stop(udp.child)]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const half = samples.slice(Math.floor(samples.length / 2));
  const result = {
    minutes,
    samples: samples.map(({ minute, server, client }) => ({ minute, server, client })),
    failures: samples.reduce((a, s) => a + s.work.failures, 0),
    requests: samples.reduce((a, s) => a + s.work.requests, 0),
    downloads: samples.reduce((a, s) => a + s.work.downloads, 0),
    datagrams: samples.reduce((a, s) => a + s.work.datagramsEchoed, 0),
    slopeKiBPerMinute: {
      server: slope(half.map((s) => s.minute), half.map((s) => s.server)),
      client: slope(half.map((s) => s.minute), half.map((s) => s.client)),
    },
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `soak ${minutes} min: ${result.requests} requests, ${result.downloads} downloads of 4 MiB, ` +
        `${result.datagrams} datagrams echoed, ${result.failures} failures`,
    );
    console.log(
      `RSS slope over the second half: server ${result.slopeKiBPerMinute.server.toFixed(1)} ` +
        `KiB/min, client ${result.slopeKiBPerMinute.client.toFixed(1)} KiB/min`,
    );
  }
}

if (import.meta.main) await main();
