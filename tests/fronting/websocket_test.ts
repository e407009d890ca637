import assert from "node:assert/strict";
import fc from "fast-check";
import {
  acceptKey,
  checkUpgradeRequest,
  checkUpgradeResponse,
  closePayload,
  encodeFrame,
  encodeFrameHeader,
  FrameDecoder,
  type FrameDecoder as FrameDecoderType,
  type FrameEvent,
  mask,
  Opcode,
  parseHttpHead,
  upgradeRequest,
  upgradeResponse,
} from "../../lib/fronting/mod.ts";

const te = new TextEncoder();
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
const bytes = (...b: number[]) => new Uint8Array(b);
const KEY = bytes(0x37, 0xfa, 0x21, 0x3d);

/** Feeds `chunks` one by one and collects every event but "more". */
function decodeAll(d: FrameDecoderType, chunks: Uint8Array[]): FrameEvent[] {
  const out: FrameEvent[] = [];
  for (const c of chunks) {
    let o = 0;
    for (;;) {
      const e = d.next(c, o);
      if (e.type === "more") break;
      out.push(e.type === "data" ? { ...e, bytes: e.bytes.slice() } : e);
      if (e.type === "error") return out;
      o = e.end;
    }
  }
  return out;
}

function dataOf(events: FrameEvent[]): string {
  return new TextDecoder().decode(
    new Uint8Array(events.flatMap((e) => e.type === "data" ? [...e.bytes] : [])),
  );
}

// RFC 6455 section 5.7 examples.
Deno.test("encodeFrame() writes the RFC 6455 section 5.7 examples", () => {
  assert.equal(hex(encodeFrame(Opcode.TEXT, te.encode("Hello"))), "81 05 48 65 6c 6c 6f");
  assert.equal(
    hex(encodeFrame(Opcode.TEXT, te.encode("Hello"), KEY)),
    "81 85 37 fa 21 3d 7f 9f 4d 51 58",
  );
  assert.equal(hex(encodeFrame(Opcode.TEXT, te.encode("Hel"), undefined, false)), "01 03 48 65 6c");
  assert.equal(hex(encodeFrame(Opcode.CONTINUATION, te.encode("lo"))), "80 02 6c 6f");
  assert.equal(hex(encodeFrame(Opcode.PING, te.encode("Hello"))), "89 05 48 65 6c 6c 6f");
  assert.equal(
    hex(encodeFrame(Opcode.PONG, te.encode("Hello"), KEY)),
    "8a 85 37 fa 21 3d 7f 9f 4d 51 58",
  );
  assert.equal(hex(encodeFrame(Opcode.BINARY, new Uint8Array(256)).subarray(0, 4)), "82 7e 01 00");
  assert.equal(
    hex(encodeFrame(Opcode.BINARY, new Uint8Array(65536)).subarray(0, 10)),
    "82 7f 00 00 00 00 00 01 00 00",
  );
});

Deno.test("FrameDecoder reads the RFC 6455 section 5.7 examples", () => {
  const client = () => new FrameDecoder({ role: "client", allowText: true });
  assert.equal(
    dataOf(decodeAll(client(), [bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f)])),
    "Hello",
  );
  const server = new FrameDecoder({ role: "server", allowText: true });
  assert.equal(
    dataOf(
      decodeAll(server, [bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58)]),
    ),
    "Hello",
  );
  assert.equal(
    dataOf(
      decodeAll(client(), [bytes(0x01, 0x03, 0x48, 0x65, 0x6c), bytes(0x80, 0x02, 0x6c, 0x6f)]),
    ),
    "Hello",
  );
  const ping = decodeAll(client(), [bytes(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f)]);
  assert.equal(ping.length, 1);
  assert.equal(ping[0]!.type, "ping");
  assert.equal(ping[0]!.type === "ping" && new TextDecoder().decode(ping[0]!.payload), "Hello");
  const pong = decodeAll(new FrameDecoder({ role: "server" }), [
    bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
  ]);
  assert.equal(pong[0]!.type === "pong" && new TextDecoder().decode(pong[0]!.payload), "Hello");
  const big = new Uint8Array(65536 + 10);
  big.set([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
  big.fill(7, 10);
  const ev = decodeAll(client(), [big]);
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!.type === "data" && ev[0]!.bytes.length, 65536);
});

Deno.test("acceptKey() gives the RFC 6455 section 1.3 example", () => {
  assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("FrameDecoder gives the same bytes whatever the chunking, with control frames between fragments", () => {
  const key = bytes(1, 2, 3, 4);
  const payload = new Uint8Array(1000).map((_, i) => (i * 7) & 0xff);
  const frames = [
    encodeFrame(Opcode.BINARY, payload.subarray(0, 300), key, false),
    encodeFrame(Opcode.PING, te.encode("p"), key),
    encodeFrame(Opcode.CONTINUATION, payload.subarray(300, 301), key, false),
    encodeFrame(Opcode.CONTINUATION, payload.subarray(301), key, true),
    encodeFrame(Opcode.CLOSE, closePayload(1000, "bye"), key),
  ];
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let o = 0;
  for (const f of frames) {
    all.set(f, o);
    o += f.length;
  }
  for (const size of [1, 2, 3, 5, 13, 64, 1000, all.length]) {
    const chunks: Uint8Array[] = [];
    const copy = all.slice(); // decoding unmasks in place
    for (let i = 0; i < copy.length; i += size) chunks.push(copy.subarray(i, i + size));
    const ev = decodeAll(new FrameDecoder({ role: "server" }), chunks);
    const got = new Uint8Array(ev.flatMap((e) => e.type === "data" ? [...e.bytes] : []));
    assert.deepEqual(got, payload, `chunk size ${size}`);
    assert.deepEqual(ev.filter((e) => e.type !== "data").map((e) => e.type), ["ping", "close"]);
    const close = ev.at(-1)!;
    assert.ok(close.type === "close" && close.code === 1000 && close.reason === "bye");
  }
});

Deno.test("FrameDecoder refuses what section 5 forbids, with the close code to send", () => {
  const cases: [string, "server" | "client", Uint8Array, number, RegExp][] = [
    ["unmasked client frame", "server", bytes(0x82, 0x01, 0), 1002, /unmasked/],
    ["masked server frame", "client", bytes(0x82, 0x81, 1, 2, 3, 4, 0), 1002, /masked server/],
    ["RSV1 set", "client", bytes(0xc2, 0x01, 0), 1002, /reserved bits/],
    ["reserved opcode 3", "client", bytes(0x83, 0x00), 1002, /reserved opcode 3/],
    ["reserved control opcode 0xb", "client", bytes(0x8b, 0x00), 1002, /reserved opcode 11/],
    ["fragmented ping", "client", bytes(0x09, 0x00), 1002, /fragmented control/],
    ["ping of 126 bytes", "client", bytes(0x89, 0x7e, 0x00, 0x7e), 1002, /over 125/],
    ["continuation first", "client", bytes(0x80, 0x00), 1002, /continuation outside/],
    ["message in a message", "client", bytes(0x02, 0x00, 0x82, 0x00), 1002, /inside a fragmented/],
    ["16-bit length under 126", "client", bytes(0x82, 0x7e, 0x00, 0x05), 1002, /not minimal/],
    [
      "64-bit length under 65536",
      "client",
      bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 200),
      1002,
      /not minimal/,
    ],
    [
      "64-bit length top bit",
      "client",
      bytes(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0),
      1002,
      /top bit/,
    ],
    ["text message", "client", bytes(0x81, 0x01, 0x41), 1003, /text/],
    ["close of one byte", "client", bytes(0x88, 0x01, 0x03), 1002, /1 byte/],
    ["close code 1005", "client", bytes(0x88, 0x02, 0x03, 0xed), 1002, /invalid close code 1005/],
    ["close reason not UTF-8", "client", bytes(0x88, 0x03, 0x03, 0xe8, 0xff), 1007, /UTF-8/],
  ];
  for (const [name, role, frame, code, reason] of cases) {
    const ev = decodeAll(new FrameDecoder({ role }), [frame]);
    const last = ev.at(-1);
    assert.ok(last?.type === "error", `${name}: ${JSON.stringify(ev)}`);
    assert.equal(last.code, code, name);
    assert.match(last.reason, reason, name);
  }
});

Deno.test("FrameDecoder refuses a message over maxMessage at the header, fragments summed", () => {
  const d = new FrameDecoder({ role: "client", maxMessage: 100 });
  const ok = decodeAll(d, [encodeFrame(Opcode.BINARY, new Uint8Array(100))]);
  assert.equal(ok.length, 1);
  const d2 = new FrameDecoder({ role: "client", maxMessage: 100 });
  const ev = decodeAll(d2, [
    encodeFrame(Opcode.BINARY, new Uint8Array(60), undefined, false),
    // Only the header of the second fragment: refused before any payload arrives.
    bytes(0x80, 41),
  ]);
  assert.equal(ev.length, 2);
  assert.ok(ev[1]!.type === "error" && ev[1]!.code === 1009);
  // Stays failed.
  assert.equal(d2.next(bytes(0x82, 0x00), 0).type, "error");
  // A header claiming 2^53 bytes is refused the same way, nothing allocated.
  const d3 = new FrameDecoder({ role: "client" });
  const e3 = d3.next(bytes(0x82, 0x7f, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0);
  assert.ok(e3.type === "error" && e3.code === 1009);
});

Deno.test("encodeFrameHeader() refuses oversized control frames and bad mask keys", () => {
  const h = new Uint8Array(14);
  assert.throws(() => encodeFrameHeader(h, 0, { opcode: Opcode.PING, fin: true, length: 126 }), {
    name: "RangeError",
    message: /control frame of 126 bytes/,
  });
  assert.throws(
    () => encodeFrameHeader(h, 0, { opcode: 2, fin: true, length: 1, maskKey: bytes(1) }),
    { name: "RangeError", message: /mask key of 1 bytes/ },
  );
  assert.equal(encodeFrameHeader(h, 0, { opcode: 2, fin: true, length: 70000, maskKey: KEY }), 14);
});

Deno.test("mask() is its own inverse at every key phase", () => {
  const src = new Uint8Array(37).map((_, i) => i);
  for (let phase = 0; phase < 4; phase++) {
    const a = src.slice();
    mask(a, a, KEY, phase);
    assert.notDeepEqual(a, src);
    mask(a, a, KEY, phase);
    assert.deepEqual(a, src);
  }
  // Masking in two parts equals masking at once.
  const whole = src.slice();
  mask(whole, whole, KEY);
  const parts = src.slice();
  mask(parts.subarray(0, 5), parts.subarray(0, 5), KEY, 0);
  mask(parts.subarray(5), parts.subarray(5), KEY, 5);
  assert.deepEqual(parts, whole);
});

Deno.test("the opening handshake: request checked at the path, response checked against the key", () => {
  const key = "dGhlIHNhbXBsZSBub25jZQ==";
  const req = parseHttpHead(
    te.encode(upgradeRequest({ host: "cdn.example", path: "/ws", key }) + "xx"),
  );
  assert.ok(req.type === "head");
  assert.equal(req.head.headers.get("host"), "cdn.example");
  assert.equal(checkUpgradeRequest(req.head, "/ws"), key);
  assert.equal(checkUpgradeRequest(req.head, "/other"), undefined);
  const variants: [string, string][] = [
    ["POST /ws HTTP/1.1", "method"],
    ["GET /ws HTTP/1.0", "version"],
    ["GET /ws/ HTTP/1.1", "path"],
  ];
  for (const [start, what] of variants) {
    const r = parseHttpHead(
      te.encode(
        `${start}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
      ),
    );
    assert.ok(r.type === "head");
    assert.equal(checkUpgradeRequest(r.head, "/ws"), undefined, what);
  }
  const withQuery = parseHttpHead(
    te.encode(
      `GET /ws?x=1 HTTP/1.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: ${key}\r\n\r\n`,
    ),
  );
  assert.ok(withQuery.type === "head" && checkUpgradeRequest(withQuery.head, "/ws") === key);
  const res = parseHttpHead(te.encode(upgradeResponse(key)));
  assert.ok(res.type === "head");
  assert.equal(checkUpgradeResponse(res.head, key), undefined);
  assert.equal(
    checkUpgradeResponse(res.head, "AAAAAAAAAAAAAAAAAAAAAA=="),
    "wrong Sec-WebSocket-Accept",
  );
  const notFound = parseHttpHead(te.encode("HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\n"));
  assert.ok(
    notFound.type === "head" && checkUpgradeResponse(notFound.head, key) === "HTTP 404 Not Found",
  );
});

Deno.test("parseHttpHead() waits for the blank line, within its bound, and refuses binary", () => {
  assert.equal(parseHttpHead(te.encode("GET / HTTP/1.1\r\nHost: a\r\n")).type, "partial");
  const long = parseHttpHead(te.encode("GET / HTTP/1.1\r\nX: " + "a".repeat(9000)));
  assert.ok(long.type === "invalid" && /longer than 8192/.test(long.reason));
  assert.equal(parseHttpHead(bytes(0x16, 0x03, 0x01, 0x02, 0x00)).type, "invalid");
  assert.equal(parseHttpHead(te.encode("GET / HTTP/1.1\r\nno colon\r\n\r\n")).type, "invalid");
  assert.equal(parseHttpHead(te.encode("GET /\r\n\r\n")).type, "invalid");
});

Deno.test("FrameDecoder: any stream in any frames, with pings between, under any chunking, decodes to the same bytes (property)", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          data: fc.uint8Array({ maxLength: 300 }),
          fin: fc.boolean(),
          ping: fc.boolean(),
          key: fc.uint8Array({ minLength: 4, maxLength: 4 }),
        }),
        { maxLength: 12 },
      ),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
      (frames, cuts) => {
        const wire: number[] = [];
        const want: number[] = [];
        let inMessage = false;
        frames.forEach((f, i) => {
          const last = i === frames.length - 1;
          const fin = f.fin || last;
          wire.push(
            ...encodeFrame(inMessage ? Opcode.CONTINUATION : Opcode.BINARY, f.data, f.key, fin),
          );
          want.push(...f.data);
          inMessage = !fin;
          if (f.ping) wire.push(...encodeFrame(Opcode.PING, f.data.subarray(0, 125), f.key));
        });
        const bytes = new Uint8Array(wire);
        const chunks: Uint8Array[] = [];
        for (let o = 0, c = 0; o < bytes.length; c++) {
          const n = cuts[c % cuts.length]!;
          chunks.push(bytes.subarray(o, o + n));
          o += n;
        }
        const ev = decodeAll(new FrameDecoder({ role: "server" }), chunks);
        assert.ok(ev.every((e) => e.type === "data" || e.type === "ping"), JSON.stringify(ev));
        assert.deepEqual(
          new Uint8Array(ev.flatMap((e) => e.type === "data" ? [...e.bytes] : [])),
          new Uint8Array(want),
        );
        assert.equal(
          ev.filter((e) => e.type === "ping").length,
          frames.filter((f) => f.ping).length,
        );
      },
    ),
    { numRuns: 300 },
  );
});
