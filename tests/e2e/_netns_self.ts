/**
 * Run by egress_test.ts inside a fresh network namespace (`unshare -n`,
 * loopback only) without the `sys` permission: starts a pair whose server
 * listens on the wildcard `0.0.0.0` and whose user may go anywhere (`*`),
 * then gives the namespace's loopback one more address, `198.51.100.7` (an
 * address no default `egress.block` range holds, as a public address of
 * the server's would be), and asks through the tunnel for a TCP listener
 * and a UDP echo on it. Prints, as JSON, the SOCKS5 reply code of the TCP
 * request, how many connections the listener accepted, how many datagrams
 * the echo received and the server's refusals (`[target, cause]` of
 * streams, target and reason of the datagram).
 *
 * @module
 */
import { socksHandshake } from "../support/socks_client.ts";
import { associate, udpPacket } from "../support/socks_udp.ts";
import { serveConnections } from "../support/serve.ts";
import { startUdpEcho } from "../support/udp_echo.ts";
import { startPair } from "./_harness.ts";

/** The address added after the server started: this machine's, in no block range. */
const OWN = "198.51.100.7";

async function main(): Promise<void> {
  await using pair = await startPair({
    routes: ["*"],
    fastOpen: false,
    transport: "tcp",
    editServer: (t) => t.replace(/^listen: .*$/m, 'listen: "0.0.0.0:0"'),
  });
  const ip = await new Deno.Command("ip", { args: ["addr", "add", `${OWN}/32`, "dev", "lo"] })
    .output();
  if (!ip.success) throw new Error(`ip addr add: ${new TextDecoder().decode(ip.stderr)}`);
  const served = serveConnections(Deno.listen({ hostname: OWN, port: 0 }), (c) => {
    c.close();
    return Promise.resolve();
  });
  await using echo = startUdpEcho(OWN);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
  let reply: number;
  try {
    reply = (await socksHandshake(conn, OWN, served.port, { allowFailure: true })).reply;
  } finally {
    conn.close();
  }
  const app = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const { control, relay } = await associate(pair.socksPort);
  await app.send(udpPacket(echo.port, new TextEncoder().encode("to self"), 0, OWN), relay);
  const [refusedDatagram] = await pair.serverEvents.waitFor("udp_refused");
  control.close();
  app.close();
  const out = {
    reply,
    accepted: served.accepted,
    received: echo.received,
    refusedStreams: pair.serverEvents.of("stream_refused").map((e) => [e.target, e.cause]),
    refusedDatagrams: [refusedDatagram!.target, refusedDatagram!.reason],
  };
  await served.close();
  console.log(JSON.stringify(out));
}

if (import.meta.main) await main();
