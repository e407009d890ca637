/**
 * Hostile load, measured (docs/PERFORMANCE.md, "Hostile load"): a NitroSocks
 * server and client as separate processes of this checkout (throwaway keys,
 * loopback, `transport: tcp` so the figures are NitroSocks' own and not the
 * TLS library's), an echo target, then:
 *
 * 1. memory: `--idle` idle TCP connections to the server (they never send a
 *    byte: pre-login) and as many to the client's SOCKS5 port (a SOCKS5
 *    greeting never sent); RSS growth per connection on each side, 3 s
 *    after the last one opened;
 * 2. latency: `--requests` requests (a SOCKS5 CONNECT through the tunnel and
 *    one byte echoed) one after another, idle; then requests one after
 *    another for as long as a Hello flood (`_hello_flood.ts`, its own process,
 *    real Hellos as fast as it can) lasts, while `--slowloris` connections
 *    dribble a byte a second: p50 and p99;
 * 3. CPU: the server's CPU time (user + system) during the flood divided by
 *    the Hellos sent.
 *
 * Every connection comes from 127.0.0.1, the legitimate client's address
 * too, so the per-source caps (`limits.per_ip`, `limits.pre_login.per_ip`)
 * are raised out of the way; `limits.pre_login.max` stays in force (set to
 * `--idle` + 1000 for phase 1). Measured, not asserted.
 *
 * Usage:
 *   deno run -A bench/hostile_load.ts [--idle 5000] [--requests 200] [--slowloris 2000]
 *     [--flood-seconds 15] [--cookie-after 64] [--min-age 5s] [--json]
 *
 * `--cookie-after` is server.yml's `limits.cookie_after` (default as `init` writes it): `0`
 * answers every Hello without a cookie with a cookie reply, `1000000` never does. `--min-age` is
 * `limits.pre_login.min_age` (default as `init` writes it): `0s` evicts the oldest for every
 * newcomer at `limits.pre_login.max`, as before that key existed.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  cpuSeconds,
  ECHO_TARGET_SRC,
  freePort,
  provision,
  rssKiB,
  socksOpen,
  spawnPair,
  spawnTarget,
  stop,
  waitPort,
} from "./_procs.ts";

const ROOT = new URL("..", import.meta.url).pathname;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** `n` requests one after another: ms for each (open a stream, one byte echoed). */
async function requests(socks: number, target: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    (await socksOpen(socks, target)).close();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Opens `n` idle TCP connections to `port`, 64 at a time. */
async function openIdle(port: number, n: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  return conns;
}

/** What `_hello_flood.ts` reports. */
interface FloodCounts {
  sent: number;
  serverHello: number;
  short: number;
  nothing: number;
  failed: number;
}

/** Starts `_hello_flood.ts`; resolves once its Hellos are made and it floods. */
async function startFlood(
  port: number,
  profile: string,
  seconds: string,
): Promise<{ done(): Promise<FloodCounts> }> {
  const flood = new Deno.Command("deno", {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      join(ROOT, "bench", "_hello_flood.ts"),
      String(port),
      profile,
      seconds,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // It says on stderr when its Hellos are made and the flood starts.
  const err = flood.stderr.getReader();
  await err.read();
  err.releaseLock();
  flood.stderr.cancel().catch(() => {});
  return {
    async done() {
      const out = await flood.output();
      return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
    },
  };
}

/** `n` connections that each send one random byte a second until `stop()`. */
function slowloris(port: number, n: number): { stop(): Promise<number> } {
  let running = true;
  let reopened = 0;
  const one = async () => {
    while (running) {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          while (running) {
            await c.write(crypto.getRandomValues(new Uint8Array(1)));
            await sleep(1000);
          }
        } finally {
          c.close();
        }
      } catch {
        reopened++; // evicted or closed by the server: come back
        await sleep(100);
      }
    }
  };
  const all = Promise.all(Array.from({ length: n }, one));
  return {
    async stop() {
      running = false;
      await all;
      return reopened;
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      idle: { type: "string", default: "5000" },
      requests: { type: "string", default: "200" },
      slowloris: { type: "string", default: "2000" },
      "flood-seconds": { type: "string", default: "15" },
      "cookie-after": { type: "string", default: "64" },
      "min-age": { type: "string", default: "5s" },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const idle = Number(values.idle);
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-hostile-" });
  const procs: Deno.ChildProcess[] = [];
  const log = (s: string) => console.error(`hostile_load: ${s}`);
  try {
    const sport = freePort();
    const cport = freePort();
    const profile = join(dir, "bench.yml");
    await provision(join(dir, "srv"), profile, sport, false);
    const yml = join(dir, "srv", "server.yml");
    let text = (await Deno.readTextFile(yml)).replace(/^transport: tls$/m, "transport: tcp")
      .replace(/^ {4}connections: 64$/m, "    connections: 1000000")
      .replace(/^ {4}handshakes_per_second: 20$/m, "    handshakes_per_second: 1000000")
      .replace(/^ {4}max: 4096$/m, `    max: ${idle + 1000}`)
      .replace(/^ {4}per_ip: 32$/m, "    per_ip: 1000000");
    text = text.replace(/^ {2}cookie_after: \d+$/m, `  cookie_after: ${values["cookie-after"]}`)
      .replace(/^ {4}min_age: 5s$/m, `    min_age: ${values["min-age"]}`);
    await Deno.writeTextFile(yml, text);
    const prof = await Deno.readTextFile(profile);
    await Deno.writeTextFile(profile, prof.replace(/"tls:\/\//, '"tcp://'));

    const { child: target, port: tport } = await spawnTarget(ECHO_TARGET_SRC);
    procs.push(target);
    const { server, client } = spawnPair(yml, profile, cport, false);
    procs.push(server, client);
    const deadline = Date.now() + 60_000;
    await waitPort(sport, deadline);
    await waitPort(cport, deadline);
    await requests(cport, tport, 20); // warm up
    await sleep(1000);

    // 1. Memory per idle pre-login connection, each side.
    const base = { server: rssKiB(server.pid), client: rssKiB(client.pid) };
    const idleServer = await openIdle(sport, idle);
    const idleClient = await openIdle(cport, idle);
    await sleep(3000);
    const held = { server: rssKiB(server.pid), client: rssKiB(client.pid) };
    for (const c of [...idleServer, ...idleClient]) c.close();
    const memory = {
      connections: idle,
      serverKiBBaseline: base.server,
      serverKiBHeld: held.server,
      serverBytesPerConnection: Math.round((held.server - base.server) * 1024 / idle),
      clientKiBBaseline: base.client,
      clientKiBHeld: held.client,
      clientBytesPerConnection: Math.round((held.client - base.client) * 1024 / idle),
    };
    log(`memory: ${JSON.stringify(memory)}`);
    await sleep(2000);

    // 2. Latency idle, then under slowloris and a Hello flood; 3. CPU per flooded Hello.
    const n = Number(values.requests);
    const quiet = await requests(cport, tport, n);
    log(`idle p50 ${percentile(quiet, 50).toFixed(2)} ms p99 ${percentile(quiet, 99).toFixed(2)}`);
    const loris = slowloris(sport, Number(values.slowloris));
    await sleep(3000);
    const flood1 = await startFlood(sport, profile, values["flood-seconds"]!);
    // Requests for exactly as long as the flood lasts (at least 20).
    let flooding = true;
    const counts1P = flood1.done().finally(() => flooding = false);
    const loaded: number[] = [];
    while (flooding || loaded.length < 20) loaded.push(...await requests(cport, tport, 1));
    const counts1 = await counts1P;
    const reopened = await loris.stop();
    log(`under attack p50 ${percentile(loaded, 50).toFixed(2)} ms p99 ${percentile(loaded, 99)}`);
    await sleep(3000);

    // 3. CPU per flooded Hello: the flood alone.
    const flood2 = await startFlood(sport, profile, values["flood-seconds"]!);
    const cpu0 = cpuSeconds(server.pid);
    const t0 = performance.now();
    const counts = await flood2.done();
    const floodS = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(server.pid) - cpu0;
    const result = {
      cookieAfter: Number(values["cookie-after"]),
      minAge: values["min-age"],
      memory,
      latencyMs: {
        idleRequests: n,
        underAttackRequests: loaded.length,
        idle: { p50: round(percentile(quiet, 50)), p99: round(percentile(quiet, 99)) },
        underAttack: { p50: round(percentile(loaded, 50)), p99: round(percentile(loaded, 99)) },
      },
      attack: {
        slowloris: Number(values.slowloris),
        slowlorisReconnects: reopened,
        flood: counts1,
      },
      floodAlone: {
        ...counts,
        seconds: round(floodS, 1),
        hellosPerSecond: Math.round(counts.sent / floodS),
        serverCpuSeconds: round(cpu),
        serverCpuMsPerHello: round((cpu * 1000) / Math.max(1, counts.sent), 3),
      },
    };
    console.log(values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
  } finally {
    for (const p of procs) await stop(p);
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
