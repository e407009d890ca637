/**
 * The HTTP/2 server preface's pure parts against the vectors of
 * tests/vectors/h2_preface_v1.json (docs/PROTOCOL.md part 2 section
 * 6.2.2): the bytes, the client's skipper at every split of its input, the
 * fallback's filter at every split, and the decoy's frame watch.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BackendPrefaceFilter,
  H2_SERVER_PREFACE,
  isGoawayHeader,
  ServerPrefaceSkipper,
} from "../../lib/handshake/h2_preface.ts";
import { FrameScanner, goawayFrame, StreamWatch } from "../../lib/tunnel/decoy_h2.ts";
import { test } from "../support/deadline.ts";

interface Vectors {
  server_preface: string;
  skipper: { name: string; input: string; output: string; skipped: boolean }[];
  filter: { name: string; input: string; output: string }[];
}

const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/h2_preface_v1.json", import.meta.url)),
);

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

/** Feeds `input` in the given pieces; what came out, all together. */
function feed(push: (chunk: Uint8Array) => Uint8Array, input: Uint8Array, cuts: number[]): string {
  let out = "";
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    out += hex(push(input.slice(at, cut)));
    at = cut;
  }
  return out;
}

test("H2_SERVER_PREFACE is the vector: nginx 1.22's SETTINGS and WINDOW_UPDATE, 40 bytes", () => {
  assert.equal(hex(H2_SERVER_PREFACE), vectors.server_preface);
  assert.equal(H2_SERVER_PREFACE.length, 40);
});

test("the client's skipper passes on exactly the vectors' bytes, however the reads split them", () => {
  for (const v of vectors.skipper) {
    const input = unhex(v.input);
    for (let cut = 0; cut <= input.length; cut++) {
      const s = new ServerPrefaceSkipper();
      assert.equal(feed((c) => s.push(c), input, [cut]), v.output, `${v.name} (cut at ${cut})`);
      assert.equal(s.skipped, v.skipped, v.name);
      assert.ok(s.done, v.name);
    }
    // One byte at a time.
    const s = new ServerPrefaceSkipper();
    assert.equal(
      feed((c) => s.push(c), input, Array.from({ length: input.length }, (_, i) => i)),
      v.output,
      `${v.name} (byte by byte)`,
    );
  }
});

test("the skipper holds fewer than 9 undecided bytes and nothing else", () => {
  const s = new ServerPrefaceSkipper();
  assert.equal(s.push(unhex("0000120400")).length, 0);
  assert.equal(hex(s.held), "0000120400");
  assert.equal(s.done, false);
});

test("a ServerHello's random first bytes are never taken for a preface (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 9, maxLength: 300 }), (b) => {
      // The odds of a random start matching are below 2^-64; fast-check draws zeros often,
      // so a start of a real SETTINGS header is excluded as the ServerHello cannot have it.
      fc.pre(!(b[0] === 0 && b[1] === 0 && b[3] === 4 && b[4] === 0));
      const s = new ServerPrefaceSkipper();
      assert.equal(hex(s.push(b)), hex(b));
      assert.equal(s.skipped, false);
    }),
    { numRuns: 2000 },
  );
});

test("the fallback's filter drops the web server's own preface, however the reads split it", () => {
  for (const v of vectors.filter) {
    const input = unhex(v.input);
    for (let cut = 0; cut <= input.length; cut++) {
      for (const cut2 of [cut, Math.min(input.length, cut + 7)]) {
        const f = new BackendPrefaceFilter();
        assert.equal(feed((c) => f.push(c), input, [cut, cut2]), v.output, `${v.name} (${cut})`);
      }
    }
  }
});

test("isGoawayHeader() knows the decoy's GOAWAY and nothing shorter or on a stream", () => {
  assert.ok(isGoawayHeader(goawayFrame(0, 1)));
  assert.ok(!isGoawayHeader(goawayFrame(0).subarray(0, 8)));
  assert.ok(!isGoawayHeader(unhex("000008070000000001")));
  assert.equal(hex(goawayFrame(3)), "000008070000000000" + "00000003" + "00000000");
});

test("FrameScanner finds frame headers across reads, skipping payloads", () => {
  const frames = unhex(
    "000000040000000000" + "000008060000000000" + "0102030405060708" + "000001010500000001" + "82",
  );
  for (let cut = 0; cut <= frames.length; cut++) {
    const s = new FrameScanner();
    const got = [...s.push(frames.slice(0, cut)), ...s.push(frames.slice(cut))];
    assert.deepEqual(got, [
      { length: 0, type: 4, flags: 0, stream: 0 },
      { length: 8, type: 6, flags: 0, stream: 0 },
      { length: 1, type: 1, flags: 5, stream: 1 },
    ], `cut at ${cut}`);
  }
});

test("StreamWatch: requests open on the prober's HEADERS and end on END_STREAM or RST_STREAM", () => {
  const w = new StreamWatch();
  assert.equal(w.anyRequest, false);
  w.fromClient({ length: 0, type: 6, flags: 0, stream: 0 }, 1); // a PING opens nothing
  assert.equal(w.anyRequest, false);
  w.fromClient({ length: 20, type: 1, flags: 5, stream: 1 }, 2);
  w.fromClient({ length: 20, type: 1, flags: 5, stream: 3 }, 2);
  assert.equal(w.open, 2);
  w.fromServer({ length: 90, type: 1, flags: 4, stream: 1 }, 3); // headers, not the end
  assert.equal(w.open, 2);
  w.fromServer({ length: 615, type: 0, flags: 1, stream: 1 }, 4);
  assert.equal(w.idleSince, undefined);
  w.fromClient({ length: 4, type: 3, flags: 0, stream: 3 }, 5); // the prober resets stream 3
  assert.deepEqual([w.open, w.idleSince, w.lastStream], [0, 5, 3]);
  // Trailers on an old stream and an even stream open nothing.
  w.fromClient({ length: 5, type: 1, flags: 5, stream: 3 }, 6);
  w.fromClient({ length: 5, type: 1, flags: 5, stream: 4 }, 6);
  assert.deepEqual([w.open, w.idleSince], [0, 5]);
});

test("the decoy's filter also drops every SETTINGS ACK and a GOAWAY's debug data, however split", () => {
  const ack = "000000040100000000";
  const settings = "000006040000000000" + "000400010000";
  const goaway = "000018070000000000" + "00000001" + "00000001" +
    "72657175657374204845414445525321";
  const headers = "000001010500000001" + "88";
  const input = unhex(settings + ack + headers + ack + goaway);
  const want = headers + "000008070000000000" + "00000001" + "00000001";
  for (let cut = 0; cut <= input.length; cut++) {
    const f = new BackendPrefaceFilter({ dropAcks: true, trimGoaway: true });
    assert.equal(feed((c) => f.push(c), input, [cut]), want, `cut at ${cut}`);
  }
  // Without the options the same bytes keep the ACKs and the debug data.
  const plain = new BackendPrefaceFilter();
  assert.equal(feed((c) => plain.push(c), input, []), ack + headers + ack + goaway);
});
