/**
 * A reader over a byte stream that can time out without losing data: a read
 * that has not finished when the timer fires stays outstanding and its bytes
 * are returned by the next call, so the connection can be handed on whole
 * (to the fallback web server, or to the session).
 *
 * @module
 */
import type { ByteStream } from "../transport/types.ts";

/** What `TimedReader.next` resolves to. */
export type ReadResult = Uint8Array | null | "timeout";

/**
 * Wraps a stream for reads with a deadline.
 *
 * @example
 * ```ts ignore
 * const r = new TimedReader(conn);
 * const chunk = await r.next(1000); // bytes, null at end, or "timeout"
 * ```
 */
export class TimedReader {
  readonly #s: ByteStream;
  readonly #buf: Uint8Array;
  #pending: Promise<Uint8Array | null> | undefined;

  constructor(s: ByteStream, bufferBytes = 16 * 1024) {
    this.#s = s;
    this.#buf = new Uint8Array(bufferBytes);
  }

  /** True while a read is outstanding. */
  get busy(): boolean {
    return this.#pending !== undefined;
  }

  /** The outstanding read, started if there is none. */
  #read(): Promise<Uint8Array | null> {
    if (this.#pending === undefined) {
      this.#pending = this.#s.read(this.#buf).then((n) => {
        this.#pending = undefined;
        return n === null ? null : this.#buf.slice(0, n);
      }, (e) => {
        this.#pending = undefined;
        throw e;
      });
      // A read that outlives its caller's timeout must not become an unhandled rejection.
      this.#pending.catch(() => {});
    }
    return this.#pending;
  }

  /** The next chunk (a copy), null at end of stream, or "timeout". */
  next(timeoutMs?: number): Promise<ReadResult> {
    const p = this.#read();
    if (timeoutMs === undefined) return p;
    return new Promise<ReadResult>((resolve, reject) => {
      const timer = setTimeout(() => resolve("timeout"), timeoutMs);
      p.then((v) => {
        clearTimeout(timer);
        resolve(v);
      }, (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /**
   * The next chunk, null at end of stream, or "timeout" once `deadline`
   * settles: one deadline (and one timer) serves several reads.
   */
  nextBefore(deadline: Promise<"timeout">): Promise<ReadResult> {
    const p = this.#read();
    return new Promise<ReadResult>((resolve, reject) => {
      p.then(resolve, reject);
      deadline.then(resolve);
    });
  }
}
