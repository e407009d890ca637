import assert from "node:assert/strict";
import { compileRoutes, matchRoute, parseRoute } from "../../lib/config/mod.ts";
import { assertThrowsWith } from "../support/assert.ts";

type Row = [patterns: string[], proto: "tcp" | "udp", host: string, port: number, want: boolean];

const TABLE: Row[] = [
  [["*"], "tcp", "example.com", 443, true],
  [["*"], "udp", "::1", 53, true],
  [[], "tcp", "example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "www.example.com", 443, true],
  [["tcp:*.example.com:443"], "tcp", "WWW.Example.COM.", 443, true],
  [["tcp:*.example.com:443"], "tcp", "a.b.example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "www.example.com", 80, false],
  [["tcp:*.example.com:443"], "udp", "www.example.com", 443, false],
  [["tcp:*.example.com:443"], "tcp", "evilexample.com", 443, false],
  [["**.example.com"], "tcp", "a.b.example.com", 22, true],
  [["**.example.com"], "udp", "a.example.com", 53, true],
  [["*.example.com"], "udp", "a.example.com", 53, true],
  [["example.com"], "tcp", "example.com", 1, true],
  [["example.com"], "tcp", "example.com.evil", 1, false],
  [["tcp:10.0.0.*:*"], "tcp", "10.0.0.7", 8080, true],
  [["tcp:10.0.0.*:*"], "tcp", "10.0.0.evil.com", 8080, false],
  [["tcp:10.0.0.*:*"], "tcp", "10.0.1.7", 8080, false],
  [["10.0.0.*:22"], "tcp", "10.0.0.255", 22, true],
  [["[::1]:22"], "tcp", "::1", 22, true],
  [["[::1]:22"], "tcp", "0:0:0:0:0:0:0:1", 22, true],
  [["[::1]:22"], "tcp", "[::1]", 22, true],
  [["[::1]:22"], "tcp", "::2", 22, false],
  [["[::1]:22"], "tcp", "127.0.0.1", 22, false],
  [["tcp:[fd00::*]:8000-8999"], "tcp", "fd00::abcd", 8500, true],
  [["tcp:[fd00::*]:8000-8999"], "tcp", "fd00::abcd", 9000, false],
  [["*:443"], "tcp", "anything.example", 443, true],
  [["*:443"], "udp", "10.1.1.1", 443, true],
  [["*:443"], "tcp", "anything.example", 80, false],
  [["udp:*:53"], "udp", "8.8.8.8", 53, true],
  [["udp:*:53"], "tcp", "8.8.8.8", 53, false],
  [["*:*.example.com:443"], "udp", "a.example.com", 443, true],
  [["a.example.com:22", "b.example.com:22"], "tcp", "b.example.com", 22, true],
];

Deno.test("matchRoute() follows the documented grammar", () => {
  for (const [patterns, proto, host, port, want] of TABLE) {
    assert.equal(
      matchRoute(patterns, { proto, host, port }),
      want,
      `${patterns} ${proto}:${host}:${port}`,
    );
  }
});

Deno.test("compileRoutes() agrees with matchRoute() and caches frozen arrays", () => {
  const routes = Object.freeze(["tcp:*.example.com:443"]);
  const m = compileRoutes(routes);
  const t = { proto: "tcp" as const, host: "a.example.com", port: 443 };
  assert.equal(m(t), true);
  assert.equal(matchRoute(routes, t), true);
  assert.equal(matchRoute(routes, t), true);
});

Deno.test("parseRoute() refuses malformed patterns", () => {
  for (
    const bad of [
      "",
      "tcp:",
      "::1:22",
      "[::1",
      "[::1]22",
      "tcp:host:99999",
      "host:9-1",
      "10.0.0:22",
      "300.0.0.1",
      "bad host",
      "http:x:1:2",
      "[example.com]:1",
      "a..b",
    ]
  ) {
    assertThrowsWith(() => parseRoute(bad), TypeError, `Invalid route ${JSON.stringify(bad)}: `);
  }
});
