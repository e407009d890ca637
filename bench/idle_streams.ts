/**
 * Memory per idle stream: starts a NitroSocks server and client as separate
 * processes of this checkout (throwaway keys, loopback, TLS), opens N
 * streams through ONE tunnel to a local echo target (its own process),
 * checks every stream carries a byte each way, holds them, and reads the
 * resident memory (VmRSS) of both processes before and after. Bounded:
 * N ≤ 10 000 (fd limit permitting) and a deadline for the whole run.
 *
 * Usage (reading another process's /proc/PID/status needs -A in Deno 2):
 *   deno run -A bench/idle_streams.ts [--streams 10000] [--deadline 180] [--json]
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  ECHO_TARGET_SRC,
  freePort,
  provision,
  readFull,
  rssKiB,
  socksOpen,
  spawnPair,
  spawnTarget,
  stop,
  waitPort,
} from "./_procs.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      streams: { type: "string", default: "10000" },
      deadline: { type: "string", default: "180" },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const n = Number(values.streams);
  const deadline = Date.now() + Number(values.deadline) * 1000;
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new RangeError("--streams is 1..10000");
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-idle-" });
  const procs: Deno.ChildProcess[] = [];
  const conns: Deno.TcpConn[] = [];
  const log = (s: string) => console.error(`idle_streams: ${s}`);
  try {
    const sport = freePort();
    const cport = freePort();
    const debug = Deno.env.get("IDLE_DEBUG") === "1";
    const profile = join(dir, "bench.yml");
    await provision(join(dir, "srv"), profile, sport, debug);
    const yml = join(dir, "srv", "server.yml");
    const text = await Deno.readTextFile(yml);
    await Deno.writeTextFile(
      yml,
      text.replace(/max_streams_per_tunnel: \d+/, `max_streams_per_tunnel: ${n + 64}`),
    );
    await Deno.writeTextFile(profile, `limits:\n  max_streams: ${n + 64}\n`, { append: true });

    const { child: target, port: tport } = await spawnTarget(ECHO_TARGET_SRC);
    procs.push(target);
    const { server, client } = spawnPair(yml, profile, cport, debug);
    procs.push(server, client);
    await waitPort(sport, deadline);
    await waitPort(cport, deadline);
    // Warm up: the tunnel and the code paths, then the baseline.
    for (let i = 0; i < 16; i++) (await socksOpen(cport, tport)).close();
    await new Promise((r) => setTimeout(r, 1000));
    const base = { server: rssKiB(server.pid), client: rssKiB(client.pid) };
    log(`baseline RSS server ${base.server} KiB, client ${base.client} KiB; opening ${n} streams`);
    const t0 = performance.now();
    let failed = 0;
    let next = 0;
    const worker = async () => {
      while (next < n && Date.now() < deadline) {
        next++;
        try {
          conns.push(await socksOpen(cport, tport));
        } catch {
          failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const openS = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 3000));
    const held = { server: rssKiB(server.pid), client: rssKiB(client.pid) };
    // Every held stream still works: one byte each way.
    let dead = 0;
    const b = new Uint8Array(1);
    for (let i = 0; i < conns.length && Date.now() < deadline; i += 256) {
      await Promise.all(
        conns.slice(i, i + 256).map(async (c) => {
          try {
            await c.write(new Uint8Array([7]));
            await readFull(c, b);
          } catch {
            dead++;
          }
        }),
      );
    }
    const per = (k: "server" | "client") => (held[k] - base[k]) * 1024 / Math.max(1, conns.length);
    const result = {
      streams: conns.length,
      failedOpens: failed,
      deadAfterHold: dead,
      openSeconds: Math.round(openS * 100) / 100,
      rssKiB: { baseline: base, held },
      bytesPerIdleStream: {
        server: Math.round(per("server")),
        client: Math.round(per("client")),
      },
    };
    if (values.json) console.log(JSON.stringify(result, null, 2));
    else {
      console.log(
        `${result.streams} streams held on one tunnel (${failed} failed to open, ${dead} dead after holding), ` +
          `opened in ${result.openSeconds} s`,
      );
      console.log(
        `RSS server ${base.server} -> ${held.server} KiB, client ${base.client} -> ${held.client} KiB`,
      );
      console.log(
        `per idle stream: server ${(per("server") / 1024).toFixed(1)} KiB, client ${
          (per("client") / 1024).toFixed(1)
        } KiB`,
      );
    }
    return failed === 0 && dead === 0 ? 0 : 1;
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    for (const p of procs.reverse()) await stop(p);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main());
