/**
 * The decoy's HTTP/2 connection after the client preface: frames pass
 * between the prober and the loopback HTTP/2 server, and the connection
 * ends when nginx 1.22 would end it, measured on loopback
 * (tests/e2e/probe_compare_test.ts):
 *
 * - no request yet: a GOAWAY (NO_ERROR, last stream 0) at
 *   `client_header_timeout` from the accept, whatever other frames came
 *   (a PING does not extend it);
 * - after requests, once none is open: a GOAWAY (NO_ERROR, the last stream
 *   the prober opened) `keepalive_timeout` after the last one ended;
 *
 * each followed by a TLS close_notify; and, as nginx's `send_timeout`
 * and `client_body_timeout`, a connection whose open request saw nothing
 * move for `activeIdleMs` (60 s), or whose prober stopped reading, is
 * closed without one. The web server's own preface is
 * dropped on the way back ({@linkcode BackendPrefaceFilter}): the prober
 * already has nginx's.
 *
 * @module
 */
import { type ByteStream, writeAll } from "../transport/types.ts";
import { describeError, type Logger } from "../observe/mod.ts";
import { BackendPrefaceFilter } from "../handshake/mod.ts";
import { concat } from "../wire/bytes.ts";
import type { TimedReader } from "./reader.ts";

const FRAME_HEADER = 9;
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const END_STREAM = 0x1;
/** Streams tracked at once; past this many a prober's streams are not counted (128 are allowed). */
const MAX_TRACKED_STREAMS = 256;

/** One frame header seen on the wire. */
export interface FrameHead {
  length: number;
  type: number;
  flags: number;
  stream: number;
}

/**
 * Finds the frame headers in one direction of an HTTP/2 connection, chunk by
 * chunk, after the preface (it holds at most 8 bytes between chunks). Pure.
 *
 * @example
 * ```ts
 * import { FrameScanner } from "./decoy_h2.ts";
 * const s = new FrameScanner();
 * s.push(new Uint8Array([0, 0, 0, 4, 0, 0, 0])); // []: not a whole header yet
 * s.push(new Uint8Array([0, 0])); // [{ length: 0, type: 4, flags: 0, stream: 0 }]
 * ```
 */
export class FrameScanner {
  #held = new Uint8Array(0);
  /** Payload bytes of the current frame still to pass. */
  #skip = 0;

  /** The frame headers that complete in this chunk. */
  push(chunk: Uint8Array): FrameHead[] {
    const out: FrameHead[] = [];
    let b = chunk;
    if (this.#held.length > 0) {
      b = new Uint8Array(this.#held.length + chunk.length);
      b.set(this.#held);
      b.set(chunk, this.#held.length);
      this.#held = new Uint8Array(0);
    }
    let at = 0;
    while (at < b.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, b.length - at);
        this.#skip -= n;
        at += n;
        continue;
      }
      if (b.length - at < FRAME_HEADER) {
        this.#held = b.slice(at);
        break;
      }
      const length = (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;
      out.push({
        length,
        type: b[at + 3]!,
        flags: b[at + 4]!,
        stream:
          ((b[at + 5]! & 0x7f) << 24 | (b[at + 6]! << 16) | (b[at + 7]! << 8) | b[at + 8]!) >>>
          0,
      });
      this.#skip = length;
      at += FRAME_HEADER;
    }
    return out;
  }
}

/**
 * Which requests are open on a connection, from the frames both sides send:
 * a stream opens with the prober's HEADERS on a new odd stream, and ends
 * with the server's END_STREAM (HEADERS or DATA) or a RST_STREAM from
 * either side. Pure; `now` is the caller's clock.
 *
 * @example
 * ```ts
 * import { StreamWatch } from "./decoy_h2.ts";
 * const w = new StreamWatch();
 * w.fromClient({ length: 20, type: 1, flags: 5, stream: 1 }, 0); // GET / opens stream 1
 * w.fromServer({ length: 600, type: 0, flags: 1, stream: 1 }, 5); // the answer ends it
 * w.idleSince; // 5
 * ```
 */
export class StreamWatch {
  readonly #open = new Set<number>();
  /** The highest stream the prober opened (0: none yet). */
  lastStream = 0;
  /** When the last open request ended (undefined while one is open, or before any). */
  idleSince: number | undefined;

  /** True once the prober sent a request. */
  get anyRequest(): boolean {
    return this.lastStream > 0;
  }

  /** Requests open now. */
  get open(): number {
    return this.#open.size;
  }

  fromClient(f: FrameHead, now: number): void {
    if (f.type === HEADERS && f.stream % 2 === 1 && f.stream > this.lastStream) {
      this.lastStream = f.stream;
      if (this.#open.size < MAX_TRACKED_STREAMS) this.#open.add(f.stream);
      this.idleSince = undefined;
    } else if (f.type === RST_STREAM) {
      this.#end(f.stream, now);
    }
  }

  fromServer(f: FrameHead, now: number): void {
    if (
      f.type === RST_STREAM ||
      ((f.type === HEADERS || f.type === DATA) && (f.flags & END_STREAM) !== 0)
    ) {
      this.#end(f.stream, now);
    }
  }

  #end(stream: number, now: number): void {
    if (!this.#open.delete(stream)) return;
    if (this.#open.size === 0) this.idleSince = now;
  }
}

/**
 * The prober's bytes on their way to the loopback HTTP/2 server, which runs
 * with nginx's SETTINGS values but, as HTTP/2 allows, applies them only
 * once the prober acknowledges them. nginx applies its own at once (a
 * 20,000-byte frame right after the preface is read, not refused). So the
 * prober's acknowledgement is moved forward: a SETTINGS ACK goes to the
 * server right after the prober's first SETTINGS frame, and the prober's
 * own first SETTINGS ACK (of nginx's preface, the same values) is dropped.
 * Anything that does not start with the client preface and a SETTINGS
 * frame passes unchanged. Pure; holds at most 8 bytes between chunks.
 *
 * @example
 * ```ts
 * import { ProberAckForward } from "./decoy_h2.ts";
 * const f = new ProberAckForward();
 * const preface = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
 * f.push(Uint8Array.from([...preface, 0, 0, 0, 4, 0, 0, 0, 0, 0])); // + an ACK: 00 00 00 04 01 …
 * f.push(Uint8Array.from([0, 0, 0, 4, 1, 0, 0, 0, 0])); // the prober's ACK: dropped (empty)
 * ```
 */
export class ProberAckForward {
  #preface = 24;
  #held = new Uint8Array(0);
  /** Bytes of the current frame still to pass on (or drop). */
  #rest = 0;
  #dropping = false;
  /** 0: the first frame is next; 1: waiting for the prober's first ACK; 2: done. */
  #stage = 0;

  /** The bytes to send the web server for this chunk from the prober. */
  push(chunk: Uint8Array): Uint8Array {
    if (this.#stage === 2 && this.#rest === 0 && this.#held.length === 0) return chunk;
    const out: Uint8Array[] = [];
    let b = this.#held.length === 0 ? chunk : concat([this.#held, chunk]);
    this.#held = new Uint8Array(0);
    if (this.#preface > 0) {
      const n = Math.min(this.#preface, b.length);
      out.push(b.subarray(0, n));
      this.#preface -= n;
      b = b.subarray(n);
    }
    while (b.length > 0) {
      if (this.#rest > 0) {
        const n = Math.min(this.#rest, b.length);
        if (!this.#dropping) out.push(b.subarray(0, n));
        this.#rest -= n;
        b = b.subarray(n);
        if (this.#rest === 0 && this.#stage === 0) {
          out.push(SETTINGS_ACK);
          this.#stage = 1;
        }
        continue;
      }
      if (this.#stage === 2) {
        out.push(b);
        break;
      }
      if (b.length < FRAME_HEADER) {
        this.#held = b.slice();
        break;
      }
      const length = (b[0]! << 16) | (b[1]! << 8) | b[2]!;
      const settings = b[3] === SETTINGS && isStreamZeroHeader(b);
      const ack = settings && (b[4]! & ACK) !== 0;
      this.#dropping = false;
      if (this.#stage === 0) {
        if (!settings || ack) this.#stage = 2; // no SETTINGS first: nothing to move
      } else if (ack && length === 0) {
        this.#dropping = true;
        this.#stage = 2;
      }
      if (!this.#dropping) out.push(b.subarray(0, FRAME_HEADER));
      this.#rest = length;
      b = b.subarray(FRAME_HEADER);
      if (length === 0 && this.#stage === 0) {
        out.push(SETTINGS_ACK);
        this.#stage = 1;
      }
    }
    return out.length === 1 ? out[0]! : concat(out);
  }
}

const SETTINGS = 0x4;
const ACK = 0x1;
const SETTINGS_ACK = Uint8Array.of(0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0);

function isStreamZeroHeader(b: Uint8Array): boolean {
  return ((b[5]! & 0x7f) | b[6]! | b[7]! | b[8]!) === 0;
}

/** nginx's GOAWAY: no debug data, NO_ERROR, naming the last stream it took. */
export function goawayFrame(lastStream: number, code = 0): Uint8Array {
  const b = new Uint8Array(FRAME_HEADER + 8);
  const v = new DataView(b.buffer);
  b[2] = 8;
  b[3] = 0x07;
  v.setUint32(FRAME_HEADER, lastStream & 0x7fffffff);
  v.setUint32(FRAME_HEADER + 4, code);
  return b;
}

/** What {@linkcode serveH2} needs. */
export interface H2Session {
  /** The loopback HTTP/2 server. */
  backend: { hostname: string; port: number };
  /** When the connection was accepted (Date.now()). */
  startedAt: number;
  headerMs: number;
  keepaliveMs: number;
  /** The longest a request may stay open with nothing moving (nginx's send and body timeouts). */
  activeIdleMs: number;
  log: Logger;
}

/**
 * Runs the connection whose client preface (and whatever followed it) is
 * `received`, until either side ends it or nginx's timer would. Closes the
 * backend connection; the caller closes `conn`.
 */
export async function serveH2(
  conn: ByteStream,
  reader: TimedReader,
  received: Uint8Array,
  s: H2Session,
): Promise<void> {
  let up: Deno.TcpConn;
  try {
    up = await Deno.connect(s.backend);
  } catch (e) {
    s.log.warn(`decoy HTTP/2 side unreachable: ${describeError(e)}`);
    return;
  }
  const watch = new StreamWatch();
  const fromClient = new FrameScanner();
  const fromServer = new FrameScanner();
  // The loopback server's preface and SETTINGS ACKs are dropped: nginx acknowledges each of the
  // prober's SETTINGS the moment it reads it, and so does this side (`seen`), even when the
  // loopback server then ends the connection over a later frame.
  const filter = new BackendPrefaceFilter({ dropAcks: true, trimGoaway: true });
  const ackForward = new ProberAckForward();
  // Writes to the prober go one after another; `pending` counts those not done.
  let writes: Promise<void> = Promise.resolve();
  let pending = 0;
  const toProber = (b: Uint8Array): Promise<void> => {
    pending++;
    writes = writes.then(() => writeAll(conn, b)).finally(() => pending--);
    return writes;
  };
  const seen = (frames: FrameHead[], now: number) => {
    for (const f of frames) {
      watch.fromClient(f, now);
      if (f.type === SETTINGS && (f.flags & ACK) === 0 && f.stream === 0 && f.length % 6 === 0) {
        void toProber(SETTINGS_ACK).catch(() => {});
      }
    }
  };
  // The client preface itself is no frame.
  seen(fromClient.push(received.subarray(24)), Date.now());
  let lastMove = Date.now();
  let ended = false;
  /** Wakes the timer loop to look again (set by the loop, called by the pumps). */
  let poke: (() => void) | undefined;
  const end = () => {
    ended = true;
    poke?.();
  };
  // Ends when the prober's side does (the caller's close of `conn` ends its last read).
  void (async () => {
    await writeAll(up, ackForward.push(received));
    while (!ended) {
      const chunk = await reader.next();
      if (chunk === null || chunk === "timeout" || ended) break;
      lastMove = Date.now();
      seen(fromClient.push(chunk), lastMove);
      const out = ackForward.push(chunk);
      if (out.length > 0) await writeAll(up, out.slice());
      poke?.();
    }
    await up.closeWrite().catch(() => {});
  })().catch(() => {}).finally(end);
  void (async () => {
    const buf = new Uint8Array(64 * 1024);
    while (!ended) {
      const n = await up.read(buf);
      if (n === null) {
        // The loopback server ended the connection (after its GOAWAY): nginx closes cleanly.
        await writes.then(() => conn.closeWrite()).catch(() => {});
        break;
      }
      lastMove = Date.now();
      const chunk = buf.subarray(0, n);
      for (const f of fromServer.push(chunk)) watch.fromServer(f, lastMove);
      const out = filter.push(chunk);
      if (out.length > 0) await toProber(out.slice());
      poke?.();
    }
  })().catch(() => {}).finally(end);
  try {
    while (!ended) {
      const deadline = watch.open > 0
        ? lastMove + s.activeIdleMs
        : !watch.anyRequest
        ? s.startedAt + s.headerMs
        : (watch.idleSince ?? lastMove) + s.keepaliveMs;
      const left = deadline - Date.now();
      if (left <= 0) {
        ended = true;
        if (pending > 0) {
          // nginx's send_timeout: the prober stopped reading; closed without a GOAWAY.
          conn.close();
          break;
        }
        const sent = toProber(goawayFrame(watch.lastStream)).then(() => conn.closeWrite());
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"late">((
          res,
        ) => (timer = setTimeout(res, s.activeIdleMs, "late")));
        const r = await Promise.race([sent, late]).finally(() => clearTimeout(timer));
        if (r === "late") conn.close();
        break;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((res) => {
        poke = res;
        timer = setTimeout(res, left);
      });
      poke = undefined;
      clearTimeout(timer);
    }
  } catch {
    // The prober went away mid-write.
  } finally {
    ended = true;
    // The pumps end with their streams: `up` here, `conn` by the caller (or above).
    try {
      up.close();
    } catch {
      // already closed
    }
  }
}
