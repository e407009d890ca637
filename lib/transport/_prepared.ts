/**
 * What the ws transports and the PROXY v2 reader share: reading a bounded
 * prefix of a fresh connection under a deadline without losing a byte, a
 * connection that gives those bytes back first, and a listener that
 * prepares each accepted connection on its own (one slow client does not
 * hold up the others). Private to `lib/transport`.
 *
 * @module
 */
import type { TransportConn, TransportListener } from "./registry.ts";
import type { ByteStream } from "./types.ts";

/** What {@linkcode readPrefix}'s `decide` says about the bytes so far. */
export type PrefixVerdict = "more" | "done";

/** What {@linkcode readPrefix} read. */
export interface Prefix {
  /** Every byte read so far (the caller decides what is prefix and what is data). */
  bytes: Uint8Array;
  /** "done" when `decide` said so; otherwise why reading stopped. */
  end: "done" | "eof" | "timeout" | "full";
  /** A read still outstanding after a timeout: its bytes follow `bytes`. */
  pending?: { read: Promise<number | null>; buf: Uint8Array };
}

/**
 * Reads from `conn` until `decide(bytes)` says "done", the stream ends,
 * `max` bytes are in, or `deadlineMs` passes. A read outstanding at the
 * deadline is returned as `pending`, so nothing is lost when the connection
 * is handed on.
 */
export async function readPrefix(
  conn: ByteStream,
  decide: (bytes: Uint8Array) => PrefixVerdict,
  opts: { max: number; deadlineMs: number },
): Promise<Prefix> {
  const buf = new Uint8Array(opts.max);
  let have = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((
    r,
  ) => (timer = setTimeout(() => r("timeout"), opts.deadlineMs)));
  try {
    for (;;) {
      const view = buf.subarray(have);
      const read = conn.read(view);
      const r = await Promise.race([read, timeout]);
      if (r === "timeout") {
        read.catch(() => {});
        return { bytes: buf.subarray(0, have), end: "timeout", pending: { read, buf: view } };
      }
      if (r === null) return { bytes: buf.subarray(0, have), end: "eof" };
      have += r;
      if (decide(buf.subarray(0, have)) === "done") {
        return { bytes: buf.subarray(0, have), end: "done" };
      }
      if (have === buf.length) return { bytes: buf, end: "full" };
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A connection whose first reads return `prefix` (and then what a pending
 * read brings), then the inner connection's bytes; `remoteAddr` may be
 * replaced (the PROXY v2 source) and `refused` set (serve it as a probe).
 */
export class PrefixedConn implements TransportConn {
  readonly #inner: TransportConn;
  #prefix: Uint8Array;
  #pending: { read: Promise<number | null>; buf: Uint8Array } | undefined;
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr;
  readonly refused?: string;
  /** The inner TLS connection's ALPN choice (null without TLS): the decoy answers h2 by it. */
  readonly alpnProtocol: string | null;
  /** The inner TLS connection's client certificate, when the listener asked for one. */
  readonly clientCertificate?: NonNullable<TransportConn["clientCertificate"]>;

  constructor(
    inner: TransportConn,
    prefix: Prefix | Uint8Array,
    opts: { remoteAddr?: Deno.Addr; refused?: string } = {},
  ) {
    this.#inner = inner;
    if (prefix instanceof Uint8Array) {
      this.#prefix = prefix;
    } else {
      this.#prefix = prefix.bytes;
      this.#pending = prefix.pending;
    }
    this.remoteAddr = opts.remoteAddr ?? inner.remoteAddr;
    this.localAddr = inner.localAddr;
    if (opts.refused !== undefined) this.refused = opts.refused;
    const alpn = (inner as { alpnProtocol?: string | null }).alpnProtocol;
    this.alpnProtocol = typeof alpn === "string" ? alpn : null;
    if (inner.clientCertificate !== undefined) this.clientCertificate = inner.clientCertificate;
  }

  /**
   * Takes the bytes already read and not yet returned (not a read still
   * outstanding): the fallback gets them at once, even when its timer has
   * run out while the transport was reading.
   */
  takeBuffered(): Uint8Array {
    const b = this.#prefix;
    this.#prefix = new Uint8Array(0);
    return b;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (this.#prefix.length === 0 && this.#pending !== undefined) {
      const { read, buf } = this.#pending;
      this.#pending = undefined;
      const n = await read;
      if (n === null) return null;
      this.#prefix = buf.subarray(0, n);
    }
    if (this.#prefix.length > 0) {
      const n = Math.min(p.length, this.#prefix.length);
      p.set(this.#prefix.subarray(0, n));
      this.#prefix = this.#prefix.subarray(n);
      return n;
    }
    return this.#inner.read(p);
  }

  write(p: Uint8Array): Promise<number> {
    return this.#inner.write(p);
  }

  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }

  close(): void {
    this.#inner.close();
  }
}

/** At most this many accepted connections are being prepared at once; more wait. */
const MAX_PREPARING = 256;

/**
 * A listener whose connections went through `prepare` (read a PROXY header,
 * an HTTP upgrade) each on its own, yielded in the order they finished.
 * A `prepare` that throws closes its connection.
 */
export function preparedListener(
  inner: TransportListener,
  prepare: (conn: TransportConn) => Promise<TransportConn>,
): TransportListener {
  const ready: TransportConn[] = [];
  /** Connections being prepared: closed with the listener, so none waits out its deadline. */
  const pending = new Set<TransportConn>();
  let wake: (() => void) | undefined;
  let preparing = 0;
  let slot: (() => void) | undefined;
  let done = false;
  let failure: unknown;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  (async () => {
    try {
      for await (const conn of inner) {
        if (preparing >= MAX_PREPARING) await new Promise<void>((r) => (slot = r));
        preparing++;
        pending.add(conn);
        const acceptedAt = Date.now();
        prepare(conn).then((c) => {
          c.acceptedAt ??= conn.acceptedAt ?? acceptedAt;
          if (done) c.close();
          else ready.push(c);
        }, () => {
          try {
            conn.close();
          } catch {
            // already closed
          }
        }).finally(() => {
          pending.delete(conn);
          preparing--;
          const s = slot;
          slot = undefined;
          s?.();
          notify();
        });
      }
    } catch (e) {
      failure = e;
    } finally {
      done = true;
      notify();
    }
  })();
  return {
    addr: inner.addr,
    close() {
      done = true;
      inner.close();
      for (const c of [...ready.splice(0), ...pending]) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      notify();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const c = ready.shift();
        if (c !== undefined) {
          yield c;
          continue;
        }
        if (done) {
          if (failure !== undefined && !(failure instanceof Deno.errors.BadResource)) throw failure;
          return;
        }
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}
