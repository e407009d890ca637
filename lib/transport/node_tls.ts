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
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { MAX_PROXY_V2_BODY, parseProxyV2, PROXY_V2_FIXED } from "../fronting/mod.ts";
import { PROXY_HEADER_DEADLINE_MS } from "./proxy_protocol.ts";
import type { TlsListenOptions } from "./tls.ts";
import type { ClientCertificate } from "./registry.ts";
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
  /** With `clientCaPem`: the client's certificate, checked against it. */
  readonly clientCertificate?: ClientCertificate;
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
  readonly #sock: net.Socket;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #waiter: (() => void) | undefined;
  #closed = false;
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
  readonly alpnProtocol: string | null;
  readonly refused?: string;
  readonly clientCertificate?: ClientCertificate;

  /**
   * `sock` is a TLS socket, or (PROXY v2 refused) the plain socket; `tcp`
   * the socket under a TLS socket made over a stream, for its addresses;
   * `askedForCert`: the server requested a client certificate (`tls.client_ca`).
   */
  constructor(
    sock: tls.TLSSocket | net.Socket,
    opts: {
      tcp?: net.Socket;
      remoteAddr?: Deno.NetAddr;
      refused?: string;
      initial?: Uint8Array;
      askedForCert?: boolean;
    } = {},
  ) {
    this.#sock = sock;
    if (opts.initial !== undefined && opts.initial.length > 0) {
      this.#chunks.push(opts.initial);
      this.#buffered = opts.initial.length;
    }
    const tcp = opts.tcp ?? sock;
    tcp.setNoDelay(true);
    this.remoteAddr = opts.remoteAddr ?? {
      transport: "tcp",
      hostname: tcp.remoteAddress ?? "",
      port: tcp.remotePort ?? 0,
    };
    this.localAddr = {
      transport: "tcp",
      hostname: tcp.localAddress ?? "",
      port: tcp.localPort ?? 0,
    };
    this.alpnProtocol = sock instanceof tls.TLSSocket && typeof sock.alpnProtocol === "string"
      ? sock.alpnProtocol
      : null;
    if (opts.refused !== undefined) this.refused = opts.refused;
    if (opts.askedForCert === true && sock instanceof tls.TLSSocket) {
      const cn = sock.authorized ? sock.getPeerCertificate()?.subject?.CN : undefined;
      this.clientCertificate = {
        authorized: sock.authorized === true,
        ...(typeof cn === "string" ? { commonName: cn } : {}),
      };
    }
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
 * Connections accepted in node:net/node:tls callbacks, handed to the one
 * async iterator of a listener; a connection pushed after `close` is closed.
 */
class AcceptQueue {
  readonly #queue: NodeTlsConn[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  push(c: NodeTlsConn): void {
    if (this.#closed) {
      c.close();
      return;
    }
    this.#queue.push(c);
    this.#wake();
  }

  /** Ends the iterator once the queued connections are taken. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<NodeTlsConn> {
    while (true) {
      while (this.#queue.length === 0) {
        if (this.#closed) return;
        await new Promise<void>((r) => (this.#waiter = r));
      }
      yield this.#queue.shift()!;
    }
  }
}

/** Throws unless `keyPem` is the private key of `certPem` (node:tls in Deno would take it). */
function checkKeyPair(certPem: string, keyPem: string): void {
  if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))) {
    throw new TypeError("the private key is not the certificate's (a half-renewed pair?)");
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
  const queue = new AcceptQueue();
  const server = tls.createServer({
    key: opts.keyPem,
    cert: opts.certPem,
    ALPNProtocols: opts.alpn ?? ["h2", "http/1.1"],
    minVersion: MIN_VERSION,
    noDelay: true,
    // An optional client certificate: the TLS handshake completes either way
    // (a refusal here would set this server apart); the tunnel decides.
    ...(opts.clientCaPem === undefined
      ? {}
      : { requestCert: true, rejectUnauthorized: false, ca: [opts.clientCaPem] }),
  } as tls.TlsOptions, (sock: tls.TLSSocket) => {
    if (queue.closed) {
      sock.destroy();
      return;
    }
    queue.push(new Conn(sock, { askedForCert: opts.clientCaPem !== undefined }));
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
      checkKeyPair(certPem, keyPem);
      server.setSecureContext({ cert: certPem, key: keyPem, minVersion: MIN_VERSION });
    },
    close() {
      if (queue.closed) return;
      server.close();
      queue.close();
    },
    [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
  };
}

/** The TLS handshake after a PROXY header must finish within this. */
const TLS_HANDSHAKE_DEADLINE_MS = 10_000;

/**
 * Like {@linkcode listenNodeTls}, behind a TCP front that sends a PROXY v2
 * header (`proxy_protocol: true`): the header is read from the plain socket
 * (strict, bounded, within 5 s), then TLS runs over the rest. Accepted
 * connections carry the header's source as `remoteAddr`. A connection
 * without a valid header is yielded `refused`, as the plain socket with its
 * bytes still to be read, for the fallback.
 */
export async function listenNodeTlsProxied(opts: TlsListenOptions): Promise<NodeTlsListener> {
  const queue = new AcceptQueue();
  const context = (certPem: string, keyPem: string) =>
    tls.createSecureContext({
      key: keyPem,
      cert: certPem,
      minVersion: MIN_VERSION,
      ...(opts.clientCaPem === undefined ? {} : { ca: [opts.clientCaPem] }),
    });
  // Replaced by setCertificate; connections whose TLS starts later use the new one.
  let ctx = context(opts.certPem, opts.keyPem);
  const push = (c: NodeTlsConn) => queue.push(c);
  const server = net.createServer({ noDelay: true } as net.ServerOpts, (sock: net.Socket) => {
    let got = new Uint8Array(0);
    const timer = setTimeout(() => refuse("no complete header in time"), PROXY_HEADER_DEADLINE_MS);
    const refuse = (why: string) => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onEarlyEnd);
      if (sock.destroyed) return;
      // The bytes already read come first.
      push(new Conn(sock, { refused: `PROXY v2: ${why}`, initial: got }));
    };
    const onData = (d: Uint8Array) => {
      const all = new Uint8Array(got.length + d.length);
      all.set(got);
      all.set(d, got.length);
      got = all;
      const v = parseProxyV2(got);
      if (v.type === "partial") {
        if (got.length > PROXY_V2_FIXED + MAX_PROXY_V2_BODY) refuse("header too long");
        return;
      }
      if (v.type === "invalid") return refuse(v.reason);
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onEarlyEnd);
      sock.pause();
      const rest = got.subarray(v.size);
      const dup = new Duplex({
        read() {
          sock.resume();
        },
        write(chunk: Uint8Array, _enc: string, cb: (e?: Error | null) => void) {
          sock.write(chunk, cb);
        },
        final(cb: (e?: Error | null) => void) {
          sock.end(cb);
        },
        destroy(e: Error | null, cb: (e: Error | null) => void) {
          sock.destroy();
          cb(e);
        },
      });
      if (rest.length > 0) dup.push(rest);
      sock.on("data", (x: Uint8Array) => {
        if (!dup.push(x)) sock.pause();
      });
      sock.on("end", () => dup.push(null));
      sock.on("error", (e: Error) => dup.destroy(e));
      sock.on("close", () => dup.destroy());
      const t = new tls.TLSSocket(dup, {
        isServer: true,
        secureContext: ctx,
        ALPNProtocols: opts.alpn ?? ["h2", "http/1.1"],
        // As in listenNodeTls: an optional client certificate; the tunnel decides.
        ...(opts.clientCaPem === undefined ? {} : { requestCert: true, rejectUnauthorized: false }),
      } as tls.TLSSocketOptions);
      const deadline = setTimeout(() => t.destroy(), TLS_HANDSHAKE_DEADLINE_MS);
      t.once("secure", () => {
        clearTimeout(deadline);
        const remoteAddr: Deno.NetAddr | undefined = v.source === undefined
          ? undefined
          : { transport: "tcp", hostname: v.source.hostname, port: v.source.port };
        push(
          new Conn(t, {
            tcp: sock,
            askedForCert: opts.clientCaPem !== undefined,
            ...(remoteAddr === undefined ? {} : { remoteAddr }),
          }),
        );
      });
      t.on("error", () => {
        clearTimeout(deadline);
        t.destroy();
      });
      sock.resume();
    };
    // Closed before a complete header: nothing to serve.
    const onEarlyEnd = () => {
      clearTimeout(timer);
      sock.destroy();
    };
    sock.on("data", onData);
    sock.once("end", onEarlyEnd);
    sock.on("error", () => {
      clearTimeout(timer);
      sock.destroy();
    });
  });
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
      checkKeyPair(certPem, keyPem);
      ctx = context(certPem, keyPem);
    },
    close() {
      if (queue.closed) return;
      server.close();
      queue.close();
    },
    [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
  };
}
