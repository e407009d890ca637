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

  /** The next chunk (a copy), null at end of stream, or "timeout". */
  next(timeoutMs?: number): Promise<ReadResult> {
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
    const p = this.#pending;
    if (timeoutMs === undefined) return p;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const t = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  }
}
