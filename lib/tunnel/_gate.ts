/**
 * The probe gate's early decisions around the handshake machine: bytes that
 * say "not a Hello" are handed to the fallback before the machine (and its
 * X25519) sees them, and on a transport that delivers the client's first
 * write whole (TLS), a first read that is not a whole Hello is a probe at
 * once. A web server answers such bytes at once; so does the gate.
 *
 * @module
 */
import { HELLO_MIN_BYTES, type ServerHandshake } from "../handshake/mod.ts";
import { type ProbeShape, recognizeProbe } from "./probe_shape.ts";

type Step = ReturnType<ServerHandshake["push"]>;

const SHAPE_NAMES: Record<ProbeShape, string> = {
  http1: "an HTTP/1 request",
  h2: "the HTTP/2 preface",
  tls: "a TLS ClientHello",
};

/**
 * Wraps `hs.push` for the server's handshake driver. `received()` is every
 * byte read before the gate decided, for the fallback.
 *
 * @example
 * ```ts ignore
 * const gate = new EarlyGate(hs, true);
 * const r = await drive(conn, reader, (c) => gate.push(c), limits);
 * // on a probe: hand gate.received() to the fallback
 * ```
 */
export class EarlyGate {
  readonly #hs: ServerHandshake;
  readonly #wholeFirstRead: boolean;
  #chunks: Uint8Array[] = [];
  #reads = 0;
  #passed = false;

  constructor(hs: ServerHandshake, wholeFirstRead: boolean) {
    this.#hs = hs;
    this.#wholeFirstRead = wholeFirstRead;
  }

  /** Every byte read so far (all of them, for a probe). */
  received(): Uint8Array {
    return this.#passed ? this.#hs.received() : concat(this.#chunks);
  }

  /** Pushes a chunk: the machine's step, or an early "probe". */
  push(chunk: Uint8Array): Step {
    if (this.#passed) return this.#hs.push(chunk);
    this.#reads++;
    this.#chunks.push(chunk);
    const first = this.#reads === 1;
    const shape = recognizeProbe(first ? chunk : concat(this.#chunks));
    if (shape !== undefined) {
      return { type: "probe", reason: `${SHAPE_NAMES[shape]} instead of a hello` };
    }
    if (this.#wholeFirstRead && first && chunk.length < HELLO_MIN_BYTES) {
      return {
        type: "probe",
        reason: `a first record of ${chunk.length} bytes, shorter than a hello`,
      };
    }
    const step = this.#hs.push(chunk);
    if (step.type === "send") {
      this.#passed = true;
      this.#chunks = [];
    } else if (step.type === "need_more" && this.#wholeFirstRead && first) {
      return { type: "probe", reason: "the first record is not a whole hello" };
    }
    return step;
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
