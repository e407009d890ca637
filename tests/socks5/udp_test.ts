/**
 * The SOCKS5 UDP relay header (RFC 1928 section 7) and the address form the
 * DATAGRAM frame reuses.
 */
import { strict as assert } from "node:assert";
import {
  decodeUdpAddress,
  decodeUdpPacket,
  encodeUdpAddress,
  udpAddressLength,
} from "../../lib/socks5/mod.ts";

Deno.test("decodeUdpPacket() splits RSV FRAG address and data, as views", () => {
  const packet = Uint8Array.of(0, 0, 0, 1, 10, 0, 0, 1, 0, 53, 0xde, 0xad);
  const p = decodeUdpPacket(packet)!;
  assert.equal(p.frag, 0);
  assert.deepEqual(p.address, Uint8Array.of(1, 10, 0, 0, 1, 0, 53));
  assert.deepEqual(p.data, Uint8Array.of(0xde, 0xad));
  assert.equal(p.data.buffer, packet.buffer);
  assert.equal(decodeUdpPacket(Uint8Array.of(0, 0, 2, 1, 10, 0, 0, 1, 0, 53))!.frag, 2);
});

Deno.test("decodeUdpPacket() refuses short packets, RSV not zero and unknown address types", () => {
  for (
    const bad of [
      [0, 0, 0],
      [0, 1, 0, 1, 10, 0, 0, 1, 0, 53],
      [0, 0, 0, 2, 10, 0, 0, 1, 0, 53],
      [0, 0, 0, 1, 10, 0, 0, 1, 0],
      [0, 0, 0, 3, 0, 0, 53],
      [0, 0, 0, 4, 0, 0, 0],
    ]
  ) {
    assert.equal(decodeUdpPacket(Uint8Array.from(bad)), null, String(bad));
  }
});

Deno.test("decodeUdpAddress() and encodeUdpAddress() for IPv4, IPv6 and names", () => {
  assert.deepEqual(decodeUdpAddress(encodeUdpAddress("192.0.2.1", 5353)), {
    addressType: "ipv4",
    host: "192.0.2.1",
    port: 5353,
  });
  const v6 = encodeUdpAddress("2001:db8::7", 443);
  assert.equal(v6.length, 19);
  assert.deepEqual(decodeUdpAddress(v6), { addressType: "ipv6", host: "2001:db8::7", port: 443 });
  const name = Uint8Array.of(3, 7, ...new TextEncoder().encode("dns.lan"), 0, 53);
  assert.equal(udpAddressLength(name), name.length);
  assert.deepEqual(decodeUdpAddress(name), { addressType: "domain", host: "dns.lan", port: 53 });
  // A name with a control character, trailing bytes, or a name encoded: refused.
  assert.equal(decodeUdpAddress(Uint8Array.of(3, 2, 0x61, 0x0a, 0, 53)), null);
  assert.equal(decodeUdpAddress(Uint8Array.of(1, 1, 2, 3, 4, 0, 53, 9)), null);
  assert.throws(() => encodeUdpAddress("example.com", 53), TypeError);
});
