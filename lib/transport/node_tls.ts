/**
 * A TLS server listener built on `node:tls`, adapted to `ByteStream`. It
 * accepts TLS 1.2 and 1.3, as nginx does (a 1.3-only server stands out to a
 * scanner); NitroSocks clients always get 1.3.
 *
 * Why not `Deno.listenTls`: its accepted connections keep Nagle's algorithm
 * on and offer no `setNoDelay`, so two small records written back to back
 * wait for the peer's delayed ACK (about 40 ms on Linux) — measured here as
 * 43 ms per request/response turn against 0.3 ms with `node:tls` and
 * `noDelay`. A proxy carrying interactive traffic cannot pay that, so the
 * server side of TLS uses this adapter; clients keep `Deno.startTls` (over a
 * TCP connection with `setNoDelay(true)`).
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import tls from "node:tls";
import type { TlsListenOptions } from "./tls.ts";
import type { ByteStream } from "./types.ts";

/** The oldest TLS version accepted: 1.2, like nginx's default `ssl_protocols` in practice. */
const MIN_VERSION = "TLSv1.2";

/** Bytes buffered from the socket before it is paused (backpressure). */
const HIGH_WATER = 1024 * 1024;

/** An accepted TLS connection. */
export interface NodeTlsConn extends ByteStream {
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
  /** The ALPN protocol the client and server agreed on, if any. */
  readonly alpnProtocol: string | null;
}

/** A listener yielding {@link NodeTlsConn}s after their TLS handshake. */
export interface NodeTlsListener extends AsyncIterable<NodeTlsConn> {
  readonly addr: Deno.NetAddr;
  close(): void;
  /**
   * Serves this chain and key to new connections (connections already made
   * keep theirs). Throws, keeping the old pair, when they do not load.
   */
  setCertificate(certPem: string, keyPem: string): void;
}

class Conn implements NodeTlsConn {
  readonly #sock: tls.TLSSocket;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #waiter: (() => void) | undefined;
  #closed = false;
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
  readonly alpnProtocol: string | null;

  constructor(sock: tls.TLSSocket) {
    this.#sock = sock;
    sock.setNoDelay(true);
    this.remoteAddr = {
      transport: "tcp",
      hostname: sock.remoteAddress ?? "",
      port: sock.remotePort ?? 0,
    };
    this.localAddr = {
      transport: "tcp",
      hostname: sock.localAddress ?? "",
      port: sock.localPort ?? 0,
    };
    this.alpnProtocol = typeof sock.alpnProtocol === "string" ? sock.alpnProtocol : null;
    sock.on("data", (d: Uint8Array) => {
      this.#chunks.push(d);
      this.#buffered += d.length;
      if (this.#buffered >= HIGH_WATER) sock.pause();
      this.#wake();
    });
    sock.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    sock.on("error", (e: Error) => {
      this.#error = e;
      this.#wake();
    });
    sock.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#closed) throw new Deno.errors.BadResource("Connection is closed");
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((r) => (this.#waiter = r));
    }
    const head = this.#chunks[0]!;
    const n = Math.min(head.length, p.length);
    p.set(n === head.length ? head : head.subarray(0, n));
    if (n === head.length) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    this.#buffered -= n;
    if (this.#buffered < HIGH_WATER / 2 && this.#sock.isPaused()) this.#sock.resume();
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#closed || this.#sock.destroyed) {
      return Promise.reject(new Deno.errors.BrokenPipe("Connection is closed"));
    }
    // Resolve once node has handed the bytes on: callers may reuse `p` after.
    return new Promise((resolve, reject) => {
      this.#sock.write(p, (err?: Error | null) => (err ? reject(err) : resolve(p.length)));
    });
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#sock.destroyed || this.#sock.writableEnded) return resolve();
      this.#sock.end(() => resolve());
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.destroy();
    this.#wake();
  }
}

/**
 * Listens for TLS 1.2/1.3 on `hostname:port` with `TCP_NODELAY` on every
 * accepted connection.
 *
 * @example
 * ```ts ignore
 * const l = await listenNodeTls({ hostname: "127.0.0.1", port: 0, certPem, keyPem });
 * for await (const conn of l) conn.close();
 * ```
 */
export async function listenNodeTls(opts: TlsListenOptions): Promise<NodeTlsListener> {
  const queue: NodeTlsConn[] = [];
  let waiter: (() => void) | undefined;
  let closed = false;
  const server = tls.createServer({
    key: opts.keyPem,
    cert: opts.certPem,
    ALPNProtocols: opts.alpn ?? ["h2", "http/1.1"],
    minVersion: MIN_VERSION,
    noDelay: true,
  } as tls.TlsOptions, (sock: tls.TLSSocket) => {
    if (closed) {
      sock.destroy();
      return;
    }
    queue.push(new Conn(sock));
    const w = waiter;
    waiter = undefined;
    w?.();
  });
  // A failed TLS handshake (a scanner, plain HTTP) is the client's problem.
  server.on("tlsClientError", (_e: Error, sock: { destroy(): void }) => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address() as { address: string; port: number };
  return {
    addr: { transport: "tcp", hostname: a.address, port: a.port },
    setCertificate(certPem, keyPem) {
      // Checked here: node:tls in Deno takes a key that is not the certificate's.
      if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))) {
        throw new TypeError("the private key is not the certificate's (a half-renewed pair?)");
      }
      server.setSecureContext({ cert: certPem, key: keyPem, minVersion: MIN_VERSION });
    },
    close() {
      if (closed) return;
      closed = true;
      server.close();
      const w = waiter;
      waiter = undefined;
      w?.();
    },
    async *[Symbol.asyncIterator]() {
      while (true) {
        while (queue.length === 0) {
          if (closed) return;
          await new Promise<void>((r) => (waiter = r));
        }
        yield queue.shift()!;
      }
    },
  };
}
