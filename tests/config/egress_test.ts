import assert from "node:assert/strict";
import {
  DEFAULT_EGRESS_BLOCK,
  EgressBlock,
  parseIp,
  parseServerConfig,
} from "../../lib/config/mod.ts";
import { assertAt, configError, SERVER_FILES } from "./_helpers.ts";
import { assertThrowsWith } from "../support/assert.ts";

const MINIMAL = "identity: keys/server.key\ntls: {cert: tls/server.crt, key: tls/server.key}\n";

const BLOCKED = [
  "127.0.0.1",
  "127.0.0.2",
  "127.255.255.254",
  "::1",
  "::ffff:127.0.0.1",
  "::127.0.0.1",
  "::ffff:0:127.0.0.1",
  "64:ff9b::7f00:1",
  "2002:7f00:1::1",
  "0.0.0.0",
  "::",
  "10.1.2.3",
  "172.16.0.1",
  "172.31.255.255",
  "192.168.1.1",
  "::ffff:192.168.1.1",
  "100.64.0.1",
  "100.100.100.200",
  "169.254.169.254",
  "169.254.170.2",
  "64:ff9b::a9fe:a9fe",
  "fd00:ec2::254",
  "fc00::1",
  "fe80::1",
  "224.0.0.1",
  "239.255.255.250",
  "255.255.255.255",
  "ff02::1",
];
const PUBLIC = [
  "8.8.8.8",
  "1.1.1.1",
  "172.32.0.1",
  "100.128.0.1",
  "169.255.0.1",
  "2606:4700:4700::1111",
  "2002:808:808::1",
  "64:ff9b::808:808",
  "::ffff:8.8.8.8",
  "203.0.113.7",
];

Deno.test("the default egress.block covers loopback, private, metadata and every IPv6 form of them", () => {
  const block = new EgressBlock(DEFAULT_EGRESS_BLOCK);
  for (const a of BLOCKED) assert.notEqual(block.blocks(parseIp(a)!), undefined, a);
  for (const a of PUBLIC) assert.equal(block.blocks(parseIp(a)!), undefined, a);
  assert.equal(block.blocks(parseIp("::ffff:10.0.0.1")!), "10.0.0.0/8");
  assert.equal(block.blocks(parseIp("64:ff9b::7f00:1")!), "127.0.0.0/8 (as 127.0.0.1)");
});

Deno.test("egress.block: self stands for the server's own addresses, only when listed", () => {
  const own = [parseIp("203.0.113.7")!];
  assert.equal(new EgressBlock(["self"], own).blocks(parseIp("203.0.113.7")!), "self");
  assert.equal(new EgressBlock(["self"], own).blocks(parseIp("::ffff:203.0.113.7")!), "self");
  assert.equal(new EgressBlock(["self"], own).hasSelf, true);
  assert.equal(new EgressBlock(["10.0.0.0/8"], own).blocks(parseIp("203.0.113.7")!), undefined);
  assert.equal(new EgressBlock([]).blocks(parseIp("127.0.0.1")!), undefined);
  assertThrowsWith(() => new EgressBlock(["10.0.0.1/8"]), TypeError, "Invalid egress.block entry");
});

Deno.test("parseServerConfig() reads egress.block and egress.resolver", () => {
  const def = parseServerConfig(MINIMAL, "etc/server.yml", SERVER_FILES).egress;
  assert.deepEqual(def, { block: [...DEFAULT_EGRESS_BLOCK] });
  const cfg = parseServerConfig(
    `${MINIMAL}egress:\n  block: ["10.0.0.0/8", "[fd00::/8]", "169.254.169.254", self]\n  resolver: "127.0.0.1:5353"\n`,
    "etc/server.yml",
    SERVER_FILES,
  ).egress;
  assert.deepEqual(cfg, {
    block: ["10.0.0.0/8", "[fd00::/8]", "169.254.169.254", "self"],
    resolver: { host: "127.0.0.1", port: 5353 },
  });
  assert.deepEqual(
    parseServerConfig(`${MINIMAL}egress: {block: []}\n`, "etc/server.yml", SERVER_FILES).egress
      .block,
    [],
  );
});

Deno.test("parseServerConfig() refuses bad egress entries at their line and column", () => {
  const cases: [string, number, number, RegExp][] = [
    ["egress:\n  block: [10.0.0.1/8]\n", 4, 11, /"10\.0\.0\.1\/8": bits past the prefix/],
    ["egress:\n  block: [10.0.0.0/33]\n", 4, 11, /prefix length is out of range/],
    ["egress:\n  block: [example.com]\n", 4, 11, /expected an address, ADDR\/LEN or "self"/],
    ["egress:\n  block: [self, self]\n", 4, 17, /listed twice/],
    ["egress:\n  resolver: 127.0.0.1\n", 4, 13, /Invalid egress.resolver/],
    ["egress:\n  blok: []\n", 4, 3, /blok/],
  ];
  for (const [extra, line, column, re] of cases) {
    const e = configError(() => parseServerConfig(MINIMAL + extra, "s.yml", SERVER_FILES));
    assertAt(e, "s.yml", line, column);
    assert.match(e.message, re);
  }
});
