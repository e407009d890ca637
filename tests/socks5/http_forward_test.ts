/**
 * The HTTP proxy's absolute-form side (lib/socks5/http_connect.ts): the
 * forward step and its rewritten head, the response head made ready for
 * keep-alive, where a chunked body ends, and the PAC file answered locally.
 */
import { strict as assert } from "node:assert";
import {
  ChunkedBodyEnd,
  HttpConnectParser,
  type HttpConnectStep,
  pacResponse,
  parseHttpConnect,
  proxyAutoConfig,
  rewriteResponseHead,
} from "../../lib/socks5/mod.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const enc = (s: string) => te.encode(s);

function forward(text: string, users?: Map<string, string>): HttpConnectStep {
  return new HttpConnectParser({
    absoluteForm: true,
    ...(users === undefined ? {} : { auth: { users } }),
  }).push(te.encode(text));
}

Deno.test("absolute-form GET becomes an origin-form request on port 80, proxy headers removed", () => {
  const step = forward(
    "GET http://example.test/a/b?c=d HTTP/1.1\r\nHost: example.test\r\nProxy-Connection: keep-alive\r\n" +
      "Proxy-Authorization: Basic dTpw\r\nAccept: */*\r\n\r\nNEXT",
    new Map([["u", "p"]]),
  );
  assert.equal(step.type, "forward");
  if (step.type !== "forward") return;
  assert.deepEqual(step.request, {
    command: "connect",
    addressType: "domain",
    host: "example.test",
    port: 80,
  });
  assert.equal(
    td.decode(step.head),
    "GET /a/b?c=d HTTP/1.1\r\nhost: example.test\r\naccept: */*\r\nConnection: close\r\n\r\n",
  );
  assert.deepEqual(step.body, { kind: "none" });
  assert.equal(step.keepAlive, true);
  assert.equal(td.decode(step.rest), "NEXT");
});

Deno.test("absolute-form: port, IPv6, a missing Host, bodies and Connection: close", () => {
  const a = forward(
    "POST http://[::1]:8080 HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
  );
  if (a.type !== "forward") throw new Error(a.type);
  assert.deepEqual([a.request.host, a.request.port], ["::1", 8080]);
  assert.deepEqual(a.body, { kind: "length", length: 5 });
  assert.equal(a.keepAlive, false);
  assert.equal(a.expectContinue, true);
  assert.equal(
    td.decode(a.head),
    "POST / HTTP/1.1\r\nHost: [::1]:8080\r\ncontent-length: 5\r\nConnection: close\r\n\r\n",
  );
  const b = forward("PUT http://h.test/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
  if (b.type !== "forward") throw new Error(b.type);
  assert.deepEqual(b.body, { kind: "chunked" });
  assert.equal(b.keepAlive, false); // HTTP/1.0 without keep-alive
});

Deno.test("absolute-form refusals: https, smuggling framings, unknown codings, credentials", () => {
  const cases: [string, number][] = [
    ["GET https://h.test/ HTTP/1.1\r\n\r\n", 400],
    ["GET /relative HTTP/1.1\r\n\r\n", 400],
    [
      "POST http://h.test/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      400,
    ],
    ["POST http://h.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400],
    ["POST http://h.test/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501],
  ];
  for (const [text, status] of cases) {
    const s = forward(text);
    assert.equal(s.type === "fail" ? s.status : s.type, status, text);
  }
  // Two different lengths name both, not only the first as if it were the bad one.
  const twice = forward(cases[3]![0]);
  assert.match(
    twice.type === "fail" ? td.decode(twice.send) : twice.type,
    /Content-Length given 2 times with different values \("3", "4"\)/,
  );
  const noAuth = forward("GET http://h.test/ HTTP/1.1\r\n\r\n", new Map([["u", "p"]]));
  assert.equal(noAuth.type === "fail" ? noAuth.status : noAuth.type, 407);
  // Without the option, CONNECT only.
  const plain = new HttpConnectParser().push(te.encode("GET http://h.test/ HTTP/1.1\r\n\r\n"));
  assert.equal(plain.type === "fail" ? plain.status : plain.type, 405);
});

Deno.test("rewriteResponseHead() keeps the connection only when the response's end is delimited", () => {
  const cl = rewriteResponseHead(
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close",
    "GET",
  )!;
  assert.equal(
    td.decode(cl.head),
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n",
  );
  assert.equal(cl.keepAlive, true);
  assert.equal(
    rewriteResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "GET")!.keepAlive,
    true,
  );
  assert.equal(rewriteResponseHead("HTTP/1.1 304 Not Modified", "GET")!.keepAlive, true);
  assert.equal(rewriteResponseHead("HTTP/1.1 200 OK", "HEAD")!.keepAlive, true);
  const eof = rewriteResponseHead("HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5", "GET")!;
  assert.equal(td.decode(eof.head), "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n");
  assert.equal(eof.keepAlive, false);
  assert.equal(rewriteResponseHead("SSH-2.0-OpenSSH", "GET"), null);
});

Deno.test("ChunkedBodyEnd finds the end across any split, with extensions and trailers", () => {
  const body =
    "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n";
  const all = te.encode(body + "GET /next");
  for (let cut = 1; cut < body.length; cut++) {
    const end = new ChunkedBodyEnd();
    const a = end.push(all.subarray(0, cut));
    assert.equal(a, cut, `cut ${cut}`);
    const b = end.push(all.subarray(cut));
    assert.equal(a + b, body.length, `cut ${cut}`);
    assert.equal(end.done, true);
  }
  const bare = new ChunkedBodyEnd();
  assert.equal(bare.push(te.encode("0\r\n\r\nX")), 5);
  assert.equal(bare.done, true);
});

Deno.test("ChunkedBodyEnd refuses malformed sizes and data without its CRLF", () => {
  for (const bad of ["x\r\n", "\r\n", "2\r\nabX\r\n", "fffffffffffffff\r\n"]) {
    assert.equal(new ChunkedBodyEnd().push(te.encode(bad)), -1, JSON.stringify(bad));
  }
});

Deno.test("localPaths: a GET or HEAD of /proxy.pac is answered locally, before any credentials", () => {
  const users = new Map([["carol", "pa55word"]]);
  const opts = { absoluteForm: true, localPaths: ["/proxy.pac"], auth: { users } };
  const get = parseHttpConnect(
    enc("GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1:1080\r\n\r\n"),
    opts,
  );
  assert.deepEqual(get, { type: "local", method: "GET", path: "/proxy.pac" });
  const head = parseHttpConnect(enc("HEAD /proxy.pac HTTP/1.0\r\n\r\n"), opts);
  assert.deepEqual(head, { type: "local", method: "HEAD", path: "/proxy.pac" });
  // Any other origin-form path, or another method, is not the proxy's to answer.
  const other = parseHttpConnect(enc("GET /other HTTP/1.1\r\n\r\n"), opts);
  assert.equal(other.type === "fail" && other.status, 407);
  const post = parseHttpConnect(enc("POST /proxy.pac HTTP/1.1\r\n\r\n"), opts);
  assert.equal(post.type === "fail" && post.status, 407);
  // Without the option the path is an ordinary (refused) request.
  const plain = parseHttpConnect(enc("GET /proxy.pac HTTP/1.1\r\n\r\n"));
  assert.equal(plain.type === "fail" && plain.status, 405);
  // Malformed headers are still refused.
  const bad = parseHttpConnect(enc("GET /proxy.pac HTTP/1.1\r\nno colon\r\n\r\n"), opts);
  assert.equal(bad.type === "fail" && bad.status, 400);
});

Deno.test("proxyAutoConfig() sends everything to the port, SOCKS5 first, HTTP only with credentials", () => {
  const find = (pac: string) =>
    new Function(`${pac}; return FindProxyForURL("http://a.example/", "a.example");`)();
  assert.equal(
    find(proxyAutoConfig({ host: "127.0.0.1", port: 1080 })),
    "SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:1080",
  );
  assert.equal(find(proxyAutoConfig({ host: "::1", port: 8, auth: true })), "PROXY [::1]:8");
  const r = new TextDecoder().decode(pacResponse("GET", { host: "127.0.0.1", port: 1080 }));
  const [head, body] = r.split("\r\n\r\n");
  assert.match(head!, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head!, /\r\nContent-Type: application\/x-ns-proxy-autoconfig\r\n/);
  assert.match(
    head!,
    new RegExp(`\r\nContent-Length: ${new TextEncoder().encode(body!).length}\r\n`),
  );
  assert.equal(
    new TextDecoder().decode(pacResponse("HEAD", { host: "127.0.0.1", port: 1080 })),
    `${head}\r\n\r\n`,
  );
});
