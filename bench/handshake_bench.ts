/**
 * Handshake throughput: whole handshakes (client + server in one thread),
 * the server's share alone, and the cost of turning away a probe.
 *
 *   deno bench --allow-read --allow-ffi bench/handshake_bench.ts
 *
 * The server's share runs twice: on `@noble/curves` and, with `--allow-ffi`,
 * with X25519 and Ed25519 signing through OpenSSL (what the server uses
 * with `crypto.backend: openssl`, or `auto` when OpenSSL loads).
 *
 * @module
 */
import {
  ClientHandshake,
  generateClientKey,
  generateServerIdentity,
  generateToken,
  type KexId,
  ReplayGuard,
  ServerHandshake,
  serverPublicKey,
  type ServerStep,
} from "../lib/handshake/mod.ts";
import { hash, type RandomSource } from "../lib/crypto/mod.ts";
import { type CurveBackend, setCurveBackend } from "../lib/crypto/keys.ts";
import { loadCryptoBackend, loadCurveBackend } from "../lib/openssl/mod.ts";

const ffi = await Deno.permissions.query({ name: "ffi" });
const opensslCurves = ffi.state === "granted"
  ? loadCurveBackend(loadCryptoBackend("openssl"))
  : undefined;
if (opensslCurves === undefined) console.error("handshake_bench: no OpenSSL curves (--allow-ffi?)");
const CURVES: [string, CurveBackend | undefined][] = [["noble", undefined]];
if (opensslCurves !== undefined) CURVES.push(["openssl", opensslCurves]);

const identity = generateServerIdentity();
const spk = serverPublicKey(identity);
const key = generateClientKey();
const token = generateToken();
const user = { userId: "bench", publicKey: key.publicKey, token };
const replay = new ReplayGuard();

const NOW = 1_750_000_000_000;

function newServer(random?: RandomSource, guard = replay): ServerHandshake {
  return new ServerHandshake({
    identity,
    lookupUser: () => user,
    replay: guard,
    now: random ? () => NOW : Date.now,
    ...(random ? { random } : {}),
  });
}

function newClient(kex: KexId, random?: RandomSource): ClientHandshake {
  return new ClientHandshake({
    serverPublicKey: spk,
    credentials: { userId: "bench", clientKey: key.privateKey, token },
    kex: [kex],
    now: random ? () => NOW : Date.now,
    ...(random ? { random } : {}),
  });
}

/** A fixed random source (SHA-256 counter mode), so a recorded handshake replays exactly. */
function fixed(label: string): RandomSource {
  const seed = hash(new TextEncoder().encode(label));
  let i = 0;
  let pool = new Uint8Array(0);
  return (n) => {
    while (pool.length < n) {
      const block = new Uint8Array([...seed, i >>> 24, (i >>> 16) & 255, (i >>> 8) & 255, i & 255]);
      i++;
      pool = new Uint8Array([...pool, ...hash(block)]);
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    return out;
  };
}

function record(kex: KexId) {
  const client = newClient(kex, fixed("client"));
  const server = newServer(fixed("server"), new ReplayGuard());
  const hello = client.hello();
  const serverHello = bytesOf(server.push(hello));
  const response = bytesOf(client.push(serverHello));
  const result = bytesOf(server.push(response));
  const finish = bytesOf(client.push(result));
  return { hello, serverHello, response, result, finish };
}

function bytesOf(
  step: ServerStep | { type: string; bytes?: Uint8Array; send?: Uint8Array },
): Uint8Array {
  if ("bytes" in step && step.bytes) return step.bytes;
  if ("send" in step && step.send) return step.send;
  throw new Error(`unexpected step ${step.type}`);
}

function fullHandshake(kex: KexId): void {
  const client = newClient(kex);
  const server = newServer();
  const sh = bytesOf(server.push(client.hello()));
  const resp = bytesOf(client.push(sh));
  const res = bytesOf(server.push(resp));
  const fin = bytesOf(client.push(res));
  if (server.push(fin).type !== "done") throw new Error("handshake failed");
}

for (const kex of ["x25519", "x25519-mlkem768"] as const) {
  Deno.bench(`full handshake, ${kex} (client + server)`, {
    group: "full",
    baseline: kex === "x25519",
  }, () => {
    fullHandshake(kex);
  });

  // One side alone: replay a recorded handshake with the same fixed randomness.
  const rec = record(kex);
  for (const [be, curves] of CURVES) {
    Deno.bench(`server side only, ${kex}, ${be} curves`, { group: "one side" }, () => {
      const prev = setCurveBackend(curves);
      try {
        const server = newServer(fixed("server"), new ReplayGuard());
        bytesOf(server.push(rec.hello));
        bytesOf(server.push(rec.response));
        if (server.push(rec.finish).type !== "done") throw new Error("handshake failed");
      } finally {
        setCurveBackend(prev);
      }
    });
  }
  Deno.bench(`client side only, ${kex}`, { group: "one side" }, () => {
    const client = newClient(kex, fixed("client"));
    client.hello();
    bytesOf(client.push(rec.serverHello));
    bytesOf(client.push(rec.result));
  });
}

const probeBytes = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n",
);
Deno.bench("server turns away an HTTP probe", { group: "probe" }, () => {
  if (newServer().push(probeBytes).type !== "probe") throw new Error("expected a probe");
});
