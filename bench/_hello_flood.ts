/**
 * The Hello flood of `hostile_load.ts`, run as its own process: sends
 * plausible Hellos (real ones, made by the client's handshake for the
 * server's public key, each on a new TCP connection) as fast as it can for
 * a while and prints one JSON line: how many it sent and what came back (a
 * ServerHello: the server did its full share of a handshake; a cookie
 * reply; nothing). It never answers a ServerHello and never retries with a
 * cookie: it is an attacker that knows the server's key, not a client.
 *
 * Usage: deno run --allow-net --allow-read bench/_hello_flood.ts PORT PROFILE SECONDS [CONCURRENCY]
 *
 * @module
 */
import { loadClientConfig } from "../lib/config/mod.ts";
import { ClientHandshake } from "../lib/handshake/mod.ts";
import { credentialsOf } from "../lib/tunnel/link.ts";

/** A ServerHello is at least this long; a cookie reply is shorter. */
const SERVER_HELLO_MIN = 159;
/**
 * Hellos made before the flood starts (each used once: a Hello's nonce is single-use);
 * `HELLO_FLOOD_POOL` in the environment changes it.
 */
const POOL = Number(Deno.env.get("HELLO_FLOOD_POOL") ?? 6000);

async function main(): Promise<void> {
  const [portArg, profilePath, secondsArg, concArg] = Deno.args;
  const port = Number(portArg);
  const profile = await loadClientConfig(profilePath!);
  const credentials = await credentialsOf(profile);
  const hellos: Uint8Array[] = [];
  for (let i = 0; i < POOL; i++) {
    hellos.push(
      new ClientHandshake({ serverPublicKey: profile.serverKey, credentials, now: Date.now })
        .hello(),
    );
  }
  console.error(`hello_flood: ${POOL} Hellos made; flooding`);
  const until = performance.now() + Number(secondsArg) * 1000;
  const counts = { sent: 0, serverHello: 0, short: 0, nothing: 0, failed: 0 };
  let next = 0;
  const worker = async () => {
    const buf = new Uint8Array(4096);
    while (performance.now() < until && next < hellos.length) {
      const hello = hellos[next++]!;
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          await c.write(hello);
          counts.sent++;
          let got = 0;
          while (got < SERVER_HELLO_MIN) {
            const n = await c.read(buf);
            if (n === null) break;
            got += n;
          }
          if (got >= SERVER_HELLO_MIN) counts.serverHello++;
          else if (got > 0) counts.short++;
          else counts.nothing++;
        } finally {
          c.close();
        }
      } catch {
        counts.failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Number(concArg ?? 32) }, worker));
  console.log(JSON.stringify(counts));
}

if (import.meta.main) await main();
