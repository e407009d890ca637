import assert from "node:assert/strict";
import {
  ClientHandshake,
  generateClientKey,
  generateServerIdentity,
  generateToken,
  ReplayGuard,
  ServerHandshake,
  serverPublicKey,
} from "../../lib/handshake/mod.ts";
import {
  answer,
  type ByteRange,
  DECOY_PAGE,
  type DecoyRequest,
  etagOf,
  parseByteRanges,
  parseHttpTime,
  parseRequestHead,
} from "../../lib/tunnel/decoy_http.ts";
import { EarlyGate } from "../../lib/tunnel/_gate.ts";
import { H2_PREFACE, recognizeProbe } from "../../lib/tunnel/probe_shape.ts";
import { test } from "../support/deadline.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function parse(s: string) {
  return parseRequestHead(enc.encode(s));
}

test("parseRequestHead() decides where nginx does: bad at the first impossible byte, else waits", () => {
  for (const s of ["g", "get / HTTP/1.1", "\x16\x03\x01", "GET\r\n", "GET *", "GET / HTTX"]) {
    assert.deepEqual(parse(s), { type: "bad", status: 400 }, JSON.stringify(s));
  }
  for (
    const s of ["", "\r\n", "G", "GET", "GET ", "GET /", "GET / HTTP/1", "GET / HTTP/1.1\r\nHost"]
  ) {
    assert.deepEqual(parse(s), { type: "need_more" }, JSON.stringify(s));
  }
  assert.deepEqual(parse("GET / HTTP/2.0\r\n"), { type: "bad", status: 505 });
  assert.deepEqual(parse("GET / HTTP/1.1\r\n\r\n"), { type: "bad", status: 400 }); // no Host
  assert.deepEqual(parse("GET / HTTP/1.1\r\nHost: a\r\nbroken\r\n\r\n"), {
    type: "bad",
    status: 400,
  });
  assert.deepEqual(parse(`GET /${"a".repeat(9000)}`), { type: "bad", status: 414 });
  // A path above the root or with a bad escape is 400 once the request line is complete.
  assert.deepEqual(parse("GET /../etc/passwd HTTP/1.0"), { type: "need_more" });
  assert.deepEqual(parse("GET /../etc/passwd HTTP/1.0\r\n"), { type: "bad", status: 400 });
  assert.deepEqual(parse("GET /%zz HTTP/1.0\r\n"), { type: "bad", status: 400 });
  assert.deepEqual(parse("GET /%00 HTTP/1.0\r\n"), { type: "bad", status: 400 });
});

test("parseRequestHead() resolves the path as nginx does: escapes, dot segments, double slashes", () => {
  const path = (target: string) => {
    const p = parse(`GET ${target} HTTP/1.0\r\n\r\n`);
    assert.equal(p.type, "request", target);
    return (p as { request: DecoyRequest }).request.path;
  };
  assert.equal(path("/./a/../index%2ehtml"), "/index.html");
  assert.equal(path("//index.html"), "/index.html");
  assert.equal(path("/a/.."), "/");
  assert.equal(path("/a/"), "/a/");
  assert.equal(path("/index.html?q=1"), "/index.html");
});

test("parseRequestHead() reads versions, keep-alive, bodies and absolute-form targets", () => {
  const r = (s: string): DecoyRequest => {
    const p = parse(s);
    assert.equal(p.type, "request", s);
    return (p as { request: DecoyRequest }).request;
  };
  assert.deepEqual(r("GET /\r\n"), {
    method: "GET",
    path: "/",
    version: "0.9",
    keepAlive: false,
    bodyBytes: 0,
    chunked: false,
    ifNoneMatch: undefined,
  });
  assert.equal(r("GET / HTTP/1.0\r\n\r\n").keepAlive, false);
  assert.equal(r("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive, true);
  assert.equal(r("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keepAlive, true);
  assert.equal(r("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keepAlive, false);
  assert.equal(r("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").bodyBytes, 12);
  assert.equal(
    r("GET http://a.example/index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").path,
    "/index.html",
  );
  // Pipelined: the second head parses from its offset.
  const two = enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
  const first = parseRequestHead(two);
  assert.equal(first.type, "request");
  const second = parseRequestHead(two, (first as { headBytes: number }).headBytes);
  assert.equal(second.type === "request" && second.request.method, "HEAD");
});

test("answer() sends nginx's status lines, header names in nginx's order, and error pages", () => {
  const file = { mtimeS: 0x6b11200a, body: DECOY_PAGE };
  const now = new Date("2026-12-03T07:53:47Z");
  const text = (req: Parameters<typeof answer>[0]) => dec.decode(answer(req, file, now).bytes);
  const get = parseRequestHead(enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  assert.equal(get.type, "request");
  const req = (get as { request: DecoyRequest }).request;
  assert.equal(
    text(req),
    "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 03 Dec 2026 07:53:47 GMT\r\n" +
      "Content-Type: text/html\r\nContent-Length: 615\r\n" +
      "Last-Modified: Thu, 03 Dec 2026 07:53:46 GMT\r\nConnection: keep-alive\r\n" +
      'ETag: "6b11200a-267"\r\nAccept-Ranges: bytes\r\n\r\n' + DECOY_PAGE,
  );
  assert.equal(etagOf(file), '"6b11200a-267"');
  assert.equal(
    text({ status: 400 }),
    "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nDate: Thu, 03 Dec 2026 07:53:47 GMT\r\n" +
      "Content-Type: text/html\r\nContent-Length: 150\r\nConnection: close\r\n\r\n" +
      "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n" +
      "<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n" +
      "</body>\r\n</html>\r\n",
  );
  assert.equal(answer({ status: 400 }, file, now).keepAlive, false);
  assert.match(
    text({ ...req, path: "/x" }),
    /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*Connection: keep-alive/,
  );
  assert.match(text({ ...req, method: "DELETE" }), /^HTTP\/1\.1 405 Not Allowed\r\n/);
  assert.match(text({ ...req, method: "HEAD" }), /Content-Length: 615\r\n[\s\S]*\r\n\r\n$/);
  assert.match(text({ ...req, ifNoneMatch: etagOf(file) }), /^HTTP\/1\.1 304 Not Modified\r\n/);
  assert.equal(text({ ...req, version: "0.9", keepAlive: false }), DECOY_PAGE);
});

test("parseByteRanges() decides as nginx 1.22's range filter did on each of these headers", () => {
  // Each row: the Range header, and what nginx answered for the 615-byte page (measured).
  const table: [string, ByteRange[] | "unsatisfiable" | undefined][] = [
    ["bytes=0-9", [{ start: 0, end: 10 }]],
    ["BYTES=0-9", [{ start: 0, end: 10 }]],
    ["bytes=600-", [{ start: 600, end: 615 }]],
    ["bytes=0-", [{ start: 0, end: 615 }]],
    ["bytes=-5", [{ start: 610, end: 615 }]],
    ["bytes=0-9,20-29", [{ start: 0, end: 10 }, { start: 20, end: 30 }]],
    ["bytes= 0-9 , 3-4", [{ start: 0, end: 10 }, { start: 3, end: 5 }]],
    ["bytes=0-0,-1", [{ start: 0, end: 1 }, { start: 614, end: 615 }]],
    ["bytes=0-9,0-9", [{ start: 0, end: 10 }, { start: 0, end: 10 }]],
    ["bytes=0-999", [{ start: 0, end: 615 }]],
    ["bytes=700-800", "unsatisfiable"],
    ["bytes=5-2", "unsatisfiable"],
    ["bytes=-0", "unsatisfiable"],
    ["bytes=0-9,", "unsatisfiable"],
    ["bytes=x", "unsatisfiable"],
    ["bytes=1-2-3", "unsatisfiable"],
    ["bytes=99999999999999999999-", "unsatisfiable"],
    ["bytes=", undefined],
    ["chars=0-9", undefined],
    ["bytes=0-700,5-6", undefined], // more than the file in all: the whole page
  ];
  for (const [value, want] of table) assert.deepEqual(parseByteRanges(value, 615), want, value);
});

test("answer() gives a range nginx's 206, multipart/byteranges and 416 answers, byte for byte", () => {
  const file = { mtimeS: 0x6b11200a, body: DECOY_PAGE };
  const now = new Date("2026-12-03T07:53:47Z");
  const get = (headers: string, boundary = () => 1) => {
    const p = parseRequestHead(enc.encode(`GET / HTTP/1.1\r\nHost: a\r\n${headers}\r\n`));
    assert.equal(p.type, "request");
    return dec.decode(answer((p as { request: DecoyRequest }).request, file, now, boundary).bytes);
  };
  const common = "Server: nginx\r\nDate: Thu, 03 Dec 2026 07:53:47 GMT\r\n";
  const validators = "Last-Modified: Thu, 03 Dec 2026 07:53:46 GMT\r\nConnection: keep-alive\r\n" +
    'ETag: "6b11200a-267"\r\n';
  assert.equal(
    get("Range: bytes=0-9\r\n"),
    `HTTP/1.1 206 Partial Content\r\n${common}Content-Type: text/html\r\nContent-Length: 10\r\n` +
      `${validators}Content-Range: bytes 0-9/615\r\n\r\n<!DOCTYPE `,
  );
  // Two ranges: nginx's 216 bytes for this page, boundary numbered by the decoy.
  const multi = get("Range: bytes=0-9,20-29\r\n", () => 7);
  const b = "00000000000000000007";
  assert.equal(
    multi,
    `HTTP/1.1 206 Partial Content\r\n${common}` +
      `Content-Type: multipart/byteranges; boundary=${b}\r\nContent-Length: 216\r\n` +
      `${validators}\r\n` +
      `\r\n--${b}\r\nContent-Type: text/html\r\nContent-Range: bytes 0-9/615\r\n\r\n<!DOCTYPE ` +
      `\r\n--${b}\r\nContent-Type: text/html\r\nContent-Range: bytes 20-29/615\r\n\r\nl>\n<head>\n` +
      `\r\n--${b}--\r\n`,
  );
  assert.equal(multi.split("\r\n\r\n").slice(1).join("\r\n\r\n").length, 216);
  assert.equal(
    get("Range: bytes=700-\r\n"),
    `HTTP/1.1 416 Requested Range Not Satisfiable\r\n${common}Content-Type: text/html\r\n` +
      "Content-Length: 190\r\nConnection: keep-alive\r\nContent-Range: bytes */615\r\n\r\n" +
      "<html>\r\n<head><title>416 Requested Range Not Satisfiable</title></head>\r\n<body>\r\n" +
      "<center><h1>416 Requested Range Not Satisfiable</h1></center>\r\n" +
      "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
  );
  // If-Range: the ETag or the Last-Modified time lets the range through; anything else, the page.
  assert.match(get('Range: bytes=0-9\r\nIf-Range: "6b11200a-267"\r\n'), /^HTTP\/1\.1 206 /);
  assert.match(
    get("Range: bytes=0-9\r\nIf-Range: Thu, 03 Dec 2026 07:53:46 GMT\r\n"),
    /^HTTP\/1\.1 206 /,
  );
  assert.match(get('Range: bytes=0-9\r\nIf-Range: "x"\r\n'), /^HTTP\/1\.1 200 OK\r\n/);
  // The first Range header counts; If-None-Match wins over a range.
  assert.match(get("Range: bytes=0-9\r\nRange: bytes=3-4\r\n"), /Content-Range: bytes 0-9\/615/);
  assert.match(
    get('Range: bytes=0-9\r\nIf-None-Match: "6b11200a-267"\r\n'),
    /^HTTP\/1\.1 304 Not Modified\r\n/,
  );
});

test("answer() applies nginx's validators in nginx's order: 412 before 304 before ranges", () => {
  const file = { mtimeS: 0x6b11200a, body: DECOY_PAGE };
  const now = new Date("2026-12-03T07:53:47Z");
  const status = (headers: string) => {
    const p = parseRequestHead(enc.encode(`GET / HTTP/1.1\r\nHost: a\r\n${headers}\r\n`));
    assert.equal(p.type, "request");
    const a = dec.decode(answer((p as { request: DecoyRequest }).request, file, now).bytes);
    return a.split("\r\n")[0]!.slice(9, 12);
  };
  const etag = '"6b11200a-267"';
  const time = "Thu, 03 Dec 2026 07:53:46 GMT";
  // Each row as nginx 1.22 answered it (measured with its own ETag and time; the asctime row
  // is the third form ngx_parse_http_time reads).
  const table: [string, string][] = [
    [`If-Modified-Since: ${time}`, "304"],
    ["If-Modified-Since: Thursday, 03-Dec-26 07:53:46 GMT", "304"],
    ["If-Modified-Since: Thu Dec  3 07:53:46 2026", "304"],
    ["If-Modified-Since: Thu, 03 Dec 2026 07:53:47 GMT", "200"],
    ["If-Modified-Since: Thu, 03 Dec 2026 07:53:45 GMT", "200"],
    ["If-Modified-Since: garbage", "200"],
    [`If-Modified-Since: ${time}\r\nIf-None-Match: "x"`, "200"],
    [`If-Modified-Since: Thu, 03 Dec 2026 07:53:45 GMT\r\nIf-None-Match: ${etag}`, "200"],
    ["If-None-Match: *", "304"],
    [`If-None-Match: W/${etag}`, "304"],
    [`If-None-Match: "a", ${etag}`, "304"],
    [`If-Match: ${etag}`, "200"],
    ['If-Match: "x"', "412"],
    ["If-Match: *", "200"],
    [`If-Unmodified-Since: ${time}`, "200"],
    ["If-Unmodified-Since: Thu, 03 Dec 2026 07:53:45 GMT", "412"],
    ["If-Unmodified-Since: garbage", "412"],
    ['If-Match: "x"\r\nRange: bytes=0-3', "412"],
    ["If-Range: Thursday, 03-Dec-26 07:53:46 GMT\r\nRange: bytes=0-3", "206"],
    ["If-Range: garbage\r\nRange: bytes=0-3", "200"],
  ];
  for (const [headers, want] of table) assert.equal(status(`${headers}\r\n`), want, headers);
  assert.equal(parseHttpTime("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  assert.equal(parseHttpTime("Sun, 06 Nov 1994 08:49:37 UTC"), undefined);
  assert.equal(parseHttpTime("Sun, 06 Nov 1994 24:00:00 GMT"), undefined);
});

function realHello(): { hello: Uint8Array; server: ServerHandshake } {
  const identity = generateServerIdentity();
  const key = generateClientKey();
  const token = generateToken();
  const client = new ClientHandshake({
    serverPublicKey: serverPublicKey(identity),
    credentials: { userId: "alice", clientKey: key.privateKey, token },
    now: Date.now,
  });
  const server = new ServerHandshake({
    identity,
    lookupUser: () => ({ userId: "alice", publicKey: key.publicKey, token }),
    replay: new ReplayGuard(),
    now: Date.now,
  });
  return { hello: client.hello(), server };
}

test("recognizeProbe() knows a whole HTTP/1 head, the h2 preface and a ClientHello, never a Hello", () => {
  assert.equal(recognizeProbe(enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), "http1");
  assert.equal(recognizeProbe(enc.encode("GET / HTTP/1.1\r\nHost: a\r\n")), undefined);
  assert.equal(recognizeProbe(enc.encode("GET /\r\n")), undefined); // too few fixed bytes
  assert.equal(recognizeProbe(H2_PREFACE), "h2");
  assert.equal(recognizeProbe(H2_PREFACE.subarray(0, 20)), undefined);
  const ch = [0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x2c, 0x03, 0x03];
  assert.equal(recognizeProbe(Uint8Array.from(ch)), "tls");
  assert.equal(recognizeProbe(Uint8Array.from(ch.map((b, i) => (i === 8 ? 0x2d : b)))), undefined);
  for (let i = 0; i < 200; i++) assert.equal(recognizeProbe(realHello().hello), undefined);
});

test("EarlyGate: on TLS a first record that is not a whole Hello is a probe; on TCP a split Hello passes", () => {
  const { hello, server } = realHello();
  const tcp = new EarlyGate(server, false);
  assert.equal(tcp.push(hello.subarray(0, 40)).type, "need_more");
  assert.equal(tcp.push(hello.subarray(40)).type, "send");

  const split = realHello();
  const tls = new EarlyGate(split.server, true);
  const step = tls.push(split.hello.subarray(0, 200));
  assert.equal(step.type, "probe");
  assert.deepEqual(tls.received(), split.hello.subarray(0, 200));

  const whole = realHello();
  assert.equal(new EarlyGate(whole.server, true).push(whole.hello).type, "send");

  const http = realHello();
  const gate = new EarlyGate(http.server, false);
  const head = enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.deepEqual(gate.push(head), {
    type: "probe",
    reason: "an HTTP/1 request instead of a hello",
  });
  assert.deepEqual(gate.received(), head);
});
