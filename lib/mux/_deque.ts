/**
 * A FIFO ring buffer: O(1) push, peek and shift, shrinks when mostly empty
 * so a burst (10,000 OPENs) does not pin memory afterwards.
 *
 * @module
 */

const MIN_CAPACITY = 16;

/** First in, first out; `undefined` is not a valid element. */
export class Deque<T> {
  #buf: (T | undefined)[] = new Array(MIN_CAPACITY);
  #head = 0;
  #len = 0;

  /** Elements held. */
  get length(): number {
    return this.#len;
  }

  /** Appends at the back. */
  push(v: T): void {
    if (this.#len === this.#buf.length) this.#resize(this.#buf.length * 2);
    this.#buf[(this.#head + this.#len) & (this.#buf.length - 1)] = v;
    this.#len++;
  }

  /** The front element, left in place. */
  peek(): T | undefined {
    return this.#len === 0 ? undefined : this.#buf[this.#head];
  }

  /** The element `i` places from the front (0 is the front), or undefined past the end. */
  at(i: number): T | undefined {
    return i < 0 || i >= this.#len
      ? undefined
      : this.#buf[(this.#head + i) & (this.#buf.length - 1)];
  }

  /** Removes and returns the front element. */
  shift(): T | undefined {
    if (this.#len === 0) return undefined;
    const v = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#buf.length - 1);
    this.#len--;
    if (this.#buf.length > 1024 && this.#len < this.#buf.length >>> 2) {
      this.#resize(this.#buf.length >>> 1);
    }
    return v;
  }

  #resize(cap: number): void {
    const next: (T | undefined)[] = new Array(cap);
    const mask = this.#buf.length - 1;
    for (let i = 0; i < this.#len; i++) next[i] = this.#buf[(this.#head + i) & mask];
    this.#buf = next;
    this.#head = 0;
  }
}
