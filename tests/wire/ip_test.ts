import assert from "node:assert/strict";
import { cidrContains, embeddedIpv4, formatIp, parseCidr, parseIp } from "../../lib/wire/ip.ts";

Deno.test("parseIp() holds IPv4 in its mapped form and refuses other numeric forms", () => {
  assert.deepEqual(parseIp("127.0.0.1"), parseIp("::ffff:127.0.0.1"));
  assert.deepEqual(parseIp("127.0.0.1"), parseIp("::FFFF:7f00:1"));
  assert.deepEqual(parseIp("::1"), parseIp("0:0:0:0:0:0:0:1"));
  assert.notDeepEqual(parseIp("::1"), parseIp("127.0.0.1"));
  assert.deepEqual([...parseIp("2001:db8::1")!], [
    0x20,
    0x01,
    0x0d,
    0xb8,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    1,
  ]);
  for (const bad of ["127.1", "2130706433", "0x7f.0.0.1", "localhost", "::1::2", "1.2.3.256", ""]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

Deno.test("formatIp() writes dotted IPv4 and canonical IPv6", () => {
  assert.equal(formatIp(parseIp("::ffff:10.0.0.1")!), "10.0.0.1");
  assert.equal(formatIp(parseIp("fd00:ec2:0::254")!), "fd00:ec2::254");
  assert.equal(formatIp(parseIp("::")!), "::");
  assert.equal(formatIp(parseIp("64:ff9b::127.0.0.1")!), "64:ff9b::7f00:1");
});

Deno.test("parseCidr() and cidrContains() compare prefixes bit by bit", () => {
  const r = parseCidr("172.16.0.0/12")!;
  assert.equal(r.bits, 108);
  assert.ok(cidrContains(r, parseIp("172.31.255.255")!));
  assert.ok(!cidrContains(r, parseIp("172.32.0.0")!));
  assert.ok(!cidrContains(r, parseIp("172.15.255.255")!));
  assert.ok(cidrContains(parseCidr("fe80::/10")!, parseIp("febf::1")!));
  assert.ok(!cidrContains(parseCidr("fe80::/10")!, parseIp("fec0::1")!));
  assert.ok(cidrContains(parseCidr("0.0.0.0/0")!, parseIp("8.8.8.8")!));
  assert.ok(!cidrContains(parseCidr("0.0.0.0/0")!, parseIp("2001:db8::1")!));
  assert.ok(cidrContains(parseCidr("::/0")!, parseIp("1.2.3.4")!));
  assert.equal(parseCidr("10.0.0.1")!.bits, 128);
  for (const bad of ["10.0.0.1/8", "10.0.0.0/33", "fe80::/129", "fe80::1/10", "10.0.0.0/", "x/8"]) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
});

Deno.test("embeddedIpv4() finds the IPv4 in compatible, translated, NAT64, 6to4 and Teredo forms", () => {
  const inner = (a: string) => embeddedIpv4(parseIp(a)!).map(formatIp);
  assert.deepEqual(inner("::127.0.0.1"), ["127.0.0.1"]);
  assert.deepEqual(inner("::ffff:0:127.0.0.1"), ["127.0.0.1"]);
  assert.deepEqual(inner("64:ff9b::a9fe:a9fe"), ["169.254.169.254"]);
  assert.deepEqual(inner("64:ff9b:1::a00:1"), ["10.0.0.1"]);
  assert.deepEqual(inner("2002:c0a8:0101::1"), ["192.168.1.1"]);
  assert.deepEqual(inner("2001:0:0a00:0001::80ff:fffe"), ["10.0.0.1", "127.0.0.1"]);
  assert.deepEqual(inner("127.0.0.1"), []);
  assert.deepEqual(inner("2606:4700::1111"), []);
});
