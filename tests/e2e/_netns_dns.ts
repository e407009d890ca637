/**
 * Run by errors_test.ts inside a fresh network namespace (`unshare -n`,
 * loopback only), so a lookup or a dial that would leave the machine fails
 * locally instead of reaching a real resolver or network. Starts a pair
 * whose user may go anywhere and prints, as JSON, the SOCKS5 reply code for
 * each destination given as HOST:PORT arguments, and the streams the server
 * refused (`[target, reply, reason]`).
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
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
    try {
      const { reply } = await socksHandshake(conn, arg.slice(0, i), Number(arg.slice(i + 1)), {
        allowFailure: true,
      });
      replies[arg] = reply;
    } finally {
      conn.close();
    }
  }
  const refused = pair.serverEvents.of("stream_refused").map((e) => [e.target, e.reply, e.reason]);
  console.log(JSON.stringify({ replies, refused }));
}

if (import.meta.main) await main();
