/**
 * What the resend buffer costs: downloads one file with curl through a
 * NitroSocks server and client (separate processes of this checkout,
 * transport tcp, throwaway keys, loopback, no faults) for each
 * `session.resend_buffer` size, set alike on both sides, and prints the
 * median throughput next to a direct download. The sender may have no more
 * unacknowledged data in flight than its resend buffer, so a small buffer
 * caps throughput at about buffer ÷ round trip.
 *
 * Usage (RESEND_DEBUG=1 shows the server and client logs):
 *   deno run --allow-run --allow-read --allow-write --allow-net --allow-env=RESEND_DEBUG \
 *     bench/resend_buffer.ts \
 *     [--bytes 268435456] [--runs 3] [--sizes 256KiB,1MiB,8MiB,64MiB] [--deadline 300] [--json]
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort, provision, spawnPair, spawnTarget, stop, waitPort } from "./_procs.ts";

/** An HTTP target serving `GET /N` as N bytes (a repeated 1 MiB block), in its own process. */
const TARGET_SRC = `
const block = new Uint8Array(1 << 20).map((_, i) => (i * 7 + 3) & 0xff);
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: (a) => console.log(a.port) }, (req) => {
  const n = Number(new URL(req.url).pathname.slice(1));
  let left = n;
  const body = new ReadableStream({
    pull(c) {
      if (left <= 0) return c.close();
      const k = Math.min(left, block.length);
      c.enqueue(k === block.length ? block : block.subarray(0, k));
      left -= k;
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: { "content-length": String(n) } });
});`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One curl download; returns MB/s (10^6 bytes per second). */
async function curl(url: string, socks: number | undefined, bytes: number, deadline: number) {
  const maxS = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
  const proxy = socks === undefined ? [] : ["--socks5-hostname", `127.0.0.1:${socks}`];
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--max-time",
      String(maxS),
      ...proxy,
      "-o",
      "/dev/null",
      "-w",
      "%{size_download} %{time_total}",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const [size, secs] = new TextDecoder().decode(out.stdout).split(" ").map(Number);
  if (out.code !== 0 || size !== bytes) {
    throw new Error(
      `curl exit ${out.code}, ${size} bytes: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return bytes / secs! / 1e6;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      bytes: { type: "string", default: String(256 * 1024 * 1024) },
      runs: { type: "string", default: "3" },
      sizes: { type: "string", default: "256KiB,1MiB,8MiB,64MiB" },
      deadline: { type: "string", default: "300" },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const bytes = Number(values.bytes);
  const runs = Number(values.runs);
  const sizes = values.sizes.split(",").map((s) => s.trim());
  const deadline = Date.now() + Number(values.deadline) * 1000;
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 2 ** 32) {
    throw new RangeError("--bytes is 1..4294967296");
  }
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new RangeError("--runs is 1..20");
  if (sizes.length < 1 || sizes.length > 8) throw new RangeError("--sizes lists 1..8 sizes");
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-resend-" });
  const procs: Deno.ChildProcess[] = [];
  const log = (s: string) => console.error(`resend_buffer: ${s}`);
  try {
    const debug = Deno.env.get("RESEND_DEBUG") === "1";
    const { child: target, port: tport } = await spawnTarget(TARGET_SRC);
    procs.push(target);
    const url = `http://127.0.0.1:${tport}/${bytes}`;
    const direct: number[] = [];
    for (let i = 0; i < runs; i++) direct.push(await curl(url, undefined, bytes, deadline));
    log(`direct ${median(direct).toFixed(0)} MB/s`);
    const rows: { resendBuffer: string; mbps: number[]; median: number }[] = [];
    for (const size of sizes) {
      const sport = freePort();
      const cport = freePort();
      const srv = join(dir, `srv-${size}`);
      const profile = join(dir, `bench-${size}.yml`);
      await provision(srv, profile, sport, debug);
      const yml = join(srv, "server.yml");
      const text = await Deno.readTextFile(yml);
      await Deno.writeTextFile(yml, text.replace(/^transport: tls$/m, "transport: tcp"));
      const session = `\nsession:\n  resend_buffer: ${JSON.stringify(size)}\n`;
      await Deno.writeTextFile(yml, session, { append: true });
      const ptext = await Deno.readTextFile(profile);
      await Deno.writeTextFile(profile, ptext.replace(/^transport: tls$/m, "transport: tcp"));
      await Deno.writeTextFile(profile, session, { append: true });
      const { server, client } = spawnPair(yml, profile, cport, debug);
      try {
        await waitPort(sport, deadline);
        await waitPort(cport, deadline);
        await curl(`http://127.0.0.1:${tport}/${1 << 20}`, cport, 1 << 20, deadline); // warm up
        const mbps: number[] = [];
        for (let i = 0; i < runs; i++) mbps.push(await curl(url, cport, bytes, deadline));
        rows.push({ resendBuffer: size, mbps, median: median(mbps) });
        log(`resend_buffer ${size}: ${mbps.map((x) => x.toFixed(0)).join(", ")} MB/s`);
      } finally {
        await stop(client);
        await stop(server);
      }
    }
    if (values.json) {
      console.log(JSON.stringify({ bytes, runs, direct: median(direct), rows }, null, 2));
    } else {
      console.log(`${bytes} bytes, median of ${runs}, transport tcp, no faults (MB/s = 10^6 B/s)`);
      console.log(`direct (no tunnel)     ${median(direct).toFixed(0).padStart(6)} MB/s`);
      for (const r of rows) {
        console.log(
          `resend_buffer ${r.resendBuffer.padEnd(8)} ${r.median.toFixed(0).padStart(6)} MB/s`,
        );
      }
    }
    return 0;
  } finally {
    for (const p of procs.reverse()) await stop(p);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main());
