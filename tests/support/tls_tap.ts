/**
 * What an on-path observer of a TLS connection sees: the sequence of TLS
 * records, each with its connection, direction, content type, length (the
 * 5-byte record header is in the clear) and the time it passed.
 * `startTlsTap(upstream)` is a TCP relay on 127.0.0.1 that forwards every
 * byte unchanged and parses the headers as they go by.
 *
 * Also: `ksStatistic`, the two-sample Kolmogorov–Smirnov statistic (the
 * largest gap between two empirical distribution functions), for comparing
 * record sizes of two captures.
 *
 * @module
 */
import type { ByteStream } from "../../lib/transport/mod.ts";
import { closeQuietly, writeAll } from "./io.ts";
import { serveConnections } from "./serve.ts";

/** Which way bytes were going. */
export type TapDirection = "client_to_server" | "server_to_client";

/** One TLS record as the observer saw it. */
export interface SeenRecord {
  /** The connection, numbered from 0 in the order the tap accepted them. */
  conn: number;
  dir: TapDirection;
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

/** A running tap. */
export interface TlsTap extends AsyncDisposable {
  readonly port: number;
  /** Every record seen so far, in the order their headers passed. */
  readonly records: SeenRecord[];
  /** Forgets what was seen so far (e.g. before the part of a run that is measured). */
  clear(): void;
  /** Application-data records (type 23) of one connection (default the first), optionally one way. */
  appData(dir?: TapDirection, conn?: number): SeenRecord[];
  close(): Promise<void>;
}

/**
 * Starts a tap on 127.0.0.1 (a free port) in front of `upstream`.
 *
 * @example
 * ```ts ignore
 * await using tap = startTlsTap({ hostname: "127.0.0.1", port: serverPort });
 * // ... run a client through tap.port ...
 * tap.appData("server_to_client").map((r) => r.length);
 * ```
 */
export function startTlsTap(upstream: { hostname: string; port: number }): TlsTap {
  const records: SeenRecord[] = [];
  let next = 0;
  const pump = async (from: ByteStream, to: ByteStream, conn: number, dir: TapDirection) => {
    const parser = new Parser();
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      const atMs = performance.now();
      parser.push(chunk, (type, length) => records.push({ conn, dir, type, length, atMs }));
      await writeAll(to, chunk);
    }
    await to.closeWrite().catch(() => {});
  };
  const served = serveConnections(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    async (client, track) => {
      const conn = next++;
      let up: Deno.Conn;
      try {
        up = await Deno.connect(upstream);
      } catch {
        return;
      }
      const untrack = track(up);
      const cut = () => {
        closeQuietly(client);
        closeQuietly(up);
      };
      await Promise.all([
        pump(client, up, conn, "client_to_server").catch(cut),
        pump(up, client, conn, "server_to_client").catch(cut),
      ]);
      closeQuietly(up);
      untrack();
    },
  );
  return {
    port: served.port,
    records,
    clear: () => void (records.length = 0),
    appData: (dir, conn = 0) =>
      records.filter((r) =>
        r.type === 23 && r.conn === conn && (dir === undefined || r.dir === dir)
      ),
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
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
