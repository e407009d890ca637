/**
 * What the process benchmarks (`idle_streams.ts`, `resend_buffer.ts`)
 * share: `nitrosocks` commands of this checkout run as their own
 * processes, a target program run with `deno eval` that prints its port,
 * waiting for a port to listen, and stopping a process (SIGTERM, then
 * SIGKILL after 3 s).
 *
 * @module
 */
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");
import { PERMISSION_FLAGS } from "../scripts/compile.ts";

const FLAGS = PERMISSION_FLAGS;

/**
 * `deno run FLAGS main.ts ARGS` as a command; its stderr is shown when
 * `debug` is true, else dropped.
 *
 * @example
 * ```ts ignore
 * const server = nitrosocks(["server", "--config", yml], false).spawn();
 * ```
 */
export function nitrosocks(args: string[], debug: boolean): Deno.Command {
  return new Deno.Command("deno", {
    args: ["run", ...FLAGS, MAIN, ...args],
    stdout: "null",
    stderr: debug ? "inherit" : "null",
  });
}

/**
 * `nitrosocks init SRV` (listening on 127.0.0.1:`port`) and `nitrosocks
 * user add bench` (routes `127.0.0.1:*`: the targets), writing the profile
 * to `profile`.
 *
 * @example
 * ```ts ignore
 * await provision(join(dir, "srv"), join(dir, "bench.yml"), sport, false);
 * ```
 */
export async function provision(
  srv: string,
  profile: string,
  port: number,
  debug: boolean,
): Promise<void> {
  await nitrosocks(["init", srv, "--listen", `127.0.0.1:${port}`, "--force"], debug).output();
  // The targets are on loopback, which the server's egress.block keeps out of routes `*`.
  await nitrosocks([
    "user",
    "add",
    "bench",
    "--dir",
    srv,
    "--out",
    profile,
    "--force",
    "--routes",
    "127.0.0.1:*",
  ], debug).output();
}

/**
 * Spawns `nitrosocks server --config YML` and `nitrosocks client --config
 * PROFILE --socks 127.0.0.1:SOCKSPORT`, both logging errors only.
 *
 * @example
 * ```ts ignore
 * const { server, client } = spawnPair(yml, profile, cport, false);
 * ```
 */
export function spawnPair(
  yml: string,
  profile: string,
  socksPort: number,
  debug: boolean,
): { server: Deno.ChildProcess; client: Deno.ChildProcess } {
  const server = nitrosocks(["server", "--config", yml, "--log-level", "error"], debug).spawn();
  const client = nitrosocks([
    "client",
    "--config",
    profile,
    "--socks",
    `127.0.0.1:${socksPort}`,
    "--log-level",
    "error",
  ], debug).spawn();
  return { server, client };
}

/**
 * Runs `src` with `deno eval` and reads the port it prints first.
 *
 * @example
 * ```ts ignore
 * const { child, port } = await spawnTarget(`const l = Deno.listen({ port: 0 }); console.log(l.addr.port);`);
 * ```
 */
export async function spawnTarget(
  src: string,
): Promise<{ child: Deno.ChildProcess; port: number }> {
  const child = new Deno.Command("deno", { args: ["eval", src], stdout: "piped" }).spawn();
  const reader = child.stdout.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  return { child, port: Number(first.trim()) };
}

/**
 * A loopback port nothing listens on (bound, then released).
 *
 * @example
 * ```ts ignore
 * const port = freePort();
 * ```
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/**
 * Waits until something accepts on 127.0.0.1:`port`; throws once
 * `Date.now()` passes `deadline`.
 *
 * @example
 * ```ts ignore
 * await waitPort(port, Date.now() + 30_000);
 * ```
 */
export async function waitPort(port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Nothing listens on 127.0.0.1:${port} in time`);
}

/**
 * SIGTERM, up to 3 s for the process to exit, then SIGKILL.
 *
 * @example
 * ```ts ignore
 * await stop(server);
 * ```
 */
export async function stop(p: Deno.ChildProcess): Promise<void> {
  try {
    p.kill("SIGTERM");
  } catch {
    // already gone
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.status, new Promise((r) => (timer = setTimeout(r, 3000)))]);
  clearTimeout(timer);
  try {
    p.kill("SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * The resident memory of process `pid` (KiB, from /proc).
 *
 * @example
 * ```ts ignore
 * const kib = rssKiB(server.pid);
 * ```
 */
export function rssKiB(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN);
}

/**
 * The CPU time process `pid` has used, user plus system (s, from /proc).
 *
 * @example
 * ```ts ignore
 * const before = cpuSeconds(server.pid);
 * ```
 */
export function cpuSeconds(pid: number): number {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  // Fields 14 and 15 (utime, stime) counted from the state, the 3rd field.
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * Reads exactly `b.length` bytes; throws when the peer closes first.
 *
 * @example
 * ```ts ignore
 * await readFull(conn, new Uint8Array(10));
 * ```
 */
export async function readFull(c: Deno.Conn, b: Uint8Array): Promise<void> {
  let got = 0;
  while (got < b.length) {
    const n = await c.read(b.subarray(got));
    if (n === null) throw new Error("closed");
    got += n;
  }
}

/**
 * A SOCKS5 CONNECT (no authentication) to 127.0.0.1:`port` through the
 * proxy on `socks`, then one byte echoed: the stream is open and works.
 *
 * @example
 * ```ts ignore
 * const conn = await socksOpen(cport, echoPort);
 * ```
 */
export async function socksOpen(socks: number, port: number): Promise<Deno.TcpConn> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port: socks });
  try {
    const b = new Uint8Array(10);
    await c.write(new Uint8Array([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 255]));
    await readFull(c, b.subarray(0, 2));
    await readFull(c, b);
    if (b[1] !== 0) throw new Error(`SOCKS5 reply ${b[1]}`);
    await c.write(new Uint8Array([42]));
    await readFull(c, b.subarray(0, 1));
    return c;
  } catch (e) {
    c.close();
    throw e;
  }
}

/** A loopback TCP echo server for `spawnTarget`: prints its port, echoes every connection. */
export const ECHO_TARGET_SRC = `
const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(l.addr.port);
for await (const c of l) {
  (async () => {
    const b = new Uint8Array(64);
    try { for (;;) { const n = await c.read(b); if (n === null) break; await c.write(b.subarray(0, n)); } } catch {}
    try { c.close(); } catch {}
  })();
}`;
