/**
 * A minimal SOCKS5 client for the process benchmarks (`udp_under_load.ts`,
 * `soak.ts`): CONNECT and UDP ASSOCIATE to 127.0.0.1, no authentication.
 *
 * @module
 */

/** Reads exactly `n` bytes from `c`; throws if it closes first. */
export async function readExact(c: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let o = 0;
  while (o < n) {
    const k = await c.read(out.subarray(o));
    if (k === null) throw new Error("closed during the SOCKS5 exchange");
    o += k;
  }
  return out;
}

/** A SOCKS5 CONNECT to 127.0.0.1:port. */
export async function socksConnect(socksPort: number, port: number): Promise<Deno.Conn> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port: socksPort });
  await c.write(Uint8Array.of(5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff));
  await readExact(c, 2);
  const r = await readExact(c, 10);
  if (r[1] !== 0) throw new Error(`CONNECT answered ${r[1]}`);
  return c;
}

/** A SOCKS5 UDP ASSOCIATE: the control connection and the relay's address. */
export async function socksAssociate(
  socksPort: number,
): Promise<{ control: Deno.Conn; relay: Deno.NetAddr }> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port: socksPort });
  await c.write(Uint8Array.of(5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0));
  await readExact(c, 2);
  const r = await readExact(c, 10);
  if (r[1] !== 0) throw new Error(`UDP ASSOCIATE answered ${r[1]}`);
  return {
    control: c,
    relay: { transport: "udp", hostname: r.subarray(4, 8).join("."), port: (r[8]! << 8) | r[9]! },
  };
}
