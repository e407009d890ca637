/**
 * A hand-made SOCKS5 UDP client (RFC 1928 section 7) for tests, written
 * independently of `lib/socks5`.
 *
 * Exports:
 * - `associate(socksPort, dst?)` → `{ control, relay }`: the UDP ASSOCIATE
 *   control connection (keep it open: the association ends with it) and the
 *   relay address to send datagrams to;
 * - `udpPacket(port, data, frag?, host?)` → a SOCKS5 UDP request header and
 *   `data` (an IPv4 literal `host` as ATYP 1, anything else as a name,
 *   ATYP 3; default 127.0.0.1);
 * - `receiveWithin(sock, ms)` → the next datagram, or null after `ms`.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { readExact } from "./socks_client.ts";

/** A hand-made SOCKS5 UDP client: the control connection and its relay address. */
export async function associate(
  socksPort: number,
  dst = Uint8Array.of(1, 0, 0, 0, 0, 0, 0),
): Promise<{ control: Deno.TcpConn; relay: Deno.NetAddr }> {
  const control = await Deno.connect({ hostname: "127.0.0.1", port: socksPort });
  await control.write(Uint8Array.of(5, 1, 0));
  assert.deepEqual(await readExact(control, 2), Uint8Array.of(5, 0));
  await control.write(Uint8Array.of(5, 3, 0, ...dst));
  const head = await readExact(control, 4);
  assert.equal(head[1], 0, `UDP ASSOCIATE answered ${head[1]}`);
  assert.equal(head[3], 1);
  const rest = await readExact(control, 6);
  const relay: Deno.NetAddr = {
    transport: "udp",
    hostname: rest.subarray(0, 4).join("."),
    port: (rest[4]! << 8) | rest[5]!,
  };
  return { control, relay };
}

/** RSV RSV FRAG ‖ ATYP DST.ADDR DST.PORT ‖ data (an IPv4 `host`, or a name). */
export function udpPacket(
  port: number,
  data: Uint8Array,
  frag = 0,
  host = "127.0.0.1",
): Uint8Array {
  const v4 = /^\d+\.\d+\.\d+\.\d+$/.test(host);
  const name = new TextEncoder().encode(host);
  const addr = v4 ? [1, ...host.split(".").map(Number)] : [3, name.length, ...name];
  return Uint8Array.of(0, 0, frag, ...addr, port >> 8, port & 0xff, ...data);
}

/** The next datagram on `sock`, or null when none comes within `ms`. */
export async function receiveWithin(
  sock: Deno.DatagramConn,
  ms: number,
): Promise<Uint8Array | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
  try {
    const got = await Promise.race([sock.receive().then(([d]) => d), late]);
    return got;
  } finally {
    clearTimeout(timer);
  }
}
