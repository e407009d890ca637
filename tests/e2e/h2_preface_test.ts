/**
 * The HTTP/2 server preface on real sockets (docs/PROTOCOL.md part 2
 * section 6.2.2): with ALPN h2 the server sends nginx's SETTINGS and
 * WINDOW_UPDATE the moment TLS is up, before it knows what the peer is; a
 * client drops them whether they come or not, so the tunnel works through
 * an interceptor that chose the ALPN on either side alone; a wrong server
 * key is still told as a web server's answer; and a real web server behind
 * `fallback.upstream` does not add a second preface.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { connect } from "../../lib/api/mod.ts";
import { loadClientConfig } from "../../lib/config/mod.ts";
import { H2_SERVER_PREFACE } from "../../lib/handshake/mod.ts";
import { H2_PREFACE } from "../../lib/tunnel/probe_shape.ts";
import { DECOY_PAGE } from "../../lib/tunnel/decoy_http.ts";
import { startMitmRelay } from "../support/mitm_relay.ts";
import { createCa, issueCert } from "../support/certs.ts";
import { startNginx } from "../support/nginx.ts";
import { run, type ServerInfo, startPair, startRelayedPair, text } from "./_harness.ts";
import { step, test } from "../support/deadline.ts";

const enc = new TextEncoder();

/** TLS to the pair's server with these ALPN protocols; what it sent before we said anything. */
async function firstBytes(port: number, caPem: string, alpn: string[]): Promise<Uint8Array> {
  const conn = await Deno.startTls(await Deno.connect({ hostname: "127.0.0.1", port }), {
    hostname: "localhost",
    caCerts: [caPem],
    alpnProtocols: alpn,
  });
  try {
    await conn.handshake();
    const got: number[] = [];
    const buf = new Uint8Array(1024);
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        conn.read(buf),
        new Promise<"quiet">((r) => (timer = setTimeout(() => r("quiet"), until - Date.now()))),
      ]);
      clearTimeout(timer);
      if (n === "quiet" || n === null) break;
      got.push(...buf.subarray(0, n));
    }
    return Uint8Array.from(got);
  } finally {
    conn.close();
  }
}

test("with ALPN h2 the server speaks first with nginx's SETTINGS; with http/1.1 it waits", async () => {
  await using pair = await startPair({ noClient: true });
  const ca = await Deno.readTextFile(`${pair.dir}/tls/ca.crt`);
  assert.deepEqual(await firstBytes(pair.serverPort, ca, ["h2"]), H2_SERVER_PREFACE);
  assert.deepEqual(await firstBytes(pair.serverPort, ca, ["http/1.1"]), new Uint8Array(0));
  assert.deepEqual(await firstBytes(pair.serverPort, ca, []), new Uint8Array(0));
});

test("on transport wss an HTTP/2 visitor gets the preface at once too, not a wait for an HTTP/1 head", async () => {
  await using pair = await startPair({ transport: "wss", noClient: true });
  const ca = await Deno.readTextFile(`${pair.dir}/tls/ca.crt`);
  assert.deepEqual(await firstBytes(pair.serverPort, ca, ["h2"]), H2_SERVER_PREFACE);
});

test("tls.alpn: a server that offers only http/1.1 chooses it for an h2 client and sends no preface", async () => {
  await using pair = await startPair({
    noClient: true,
    editServer: (t) => t.replace(/^ {2}alpn: \[h2, http\/1\.1\]$/m, "  alpn: [http/1.1]"),
  });
  const ca = await Deno.readTextFile(`${pair.dir}/tls/ca.crt`);
  const conn = await Deno.startTls(
    await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort }),
    { hostname: "localhost", caCerts: [ca], alpnProtocols: ["h2", "http/1.1"] },
  );
  try {
    assert.equal((await conn.handshake()).alpnProtocol, "http/1.1");
  } finally {
    conn.close();
  }
  assert.deepEqual(await firstBytes(pair.serverPort, ca, ["h2", "http/1.1"]), new Uint8Array(0));
});

function mitm(s: ServerInfo, client: string[], upstream: string[]) {
  return startMitmRelay({
    upstream: { hostname: "127.0.0.1", port: s.port, caPem: s.caPem!, serverName: "localhost" },
    serverName: "localhost",
    alpn: client,
    upstreamAlpn: upstream,
  });
}

for (
  const [client, upstream] of [
    [["http/1.1"], ["h2"]],
    [["h2"], ["http/1.1"]],
    [["h2"], ["h2"]],
  ] as const
) {
  test(`the tunnel works when an interceptor chose ALPN ${client} with the client and ${upstream} with the server`, async () => {
    await using setup = await startRelayedPair((s) => mitm(s, [...client], [...upstream]));
    const { target, pair, relay } = setup;
    const r = await run("curl", [
      "-sS",
      "--max-time",
      "30",
      "--socks5-hostname",
      `127.0.0.1:${pair.socksPort}`,
      `${target.url}/page`,
    ], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(text(r), /NitroSocks test page/);
    // The preface went through the interceptor exactly when the server chose h2.
    const s2c = relay.seenServerToClient();
    const startsWithPreface = H2_SERVER_PREFACE.every((b, i) => s2c[i] === b);
    assert.equal(startsWithPreface, upstream[0] === "h2");
  });
}

test("a wrong server key over ALPN h2 is told as a web server's answer (the decoy's GOAWAY)", async () => {
  await using pair = await startPair({ noClient: true });
  const profile = await loadClientConfig(pair.profilePath);
  const key = profile.serverKey.slice();
  key[key.length - 1]! ^= 0x40; // another X25519 key: the Hello's mac1 is wrong, a probe
  const err = await step(
    "connect() with a wrong server key to fail",
    connect({ ...profile, serverKey: key }).then(
      (t) => {
        t.close();
        return undefined;
      },
      (e: unknown) => e,
    ),
  );
  assert.ok(err instanceof Error, "connect() failed");
  assert.match(err.message, /answered as a web server/);
  assert.equal(
    pair.serverEvents.of("refusal", (e) => e.reason === "probe").length >= 1,
    true,
  );
});

test("a GOAWAY read apart from the preface is still told as a web server's answer", async () => {
  // A web server that speaks h2 as nginx does: the preface at once, and only after the
  // client's first bytes (and a pause, so they come in reads of their own) a GOAWAY.
  await using pair = await startPair({ noClient: true });
  const profile = await loadClientConfig(pair.profilePath);
  const ca = await createCa();
  const leaf = await issueCert(ca, { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
    alpnProtocols: ["h2"],
  });
  const served = (async () => {
    const conn = await listener.accept();
    try {
      await conn.handshake();
      await conn.write(H2_SERVER_PREFACE);
      await conn.read(new Uint8Array(4096)); // the Hello
      await new Promise((r) => setTimeout(r, 100));
      const goaway = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
      for (const b of goaway) await conn.write(Uint8Array.of(b)); // a byte per record
      await conn.closeWrite();
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      conn.close();
    }
  })();
  try {
    const err = await step(
      "connect() to the web server to fail",
      connect(profile, {
        server: { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port },
        caPem: ca.certPem,
      }).then((t) => (t.close(), undefined), (e: unknown) => e),
    );
    assert.ok(err instanceof Error, "connect() failed");
    assert.match(err.message, /answered as a web server/);
  } finally {
    await served.catch(() => {});
    listener.close();
  }
});

/** The HTTP/2 frames of `bytes`: [type, flags, stream, payload]. */
function frames(bytes: Uint8Array): [number, number, number, Uint8Array][] {
  const out: [number, number, number, Uint8Array][] = [];
  for (let at = 0; at + 9 <= bytes.length;) {
    const len = (bytes[at]! << 16) | (bytes[at + 1]! << 8) | bytes[at + 2]!;
    const stream = new DataView(bytes.buffer, bytes.byteOffset + at + 5, 4).getUint32(0) &
      0x7fffffff;
    out.push([bytes[at + 3]!, bytes[at + 4]!, stream, bytes.slice(at + 9, at + 9 + len)]);
    at += 9 + len;
  }
  return out;
}

test("fallback.upstream over h2: a prober gets one preface (nginx's), then the real web server's answer", async () => {
  await using nginx = await startNginx({ page: DECOY_PAGE, h2c: true });
  await using pair = await startPair({
    noClient: true,
    editServer: (t) =>
      t.replace(
        /^fallback:\n {2}mode: decoy\n/m,
        `fallback:\n  mode: upstream\n  upstream: "127.0.0.1:${nginx.port}"\n`,
      ),
  });
  const ca = await Deno.readTextFile(`${pair.dir}/tls/ca.crt`);
  const conn = await Deno.startTls(
    await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort }),
    { hostname: "localhost", caCerts: [ca], alpnProtocols: ["h2"] },
  );
  const got: number[] = [];
  try {
    await conn.handshake();
    // Preface, SETTINGS, our ACK of the server's, and GET / on stream 1.
    const block = [0x82, 0x87, 0x84, 0x41, 9, ...enc.encode("localhost")];
    await conn.write(Uint8Array.from([
      ...H2_PREFACE,
      ...[0, 0, 0, 4, 0, 0, 0, 0, 0],
      ...[0, 0, 0, 4, 1, 0, 0, 0, 0],
      ...[0, 0, block.length, 1, 5, 0, 0, 0, 1],
      ...block,
    ]));
    const buf = new Uint8Array(65536);
    await step(
      "the answer's last DATA frame on stream 1",
      (async () => {
        while (!frames(Uint8Array.from(got)).some(([t, f, s]) => t === 0 && (f & 1) && s === 1)) {
          const n = await conn.read(buf);
          if (n === null) throw new Error(`closed after ${got.length} bytes`);
          got.push(...buf.subarray(0, n));
        }
      })(),
    );
  } finally {
    conn.close();
  }
  const all = frames(Uint8Array.from(got));
  const settings = all.filter(([t, f]) => t === 4 && (f & 1) === 0);
  assert.equal(settings.length, 1, "one SETTINGS frame, not the upstream's as well");
  assert.deepEqual(Uint8Array.from(got.slice(0, 40)), H2_SERVER_PREFACE);
  assert.equal(all.filter(([t, , s]) => t === 8 && s === 0).length, 1, "one WINDOW_UPDATE");
  // nginx's answer: HEADERS starting with :status 200 (static index 8), then the page.
  const headers = all.find(([t, , s]) => t === 1 && s === 1);
  assert.equal(headers?.[3][0], 0x88);
  const body = all.filter(([t, , s]) => t === 0 && s === 1).map(([, , , p]) => [...p]).flat();
  assert.equal(new TextDecoder().decode(Uint8Array.from(body)), DECOY_PAGE);
  // curl over h2 gets the page from the real web server too.
  const r = await run("curl", [
    "-sS",
    "--http2",
    "--max-time",
    "20",
    "--cacert",
    `${pair.dir}/tls/ca.crt`,
    "--resolve",
    `localhost:${pair.serverPort}:127.0.0.1`,
    "-w",
    "%{http_version}",
    `https://localhost:${pair.serverPort}/`,
  ], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(text(r), DECOY_PAGE + "2");
});
