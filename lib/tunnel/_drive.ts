/**
 * The one handshake driver: read a chunk with a deadline, push it into a
 * pure state machine, write what the machine says to send, until it reaches
 * a final step. The server's handshake (`acceptor.ts`), the client's
 * (`link.ts`) and the SOCKS5 and HTTP CONNECT front ends (`dial.ts`,
 * `http_connect.ts`) all run through it, so a deadline means the same thing
 * everywhere.
 *
 * @module
 */
import { type ByteStream, writeAll } from "../transport/types.ts";
import type { TimedReader } from "./reader.ts";

/** Time limits for a drive. */
export interface DriveLimits {
  /** The drive stops with "timeout" this long after it started (ms). */
  deadlineMs: number;
  /**
   * The drive stops with "idle" when no byte arrives for this long (ms),
   * when that comes before the deadline.
   */
  idleMs?: number;
}

/** Options for {@linkcode drive}. */
export interface DriveOptions<S = unknown> extends DriveLimits {
  /**
   * Asked before each "send" step is written: a final step to stop with
   * instead (the server's fleet-wide replay check turns a ServerHello into
   * a probe), or undefined to send.
   */
  beforeSend?: (step: S) => Promise<Exclude<S, NeedMore | SendStep> | undefined>;
  /**
   * The limits once the machine has sent something (still counted from the
   * start): the server's probe gate has then passed.
   */
  afterSend?: DriveLimits;
  /** Bytes already read from the peer (a front end that sniffed the protocol): pushed first. */
  initial?: Uint8Array;
}

/** The step a machine returns when it needs more input. */
export interface NeedMore {
  type: "need_more";
}

/** The step a machine returns when the driver must write `bytes` and go on. */
export interface SendStep {
  type: "send";
  bytes: Uint8Array;
}

/** Why a drive stopped before the machine reached a final step. */
export type DriveStop =
  | {
    /** The peer closed, the deadline passed, or the peer was silent for `idleMs`. */
    stop: "closed" | "timeout" | "idle";
    /** True once the driver had written something. */
    sent: boolean;
  }
  | { stop: "error"; error: unknown; sent: boolean };

/** What {@linkcode drive} resolves to: the machine's final step, or why it stopped. */
export type Driven<S> = { step: Exclude<S, NeedMore | SendStep> } | DriveStop;

/**
 * Drives `push` (a pure state machine's input) with chunks read from
 * `reader` until it returns a step other than "need_more" or "send".
 * "send" steps are written to `conn` (a failed write rejects); a failed read
 * resolves as `{ stop: "error" }`; an exception from `push` rejects.
 *
 * @example
 * ```ts ignore
 * const r = await drive(conn, new TimedReader(conn), (c) => hs.push(c), { deadlineMs: 15_000 });
 * if ("stop" in r) return conn.close();
 * ```
 */
export async function drive<S extends { type: string }>(
  conn: ByteStream,
  reader: TimedReader,
  push: (chunk: Uint8Array) => S,
  options: DriveOptions<S>,
): Promise<Driven<S>> {
  const start = Date.now();
  let sent = false;
  // Without an idle limit, one timer for the deadline serves every read of
  // the drive (set for the limits in force; a new one once they change).
  let initial = options.initial;
  let deadline:
    | { limits: DriveLimits; at: Promise<"timeout">; timer: ReturnType<typeof setTimeout> }
    | undefined;
  try {
    while (true) {
      const limits: DriveLimits = sent ? options.afterSend ?? options : options;
      const left = start + limits.deadlineMs - Date.now();
      if (left <= 0) return { stop: "timeout", sent };
      const byIdle = limits.idleMs !== undefined && limits.idleMs < left;
      let chunk;
      try {
        if (initial !== undefined) {
          // Bytes read before the drive (e.g. by the transport's own check) come first.
          chunk = initial;
          initial = undefined;
        } else if (byIdle) {
          chunk = await reader.next(limits.idleMs);
        } else {
          if (deadline?.limits !== limits) {
            if (deadline !== undefined) clearTimeout(deadline.timer);
            let timer: ReturnType<typeof setTimeout> | undefined;
            const at = new Promise<"timeout">((
              r,
            ) => (timer = setTimeout(() => r("timeout"), left)));
            deadline = { limits, at, timer: timer! };
          }
          chunk = await reader.nextBefore(deadline.at);
        }
      } catch (error) {
        return { stop: "error", error, sent };
      }
      if (chunk === null) return { stop: "closed", sent };
      if (chunk === "timeout") return { stop: byIdle ? "idle" : "timeout", sent };
      const step = push(chunk);
      if (step.type === "need_more") continue;
      if (step.type === "send") {
        const instead = await options.beforeSend?.(step);
        if (instead !== undefined) return { step: instead };
        sent = true;
        await writeAll(conn, (step as unknown as SendStep).bytes);
        continue;
      }
      return { step: step as Exclude<S, NeedMore | SendStep> };
    }
  } finally {
    if (deadline !== undefined) clearTimeout(deadline.timer);
  }
}
