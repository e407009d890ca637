/**
 * The HTTP/2 server preface (docs/PROTOCOL.md part 2 section 6.2.2): when
 * TLS chose ALPN `h2`, a web server speaks first, sending its SETTINGS the
 * moment the TLS handshake ends; so does the NitroSocks server, with
 * nginx's. Three pure pieces:
 *
 * - {@linkcode H2_SERVER_PREFACE}: the bytes the server sends (nginx 1.22's
 *   SETTINGS and connection WINDOW_UPDATE, captured on loopback);
 * - {@linkcode ServerPrefaceSkipper}: the client's side, which drops one
 *   such preface, if it comes, before the first handshake message;
 * - {@linkcode BackendPrefaceFilter}: the fallback's side, which drops the
 *   HTTP/2 web server's own preface, because the prober already has one.
 *
 * @module
 */
import { concat } from "../wire/bytes.ts";

/** The frame header's size (RFC 9113 §4.1). */
const FRAME_HEADER = 9;
const SETTINGS = 0x04;
const WINDOW_UPDATE = 0x08;
const HEADERS = 0x01;
const GOAWAY = 0x07;
const ACK = 0x01;
/** The most SETTINGS payload the client skips: 16 settings (nginx sends 3, hyper 4, Go 5). */
export const MAX_PREFACE_SETTINGS_BYTES = 96;

/**
 * nginx 1.22's first frames on an `h2` connection: SETTINGS
 * (MAX_CONCURRENT_STREAMS 128, INITIAL_WINDOW_SIZE 65536, MAX_FRAME_SIZE
 * 16777215) and a WINDOW_UPDATE of 2147418112 on stream 0. 40 bytes.
 */
export const H2_SERVER_PREFACE: Uint8Array = hex(
  "000012040000000000" + "000300000080" + "000400010000" + "000500ffffff" +
    "000004080000000000" + "7fff0000",
);

/**
 * Is `b` (at least 9 bytes) the header of a SETTINGS frame that may open a
 * server preface: stream 0, no flags, a payload of whole settings no longer
 * than {@linkcode MAX_PREFACE_SETTINGS_BYTES}?
 */
function isPrefaceSettings(b: Uint8Array, at = 0): boolean {
  const len = (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;
  return len % 6 === 0 && len <= MAX_PREFACE_SETTINGS_BYTES && b[at + 3] === SETTINGS &&
    b[at + 4] === 0 && isStreamZero(b, at);
}

/** Is `b` the header of a 4-byte WINDOW_UPDATE on stream 0 with no flags? */
function isConnectionWindowUpdate(b: Uint8Array, at = 0): boolean {
  return b[at] === 0 && b[at + 1] === 0 && b[at + 2] === 4 && b[at + 3] === WINDOW_UPDATE &&
    b[at + 4] === 0 && isStreamZero(b, at);
}

/**
 * Do `b` start with the header of a GOAWAY frame (8 bytes of payload and
 * no debug data, stream 0), as the decoy and nginx send a peer whose first
 * bytes are no HTTP/2 preface?
 */
export function isGoawayHeader(b: Uint8Array): boolean {
  return b.length >= FRAME_HEADER && b[0] === 0 && b[1] === 0 && b[2] === 8 && b[3] === 0x07 &&
    b[4] === 0 && isStreamZero(b, 0);
}

function isStreamZero(b: Uint8Array, at: number): boolean {
  return ((b[at + 5]! & 0x7f) | b[at + 6]! | b[at + 7]! | b[at + 8]!) === 0;
}

/**
 * The client's side: feed it every chunk read before the first handshake
 * message; it returns the bytes that are the handshake's (possibly empty
 * while it still needs a frame header to decide). It drops one server
 * preface (a SETTINGS frame as {@linkcode H2_SERVER_PREFACE} starts, and a
 * connection WINDOW_UPDATE right after it) and passes everything else on
 * untouched. A ServerHello or cookie reply starts with uniformly random
 * bytes, so it is taken for a preface with probability below 2^-64.
 *
 * @example
 * ```ts
 * import { H2_SERVER_PREFACE, ServerPrefaceSkipper } from "./h2_preface.ts";
 * const skip = new ServerPrefaceSkipper();
 * const hello = new Uint8Array([0xa1, 0x07, 1, 2, 3, 4, 5, 6, 7, 8]);
 * skip.push(H2_SERVER_PREFACE.subarray(0, 5)); // empty: not decided yet
 * skip.push(new Uint8Array([...H2_SERVER_PREFACE.subarray(5), ...hello])); // hello
 * ```
 */
export class ServerPrefaceSkipper {
  #held = new Uint8Array(0);
  /** What is expected next. */
  #state: "settings" | "settings body" | "window" | "window body" | "done" = "settings";
  /** Payload bytes still to drop. */
  #skip = 0;
  #skipped = false;

  /** True once a preface was dropped (for the log). */
  get skipped(): boolean {
    return this.#skipped;
  }

  /** True once the skipper passes every byte straight on. */
  get done(): boolean {
    return this.#state === "done";
  }

  /** Bytes held back, undecided, at the end of the stream (fewer than 9). */
  get held(): Uint8Array {
    return this.#held;
  }

  /** The chunk's handshake bytes. */
  push(chunk: Uint8Array): Uint8Array {
    if (this.#state === "done") return chunk;
    let b = this.#held.length === 0 ? chunk : concat([this.#held, chunk]);
    this.#held = new Uint8Array(0);
    while (this.#state !== "done") {
      const state: string = this.#state;
      if (state === "settings body" || state === "window body") {
        const n = Math.min(this.#skip, b.length);
        this.#skip -= n;
        b = b.subarray(n);
        if (this.#skip > 0) return new Uint8Array(0);
        this.#state = state === "window body" ? "done" : "window";
        if (this.#state === "window" && b.length === 0) return b;
        continue;
      }
      if (b.length < FRAME_HEADER) {
        this.#held = b.slice();
        return new Uint8Array(0);
      }
      const settings = state === "settings";
      if (settings ? isPrefaceSettings(b) : isConnectionWindowUpdate(b)) {
        this.#skip = (b[0]! << 16) | (b[1]! << 8) | b[2]!;
        this.#state = settings ? "settings body" : "window body";
        this.#skipped = true;
        b = b.subarray(FRAME_HEADER);
        continue;
      }
      this.#state = "done";
    }
    return b;
  }
}

/**
 * The fallback's side, on the bytes an HTTP/2 web server (the decoy's, or
 * `fallback.upstream`) sends a prober who already has the server preface:
 * drops that web server's own first SETTINGS frame, and its first
 * connection WINDOW_UPDATE if that comes before any HEADERS or GOAWAY
 * (hyper sends it after answering the prober's first frames), so that the
 * prober sees one preface, nginx's; every other frame (the SETTINGS ACK,
 * PING answers, responses) passes on unchanged. The prober's ACK of the preface it saw answers the
 * web server's SETTINGS. With `dropAcks`, the web server's SETTINGS ACKs are dropped too, all of
 * them: the caller acknowledges the prober's SETTINGS itself, as nginx does, the moment each
 * arrives. With `trimGoaway`, a GOAWAY loses its debug data (nginx sends none).
 *
 * @example
 * ```ts
 * import { BackendPrefaceFilter } from "./h2_preface.ts";
 * const f = new BackendPrefaceFilter();
 * // hyper: SETTINGS (4 settings), SETTINGS ACK, WINDOW_UPDATE
 * const hyper = Uint8Array.from(
 *   ("000018040000000000" + "0003000000c8000400100000000500004000000600004000" +
 *     "000000040100000000" + "000004080000000000000f0001").match(/../g)!,
 *   (h) => parseInt(h, 16),
 * );
 * f.push(hyper); // 00 00 00 04 01 00 00 00 00: the ACK alone
 * ```
 */
export class BackendPrefaceFilter {
  readonly #dropAcks: boolean;
  readonly #trimGoaway: boolean;
  #held = new Uint8Array(0);
  /** Of `#rest`, the bytes still to pass on before the rest of the frame is dropped. */
  #keep = 0;
  /** Frames of the web server's looked at so far. */
  #frames = 0;
  /** Bytes of the current frame still to pass on (or drop, when #dropping). */
  #rest = 0;
  #dropping = false;
  #done = false;

  /** `dropAcks` and `trimGoaway`: see the class. */
  constructor(options: { dropAcks?: boolean; trimGoaway?: boolean } = {}) {
    this.#dropAcks = options.dropAcks === true;
    this.#trimGoaway = options.trimGoaway === true;
  }

  /** The bytes to send the prober for this chunk from the web server. */
  push(chunk: Uint8Array): Uint8Array {
    const passAll = this.#done && !this.#dropAcks && !this.#trimGoaway;
    if (passAll && this.#rest === 0 && this.#held.length === 0) return chunk;
    let b = this.#held.length === 0 ? chunk : concat([this.#held, chunk]);
    this.#held = new Uint8Array(0);
    const out: Uint8Array[] = [];
    while (b.length > 0) {
      if (this.#rest > 0) {
        const n = Math.min(this.#rest, b.length);
        const keep = this.#dropping ? 0 : Math.min(n, this.#keep);
        if (keep > 0) out.push(b.subarray(0, keep));
        this.#keep -= keep;
        this.#rest -= n;
        b = b.subarray(n);
        continue;
      }
      if (this.#done && !this.#dropAcks && !this.#trimGoaway) {
        out.push(b);
        break;
      }
      if (b.length < FRAME_HEADER) {
        this.#held = b.slice();
        break;
      }
      const len = (b[0]! << 16) | (b[1]! << 8) | b[2]!;
      const frame = this.#frames++;
      const settings = b[3] === SETTINGS && (b[4]! & ACK) === 0 && isStreamZero(b, 0);
      const ack = this.#dropAcks && b[3] === SETTINGS && (b[4]! & ACK) !== 0 && len === 0 &&
        isStreamZero(b, 0);
      const window = !this.#done && frame >= 1 && isConnectionWindowUpdate(b);
      this.#dropping = (!this.#done && frame === 0 && settings) || window || ack;
      // A first frame that is no SETTINGS, the dropped WINDOW_UPDATE, or a first answer or
      // GOAWAY: no more of the preface is dropped.
      if ((frame === 0 && !settings) || window || b[3] === HEADERS || b[3] === GOAWAY) {
        this.#done = true;
      }
      this.#rest = len;
      this.#keep = len;
      if (this.#trimGoaway && b[3] === GOAWAY && len > 8) {
        // Last stream id and error code; the debug data is dropped.
        this.#keep = 8;
        if (!this.#dropping) out.push(Uint8Array.of(0, 0, 8), b.subarray(3, FRAME_HEADER));
      } else if (!this.#dropping) {
        out.push(b.subarray(0, FRAME_HEADER));
      }
      b = b.subarray(FRAME_HEADER);
    }
    return out.length === 1 ? out[0]! : concat(out);
  }
}

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g)!, (h) => parseInt(h, 16));
}
