/**
 * A fault-injecting TCP relay for resumption tests: it forwards bytes
 * between clients and an upstream (TLS passes through untouched) and, on
 * each new connection, applies the next fault from a script: a reset at a
 * byte offset, a stall, a truncation, a flipped bit, a duplicated chunk.
 * Connections after the script runs out are clean.
 *
 * Exports: `startFaultRelay`, `type Fault`, `type FaultRelay`.
 *
 * @module
 */
import { closeQuietly, writeAll } from "./io.ts";
import { serveConnections } from "./serve.ts";

/** One fault, applied to one connection. Offsets count bytes in `dir`. */
export type Fault =
  | { kind: "none" }
  /** Close both sides abruptly once `at` bytes have passed. */
  | { kind: "reset"; dir: "down" | "up"; at: number }
  /** Stop forwarding both ways after `at` bytes, keeping the sockets open. */
  | { kind: "stall"; dir: "down" | "up"; at: number }
  /** Forward up to `at` bytes, then close only the write side toward the receiver. */
  | { kind: "truncate"; dir: "down" | "up"; at: number }
  /** Flip one bit of the byte at offset `at`. */
  | { kind: "flip"; dir: "down" | "up"; at: number }
  /** Send the chunk holding offset `at` twice. */
  | { kind: "duplicate"; dir: "down" | "up"; at: number }
  /** Hold every chunk `ms` before forwarding it, in order (a long path, not a slow one). */
  | { kind: "delay"; dir: "down" | "up"; ms: number };

/** A running fault relay. */
export interface FaultRelay {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Faults applied so far (kind per connection). */
  readonly applied: string[];
  /** Adds faults to the end of the script. */
  push(...faults: Fault[]): void;
  /** Drops every open connection abruptly (a path failure). */
  dropAll(): void;
  close(): Promise<void>;
}

/**
 * Starts the relay on 127.0.0.1 (ephemeral port) toward `upstream`.
 *
 * @example
 * ```ts ignore
 * const relay = startFaultRelay({ port: serverPort }, [{ kind: "reset", dir: "down", at: 1 << 20 }]);
 * ```
 */
export function startFaultRelay(
  upstream: { hostname?: string; port: number },
  script: Fault[] = [],
): FaultRelay {
  const queue = [...script];
  const applied: string[] = [];

  async function pump(
    from: Deno.Conn,
    to: Deno.Conn,
    dir: "down" | "up",
    fault: Fault,
    kill: () => void,
    stalled: { on: boolean },
  ): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    let offset = 0;
    // "delay": chunks wait on this chain, each until its own due time.
    let line = Promise.resolve();
    while (true) {
      let n: number | null;
      try {
        n = await from.read(buf);
      } catch {
        break;
      }
      if (n === null) break;
      if (stalled.on) continue; // swallow: the peer sees silence
      let chunk = buf.subarray(0, n);
      const end = offset + n;
      if (fault.kind === "delay") {
        if (fault.dir === dir) {
          const held = chunk.slice();
          const due = performance.now() + fault.ms;
          line = line.then(async () => {
            await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
            await writeAll(to, held);
          }).catch(() => {}); // the receiver went away: the read side ends too
          continue;
        }
      } else if (
        fault.kind !== "none" && fault.dir === dir && fault.at < end && fault.at >= offset
      ) {
        const i = fault.at - offset;
        if (fault.kind === "reset") {
          if (i > 0) await to.write(chunk.subarray(0, i)).catch(() => 0);
          kill();
          return;
        }
        if (fault.kind === "stall") {
          if (i > 0) await to.write(chunk.subarray(0, i)).catch(() => 0);
          stalled.on = true;
          continue;
        }
        if (fault.kind === "truncate") {
          if (i > 0) await to.write(chunk.subarray(0, i)).catch(() => 0);
          await to.closeWrite().catch(() => {});
          return;
        }
        if (fault.kind === "flip") {
          chunk = chunk.slice();
          chunk[i]! ^= 0x10;
        }
        if (fault.kind === "duplicate") {
          try {
            await writeAll(to, chunk);
          } catch {
            break;
          }
        }
      }
      offset = end;
      try {
        await writeAll(to, chunk);
      } catch {
        break;
      }
    }
    await line;
    await to.closeWrite().catch(() => {});
  }

  const served = serveConnections(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    async (client, track) => {
      const fault = queue.shift() ?? { kind: "none" as const };
      applied.push(fault.kind);
      let server: Deno.Conn;
      try {
        server = await Deno.connect({
          hostname: upstream.hostname ?? "127.0.0.1",
          port: upstream.port,
        });
      } catch {
        return;
      }
      const untrack = track(server);
      const kill = () => {
        closeQuietly(client);
        closeQuietly(server);
      };
      const stalled = { on: false };
      await Promise.allSettled([
        pump(client, server, "up", fault, kill, stalled),
        pump(server, client, "down", fault, kill, stalled),
      ]);
      kill();
      untrack();
    },
  );

  return {
    port: served.port,
    get connections() {
      return served.accepted;
    },
    applied,
    push(...faults) {
      queue.push(...faults);
    },
    dropAll: served.dropAll,
    close: served.close,
  };
}
