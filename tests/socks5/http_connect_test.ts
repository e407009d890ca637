import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeRequest,
  HttpConnectParser,
  httpConnectResponse,
  type HttpConnectStep,
  httpStatusForReply,
  httpStatusResponse,
  parseHttpConnect,
  Reply,
  Socks5Error,
} from "../../lib/socks5/mod.ts";
import { assertThrowsWith } from "../support/assert.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const USERS = new Map([["alice", "s3cret:with:colons"]]);

function basic(user: string, pass: string): string {
  return `Basic ${btoa(String.fromCharCode(...te.encode(`${user}:${pass}`)))}`;
}

function expectStatus(step: HttpConnectStep, status: number, pattern: RegExp): string {
  assert.equal(step.type, "fail");
  if (step.type !== "fail") return "";
  assert.equal(step.status, status);
  assert.ok(step.error instanceof Socks5Error);
  assert.match(step.error.message, pattern);
  const text = td.decode(step.send);
  assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `));
  assert.match(text, /\r\nConnection: close\r\n/);
  return text;
}

Deno.test("HttpConnectParser: domain, IPv4 and bracketed IPv6 targets", () => {
  const cases: [string, string, string, number][] = [
    ["example.com:443", "domain", "example.com", 443],
    ["127.0.0.1:8080", "ipv4", "127.0.0.1", 8080],
    ["[0:0:0:0:0:0:0:1]:8443", "ipv6", "::1", 8443],
    ["[::ffff:192.0.2.1]:1", "ipv6", "::ffff:192.0.2.1", 1],
  ];
  for (const [target, addressType, host, port] of cases) {
    const step = parseHttpConnect(
      te.encode(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
    );
    assert.equal(step.type, "request", target);
    if (step.type !== "request") continue;
    assert.deepEqual(step.request, { command: "connect", addressType, host, port });
    assert.deepEqual(step.raw, encodeRequest(step.request));
    assert.deepEqual(step.headers, [["host", target]]);
    assert.equal(step.rest.length, 0);
  }
});

Deno.test("HttpConnectParser: HTTP/1.0, early data, and byte-at-a-time delivery", () => {
  const msg = te.encode("CONNECT a.example:443 HTTP/1.0\r\nUser-Agent: t\r\n\r\n\x16\x03\x01");
  const p = new HttpConnectParser();
  let step: HttpConnectStep = { type: "need_more" };
  let i = 0;
  for (; i < msg.length && step.type === "need_more"; i++) step = p.push(msg.subarray(i, i + 1));
  assert.equal(step.type, "request");
  assert.equal(i, msg.length - 3); // completes on the blank line's last byte
  const whole = parseHttpConnect(msg);
  assert.equal(whole.type, "request");
  if (whole.type === "request") assert.deepEqual(whole.rest, Uint8Array.of(0x16, 3, 1));
});

Deno.test("HttpConnectParser: any split gives the same request and early data", () => {
  const msg = te.encode("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\nX-A:  b \r\n\r\nEARLY");
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 }), (cuts) => {
      const p = new HttpConnectParser();
      let o = 0;
      let step: HttpConnectStep = { type: "need_more" };
      for (const c of [...cuts, msg.length]) {
        if (o >= msg.length || step.type !== "need_more") break;
        step = p.push(msg.slice(o, o + c));
        o += c;
      }
      assert.equal(step.type, "request");
      if (step.type !== "request") return;
      assert.equal(step.request.host, "2001:db8::1");
      assert.deepEqual(step.headers[1], ["x-a", "b"]);
      // rest is what came with the final chunk, after the blank line.
      assert.equal(td.decode(step.rest), "EARLY".slice(0, Math.min(5, o - (msg.length - 5))));
    }),
  );
});

Deno.test("HttpConnectParser: non-CONNECT methods get 405 with Allow", () => {
  for (
    const line of [
      "GET http://example.com/ HTTP/1.1",
      "connect example.com:443 HTTP/1.1",
      "POST / HTTP/1.1",
    ]
  ) {
    const text = expectStatus(
      parseHttpConnect(te.encode(`${line}\r\n\r\n`)),
      405,
      /is not allowed/,
    );
    assert.match(text, /\r\nAllow: CONNECT\r\n/);
    const step = parseHttpConnect(te.encode(`${line}\r\n\r\n`));
    if (step.type === "fail") assert.equal(step.error.reply, Reply.COMMAND_NOT_SUPPORTED);
  }
});

Deno.test("HttpConnectParser: malformed requests get 400", () => {
  const cases: [string, RegExp][] = [
    ["CONNECT example.com HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT example.com:0 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT example.com:65536 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT example.com:+80 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT ::1:443 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT [::1]443 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT [example.com]:443 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT 127.1:80 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT user@example.com:80 HTTP/1.1\r\n\r\n", /not host:port/],
    ["CONNECT example.com:443 HTTP/2.0\r\n\r\n", /HTTP\/2\.0 is not supported/],
    ["CONNECT example.com:443\r\n\r\n", /malformed request line/],
    ["CONNECT  example.com:443 HTTP/1.1\r\n\r\n", /malformed request line/],
    ["CONNECT example.com:443 HTTP/1.1\r\nNoColon\r\n\r\n", /malformed header line/],
    ["CONNECT example.com:443 HTTP/1.1\r\nBad Name: x\r\n\r\n", /malformed header line/],
    ["CONNECT example.com:443 HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", /malformed header line/],
    ["CONNECT example.com:443 HTTP/1.1\r\nA: b\x00c\r\n\r\n", /malformed header line/],
    ["CONNECT example.com:443 HTTP/1.1\r\nA: b\nB: c\r\n\r\n", /malformed header line/],
  ];
  for (const [msg, pattern] of cases) expectStatus(parseHttpConnect(te.encode(msg)), 400, pattern);
});

Deno.test("HttpConnectParser: headers over 8 KiB get 431, in one chunk or many", () => {
  const big = `CONNECT a.example:443 HTTP/1.1\r\nX: ${"a".repeat(8200)}\r\n\r\n`;
  expectStatus(parseHttpConnect(te.encode(big)), 431, /within 8192 bytes/);
  const p = new HttpConnectParser();
  let step: HttpConnectStep = { type: "need_more" };
  const bytes = te.encode(big);
  for (let o = 0; o < bytes.length && step.type === "need_more"; o += 100) {
    step = p.push(bytes.subarray(o, o + 100));
  }
  expectStatus(step, 431, /within 8192 bytes/);
  // Exactly at the limit is fine.
  const head = "CONNECT a.example:443 HTTP/1.1\r\nX: ";
  const exact = `${head}${"a".repeat(8192 - head.length - 4)}\r\n\r\n`;
  assert.equal(exact.length, 8192);
  assert.equal(parseHttpConnect(te.encode(exact)).type, "request");
  expectStatus(
    new HttpConnectParser({ maxHeaderBytes: 64 }).push(te.encode(exact)),
    431,
    /64 bytes/,
  );
  assertThrowsWith(
    () => new HttpConnectParser({ maxHeaderBytes: 9000 }),
    RangeError,
    "Cannot create HTTP CONNECT parser: header limit 9000 is not in 16..8192",
  );
});

Deno.test("HttpConnectParser: Proxy-Authorization Basic with configured users", () => {
  const req = (extra: string) => te.encode(`CONNECT a.example:443 HTTP/1.1\r\n${extra}\r\n`);
  const p = () => new HttpConnectParser({ auth: { users: USERS } });
  assert.equal(
    p().push(req(`Proxy-Authorization: ${basic("alice", "s3cret:with:colons")}\r\n`)).type,
    "request",
  );
  assert.equal(
    p().push(req(`proxy-authorization: basic ${basic("alice", "s3cret:with:colons").slice(6)}\r\n`))
      .type,
    "request",
  );
  for (
    const extra of [
      "",
      `Proxy-Authorization: ${basic("alice", "wrong")}\r\n`,
      `Proxy-Authorization: ${basic("eve", "s3cret:with:colons")}\r\n`,
      "Proxy-Authorization: Bearer abc\r\n",
      "Proxy-Authorization: Basic !!!\r\n",
      `Proxy-Authorization: Basic ${btoa("nocolon")}\r\n`,
      `Authorization: ${basic("alice", "s3cret:with:colons")}\r\n`,
    ]
  ) {
    const text = expectStatus(p().push(req(extra)), 407, /missing or invalid proxy credentials/);
    assert.match(text, /\r\nProxy-Authenticate: Basic realm="NitroSocks"/);
    const step = p().push(req(extra));
    if (step.type === "fail") assert.equal(step.error.reply, Reply.NOT_ALLOWED);
  }
});

Deno.test("HttpConnectParser: never throws on arbitrary input", () => {
  const prefix = fc.constantFrom("", "CONNECT ", "CONNECT a:1 HTTP/1.1\r\n", "GET / HTTP/1.1\r\n");
  fc.assert(
    fc.property(
      prefix,
      fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 6 }),
      (pre, chunks) => {
        const p = new HttpConnectParser({ auth: { users: USERS } });
        for (const c of [te.encode(pre), ...chunks, te.encode("\r\n\r\n")]) {
          const step = p.push(c);
          if (step.type === "fail") {
            assert.ok([400, 405, 407, 431].includes(step.status), String(step.status));
            return;
          }
          if (step.type === "request") return;
        }
        // The blank line ends every head: by now the parser must have decided.
        assert.fail("no request and no refusal after the blank line");
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("HttpConnectParser: end() before the blank line and push() after finishing", () => {
  const p = new HttpConnectParser();
  p.push(te.encode("CONNECT a.example:443 HTTP/1.1\r\n"));
  const end = p.end();
  assert.equal(end.type, "fail");
  if (end.type === "fail") {
    assert.equal(end.send.length, 0);
    assert.match(end.error.message, /closed after 32 bytes/);
  }
  expectStatus(p.push(te.encode("\r\n")), 400, /already finished/);
});

Deno.test("httpConnectResponse() maps reply codes to statuses", () => {
  assert.equal(
    td.decode(httpConnectResponse(Reply.SUCCEEDED)),
    "HTTP/1.1 200 Connection established\r\n\r\n",
  );
  const table: [number, number][] = [
    [Reply.GENERAL_FAILURE, 502],
    [Reply.NOT_ALLOWED, 403],
    [Reply.NETWORK_UNREACHABLE, 502],
    [Reply.HOST_UNREACHABLE, 502],
    [Reply.CONNECTION_REFUSED, 502],
    [Reply.TTL_EXPIRED, 504],
    [Reply.COMMAND_NOT_SUPPORTED, 502],
    [Reply.ADDRESS_TYPE_NOT_SUPPORTED, 502],
  ];
  for (const [reply, status] of table) {
    assert.equal(httpStatusForReply(reply), status);
    const text = td.decode(httpConnectResponse(reply));
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `));
    const [head, body] = text.split("\r\n\r\n") as [string, string];
    assert.equal(Number(/Content-Length: (\d+)/.exec(head)![1]), te.encode(body).length);
  }
  assert.match(
    td.decode(httpConnectResponse(Reply.CONNECTION_REFUSED)),
    /502 Bad Gateway: connection refused\n$/,
  );
  assert.match(
    td.decode(httpStatusResponse(504, "timed out")),
    /^HTTP\/1\.1 504 Gateway Timeout\r\n/,
  );
});
