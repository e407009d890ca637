/**
 * The engine behind `TunnelDatagramConn`: a UDP association
 * (`lib/tunnel/association.ts`) with a bounded receive queue.
 *
 * @module
 */
import { type Association, datagramAddress, openAssociation } from "../tunnel/association.ts";
import type { Session } from "../tunnel/session.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { checkTimeout } from "./_conn.ts";
import {
  DATAGRAM_QUEUE_MAX,
  MAX_DATAGRAM_BYTES,
  type ReceiveOptions,
  type TunnelDatagramConn,
} from "./datagram.ts";

/**
 * Opens the association on the session `session()` gives and returns the
 * application's end of it. Rejects as `openAssociation` does.
 */
export async function dialDatagram(
  session: () => Promise<Session>,
  target: { hostname: string; port: number },
  timeoutMs: number,
): Promise<TunnelDatagramConn> {
  const conn = new DatagramConn(target);
  conn.attach(await openAssociation(session, timeoutMs, conn.handlers));
  return conn;
}

class DatagramConn implements TunnelDatagramConn {
  readonly remoteAddr: Deno.NetAddr;
  readonly #to: Uint8Array;
  readonly #where: string;
  readonly #queue: Uint8Array[] = [];
  #association: Association | undefined;
  #dropped = 0;
  #closed = false;
  /** Why the tunnel ended the association, once it did. */
  #ended: string | undefined;
  #wake: (() => void) | undefined;
  #receiving = false;

  constructor(target: { hostname: string; port: number }) {
    this.remoteAddr = { transport: "udp", hostname: target.hostname, port: target.port };
    this.#to = datagramAddress(target.hostname, target.port);
    this.#where = formatHostPort(target.hostname, target.port);
  }

  readonly handlers = {
    onDatagram: (data: Uint8Array) => {
      if (this.#queue.length >= DATAGRAM_QUEUE_MAX) {
        this.#queue.shift();
        this.#dropped++;
      }
      this.#queue.push(data.slice());
      this.#wakeReceiver();
    },
    onClose: (reason: string) => {
      this.#ended ??= reason;
      this.#wakeReceiver();
    },
  };

  attach(association: Association): void {
    this.#association = association;
  }

  get dropped(): number {
    return this.#dropped;
  }

  send(data: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(this.#closedError("send to"));
    if (data.length > MAX_DATAGRAM_BYTES) {
      return Promise.reject(
        new RangeError(
          `Cannot send to ${this.#where}: ${data.length} bytes exceed the UDP maximum ${MAX_DATAGRAM_BYTES}`,
        ),
      );
    }
    if (this.#ended !== undefined) return Promise.reject(this.#resetError());
    // The session keeps views until its writer pulls them: a copy of the caller's bytes.
    if (this.#association!.send(this.#to, data.slice())) return Promise.resolve(data.length);
    if (this.#ended !== undefined) return Promise.reject(this.#resetError());
    return Promise.reject(
      new RangeError(
        `Cannot send to ${this.#where}: a datagram of ${data.length} bytes does not fit one record`,
      ),
    );
  }

  async receive(options?: ReceiveOptions): Promise<Uint8Array> {
    if (this.#closed) throw this.#closedError("receive from");
    const ms = options?.timeoutMs;
    checkTimeout("timeoutMs", ms);
    if (this.#receiving) {
      throw new Deno.errors.Busy(
        `Cannot receive from ${this.#where}: another receive is in progress`,
      );
    }
    this.#receiving = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let late = false;
    try {
      for (;;) {
        const d = this.#queue.shift();
        if (d !== undefined) return d;
        if (this.#closed) throw this.#closedError("receive from");
        if (this.#ended !== undefined) throw this.#resetError();
        if (late) {
          throw new Deno.errors.TimedOut(
            `Cannot receive from ${this.#where}: no datagram within ${ms} ms`,
          );
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          if (ms !== undefined && timer === undefined) {
            timer = setTimeout(() => {
              late = true;
              this.#wakeReceiver();
            }, ms);
          }
        });
      }
    } finally {
      clearTimeout(timer);
      this.#receiving = false;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (e) {
        if (this.#closed || e instanceof Deno.errors.ConnectionReset) return;
        throw e;
      }
    }
  }

  close(): void {
    if (this.#closed) throw this.#closedError("close");
    this.#dispose();
  }

  [Symbol.dispose](): void {
    this.#dispose();
  }

  #dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#association?.close("closed by the application");
    this.#wakeReceiver();
  }

  #wakeReceiver(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #closedError(op: string): Error {
    return new Deno.errors.BadResource(
      `Cannot ${op} the tunnel datagram connection to ${this.#where}: it is closed`,
    );
  }

  #resetError(): Error {
    return new Deno.errors.ConnectionReset(
      `The tunnel datagram connection to ${this.#where} ended: ${this.#ended}`,
    );
  }
}
