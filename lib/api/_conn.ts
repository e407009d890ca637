/**
 * The engine behind `TunnelConn`: two {@linkcode Channel}s joining the
 * application's end to the byte stream a tunnel session attaches to its
 * stream (`Session.attach`). The session reads the application's writes
 * only while the stream has credit and writes the stream's authenticated
 * payloads, which the application's reads copy out: one copy each way,
 * nothing buffered besides the chunk being handed over.
 *
 * @module
 */
import type { ByteStream } from "../transport/types.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { Channel, Deadline, TIMED_OUT } from "./_channel.ts";
import type { ReadFullOptions, TunnelConn } from "./conn.ts";
import { PeerSlowError } from "./errors.ts";

/** Chunk size of `readable` when its reader brings no buffer. */
const READABLE_CHUNK_BYTES = 64 * 1024;

/** What a connection is, besides its bytes. */
export interface ConnParams {
  localAddr: Deno.NetAddr;
  remoteAddr: Deno.NetAddr;
  /** Writes that the tunnel cannot take within this fail with `PeerSlowError`. */
  writeTimeoutMs?: number;
}

/**
 * A connection for the application and the byte stream for the session.
 *
 * @example
 * ```ts ignore
 * const { conn, side } = createConn({ localAddr, remoteAddr });
 * session.attach(id, side);
 * return conn;
 * ```
 */
export function createConn(params: ConnParams): { conn: TunnelConn; side: ByteStream } {
  const conn = new Conn(params);
  return { conn, side: conn.side };
}

/** Checks a timeout option: a finite number of milliseconds, 0 or more. */
export function checkTimeout(what: string, ms: number | undefined): void {
  if (ms === undefined) return;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`Invalid ${what}: ${ms} is not a number of milliseconds (0 or more)`);
  }
}

class Conn implements TunnelConn {
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  /** The stream's bytes, tunnel to application. */
  readonly #in: Channel;
  /** The application's bytes, application to tunnel. */
  readonly #out: Channel;
  readonly #readDeadline: Deadline;
  readonly #writeDeadline: Deadline;
  readonly #writeTimeoutMs: number | undefined;
  readonly #where: string;
  #closed = false;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  /** The session's end. */
  readonly side: ByteStream;

  constructor(params: ConnParams) {
    this.localAddr = params.localAddr;
    this.remoteAddr = params.remoteAddr;
    this.#writeTimeoutMs = params.writeTimeoutMs;
    this.#where = formatHostPort(params.remoteAddr.hostname, params.remoteAddr.port);
    const what = `tunnel connection to ${this.#where}`;
    const inbound = this.#in = new Channel(what);
    const outbound = this.#out = new Channel(what);
    this.#readDeadline = new Deadline(() => inbound.wake());
    this.#writeDeadline = new Deadline(() => outbound.wake());
    let sideClosed = false;
    this.side = {
      read: (p) => outbound.read(p),
      write: (p) => inbound.write(p),
      closeWrite: () => {
        inbound.end();
        return Promise.resolve();
      },
      close: () => {
        if (sideClosed) return;
        sideClosed = true;
        const reset = () =>
          new Deno.errors.ConnectionReset(
            `The ${what} was reset: the target or the tunnel closed it`,
          );
        inbound.break(reset());
        outbound.closeReader(reset());
      },
    };
  }

  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    return this.#readable ??= new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: READABLE_CHUNK_BYTES,
      pull: async (controller) => {
        const req = controller.byobRequest!;
        const v = req.view!;
        const n = await this.read(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        if (n === null) {
          controller.close();
          req.respond(0);
        } else {
          req.respond(n);
        }
      },
      cancel: () => this.#dispose(),
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      write: async (chunk) => {
        await this.write(chunk);
      },
      close: () => this.closeWrite(),
      abort: () => this.#dispose(),
    });
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(this.#closedError("read from"));
    return this.#in.read(p);
  }

  async readFull(p: Uint8Array, options?: ReadFullOptions): Promise<number | null> {
    if (this.#closed) throw this.#closedError("read from");
    const ms = options?.timeoutMs;
    checkTimeout("timeoutMs", ms);
    const deadline = ms === undefined ? undefined : this.#readDeadline;
    deadline?.start(ms!);
    let n = 0;
    try {
      while (n < p.length) {
        const r = await this.#in.read(n === 0 ? p : p.subarray(n), deadline);
        if (r === null) return n === 0 ? null : n;
        if (r === TIMED_OUT) {
          throw new PeerSlowError(
            `Cannot read ${p.length} bytes from ${this.#where}: the peer sent ${n} within ${ms} ms`,
            { operation: "read", bytesRead: n },
          );
        }
        n += r;
      }
      return n;
    } finally {
      deadline?.stop();
    }
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) throw this.#closedError("write to");
    const ms = this.#writeTimeoutMs;
    if (ms === undefined) return await this.#out.write(p);
    const deadline = this.#writeDeadline;
    deadline.start(ms);
    try {
      const n = await this.#out.write(p, deadline);
      if (n < p.length) {
        throw new PeerSlowError(
          `Cannot write ${p.length} bytes to ${this.#where}: the tunnel took ${n} within ${ms} ms ` +
            `(the peer stopped reading)`,
          { operation: "write", bytesWritten: n },
        );
      }
      return n;
    } finally {
      deadline.stop();
    }
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError("close for writing"));
    this.#out.end();
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) throw this.#closedError("close");
    this.#dispose();
  }

  [Symbol.dispose](): void {
    this.#dispose();
  }

  /** Closes if open: the session reads end of stream and cannot deliver more. */
  #dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#out.end();
    this.#in.closeReader(
      new Deno.errors.BrokenPipe(
        `Cannot deliver to the tunnel connection to ${this.#where}: the application closed it`,
      ),
    );
    this.#readDeadline.dispose();
    this.#writeDeadline.dispose();
  }

  #closedError(op: string): Error {
    return new Deno.errors.BadResource(
      `Cannot ${op} the tunnel connection to ${this.#where}: it is closed`,
    );
  }
}
