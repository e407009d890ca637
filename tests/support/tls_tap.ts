/**
 * What an on-path observer of a TLS connection sees: the sequence of TLS
 * records, each with its direction, content type, length (the 5-byte record
 * header is in the clear) and the time it passed. `TlsRecordTap.tamper` is
 * a {@linkcode Tamper} for `startTcpRelay` (tests/support/mitm_relay.ts):
 * it forwards every byte unchanged and parses the headers as they go by.
 * One connection at a time (a new connection resets the parsers).
 *
 * Also: `ksStatistic`, the two-sample Kolmogorov–Smirnov statistic (the
 * largest gap between two empirical distribution functions), for comparing
 * record sizes of two captures.
 *
 * @module
 */
import type { RelayDirection, Tamper } from "./mitm_relay.ts";

/** One TLS record as the observer saw it. */
export interface SeenRecord {
  dir: RelayDirection;
  /** Content type: 22 handshake, 20 change_cipher_spec, 23 application data, 21 alert. */
  type: number;
  /** The header's length field (the record's body bytes). */
  length: number;
  /** When its header was complete (performance.now(), ms). */
  atMs: number;
}

/** Per-direction parser: header bytes gathered, body bytes still to skip. */
class Parser {
  #header = new Uint8Array(5);
  #have = 0;
  #skip = 0;
  reset(): void {
    this.#have = 0;
    this.#skip = 0;
  }
  push(chunk: Uint8Array, emit: (type: number, length: number) => void): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      this.#header[this.#have++] = chunk[i++]!;
      if (this.#have < 5) continue;
      this.#have = 0;
      const length = (this.#header[3]! << 8) | this.#header[4]!;
      this.#skip = length;
      emit(this.#header[0]!, length);
    }
  }
}

/**
 * Parses the TLS records passing through a relay.
 *
 * @example
 * ```ts ignore
 * const tap = new TlsRecordTap();
 * await using relay = startTcpRelay({ upstream, tamper: tap.tamper });
 * // ... run a client through relay.port ...
 * tap.records.filter((r) => r.type === 23).map((r) => r.length);
 * ```
 */
export class TlsRecordTap {
  readonly records: SeenRecord[] = [];
  readonly #parsers = { client_to_server: new Parser(), server_to_client: new Parser() };

  /** Forwards `chunk` unchanged, recording the records whose headers it completes. */
  readonly tamper: Tamper = (dir, chunk, offset) => {
    const p = this.#parsers[dir];
    if (offset === 0) p.reset();
    const atMs = performance.now();
    p.push(chunk, (type, length) => this.records.push({ dir, type, length, atMs }));
    return chunk;
  };

  /** Forgets what was seen so far (e.g. before the part of a run that is measured). */
  clear(): void {
    this.records.length = 0;
  }

  /** Application-data records (type 23), optionally of one direction. */
  appData(dir?: RelayDirection): SeenRecord[] {
    return this.records.filter((r) => r.type === 23 && (dir === undefined || r.dir === dir));
  }
}

/**
 * The two-sample Kolmogorov–Smirnov statistic D = sup |F_a(x) − F_b(x)|:
 * 0 when the two samples have the same distribution of values, 1 when every
 * value of one is below every value of the other.
 *
 * @example
 * ```ts
 * import { ksStatistic } from "./tls_tap.ts";
 * ksStatistic([1, 2, 3], [1, 2, 3]); // 0
 * ksStatistic([1, 2], [3, 4]); // 1
 * ```
 */
export function ksStatistic(a: readonly number[], b: readonly number[]): number {
  if (a.length === 0 || b.length === 0) {
    throw new RangeError(`Cannot compare samples: sizes ${a.length} and ${b.length}`);
  }
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  let i = 0, j = 0, d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}
