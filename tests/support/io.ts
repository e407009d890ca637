/**
 * Byte-stream helpers the tests share: read to the end, copy one direction
 * of a relay, send a request and read the whole answer, close without
 * caring whether it was already closed.
 *
 * Exports:
 * - `readToEnd(stream, opts?)` → every byte until end of stream (with
 *   `ms`, a deadline that closes the stream; with `endOnError`, a read
 *   error counts as the end)
 * - `exchange(stream, bytes, opts)` → writes `bytes`, then `readToEnd`
 * - `pipe(from, to)`: copies until end of stream, then half-closes `to`;
 *   on an error closes both
 * - `splice(a, b)`: `pipe` both ways until both ended, then closes both
 * - `closeQuietly(c)`
 * - `writeAll(stream, bytes)` (from `lib/transport`)
 *
 * @module
 */
import { type ByteStream, writeAll } from "../../lib/transport/mod.ts";
import { step, withDeadline } from "./deadline.ts";
import { concat } from "../../lib/wire/bytes.ts";

export { writeAll };

/** What {@linkcode readToEnd} reads from. */
export interface Reader {
  read(p: Uint8Array): Promise<number | null>;
}

/** Options for {@linkcode readToEnd}. */
export interface ReadToEndOptions {
  /** Fail with a `DeadlineError` (and close the stream) after this long. */
  ms?: number;
  /** What the reader waits for, for the deadline's message. */
  what?: string;
  /** Take a read error as the end (a TLS peer that skips close_notify). */
  endOnError?: boolean;
}

/** Options for {@linkcode exchange}. */
export interface ExchangeOptions extends ReadToEndOptions {
  /** Half-close after writing, so the peer reads end of stream. */
  halfClose?: boolean;
}

/**
 * Reads everything until end of stream.
 *
 * @example
 * ```ts ignore
 * const body = await readToEnd(conn, { ms: 10_000, what: "the target's answer" });
 * ```
 */
export function readToEnd(
  r: Reader & Partial<Pick<ByteStream, "close">>,
  opts: ReadToEndOptions = {},
): Promise<Uint8Array> {
  const what = opts.what ?? "the peer to end the stream";
  const reading = readAll(r, opts.endOnError ?? false);
  if (opts.ms === undefined) return step(what, reading);
  return withDeadline(reading, opts.ms, what, { onTimeout: () => closeQuietly(r) });
}

async function readAll(r: Reader, endOnError: boolean): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    let n: number | null;
    try {
      n = await r.read(buf);
    } catch (e) {
      if (!endOnError) throw e;
      n = null;
    }
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return concat(chunks);
}

/**
 * Writes `bytes` to `stream` (then half-closes it with `halfClose`), reads
 * everything it answers until it closes (see {@linkcode readToEnd}), and
 * closes the stream.
 *
 * @example
 * ```ts ignore
 * const answer = await exchange(conn, hello, { ms: 15_000, what: "the decoy's answer", endOnError: true });
 * ```
 */
export async function exchange(
  stream: ByteStream,
  bytes: Uint8Array,
  opts: ExchangeOptions = {},
): Promise<Uint8Array> {
  try {
    await writeAll(stream, bytes);
    if (opts.halfClose) await stream.closeWrite();
    return await readToEnd(stream, opts);
  } finally {
    closeQuietly(stream);
  }
}

/**
 * Copies `from` to `to` until end of stream, then half-closes `to`. On an
 * error (either side went away) closes both, so the other direction ends
 * too. Never rejects.
 *
 * @example
 * ```ts ignore
 * await Promise.all([pipe(client, upstream), pipe(upstream, client)]);
 * ```
 */
export async function pipe(from: ByteStream, to: ByteStream): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      await writeAll(to, buf.subarray(0, n));
    }
    await to.closeWrite();
  } catch {
    closeQuietly(from);
    closeQuietly(to);
  }
}

/**
 * Pipes `a` and `b` both ways (see {@linkcode pipe}) until both directions
 * ended, then closes both. Never rejects.
 *
 * @example
 * ```ts ignore
 * await splice(client, await Deno.connect({ hostname: "127.0.0.1", port }));
 * ```
 */
export async function splice(a: ByteStream, b: ByteStream): Promise<void> {
  await Promise.all([pipe(a, b), pipe(b, a)]);
  closeQuietly(a);
  closeQuietly(b);
}

/**
 * Closes `c`, ignoring that it may be closed already.
 *
 * @example
 * ```ts ignore
 * closeQuietly(conn);
 * ```
 */
export function closeQuietly(c: { close?(): void } | undefined): void {
  try {
    c?.close?.();
  } catch {
    // already closed
  }
}
