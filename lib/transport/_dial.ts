/**
 * Timeout and cancellation shared by the TCP and TLS dialers. Private to
 * `lib/transport`.
 *
 * @module
 */
import { type DialContext, dialTimeoutError, explainDialError } from "./errors.ts";

/** Default time allowed for connect plus TLS handshake. */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/**
 * Runs `connect` under a deadline and an optional caller signal. `connect`
 * receives a signal to pass on and must return a closable resource; if the
 * deadline or the caller aborts after it resolved, it is closed. Rejects
 * with `TimedOut` ("timed out after 10 s connecting to …"), the caller's
 * abort reason, or the explained dial error.
 */
export async function withDeadline<T extends { close(): void }>(
  ctx: DialContext,
  opts: { timeoutMs?: number; signal?: AbortSignal },
  connect: (signal: AbortSignal, track: (resource: { close(): void }) => void) => Promise<T>,
): Promise<T> {
  const ms = opts.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new RangeError(`Cannot dial: timeout ${ms} ms is not a positive number`);
  }
  opts.signal?.throwIfAborted();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(dialTimeoutError(ctx, ms)), ms);
  const signal = opts.signal === undefined
    ? deadline.signal
    : AbortSignal.any([opts.signal, deadline.signal]);
  let current: { close(): void } | undefined;
  const closeCurrent = () => {
    try {
      current?.close();
    } catch {
      // Already closed or consumed by startTls: nothing left to release.
    }
  };
  signal.addEventListener("abort", closeCurrent, { once: true });
  try {
    return await connect(signal, (r) => {
      current = r;
      if (signal.aborted) closeCurrent();
    });
  } catch (e) {
    closeCurrent();
    if (signal.aborted) throw signal.reason;
    throw explainDialError(e, ctx);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", closeCurrent);
  }
}
