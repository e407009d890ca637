/**
 * An in-memory duplex byte stream pair with bounded buffering, so tunnel
 * code can be tested without sockets (the role of wireguard-go's
 * `bindtest`). Behaves like a TCP connection between the two ends.
 *
 * @module
 */
import type { ByteStream } from "./types.ts";

/** Default bytes buffered per direction before `write` blocks. */
export const DEFAULT_PIPE_CAPACITY = 65536;

/** One direction: bytes written by one end, read by the other. */
class Direction {
  readonly chunks: Uint8Array[] = [];
  size = 0;
  /** The writer half-closed or closed: the reader gets EOF after draining. */
  eof = false;
  /** The reader closed: writes fail. */
  readerGone = false;
  #waiters: (() => void)[] = [];

  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  notify(): void {
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }
}

class PipeEnd implements ByteStream {
  #in: Direction;
  #out: Direction;
  #capacity: number;
  #closed = false;

  constructor(incoming: Direction, outgoing: Direction, capacity: number) {
    this.#in = incoming;
    this.#out = outgoing;
    this.#capacity = capacity;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) throw new Deno.errors.BadResource("Cannot read from memory pipe: closed");
    const d = this.#in;
    for (;;) {
      if (p.length === 0) return 0;
      if (d.size > 0) {
        let n = 0;
        while (n < p.length && d.chunks.length > 0) {
          const c = d.chunks[0]!;
          const k = Math.min(c.length, p.length - n);
          p.set(c.subarray(0, k), n);
          n += k;
          if (k === c.length) d.chunks.shift();
          else d.chunks[0] = c.subarray(k);
        }
        d.size -= n;
        d.notify();
        return n;
      }
      if (d.eof) return null;
      await d.wait();
      if (this.#closed) return null;
    }
  }

  async write(p: Uint8Array): Promise<number> {
    const d = this.#out;
    for (;;) {
      if (this.#closed) throw new Deno.errors.BadResource("Cannot write to memory pipe: closed");
      if (d.eof) throw new Deno.errors.BrokenPipe("Cannot write to memory pipe: write side closed");
      if (d.readerGone) {
        throw new Deno.errors.BrokenPipe("Cannot write to memory pipe: peer closed");
      }
      if (p.length === 0) return 0;
      const space = this.#capacity - d.size;
      if (space > 0) {
        const n = Math.min(space, p.length);
        d.chunks.push(p.slice(0, n));
        d.size += n;
        d.notify();
        return n;
      }
      await d.wait();
    }
  }

  closeWrite(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new Deno.errors.BadResource("Cannot close memory pipe for writing: closed"),
      );
    }
    this.#out.eof = true;
    this.#out.notify();
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Cannot close memory pipe: already closed");
    this.#closed = true;
    this.#out.eof = true;
    this.#in.readerGone = true;
    this.#in.chunks.length = 0;
    this.#in.size = 0;
    this.#out.notify();
    this.#in.notify();
  }
}

/**
 * Two connected in-memory `ByteStream`s. Each direction buffers at most
 * `capacity` bytes: `write` accepts what fits (a short write) and waits
 * while the buffer is full, so `writeAll` applies backpressure. `read`
 * returns null once the peer called `closeWrite` or `close` and the buffer
 * is drained. `close` resolves this end's pending reads with null and
 * rejects its pending writes; the peer's writes then fail with `BrokenPipe`.
 * Like `Deno.Conn`, any call after `close` (including a second `close`)
 * throws `BadResource`.
 *
 * @example
 * ```ts
 * import { memoryPipe } from "./memory_pipe.ts";
 * import { writeAll } from "./types.ts";
 * const [a, b] = memoryPipe(4);
 * const sent = writeAll(a, new Uint8Array([1, 2, 3, 4, 5, 6])).then(() => a.closeWrite());
 * const buf = new Uint8Array(8);
 * await b.read(buf); // 4: the rest waits for room
 * await b.read(buf); // 2
 * await sent;
 * await b.read(buf); // null
 * ```
 */
export function memoryPipe(capacity: number = DEFAULT_PIPE_CAPACITY): [ByteStream, ByteStream] {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(
      `Cannot create memory pipe: capacity ${capacity} is not a positive integer`,
    );
  }
  const ab = new Direction();
  const ba = new Direction();
  return [new PipeEnd(ba, ab, capacity), new PipeEnd(ab, ba, capacity)];
}
