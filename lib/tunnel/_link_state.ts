/**
 * What a session's link reader, link writer and the session itself share
 * about one link: the connection, its record sealer and opener, and the
 * flags and times the timers read.
 *
 * @module
 */
import type { RecordOpener, RecordSealer } from "../record/mod.ts";
import type { ByteStream } from "../transport/types.ts";

/** One connection carrying the session. */
export interface LinkState {
  /** The link's id in REKEY payloads. */
  readonly seq: number;
  readonly conn: ByteStream;
  readonly sealer: RecordSealer;
  readonly opener: RecordOpener;
  /** For logs: where the link goes. */
  readonly label: string;
  /** False once the link ended (failed, replaced, or the session closed). */
  alive: boolean;
  /** RESUME state exchanged (or not needed): the writer may pull. */
  ready: boolean;
  /** The next record received is the peer's RESUME frame. */
  awaitResume: boolean;
  /** We hold no state for this session (a resumption we started afresh). */
  readonly stateLost: boolean;
  /** When bytes last arrived (ms). */
  lastRecv: number;
  /** When bytes were last written (ms). */
  lastSend: number;
}
