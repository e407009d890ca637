import assert from "node:assert/strict";
import {
  canonicalIpv6,
  formatHostPort,
  invalidHostPortMessage,
  isHost,
  isIpAddress,
  parseHostPort,
  splitHostPort,
} from "../../lib/wire/host_port.ts";

// Every form the former copies accepted (config hostPort, cli parseHostPort,
// socks5 CONNECT authority), and what they refused.
Deno.test("parseHostPort() reads names, IPv4 and bracketed IPv6 with ports 0-65535", () => {
  const table: [string, { host: string; port: number }][] = [
    ["127.0.0.1:1080", { host: "127.0.0.1", port: 1080 }],
    ["0.0.0.0:0", { host: "0.0.0.0", port: 0 }],
    ["example.com:443", { host: "example.com", port: 443 }],
    ["example.com.:443", { host: "example.com.", port: 443 }],
    ["_srv.my-host.example:8443", { host: "_srv.my-host.example", port: 8443 }],
    ["localhost:65535", { host: "localhost", port: 65535 }],
    ["[::1]:1080", { host: "::1", port: 1080 }],
    ["[::]:8443", { host: "::", port: 8443 }],
    ["[0:0::1]:22", { host: "0:0::1", port: 22 }],
    ["[fd00::1]:80", { host: "fd00::1", port: 80 }],
    ["[::ffff:10.0.0.1]:80", { host: "::ffff:10.0.0.1", port: 80 }],
    ["[FD00::A]:80", { host: "FD00::A", port: 80 }],
    ["host:00080", { host: "host", port: 80 }],
  ];
  for (const [text, want] of table) assert.deepEqual(parseHostPort(text), want, text);
});

Deno.test("parseHostPort() refuses a missing port, a bare IPv6, a bad host or port", () => {
  const bad = [
    "",
    "8443",
    ":8443",
    "host",
    "host:",
    "host:port",
    "host:-1",
    "host:65536",
    "host:123456",
    "::1:1080",
    "[::1]1080",
    "[::1]",
    "[]:80",
    "[example.com]:80",
    "[1.2.3.4]:80",
    "[::1::2]:80",
    "a b:80",
    " host:80",
    "a/b:80",
    "127.1:80",
    "999.0.0.1:80",
    "-host:80",
    "[[::1]]:80",
    "a]b:80",
  ];
  for (const text of bad) assert.equal(parseHostPort(text), undefined, text);
});

Deno.test("parseHostPort() takes a lowest port", () => {
  assert.equal(parseHostPort("127.0.0.1:0", 1), undefined);
  assert.deepEqual(parseHostPort("127.0.0.1:1", 1), { host: "127.0.0.1", port: 1 });
  assert.deepEqual(parseHostPort("127.0.0.1:0", 0), { host: "127.0.0.1", port: 0 });
});

Deno.test("splitHostPort() checks the shape only", () => {
  assert.deepEqual(splitHostPort("[example.com]:80"), {
    host: "example.com",
    port: 80,
    bracketed: true,
  });
  assert.deepEqual(splitHostPort("a b:80"), { host: "a b", port: 80, bracketed: false });
  assert.deepEqual(splitHostPort(":80"), { host: "", port: 80, bracketed: false });
  for (const text of ["::1:80", "[::1]80", "a:65536", "a:", "[a]b]:80", "a[b]:80"]) {
    assert.equal(splitHostPort(text), undefined, text);
  }
});

Deno.test("formatHostPort() brackets IPv6 only, and parseHostPort() reads it back", () => {
  const table: [string, number, string][] = [
    ["::1", 443, "[::1]:443"],
    ["fd00::1", 0, "[fd00::1]:0"],
    ["127.0.0.1", 1080, "127.0.0.1:1080"],
    ["example.com", 443, "example.com:443"],
  ];
  for (const [host, port, text] of table) {
    assert.equal(formatHostPort(host, port), text);
    assert.deepEqual(parseHostPort(text), { host, port });
  }
});

Deno.test("isHost(), isIpAddress() and canonicalIpv6() tell names from addresses", () => {
  assert.equal(isHost("example.com"), true);
  assert.equal(isHost("10.0.0.1"), true);
  assert.equal(isHost("::1"), true);
  assert.equal(isHost("127.1"), false);
  assert.equal(isHost(""), false);
  assert.equal(isHost("a".repeat(64)), false);
  assert.equal(isIpAddress("10.0.0.1"), true);
  assert.equal(isIpAddress("fd00::1"), true);
  assert.equal(isIpAddress("::"), true);
  assert.equal(isIpAddress("localhost"), false);
  assert.equal(isIpAddress("1.2.3"), false);
  assert.equal(canonicalIpv6("0:0:0:0:0:0:0:1"), "::1");
  assert.equal(canonicalIpv6("FD00::A"), "fd00::a");
  assert.equal(canonicalIpv6("1.2.3.4"), undefined);
  assert.equal(canonicalIpv6("[::1]"), undefined);
});

Deno.test("invalidHostPortMessage() quotes the value and says what it was for", () => {
  assert.equal(
    invalidHostPortMessage("8443", "listen address"),
    'Invalid listen address "8443": expected HOST:PORT, e.g. 127.0.0.1:1080 or [::1]:1080',
  );
});
