/**
 * Datagrams out of one UDP socket in the order they were given. Sends that
 * are started without waiting for each other may complete, and go out, in
 * any order (measured: a burst of 276 left a server's relay socket exactly
 * reversed), and UDP applications such as QUIC, voice and games suffer
 * from reordering the tunnel did not need to add. So each socket has one
 * send in flight; the datagrams behind it wait in a bounded queue (copied:
 * the caller's bytes may be views into a record) and past the bound are
 * dropped, as a full socket buffer would drop them.
 *
 * @module
 */

/** Datagrams waiting behind the one being sent, per socket. */
export const SEND_QUEUE_MAX = 1024;

/** One socket's sender. */
export class DatagramSender {
  readonly #sock: Deno.DatagramConn;
  readonly #failed: (e: unknown) => void;
  readonly #queue: [Uint8Array, Deno.Addr][] = [];
  #sending = false;
  #dropped = 0;

  /** Sends on `sock`; a send that fails is reported to `failed` (and the next goes on). */
  constructor(sock: Deno.DatagramConn, failed: (e: unknown) => void = () => {}) {
    this.#sock = sock;
    this.#failed = failed;
  }

  /** Datagrams dropped because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Sends `data` to `to` after every datagram given before; false when dropped (queue full). */
  send(data: Uint8Array, to: Deno.Addr): boolean {
    if (!this.#sending) {
      this.#sending = true;
      this.#run(data, to);
      return true;
    }
    if (this.#queue.length >= SEND_QUEUE_MAX) {
      this.#dropped++;
      return false;
    }
    this.#queue.push([data.slice(), to]);
    return true;
  }

  async #run(data: Uint8Array, to: Deno.Addr): Promise<void> {
    for (let next: [Uint8Array, Deno.Addr] | undefined = [data, to]; next !== undefined;) {
      try {
        await this.#sock.send(next[0], next[1]);
      } catch (e) {
        this.#failed(e);
      }
      next = this.#queue.shift();
    }
    this.#sending = false;
  }
}
