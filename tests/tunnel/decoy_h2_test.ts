/**
 * The decoy's HTTP/2 connection (`lib/tunnel/decoy_h2.ts`) on loopback
 * sockets with short timers: the GOAWAYs nginx sends (before a request, at
 * the header timer from the accept, which a PING does not extend; after an
 * answer, at the keep-alive timer), the web server's own preface dropped,
 * and a prober that stops reading closed at the send timer instead of
 * holding the connection forever.
 */
import assert from "node:assert/strict";
import { ProberAckForward, serveH2 } from "../../lib/tunnel/decoy_h2.ts";
import { TimedReader } from "../../lib/tunnel/reader.ts";
import { H2_PREFACE } from "../../lib/tunnel/probe_shape.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import { step, test } from "../support/deadline.ts";

const HEADER_MS = 600;
const KEEPALIVE_MS = 1200;
const ACTIVE_MS = 800;
const SETTINGS = [0, 0, 0, 4, 0, 0, 0, 0, 0];
const PING = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
const GET = (() => {
  const block = [0x82, 0x87, 0x84, 0x41, 9, ...new TextEncoder().encode("localhost")];
  return [0, 0, block.length, 1, 5, 0, 0, 0, 1, ...block];
})();

const quiet = silentLogger;

/** A loopback HTTP/2 web server (hyper, as the decoy's) answering every request with `body`. */
function backend(body: string) {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response(body));
}

/** A loopback TCP pair: `server` for serveH2, `prober` for the test. */
async function pair(): Promise<{ server: Deno.TcpConn; prober: Deno.TcpConn }> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [server, prober] = await Promise.all([
    l.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port }),
  ]);
  l.close();
  return { server, prober };
}

/** Frames the prober read, as `type/flags/stream`, each with the ms since `t0` it came at. */
async function readFrames(conn: Deno.TcpConn, t0: number): Promise<[string, number][]> {
  const out: [string, number][] = [];
  let held: number[] = [];
  const buf = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    held.push(...buf.subarray(0, n));
    while (held.length >= 9) {
      const len = (held[0]! << 16) | (held[1]! << 8) | held[2]!;
      if (held.length < 9 + len) break;
      const stream = ((held[5]! & 0x7f) << 24) | (held[6]! << 16) | (held[7]! << 8) | held[8]!;
      let name = `${held[3]}/${held[4]}/${stream}`;
      if (held[3] === 7) {
        name += ` last ${(held[9]! << 24) | (held[10]! << 16) | (held[11]! << 8) | held[12]!}`;
      }
      out.push([name, performance.now() - t0]);
      held = held.slice(9 + len);
    }
  }
  out.push(["EOF", performance.now() - t0]);
  return out;
}

/** Runs serveH2 for the prober's `input` (and `later` bytes at times); the frames it got back. */
async function session(input: number[], later: [number, number[]][] = []) {
  await using web = backend("<html>page</html>");
  const { server, prober } = await pair();
  const t0 = performance.now();
  const served = serveH2(
    server,
    new TimedReader(server),
    Uint8Array.from([...H2_PREFACE, ...input]),
    {
      backend: { hostname: "127.0.0.1", port: web.addr.port },
      startedAt: Date.now(),
      headerMs: HEADER_MS,
      keepaliveMs: KEEPALIVE_MS,
      activeIdleMs: ACTIVE_MS,
      log: quiet,
    },
  ).finally(() => server.close());
  for (const [at, bytes] of later) {
    await new Promise((r) => setTimeout(r, at - (performance.now() - t0)));
    await prober.write(Uint8Array.from(bytes));
  }
  const frames = await step("the decoy's frames up to its close", readFrames(prober, t0));
  await step("serveH2 to return", served);
  prober.close();
  return frames;
}

test("serveH2: no request: the SETTINGS ACK, then GOAWAY (last 0) at the header timer, a PING notwithstanding", async () => {
  const frames = await session(SETTINGS, [[HEADER_MS / 2, PING]]);
  const names = frames.map(([n]) => n);
  // hyper's own SETTINGS and WINDOW_UPDATE are dropped: only its ACK and the PING's answer.
  assert.deepEqual(names, ["4/1/0", "6/1/0", "7/0/0 last 0", "EOF"]);
  const goawayAt = frames[2]![1];
  assert.ok(
    goawayAt >= HEADER_MS - 50 && goawayAt < HEADER_MS + 1500,
    `GOAWAY at ${goawayAt.toFixed(0)} ms, the header timer is ${HEADER_MS} ms`,
  );
});

test("serveH2: after an answer, GOAWAY (last 1) at the keep-alive timer from the answer", async () => {
  const frames = await session([...SETTINGS, ...GET]);
  const names = frames.map(([n]) => n);
  assert.deepEqual(names.slice(-2), ["7/0/0 last 1", "EOF"]);
  assert.ok(names.includes("1/4/1"), `the answer's HEADERS: ${names}`);
  assert.ok(names.some((n) => n === "0/1/1"), `the answer's last DATA: ${names}`);
  assert.ok(!names.includes("4/0/0") && !names.includes("8/0/0"), `no second preface: ${names}`);
  const answeredAt = frames.find(([n]) => n === "0/1/1")![1];
  const goawayAt = frames.at(-2)![1];
  assert.ok(
    goawayAt - answeredAt >= KEEPALIVE_MS - 50 && goawayAt - answeredAt < KEEPALIVE_MS + 1500,
    `GOAWAY ${
      (goawayAt - answeredAt).toFixed(0)
    } ms after the answer, keep-alive ${KEEPALIVE_MS} ms`,
  );
});

test("serveH2: a prober that stops reading is closed at the send timer, not held forever", async () => {
  await using web = backend("x".repeat(600));
  let writes = 0;
  let closed = false;
  let wake: ((n: null) => void) | undefined;
  // The prober's side of the connection: it never reads, so no write ever completes.
  const conn = {
    read: () => new Promise<number | null>((r) => (wake = r)),
    write: () => {
      writes++;
      return new Promise<number>(() => {});
    },
    closeWrite: () => Promise.resolve(),
    close() {
      closed = true;
      wake?.(null);
    },
  };
  const t0 = performance.now();
  await step(
    "serveH2 to give up on a prober that does not read",
    serveH2(conn, new TimedReader(conn), Uint8Array.from([...H2_PREFACE, ...SETTINGS, ...GET]), {
      backend: { hostname: "127.0.0.1", port: web.addr.port },
      startedAt: Date.now(),
      headerMs: HEADER_MS,
      keepaliveMs: KEEPALIVE_MS,
      activeIdleMs: ACTIVE_MS,
      log: quiet,
    }),
  );
  const ms = performance.now() - t0;
  assert.ok(writes >= 1, "it tried to answer");
  assert.ok(closed, "the connection was closed");
  assert.ok(ms < ACTIVE_MS + 1500, `returned after ${ms.toFixed(0)} ms`);
});

test("ProberAckForward moves the prober's SETTINGS ACK forward, however its bytes are split", () => {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0]; // INITIAL_WINDOW_SIZE 65536
  const ack = [0, 0, 0, 4, 1, 0, 0, 0, 0];
  const cases: [string, number[], number[]][] = [
    [
      "preface, SETTINGS, GET, then the prober's ACK",
      [...H2_PREFACE, ...settings, ...GET, ...ack, ...PING],
      [...H2_PREFACE, ...settings, ...ack, ...GET, ...PING],
    ],
    [
      "an empty SETTINGS, the ACK at once",
      [...H2_PREFACE, ...SETTINGS, ...ack, ...GET],
      [...H2_PREFACE, ...SETTINGS, ...ack, ...GET],
    ],
    [
      "only the first ACK is the prober's for nginx's SETTINGS",
      [...H2_PREFACE, ...SETTINGS, ...ack, ...ack],
      [...H2_PREFACE, ...SETTINGS, ...ack, ...ack],
    ],
    ["no SETTINGS first: unchanged", [...H2_PREFACE, ...PING, ...ack], [
      ...H2_PREFACE,
      ...PING,
      ...ack,
    ]],
  ];
  for (const [name, input, want] of cases) {
    const bytes = Uint8Array.from(input);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const f = new ProberAckForward();
      const got = hex(f.push(bytes.slice(0, cut))) + hex(f.push(bytes.slice(cut)));
      assert.equal(got, hex(Uint8Array.from(want)), `${name} (cut at ${cut})`);
    }
  }
});
