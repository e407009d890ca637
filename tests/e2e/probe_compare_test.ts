/**
 * The server's port against a real nginx, side by side: the same probes
 * (HTTP/1.0, HTTP/1.1, HTTP/0.9, HTTP/2, garbage lines, short random bytes,
 * TLS inside TLS, a replayed Hello, a partial request, silence) sent to both
 * over TLS, and what comes back compared: status line, header names in
 * order, body, when the first byte came and how and when the connection
 * ended. Both run with the same short timers (nginx's
 * `client_header_timeout` and `keepalive_timeout`, the decoy's
 * `decoyTimeouts`) so the closes can be watched in seconds. Then
 * `nmap -sV` must recognise the server's port as nginx.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadClientConfig, loadServerConfig, loadUsers } from "../../lib/config/mod.ts";
import { ClientHandshake } from "../../lib/handshake/mod.ts";
import { EventHub, EventLog, type Logger } from "../../lib/observe/mod.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { type ServerHandle, startServer } from "../../lib/tunnel/server.ts";
import { credentialsOf } from "../../lib/tunnel/link.ts";
import { DECOY_PAGE } from "../../lib/tunnel/decoy_http.ts";
import { H2_PREFACE } from "../../lib/tunnel/probe_shape.ts";
import { step, test } from "../support/deadline.ts";
import { startNginx } from "../support/nginx.ts";
import { spawnWithDeadline } from "../support/process.ts";
import { Logs, startPair } from "./_harness.ts";

const HEADER_S = 3;
const KEEPALIVE_S = 5;
/** How long each probe is watched. */
const WATCH_MS = 7_500;

const enc = new TextEncoder();

/** How a probe went: bytes back, and how and when the connection ended. */
interface Observation {
  /** ms from the probe's first byte to the answer's first byte. */
  firstAt: number | undefined;
  /** "close_notify": a clean TLS close; "cut": TCP closed without it; "open": still open. */
  end: "close_notify" | "cut" | "open";
  endAt: number | undefined;
  text: string;
}

async function observe(
  port: number,
  caPem: string,
  bytes: Uint8Array,
  alpn = "http/1.1",
): Promise<Observation> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true); // as curl and browsers do
  const conn = await Deno.startTls(tcp, {
    hostname: "localhost",
    caCerts: [caPem],
    alpnProtocols: [alpn],
  });
  try {
    await conn.handshake();
    const t0 = performance.now();
    if (bytes.length > 0) await conn.write(bytes);
    const buf = new Uint8Array(65536);
    let text = "";
    let firstAt: number | undefined;
    let end: Observation["end"] = "open";
    let endAt: number | undefined;
    const until = t0 + WATCH_MS;
    while (true) {
      const left = until - performance.now();
      if (left <= 0) break;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        conn.read(buf).catch(() => "cut" as const),
        new Promise<"watch over">((res) => (timer = setTimeout(() => res("watch over"), left))),
      ]);
      clearTimeout(timer);
      if (r === "watch over") break;
      if (r === null || r === "cut") {
        end = r === null ? "close_notify" : "cut";
        endAt = performance.now() - t0;
        break;
      }
      firstAt ??= performance.now() - t0;
      // One char per byte (TextDecoder's "latin1" is windows-1252, which remaps 0x80..0x9f).
      text += String.fromCharCode(...buf.subarray(0, r));
    }
    return { firstAt, end, endAt, text };
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the peer
    }
  }
}

/** The comparable part of an observation: timings as classes, the Date-like values dropped. */
function signature(o: Observation): Record<string, string> {
  const when = (ms: number | undefined, base = 0): string => {
    if (ms === undefined) return "-";
    if (ms < 1000) return "at once";
    const near = (s: number) => Math.abs(ms - base - s * 1000) < 1500;
    if (near(HEADER_S)) return "at client_header_timeout";
    if (near(KEEPALIVE_S)) return "at keepalive_timeout";
    return `after ${(ms / 1000).toFixed(1)} s`;
  };
  const [head, ...rest] = o.text.split("\r\n\r\n");
  const lines = (head ?? "").split("\r\n");
  const isHttp = /^HTTP\/1\.1 \d{3} /.test(lines[0] ?? "");
  return {
    answer: o.firstAt === undefined ? "none" : when(o.firstAt),
    status: isHttp
      ? lines[0]!
      : o.text === ""
      ? "-"
      : isH2(o.text)
      ? "(HTTP/2 SETTINGS … GOAWAY)"
      : "(no status line: HTTP/0.9 body)",
    headers: isHttp ? lines.slice(1).map((l) => l.split(":")[0]).join(", ") : "-",
    body: isHttp ? rest.join("\r\n\r\n") : isH2(o.text) ? h2Frames(o.text) : o.text,
    close: o.end === "open"
      ? "still open"
      : `${o.end} ${
        when(o.endAt, o.text.includes("keep-alive") && o.endAt! > 1000 ? o.firstAt ?? 0 : 0)
      }`,
  };
}

/** Does the answer start with nginx's SETTINGS frame? */
function isH2(text: string): boolean {
  return text.startsWith("\x00\x00\x12\x04");
}

/**
 * HTTP/2 frames as `type/flags/stream` and the payload in hex, but for
 * HEADERS, whose HPACK block carries the Date and the page's validators:
 * there only its length class (the block differs between servers).
 */
function h2Frames(text: string): string {
  const b = Uint8Array.from(text, (c) => c.charCodeAt(0));
  const out: string[] = [];
  for (let at = 0; at + 9 <= b.length;) {
    const len = (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;
    const stream = new DataView(b.buffer, at + 5, 4).getUint32(0) & 0x7fffffff;
    const payload = b.subarray(at + 9, at + 9 + len);
    const shown = b[at + 3] === 0x01
      ? `(${len > 0 ? "block" : "empty"})`
      : Array.from(payload, (x) => x.toString(16).padStart(2, "0")).join("");
    out.push(`${b[at + 3]}/${b[at + 4]}/${stream} ${shown}`);
    at += 9 + len;
  }
  return out.join(" | ");
}

/** A probe: its name, its bytes, and the ALPN protocol it offers (default http/1.1). */
type Probe = [name: string, bytes: Uint8Array, alpn?: string];

/** Sends every probe to both servers at once; prints the table; each must get what nginx gives. */
async function compareProbes(
  nginx: { port: number; caPem: string },
  ours: { server: ServerHandle; caPem: string },
  probes: Probe[],
): Promise<void> {
  const results = await step(
    "the probes to both servers",
    Promise.all(probes.map(async ([name, bytes, alpn]) => {
      const [n, o] = await Promise.all([
        observe(nginx.port, nginx.caPem, bytes, alpn),
        observe(ours.server.addr.port, ours.caPem, bytes, alpn),
      ]);
      return { name, nginx: signature(n), ours: signature(o) };
    })),
  );
  const table = results.map((r) =>
    `| ${r.name} | ${r.nginx.status} | ${r.nginx.answer} / ${r.nginx.close} | ` +
    `${r.ours.status} | ${r.ours.answer} / ${r.ours.close} | ${
      JSON.stringify(r.nginx) === JSON.stringify(r.ours) ? "same" : "DIFFERENT"
    } |`
  );
  console.log(
    [
      "| probe | nginx status | nginx answer / close | NitroSocks status | NitroSocks answer / close | |",
      "| --- | --- | --- | --- | --- | --- |",
      ...table,
    ].join("\n"),
  );
  for (const r of results) assert.deepEqual(r.ours, r.nginx, r.name);
}

/** Starts a server from a fresh `init` directory with the decoy's timers shortened. */
async function startDecoyServer(
  logs: Logs,
  over: { transport: "wss"; ws: { path: string } } | Record<never, never> = {},
): Promise<{ server: ServerHandle; dir: string; caPem: string; hello: () => Uint8Array }> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-probes-" });
  await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
  const out = join(dir, "alice.yml");
  const config = await loadServerConfig(join(dir, "server.yml"));
  const hub = new EventHub();
  const server = await startServer({
    ...config,
    // The probes all come at once from 127.0.0.1: more than one source's share (limits.per_ip,
    // limits.pre_login.per_ip) that a real server keeps; nginx has no such caps to compare.
    limits: {
      ...config.limits,
      perIp: { connections: 256, handshakesPerSecond: 256 },
      preLogin: { ...config.limits.preLogin, perIp: 256 },
    },
    users: (await loadUsers(config.usersFile)).users,
    log: logs.logger("server") as Logger,
    events: hub,
    decoyTimeouts: { headerMs: HEADER_S * 1000, keepaliveMs: KEEPALIVE_S * 1000 },
    ...over,
  });
  await addUser("alice", { dir, out, server: `127.0.0.1:${server.addr.port}` });
  const profile = await loadClientConfig(out);
  // A real client's Hello, as a recording prober would have it.
  const credentials = await credentialsOf(profile);
  const hello = () =>
    new ClientHandshake({ serverPublicKey: profile.serverKey, credentials, now: Date.now }).hello();
  return {
    server,
    dir,
    caPem: await Deno.readTextFile(join(dir, "tls", "ca.crt")),
    hello,
  };
}

/** A fixed stand-in for "short random bytes" (the first byte is not a method letter). */
const RANDOM_16 = Uint8Array.from([
  0x9c,
  0x3e,
  0x71,
  0x05,
  0xd2,
  0x88,
  0x4b,
  0xf0,
  0x1a,
  0x67,
  0xe3,
  0x2c,
  0xb9,
  0x54,
  0x0d,
  0xa6,
]);

/**
 * HEADERS on stream 1 (END_STREAM, END_HEADERS) for `GET /` with HPACK from
 * the static table: :method GET, :scheme https, :path /, and :authority
 * localhost as a literal without indexing.
 */
const H2_GET_HEAD = h2Get(1);

/** `GET /` on `stream` as H2_GET_HEAD, without HPACK's dynamic table (every request alike). */
function h2Get(stream: number): number[] {
  const block = [0x82, 0x87, 0x84, 0x01, 9, ...enc.encode("localhost")];
  const id = [(stream >>> 24) & 0x7f, (stream >>> 16) & 0xff, (stream >>> 8) & 0xff, stream & 0xff];
  return [0, 0, block.length, 0x01, 0x05, ...id, ...block];
}

/**
 * A frame of an unknown type (0xfa, which a receiver must ignore) on stream
 * 0 with 20,000 bytes of payload: larger than HTTP/2's 16 KiB default, as
 * nginx's SETTINGS (MAX_FRAME_SIZE 16777215) allow at once.
 */
const H2_BIG_UNKNOWN_FRAME = (() => {
  const n = 20_000;
  return [n >> 16, (n >> 8) & 0xff, n & 0xff, 0xfa, 0, 0, 0, 0, 0, ...new Array(n).fill(0x61)];
})();

/** A TLS 1.2/1.3 ClientHello record, as a client of a TLS-in-TLS proxy sends first. */
function clientHelloRecord(): Uint8Array {
  const body = [
    0x03,
    0x03,
    ...new Array(32).fill(0x42),
    0x00, // version, random, no session id
    0x00,
    0x02,
    0x13,
    0x01,
    0x01,
    0x00, // one suite, null compression
    0x00,
    0x00, // no extensions
  ];
  const hs = [0x01, 0x00, 0x00, body.length, ...body];
  return Uint8Array.from([0x16, 0x03, 0x01, 0x00, hs.length, ...hs]);
}

test.slow("probes get what a real nginx gives them: status, headers, body, timing, close", async () => {
  const logs = new Logs();
  await using nginx = await startNginx({
    page: DECOY_PAGE,
    headerTimeoutS: HEADER_S,
    keepaliveTimeoutS: KEEPALIVE_S,
  });
  const ours = await startDecoyServer(logs);
  const events = new EventLog(ours.server.events);
  try {
    // The replayed Hello: first the real one (the server answers it), then the copy.
    const hello = ours.hello();
    const first = await observe(ours.server.addr.port, ours.caPem, hello);
    assert.ok(first.firstAt !== undefined && !/^HTTP/.test(first.text), "a real Hello is answered");

    const probes: Probe[] = [
      ["HTTP/1.0 GET /", enc.encode("GET / HTTP/1.0\r\n\r\n")],
      ["HTTP/1.1 GET / (keep-alive)", enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")],
      [
        "HTTP/1.1 HEAD /",
        enc.encode("HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
      ],
      [
        "HTTP/1.1 GET /missing",
        enc.encode("GET /missing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
      ],
      [
        "HTTP/1.1 POST /",
        enc.encode(
          "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        ),
      ],
      ["HTTP/1.1 without Host", enc.encode("GET / HTTP/1.1\r\n\r\n")],
      // Range requests: the page's Accept-Ranges promises them (one multipart probe only: nginx
      // numbers multipart boundaries in the order it answers them).
      ...([
        ["one range", "Range: bytes=0-9"],
        ["a suffix range", "Range: bytes=-5"],
        ["two ranges (multipart)", "Range: bytes=0-9,20-29"],
        ["an unsatisfiable range", "Range: bytes=700-"],
        ["a range past a stale If-Range", 'Range: bytes=0-9\r\nIf-Range: "stale"'],
        ["overlapping ranges past the size", "Range: bytes=0-700,5-6"],
        ["If-None-Match: *", "If-None-Match: *"],
        ["an If-Match of another ETag", 'If-Match: "x"'],
        ["If-Match: *", "If-Match: *"],
        ["an If-Unmodified-Since that is no date", "If-Unmodified-Since: soon"],
        ["an If-Modified-Since that is no date", "If-Modified-Since: soon"],
      ] as const).map(([name, header]): [string, Uint8Array] => [
        `GET / with ${name}`,
        enc.encode(`GET / HTTP/1.1\r\nHost: localhost\r\n${header}\r\nConnection: close\r\n\r\n`),
      ]),
      [
        "HEAD / with a range",
        enc.encode(
          "HEAD / HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n",
        ),
      ],
      ["HTTP/2.0 in a request line", enc.encode("GET / HTTP/2.0\r\nHost: localhost\r\n\r\n")],
      ["HTTP/0.9 GET /", enc.encode("GET /\r\n")],
      ["garbage line", enc.encode("hello world\r\n")],
      ["garbage upper-case line", enc.encode("HELLO\r\n\r\n")],
      ["16 random bytes", RANDOM_16],
      ["TLS ClientHello inside TLS", clientHelloRecord()],
      ["replayed Hello", hello],
      ["partial request head", enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n")],
      ["nothing (silence)", new Uint8Array(0)],
      ["HTTP/2 preface with ALPN http/1.1", H2_PREFACE],
      // nmap -sV's probes (nmap-service-probes) and path tricks.
      ["nmap GenericLines", enc.encode("\r\n\r\n")],
      ["nmap HTTPOptions", enc.encode("OPTIONS / HTTP/1.0\r\n\r\n")],
      ["nmap RTSPRequest", enc.encode("OPTIONS / RTSP/1.0\r\n\r\n")],
      ["nmap Help", enc.encode("HELP\r\n")],
      [
        "nmap FourOhFourRequest",
        enc.encode("GET /nice%20ports%2C/Tri%6Eity.txt%2ebak HTTP/1.0\r\n\r\n"),
      ],
      ["escaped path to the page", enc.encode("GET /./a/../index%2ehtml HTTP/1.0\r\n\r\n")],
      ["path above the root", enc.encode("GET /../etc/passwd HTTP/1.0\r\n\r\n")],
      ["bad escape in the path", enc.encode("GET /%zz HTTP/1.0\r\n\r\n")],
      ["absolute-form target", enc.encode("GET http://localhost/ HTTP/1.1\r\nHost: x\r\n\r\n")],
      [
        "two pipelined requests",
        enc.encode(
          "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ),
      ],
      [
        "HTTP/1.1 request with ALPN h2",
        enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        "h2",
      ],
      ["a wrong HTTP/2 preface with ALPN h2", enc.encode("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), "h2"],
      // Over ALPN h2 both speak first: SETTINGS and WINDOW_UPDATE as the TLS handshake ends.
      ["nothing (silence) with ALPN h2", new Uint8Array(0), "h2"],
      ["part of a preface with ALPN h2", H2_PREFACE.subarray(0, 10), "h2"],
      [
        "the HTTP/2 preface and SETTINGS with ALPN h2",
        Uint8Array.from([...H2_PREFACE, 0, 0, 0, 4, 0, 0, 0, 0, 0]),
        "h2",
      ],
      [
        "the HTTP/2 preface, SETTINGS and a PING with ALPN h2",
        Uint8Array.from([
          ...H2_PREFACE,
          ...[0, 0, 0, 4, 0, 0, 0, 0, 0],
          ...[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        ]),
        "h2",
      ],
      [
        "the HTTP/2 preface, SETTINGS and a GET / with ALPN h2 (then idle)",
        Uint8Array.from([...H2_PREFACE, ...[0, 0, 0, 4, 0, 0, 0, 0, 0], ...H2_GET_HEAD]),
        "h2",
      ],
      [
        "a 20,000-byte frame (over the 16 KiB default) before a GET / (ALPN h2)",
        Uint8Array.from([
          ...H2_PREFACE,
          ...[0, 0, 0, 4, 0, 0, 0, 0, 0],
          ...H2_BIG_UNKNOWN_FRAME,
          ...H2_GET_HEAD,
        ]),
        "h2",
      ],
      [
        "a request on an even stream, which a client may not open (ALPN h2)",
        Uint8Array.from([...H2_PREFACE, ...[0, 0, 0, 4, 0, 0, 0, 0, 0], ...h2Get(2)]),
        "h2",
      ],
      ["replayed Hello with ALPN h2", hello, "h2"],
    ];
    await compareProbes(nginx, ours, probes);
    // Every probe was the decoy's: none got past the gate.
    assert.equal(events.of("login").length, 0);
    assert.equal(
      events.of("refusal", (e) => e.reason === "probe" && /replayed hello/.test(e.detail)).length,
      2,
    );
  } finally {
    events.close();
    await ours.server.close();
    await Deno.remove(ours.dir, { recursive: true });
  }
});

test.slow("transport wss: visitors other than the WebSocket get what nginx gives them, on nginx's timers", async () => {
  const logs = new Logs();
  await using nginx = await startNginx({
    page: DECOY_PAGE,
    headerTimeoutS: HEADER_S,
    keepaliveTimeoutS: KEEPALIVE_S,
  });
  // The upgrade is read within the decoy's header timer (3 s here, not its own 10 s), and the
  // decoy counts that timer from the accept, before the upgrade was read.
  const ours = await startDecoyServer(logs, { transport: "wss", ws: { path: "/tunnel" } });
  try {
    await compareProbes(nginx, ours, [
      ["nothing (silence)", new Uint8Array(0)],
      ["partial request head", enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n")],
      ["HTTP/1.1 GET / (keep-alive)", enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")],
      [
        "GET of the WebSocket's path without an upgrade",
        enc.encode("GET /tunnel HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
      ],
      ["garbage line", enc.encode("hello world\r\n")],
      [
        "part of an upgrade's head at the WebSocket's path",
        enc.encode("GET /tunnel HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"),
      ],
      ["HTTP/2 preface with ALPN http/1.1", H2_PREFACE],
      ["nothing (silence) with ALPN h2", new Uint8Array(0), "h2"],
      [
        "the HTTP/2 preface and SETTINGS with ALPN h2",
        Uint8Array.from([...H2_PREFACE, 0, 0, 0, 4, 0, 0, 0, 0, 0]),
        "h2",
      ],
    ]);
  } finally {
    await ours.server.close();
    await Deno.remove(ours.dir, { recursive: true });
  }
});

/** curl's view of an HTTP/2 answer's head (`-D -`), for `path` with these request headers. */
async function h2Raw(
  port: number,
  caPem: string,
  dir: string,
  path: string,
  headers: string[] = [],
): Promise<string> {
  const ca = join(dir, `ca-${port}.pem`);
  await Deno.writeTextFile(ca, caPem);
  const out = await spawnWithDeadline("curl", {
    args: [
      "-sS",
      "--http2",
      "--cacert",
      ca,
      "--resolve",
      `localhost:${port}:127.0.0.1`,
      ...headers.flatMap((h) => ["-H", h]),
      "-D",
      "-",
      "-o",
      "/dev/null",
      `https://localhost:${port}${path}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }, 30_000).output;
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

/** The status line and header names of an HTTP/2 answer, in order. */
async function h2Head(...request: Parameters<typeof h2Raw>): Promise<string> {
  const lines = (await h2Raw(...request)).trim().split("\r\n");
  return [lines[0]!.trim(), ...lines.slice(1).map((l) => l.split(":")[0])].join(" | ");
}

test("HTTP/2 (ALPN h2) gets nginx's status and header names in nginx's order", async () => {
  const logs = new Logs();
  await using nginx = await startNginx({ page: DECOY_PAGE });
  const ours = await startDecoyServer(logs);
  try {
    for (const path of ["/", "/missing"]) {
      const want = await h2Head(nginx.port, nginx.caPem, ours.dir, path);
      assert.match(want, /^HTTP\/2 (200|404) \| server \| date/);
      assert.equal(await h2Head(ours.server.addr.port, ours.caPem, ours.dir, path), want, path);
    }
    // Validators and ranges over HTTP/2 too.
    // Each server's own ETag and Last-Modified, for the validators that name them.
    const page = async (port: number, caPem: string) => {
      const head = await h2Raw(port, caPem, ours.dir, "/");
      const value = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(head)![1]!.trim();
      return { etag: value("etag"), time: value("last-modified") };
    };
    type Page = Awaited<ReturnType<typeof page>>;
    const cases: [string, (p: Page) => string[], RegExp][] = [
      ["one range", () => ["Range: bytes=0-9"], /^HTTP\/2 206 /],
      ["two ranges", () => ["Range: bytes=0-9,20-29"], /^HTTP\/2 206 /],
      ["an unsatisfiable range", () => ["Range: bytes=700-"], /^HTTP\/2 416 /],
      ["a stale If-Range", () => ["Range: bytes=0-9", 'If-Range: "stale"'], /^HTTP\/2 200 /],
      ["If-None-Match of the page", (p) => [`If-None-Match: ${p.etag}`], /^HTTP\/2 304 /],
      [
        "If-Modified-Since the page's time",
        (p) => [`If-Modified-Since: ${p.time}`],
        /^HTTP\/2 304 /,
      ],
      ["an If-Match of another ETag", () => ['If-Match: "x"'], /^HTTP\/2 412 /],
    ];
    const tags = {
      nginx: await page(nginx.port, nginx.caPem),
      ours: await page(ours.server.addr.port, ours.caPem),
    };
    for (const [name, headers, status] of cases) {
      const want = await h2Head(nginx.port, nginx.caPem, ours.dir, "/", headers(tags.nginx));
      assert.match(want, status, name);
      const got = await h2Head(
        ours.server.addr.port,
        ours.caPem,
        ours.dir,
        "/",
        headers(tags.ours),
      );
      assert.equal(got, want, name);
    }
  } finally {
    await ours.server.close();
    await Deno.remove(ours.dir, { recursive: true });
  }
});

test.slow("nmap -sV recognises the server's port as an nginx web server over TLS", async () => {
  const logs = new Logs();
  const ours = await startDecoyServer(logs);
  try {
    const port = ours.server.addr.port;
    const out = await spawnWithDeadline("nmap", {
      args: ["-sV", "-Pn", "-n", "-p", String(port), "--host-timeout", "150s", "127.0.0.1"],
      stdout: "piped",
      stderr: "piped",
    }, 180_000).output;
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
    console.log(text.split("\n").filter((l) => l.startsWith(`${port}/`)).join("\n"));
    assert.match(text, new RegExp(`^${port}/tcp\\s+open\\s+(ssl/http|https)\\s+nginx`, "m"));
    // An unrecognised service makes nmap print a fingerprint to submit.
    assert.doesNotMatch(text, /SF-Port|unrecognized despite returning data/);
  } finally {
    await ours.server.close();
    await Deno.remove(ours.dir, { recursive: true });
  }
});

test("on plain TCP a complete short HTTP request is answered at once, not after the gate's idle wait", async () => {
  await using pair = await startPair({ transport: "tcp", noClient: true });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort });
  try {
    conn.setNoDelay(true);
    // 27 bytes: fewer than the gate needs to judge a Hello (34).
    const t0 = performance.now();
    await conn.write(enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    const ms = performance.now() - t0;
    assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 OK\r\n/);
    // The gate's idle wait for a partial Hello is 2 s: this answer must not have waited for it.
    assert.ok(ms < 1500, `answered after ${ms.toFixed(0)} ms`);
    assert.equal(
      pair.serverEvents.of("refusal", (e) => /an HTTP\/1 request instead of a hello/.test(e.detail))
        .length,
      1,
    );
  } finally {
    conn.close();
  }
});

test("a TLS 1.2-only client completes the handshake with both, as with nginx", async () => {
  const logs = new Logs();
  await using nginx = await startNginx({ page: DECOY_PAGE });
  const ours = await startDecoyServer(logs);
  try {
    const protocol = async (port: number) => {
      const out = await spawnWithDeadline("openssl", {
        args: ["s_client", "-connect", `127.0.0.1:${port}`, "-tls1_2", "-servername", "localhost"],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }, 20_000).output;
      return /^New, (TLSv1\.2), Cipher is (?!\(NONE\))/m.exec(new TextDecoder().decode(out.stdout))
        ?.[1];
    };
    assert.equal(await protocol(nginx.port), "TLSv1.2");
    assert.equal(await protocol(ours.server.addr.port), "TLSv1.2");
  } finally {
    await ours.server.close();
    await Deno.remove(ours.dir, { recursive: true });
  }
});
