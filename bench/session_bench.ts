/**
 * The tunnel engine's data path end to end, without sockets: two
 * `Session`s (lib/tunnel/session.ts) over an in-memory pipe, each stream's
 * local side another in-memory pipe. Measures what `bench/datapath_bench.ts`
 * leaves out: the read loop, the write loop and the socket pumps themselves
 * (records in flight, batching, read-buffer reuse, delayed ACKs).
 *
 * Each bench runs on both record backends: `webcrypto` (AES-GCM through
 * promises: the asynchronous write and read loops) and `openssl` (sealed
 * and opened synchronously), the latter only with `--allow-ffi`.
 *
 * MB/s = bytes per iteration (in the bench name) / time per iteration.
 * Run: `deno bench --allow-read --allow-ffi bench/session_bench.ts`
 *
 * @module
 */
import { Mux } from "../lib/mux/mod.ts";
import {
  createRecordOpener,
  createRecordSealer,
  type CryptoBackend,
  webCryptoBackend,
} from "../lib/record/mod.ts";
import { loadCryptoBackend } from "../lib/openssl/mod.ts";
import { encodeReply, encodeRequest, Reply } from "../lib/socks5/mod.ts";
import { type ByteStream, memoryPipe, writeAll } from "../lib/transport/mod.ts";
import { Session } from "../lib/tunnel/session.ts";
import { silentLogger } from "../lib/observe/mod.ts";

const MIB = 1 << 20;
const AEAD = "aes-256-gcm";
const WINDOWS = { streamWindow: 8 * MIB, sessionWindow: 64 * MIB, resume: true } as const;
const REQUEST = encodeRequest({ command: "connect", addressType: "domain", host: "x", port: 1 });

interface Pair {
  client: Session;
  server: Session;
  /** Server-side application ends of the streams, by stream id. */
  apps: Map<number, ByteStream>;
}

async function startPair(backend: CryptoBackend): Promise<Pair> {
  const be = { backend };
  const c2s = crypto.getRandomValues(new Uint8Array(32));
  const s2c = crypto.getRandomValues(new Uint8Array(32));
  const [clientConn, serverConn] = memoryPipe(4 * MIB);
  const apps = new Map<number, ByteStream>();
  const server: Session = new Session({
    role: "server",
    mux: new Mux({ role: "server", ...WINDOWS }),
    log: silentLogger,
    resumable: true,
    onOpen(id) {
      const [end, app] = memoryPipe(4 * MIB);
      apps.set(id, app);
      server.reply(id, encodeReply(Reply.SUCCEEDED));
      server.attach(id, end);
    },
  });
  const client = new Session({
    role: "client",
    mux: new Mux({ role: "client", ...WINDOWS }),
    log: silentLogger,
    resumable: true,
  });
  server.run();
  client.run();
  server.attachLink({
    conn: serverConn,
    sealer: await createRecordSealer(AEAD, s2c, be),
    opener: await createRecordOpener(AEAD, c2s, be),
  });
  client.attachLink({
    conn: clientConn,
    sealer: await createRecordSealer(AEAD, c2s, be),
    opener: await createRecordOpener(AEAD, s2c, be),
  });
  return { client, server, apps };
}

/** Sends `bytes` from the server's application to the client's through one stream. */
async function download(pair: Pair, bytes: number, chunk: Uint8Array): Promise<void> {
  const { id, reply } = await pair.client.open(REQUEST, 10_000);
  if (reply[1] !== 0) throw new Error(`reply ${reply[1]}`);
  const [end, app] = memoryPipe(4 * MIB);
  pair.client.attach(id, end);
  const src = pair.apps.get(id)!;
  const sending = (async () => {
    for (let o = 0; o < bytes; o += chunk.length) await writeAll(src, chunk);
    await src.closeWrite();
  })();
  const buf = new Uint8Array(MIB);
  let got = 0;
  for (;;) {
    const n = await app.read(buf);
    if (n === null) break;
    got += n;
  }
  await sending;
  app.close();
  src.close();
  if (got !== bytes) throw new Error(`got ${got} of ${bytes} bytes`);
}

/** One new stream: OPEN, a 100-byte request, a 100-byte answer, both sides closed. */
async function exchange(pair: Pair, small: Uint8Array): Promise<void> {
  const { id } = await pair.client.open(REQUEST, 10_000);
  const [end, app] = memoryPipe(64 * 1024);
  pair.client.attach(id, end);
  const src = pair.apps.get(id)!;
  pair.apps.delete(id);
  const buf = new Uint8Array(4096);
  await writeAll(app, small);
  await app.closeWrite();
  while ((await src.read(buf)) !== null);
  await writeAll(src, small);
  await src.closeWrite();
  while ((await app.read(buf)) !== null);
  app.close();
  src.close();
}

const backends: CryptoBackend[] = [webCryptoBackend];
const ffi = await Deno.permissions.query({ name: "ffi" });
if (ffi.state === "granted") backends.push(loadCryptoBackend("openssl"));
else console.error("session_bench: --allow-ffi not granted, openssl skipped");
const pairs: Pair[] = [];
const chunk = new Uint8Array(256 * 1024).fill(7);

for (const backend of backends) {
  const pair = await startPair(backend);
  pairs.push(pair);
  const be = backend.name;
  for (const mib of [1, 32]) {
    Deno.bench({
      name: `Session download ${mib} MiB, one stream (${be})`,
      group: `session ${mib} MiB`,
      n: mib === 1 ? 200 : 30,
      warmup: 5,
      async fn() {
        await download(pair, mib * MIB, chunk);
      },
    });
  }

  Deno.bench({
    name: `Session 64 streams x 64 KiB (${be})`,
    group: "session streams",
    n: 50,
    warmup: 5,
    async fn() {
      const small = new Uint8Array(64 * 1024).fill(9);
      await Promise.all(Array.from({ length: 64 }, () => download(pair, small.length, small)));
    },
  });

  const hundred = new Uint8Array(100).fill(3);
  Deno.bench({
    name: `Session new stream, 100 B each way (${be})`,
    group: "session new stream",
    n: 2000,
    warmup: 50,
    async fn() {
      await exchange(pair, hundred);
    },
  });
}

globalThis.addEventListener("unload", () => {
  for (const pair of pairs) {
    pair.client.close("bench done");
    pair.server.close("bench done");
  }
});
