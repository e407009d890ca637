/**
 * One direction of a tunnel connection inside this process: a writer's
 * chunk waits in the channel, uncopied, until the reader has taken all of
 * it (the role of Go's `net.Pipe`). There is no buffer beyond the chunk
 * being handed over, so the only queue between the application and the
 * wire is the tunnel's own credit window: a writer whose peer stopped
 * reading waits here, which is what a write deadline measures.
 *
 * Reads and writes can carry a {@linkcode Deadline}. A read that times out
 * has taken nothing (the copy happens only when the bytes are there), and a
 * write that times out withdraws the part of its chunk not yet taken, so a
 * deadline never loses or duplicates a byte.
 *
 * @module
 */

/** What {@linkcode Channel.read} returns when its deadline passed first. */
export const TIMED_OUT = -1;

/**
 * A lazily armed deadline shared by successive operations of one
 * direction: `start()` and `stop()` only move a number, and at most one
 * timer runs per deadline period however many operations start, so a
 * deadline costs no timer per chunk on the data path.
 */
export class Deadline {
  #at = Infinity;
  #armedFor = Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired = false;
  readonly #wake: () => void;

  /** `wake` is called when the deadline passes, to wake the waiting operation. */
  constructor(wake: () => void) {
    this.#wake = wake;
  }

  /** True once the running deadline passed (until the next `start`). */
  get expired(): boolean {
    return this.#expired;
  }

  /** Starts a deadline `ms` from now; the timer is armed only when an operation waits. */
  start(ms: number): void {
    this.#expired = false;
    this.#at = performance.now() + ms;
  }

  /** Ends the running deadline (a timer already armed finds nothing to do). */
  stop(): void {
    this.#at = Infinity;
  }

  /** Called before an operation waits: makes sure a timer will fire by the deadline. */
  arm(): void {
    if (this.#at === Infinity || this.#expired) return;
    if (this.#timer !== undefined && this.#armedFor <= this.#at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = this.#at;
    const timer = setTimeout(this.#fire, Math.max(0, this.#at - performance.now()));
    // A deadline alone must not keep the process alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Clears the timer (the connection is closed). */
  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    if (this.#at === Infinity) return;
    if (performance.now() + 1 >= this.#at) {
      this.#at = Infinity;
      this.#expired = true;
      this.#wake();
      return;
    }
    this.arm();
  };
}

/** One direction of a connection: one writer, one reader, no buffer. */
export class Channel {
  #chunk: Uint8Array | undefined;
  #off = 0;
  /** The last chunk the reader took in full: its writer may return. */
  #taken: Uint8Array | undefined;
  /** The writer finished: the reader gets end of stream once the chunk is taken. */
  #ended = false;
  /** The stream broke before its end: the reader gets this instead of more bytes. */
  #broken: Error | undefined;
  /** The reader is gone: writes fail with this. */
  #readerGone: Error | undefined;
  #readWake: (() => void) | undefined;
  #writeWake: (() => void) | undefined;
  #reading = false;
  readonly #what: string;

  /** `what` names the direction in errors, e.g. "tunnel connection to 127.0.0.1:80". */
  constructor(what: string) {
    this.#what = what;
  }

  /**
   * Reads into `p`: the count taken, null at the end of the stream, or
   * {@linkcode TIMED_OUT} when `deadline` passed first (nothing taken).
   * Throws the error the stream broke with.
   */
  async read(p: Uint8Array, deadline?: Deadline): Promise<number | null> {
    if (this.#reading) {
      throw new Deno.errors.Busy(`Cannot read from ${this.#what}: another read is in progress`);
    }
    if (p.length === 0) return 0;
    this.#reading = true;
    try {
      for (;;) {
        const c = this.#chunk;
        if (c !== undefined) {
          const n = Math.min(p.length, c.length - this.#off);
          p.set(c.subarray(this.#off, this.#off + n));
          this.#off += n;
          if (this.#off === c.length) {
            this.#chunk = undefined;
            this.#off = 0;
            this.#taken = c;
            this.#wakeWriter();
          }
          return n;
        }
        if (this.#ended) return null;
        if (this.#broken !== undefined) throw this.#broken;
        if (this.#readerGone !== undefined) return null;
        if (deadline?.expired) return TIMED_OUT;
        deadline?.arm();
        await new Promise<void>((r) => (this.#readWake = r));
      }
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Hands `p` to the reader and waits until it has taken all of it:
   * resolves `p.length`, or fewer (the part taken) when `deadline` passed
   * first, the rest withdrawn. Throws `BrokenPipe` when the reader is gone
   * or the writer side was closed.
   */
  async write(p: Uint8Array, deadline?: Deadline): Promise<number> {
    this.#checkWritable();
    if (this.#chunk !== undefined) {
      throw new Deno.errors.Busy(`Cannot write to ${this.#what}: another write is in progress`);
    }
    if (p.length === 0) return 0;
    this.#chunk = p;
    this.#off = 0;
    this.#taken = undefined;
    this.#wakeReader();
    for (;;) {
      if (this.#tookAll(p)) return p.length;
      if (this.#chunk !== p) this.#checkWritable(); // withdrawn by end, break or closeReader
      if (deadline?.expired) {
        const taken = this.#off;
        this.#chunk = undefined;
        this.#off = 0;
        return taken;
      }
      deadline?.arm();
      await new Promise<void>((r) => (this.#writeWake = r));
    }
  }

  /** The writer is done: the reader gets end of stream after the bytes handed over. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#withdraw();
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** The stream broke: a waiting or later read fails with `error` (unless it already ended). */
  break(error: Error): void {
    if (this.#ended || this.#broken !== undefined) return;
    this.#broken = error;
    this.#withdraw();
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** The reader is gone: a waiting or later write fails with `error`. */
  closeReader(error: Error): void {
    if (this.#readerGone !== undefined) return;
    this.#readerGone = error;
    this.#withdraw();
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** Wakes a waiting reader or writer to look at its deadline. */
  wake(): void {
    this.#wakeReader();
    this.#wakeWriter();
  }

  #checkWritable(): void {
    if (this.#readerGone !== undefined) throw this.#readerGone;
    if (this.#ended) {
      throw new Deno.errors.BrokenPipe(`Cannot write to ${this.#what}: the write side is closed`);
    }
    if (this.#broken !== undefined) {
      throw new Deno.errors.BrokenPipe(`Cannot write to ${this.#what}: ${this.#broken.message}`);
    }
  }

  /** True (once) when the reader took all of `p`. */
  #tookAll(p: Uint8Array): boolean {
    if (this.#taken !== p) return false;
    this.#taken = undefined;
    return true;
  }

  /** Takes back a chunk not yet read in full: its writer fails. */
  #withdraw(): void {
    this.#chunk = undefined;
    this.#off = 0;
  }

  #wakeReader(): void {
    const w = this.#readWake;
    this.#readWake = undefined;
    w?.();
  }

  #wakeWriter(): void {
    const w = this.#writeWake;
    this.#writeWake = undefined;
    w?.();
  }
}
