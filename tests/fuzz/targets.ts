/**
 * What `deno task fuzz` drives: every decoder and state machine that reads
 * bytes or text a peer, a front or a user controls. Each target says where
 * its seeds come from (the vectors in `tests/vectors/` and inputs the real
 * encoders generate), how one input is run (push-based decoders get it in
 * chunks derived from the input, so a replay feeds the same chunks), and
 * which errors are its documented refusals. Anything else a run throws is a
 * crash; a run over 100 ms is a hang (`tests/fuzz/fuzz.ts`).
 *
 * A run returns a short outcome signature (the step or the error code); the
 * fuzzer keeps inputs that produce a signature it has not seen, which steers
 * mutation past the first check of each decoder.
 *
 * @module
 */
import { ConfigError, ProtocolError } from "../../lib/errors.ts";
import {
  decodeHelloBody,
  decodeResponseBody,
  decodeResultBody,
  decodeResumeResponseBody,
  decodeServerHelloBody,
  encodeHelloBody,
  encodeResponseBody,
  encodeResultBody,
  encodeResumeResponseBody,
  encodeServerHelloBody,
} from "../../lib/handshake/messages.ts";
import { decodeTicketKeys } from "../../lib/handshake/ticket.ts";
import { decodeFrames, Mux } from "../../lib/mux/mod.ts";
import { createRecordOpener, createRecordSealer } from "../../lib/record/mod.ts";
import {
  decodeRekeyBody,
  decodeRekeyPayload,
  decodeReleaseBody,
  decodeResumeFrame,
  encodeResumeFrame,
} from "../../lib/session/mod.ts";
import { ChunkedBodyEnd, HttpConnectParser } from "../../lib/socks5/http_connect.ts";
import { decodeReply, decodeRequest } from "../../lib/socks5/message.ts";
import { Socks5Error } from "../../lib/socks5/reply.ts";
import { Socks5ServerHandshake } from "../../lib/socks5/server.ts";
import { decodeUdpPacket } from "../../lib/socks5/udp.ts";
import { FrameDecoder, parseHttpHead } from "../../lib/fronting/websocket.ts";
import { parseProxyV2 } from "../../lib/fronting/proxy_v2.ts";
import { parseRequestHead } from "../../lib/tunnel/decoy_http.ts";
import { recognizeProbe } from "../../lib/tunnel/probe_shape.ts";
import {
  decodeShareLink,
  parseClientConfig,
  parseRoute,
  parseServerConfig,
  parseServerUrl,
  parseUsers,
  shareLinkProfile,
} from "../../lib/config/mod.ts";
import { parseDuration, parseQuota, parseSize } from "../../lib/config/units.ts";
import { chunksOf } from "./_mutate.ts";
import { BackendPrefaceFilter, ServerPrefaceSkipper } from "../../lib/handshake/h2_preface.ts";
import { FrameScanner, ProberAckForward, StreamWatch } from "../../lib/tunnel/decoy_h2.ts";
import { makePair, T0 } from "../handshake/_helpers.ts";

/** One thing the fuzzer drives. */
export interface FuzzTarget {
  /** Short name, e.g. `socks5.server`. */
  name: string;
  /** The initial corpus. */
  seeds(): Promise<Uint8Array[]> | Uint8Array[];
  /** Runs one input; returns an outcome signature. Throws only for a refusal or a bug. */
  run(input: Uint8Array): Promise<string> | string;
  /** True when `e` is one of this target's documented refusals (not a finding). */
  refusal(e: unknown): boolean;
  /** Tokens for text mutation (text formats only). */
  dictionary?: readonly string[];
  /** The largest input to make (default `MAX_INPUT_BYTES`, 64 KiB). */
  maxInput?: number;
  /** A run slower than this is a hang (default 100 ms). */
  slowMs?: number;
}

/**
 * Config files come from the operator's disk and are parsed once per start
 * or reload, not per connection: they are fuzzed up to 16 KiB with a 1 s
 * bound, since the YAML library collects every error of a broken file
 * (thousands in 16 KiB of garbage, up to ~300 ms on a loaded machine).
 */
const CONFIG_LIMITS = { maxInput: 16 * 1024, slowMs: 1_000 } as const;

const enc = new TextEncoder();
const dec = new TextDecoder();
const utf8 = (s: string) => enc.encode(s);
const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

const isProtocol = (e: unknown) => e instanceof ProtocolError;
const isConfig = (e: unknown) => e instanceof ConfigError;
const never = () => false;

async function vectors(name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(new URL(`../vectors/${name}`, import.meta.url)));
}

/** Every string value under `v` whose key is one of `keys`, as bytes. */
function hexFields(v: unknown, keys: readonly string[], out: Uint8Array[] = []): Uint8Array[] {
  if (Array.isArray(v)) { for (const x of v) hexFields(x, keys, out); }
  else if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === "string" && keys.includes(k) && /^([0-9a-f]{2})*$/.test(x)) {
        out.push(hex(x));
      } else hexFields(x, keys, out);
    }
  }
  return out;
}

/** Runs each decoder on `input`: "ok" or the `ProtocolError` code it refused with. */
function decodeAll(input: Uint8Array, decoders: ((b: Uint8Array) => unknown)[]): string[] {
  return decoders.map((f) => {
    try {
      f(input);
      return "ok";
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return e.code;
    }
  });
}

function outcome(step: { type: string; reason?: string; status?: number }): string {
  return step.status !== undefined ? `${step.type}:${step.status}` : step.type;
}

/**
 * A signature for an error: its class and code, or for another error its
 * class and where it was thrown (the first stack frame in lib/ or tests/).
 */
export function errorSignature(e: unknown): string {
  if (e instanceof ProtocolError) return `ProtocolError:${e.code}`;
  if (e instanceof Socks5Error) return `Socks5Error:${e.reply}`;
  if (e instanceof ConfigError) {
    return `ConfigError:${e.key ?? e.message.replace(/"[^"]*"|\d+/g, "").slice(0, 50)}`;
  }
  if (e instanceof Error) {
    const frame = (e.stack ?? "").split("\n").find((l) => /\/(lib|tests)\//.test(l));
    return `${e.name}@${frame?.replace(/^.*\/(lib|tests)\//, "$1/").replace(/\)$/, "") ?? "?"}`;
  }
  return `thrown:${typeof e}`;
}

// ---------------------------------------------------------------- SOCKS5 and HTTP

/** CONNECT example.com:443, encoded. */
const REQUEST = hex("0501000307" + "6578616d706c652e636f6d" + "01bb");

const SOCKS_USERS = new Map([["alice", "secret"]]);

const socks5Server: FuzzTarget = {
  name: "socks5.server",
  seeds: () => [
    hex("050100" + "050100017f0000010050"),
    hex("050102" + "0105616c69636506736563726574" + "05010003096c6f63616c686f73740050"),
    hex("0502000205030004" + "00000000000000000000000000000001" + "01bb"),
    hex("050100" + "05030001000000000000"),
  ],
  run(input) {
    const withUsers = input.length % 2 === 0;
    const hs = new Socks5ServerHandshake(withUsers ? { users: SOCKS_USERS } : {}, {
      udpAssociate: input.length % 3 === 0,
    });
    const steps: string[] = [];
    for (const c of chunksOf(input)) {
      const step = hs.push(c);
      steps.push(outcome(step));
      if (hs.done) break;
    }
    return steps.slice(-2).join(",");
  },
  refusal: never, // "it never throws" (lib/socks5/server.ts)
};

const socks5Messages: FuzzTarget = {
  name: "socks5.messages",
  seeds: () => [
    REQUEST,
    hex("050100017f0000010050"),
    hex("0500000400000000000000000000000000000001d431"),
    hex("000000017f000001003568656c6c6f"),
  ],
  run(input) {
    const parts: string[] = [];
    for (const f of [decodeRequest, decodeReply]) {
      try {
        f(input);
        parts.push("ok");
      } catch (e) {
        if (!(e instanceof Socks5Error)) throw e;
        parts.push(`${e.reply}`);
      }
    }
    parts.push(decodeUdpPacket(input) === null ? "udp-null" : "udp");
    return parts.join(",");
  },
  refusal: never,
};

const httpConnect: FuzzTarget = {
  name: "http.connect",
  seeds: () =>
    [
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
      "CONNECT [::1]:22 HTTP/1.1\r\nProxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\nSSH-2.0",
      "GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
      "POST http://h:8080/ HTTP/1.1\r\nHost: h:8080\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ].map(utf8),
  run(input) {
    const p = new HttpConnectParser({
      ...(input.length % 2 === 0 ? { auth: { users: SOCKS_USERS } } : {}),
      absoluteForm: true,
      localPaths: ["/proxy.pac"],
    });
    let last = "need_more";
    for (const c of chunksOf(input)) {
      const step = p.push(c);
      last = outcome(step);
      if (step.type !== "need_more") break;
    }
    const body = new ChunkedBodyEnd();
    let used = 0;
    for (const c of chunksOf(input)) {
      used = body.push(c);
      if (used < 0 || body.done) break;
    }
    return `${last},chunked:${used < 0 ? "bad" : body.done ? "done" : "more"}`;
  },
  refusal: never, // "Never throws" (lib/socks5/http_connect.ts)
  dictionary: [
    "CONNECT",
    "GET",
    "HTTP/1.1",
    "HTTP/1.0",
    "\r\n",
    "Host:",
    "Proxy-Authorization: Basic ",
    "Transfer-Encoding: chunked",
    "Content-Length: ",
    "[::1]",
    ":65536",
    "%00",
    "ffffffffffffffff",
    " ",
    "\t",
  ],
};

// ---------------------------------------------------------------- handshake

/** A whole deterministic handshake from the test fixture: each side's messages. */
async function transcript(): Promise<{ toServer: Uint8Array; toClient: Uint8Array }> {
  await Promise.resolve();
  const { client, server } = makePair();
  const hello = client.hello();
  const sh = server.push(hello);
  if (sh.type !== "send") throw new Error("fixture handshake: no ServerHello");
  const resp = client.push(sh.bytes);
  if (resp.type !== "send") throw new Error("fixture handshake: no Response");
  const result = server.push(resp.bytes);
  if (result.type !== "send") throw new Error("fixture handshake: no Result");
  const fin = client.push(result.bytes);
  if (fin.type !== "done") throw new Error("fixture handshake: no Finish");
  const join = (...p: Uint8Array[]) => {
    const out = new Uint8Array(p.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const x of p) (out.set(x, at), at += x.length);
    return out;
  };
  return { toServer: join(hello, resp.bytes, fin.send), toClient: join(sh.bytes, result.bytes) };
}

const handshakeServer: FuzzTarget = {
  name: "handshake.server",
  async seeds() {
    const t = await transcript();
    const v = await vectors("handshake_v1.json");
    return [t.toServer, t.toServer.subarray(0, 200), ...hexFields(v, ["hello"])];
  },
  run(input) {
    const { server } = makePair();
    const steps: string[] = [];
    for (const c of chunksOf(input)) {
      const step = server.push(c);
      steps.push(step.type);
      if (step.type === "probe" || step.type === "reject" || step.type === "done") break;
    }
    return steps.filter((s) => s !== "need_more").join(",") || "need_more";
  },
  refusal: never, // "Never throws for peer input" (lib/handshake/server.ts)
};

const handshakeClient: FuzzTarget = {
  name: "handshake.client",
  async seeds() {
    const t = await transcript();
    return [t.toClient, t.toClient.subarray(0, 100)];
  },
  run(input) {
    const { client } = makePair();
    client.hello();
    let last = "need_more";
    for (const c of chunksOf(input)) {
      const step = client.push(c);
      last = step.type;
      if (step.type === "done") break;
    }
    return last;
  },
  refusal: isProtocol,
};

/** The message bodies, decoded directly (a mutated sealed message never opens). */
const handshakeBodies: FuzzTarget = {
  name: "handshake.bodies",
  seeds() {
    const nonce = new Uint8Array(32).fill(7);
    const fields = {
      version: 1,
      kex: 2,
      aead: 3,
      serverEphemeral: new Uint8Array(32).fill(1),
      mlkemCiphertext: new Uint8Array(1088).fill(2),
      nonce,
      timestampMs: T0,
      paddingLength: 0,
    };
    return [
      encodeHelloBody({
        versions: [1],
        kex: [1, 2],
        aead: [1, 2, 3],
        nonce,
        timestampMs: T0,
        mlkemKey: new Uint8Array(1184).fill(3),
        paddingLength: 3,
      }),
      encodeHelloBody({
        versions: [1, 2],
        kex: [1],
        aead: [3],
        nonce,
        timestampMs: T0,
        paddingLength: 0,
        resume: {
          kind: "session_id",
          identity: new Uint8Array(16).fill(4),
          binder: new Uint8Array(32),
        },
      }),
      encodeServerHelloBody({ ...fields, signature: new Uint8Array(64).fill(9) }),
      encodeResponseBody({ userId: "alice", totpCode: 123456, paddingLength: 2 }),
      encodeResponseBody({ userId: "bob", paddingLength: 0, jwt: "a.b.c" }),
      encodeResultBody({
        sessionId: new Uint8Array(16).fill(5),
        paddingLength: 1,
        ticketFollows: true,
        resumable: true,
      }),
      encodeResumeResponseBody({ paddingLength: 4 }),
    ];
  },
  run(input) {
    const out = decodeAll(input, [
      decodeHelloBody,
      decodeServerHelloBody,
      decodeResponseBody,
      decodeResultBody,
      decodeResumeResponseBody,
    ]);
    return out.join(",");
  },
  refusal: never,
};

// ---------------------------------------------------------------- records, mux, session

const SECRET = new Uint8Array(32).fill(0x42);

const records: FuzzTarget = {
  name: "record.opener",
  async seeds() {
    const sealer = await createRecordSealer("chacha20-poly1305", SECRET);
    const seeds: Uint8Array[] = [];
    for (const n of [0, 1, 100, 1400]) {
      const r = await sealer.seal(new Uint8Array(n).fill(n & 0xff));
      seeds.push(r);
    }
    const v = await vectors("record_v1.json");
    return [...seeds, ...hexFields(v, ["record", "wire"])];
  },
  async run(input) {
    const opener = await createRecordOpener("chacha20-poly1305", SECRET);
    const opened: Promise<Uint8Array>[] = [];
    let framing: unknown;
    try {
      for (const c of chunksOf(input)) opened.push(...opener.push(c));
    } catch (e) {
      framing = e;
    }
    // A record flagged as a DH re-key waits for its mixin (PROTOCOL.md part 4 section 3),
    // which the session hands over after the REKEY exchange: do the same.
    if (opener.awaitingMixin) opener.provideMixin(new Uint8Array(32).fill(1));
    for (const s of await Promise.allSettled(opened)) {
      if (s.status === "rejected" && !isProtocol(s.reason)) throw s.reason;
    }
    if (framing !== undefined) throw framing;
    return `opened:${Math.min(opened.length, 3)}`;
  },
  refusal: isProtocol,
};

/** Record payloads a real client mux produces: OPEN, DATA, FIN, WINDOW_UPDATE, PING... */
function muxPayloads(resume: boolean): Uint8Array[] {
  const client = new Mux({ role: "client", resume });
  const out: Uint8Array[] = [];
  const id = client.open(REQUEST);
  client.send(id, new Uint8Array(300).fill(1));
  client.ping(T0);
  const second = client.open(REQUEST);
  client.finish(id);
  client.reset(second, 1, "bye");
  client.goaway();
  for (let p = client.pull(); p !== null; p = client.pull()) out.push(p.slice());
  return out;
}

const muxFrames: FuzzTarget = {
  name: "mux.frames",
  async seeds() {
    const v = await vectors("datagram_v1.json");
    return [...muxPayloads(false), ...muxPayloads(true), ...hexFields(v, ["frame", "record"])];
  },
  run(input) {
    const out: string[] = [];
    for (const resume of [false, true]) {
      try {
        out.push(`${decodeFrames(input, { resume }).length}`);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        out.push(e.code);
      }
    }
    return out.join(",");
  },
  refusal: never,
};

const muxReceive: FuzzTarget = {
  name: "mux.receive",
  seeds: () => [...muxPayloads(false), ...muxPayloads(true)],
  run(input) {
    // The first byte picks resume on or off; the rest is a run of records (u16 length each).
    const mux = new Mux({ role: "server", resume: (input[0] ?? 0) % 2 === 1 });
    let events = 0;
    let at = 1;
    while (at < input.length) {
      const n = ((input[at] ?? 0) << 8 | (input[at + 1] ?? 0)) % 2048;
      const payload = input.subarray(at + 2, at + 2 + n);
      at += 2 + n;
      events += mux.receive(payload, T0 + at).length;
      while (mux.pull() !== null) { /* drain what it answers */ }
    }
    return `events:${Math.min(events, 4)}`;
  },
  refusal: isProtocol,
};

const sessionFrames: FuzzTarget = {
  name: "session.frames",
  async seeds() {
    const v = await vectors("session_frames_v1.json");
    return [
      encodeResumeFrame({ received: 5n, stateLost: false }),
      ...hexFields(v, ["frame", "payload", "body"]),
      ...hexFields(await vectors("record_rekey_v1.json"), ["body", "init", "reply"]),
    ];
  },
  run(input) {
    const out = decodeAll(input, [decodeResumeFrame, decodeRekeyBody, decodeReleaseBody]);
    out.push(decodeRekeyPayload(input) === undefined ? "short" : "payload");
    return out.join(",");
  },
  refusal: never,
};

// ---------------------------------------------------------------- fronts and the gate

const wsFrames: FuzzTarget = {
  name: "ws.frames",
  seeds: () => [
    hex("8203010203"),
    hex("8283a1b2c3d4a0b0c0"),
    hex("880203e8"),
    hex("027e0100" + "00".repeat(256) + "8000"),
    hex("89007f7f"),
  ],
  run(input) {
    const out: string[] = [];
    for (const role of ["client", "server"] as const) {
      const d = new FrameDecoder({ role, maxMessage: 4096 });
      let last = "more";
      for (const c of chunksOf(input)) {
        let o = 0;
        for (let guard = 0; guard < 100_000; guard++) {
          const e = d.next(c, o);
          last = e.type;
          if (e.type === "more" || e.type === "error") break;
          if ("end" in e && typeof e.end === "number") {
            if (e.end <= o && e.type !== "data") break;
            o = e.end;
          }
        }
        if (last === "error") break;
      }
      out.push(last);
    }
    return out.join(",");
  },
  refusal: never,
};

const HTTP_HEADS = [
  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
  "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  "HEAD /index.html HTTP/1.0\r\n\r\n",
  "GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n",
  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
];

const httpHeads: FuzzTarget = {
  name: "http.heads",
  seeds: () => [
    ...HTTP_HEADS.map(utf8),
    hex("16030100300100002c0303" + "00".repeat(44)),
  ],
  run(input) {
    const a = parseHttpHead(input);
    const b = parseRequestHead(input);
    const shape = recognizeProbe(input) ?? "none";
    return `${(a as { type?: string }).type ?? "?"},${
      (b as { type?: string }).type ?? "?"
    },${shape}`;
  },
  refusal: never,
  dictionary: ["\r\n", "HTTP/1.1", "HTTP/9.9", "Host:", "%", "..", "/", "Upgrade: websocket"],
};

/** Concatenates what `push` returns for each chunk, as hex. */
function pushAll(push: (c: Uint8Array) => Uint8Array, chunks: Uint8Array[]): string {
  return chunks.map((c) => Array.from(push(c), (x) => x.toString(16).padStart(2, "0")).join(""))
    .join("");
}

/**
 * The HTTP/2 preface code (docs/PROTOCOL.md part 2 section 6.2.2) on one
 * byte stream: the client's skipper must pass on a suffix of its input and
 * the fallback's filter a subsequence of whole frames, and the decoy's ACK
 * forwarder at most one frame more, each the same however the input is cut;
 * the decoy's frame scanner and stream watch must not throw.
 */
const h2Preface: FuzzTarget = {
  name: "h2.preface",
  seeds: async () => {
    const v = await vectors("h2_preface_v1.json") as {
      skipper: { input: string }[];
      filter: { input: string }[];
    };
    return [...v.skipper, ...v.filter].map((c) => hex(c.input));
  },
  run(input) {
    const chunks = chunksOf(input);
    const skipper = new ServerPrefaceSkipper();
    const skipped = pushAll((c) => skipper.push(c), chunks);
    const whole = new ServerPrefaceSkipper();
    const hexInput = Array.from(input, (x) => x.toString(16).padStart(2, "0")).join("");
    const once = pushAll((c) => whole.push(c), [input]);
    if (skipped !== once) throw new Error("the skipper's output depends on how reads split");
    const held = Array.from(skipper.held, (x) => x.toString(16).padStart(2, "0")).join("");
    if (!hexInput.endsWith(skipped + held)) {
      throw new Error("the skipper passed on bytes that are not a suffix of its input");
    }
    const filter = new BackendPrefaceFilter();
    const filtered = pushAll((c) => filter.push(c), chunks);
    const filteredOnce = pushAll((c) => new BackendPrefaceFilter().push(c), [input]);
    if (filtered !== filteredOnce) throw new Error("the filter's output depends on the split");
    if (filtered.length > hexInput.length) throw new Error("the filter made bytes");
    const forward = new ProberAckForward();
    const forwarded = pushAll((c) => forward.push(c), chunks);
    if (forwarded !== pushAll((c) => new ProberAckForward().push(c), [input])) {
      throw new Error("the ACK forwarder's output depends on the split");
    }
    if (forwarded.length > hexInput.length + 18) throw new Error("the ACK forwarder made bytes");
    const scanner = new FrameScanner();
    const watch = new StreamWatch();
    let frames = 0;
    for (const c of chunks) {
      for (const f of scanner.push(c)) {
        frames++;
        if (f.stream % 2 === 1) watch.fromClient(f, frames);
        else watch.fromServer(f, frames);
      }
    }
    return `${skipper.skipped ? "skipped" : "kept"},${frames > 0},${watch.open > 0}`;
  },
  refusal: never,
};

const proxyV2: FuzzTarget = {
  name: "proxy_v2",
  seeds: () => [
    hex("0d0a0d0a000d0a515549540a" + "2111000ccb007107" + "7f000001c35020fb"),
    hex(
      "0d0a0d0a000d0a515549540a" + "21210024" + "20010db8000000000000000000000001" +
        "00000000000000000000000000000001" + "c35020fb",
    ),
    hex("0d0a0d0a000d0a515549540a" + "20000000"),
  ],
  run(input) {
    return parseProxyV2(input).type;
  },
  refusal: never,
};

// ---------------------------------------------------------------- configuration and links

const KEY64 =
  "K_8GgfWDZpVJ7FnSxm87E6-OPfTgdr3EbOGNppIRA6PLXG-dWHMIdjnNHr7IkgP3D0s3721Tzl8I3wflPR4SPg";
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const PRIVATE = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
const FILES: Record<string, string> = {
  "etc/keys/server.key": "A".repeat(86),
  "etc/tls/server.crt": CERT,
  "etc/tls/server.key": PRIVATE,
  "etc/users.yml": "users: {}\n",
};
const readFile = (p: string) => {
  const v = FILES[p];
  if (v === undefined) throw new Deno.errors.NotFound(`No such file: ${p}`);
  return v;
};

/** Tokens that mean something in YAML or in the config schema. */
const YAML_DICTIONARY = [
  "&a [a, a, a, a, a, a, a, a, a]",
  "*a",
  "[*a, *a, *a, *a, *a, *a, *a, *a]",
  "<<: *a",
  "!!binary AAAA",
  "!!js/function x",
  "? ",
  "- ",
  "{",
  "}",
  "[",
  "]",
  "|",
  ">-",
  "'",
  '"',
  "\\u0000",
  "#",
  "---",
  "...",
  "~",
  "null",
  "true",
  "0x10",
  "-1",
  "1e309",
  "NaN",
  ".inf",
  "99999999999999999999",
  "1KiB",
  "10MB/s",
  "50GB/30d",
  "1ms",
  "7d",
  "0s",
  "127.0.0.1:8443",
  "[::1]:0",
  "tls://h:1",
  "wss://h/p",
  "*.example.com:443",
  "!10.0.0.0/8:22",
  "limits",
  "per_ip",
  "server",
  "users",
  "routes",
  "listen",
  "transport",
  "fallback",
  "session",
  "auth",
  "egress",
  "admin",
  "tickets",
  "ws",
  "path",
  KEY64,
];

async function exampleText(name: string): Promise<Uint8Array> {
  return await Deno.readFile(new URL(`../../examples/${name}`, import.meta.url));
}

/** A target for one YAML file kind: parse it, refusing only with `ConfigError`. */
function configTarget(
  name: string,
  seeds: () => Promise<Uint8Array[]>,
  parse: (text: string) => unknown,
): FuzzTarget {
  return {
    name,
    seeds,
    run(input) {
      parse(dec.decode(input));
      return "ok";
    },
    refusal: isConfig,
    dictionary: YAML_DICTIONARY,
    ...CONFIG_LIMITS,
  };
}

const configServer = configTarget(
  "config.server",
  async () => [
    await exampleText("server.yml"),
    utf8("identity: keys/server.key\ntls: {cert: tls/server.crt, key: tls/server.key}\n"),
    utf8("transport: tcp\nidentity: keys/server.key\nlimits:\n  per_ip:\n    connections: 8\n"),
  ],
  (text) => parseServerConfig(text, "etc/server.yml", readFile),
);

const configClient = configTarget(
  "config.client",
  async () => [
    await exampleText("client.yml"),
    utf8(`server: tcp://127.0.0.1:8443\nserver_key: ${KEY64}\nuser: alice\n`),
  ],
  (text) => parseClientConfig(text, "client.yml"),
);

const configUsers = configTarget(
  "config.users",
  async () => [await exampleText("users.yml")],
  (text) => parseUsers(text, "users.yml"),
);

const configValues: FuzzTarget = {
  name: "config.values",
  seeds: () =>
    [
      "tls://vpn.example.org:8443",
      "wss://[2001:db8::1]:443/tunnel",
      "10MiB",
      "1.5GB/30d",
      "250ms",
      "!10.0.0.0/8:22",
      "tcp:*.example.com:443",
      "udp:[fd00::/8]:53-60",
    ].map(utf8),
  run(input) {
    const text = dec.decode(input);
    const out: string[] = [typeof parseServerUrl(text) === "string" ? "url-bad" : "url"];
    out.push(parseSize(text) === undefined ? "-" : "size");
    out.push(parseDuration(text) === undefined ? "-" : "dur");
    out.push(parseQuota(text) === undefined ? "-" : "quota");
    try {
      parseRoute(text);
      out.push("route");
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // parseRoute's documented refusal
      out.push("route-bad");
    }
    return out.join(",");
  },
  refusal: never,
  dictionary: YAML_DICTIONARY,
};

const shareLinks: FuzzTarget = {
  name: "share_link",
  async seeds() {
    const v = await vectors("share_link_v1.json");
    const links = [...(v.valid as { link: string }[]), ...(v.invalid as { link: string }[])];
    return links.map((x) => utf8(x.link));
  },
  run(input) {
    // What `client --link` does with a link: decode it, make the profile, parse that.
    parseClientConfig(shareLinkProfile(decodeShareLink(dec.decode(input))), "<share link>");
    return "ok";
  },
  refusal: isConfig,
  dictionary: ["nitrosocks://", "-", "_", "=", "A", "%", "+", "/"],
};

const ticketKeys: FuzzTarget = {
  name: "ticket_keys",
  seeds: () => [utf8(`# keys\n1 ${"A".repeat(43)}\n2 ${"B".repeat(43)}\n`)],
  run(input) {
    return `${decodeTicketKeys(dec.decode(input), { file: "tickets.keys" }).length}`;
  },
  refusal: isConfig,
  dictionary: ["#", " ", "\n", "0", "4294967296", "A".repeat(43), "="],
};

/** Every target, in the order the fuzzer runs them. */
export const TARGETS: readonly FuzzTarget[] = [
  socks5Server,
  socks5Messages,
  httpConnect,
  handshakeServer,
  handshakeClient,
  handshakeBodies,
  records,
  muxFrames,
  muxReceive,
  sessionFrames,
  wsFrames,
  httpHeads,
  h2Preface,
  proxyV2,
  configServer,
  configClient,
  configUsers,
  configValues,
  shareLinks,
  ticketKeys,
];

/** The target called `name`; throws `RangeError` naming the known ones. */
export function targetNamed(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (t === undefined) {
    throw new RangeError(
      `Unknown fuzz target "${name}": expected one of ${TARGETS.map((x) => x.name).join(", ")}`,
    );
  }
  return t;
}
