/**
 * The error a tunnel connection raises when the peer is too slow:
 * fewer bytes than asked arrived before a read deadline, or a write could
 * not be accepted before its deadline because the peer stopped reading.
 *
 * @module
 */

/** Which operation ran out of time. */
export type PeerSlowOperation = "read" | "write";

/** Options for {@linkcode PeerSlowError}. */
export interface PeerSlowErrorOptions extends ErrorOptions {
  /** Which operation ran out of time. */
  operation: PeerSlowOperation;
  /** Bytes a read placed in the caller's buffer before the deadline. Default 0. */
  bytesRead?: number;
  /** Bytes of the write the tunnel accepted before the deadline. Default 0. */
  bytesWritten?: number;
}

/**
 * The peer did not keep up before a deadline. On a read (`readFull` with
 * `timeoutMs`), the first `bytesRead` bytes of the caller's buffer hold what
 * did arrive (authenticated, in order) and nothing was lost: the next read
 * returns what comes after them. On a write (`writeTimeoutMs`), the tunnel
 * accepted the first `bytesWritten` bytes of the chunk and will deliver
 * them; the rest was not sent. It is a `Deno.errors.TimedOut`.
 *
 * @example
 * ```ts
 * import { PeerSlowError } from "./errors.ts";
 * const e = new PeerSlowError("Cannot read 10 bytes: the peer sent 4 within 1 s", {
 *   operation: "read",
 *   bytesRead: 4,
 * });
 * if (!(e instanceof Deno.errors.TimedOut) || e.bytesRead !== 4) throw new Error("unexpected");
 * ```
 */
export class PeerSlowError extends Deno.errors.TimedOut {
  /** Which operation ran out of time. */
  readonly operation: PeerSlowOperation;
  /** Bytes a read placed in the caller's buffer before the deadline. */
  readonly bytesRead: number;
  /** Bytes of the write the tunnel accepted before the deadline. */
  readonly bytesWritten: number;

  /** Makes the error; `options.operation` says which side ran out of time. */
  constructor(message: string, options: PeerSlowErrorOptions) {
    super(message, options);
    this.name = "PeerSlowError";
    this.operation = options.operation;
    this.bytesRead = options.bytesRead ?? 0;
    this.bytesWritten = options.bytesWritten ?? 0;
  }
}
