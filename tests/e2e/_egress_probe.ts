/**
 * Run by egress_test.ts with `--allow-net` limited to loopback, so that a
 * regression that dials a private or metadata address fails here on the
 * permission (a `dial` refusal, which the test rejects) instead of sending
 * a packet off the machine. Starts a pair whose user may go anywhere
 * (`*`), asks for each HOST:PORT argument through the client's SOCKS5 port
 * (fast open off) and prints, as JSON, each SOCKS5 reply code and the
 * streams the server refused (`[target, reply, cause]`).
 *
 * @module
 */
import { socksHandshake } from "../support/socks_client.ts";
import { startPair } from "./_harness.ts";

async function main(): Promise<void> {
  await using pair = await startPair({ routes: ["*"], fastOpen: false });
  const replies: Record<string, number> = {};
  for (const arg of Deno.args) {
    const i = arg.lastIndexOf(":");
    const host = arg.slice(0, i).replace(/^\[(.*)\]$/, "$1");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
    try {
      const { reply } = await socksHandshake(conn, host, Number(arg.slice(i + 1)), {
        allowFailure: true,
      });
      replies[arg] = reply;
    } finally {
      conn.close();
    }
  }
  const refused = pair.serverEvents.of("stream_refused").map((e) => [e.target, e.reply, e.cause]);
  console.log(JSON.stringify({ replies, refused }));
}

if (import.meta.main) await main();
